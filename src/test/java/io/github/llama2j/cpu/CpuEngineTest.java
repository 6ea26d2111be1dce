package io.github.llama2j.cpu;

import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The CPU engine on the shared test checkpoints (found through LLAMA2J_TEST_MODELS and
 * LLAMA2J_TEST_GOLDEN; skipped when those are not set).
 */
class CpuEngineTest {
    /** Positions run per model: enough to cross a key block (16 timesteps) a few times. */
    private static final int POSITIONS = 40;

    static Path dir(String variable) {
        String d = System.getenv(variable);
        assumeTrue(d != null, variable + " is not set");
        return Path.of(d);
    }

    /** Greedy next token, as the sampler picks it: the first index of the maximum. */
    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * Exact mode is run.c's arithmetic: bit-identical logits to the plain scalar forward pass at
     * every position. For Q8 models the default mode must be too (its matmul is exact).
     */
    @ParameterizedTest
    @ValueSource(strings = {"tiny.bin", "tiny_unshared.bin", "vocab32k.bin", "tiny_q80.bin", "tiny_unshared_q80.bin", "vocab32k_q80.bin"})
    void bitIdenticalToScalarReference(String file) {
        try (Model model = ModelLoader.load(dir("LLAMA2J_TEST_MODELS").resolve(file));
             CpuEngine exact = new CpuEngine(model, new ExactVectorKernels(), io.github.llama2j.math.FloatMath.standard(), 2);
             CpuEngine fast = new CpuEngine(model, new VectorKernels(), io.github.llama2j.math.FloatMath.standard(), 2)) {
            ReferenceForward reference = new ReferenceForward(model);
            boolean quantized = model.config().quantized();
            int token = 1;
            for (int pos = 0; pos < POSITIONS; pos++) {
                float[] expected = reference.forward(token, pos).clone();
                assertArrayEquals(expected, exact.forward(token, pos), file + " exact mode, pos " + pos);
                float[] f = fast.forward(token, pos);
                if (quantized) {
                    assertArrayEquals(expected, f, file + " default mode (Q8 is exact), pos " + pos);
                }
                token = argmax(expected);
            }
        }
    }

    /**
     * The default mode's float32 matmuls sum in another order (FMA, several accumulators), which
     * moves logits by a few float32 roundings of the partial sums. llama2.c's own -Ofast build
     * differs from its -O0 build by up to 2.1e-5 on these models (golden README); allow 1e-4
     * absolute, and the same greedy token at every position.
     */
    @ParameterizedTest
    @ValueSource(strings = {"tiny.bin", "tiny_unshared.bin", "vocab32k.bin"})
    void defaultModeIsCloseToExact(String file) {
        try (Model model = ModelLoader.load(dir("LLAMA2J_TEST_MODELS").resolve(file));
             CpuEngine exact = new CpuEngine(model, new ExactVectorKernels(), io.github.llama2j.math.FloatMath.standard(), 2);
             CpuEngine fast = new CpuEngine(model, new VectorKernels(), io.github.llama2j.math.FloatMath.standard(), 2)) {
            int token = 1;
            for (int pos = 0; pos < POSITIONS; pos++) {
                float[] e = exact.forward(token, pos);
                float[] f = fast.forward(token, pos);
                assertArrayEquals(e, f, 1e-4f, file + " pos " + pos);
                assertEquals(argmax(e), argmax(f), file + " greedy token at pos " + pos);
                token = argmax(e);
            }
        }
    }

    /** llama2.c's own logits at positions 0-2 of the greedy run (golden/logits), within the golden README's tolerance. */
    @ParameterizedTest
    @ValueSource(strings = {"tiny", "tiny_unshared", "vocab32k", "stories260K", "tiny_q80", "tiny_unshared_q80", "vocab32k_q80"})
    void matchesLlama2cLogits(String name) throws IOException {
        Path golden = dir("LLAMA2J_TEST_GOLDEN").resolve("logits");
        try (Model model = ModelLoader.load(dir("LLAMA2J_TEST_MODELS").resolve(name + ".bin"));
             CpuEngine exact = new CpuEngine(model, new ExactVectorKernels(), io.github.llama2j.math.FloatMath.standard(), 2)) {
            int token = 1;
            for (int pos = 0; pos < 3; pos++) {
                float[] expected = readFloats(golden.resolve(name + ".pos" + pos + ".f32"));
                float[] actual = exact.forward(token, pos);
                assertArrayEquals(expected, actual, 1e-4f, name + " pos " + pos);
                token = argmax(expected);
            }
        }
    }

    static float[] readFloats(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        float[] f = new float[b.remaining() / Float.BYTES];
        b.asFloatBuffer().get(f);
        return f;
    }
}
