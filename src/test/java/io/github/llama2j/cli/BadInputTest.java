package io.github.llama2j.cli;

import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Each kind of bad input ends with one clear line on stderr naming the file and field, exit code 2, no stack trace. */
class BadInputTest {
    @TempDir
    Path tmp;

    private record Outcome(int code, String err, byte[] stdout) {
    }

    private static Outcome run(String... args) {
        StringWriter err = new StringWriter();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int code = Main.execute(new Io(out, new ByteArrayInputStream(new byte[0])), new PrintWriter(new StringWriter()),
                new PrintWriter(err, true), args);
        return new Outcome(code, err.toString(), out.toByteArray());
    }

    private static void assertUserError(Outcome o, String... fragments) {
        assertEquals(2, o.code(), () -> "exit code, stderr: " + o.err());
        String err = o.err().strip();
        assertFalse(err.contains("\n"), () -> "one line expected: " + err);
        assertFalse(err.contains("Exception") || err.contains("\tat "), () -> "no stack trace expected: " + err);
        for (String f : fragments) {
            assertTrue(err.contains(f), () -> "'" + f + "' expected in: " + err);
        }
    }

    private Path write(String name, byte[] bytes) throws IOException {
        Path p = tmp.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    private Outcome runModel(Path model, String... extra) {
        List<String> args = new ArrayList<>(List.of("run", model.toString(), "-z", TestData.model("tok512.bin").toString(), "-n", "4", "-t", "0"));
        args.addAll(Arrays.asList(extra));
        return run(args.toArray(String[]::new));
    }

    /** A first chat turn longer than seq_len is the error a too-long generate prompt is (was: exit 0, no reply). */
    @Test
    void aFirstChatTurnLongerThanTheContextIsAnError() {
        String words = "Once upon a time there was a little girl who liked to play. ".repeat(60);
        Outcome o = run("run", TestData.model("stories260K.bin").toString(), "-z", TestData.model("tok512.bin").toString(), "-m", "chat",
                "-y", "", "-i", words, "-t", "0");
        assertUserError(o, "the first turn is ", " tokens, longer than the model's seq_len 512");
        assertEquals(0, o.stdout().length, "nothing written to stdout");
    }

    @Test
    void truncatedFileNamesTheLayersItHolds() throws IOException {
        byte[] full = Files.readAllBytes(TestData.model("tiny.bin"));
        Path cut = write("cut.bin", Arrays.copyOf(full, full.length / 2));
        assertUserError(runModel(cut), "cut.bin", "header says 5 layers, file holds");
    }

    @Test
    void trailingBytesAreRejectedToo() throws IOException {
        byte[] full = Files.readAllBytes(TestData.model("tiny_q80.bin"));
        Path longer = write("longer.bin", Arrays.copyOf(full, full.length + 7));
        assertUserError(runModel(longer), "longer.bin", "expected " + full.length + " bytes");
    }

    @Test
    void aFewBytesTooManyOrTooFewAreCountedNotRoundedToWholeLayers() throws IOException {
        // 4 extra bytes read "header says 5 layers, file holds 5", which contradicts itself
        byte[] full = Files.readAllBytes(TestData.model("tiny.bin"));
        assertUserError(runModel(write("extra.bin", Arrays.copyOf(full, full.length + 4))),
                "extra.bin: header says 5 layers, file holds 5 (expected " + full.length + " bytes, file has " + (full.length + 4)
                        + ": 4 bytes too many)");
        assertUserError(runModel(write("less.bin", Arrays.copyOf(full, full.length - 4))),
                "less.bin: header says 5 layers, file holds 5 (expected " + full.length + " bytes, file has " + (full.length - 4)
                        + ": 4 bytes too few)");
    }

    @Test
    void aDamagedGgufFileIsNotReadAsALlama2cHeader() throws IOException {
        byte[] gguf = Files.readAllBytes(TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf"));
        gguf[3] = 'X'; // "GGUX"
        Outcome o = run("run", write("badmagic.gguf", gguf).toString(), "-n", "4");
        assertUserError(o, "badmagic.gguf: not a GGUF file (bad magic: the file does not start with 'GGUF')");
    }

    @Test
    void unknownVersionAfterMagic() throws IOException {
        byte[] full = Files.readAllBytes(TestData.model("tiny_v1.bin"));
        ByteBuffer.wrap(full).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 7);
        assertUserError(runModel(write("v7.bin", full)), "v7.bin", "version is 7");
    }

    @Test
    void impossibleHeaders() throws IOException {
        assertUserError(runModel(write("heads.bin", v0Header(64, 172, 5, 7, 7, 512, 512))), "heads.bin", "n_heads is 7");
        assertUserError(runModel(write("kv.bin", v0Header(64, 172, 5, 8, 3, 512, 512))), "kv.bin", "n_kv_heads is 3");
        assertUserError(runModel(write("neg.bin", v0Header(64, -1, 5, 8, 4, 512, 512))), "neg.bin", "hidden_dim is -1");
        assertUserError(runModel(write("odd.bin", v0Header(63, 172, 5, 9, 9, 512, 512))), "odd.bin", "head size");
        // 2^31-1 layers: rejected from the size arithmetic, nothing allocated.
        assertUserError(runModel(write("huge.bin", v0Header(4096, 11008, Integer.MAX_VALUE, 32, 32, 32000, 4096))), "huge.bin", "layers");
        assertUserError(runModel(write("short.bin", new byte[10])), "short.bin", "too small");
    }

    @Test
    void groupSizeMustDivideEveryInputDimension() throws IOException {
        byte[] full = Files.readAllBytes(TestData.model("tiny_q80.bin"));
        ByteBuffer.wrap(full).order(ByteOrder.LITTLE_ENDIAN).putInt(37, 8); // 172 is not a multiple of 8
        assertUserError(runModel(write("gs.bin", full)), "gs.bin", "group_size is 8", "hidden_dim 172");
    }

    @Test
    void wrongTokenizerForTheModel() {
        Outcome o = run("run", TestData.model("tiny.bin").toString(), "-z", TestData.model("tokenizer.bin").toString(), "-n", "4");
        assertUserError(o, "tokenizer.bin", "32000 tokens", "vocab_size is 512");
        Outcome o2 = run("run", TestData.model("vocab32k.bin").toString(), "-z", TestData.model("tok512.bin").toString(), "-n", "4");
        assertUserError(o2, "tok512.bin");
    }

    @Test
    void promptLongerThanSeqLen() {
        String prompt = "Once upon a time there was a little girl named Lily. ".repeat(40);
        Outcome o = run("run", TestData.model("tiny_unshared.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                "-i", prompt, "-n", "4", "-t", "0");
        assertUserError(o, "prompt is", "seq_len 256");
        assertEquals(0, o.stdout().length, "nothing printed before the error");
    }

    @Test
    void samplerOptionsOutOfRange() {
        String model = TestData.model("tiny.bin").toString();
        assertUserError(run("run", model, "-t", "-0.5"), "temperature", "-0.5");
        assertUserError(run("run", model, "-p", "1.5"), "top-p", "1.5");
        assertUserError(run("run", model, "-p", "-0.1"), "top-p");
        assertUserError(run("run", model, "-n", "-3"), "steps");
        assertUserError(run("run", model, "-m", "poem"), "mode", "poem");
        assertUserError(run("run", model, "--threads", "0", "--engine", "cpu"), "threads");
    }

    @Test
    void missingFilesAndUnknownOptions() {
        assertUserError(run("run", tmp.resolve("nope.bin").toString()), "nope.bin");
        assertUserError(run("run", TestData.model("tiny.bin").toString(), "-z", tmp.resolve("tok.bin").toString()), "tok.bin");
        Outcome o = run("run", TestData.model("tiny.bin").toString(), "--bogus");
        assertEquals(2, o.code());
        assertTrue(o.err().contains("--bogus"));
    }

    @Test
    void missingEngineIsUnavailableNotACrash() {
        org.junit.jupiter.api.Assumptions.assumeTrue(System.getenv("TORNADOVM_HOME") == null,
                "with an SDK the engine exists; covered by the TornadoVM tests");
        Outcome o = run("run", TestData.model("tiny.bin").toString(), "-z", TestData.model("tok512.bin").toString(),
                "--engine", "tornado", "-n", "2");
        assertEquals(3, o.code(), o.err());
        assertTrue(o.err().contains("TornadoVM engine not available"), o.err());
    }

    private static byte[] v0Header(int... fields) {
        ByteBuffer b = ByteBuffer.allocate(7 * 4 + 64).order(ByteOrder.LITTLE_ENDIAN);
        for (int f : fields) {
            b.putInt(f);
        }
        return b.array();
    }
}
