package io.github.llama2j.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static io.github.llama2j.cli.CliTestSupport.run;
import static io.github.llama2j.cli.CliTestSupport.sharedModel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class QuantizeCommandTest {
    @TempDir
    Path tmp;

    @Test
    void tinyWithGroupSize4IsByteIdenticalToTinyQ80() throws IOException {
        Path out = tmp.resolve("tiny_q80.bin");
        CliTestSupport.Run r = run("quantize", sharedModel("tiny.bin").toString(), out.toString(), "--group-size", "4");
        assertEquals(0, r.exitCode(), r.err());
        assertEquals(-1L, Files.mismatch(out, sharedModel("tiny_q80.bin")));
        assertTrue(r.out().contains("group size 4"), r.out());
        // one line per matrix kind (shared classifier: none for it), then the overall maximum
        for (String kind : new String[]{"token_embedding", "wq", "wk", "wv", "wo", "w1", "w2", "w3", "overall"}) {
            assertTrue(r.out().lines().anyMatch(l -> l.matches("  " + kind + " +[0-9.e-]+")), kind + " missing in\n" + r.out());
        }
        assertFalse(r.out().contains("classifier"));
        assertFalse(Files.exists(tmp.resolve("tiny_q80.bin.tmp")));
    }

    @Test
    void tinyUnsharedWithDefaultGroupSizeIsByteIdenticalToItsQ80() throws IOException {
        Path out = tmp.resolve("u.bin");
        CliTestSupport.Run r = run("quantize", sharedModel("tiny_unshared.bin").toString(), out.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("group size 32"), r.out());
        assertTrue(r.out().contains("  classifier "), r.out());
        assertEquals(-1L, Files.mismatch(out, sharedModel("tiny_unshared_q80.bin")));
    }

    @Test
    void errorsOfTheQuantizationAreWithinHalfAStep() {
        // |w - q*scale| <= scale/2 = max|w|/254; the tiny models' weights are N(0, 0.3²): max|w| is a few units at most
        CliTestSupport.Run r = run("quantize", sharedModel("tiny.bin").toString(), tmp.resolve("t.bin").toString());
        String overall = r.out().lines().filter(l -> l.startsWith("  overall")).findFirst().orElseThrow();
        double err = Double.parseDouble(overall.substring("  overall".length()).trim());
        assertTrue(err > 0 && err < 2.0 / 254, overall);
    }

    @Test
    void badInputsExitWithTwoAndOneLine() {
        Path out = tmp.resolve("o.bin");
        CliTestSupport.Run r = run("quantize", sharedModel("tiny_q80.bin").toString(), out.toString());
        assertEquals(2, r.exitCode());
        assertEquals("llama2j: tiny_q80.bin: is v2 (Q8_0), already quantized: quantize reads float32 (v0 or v1) checkpoints",
                r.errLines());
        r = run("quantize", sharedModel("tiny.bin").toString(), out.toString(), "--group-size", "8");
        assertEquals(2, r.exitCode());
        assertEquals("llama2j: tiny.bin: group size 8 does not divide hidden_dim 172 (largest that works: 4)", r.errLines());
        r = run("quantize", sharedModel("tiny_unshared.bin").toString(), out.toString(), "--group-size", "64");
        assertEquals(2, r.exitCode());
        assertEquals("llama2j: tiny_unshared.bin: group size 64 does not divide dim 96 (largest that works: 32)", r.errLines());
        r = run("quantize", sharedModel("tiny.bin").toString(), out.toString(), "--group-size", "0");
        assertEquals(2, r.exitCode());
        assertEquals("llama2j: tiny.bin: group size is 0, must be positive", r.errLines());
        r = run("quantize", tmp.resolve("missing.bin").toString(), out.toString());
        assertEquals(2, r.exitCode());
        assertEquals("llama2j: " + tmp.resolve("missing.bin") + ": no such model file, and not a model name"
                + " (stories260K, stories15M, stories42M, stories110M)", r.errLines());
        assertFalse(Files.exists(out));
    }

    @Test
    void truncatedInputIsRejectedWithTheLoadersMessage() throws IOException {
        Path in = tmp.resolve("cut.bin");
        byte[] bytes = Files.readAllBytes(sharedModel("tiny.bin"));
        Files.write(in, java.util.Arrays.copyOf(bytes, bytes.length - 100));
        CliTestSupport.Run r = run("quantize", in.toString(), tmp.resolve("o.bin").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.errLines().startsWith("llama2j: cut.bin: header says 5 layers"), r.errLines());
        assertEquals(1, r.errLines().lines().count());
    }

    @Test
    void ggufInputIsRefusedBeforeAnythingIsWritten() throws IOException {
        // Q8_0 GGUF crashed (ClassCastException); F32 GGUF became a different llama2.c model (rope theta, biases lost)
        Path out = tmp.resolve("o.bin");
        Path f32 = tmp.resolve("f32.gguf");
        assertEquals(0, run("synth", f32.toString(), "--format", "gguf", "--dim", "64", "--hidden-dim", "128", "--layers", "1",
                "--heads", "4", "--kv-heads", "2", "--vocab", "300", "--seq-len", "32", "--type", "f32").exitCode());
        Path q80 = io.github.llama2j.TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf");
        for (Path in : new Path[]{f32, q80, sharedModel("stories260K.gguf")}) {
            CliTestSupport.Run r = run("quantize", in.toString(), out.toString());
            assertEquals(2, r.exitCode(), r.err());
            assertEquals("llama2j: " + in.getFileName() + ": is GGUF: quantize reads float32 llama2.c checkpoints (v0 or v1);"
                    + " to quantize a GGUF model use llama.cpp's llama-quantize", r.errLines());
            assertFalse(Files.exists(out));
            assertFalse(Files.exists(tmp.resolve("o.bin.tmp")));
        }
    }

    @Test
    void outputThatIsTheInputIsRefusedAndTheInputKept() throws IOException {
        Path in = tmp.resolve("same.bin");
        Files.copy(sharedModel("tiny.bin"), in);
        Path link = tmp.resolve("link.bin");
        Files.createSymbolicLink(link, in);
        for (Path out : new Path[]{in, link, tmp.resolve(".").resolve("same.bin")}) {
            CliTestSupport.Run r = run("quantize", in.toString(), out.toString());
            assertEquals(2, r.exitCode(), r.err());
            assertEquals("llama2j: " + out + ": is IN itself; quantize does not overwrite its input, give another OUT",
                    r.errLines());
            assertEquals(-1L, Files.mismatch(in, sharedModel("tiny.bin")));
        }
    }

    @Test
    void reportedSizesAreTheInputsAndTheOutputs() throws IOException {
        Path out = tmp.resolve("q.bin");
        CliTestSupport.Run r = run("quantize", sharedModel("tiny.bin").toString(), out.toString());
        assertEquals(0, r.exitCode(), r.err());
        String first = r.out().lines().findFirst().orElseThrow();
        assertTrue(first.contains(String.format(java.util.Locale.ROOT, "(v0 (legacy float32), %,d bytes)",
                Files.size(sharedModel("tiny.bin")))), first);
        assertTrue(first.contains(String.format(java.util.Locale.ROOT, "group size 4, %,d bytes)", Files.size(out))), first);
    }
}
