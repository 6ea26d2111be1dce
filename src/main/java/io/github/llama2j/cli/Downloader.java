package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.AtomicFile;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Downloads one file over HTTP(S) without ever leaving half a file behind: the body goes to
 * {@code NAME.<pid>.part} beside the target while its SHA-256 is computed, then the size and hash are
 * checked and the part file is renamed to {@code NAME}. Any failure (HTTP error, interrupted or stalled
 * transfer, size or checksum mismatch, Ctrl-C) deletes the part file and raises a one-line
 * {@link Llama2jException} with exit code {@link Llama2jException#IO_FAILURE}.
 */
public final class Downloader {
    /** A transfer that delivers no byte for this long is abandoned (HttpClient has no read timeout). */
    static final Duration DEFAULT_STALL_TIMEOUT = Duration.ofSeconds(60);

    private final PrintWriter progress;
    private final Duration stallTimeout;

    /** @param progress where the progress bar goes (stderr), or null for none */
    public Downloader(PrintWriter progress) {
        this(progress, DEFAULT_STALL_TIMEOUT);
    }

    Downloader(PrintWriter progress, Duration stallTimeout) {
        this.progress = progress;
        this.stallTimeout = stallTimeout;
    }

    /**
     * Downloads {@code uri} to {@code target}.
     *
     * @param expectedSize   the exact size in bytes, or -1 if unknown
     * @param expectedSha256 lower-case hex SHA-256, or null if unknown
     * @return the SHA-256 (lower-case hex) of the downloaded file
     */
    public String download(URI uri, Path target, long expectedSize, String expectedSha256) {
        String name = String.valueOf(target.getFileName());
        try {
            Files.createDirectories(target.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new Llama2jException(name + ": cannot create directory " + target.toAbsolutePath().getParent() + " (" + e + ")",
                    Llama2jException.IO_FAILURE, e);
        }
        Path part = target.resolveSibling(name + "." + ProcessHandle.current().pid() + ".part");
        return AtomicFile.write(target, part, temp -> fetch(uri, temp, name, expectedSize, expectedSha256));
    }

    private String fetch(URI uri, Path part, String name, long expectedSize, String expectedSha256) throws IOException {
        HttpRequest request = HttpRequest.newBuilder(uri).GET().header("User-Agent", "llama2j").build();
        try (FileChannel out = FileChannel.open(part, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE);
             HttpClient client = HttpClient.newBuilder()
                     .followRedirects(HttpClient.Redirect.NORMAL) // Hugging Face redirects to its CDN
                     .connectTimeout(stallTimeout)
                     .build()) {
            FileSink sink = new FileSink(out, name, uri, expectedSize);
            CompletableFuture<HttpResponse<Void>> response = client.sendAsync(request, sink::start);
            try {
                await(response, sink, name, uri);
            } finally {
                sink.finish(); // ends the progress line, so an error message starts on a line of its own
            }
            if (sink.rejection != null) {
                throw sink.rejection;
            }
            long received = sink.received;
            if (sink.announced >= 0 && received != sink.announced) {
                throw failure(name, uri, "transfer interrupted after " + received + " of " + sink.announced + " bytes", null);
            }
            if (expectedSize >= 0 && received != expectedSize) {
                throw failure(name, uri, "got " + received + " bytes, expected " + expectedSize, null);
            }
            String sha = HexFormat.of().formatHex(sink.digest.digest());
            if (expectedSha256 != null && !expectedSha256.equalsIgnoreCase(sha)) {
                throw failure(name, uri, "SHA-256 mismatch: expected " + expectedSha256 + ", got " + sha + "; file discarded", null);
            }
            return sha;
        }
    }

    /** Waits for the whole body, abandoning the transfer when nothing arrives for the stall timeout. */
    private void await(CompletableFuture<HttpResponse<Void>> response, FileSink sink, String name, URI uri) {
        while (true) {
            try {
                response.get(200, TimeUnit.MILLISECONDS);
                return;
            } catch (TimeoutException e) {
                long idle = System.nanoTime() - sink.lastActivity;
                if (idle > stallTimeout.toNanos()) {
                    sink.cancel();
                    response.cancel(true);
                    throw failure(name, uri, (sink.received == 0 && sink.announced < 0 ? "no response" : "transfer stalled after "
                            + sink.received + " bytes") + " for " + stallTimeout.toSeconds() + " s", null);
                }
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof Llama2jException le) {
                    throw le;
                }
                String what = cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
                throw failure(name, uri, sink.announced >= 0 || sink.received > 0
                        ? "transfer interrupted after " + sink.received + (sink.announced >= 0 ? " of " + sink.announced : "")
                        + " bytes (" + what + ")" : what, cause);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                sink.cancel();
                response.cancel(true);
                throw failure(name, uri, "interrupted", e);
            }
        }
    }

    /**
     * Receives the body: writes each buffer to the part file, hashes it and draws the progress bar.
     * The HTTP client calls it from its own threads, one call at a time (Flow's rules).
     */
    private final class FileSink implements HttpResponse.BodySubscriber<Void> {
        private final FileChannel out;
        private final String name;
        private final URI uri;
        private final long expectedSize;
        private final CompletableFuture<Void> body = new CompletableFuture<>();
        final MessageDigest digest = sha256Digest();
        volatile long received;
        volatile long announced = -1;
        volatile long lastActivity = System.nanoTime();
        private volatile Flow.Subscription subscription;
        private volatile ProgressBar bar;
        /** Set when the status or headers already rule the response out. */
        volatile Llama2jException rejection;

        FileSink(FileChannel out, String name, URI uri, long expectedSize) {
            this.out = out;
            this.name = name;
            this.uri = uri;
            this.expectedSize = expectedSize;
        }

        /** The body handler: sees the status and headers before any byte of the body. */
        HttpResponse.BodySubscriber<Void> start(HttpResponse.ResponseInfo info) {
            lastActivity = System.nanoTime();
            if (info.statusCode() != 200) {
                return reject(failure(name, uri, "HTTP " + info.statusCode(), null));
            }
            long length = info.headers().firstValueAsLong("content-length").orElse(-1);
            if (expectedSize >= 0 && length >= 0 && length != expectedSize) {
                return reject(failure(name, uri, "server announces " + length + " bytes, expected " + expectedSize, null));
            }
            announced = length;
            if (progress != null) {
                bar = new ProgressBar(progress, "downloading " + name, length >= 0 ? length : expectedSize);
            }
            return this;
        }

        private HttpResponse.BodySubscriber<Void> reject(Llama2jException e) {
            rejection = e;
            return HttpResponse.BodySubscribers.discarding();
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            subscription = s;
            s.request(1);
        }

        @Override
        public void onNext(List<ByteBuffer> buffers) {
            try {
                for (ByteBuffer b : buffers) {
                    digest.update(b.duplicate());
                    long n = b.remaining();
                    while (b.hasRemaining()) {
                        out.write(b);
                    }
                    received += n;
                }
            } catch (IOException e) {
                subscription.cancel();
                body.completeExceptionally(new Llama2jException(name + ": cannot write the download to disk (" + e + ")",
                        Llama2jException.IO_FAILURE, e));
                return;
            }
            lastActivity = System.nanoTime();
            if (bar != null) {
                bar.update(received);
            }
            subscription.request(1);
        }

        @Override
        public void onError(Throwable t) {
            body.completeExceptionally(t);
        }

        @Override
        public void onComplete() {
            body.complete(null);
        }

        @Override
        public CompletionStage<Void> getBody() {
            return body;
        }

        void cancel() {
            Flow.Subscription s = subscription;
            if (s != null) {
                s.cancel();
            }
        }

        /** Ends the progress line once the transfer is over. */
        void finish() {
            if (bar != null) {
                bar.finish();
            }
        }
    }

    private static Llama2jException failure(String name, URI uri, String why, Throwable cause) {
        return new Llama2jException(name + ": download from " + uri + " failed: " + why, Llama2jException.IO_FAILURE, cause);
    }

    /** SHA-256 of a file, lower-case hex. */
    public static String sha256(Path file) throws IOException {
        MessageDigest digest = sha256Digest();
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
            while (in.read(b) >= 0) {
                b.flip();
                digest.update(b);
                b.clear();
            }
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    private static MessageDigest sha256Digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }
}
