package io.github.llama2j.cpu;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.CheckpointWriter;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.model.RandomWeights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Batched prefill ({@link CpuEngine#forwardBatch}) against the same engine fed one token at a time, on random
 * llama2.c checkpoints: with and without grouped-query attention, a shared and an unshared classifier, prompts
 * longer than a chunk and not a multiple of it, a batch starting after positions fed one by one, and
 * generation continuing token by token after the batch (so every cached position is checked).
 * <ul>
 *   <li>Q8 (runq) checkpoints: bit-identical logits (the batched Q8 matmul is runq's arithmetic).</li>
 *   <li>F32 checkpoints: within {@link #F32_TOLERANCE} of max|logit| (the batched F32 matmul sums in another
 *       order; {@link #f32BatchIsNotTheOneTokenPathInDisguise} checks that it does).</li>
 *   <li>Exact mode (run.c's order) keeps the one-token path: bit-identical.</li>
 * </ul>
 */
public class BatchForwardTest {
    /** |batched - one by one| / max|logit| allowed for F32 weights: float rounding, a few ulps per step. */
    public static final double F32_TOLERANCE = 1e-5;

    @TempDir
    Path tmp;

    private Path checkpoint(Configuration c, ModelFormat format, int groupSize) {
        Path out = tmp.resolve(format + "-" + c.dim() + "-" + groupSize + ".bin");
        CheckpointWriter.write(new RandomWeights(c, 11, 0.3), format, groupSize, out, null);
        return out;
    }

    /** GQA (6 heads, 3 key/value heads, head size 8), shared classifier; and MHA with an unshared one. */
    private static Configuration config(boolean gqa) {
        return gqa ? new Configuration(48, 112, 2, 6, 3, 70, 200, true, 0)
                : new Configuration(64, 192, 2, 4, 4, 50, 200, false, 0);
    }

    @ParameterizedTest
    @CsvSource({
            "true, V1_F32, 0, 150, 0", "false, LEGACY_V0, 0, 64, 0", "true, V2_Q8, 8, 150, 0", "false, V2_Q8, 4, 129, 0",
            "true, V1_F32, 0, 70, 5", "true, V2_Q8, 16, 70, 5", "false, V2_Q8, 64, 3, 1", "false, V1_F32, 0, 2, 0"})
    void batchedPrefillMatchesOneTokenAtATime(boolean gqa, ModelFormat format, int groupSize, int promptLength, int before) {
        Configuration c = config(gqa);
        Path file = checkpoint(c, format, groupSize);
        int[] tokens = new SplittableRandom(promptLength).ints(before + promptLength + 6, 0, c.vocabSize()).toArray();
        int prefillEnd = before + promptLength;
        try (Model m = ModelLoader.load(file);
             InferenceEngine one = Engines.create(m, EngineOptions.cpu(2, false));
             InferenceEngine batched = Engines.create(m, EngineOptions.cpu(2, false))) {
            float[] expected = null;
            for (int pos = 0; pos < prefillEnd; pos++) {
                expected = one.forward(tokens[pos], pos).clone();
            }
            for (int pos = 0; pos < before; pos++) {
                batched.forward(tokens[pos], pos);
            }
            float[] actual = batched.forwardBatch(java.util.Arrays.copyOfRange(tokens, before, prefillEnd), before).clone();
            boolean exact = format == ModelFormat.V2_Q8;
            compare(expected, actual, exact, "after the prompt");
            for (int pos = prefillEnd; pos < tokens.length; pos++) { // generation reads every cached position
                compare(one.forward(tokens[pos], pos).clone(), batched.forward(tokens[pos], pos), exact, "pos " + pos);
            }
        }
    }

    /** Batched against one-token logits: bit for bit when {@code exact}, else within {@link #F32_TOLERANCE} x max|logit|. */
    public static void compare(float[] expected, float[] actual, boolean exact, String where) {
        if (exact) {
            assertArrayEquals(expected, actual, where);
            return;
        }
        compare(expected, actual, F32_TOLERANCE, where);
    }

    /** Batched against one-token logits within {@code tolerance} x max|logit|; returns the difference's fraction of it. */
    public static double compare(float[] expected, float[] actual, double tolerance, String where) {
        double max = 0, diff = 0;
        for (int i = 0; i < expected.length; i++) {
            max = Math.max(max, Math.abs(expected[i]));
            diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
        }
        final double d = diff, mx = max;
        assertTrue(diff <= tolerance * max, () -> where + ": max |diff| " + d + " > " + tolerance + " x max|logit| " + mx);
        return max == 0 ? 0 : diff / max;
    }

    /**
     * The default mode's vectorized expf ({@link FloatMath#vectorized()}) against the C library's, one call per
     * element ({@link FloatMath#standard()}), same kernels otherwise: every logit bit for bit, batched and token by
     * token, F32 and Q8.
     */
    @ParameterizedTest
    @CsvSource({"true, V1_F32, 0", "false, V2_Q8, 8"})
    void vectorizedExpfChangesNoLogit(boolean gqa, ModelFormat format, int groupSize) {
        assertTrue(FloatMath.vectorized().name().endsWith("(exp vectorized)"), FloatMath.vectorized().name());
        Configuration c = config(gqa);
        Path file = checkpoint(c, format, groupSize);
        int[] tokens = new SplittableRandom(5).ints(140, 0, c.vocabSize()).toArray();
        try (Model m = ModelLoader.load(file);
             CpuEngine libm = new CpuEngine(m, Engines.cpuKernels(false), FloatMath.standard(), 2, false);
             CpuEngine vector = new CpuEngine(m, Engines.cpuKernels(false), FloatMath.vectorized(), 2, false)) {
            assertArrayEquals(libm.forwardBatch(java.util.Arrays.copyOf(tokens, 130), 0),
                    vector.forwardBatch(java.util.Arrays.copyOf(tokens, 130), 0), "batched");
            for (int pos = 130; pos < tokens.length; pos++) {
                assertArrayEquals(libm.forward(tokens[pos], pos), vector.forward(tokens[pos], pos), "pos " + pos);
            }
        }
    }

    /** --exact keeps run.c's order: the batch is fed one token at a time, bit for bit. */
    @Test
    void exactModeFeedsOneTokenAtATime() {
        Configuration c = config(true);
        Path file = checkpoint(c, ModelFormat.V1_F32, 0);
        int[] tokens = new SplittableRandom(3).ints(90, 0, c.vocabSize()).toArray();
        try (Model m = ModelLoader.load(file);
             InferenceEngine one = Engines.create(m, EngineOptions.cpu(2, true));
             InferenceEngine batched = Engines.create(m, EngineOptions.cpu(2, true))) {
            float[] expected = null;
            for (int pos = 0; pos < tokens.length; pos++) {
                expected = one.forward(tokens[pos], pos).clone();
            }
            assertArrayEquals(expected, batched.forwardBatch(tokens, 0));
        }
    }

    /** The F32 comparison above would be void if batching changed nothing: it does change the last bits. */
    @Test
    void f32BatchIsNotTheOneTokenPathInDisguise() {
        Configuration c = config(true);
        Path file = checkpoint(c, ModelFormat.V1_F32, 0);
        int[] tokens = new SplittableRandom(4).ints(100, 0, c.vocabSize()).toArray();
        try (Model m = ModelLoader.load(file);
             InferenceEngine one = Engines.create(m, EngineOptions.cpu(1, false));
             InferenceEngine batched = Engines.create(m, EngineOptions.cpu(1, false))) {
            float[] expected = null;
            for (int pos = 0; pos < tokens.length; pos++) {
                expected = one.forward(tokens[pos], pos).clone();
            }
            assertTrue(!java.util.Arrays.equals(expected, batched.forwardBatch(tokens, 0)), "batched F32 logits should differ in the last bits");
        }
    }

    @Test
    void badBatchesAreRefused() {
        Configuration c = config(false);
        Path file = checkpoint(c, ModelFormat.V1_F32, 0);
        try (Model m = ModelLoader.load(file); InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, false))) {
            assertThrows(IllegalArgumentException.class, () -> e.forwardBatch(new int[0], 0));
            assertThrows(IllegalArgumentException.class, () -> e.forwardBatch(new int[]{1, 2}, c.seqLen() - 1));
            assertThrows(IllegalArgumentException.class, () -> e.forwardBatch(new int[]{1, c.vocabSize()}, 0));
            assertThrows(IllegalArgumentException.class, () -> e.forwardBatch(new int[]{1}, -1));
        }
    }
}
