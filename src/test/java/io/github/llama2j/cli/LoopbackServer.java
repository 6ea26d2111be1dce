package io.github.llama2j.cli;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/** A tiny HTTP server on 127.0.0.1 (random port) serving fixed bodies, with failure modes for download tests. */
final class LoopbackServer implements AutoCloseable {
    enum Mode { OK, CHUNKED, TRUNCATED, STALLED, NOT_FOUND }

    private record Entry(byte[] body, Mode mode) {
    }

    private final HttpServer server;
    private final Map<String, Entry> entries = new ConcurrentHashMap<>();
    private final Map<String, String> redirects = new ConcurrentHashMap<>();
    final AtomicInteger requests = new AtomicInteger();
    /** Released on close: stalled handlers wait for it. */
    private final java.util.concurrent.CountDownLatch stalled = new java.util.concurrent.CountDownLatch(1);
    private final java.util.concurrent.ExecutorService executor = java.util.concurrent.Executors.newCachedThreadPool();

    LoopbackServer() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::handle);
        server.setExecutor(executor);
        server.start();
    }

    LoopbackServer serve(String path, byte[] body, Mode mode) {
        entries.put(path, new Entry(body, mode));
        return this;
    }

    LoopbackServer redirect(String from, String to) {
        redirects.put(from, to);
        return this;
    }

    String baseUrl() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    private void handle(HttpExchange ex) throws IOException {
        requests.incrementAndGet();
        String path = ex.getRequestURI().getPath();
        String target = redirects.get(path);
        if (target != null) {
            ex.getResponseHeaders().add("Location", target);
            ex.sendResponseHeaders(302, -1);
            ex.close();
            return;
        }
        Entry e = entries.get(path);
        if (e == null || e.mode() == Mode.NOT_FOUND) {
            ex.sendResponseHeaders(404, -1);
            ex.close();
            return;
        }
        switch (e.mode()) {
            case OK -> {
                ex.sendResponseHeaders(200, e.body().length);
                try (OutputStream o = ex.getResponseBody()) {
                    o.write(e.body());
                }
            }
            case CHUNKED -> { // no Content-Length
                ex.sendResponseHeaders(200, 0);
                try (OutputStream o = ex.getResponseBody()) {
                    o.write(e.body());
                }
            }
            case TRUNCATED -> { // announce the whole body, send half, hang up
                ex.sendResponseHeaders(200, e.body().length);
                OutputStream o = ex.getResponseBody();
                o.write(e.body(), 0, e.body().length / 2);
                o.flush();
                // closing the stream would leave the connection open; a handler that throws makes the server drop it
                throw new IOException("test server hangs up mid-body");
            }
            case STALLED -> { // announce the whole body, send half, then go silent without closing
                ex.sendResponseHeaders(200, e.body().length);
                OutputStream o = ex.getResponseBody();
                o.write(e.body(), 0, e.body().length / 2);
                o.flush();
                try {
                    stalled.await();
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                }
                throw new IOException("test server gives up");
            }
            default -> throw new IllegalStateException();
        }
    }

    @Override
    public void close() {
        stalled.countDown();
        server.stop(0);
        executor.shutdownNow();
    }
}
