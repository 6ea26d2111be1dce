package io.github.llama2j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.llama2j.Json;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.TestData;
import io.github.llama2j.chat.ChatTemplate;
import io.github.llama2j.cli.Io;
import io.github.llama2j.cli.Main;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.tokenizer.GgufTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code llama2j serve MODEL.gguf}: greedy completions and chat answers (plain and streamed) are llama.cpp's golden
 * text, for golden cases without a near-tie (a step whose top-2 logit gap is within 2 x 1e-3 of its top logit, where
 * the engine's arithmetic may swap the two: see {@code RunGgufTest}); the prompt tokens are the golden ones.
 */
class ServeGgufTest {
    private static final double NEAR_TIE = 1e-3;
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    private static Path model(String name) {
        return TestData.gguf().resolve("models").resolve(name + ".gguf");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> goldenCase(String model, String section, String id) {
        Map<String, Object> g = Json.read(TestData.gguf().resolve("golden").resolve(model + ".json"));
        return ((List<Map<String, Object>>) g.get(section)).stream().filter(c -> c.get("id").equals(id)).findFirst()
                .orElseThrow();
    }

    @SuppressWarnings("unchecked")
    private static void assertNoNearTie(Map<String, Object> c) {
        List<Object> gaps = (List<Object>) c.get("top2_gaps");
        List<Object> top = (List<Object>) c.get("top1_logits");
        for (int s = 0; s < gaps.size(); s++) {
            double gap = ((Number) gaps.get(s)).doubleValue();
            assertTrue(gap > 2 * NEAR_TIE * Math.abs(((Number) top.get(s)).doubleValue()), c.get("id") + ": near-tie at step " + s);
        }
    }

    private static HttpResponse<String> post(OpenAiServer server, String path, String body) {
        try {
            return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + path))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** Serves {@code model} (one CPU thread) with the format {@code llama2j serve} picks for it, and checks the case. */
    @ParameterizedTest
    @CsvSource({"qwen2-tiny-q8_0, cases, long_paragraph", "llama3-tiny-q8_0, cases, digits_punct_emoji",
            "qwen2-tiny-q8_0, chat_cases, chat_system_user", "llama3-tiny-q8_0, chat_cases, chat_user",
            "llama3-tiny-q8_0, chat_cases, chat_system_user_assistant_user"})
    void greedyAnswerIsLlamaCppsText(String name, String section, String id) {
        Map<String, Object> c = goldenCase(name, section, id);
        assertNoNearTie(c);
        boolean chat = section.equals("chat_cases");
        int[] promptTokens = Json.ints(c.get("prompt_tokens"));
        int n = Json.ints(c.get("generated_tokens")).length;
        assertEquals("max_tokens", c.get("stop_reason"));
        // the golden bytes as JSON carries them: malformed UTF-8 (a byte token cut short) decoded as Java decodes it
        String expected = new String(java.util.Base64.getDecoder().decode((String) c.get("generated_text_base64")),
                java.nio.charset.StandardCharsets.UTF_8);
        try (Model m = ModelLoader.load(model(name));
             InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, false))) {
            GgufTokenizer tokenizer = GgufTokenizer.load(m.gguf().orElseThrow());
            GgufFormat format = new GgufFormat(tokenizer, ChatTemplate.forGguf(m.gguf().get(), tokenizer, null).orElseThrow(),
                    m.config().seqLen());
            String input;
            if (chat) {
                List<ChatMessage> messages = ((List<Map<String, Object>>) c.get("messages")).stream()
                        .map(msg -> new ChatMessage(ChatMessage.Role.valueOf(((String) msg.get("role")).toUpperCase(java.util.Locale.ROOT)),
                                (String) msg.get("content"))).toList();
                assertArrayEquals(promptTokens, format.chat(messages).tokens(), id + ": prompt tokens");
                input = "\"messages\": " + OpenAiServer.JSON.valueToTree(c.get("messages"));
            } else {
                assertArrayEquals(promptTokens, format.completion((String) c.get("prompt")).tokens(), id + ": prompt tokens");
                input = "\"prompt\": " + OpenAiServer.JSON.valueToTree(c.get("prompt"));
            }
            String path = chat ? "/v1/chat/completions" : "/v1/completions";
            String body = "{" + input + ", \"max_tokens\": " + n + ", \"temperature\": 0";
            try (OpenAiServer server = OpenAiServer.start(ServeOptions.loopback(0, name, m.config().seqLen()), e, format,
                    new PrintWriter(new StringWriter(), true))) {
                HttpResponse<String> r = post(server, path, body + "}");
                assertEquals(200, r.statusCode(), r::body);
                JsonNode answer = ServeFixture.json(r.body()).get("choices").get(0);
                assertEquals(expected, chat ? answer.get("message").get("content").asText() : answer.get("text").asText(), id);
                assertEquals("length", answer.get("finish_reason").asText());
                JsonNode usage = ServeFixture.json(r.body()).get("usage");
                assertEquals(promptTokens.length, usage.get("prompt_tokens").asInt());
                assertEquals(n, usage.get("completion_tokens").asInt());
                HttpResponse<String> streamed = post(server, path, body + ", \"stream\": true}");
                assertEquals(expected, ServeHttpTest.streamedText(streamed, chat), id + " streamed");
                assertTrue(streamed.body().contains("\"finish_reason\":\"length\""), streamed.body());
                // a larger budget: the answer goes on, still llama.cpp's text as far as the golden goes
                HttpResponse<String> longer = post(server, path, body.replace("\"max_tokens\": " + n, "\"max_tokens\": " + (n + 8)) + "}");
                JsonNode more = ServeFixture.json(longer.body()).get("choices").get(0);
                String text = chat ? more.get("message").get("content").asText() : more.get("text").asText();
                assertTrue(text.startsWith(expected), text);
                int got = ServeFixture.json(longer.body()).get("usage").get("completion_tokens").asInt();
                assertEquals(got == n + 8 ? "length" : "stop", more.get("finish_reason").asText());
            }
        }
    }

    /**
     * A model whose logits are NaN (one Q8_0 block scale set to NaN): the request fails with a 500 whose message says
     * why ({@code NonFiniteLogitsException}), the log gets one line and no stack trace, and the server goes on.
     */
    @Test
    void nanLogitsFailTheRequestWithTheReason(@org.junit.jupiter.api.io.TempDir Path dir) throws IOException {
        Path bad = dir.resolve("nan-scale.gguf");
        java.nio.file.Files.copy(model("llama3-tiny-q8_0"), bad);
        try (Model m = ModelLoader.load(bad)) {
            long at = m.gguf().orElseThrow().tensor("blk.0.attn_q.weight").orElseThrow().offset();
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(bad, java.nio.file.StandardOpenOption.WRITE)) {
                ch.write(java.nio.ByteBuffer.wrap(new byte[]{0x00, 0x7e}), at); // f16 NaN (the mapping sees it)
            }
            StringWriter log = new StringWriter();
            try (InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, false))) {
                GgufTokenizer tokenizer = GgufTokenizer.load(m.gguf().orElseThrow());
                GgufFormat format = new GgufFormat(tokenizer, null, m.config().seqLen());
                try (OpenAiServer server = OpenAiServer.start(ServeOptions.loopback(0, "nan", m.config().seqLen()), e, format,
                        new PrintWriter(log, true))) {
                    for (int i = 0; i < 2; i++) {
                        HttpResponse<String> r = post(server, "/v1/completions", "{\"prompt\": \"Hello\", \"max_tokens\": 4, \"temperature\": 0}");
                        assertEquals(500, r.statusCode(), r::body);
                        assertTrue(r.body().contains(io.github.llama2j.sampling.NonFiniteLogitsException.MESSAGE), r.body());
                    }
                }
            }
            assertEquals(2, log.toString().lines().filter(l -> l.startsWith("llama2j serve: generation failed: the logits are NaN")).count(), log.toString());
            assertTrue(!log.toString().contains("\tat "), log.toString());
        }
    }

    /** A temperature that overflows finite logits (1e-40): a 500 naming the temperature, one log line, the server goes on. */
    @Test
    void aTemperatureThatOverflowsFailsTheRequestNamingIt() throws IOException {
        try (Model m = ModelLoader.load(model("llama3-tiny-q8_0"))) {
            StringWriter log = new StringWriter();
            try (InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, false))) {
                GgufTokenizer tokenizer = GgufTokenizer.load(m.gguf().orElseThrow());
                GgufFormat format = new GgufFormat(tokenizer, null, m.config().seqLen());
                try (OpenAiServer server = OpenAiServer.start(ServeOptions.loopback(0, "t", m.config().seqLen()), e, format,
                        new PrintWriter(log, true))) {
                    HttpResponse<String> r = post(server, "/v1/completions", "{\"prompt\": \"Hello\", \"max_tokens\": 4, \"temperature\": 1e-40}");
                    assertEquals(500, r.statusCode(), r::body);
                    assertTrue(r.body().contains("temperature 1.0E-40 is too small"), r.body());
                    HttpResponse<String> ok = post(server, "/v1/completions", "{\"prompt\": \"Hello\", \"max_tokens\": 4, \"temperature\": 0}");
                    assertEquals(200, ok.statusCode(), ok::body);
                }
            }
            assertEquals(1, log.toString().lines().filter(l -> l.startsWith("llama2j serve: generation failed: temperature")).count(), log.toString());
            assertTrue(!log.toString().contains("\tat "), log.toString());
        }
    }

    @Test
    void withoutChatTemplateOnlyCompletions() {
        try (Model m = ModelLoader.load(model("llama2-tiny-q4_0"))) {
            GgufTokenizer tokenizer = GgufTokenizer.load(m.gguf().orElseThrow());
            GgufFormat format = new GgufFormat(tokenizer, null, m.config().seqLen());
            ApiException e = assertThrows(ApiException.class,
                    () -> format.chat(List.of(new ChatMessage(ChatMessage.Role.USER, "hi"))));
            assertEquals(400, e.status());
            assertTrue(e.getMessage().contains("--chat-template"), e.getMessage());
            assertEquals(tokenizer.bos(), format.completion("").tokens()[0]);
            ApiException tooLong = assertThrows(ApiException.class, () -> format.completion("word ".repeat(m.config().seqLen() + 1)));
            assertEquals("context_length_exceeded", tooLong.code());
        }
    }

    @Test
    void serveUsageErrors() {
        StringWriter err = new StringWriter();
        int code = Main.execute(new Io(new ByteArrayOutputStream(), new ByteArrayInputStream(new byte[0])),
                new PrintWriter(new StringWriter()), new PrintWriter(err, true),
                "serve", model("qwen2-tiny-q8_0").toString(), "-z", "tok.bin", "--port", "0");
        assertEquals(Llama2jException.BAD_USAGE, code);
        assertTrue(err.toString().contains("a GGUF file carries its own vocabulary"), err.toString());
        StringWriter err2 = new StringWriter();
        int code2 = Main.execute(new Io(new ByteArrayOutputStream(), new ByteArrayInputStream(new byte[0])),
                new PrintWriter(new StringWriter()), new PrintWriter(err2, true), "serve",
                TestData.model("stories260K.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                "--chat-template", "t.jinja", "--port", "0");
        assertEquals(Llama2jException.BAD_USAGE, code2);
        assertTrue(err2.toString().contains("--chat-template is for GGUF models"), err2.toString());
    }
}
