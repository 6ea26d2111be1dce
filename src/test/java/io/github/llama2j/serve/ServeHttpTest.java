package io.github.llama2j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.TestData;
import io.github.llama2j.cli.Io;
import io.github.llama2j.cli.Main;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every endpoint and error of {@code llama2j serve} over plain HTTP, and its text against {@code llama2j run}'s. */
class ServeHttpTest {
    static ServeFixture f;

    @BeforeAll
    static void start() {
        f = new ServeFixture();
    }

    @AfterAll
    static void stop() {
        if (f != null) {
            f.close();
        }
    }

    /** {@code llama2j run}'s stdout for these arguments (stories260K, tok512.bin, one thread, no stats). */
    static String run(String... args) {
        List<String> all = new ArrayList<>(List.of("run", TestData.model("stories260K.bin").toString(),
                "-z", TestData.model("tok512.bin").toString(), "--threads", "1", "--no-stats"));
        all.addAll(List.of(args));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        int code = Main.execute(new Io(out, new ByteArrayInputStream(new byte[0])), new PrintWriter(new StringWriter()),
                new PrintWriter(err), all.toArray(String[]::new));
        assertEquals(0, code, () -> "run failed: " + err);
        return out.toString(StandardCharsets.UTF_8);
    }

    static JsonNode ok(HttpResponse<String> r) {
        assertEquals(200, r.statusCode(), r::body);
        return ServeFixture.json(r.body());
    }

    static String completionText(JsonNode response) {
        return response.get("choices").get(0).get("text").asText();
    }

    static String chatText(JsonNode response) {
        return response.get("choices").get(0).get("message").get("content").asText();
    }

    @Test
    void healthAndModels() {
        JsonNode health = ok(f.get("/health"));
        assertEquals("ok", health.get("status").asText());
        JsonNode models = ok(f.get("/v1/models"));
        assertEquals("list", models.get("object").asText());
        assertEquals("stories260K", models.get("data").get(0).get("id").asText());
        assertEquals("model", ok(f.get("/v1/models/stories260K")).get("object").asText());
        assertError(f.get("/v1/models/gpt-4"), 404, "model_not_found");
    }

    /** HTTP requires HEAD wherever GET works: GET's status and headers, no body. */
    @Test
    void headWhereGetWorks() {
        for (String path : new String[]{"/health", "/v1/models", "/v1/models/stories260K"}) {
            HttpResponse<String> head = f.send(HttpRequest.newBuilder(f.uri(path)).HEAD().build());
            assertEquals(200, head.statusCode(), path);
            assertEquals("", head.body(), path);
            assertTrue(head.headers().firstValue("Content-Type").orElse("").startsWith("application/json"), path);
            if (!path.equals("/health")) { // /health's counters may change between the two requests
                assertEquals(f.get(path).body().getBytes(StandardCharsets.UTF_8).length,
                        head.headers().firstValueAsLong("Content-Length").orElse(-1), path);
            }
        }
        assertEquals(404, f.send(HttpRequest.newBuilder(f.uri("/v1/models/gpt-4")).HEAD().build()).statusCode());
        // other methods: 405, with Allow naming both
        for (String path : new String[]{"/health", "/v1/models", "/v1/models/stories260K"}) {
            HttpResponse<String> put = f.send(HttpRequest.newBuilder(f.uri(path)).PUT(HttpRequest.BodyPublishers.ofString("{}")).build());
            assertError(put, 405, "method_not_allowed");
            assertEquals("GET, HEAD", put.headers().firstValue("Allow").orElse(null), path);
        }
        HttpResponse<String> headPost = f.send(HttpRequest.newBuilder(f.uri("/v1/completions")).HEAD().build());
        assertEquals(405, headPost.statusCode());
        assertEquals("POST", headPost.headers().firstValue("Allow").orElse(null));
    }

    /** The id in /v1/models/{id} is compared percent-decoded: an id with a space (and a slash) is found. */
    @Test
    void modelIdInThePathIsDecoded() {
        try (ServeFixture named = new ServeFixture(o -> new ServeOptions(o.host(), o.port(), "org/my model", o.queue(), o.apiKey(), o.maxTokens(), o.maxBodyBytes(),
                o.idleTimeoutMs()))) {
            JsonNode model = ok(named.get("/v1/models/org/my%20model"));
            assertEquals("org/my model", model.get("id").asText());
            assertError(named.get("/v1/models/org/my%20other"), 404, "model_not_found");
            assertTrue(named.get("/v1/models/org/my%20other").body().contains("'org/my other'"));
        }
    }

    @Test
    void completionIsRunsText() {
        String prompt = "Once upon a time";
        int steps = 60;
        for (String temperature : new String[]{"0", "0.8", "1"}) {
            String stdout = run("-i", prompt, "-n", Integer.toString(steps), "-s", "42", "-t", temperature);
            int[] promptTokens = f.tokenizer.encode(prompt, true, false);
            String echo = new String(f.tokenizer.decodeStream(promptTokens), StandardCharsets.UTF_8);
            assertTrue(stdout.startsWith(echo) && stdout.endsWith("\n"), stdout);
            String expected = stdout.substring(echo.length(), stdout.length() - 1);
            int maxTokens = steps - promptTokens.length + 1;
            JsonNode r = ok(f.post("/v1/completions", """
                    {"model": "stories260K", "prompt": "%s", "max_tokens": %d, "seed": 42, "temperature": %s}"""
                    .formatted(prompt, maxTokens, temperature)));
            assertEquals(expected, completionText(r), "temperature " + temperature);
            assertEquals("text_completion", r.get("object").asText());
            JsonNode usage = r.get("usage");
            assertEquals(promptTokens.length, usage.get("prompt_tokens").asInt());
            assertEquals(usage.get("prompt_tokens").asInt() + usage.get("completion_tokens").asInt(), usage.get("total_tokens").asInt());
            String finish = r.get("choices").get(0).get("finish_reason").asText();
            assertEquals(usage.get("completion_tokens").asInt() == maxTokens ? "length" : "stop", finish);
            // streamed: the same text in pieces, then [DONE]
            assertEquals(expected, streamedText("/v1/completions", """
                    {"prompt": "%s", "max_tokens": %d, "seed": 42, "temperature": %s, "stream": true}"""
                    .formatted(prompt, maxTokens, temperature), false));
        }
    }

    @Test
    void topKAndMinPAreRunsOptions() {
        String prompt = "Once upon a time";
        int steps = 60;
        int[] promptTokens = f.tokenizer.encode(prompt, true, false);
        String echo = new String(f.tokenizer.decodeStream(promptTokens), StandardCharsets.UTF_8);
        String plain = null;
        for (String[] filter : new String[][]{{"0", "0"}, {"3", "0"}, {"0", "0.2"}, {"5", "0.05"}}) {
            String stdout = run("-i", prompt, "-n", Integer.toString(steps), "-s", "42", "-t", "1.2", "-p", "1",
                    "--top-k", filter[0], "--min-p", filter[1]);
            String expected = stdout.substring(echo.length(), stdout.length() - 1);
            JsonNode r = ok(f.post("/v1/completions", """
                    {"prompt": "%s", "max_tokens": %d, "seed": 42, "temperature": 1.2, "top_p": 1, "top_k": %s, "min_p": %s}"""
                    .formatted(prompt, steps - promptTokens.length + 1, filter[0], filter[1])));
            assertEquals(expected, completionText(r), "top_k " + filter[0] + ", min_p " + filter[1]);
            if (plain == null) {
                plain = expected;
            } else {
                // the filters change what is sampled at this temperature, so the request's fields were honoured
                assertNotEquals(plain, expected, "top_k " + filter[0] + ", min_p " + filter[1] + " sampled the unfiltered text");
            }
        }
    }

    @Test
    void chatIsRunsChatText() {
        int steps = 80;
        String stdout = run("-m", "chat", "-i", "Tell me a story", "-y", "You are kind.", "-n", Integer.toString(steps), "-s", "7");
        assertTrue(stdout.startsWith("Assistant: "), stdout);
        int promptTokens = f.tokenizer.encode(io.github.llama2j.generate.Llama2Chat.userTurn(
                "You are kind.".getBytes(StandardCharsets.UTF_8), "Tell me a story".getBytes(StandardCharsets.UTF_8)), true, false).length;
        String body = """
                {"messages": [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "Tell me a story"}],
                 "max_tokens": %d, "seed": 7}""".formatted(steps - promptTokens + 1);
        JsonNode r = ok(f.post("/v1/chat/completions", body));
        String text = chatText(r);
        assertFalse(text.isEmpty());
        // run prints the answer, then a newline (at EOS, or at the end of the steps)
        assertTrue(stdout.startsWith("Assistant: " + text + "\n"), () -> "server: " + text + "\nrun: " + stdout);
        assertEquals("chat.completion", r.get("object").asText());
        assertEquals("assistant", r.get("choices").get(0).get("message").get("role").asText());
        assertEquals(promptTokens, r.get("usage").get("prompt_tokens").asInt());
        assertEquals(text, streamedText("/v1/chat/completions", body.replace("\"seed\": 7", "\"seed\": 7, \"stream\": true"), true));
    }

    @Test
    void multiTurnChatAndContentParts() {
        JsonNode r = ok(f.post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                              {"role": "assistant", "content": "Hello."},
                              {"role": "user", "content": "Tell me more"}], "max_tokens": 5, "seed": 3}"""));
        assertEquals(5, r.get("usage").get("completion_tokens").asInt());
        assertEquals("length", r.get("choices").get(0).get("finish_reason").asText());
    }

    /** OpenAI's fields this server does not implement are accepted with the values that mean "off". */
    @Test
    void unsupportedFieldsOff() {
        String off = """
                "logprobs": false, "top_logprobs": 0, "response_format": {"type": "text"}, "tools": [], "functions": [],
                 "tool_choice": "none", "function_call": "none", "frequency_penalty": 0, "presence_penalty": 0.0,
                 "logit_bias": {}, "stream_options": null, "max_tokens": 2""";
        ok(f.post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], " + off + "}"));
        ok(f.post("/v1/completions", "{\"prompt\": \"Hi\", \"echo\": false, \"best_of\": 1, \"suffix\": \"\", " + off + "}"));
        ok(f.post("/v1/completions", "{\"prompt\": \"Hi\", \"logprobs\": null, \"tools\": null, \"max_tokens\": 2}"));
    }

    @Test
    void stopStringsEndTheAnswer() {
        String full = completionText(ok(f.post("/v1/completions", """
                {"prompt": "Once upon a time", "max_tokens": 60, "seed": 5, "temperature": 0}""")));
        int cut = full.indexOf(' ', 20);
        assertTrue(cut > 0, full);
        String stop = full.substring(cut, Math.min(full.length(), cut + 4));
        String expected = full.substring(0, full.indexOf(stop));
        String body = """
                {"prompt": "Once upon a time", "max_tokens": 60, "seed": 5, "temperature": 0, "stop": ["zzzz", %s]}"""
                .formatted(OpenAiServer.JSON.valueToTree(stop).toString());
        JsonNode r = ok(f.post("/v1/completions", body));
        assertEquals(expected, completionText(r));
        assertEquals("stop", r.get("choices").get(0).get("finish_reason").asText());
        assertEquals(expected, streamedText("/v1/completions", body.replace("\"seed\"", "\"stream\": true, \"seed\""), false));
    }

    /** The streamed deltas joined, checking the SSE framing, the chunk objects and the final [DONE]. */
    static String streamedText(String path, String body, boolean chat) {
        return streamedText(f.post(path, body), chat);
    }

    /** The text of a streamed answer, checked to be OpenAI's chunks ending with a finish_reason and [DONE]. */
    static String streamedText(HttpResponse<String> r, boolean chat) {
        assertEquals(200, r.statusCode(), r::body);
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        String[] events = r.body().split("\n\n");
        assertEquals("data: [DONE]", events[events.length - 1]);
        StringBuilder text = new StringBuilder();
        String finish = null;
        for (int i = 0; i < events.length - 1; i++) {
            assertTrue(events[i].startsWith("data: "), events[i]);
            JsonNode chunk = ServeFixture.json(events[i].substring("data: ".length()));
            assertEquals(chat ? "chat.completion.chunk" : "text_completion", chunk.get("object").asText());
            JsonNode choices = chunk.get("choices");
            if (choices.isEmpty()) {
                continue; // the usage chunk
            }
            assertEquals(null, finish, "a chunk after the finish_reason");
            JsonNode c = choices.get(0);
            JsonNode piece = chat ? c.get("delta").get("content") : c.get("text");
            if (piece != null) {
                text.append(piece.asText());
            }
            if (!c.get("finish_reason").isNull()) {
                finish = c.get("finish_reason").asText();
            }
        }
        assertTrue("stop".equals(finish) || "length".equals(finish), "finish_reason " + finish);
        return text.toString();
    }

    @Test
    void streamingUsageChunk() {
        HttpResponse<String> r = f.post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "seed": 1, "stream": true,
                 "stream_options": {"include_usage": true}}""");
        String[] events = r.body().split("\n\n");
        JsonNode usage = ServeFixture.json(events[events.length - 2].substring(6)).get("usage");
        assertEquals(4, usage.get("completion_tokens").asInt());
        assertTrue(events[0].contains("\"role\":\"assistant\""), events[0]);
    }

    static void assertError(HttpResponse<String> r, int status, String code) {
        assertEquals(status, r.statusCode(), r::body);
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"), r.headers().toString());
        JsonNode error = ServeFixture.json(r.body()).get("error");
        assertTrue(error != null && error.get("message").isTextual() && !error.get("message").asText().isBlank(), r.body());
        assertTrue(error.has("type") && error.has("param") && error.has("code"), r.body());
        if (code != null) {
            assertEquals(code, error.get("code").asText(), r.body());
        }
        assertFalse(r.body().contains("Exception") || r.body().contains("\tat ") || r.body().contains("at io."), r.body());
    }

    /** The error message of an error answer, checked to have this status and OpenAI's error shape. */
    static String message(HttpResponse<String> r, int status) {
        assertError(r, status, null);
        return ServeFixture.json(r.body()).get("error").get("message").asText();
    }

    static void assertBadRequest(String path, String body, String param) {
        HttpResponse<String> r = f.post(path, body);
        assertError(r, 400, null);
        JsonNode p = ServeFixture.json(r.body()).get("error").get("param");
        assertEquals(param, p.isNull() ? null : p.asText(), r.body());
    }

    @Test
    void badRequestsGetOpenAiErrors() {
        String chat = "/v1/chat/completions", text = "/v1/completions";
        assertBadRequest(chat, "{\"messages\": [", null);
        assertBadRequest(chat, "", null);
        assertBadRequest(chat, "[1, 2]", null);
        // one JSON object is the whole body, each key once
        for (String notOne : new String[]{"{\"prompt\": \"Hi\"} trailing", "{\"prompt\": \"Hi\"}{\"prompt\": \"Ho\"}",
                "{\"prompt\": \"Hi\"} 5", "{\"prompt\": \"Hi\"}}"}) {
            assertTrue(message(f.post(text, notOne), 400).contains("text follows the JSON object"), notOne);
        }
        assertTrue(message(f.post(text, "{\"prompt\": \"Hi\", \"prompt\": \"Ho\"}"), 400).contains("'prompt'"));
        assertTrue(message(f.post(chat, "{\"messages\": [{\"role\": \"user\", \"role\": \"system\", \"content\": \"x\"}]}"), 400)
                .contains("'role'"));
        assertFalse(message(f.post(chat, "{\"messages\": ["), 400).contains("Source"));
        assertEquals(200, f.post(text, "{\"prompt\": \"Hi\", \"max_tokens\": 1}\n\n").statusCode()); // whitespace may follow
        assertBadRequest(chat, "{}", "messages");
        assertBadRequest(chat, "{\"messages\": []}", "messages");
        assertBadRequest(chat, "{\"messages\": [{\"role\": \"user\"}]}", "messages[0].content");
        assertBadRequest(chat, "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}", "messages[0].role");
        assertBadRequest(chat, "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}", "messages[0].role");
        assertTrue(message(f.post(chat, "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}"), 400)
                .startsWith("messages[0] is an assistant message where a user message was expected"));
        assertBadRequest(chat, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0].content");
        assertEquals("messages[0].content is not a string: give a string or an array of text parts",
                message(f.post(chat, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}"), 400));
        assertBadRequest(chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true,"
                + " \"stream_options\": {\"include_usage\": \"x\"}}", "stream_options.include_usage");
        assertBadRequest(chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}", "messages");
        assertBadRequest(text, "{}", "prompt");
        assertBadRequest(text, "{\"prompt\": 5}", "prompt");
        assertBadRequest(text, "{\"prompt\": \"x\", \"temperature\": \"hot\"}", "temperature");
        assertBadRequest(text, "{\"prompt\": \"x\", \"temperature\": 2.5}", "temperature");
        assertBadRequest(text, "{\"prompt\": \"x\", \"temperature\": -1}", "temperature");
        assertBadRequest(text, "{\"prompt\": \"x\", \"top_p\": 1.5}", "top_p");
        assertBadRequest(text, "{\"prompt\": \"x\", \"top_k\": -1}", "top_k");
        assertBadRequest(text, "{\"prompt\": \"x\", \"top_k\": 2.5}", "top_k");
        assertBadRequest(text, "{\"prompt\": \"x\", \"min_p\": 1.5}", "min_p");
        assertBadRequest(text, "{\"prompt\": \"x\", \"min_p\": \"low\"}", "min_p");
        assertBadRequest(text, "{\"prompt\": \"x\", \"max_tokens\": 0}", "max_tokens");
        assertBadRequest(text, "{\"prompt\": \"x\", \"max_tokens\": 1.5}", "max_tokens");
        assertBadRequest(text, "{\"prompt\": \"x\", \"max_tokens\": 100000}", "max_tokens");
        assertBadRequest(text, "{\"prompt\": \"x\", \"seed\": \"abc\"}", "seed");
        assertBadRequest(text, "{\"prompt\": \"x\", \"n\": 2}", "n");
        assertBadRequest(text, "{\"prompt\": \"x\", \"stream\": \"yes\"}", "stream");
        // fields this server cannot honour: 400 naming them, unless their value means "off" (unsupportedFieldsOff)
        for (String[] c : new String[][]{{"logprobs", "true"}, {"logprobs", "2"}, {"top_logprobs", "3"},
                {"response_format", "{\"type\": \"json_object\"}"}, {"response_format", "\"text\""},
                {"tools", "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]"}, {"tool_choice", "\"auto\""},
                {"functions", "[{\"name\": \"f\"}]"}, {"function_call", "\"auto\""}, {"frequency_penalty", "0.5"},
                {"presence_penalty", "-1"}, {"logit_bias", "{\"50256\": -100}"}, {"echo", "true"}, {"best_of", "2"},
                {"suffix", "\"end\""}, {"stream_options", "{\"include_usage\": true}"}}) {
            String body = "{\"prompt\": \"x\", \"" + c[0] + "\": " + c[1] + "}";
            assertBadRequest(text, body, c[0]);
            assertTrue(message(f.post(text, body), 400).startsWith(c[0] + " "), body);
        }
        assertBadRequest(chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true}", "logprobs");
        assertBadRequest(text, "{\"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "stop");
        assertBadRequest(text, "{\"prompt\": \"x\", \"stop\": [\"\"]}", "stop");
        assertBadRequest(text, "{\"prompt\": \"x\", \"stop\": 3}", "stop");
        // longer than the context: by tokens, and by bytes (rejected before encoding)
        String words = "the cat ".repeat(400);
        assertError(f.post(text, "{\"prompt\": \"" + words + "\"}"), 400, "context_length_exceeded");
        assertError(f.post(text, "{\"prompt\": \"" + "x".repeat(200_000) + "\"}"), 400, "context_length_exceeded");
        HttpResponse<String> longChat = f.post(chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"" + words + "\"}]}");
        assertError(longChat, 400, "context_length_exceeded");
        assertTrue(message(longChat, 400).startsWith("the conversation is "), longChat.body());
        assertError(f.post(text, "{\"model\": \"gpt-4\", \"prompt\": \"x\"}"), 404, "model_not_found");
        // too large a declared body: 413 before the body is read. With "Expect: 100-continue" the client waits for
        // that answer instead of streaming 4 MB into a connection the server closes after answering (a race that
        // once ended in "header parser received no bytes" instead of the 413)
        assertError(f.send(HttpRequest.newBuilder(f.uri(text)).header("Content-Type", "application/json").expectContinue(true)
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"" + "x".repeat(2 << 20) + "\"}")).build()),
                413, "request_too_large");
        // unknown endpoints and methods
        assertError(f.get("/v1/nothing"), 404, "not_found");
        assertError(f.get("/"), 404, "not_found");
        assertError(f.get("/v1/chat/completions"), 405, "method_not_allowed");
        assertError(f.post("/v1/models", "{}"), 405, "method_not_allowed");
        // errors Jetty answers itself (headers too large) are JSON too
        HttpResponse<String> big = f.send(HttpRequest.newBuilder(f.uri("/health")).header("X-Big", "y".repeat(20_000)).GET().build());
        assertEquals(431, big.statusCode(), big::body);
        assertTrue(ServeFixture.json(big.body()).get("error").get("message").isTextual(), big.body());
        // and it keeps serving
        assertEquals("ok", ok(f.get("/health")).get("status").asText());
        assertFalse(f.log.toString().contains("internal error"), f.log::toString);
    }

    /** A body that stops arriving gets 408 after the idle timeout, in plain words (no Java exception's text). */
    @Test
    void aStalledUploadGets408() throws IOException {
        try (ServeFixture quick = new ServeFixture(o -> new ServeOptions(o.host(), o.port(), o.modelId(), o.queue(), o.apiKey(), o.maxTokens(), o.maxBodyBytes(), 1_000));
             Socket s = new Socket(InetAddress.getLoopbackAddress(), quick.server.port())) {
            s.setSoTimeout(30_000);
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 100\r\n\r\n{\"prompt\":").getBytes(StandardCharsets.US_ASCII));
            out.flush(); // 10 of the 100 bytes, then silence
            String answer = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(answer.startsWith("HTTP/1.1 408 "), answer);
            JsonNode error = ServeFixture.json(answer.substring(answer.indexOf("\r\n\r\n") + 4)).get("error");
            assertEquals("request_timeout", error.get("code").asText(), answer);
            assertEquals("invalid_request_error", error.get("type").asText(), answer);
            assertFalse(answer.contains("Exception") || answer.contains("java."), answer);
            assertEquals("ok", ok(quick.get("/health")).get("status").asText());
        }
    }

    @Test
    void apiKeyGuardsAllButHealth() {
        try (ServeFixture keyed = new ServeFixture(o -> o.withApiKey("s3cret"))) {
            assertEquals(200, keyed.get("/health").statusCode());
            assertError(keyed.get("/v1/models"), 401, "invalid_api_key");
            assertError(keyed.post("/v1/completions", "{\"prompt\": \"x\"}"), 401, "invalid_api_key");
            HttpResponse<String> wrong = keyed.send(HttpRequest.newBuilder(keyed.uri("/v1/models"))
                    .header("Authorization", "Bearer nope").GET().build());
            assertError(wrong, 401, "invalid_api_key");
            HttpResponse<String> right = keyed.send(HttpRequest.newBuilder(keyed.uri("/v1/models"))
                    .header("Authorization", "Bearer s3cret").GET().build());
            assertEquals(200, right.statusCode(), right::body);
            assertError(keyed.get("/nothing"), 401, "invalid_api_key"); // no probing of paths without the key
        }
    }

    /** A bind failure whose exception has no message (an unresolved address) is named, never "(null)". */
    @Test
    void aFailedStartNamesItsReason() {
        ServeOptions options = new ServeOptions("nosuchhost.invalid", 0, "stories260K", 1, null, 16, 1 << 20, 60_000);
        var format = new Llama2Format(f.tokenizer, f.model.config().seqLen());
        Llama2jException e = assertThrows(Llama2jException.class,
                () -> OpenAiServer.start(options, f.engine, format, new PrintWriter(new StringWriter())).close());
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertTrue(e.getMessage().startsWith("cannot listen on nosuchhost.invalid:0 (") && !e.getMessage().contains("null"),
                e.getMessage());
    }

    @Test
    void randomSeedsDiffer() {
        String body = "{\"prompt\": \"Once\", \"max_tokens\": 30}";
        String a = completionText(ok(f.post("/v1/completions", body)));
        String b = completionText(ok(f.post("/v1/completions", body)));
        String c = completionText(ok(f.post("/v1/completions", body)));
        assertTrue(!a.equals(b) || !b.equals(c), "three unseeded answers were all the same: " + a);
        assertNotEquals(-1, a.length());
    }
}
