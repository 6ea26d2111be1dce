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
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Downloads one file over HTTP(S) without ever leaving half a file behind: the body goes to
 * {@code NAME.<pid>.part} beside the target while its SHA-256 is computed, then the size and hash are
 * checked and the part file is renamed to {@code NAME}. Any failure (HTTP error, interrupted or stalled
 * transfer, size or checksum mismatch, Ctrl-C) deletes the part file and raises a one-line
 * {@link Llama2jException} with exit code {@link Llama2jException#IO_FAILURE}.
 *
 * <p>{@link #downloadResumable} instead keeps {@code NAME.part} when a transfer is cut (connection
 * lost, stalled, Ctrl-C) and continues it on the next call with an HTTP range request; a server that
 * ignores the range (200 instead of 206) makes it start over.
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
        return AtomicFile.write(target, part, temp -> fetch(uri, temp, name, expectedSize, expectedSha256, null));
    }

    /**
     * Downloads {@code uri} to {@code target} through {@code NAME.part}, resuming what an earlier cut-off
     * call left there. When this transfer is cut too, the part file is kept (the message says so) and
     * the next call resumes it; any other failure (HTTP error, size or checksum mismatch) deletes it.
     * Two processes cannot write one part file: the second fails (it is locked).
     *
     * @param expectedSize   the exact size in bytes, or -1 if unknown
     * @param expectedSha256 lower-case hex SHA-256, or null if unknown
     * @return the SHA-256 (lower-case hex) of the downloaded file
     */
    public String downloadResumable(URI uri, Path target, long expectedSize, String expectedSha256) {
        String name = String.valueOf(target.getFileName());
        Path dir = target.toAbsolutePath().getParent();
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new Llama2jException(name + ": cannot create directory " + dir + " (" + e + ")", Llama2jException.IO_FAILURE, e);
        }
        Path part = partFile(target);
        try {
            return resumeInto(uri, target, part, name, expectedSize, expectedSha256);
        } catch (RangeRefused e) {
            return resumeInto(uri, target, part, name, expectedSize, expectedSha256); // the part file is gone: from the start
        }
    }

    /** The server refused to resume from the part file, which was deleted. */
    private static final class RangeRefused extends RuntimeException {
        RangeRefused(Llama2jException cause) {
            super(cause);
        }
    }

    private String resumeInto(URI uri, Path target, Path part, String name, long expectedSize, String expectedSha256) {
        Resume resume = new Resume();
        boolean done = false;
        try {
            String sha = fetch(uri, part, name, expectedSize, expectedSha256, resume);
            AtomicFile.move(part, target);
            done = true;
            return sha;
        } catch (IOException e) {
            throw new Llama2jException(name + ": cannot write " + part + " (" + e + ")", Llama2jException.IO_FAILURE, e);
        } catch (Llama2jException e) {
            if (resume.restart && resume.kept > 0) {
                AtomicFile.deleteQuietly(part);
                throw new RangeRefused(e);
            }
            if (resume.keep && resume.kept > 0) {
                throw new Llama2jException(e.getMessage() + "; " + resume.kept + " bytes kept in " + part.getFileName()
                        + ", run again to resume", e.exitCode(), e);
            }
            throw e;
        } finally {
            if (!done && !(resume.keep && resume.kept > 0) && resume.owned) {
                AtomicFile.deleteQuietly(part);
            }
        }
    }

    /** Where {@link #downloadResumable} keeps an unfinished download of {@code target}. */
    static Path partFile(Path target) {
        return target.resolveSibling(target.getFileName() + ".part");
    }

    /** What a resumable transfer did with its part file. */
    private static final class Resume {
        /** This call holds the part file's lock (so it may delete it). */
        boolean owned;
        /** The failure was a cut transfer: keep the part file for the next call. */
        boolean keep;
        /** Bytes in the part file when the transfer ended. */
        long kept;
        /** The server refused the range: the part file is no use, start over. */
        boolean restart;
    }

    /** Downloads into {@code part}: from scratch when {@code resume} is null, else continuing what it holds. */
    private String fetch(URI uri, Path part, String name, long expectedSize, String expectedSha256, Resume resume)
            throws IOException {
        try (FileChannel out = resume == null
                ? FileChannel.open(part, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)
                : FileChannel.open(part, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
             FileLock lock = resume == null ? null : lock(out, part, name);
             HttpClient client = HttpClient.newBuilder()
                     .followRedirects(HttpClient.Redirect.NORMAL) // Hugging Face redirects to its CDN
                     .connectTimeout(stallTimeout)
                     .build()) {
            long offset = 0;
            if (resume != null) {
                resume.owned = true;
                offset = out.size();
                if (expectedSize >= 0 && offset > expectedSize) {
                    out.truncate(0); // longer than the file can be: not a prefix of it
                    offset = 0;
                }
            }
            HttpRequest.Builder request = HttpRequest.newBuilder(uri).GET().header("User-Agent", "llama2j");
            if (offset > 0) {
                request.header("Range", "bytes=" + offset + "-");
            }
            FileSink sink = new FileSink(out, name, uri, expectedSize, offset);
            if (offset > 0) {
                sink.hashPrefix(offset); // before the request: hashing a large part file is no stall
            }
            sink.lastActivity = System.nanoTime();
            CompletableFuture<HttpResponse<Void>> response = client.sendAsync(request.build(), sink::start);
            try {
                await(response, sink, name, uri);
            } catch (Llama2jException e) {
                if (resume != null) {
                    resume.keep = sink.cut;
                    resume.kept = sink.received;
                }
                throw e;
            } finally {
                sink.finish(); // ends the progress line, so an error message starts on a line of its own
            }
            if (sink.rejection != null) {
                if (resume != null) {
                    resume.keep = sink.cut;
                    resume.kept = offset;
                    resume.restart = sink.rangeRefused;
                }
                throw sink.rejection;
            }
            long received = sink.received;
            if (sink.announced >= 0 && received < sink.announced && resume != null) {
                resume.keep = true;
                resume.kept = received;
            }
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

    private static FileLock lock(FileChannel out, Path part, String name) throws IOException {
        FileLock lock;
        try {
            lock = out.tryLock();
        } catch (OverlappingFileLockException e) {
            lock = null;
        }
        if (lock == null) {
            throw new Llama2jException(name + ": another download is writing " + part + " (it is locked); wait for it to finish",
                    Llama2jException.IO_FAILURE);
        }
        return lock;
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
                    sink.cut = true;
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
                String what = describe(cause);
                sink.cut = true; // connection refused or lost: worth trying again
                throw failure(name, uri, sink.announced >= 0 || sink.received > 0
                        ? "transfer interrupted after " + sink.received + (sink.announced >= 0 ? " of " + sink.announced : "")
                        + " bytes (" + what + ")" : "cannot connect (" + what + "); offline? give a file path, or put the file in"
                        + " $LLAMA2J_MODELS", cause);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                sink.cut = true;
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
        /** Bytes already in the part file, asked for with a range request (0: none). */
        private final long offset;
        private final CompletableFuture<Void> body = new CompletableFuture<>();
        final MessageDigest digest = sha256Digest();
        /** Bytes in the part file: the resumed prefix and what arrived. */
        volatile long received;
        /** The transfer was cut (lost, stalled, interrupted, server error) rather than refused. */
        volatile boolean cut;
        /** The server answered the range request with 416 Range Not Satisfiable. */
        volatile boolean rangeRefused;
        volatile long announced = -1;
        volatile long lastActivity = System.nanoTime();
        private volatile Flow.Subscription subscription;
        private volatile ProgressBar bar;
        /** Set when the status or headers already rule the response out. */
        volatile Llama2jException rejection;

        FileSink(FileChannel out, String name, URI uri, long expectedSize, long offset) {
            this.out = out;
            this.name = name;
            this.uri = uri;
            this.expectedSize = expectedSize;
            this.offset = offset;
        }

        /** The body handler: sees the status and headers before any byte of the body. */
        HttpResponse.BodySubscriber<Void> start(HttpResponse.ResponseInfo info) {
            lastActivity = System.nanoTime();
            long length = info.headers().firstValueAsLong("content-length").orElse(-1);
            long total;
            long start = 0;
            if (info.statusCode() == 206 && offset > 0) {
                // "Content-Range: bytes START-END/TOTAL": the rest of the file, from where the part file ends
                Matcher m = CONTENT_RANGE.matcher(info.headers().firstValue("content-range").orElse(""));
                if (!m.matches() || Long.parseLong(m.group(1)) != offset) {
                    return reject(failure(name, uri, "asked for the bytes from " + offset + ", server sent "
                            + info.headers().firstValue("content-range").orElse("no Content-Range"), null));
                }
                start = offset;
                total = m.group(3).equals("*") ? (length >= 0 ? offset + length : -1) : Long.parseLong(m.group(3));
            } else if (info.statusCode() == 200) {
                total = length; // the whole file: a server that ignores the range starts over
            } else {
                int status = info.statusCode();
                rangeRefused = status == 416; // the part file is not a prefix of the file (or already all of it)
                cut = status == 429 || status >= 500; // the server's trouble, worth trying again later
                return reject(failure(name, uri, "HTTP " + status, null));
            }
            if (expectedSize >= 0 && total >= 0 && total != expectedSize) {
                return reject(failure(name, uri, "server announces " + total + " bytes, expected " + expectedSize, null));
            }
            try {
                if (start == 0) {
                    out.truncate(0);
                    digest.reset(); // the prefix hashed for a range that the server ignored
                }
                out.position(start);
            } catch (IOException e) {
                return reject(new Llama2jException(name + ": cannot read or write the part file (" + e + ")",
                        Llama2jException.IO_FAILURE, e));
            }
            received = start;
            announced = total;
            if (progress != null) {
                bar = new ProgressBar(progress, (start > 0 ? "resuming " : "downloading ") + name,
                        total >= 0 ? total : expectedSize, start);
            }
            return this;
        }

        /** Feeds the first {@code n} bytes of the part file (an earlier transfer's) to the digest. */
        void hashPrefix(long n) throws IOException {
            ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
            for (long pos = 0; pos < n; ) {
                b.clear().limit((int) Math.min(b.capacity(), n - pos));
                int r = out.read(b, pos);
                if (r < 0) {
                    throw new IOException("part file shorter than " + n + " bytes");
                }
                b.flip();
                digest.update(b);
                pos += r;
            }
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

    private static final Pattern CONTENT_RANGE = Pattern.compile("bytes (\\d+)-(\\d+)/(\\d+|\\*)");

    /**
     * What went wrong with a connection, in words: the first message along the cause chain (the HTTP client's
     * {@code ConnectException} often has none), else what its class means.
     */
    static String describe(Throwable cause) {
        for (Throwable t = cause; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof java.nio.channels.UnresolvedAddressException || t instanceof java.net.UnknownHostException) {
                return "unknown host" + (t.getMessage() == null ? "" : " " + t.getMessage());
            }
            if (t.getMessage() != null && !t.getMessage().isBlank()) {
                return t.getMessage();
            }
        }
        return cause instanceof java.net.ConnectException ? "connection refused or no route to the host"
                : cause instanceof java.net.http.HttpTimeoutException ? "timed out" : cause.getClass().getSimpleName();
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
