package io.github.llama2j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.langchain4j.model.openai.OpenAiStreamingChatModel;
import dev.langchain4j.model.output.FinishReason;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** LangChain4j's OpenAI chat models, streaming and not, against {@code llama2j serve} with an API key. */
class ServeLangChain4jTest {
    static final String KEY = "lc4j-test-key";
    static ServeFixture f;

    @BeforeAll
    static void start() {
        f = new ServeFixture(o -> o.withApiKey(KEY));
    }

    @AfterAll
    static void stop() {
        if (f != null) {
            f.close();
        }
    }

    /** The same conversation over plain HTTP: what LangChain4j must get. */
    static String plainAnswer(int maxTokens, int seed) {
        HttpResponse<String> r = f.send(HttpRequest.newBuilder(f.uri("/v1/chat/completions"))
                .header("Authorization", "Bearer " + KEY).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("""
                        {"model": "stories260K", "messages": [{"role": "system", "content": "You tell stories."},
                         {"role": "user", "content": "Once upon a time"}], "max_tokens": %d, "seed": %d, "temperature": 0.7}"""
                        .formatted(maxTokens, seed))).build());
        assertEquals(200, r.statusCode(), r::body);
        JsonNode json = ServeFixture.json(r.body());
        return json.get("choices").get(0).get("message").get("content").asText();
    }

    @Test
    void chatModel() {
        OpenAiChatModel model = OpenAiChatModel.builder()
                .baseUrl(f.server.baseUri().toString()).apiKey(KEY).modelName("stories260K")
                .maxTokens(24).seed(11).temperature(0.7).timeout(Duration.ofSeconds(60)).build();
        ChatResponse r = model.chat(SystemMessage.from("You tell stories."), UserMessage.from("Once upon a time"));
        String text = r.aiMessage().text();
        assertFalse(text == null || text.isEmpty());
        assertEquals(plainAnswer(24, 11), text);
        assertNotNull(r.tokenUsage());
        assertEquals(24, r.tokenUsage().outputTokenCount());
        assertEquals(FinishReason.LENGTH, r.finishReason());
    }

    @Test
    void streamingChatModel() throws Exception {
        OpenAiStreamingChatModel model = OpenAiStreamingChatModel.builder()
                .baseUrl(f.server.baseUri().toString()).apiKey(KEY).modelName("stories260K")
                .maxTokens(30).seed(12).temperature(0.7).timeout(Duration.ofSeconds(60)).build();
        StringBuilder partials = new StringBuilder();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        model.chat(List.of(SystemMessage.from("You tell stories."), UserMessage.from("Once upon a time")),
                new StreamingChatResponseHandler() {
                    @Override
                    public void onPartialResponse(String partial) {
                        partials.append(partial);
                    }

                    @Override
                    public void onCompleteResponse(ChatResponse response) {
                        done.complete(response);
                    }

                    @Override
                    public void onError(Throwable error) {
                        done.completeExceptionally(error);
                    }
                });
        ChatResponse r = done.get(60, TimeUnit.SECONDS);
        String expected = plainAnswer(30, 12);
        assertFalse(expected.isEmpty());
        assertEquals(expected, partials.toString());
        assertEquals(expected, r.aiMessage().text());
        assertTrue(r.finishReason() == FinishReason.LENGTH || r.finishReason() == FinishReason.STOP, String.valueOf(r.finishReason()));
    }

    @Test
    void errorsReachTheClient() {
        OpenAiChatModel wrongModel = OpenAiChatModel.builder()
                .baseUrl(f.server.baseUri().toString()).apiKey(KEY).modelName("gpt-4o").maxRetries(0)
                .timeout(Duration.ofSeconds(30)).build();
        RuntimeException e = assertThrows(RuntimeException.class, () -> wrongModel.chat("hello"));
        assertTrue(String.valueOf(e.getMessage()).contains("does not exist"), e::toString);
        OpenAiChatModel wrongKey = OpenAiChatModel.builder()
                .baseUrl(f.server.baseUri().toString()).apiKey("wrong").modelName("stories260K").maxRetries(0)
                .timeout(Duration.ofSeconds(30)).build();
        RuntimeException k = assertThrows(RuntimeException.class, () -> wrongKey.chat("hello"));
        assertTrue(String.valueOf(k.getMessage()).contains("API key"), k::toString);
    }
}
