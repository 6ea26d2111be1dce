package io.github.llama2j.cli;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;

import static io.github.llama2j.cli.CliTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SynthCommandTest {
    @TempDir
    Path tmp;

    @Test
    void namedShapeInEveryFormatLoadsAndRuns() {
        float[] first = null;
        for (String format : new String[]{"v0", "v1", "v2"}) {
            Path out = tmp.resolve("s260k_" + format + ".bin");
            CliTestSupport.Run r = run("synth", out.toString(), "--shape", "stories260K", "--format", format, "--seed", "3");
            assertEquals(0, r.exitCode(), r.err());
            assertTrue(r.out().startsWith("wrote " + out), r.out());
            // exact mode: run.c's summation order, in which the three formats' logits are compared
            try (Model m = ModelLoader.load(out); InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, true))) {
                assertEquals(new Configuration(64, 172, 5, 8, 4, 512, 512, true, format.equals("v2") ? 4 : 0), m.config());
                float[] logits = e.forward(1, 0).clone();
                if (first == null) {
                    first = logits;
                } else if (format.equals("v1")) {
                    assertArrayEquals(first, logits, 0f, "v0 and v1 from one seed are one model");
                }
            }
        }
    }

    @Test
    void explicitShapeWithUnsharedClassifierAndGroupSize() {
        Path out = tmp.resolve("x.bin");
        CliTestSupport.Run r = run("synth", out.toString(), "--dim", "32", "--hidden-dim", "96", "--layers", "2", "--heads", "4",
                "--kv-heads", "2", "--vocab", "40", "--seq-len", "16", "--unshared", "--format", "v2", "--group-size", "16");
        assertEquals(0, r.exitCode(), r.err());
        try (Model m = ModelLoader.load(out)) {
            assertEquals(ModelFormat.V2_Q8, m.format());
            assertEquals(new Configuration(32, 96, 2, 4, 2, 40, 16, false, 16), m.config());
        }
    }

    @Test
    void shapeValuesCanBeOverriddenAndKvHeadsFollowHeads() {
        Path out = tmp.resolve("o.bin");
        assertEquals(0, run("synth", out.toString(), "--shape", "stories260K", "--layers", "1", "--heads", "4").exitCode());
        try (Model m = ModelLoader.load(out)) {
            assertEquals(new Configuration(64, 172, 1, 4, 4, 512, 512, true, 0), m.config());
        }
    }

    @Test
    void sameSeedSameBytesOtherSeedOtherBytes() throws IOException {
        String[] shape = {"--dim", "16", "--hidden-dim", "24", "--layers", "1", "--heads", "2", "--vocab", "10", "--seq-len", "4"};
        Path a = tmp.resolve("a.bin"), b = tmp.resolve("b.bin"), c = tmp.resolve("c.bin");
        assertEquals(0, run(concat(new String[]{"synth", a.toString(), "--seed", "5"}, shape)).exitCode());
        assertEquals(0, run(concat(new String[]{"synth", b.toString(), "--seed", "5"}, shape)).exitCode());
        assertEquals(0, run(concat(new String[]{"synth", c.toString(), "--seed", "6"}, shape)).exitCode());
        assertEquals(-1L, Files.mismatch(a, b));
        assertTrue(Files.mismatch(a, c) > 0);
    }

    @Test
    void badInputsExitWithTwoAndOneLine() {
        Path out = tmp.resolve("bad.bin");
        expectUsageError(run("synth", out.toString(), "--shape", "stories1B"),
                "llama2j: --shape is 'stories1B', must be one of stories260K, stories15M, stories42M, stories110M, llama2-7b");
        expectUsageError(run("synth", out.toString(), "--shape", "qwen2.5-0.5b"),
                "llama2j: --shape is 'qwen2.5-0.5b', must be one of stories260K, stories15M, stories42M, stories110M, llama2-7b"
                        + " (qwen2.5-0.5b is a GGUF shape: add --format gguf)");
        expectUsageError(run("synth", out.toString(), "--shape", "stories260K", "--format", "v2", "--group-size", "8"),
                "llama2j: bad.bin: group size 8 does not divide hidden_dim 172 (largest that works: 4)");
        expectUsageError(run("synth", out.toString(), "--shape", "stories260K", "--group-size", "4"),
                "llama2j: bad.bin: --group-size applies to --format v2 only");
        expectUsageError(run("synth", out.toString(), "--shape", "stories260K", "--format", "v3"),
                "llama2j: --format is 'v3', must be v0, v1, v2 or gguf");
        expectUsageError(run("synth", out.toString(), "--dim", "64"), "llama2j: --hidden-dim is required without --shape");
        expectUsageError(run("synth", out.toString(), "--shape", "stories260K", "--heads", "7"),
                "llama2j: bad.bin: --heads 7 does not divide --dim 64");
        expectUsageError(run("synth", out.toString(), "--shape", "stories260K", "--kv-heads", "3"),
                "llama2j: bad.bin: --kv-heads 3 does not divide --heads 8");
        expectUsageError(run("synth", out.toString(), "--shape", "stories260K", "--heads", "64"),
                "llama2j: bad.bin: head size dim/heads = 1 is odd, RoPE needs it even");
        expectUsageError(run("synth", out.toString(), "--shape", "stories260K", "--vocab", "0"),
                "llama2j: bad.bin: --vocab is 0, must be positive");
        assertFalse(Files.exists(out));
    }

    @Test
    void hugeShapesFailAtOnceWithoutWritingAnything() throws IOException {
        // the size was summed over a list of 9 sections per layer: 2^31 - 1 layers hung, eating the heap
        Path one = tmp.resolve("one.bin"), two = tmp.resolve("two.bin");
        assertEquals(0, run("synth", one.toString(), "--shape", "stories260K", "--layers", "1").exitCode());
        assertEquals(0, run("synth", two.toString(), "--shape", "stories260K", "--layers", "2").exitCode());
        long perLayer = Files.size(two) - Files.size(one);
        long expected = Files.size(one) + perLayer * (Integer.MAX_VALUE - 1L);
        Path out = tmp.resolve("big.bin");
        CliTestSupport.Run r = assertTimeoutPreemptively(Duration.ofSeconds(30),
                () -> run("synth", out.toString(), "--shape", "stories260K", "--layers", String.valueOf(Integer.MAX_VALUE)));
        assertEquals(4, r.exitCode(), r.err());
        assertTrue(r.errLines().startsWith(String.format(Locale.ROOT, "llama2j: big.bin: needs %,d bytes, only ", expected)),
                r.errLines());
        // a size beyond a long is a usage error, not an overflow
        r = assertTimeoutPreemptively(Duration.ofSeconds(30), () -> run("synth", out.toString(), "--dim", "1073741824",
                "--hidden-dim", "2147483647", "--layers", "2147483647", "--heads", "1", "--vocab", "2147483647",
                "--seq-len", "2147483647"));
        expectUsageError(r, "llama2j: big.bin: the file would be larger than 9,223,372,036,854,775,807 bytes (2147483647 layers"
                + " of dim 1073741824, hidden_dim 2147483647, vocab 2147483647, seq_len 2147483647)");
        // GGUF: the per-layer tensor list is never built for more layers than llama2j reads
        Path gguf = tmp.resolve("big.gguf");
        r = assertTimeoutPreemptively(Duration.ofSeconds(30), () -> run("synth", gguf.toString(), "--format", "gguf",
                "--dim", "64", "--hidden-dim", "128", "--layers", String.valueOf(Integer.MAX_VALUE), "--heads", "4",
                "--vocab", "300", "--seq-len", "32"));
        expectUsageError(r, "llama2j: big.gguf: --layers is 2147483647, llama2j reads GGUF models of at most 4096 layers");
        assertFalse(Files.exists(out));
        assertFalse(Files.exists(gguf));
        try (var files = Files.list(tmp)) {
            assertEquals(2, files.count()); // one.bin, two.bin: no .tmp left
        }
    }

    private static void expectUsageError(CliTestSupport.Run r, String message) {
        assertEquals(2, r.exitCode(), r.err());
        assertEquals(message, r.errLines());
    }

    static String[] concat(String[] a, String[] b) {
        String[] r = new String[a.length + b.length];
        System.arraycopy(a, 0, r, 0, a.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
