package io.github.llama2j.cli;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code llama2j serve}'s option checks: each is refused before anything listens (exit 2, one line, no trace). */
class ServeCommandTest {

    record Result(int code, String out, String err) {
    }

    static Result serve(String... args) {
        List<String> all = new ArrayList<>(List.of("serve"));
        all.addAll(List.of(args));
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new Io(new ByteArrayOutputStream(), new ByteArrayInputStream(new byte[0])),
                new PrintWriter(out, true), new PrintWriter(err, true), all.toArray(String[]::new));
        return new Result(code, out.toString(), err.toString());
    }

    /**
     * {@link #serve}, for a command line that must be refused: within a minute, since a server that started
     * would listen until the JVM ends (the failure then leaves it running in the background).
     */
    static Result refused(String... args) {
        return assertTimeoutPreemptively(Duration.ofSeconds(60), () -> serve(args), () -> "serve started: " + String.join(" ", args));
    }

    @Test
    void badOptionsAreRefusedBeforeListening() {
        String model = TestData.model("stories260K.bin").toString();
        String tok = TestData.model("tok512.bin").toString();
        String[][] cases = {
                {"--port", "-1"}, {"--port", "70000"}, {"--queue", "-1"}, {"--queue", "100001"}, {"--max-tokens", "-5"},
                {"--max-body", "10"}, {"--idle-timeout", "0"}, {"--host", " "}, {"--model-name", ""}, {"--threads", "0"},
                {"--api-key", ""}, {"--api-key", " "}, {"--host", "999.1.1.1"},
        };
        for (String[] c : cases) {
            List<String> args = new ArrayList<>(List.of(model, "-z", tok));
            args.addAll(List.of(c));
            Result r = refused(args.toArray(String[]::new));
            assertEquals(2, r.code(), () -> String.join(" ", c) + ": " + r.err());
            assertTrue(r.err().startsWith("llama2j: ") && r.err().strip().lines().count() == 1, r.err());
        }
        Result missing = serve("no-such-model.bin");
        assertTrue(missing.code() == 2 || missing.code() == 4, missing::toString);
        assertEquals(2, serve(model, "--port", "x").code());
    }

    /**
     * LLAMA2J_API_KEY set but empty is refused as an empty --api-key is (it used to turn authentication off);
     * unset, it means no key ({@link #startsAnswersAndStopsOnSigterm} runs without it).
     */
    @Test
    void anEmptyApiKeyVariableIsRefused(@TempDir Path dir) throws Exception {
        List<String> command = new ArrayList<>(javaCommand());
        command.addAll(List.of(TestData.model("stories260K.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                "--threads", "1", "--port", "0"));
        Path errFile = dir.resolve("stderr.txt");
        ProcessBuilder pb = new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(errFile.toFile());
        pb.environment().put("LLAMA2J_API_KEY", "");
        Process p = pb.start();
        try {
            boolean exited = p.waitFor(60, TimeUnit.SECONDS); // a server that started would never exit
            String err = Files.readString(errFile);
            assertTrue(exited, () -> "serve started with an empty key: " + err);
            assertEquals(2, p.exitValue(), err);
            assertTrue(err.contains("llama2j: LLAMA2J_API_KEY is set but empty"), err);
        } finally {
            p.destroyForcibly();
        }
    }

    /** A host that does not resolve is a usage error found before the model is loaded, with its reason. */
    @Test
    void anUnknownHostIsAUsageError() {
        for (String host : new String[]{"999.1.1.1", "nosuchhost.invalid"}) {
            Result r = refused(TestData.model("stories260K.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                    "--threads", "1", "--port", "0", "--host", host);
            assertEquals(2, r.code(), r::toString);
            assertTrue(r.err().startsWith("llama2j: --host " + host + ": unknown host"), r.err());
            assertTrue(r.err().strip().lines().count() == 1 && !r.err().contains("null"), r.err());
        }
    }

    /** The server's own --chat-template that does not parse is refused at start-up (was: every chat request got a 400). */
    @Test
    void aBrokenChatTemplateIsRefusedAtStartUp(@TempDir Path dir) throws Exception {
        Path broken = java.nio.file.Files.writeString(dir.resolve("broken.jinja"), "{% for m in messages %}{{ m.content }}");
        Result r = refused(TestData.gguf().resolve("models/llama2-tiny-q4_k_m.gguf").toString(), "--threads", "1", "--port", "0",
                "--chat-template", broken.toString());
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().startsWith("llama2j: " + broken + ": chat template does not parse"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
    }

    /** A --max-tokens beyond the context could never be honoured: refused once the model's seq_len is known. */
    @Test
    void maxTokensBeyondTheContextIsRefused() {
        Result r = refused(TestData.model("stories260K.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                "--threads", "1", "--port", "0", "--max-tokens", "100000");
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().startsWith("llama2j: ") && r.err().strip().lines().count() == 1, r.err());
        assertTrue(r.err().contains("100000") && r.err().contains("512"), r.err());
    }

    @Test
    void aTakenPortIsAnIoFailure() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Result r = serve(TestData.model("stories260K.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                    "--threads", "1", "--port", Integer.toString(taken.getLocalPort()));
            assertEquals(4, r.code(), r::toString);
            assertTrue(r.err().contains("cannot listen on 127.0.0.1:" + taken.getLocalPort()), r.err());
            assertFalse(r.err().contains("\tat "), r.err());
        }
    }

    /**
     * The command end to end, in its own JVM as a user starts it: it prints where it listens, answers,
     * and stops on SIGTERM (its shutdown hook closes the server).
     */
    @Test
    void startsAnswersAndStopsOnSigterm() throws Exception {
        String line = serveInJvm(List.of(TestData.model("stories260K.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                "--threads", "1", "--port", "0", "--model-name", "tiny-stories"), base -> {
            HttpResponse<String> models = HttpClient.newHttpClient().send(
                    HttpRequest.newBuilder(URI.create(base + "/models")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, models.statusCode());
            assertTrue(models.body().contains("\"id\":\"tiny-stories\""), models.body());
        });
        assertTrue(line.startsWith("llama2j serve: tiny-stories on the cpu"), line);
    }

    /** A GGUF model: the command picks its tokenizer and chat template; the greedy answer is llama.cpp's golden text. */
    @SuppressWarnings("unchecked")
    @Test
    void servesAGgufModel() throws Exception {
        Map<String, Object> golden = ((List<Map<String, Object>>) Json.read(TestData.gguf().resolve("golden")
                .resolve("qwen2-tiny-q8_0.json")).get("chat_cases")).stream()
                .filter(c -> c.get("id").equals("chat_system_user")).findFirst().orElseThrow();
        String body = "{\"messages\": " + JSON.valueToTree(golden.get("messages"))
                + ", \"max_tokens\": 16, \"temperature\": 0}";
        serveInJvm(List.of(TestData.gguf().resolve("models").resolve("qwen2-tiny-q8_0.gguf").toString(), "--threads", "1",
                "--port", "0"), base -> {
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(base + "/chat/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r::body);
            var answer = JSON.readTree(r.body()).get("choices").get(0);
            assertEquals(golden.get("generated_text"), answer.get("message").get("content").asText());
            assertEquals("length", answer.get("finish_reason").asText());
        });
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    private interface Check {
        void run(String baseUri) throws Exception;
    }

    /**
     * The command end to end, in its own JVM as a user starts it: it prints where it listens, answers
     * {@code check}, and stops on SIGTERM (its shutdown hook closes the server). Returns the "listening" line.
     */
    private static String serveInJvm(List<String> args, Check check) throws Exception {
        List<String> command = new ArrayList<>(javaCommand());
        command.addAll(args);
        Process p = new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        try {
            BufferedReader err = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8));
            CompletableFuture<String> listening = CompletableFuture.supplyAsync(() -> {
                try {
                    for (String line; (line = err.readLine()) != null; ) {
                        if (line.contains("listening on")) {
                            return line;
                        }
                    }
                    return null;
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            String line = listening.get(120, TimeUnit.SECONDS);
            assertTrue(line != null, "serve did not start");
            Matcher m = Pattern.compile("http://127\\.0\\.0\\.1:(\\d+)/v1").matcher(line);
            assertTrue(m.find(), line);
            check.run(m.group());
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "serve did not stop on SIGTERM");
            return line;
        } finally {
            p.destroyForcibly();
        }
    }

    /** {@code llama2j serve} in a JVM of its own, with this test's class path; the arguments follow. */
    private static List<String> javaCommand() {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        return List.of(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "serve");
    }

    @Test
    void helpNamesTheOptions() {
        Result r = serve("--help");
        assertEquals(0, r.code());
        for (String option : new String[]{"--host", "--port", "--queue", "--api-key", "--max-tokens", "--max-body", "--engine"}) {
            assertTrue(r.out().contains(option), option);
        }
    }

    @Test
    void theModelIdIsTheFileStem() {
        assertEquals("stories260K", ServeCommand.stem(Path.of("/m/stories260K.bin")));
        assertEquals("model.q8", ServeCommand.stem(Path.of("model.q8.gguf")));
        assertEquals("noext", ServeCommand.stem(Path.of("noext")));
    }
}
