package io.github.llama2j.cli;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A tiny HTTP server on 127.0.0.1 (random port) serving fixed bodies, with failure modes for download tests. */
final class LoopbackServer implements AutoCloseable {
    /**
     * OK: the body (ignoring any Range header); CHUNKED: without Content-Length; TRUNCATED: announce the
     * body, send half, hang up; STALLED: announce it, send half, go silent; NOT_FOUND: 404; RANGES: honour
     * {@code Range: bytes=N-} (206 with Content-Range, 416 past the end); CUT_ONCE: TRUNCATED on the first
     * request, then RANGES.
     */
    enum Mode { OK, CHUNKED, TRUNCATED, STALLED, NOT_FOUND, RANGES, CUT_ONCE }

    private record Entry(byte[] body, Mode mode) {
    }

    private final HttpServer server;
    private final Map<String, Entry> entries = new ConcurrentHashMap<>();
    private final Map<String, String> redirects = new ConcurrentHashMap<>();
    final AtomicInteger requests = new AtomicInteger();
    /** The Range header of every request, in order ("" for none). */
    final List<String> ranges = new CopyOnWriteArrayList<>();
    private final Set<String> cut = ConcurrentHashMap.newKeySet();
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
        String range = ex.getRequestHeaders().getFirst("Range");
        ranges.add(range == null ? "" : range);
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
        Mode mode = e.mode();
        if (mode == Mode.CUT_ONCE) {
            mode = cut.add(path) ? Mode.TRUNCATED : Mode.RANGES;
        }
        if (mode == Mode.RANGES) {
            Matcher m = range == null ? null : Pattern.compile("bytes=(\\d+)-").matcher(range);
            if (m == null || !m.matches()) {
                mode = Mode.OK;
            } else {
                int start = (int) Math.min(Integer.MAX_VALUE, Long.parseLong(m.group(1)));
                int length = e.body().length;
                if (start >= length) {
                    ex.getResponseHeaders().add("Content-Range", "bytes */" + length);
                    ex.sendResponseHeaders(416, -1);
                    ex.close();
                    return;
                }
                ex.getResponseHeaders().add("Content-Range", "bytes " + start + "-" + (length - 1) + "/" + length);
                ex.sendResponseHeaders(206, length - start);
                try (OutputStream o = ex.getResponseBody()) {
                    o.write(e.body(), start, length - start);
                }
                return;
            }
        }
        switch (mode) {
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
