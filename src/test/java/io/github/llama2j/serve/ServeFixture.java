package io.github.llama2j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.llama2j.TestData;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.tokenizer.Tokenizer;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A server over stories260K (tok512.bin) on a loopback port chosen by the system, with one CPU thread,
 * and an engine wrapper that counts forward passes and can hold them (a gate) or slow them down.
 */
final class ServeFixture implements AutoCloseable {
    final Model model;
    final Tokenizer tokenizer;
    final CountingEngine engine;
    final OpenAiServer server;
    final StringWriter log = new StringWriter();
    final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();

    ServeFixture(java.util.function.UnaryOperator<ServeOptions> configure) {
        model = ModelLoader.load(TestData.model("stories260K.bin"));
        tokenizer = Tokenizer.load(TestData.model("tok512.bin"), model.config().vocabSize());
        engine = new CountingEngine(Engines.create(model, EngineOptions.cpu(1, false)));
        ServeOptions options = configure.apply(ServeOptions.loopback(0, "stories260K", model.config().seqLen()));
        server = OpenAiServer.start(options, engine, new Llama2Format(tokenizer, model.config().seqLen()),
                new PrintWriter(log, true));
    }

    ServeFixture() {
        this(o -> o);
    }

    URI uri(String path) {
        return URI.create("http://127.0.0.1:" + server.port() + path);
    }

    HttpResponse<String> post(String path, String body) {
        return send(HttpRequest.newBuilder(uri(path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build());
    }

    HttpResponse<String> get(String path) {
        return send(HttpRequest.newBuilder(uri(path)).GET().build());
    }

    HttpResponse<String> send(HttpRequest request) {
        try {
            return http.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    static JsonNode json(String text) {
        try {
            return OpenAiServer.JSON.readTree(text);
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + text, e);
        }
    }

    @Override
    public void close() {
        server.close();
        engine.close();
        model.close();
    }

    /** Counts forward passes; each may wait for a gate permit and sleep. */
    static final class CountingEngine implements InferenceEngine {
        final InferenceEngine inner;
        final AtomicInteger forwards = new AtomicInteger();
        volatile Semaphore gate;
        volatile long sleepMillis;

        CountingEngine(InferenceEngine inner) {
            this.inner = inner;
        }

        @Override
        public String name() {
            return inner.name();
        }

        @Override
        public Configuration config() {
            return inner.config();
        }

        @Override
        public float[] forward(int token, int pos) {
            Semaphore g = gate;
            try {
                if (g != null) {
                    g.acquire();
                }
                if (sleepMillis > 0) {
                    Thread.sleep(sleepMillis);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            forwards.incrementAndGet();
            return inner.forward(token, pos);
        }

        @Override
        public void reset() {
            inner.reset();
        }

        @Override
        public void close() {
            inner.close();
        }
    }
}
