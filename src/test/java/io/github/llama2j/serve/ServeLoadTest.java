package io.github.llama2j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Many clients on one engine: 16 clients × 8 requests get complete answers equal to the single-client
 * ones; clients that hang up mid-stream stop their generation and the server goes on; a full queue
 * answers 503 with Retry-After while the accepted requests still complete. Bounded: every wait has a
 * timeout, and the whole test runs in seconds on stories260K.
 */
class ServeLoadTest {
    static final int CLIENTS = 16;
    static final int REQUESTS_PER_CLIENT = 8;
    static final int KINDS = 8;
    static final Duration LIMIT = Duration.ofSeconds(120);

    /** Request kind k: chat or completion, its own seed, streamed or not as asked. */
    static String body(int k, boolean stream) {
        String common = "\"max_tokens\": 16, \"seed\": " + (100 + k) + ", \"temperature\": 0.9, \"stream\": " + stream;
        return k % 2 == 0
                ? "{\"messages\": [{\"role\": \"user\", \"content\": \"Story number " + k + "\"}], " + common + "}"
                : "{\"prompt\": \"Once upon a time " + k + "\", " + common + "}";
    }

    static String path(int k) {
        return k % 2 == 0 ? "/v1/chat/completions" : "/v1/completions";
    }

    /** The answer's text, from a JSON response or an SSE stream (which must end with [DONE]). */
    static String text(HttpResponse<String> r, int k, boolean stream) {
        assertEquals(200, r.statusCode(), r::body);
        boolean chat = k % 2 == 0;
        if (!stream) {
            JsonNode c = ServeFixture.json(r.body()).get("choices").get(0);
            return chat ? c.get("message").get("content").asText() : c.get("text").asText();
        }
        String[] events = r.body().split("\n\n");
        assertEquals("data: [DONE]", events[events.length - 1], r.body());
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < events.length - 1; i++) {
            JsonNode c = ServeFixture.json(events[i].substring("data: ".length())).get("choices").get(0);
            JsonNode piece = chat ? c.get("delta").get("content") : c.get("text");
            if (piece != null) {
                text.append(piece.asText());
            }
        }
        return text.toString();
    }

    @Test
    void manyClientsHangUpsAndAFullQueue() throws Exception {
        long start = System.nanoTime();
        try (ServeFixture f = new ServeFixture(o -> o.withQueue(CLIENTS));
             ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
            // single-client answers
            String[] expected = new String[KINDS];
            for (int k = 0; k < KINDS; k++) {
                expected[k] = text(f.post(path(k), body(k, false)), k, false);
                assertTrue(!expected[k].isEmpty(), "kind " + k);
            }
            for (int k = 0; k < KINDS; k++) {
                assertEquals(expected[k], text(f.post(path(k), body(k, true)), k, true), "streamed, kind " + k);
            }
            System.err.printf("load: single-client answers at %.1f s (start-up and JIT included)%n", (System.nanoTime() - start) / 1e9);
            // 16 clients × 8 requests, streamed and not, all at once
            List<Future<?>> running = new ArrayList<>();
            for (int c = 0; c < CLIENTS; c++) {
                int client = c;
                running.add(clients.submit(() -> {
                    for (int i = 0; i < REQUESTS_PER_CLIENT; i++) {
                        int k = (client + i) % KINDS;
                        boolean stream = (client + i) % 3 == 0;
                        assertEquals(expected[k], text(f.post(path(k), body(k, stream)), k, stream),
                                "client " + client + " request " + i);
                    }
                    return null;
                }));
            }
            for (Future<?> r : running) {
                r.get(LIMIT.toSeconds(), TimeUnit.SECONDS);
            }
            System.err.printf("load: %d requests in %.1f s%n", CLIENTS * REQUESTS_PER_CLIENT, (System.nanoTime() - start) / 1e9);
            JsonNode health = ServeFixture.json(f.get("/health").body());
            assertEquals(2 * KINDS + CLIENTS * REQUESTS_PER_CLIENT, health.get("completed").asInt(), health::toString);

            // clients that hang up after their first piece of text: their generations stop early
            f.engine.sleepMillis = 2; // 500 tokens take a second or more
            int forwardsBefore = f.engine.forwards.get();
            int hangUps = 6;
            List<Future<?>> hangers = new ArrayList<>();
            for (int c = 0; c < hangUps; c++) {
                hangers.add(clients.submit(() -> {
                    hangUpAfterFirstText(f.server.port());
                    return null;
                }));
            }
            for (Future<?> h : hangers) {
                h.get(LIMIT.toSeconds(), TimeUnit.SECONDS);
            }
            waitFor(() -> ServeFixture.json(f.get("/health").body()).get("cancelled").asInt() == hangUps, "cancelled jobs");
            int forwards = f.engine.forwards.get() - forwardsBefore;
            // each would have run ~500 positions; stopped at the next token, each runs a few dozen at most
            assertTrue(forwards < hangUps * 150, "forward passes of the hung-up requests: " + forwards);
            System.err.printf("load: hang-ups done at %.1f s, %d forwards%n", (System.nanoTime() - start) / 1e9, forwards);
            f.engine.sleepMillis = 0;
            assertEquals(expected[3], text(f.post(path(3), body(3, true)), 3, true), "served after the hang-ups");
        }
        // a full queue: one request generating (held by a gate), one waiting, the next ones get 503
        try (ServeFixture f = new ServeFixture(o -> o.withQueue(1));
             ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
            String expected1 = text(f.post(path(1), body(1, false)), 1, false);
            f.engine.gate = new Semaphore(0);
            List<Future<HttpResponse<String>>> accepted = new ArrayList<>();
            accepted.add(clients.submit(() -> f.post(path(1), body(1, false))));
            waitFor(() -> ServeFixture.json(f.get("/health").body()).get("generating").asBoolean(), "the first request running");
            accepted.add(clients.submit(() -> f.post(path(1), body(1, true))));
            waitFor(() -> ServeFixture.json(f.get("/health").body()).get("waiting").asInt() == 1, "the second request waiting");
            for (boolean stream : new boolean[]{false, true}) {
                HttpResponse<String> busy = f.post(path(1), body(1, stream));
                ServeHttpTest.assertError(busy, 503, "server_busy");
                assertEquals("1", busy.headers().firstValue("Retry-After").orElse(null));
            }
            f.engine.gate.release(1_000_000);
            assertEquals(expected1, text(accepted.get(0).get(LIMIT.toSeconds(), TimeUnit.SECONDS), 1, false));
            assertEquals(expected1, text(accepted.get(1).get(LIMIT.toSeconds(), TimeUnit.SECONDS), 1, true));
            f.engine.gate = null;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        assertTrue(seconds < LIMIT.toSeconds(), "took " + seconds + " s");
    }

    /** A request that waits in the queue longer than the idle timeout is still answered, streamed or not. */
    @Test
    void waitingIsNotIdle() throws Exception {
        try (ServeFixture f = new ServeFixture(o -> new ServeOptions(o.host(), o.port(), o.modelId(), 4, null, o.maxTokens(),
                o.maxBodyBytes(), 1_000));
             ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
            String expected = text(f.post(path(1), body(1, false)), 1, false);
            f.engine.gate = new Semaphore(0);
            Future<HttpResponse<String>> plain = clients.submit(() -> f.post(path(1), body(1, false)));
            Future<HttpResponse<String>> streamed = clients.submit(() -> f.post(path(1), body(1, true)));
            waitFor(() -> ServeFixture.json(f.get("/health").body()).get("waiting").asInt() == 1, "one running, one waiting");
            Thread.sleep(3_000); // three idle timeouts
            f.engine.gate.release(1_000_000);
            assertEquals(expected, text(plain.get(LIMIT.toSeconds(), TimeUnit.SECONDS), 1, false));
            assertEquals(expected, text(streamed.get(LIMIT.toSeconds(), TimeUnit.SECONDS), 1, true));
            f.engine.gate = null;
        }
    }

    /** A raw HTTP/1.1 client that asks for a long stream, reads until the first text, then closes the socket. */
    static void hangUpAfterFirstText(int port) throws IOException {
        byte[] body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 500, \"seed\": 9, \"stream\": true}"
                .getBytes(StandardCharsets.UTF_8);
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), port)) {
            s.setSoTimeout((int) LIMIT.toMillis());
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            InputStream in = s.getInputStream();
            StringBuilder seen = new StringBuilder();
            byte[] buf = new byte[4096];
            while (!seen.toString().contains("\"text\":\"")) {
                int n = in.read(buf);
                if (n < 0) {
                    throw new AssertionError("stream ended before any text: " + seen);
                }
                seen.append(new String(buf, 0, n, StandardCharsets.UTF_8));
            }
            assertTrue(seen.toString().startsWith("HTTP/1.1 200"), seen::toString);
        }
    }

    static void waitFor(java.util.function.BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + LIMIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(5);
        }
    }

}
