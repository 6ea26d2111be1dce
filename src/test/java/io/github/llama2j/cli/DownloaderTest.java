package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DownloaderTest {
    @TempDir
    Path tmp;

    private LoopbackServer server;
    private final byte[] body = new byte[3_000_000];
    private String sha;
    private final StringWriter progress = new StringWriter();

    @BeforeEach
    void start() throws Exception {
        new Random(1).nextBytes(body);
        sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(body));
        server = new LoopbackServer()
                .serve("/m.bin", body, LoopbackServer.Mode.OK)
                .serve("/chunked.bin", body, LoopbackServer.Mode.CHUNKED)
                .serve("/short.bin", body, LoopbackServer.Mode.TRUNCATED)
                .serve("/stalled.bin", body, LoopbackServer.Mode.STALLED)
                .serve("/cut.bin", body, LoopbackServer.Mode.CUT_ONCE)
                .serve("/ranges.bin", body, LoopbackServer.Mode.RANGES)
                .redirect("/moved.bin", "/m.bin")
                .redirect("/moved-cut.bin", "/cut.bin");
    }

    @AfterEach
    void stop() {
        server.close();
    }

    private String download(String path, long size, String expectedSha) {
        return new Downloader(new PrintWriter(progress, true))
                .download(URI.create(server.baseUrl() + path), tmp.resolve("out.bin"), size, expectedSha);
    }

    /** {@link Downloader#downloadResumable}: a cut transfer keeps its part file and the next call resumes it. */
    private String resumable(String path, long size, String expectedSha) {
        return new Downloader(new PrintWriter(progress, true))
                .downloadResumable(URI.create(server.baseUrl() + path), tmp.resolve("out.bin"), size, expectedSha);
    }

    @Test
    void successWithPinnedSizeAndHash() throws IOException {
        assertEquals(sha, download("/m.bin", body.length, sha));
        assertArrayEquals(body, Files.readAllBytes(tmp.resolve("out.bin")));
        assertEquals(List.of("out.bin"), files());
        assertTrue(progress.toString().contains("100%"), progress.toString());
    }

    @Test
    void successWithoutContentLengthOrPins() throws IOException {
        assertEquals(sha, download("/chunked.bin", -1, null));
        assertArrayEquals(body, Files.readAllBytes(tmp.resolve("out.bin")));
    }

    @Test
    void followsRedirects() throws IOException {
        assertEquals(sha, download("/moved.bin", body.length, sha));
        assertArrayEquals(body, Files.readAllBytes(tmp.resolve("out.bin")));
    }

    /**
     * No server at all (a closed loopback port; offline): the message says it could not connect, in words rather than
     * an exception's class name, and where else a model can come from.
     */
    @Test
    void noServerSaysItCannotConnect() throws IOException {
        int closed;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            closed = s.getLocalPort();
        }
        URI uri = URI.create("http://127.0.0.1:" + closed + "/m.bin");
        Llama2jException e = assertThrows(Llama2jException.class,
                () -> new Downloader(new PrintWriter(progress, true)).download(uri, tmp.resolve("out.bin"), body.length, sha));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertTrue(e.getMessage().startsWith("out.bin: download from " + uri + " failed: cannot connect ("), e.getMessage());
        assertTrue(e.getMessage().endsWith("offline? give a file path, or put the file in $LLAMA2J_MODELS"), e.getMessage());
        assertFalse(e.getMessage().contains("Exception"), e.getMessage());
        assertEquals(List.of(), files());
    }

    @Test
    void checksumMismatchLeavesNothing() {
        String wrong = "0".repeat(64);
        Llama2jException e = assertThrows(Llama2jException.class, () -> download("/m.bin", body.length, wrong));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertEquals("out.bin: download from " + server.baseUrl() + "/m.bin failed: SHA-256 mismatch: expected " + wrong
                + ", got " + sha + "; file discarded", e.getMessage());
        assertEquals(List.of(), files());
    }

    @Test
    void sizeMismatchLeavesNothing() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> download("/chunked.bin", body.length + 1, null));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertTrue(e.getMessage().endsWith("failed: got " + body.length + " bytes, expected " + (body.length + 1)), e.getMessage());
        assertEquals(List.of(), files());
        e = assertThrows(Llama2jException.class, () -> download("/m.bin", 5, null));
        assertTrue(e.getMessage().endsWith("failed: server announces " + body.length + " bytes, expected 5"), e.getMessage());
        assertEquals(List.of(), files());
    }

    @Test
    void interruptedTransferLeavesNothing() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> download("/short.bin", -1, null));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertTrue(e.getMessage().startsWith("out.bin: download from " + server.baseUrl() + "/short.bin failed: "), e.getMessage());
        assertTrue(e.getMessage().contains("interrupted") || e.getMessage().contains("EOF") || e.getMessage().contains("closed"),
                e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
        assertEquals(List.of(), files());
    }

    @Test
    void stalledTransferIsAbandonedAndLeavesNothing() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> new Downloader(null, java.time.Duration.ofMillis(500))
                .download(URI.create(server.baseUrl() + "/stalled.bin"), tmp.resolve("out.bin"), -1, null));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertTrue(e.getMessage().startsWith("out.bin: download from " + server.baseUrl() + "/stalled.bin failed: transfer stalled after "),
                e.getMessage());
        assertEquals(List.of(), files());
    }

    @Test
    void http404LeavesNothing() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> download("/nothing.bin", -1, null));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertEquals("out.bin: download from " + server.baseUrl() + "/nothing.bin failed: HTTP 404", e.getMessage());
        assertEquals(List.of(), files());
    }

    @Test
    void connectionRefusedIsAnIoFailure() {
        String base = server.baseUrl();
        server.close();
        Llama2jException e = assertThrows(Llama2jException.class, () -> new Downloader(null)
                .download(URI.create(base + "/m.bin"), tmp.resolve("out.bin"), -1, null));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertEquals(List.of(), files());
    }

    @Test
    void sha256OfAFile() throws Exception {
        Files.write(tmp.resolve("f"), body);
        assertEquals(sha, Downloader.sha256(tmp.resolve("f")));
    }

    @Test
    void aCutTransferIsKeptAndResumedWithARangeRequest() throws IOException {
        Llama2jException e = assertThrows(Llama2jException.class, () -> resumable("/cut.bin", body.length, sha));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        assertEquals(List.of("out.bin.part"), files());
        long kept = Files.size(tmp.resolve("out.bin.part"));
        assertTrue(kept > 0 && kept <= body.length / 2, "kept " + kept);
        assertTrue(e.getMessage().endsWith("; " + kept + " bytes kept in out.bin.part, run again to resume"), e.getMessage());
        assertArrayEquals(Arrays.copyOf(body, (int) kept), Files.readAllBytes(tmp.resolve("out.bin.part")));

        // The next call asks for the rest only, and checks size and SHA-256 of the whole (prefix included).
        assertEquals(sha, resumable("/cut.bin", body.length, sha));
        assertEquals(List.of("", "bytes=" + kept + "-"), server.ranges);
        assertArrayEquals(body, Files.readAllBytes(tmp.resolve("out.bin")));
        assertEquals(List.of("out.bin"), files());
        assertTrue(progress.toString().contains("resuming out.bin"), progress.toString());
        assertTrue(progress.toString().contains("100%"), progress.toString());
    }

    @Test
    void theRangeSurvivesARedirect() throws IOException {
        assertThrows(Llama2jException.class, () -> resumable("/moved-cut.bin", -1, null));
        long kept = Files.size(tmp.resolve("out.bin.part"));
        assertTrue(kept > 0, "kept " + kept);
        assertEquals(sha, resumable("/moved-cut.bin", -1, null));
        // first transfer: the redirect, then the cut one; second: both with the range
        assertEquals(List.of("", "", "bytes=" + kept + "-", "bytes=" + kept + "-"), server.ranges);
        assertArrayEquals(body, Files.readAllBytes(tmp.resolve("out.bin")));
    }

    @Test
    void aServerThatIgnoresTheRangeStartsOver() throws IOException {
        byte[] junk = new byte[1000];
        Arrays.fill(junk, (byte) 7); // not a prefix of the body: must not end up in the file
        Files.write(tmp.resolve("out.bin.part"), junk);
        assertEquals(sha, resumable("/m.bin", body.length, sha));
        assertEquals(List.of("bytes=1000-"), server.ranges);
        assertArrayEquals(body, Files.readAllBytes(tmp.resolve("out.bin")));
        assertEquals(List.of("out.bin"), files());
    }

    @Test
    void aPartFileLongerThanTheFileIsRefusedByTheServerAndReplaced() throws IOException {
        Files.write(tmp.resolve("out.bin.part"), new byte[body.length + 10]);
        assertEquals(sha, resumable("/ranges.bin", -1, null)); // 416, then from the start
        assertEquals(List.of("bytes=" + (body.length + 10) + "-", ""), server.ranges);
        assertArrayEquals(body, Files.readAllBytes(tmp.resolve("out.bin")));
        // with the size known, such a part file is not even offered
        Files.delete(tmp.resolve("out.bin"));
        Files.write(tmp.resolve("out.bin.part"), new byte[body.length + 10]);
        assertEquals(sha, resumable("/ranges.bin", body.length, null));
        assertEquals("", server.ranges.getLast());
    }

    @Test
    void aStalledTransferKeepsWhatArrived() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> new Downloader(null, Duration.ofMillis(500))
                .downloadResumable(URI.create(server.baseUrl() + "/stalled.bin"), tmp.resolve("out.bin"), -1, null));
        assertTrue(e.getMessage().contains("transfer stalled after "), e.getMessage());
        assertTrue(e.getMessage().endsWith("run again to resume"), e.getMessage());
        assertEquals(List.of("out.bin.part"), files());
    }

    @Test
    void refusalsAndMismatchesLeaveNothing() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> resumable("/nothing.bin", -1, null));
        assertEquals("out.bin: download from " + server.baseUrl() + "/nothing.bin failed: HTTP 404", e.getMessage());
        assertEquals(List.of(), files());
        e = assertThrows(Llama2jException.class, () -> resumable("/m.bin", body.length, "0".repeat(64)));
        assertTrue(e.getMessage().contains("SHA-256 mismatch"), e.getMessage());
        assertEquals(List.of(), files());
        e = assertThrows(Llama2jException.class, () -> resumable("/m.bin", 5, null));
        assertTrue(e.getMessage().endsWith("failed: server announces " + body.length + " bytes, expected 5"), e.getMessage());
        assertEquals(List.of(), files());
    }

    @Test
    void aPartFileThatAnotherDownloadHoldsIsLeftAlone() throws IOException {
        Path part = Files.write(tmp.resolve("out.bin.part"), new byte[]{1, 2, 3});
        try (FileChannel ch = FileChannel.open(part, StandardOpenOption.WRITE); FileLock lock = ch.lock()) {
            Llama2jException e = assertThrows(Llama2jException.class, () -> resumable("/m.bin", -1, null));
            assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
            assertTrue(e.getMessage().startsWith("out.bin: another download is writing "), e.getMessage());
            assertTrue(lock.isValid());
        }
        assertArrayEquals(new byte[]{1, 2, 3}, Files.readAllBytes(part));
        assertEquals(0, server.requests.get());
    }

    private List<String> files() {
        try (Stream<Path> s = Files.list(tmp)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
