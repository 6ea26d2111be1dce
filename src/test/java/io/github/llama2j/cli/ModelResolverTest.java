package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static io.github.llama2j.cli.CliTestSupport.sharedModel;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelResolverTest {
    @TempDir
    Path tmp;

    private final StringWriter log = new StringWriter();

    private ModelResolver resolver(Map<String, String> env) {
        return new ModelResolver(env, tmp.resolve("home"), tmp, new PrintWriter(log, true));
    }

    @Test
    void anExistingPathWins() throws IOException {
        Path f = Files.writeString(tmp.resolve("some.bin"), "x");
        assertEquals(f, resolver(Map.of()).resolve(f.toString()));
        assertEquals(f, resolver(Map.of()).resolve("some.bin"));
    }

    @Test
    void aDirectoryCalledLikeAModelDoesNotHideTheName() throws IOException {
        Path models = Files.createDirectories(tmp.resolve("models"));
        Path f = Files.writeString(models.resolve("stories260K.bin"), "x");
        Files.createDirectories(tmp.resolve("stories260K")); // in the working directory
        assertEquals(f, resolver(Map.of("LLAMA2J_MODELS", models.toString())).resolve("stories260K"));
        // but a file called like a model is that file
        Path file = Files.writeString(tmp.resolve("stories15M"), "y");
        assertEquals(file, resolver(Map.of("LLAMA2J_MODELS", models.toString())).resolve("stories15M"));
        // and a directory that is not a name goes on to the loader, which explains
        Path other = Files.createDirectories(tmp.resolve("mymodel"));
        assertEquals(other, resolver(Map.of()).resolve("mymodel"));
    }

    @Test
    void unknownNamesAreBadInput() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> resolver(Map.of()).resolve("stories7B"));
        assertEquals(Llama2jException.BAD_INPUT, e.exitCode());
        assertEquals("stories7B: no such model file, and not a model name (stories260K, stories15M, stories42M, stories110M)",
                e.getMessage());
    }

    @Test
    void theModelsDirectoryComesFirst() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("models"));
        Path f = Files.writeString(dir.resolve("stories15M.bin"), "anything");
        // no base URL, no cache: any download attempt would fail
        assertEquals(f, resolver(Map.of("LLAMA2J_MODELS", dir.toString(), "LLAMA2J_MODEL_BASE_URL", "http://127.0.0.1:1"))
                .resolve("stories15M"));
        assertEquals(f, resolver(Map.of("LLAMA2J_MODELS", dir.toString())).resolve("stories15M.bin"));
    }

    @Test
    void cacheDirectoryFollowsXdgElseHome() {
        assertEquals(tmp.resolve("xdg").resolve("llama2j"), resolver(Map.of("XDG_CACHE_HOME", tmp.resolve("xdg").toString())).cacheDir());
        assertEquals(tmp.resolve("home/.cache/llama2j"), resolver(Map.of()).cacheDir());
        assertEquals(tmp.resolve("home/.cache/llama2j"), resolver(Map.of("XDG_CACHE_HOME", "relative/dir")).cacheDir());
    }

    @Test
    void stories260KIsDownloadedWithItsTokenizerCheckedAndThenServedFromTheCache() throws IOException {
        byte[] model = Files.readAllBytes(sharedModel("stories260K.bin"));
        byte[] tok = Files.readAllBytes(sharedModel("tok512.bin"));
        Path cache = tmp.resolve("xdg/llama2j");
        try (LoopbackServer server = new LoopbackServer()
                .serve("/stories260K/stories260K.bin", model, LoopbackServer.Mode.OK)
                .serve("/stories260K/tok512.bin", tok, LoopbackServer.Mode.OK)) {
            Map<String, String> env = Map.of("XDG_CACHE_HOME", tmp.resolve("xdg").toString(), "LLAMA2J_MODEL_BASE_URL", server.baseUrl());
            Path p = resolver(env).resolve("stories260K");
            assertEquals(cache.resolve("stories260K.bin"), p);
            assertEquals(2, server.requests.get());
            assertTrue(log.toString().contains("downloading " + server.baseUrl() + "/stories260K/stories260K.bin"), log.toString());
            try (Model m = ModelLoader.load(p)) {
                assertEquals(cache.resolve("tok512.bin"), ModelFiles.tokenizerFor(m).toAbsolutePath());
            }
            // pinned checksums: no trust-on-first-use record is needed
            assertFalse(Files.exists(cache.resolve("stories260K.bin.sha256")));

            // second use: from the cache, checked, no request
            assertEquals(p, resolver(env).resolve("stories260K"));
            assertEquals(2, server.requests.get());

            // a corrupted cache file is refused with advice, not silently used or replaced
            byte[] bad = model.clone();
            bad[1000] ^= 1;
            Files.write(p, bad);
            Llama2jException e = assertThrows(Llama2jException.class, () -> resolver(env).resolve("stories260K"));
            assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
            assertTrue(e.getMessage().startsWith("cached " + p + " SHA-256 is "), e.getMessage());
            assertTrue(e.getMessage().endsWith(", expected 9ff58ba3dece3aba57cf0d540d3d59e2aebaff86b7d20469b795217c826dd355:"
                    + " delete it to download it again"), e.getMessage());
        }
    }

    @Test
    void aFailedDownloadLeavesTheCacheEmpty() throws IOException {
        try (LoopbackServer server = new LoopbackServer()) { // serves nothing: 404
            Map<String, String> env = Map.of("XDG_CACHE_HOME", tmp.resolve("xdg").toString(), "LLAMA2J_MODEL_BASE_URL", server.baseUrl());
            Llama2jException e = assertThrows(Llama2jException.class, () -> resolver(env).resolve("stories15M"));
            assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
            assertEquals("stories15M.bin: download from " + server.baseUrl() + "/stories15M.bin failed: HTTP 404", e.getMessage());
            try (var files = Files.list(tmp.resolve("xdg/llama2j"))) {
                assertEquals(0, files.count());
            }
        }
    }

    @Test
    void unpinnedFilesAreTrustedOnFirstUseAndCheckedAfterwards() throws IOException {
        byte[] body = "weights that have no published checksum".getBytes(StandardCharsets.US_ASCII);
        Path cache = tmp.resolve("cache");
        try (LoopbackServer server = new LoopbackServer().serve("/sub/thing.bin", body, LoopbackServer.Mode.OK)) {
            Map<String, String> env = Map.of("LLAMA2J_MODEL_BASE_URL", server.baseUrl() + "/");
            KnownModels.RemoteFile remote = new KnownModels.RemoteFile("sub/thing.bin", false, -1, null);
            Path p = resolver(env).ensure(remote, cache);
            assertEquals(cache.resolve("thing.bin"), p);
            String sha = Downloader.sha256(p);
            assertEquals(sha + "  thing.bin\n", Files.readString(cache.resolve("thing.bin.sha256")));
            assertTrue(log.toString().contains("no pinned checksum for thing.bin"), log.toString());

            assertEquals(p, resolver(env).ensure(remote, cache));
            assertEquals(1, server.requests.get());

            Files.writeString(p, "weights that have no published checksum!");
            Llama2jException e = assertThrows(Llama2jException.class, () -> resolver(env).ensure(remote, cache));
            assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
            assertTrue(e.getMessage().contains("expected " + sha + " (recorded in thing.bin.sha256 at first download)"),
                    e.getMessage());
        }
    }

    @Test
    void aFileCopiedIntoTheCacheByHandIsRecordedOnFirstUse() throws IOException {
        Path cache = Files.createDirectories(tmp.resolve("cache"));
        Files.writeString(cache.resolve("hand.bin"), "copied");
        KnownModels.RemoteFile remote = new KnownModels.RemoteFile("hand.bin", false, -1, null);
        resolver(Map.of("LLAMA2J_MODEL_BASE_URL", "http://127.0.0.1:1")).ensure(remote, cache);
        assertTrue(Files.readString(cache.resolve("hand.bin.sha256")).startsWith(Downloader.sha256(cache.resolve("hand.bin"))));
    }

    // MODEL = hf:OWNER/REPO/FILE: downloaded from the repository's resolve URL into the cache, resumed after a cut.

    /** The bytes of a small valid GGUF file (random weights, about 5.8 MB): what the resolver checks a cached .gguf for. */
    private byte[] ggufBytes() throws IOException {
        io.github.llama2j.model.GgufSynth.Shape shape = new io.github.llama2j.model.GgufSynth.Shape("llama", 256, 512, 2, 4, 4, 64, 512, 64,
                10000f, 1e-5f, true, null);
        io.github.llama2j.model.GgufSynth synth = new io.github.llama2j.model.GgufSynth(shape,
                io.github.llama2j.model.GgufSynth.FileType.byName("f32").orElseThrow(), 3, 0.05);
        io.github.llama2j.gguf.GgufWriter w = synth.writer("resolver-test");
        Path f = tmp.resolve("served.gguf");
        w.write(f, b -> {
        });
        byte[] bytes = Files.readAllBytes(f);
        Files.delete(f);
        return bytes;
    }

    @Test
    void aRepositoryFileIsDownloadedIntoTheCacheAndThenServedFromIt() throws IOException {
        byte[] body = ggufBytes();
        try (LoopbackServer server = new LoopbackServer()
                .serve("/owner/repo/resolve/main/sub dir/model.Q8_0.gguf", body, LoopbackServer.Mode.OK)) {
            Map<String, String> env = Map.of("XDG_CACHE_HOME", tmp.resolve("xdg").toString(), "LLAMA2J_HF_BASE_URL", server.baseUrl() + "/");
            Path p = resolver(env).resolve("hf:owner/repo/sub dir/model.Q8_0.gguf");
            assertEquals(tmp.resolve("xdg/llama2j/hf/owner/repo/sub dir/model.Q8_0.gguf"), p);
            assertArrayEquals(body, Files.readAllBytes(p));
            assertTrue(log.toString().contains("downloading " + server.baseUrl() + "/owner/repo/resolve/main/sub%20dir/model.Q8_0.gguf"),
                    log.toString());
            assertEquals(1, server.requests.get());
            // second use: from the cache, no request
            assertEquals(p, resolver(env).resolve("hf:owner/repo/sub dir/model.Q8_0.gguf"));
            assertEquals(1, server.requests.get());
        }
    }

    @Test
    void theDefaultSiteIsHuggingFace() {
        assertEquals(URI.create("https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf"),
                ModelResolver.HuggingFaceFile.parse("hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf")
                        .url(ModelResolver.HUGGING_FACE));
    }

    /**
     * A cached Hugging Face GGUF file that the reader refuses (here one flipped length byte): named with its cache path
     * and the way out, exit 2, before any engine is built; every later run says the same until it is deleted.
     */
    @Test
    void aCorruptCachedGgufFileSaysWhereItIsAndHowToReplaceIt() throws IOException {
        Map<String, String> env = Map.of("XDG_CACHE_HOME", tmp.resolve("xdg").toString(), "LLAMA2J_HF_BASE_URL", "http://127.0.0.1:1");
        Path cached = tmp.resolve("xdg/llama2j/hf/o/r/m.gguf");
        Files.createDirectories(cached.getParent());
        byte[] bytes = ggufBytes();
        bytes[16] ^= 0x40; // inside the metadata count: the header then promises more than the file holds
        Files.write(cached, bytes);
        Llama2jException e = assertThrows(Llama2jException.class, () -> resolver(env).resolve("hf:o/r/m.gguf"));
        assertEquals(Llama2jException.BAD_INPUT, e.exitCode());
        assertTrue(e.getMessage().startsWith("cached " + cached + " is not a valid GGUF file ("), e.getMessage());
        assertTrue(e.getMessage().endsWith("): delete it to download it again"), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
    }

    @Test
    void aCutDownloadResumesOnTheNextRun() throws IOException {
        byte[] body = ggufBytes();
        try (LoopbackServer server = new LoopbackServer()
                .serve("/o/r/resolve/main/m.gguf", body, LoopbackServer.Mode.CUT_ONCE)) {
            Map<String, String> env = Map.of("XDG_CACHE_HOME", tmp.resolve("xdg").toString(), "LLAMA2J_HF_BASE_URL", server.baseUrl());
            Llama2jException e = assertThrows(Llama2jException.class, () -> resolver(env).resolve("hf:o/r/m.gguf"));
            assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
            assertTrue(e.getMessage().endsWith("run again to resume"), e.getMessage());
            Path dir = tmp.resolve("xdg/llama2j/hf/o/r");
            assertTrue(Files.size(dir.resolve("m.gguf.part")) > 0);

            Path p = resolver(env).resolve("hf:o/r/m.gguf");
            assertEquals(dir.resolve("m.gguf"), p);
            assertArrayEquals(body, Files.readAllBytes(p));
            assertTrue(server.ranges.getLast().startsWith("bytes="), server.ranges.toString());
            try (var files = Files.list(dir)) {
                assertEquals(List.of("m.gguf"), files.map(f -> f.getFileName().toString()).toList());
            }
        }
    }

    @Test
    void malformedNamesAreUsageErrors() {
        for (String bad : List.of("hf:", "hf:owner", "hf:owner/repo", "hf:owner/repo/", "hf:owner//f.gguf", "hf:/repo/f.gguf",
                "hf:o/r/../f.gguf", "hf:o/r/./f.gguf", "hf:o/r/a\\b.gguf", "hf:o/r/a\nb.gguf")) {
            Llama2jException e = assertThrows(Llama2jException.class, () -> resolver(Map.of()).resolve(bad), bad);
            assertEquals(Llama2jException.BAD_USAGE, e.exitCode(), bad);
            assertTrue(e.getMessage().contains("expected hf:OWNER/REPO/FILE"), e.getMessage());
        }
    }

    @Test
    void anExistingFileWinsOverAHuggingFaceName() throws IOException {
        Path f = Files.writeString(tmp.resolve("hf:odd"), "x");
        assertEquals(f, resolver(Map.of()).resolve("hf:odd"));
    }
}
