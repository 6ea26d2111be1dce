package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.CheckpointWriter;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.model.RandomWeights;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The engine's warm-up ({@link CpuEngine#throwawayPasses}: forward passes on a scratch run state) leaves the engine's
 * results alone: the same prompt (batched) and greedy generation give the same tokens and bit-identical logits
 * whether the passes ran before the first token, in the middle of the generation (a warm-up that wrote this engine's
 * key/value cache, logits or batch buffers would change what follows), or not at all. Bit identity needs kernels
 * whose results do not depend on what the JIT has compiled: runq's Q8 arithmetic, run.c's order for F32
 * ({@link ExactVectorKernels}), and the F32 SIMD kernels, whose row sums are in {@link LaneSums}' order (with
 * {@code reduceLanes}, which adds in another order before C2 compiles a kernel, the cold run's logits differed).
 */
public class CpuWarmUpTest {
    @TempDir
    Path tmp;

    /** Positions fed: a prompt of 9 (a batch with the SIMD kernels), then greedy tokens up to here. */
    private static final int POSITIONS = 40;
    private static final int PROMPT = 9;

    @ParameterizedTest
    @CsvSource({"V2_Q8, false, true", "V2_Q8, true, false", "V1_F32, true, false", "LEGACY_V0, false, true"})
    void warmUpDoesNotChangeTokensOrLogits(ModelFormat format, boolean gqa, boolean exactKernels) {
        Configuration c = gqa ? new Configuration(48, 112, 2, 6, 3, 70, 200, true, 0)
                : new Configuration(64, 192, 2, 4, 4, 50, 200, false, 0);
        Path file = tmp.resolve(format + ".bin");
        CheckpointWriter.write(new RandomWeights(c, 5, 0.3), format, format == ModelFormat.V2_Q8 ? 16 : 0, file, null);
        try (Model m = ModelLoader.load(file)) {
            float[][] cold = generate(m, exactKernels, -1);
            float[][] warmFirst = generate(m, exactKernels, 0);
            float[][] warmMidway = generate(m, exactKernels, PROMPT + 7);
            for (float[][] warm : new float[][][]{warmFirst, warmMidway}) {
                for (int pos = PROMPT - 1; pos < POSITIONS; pos++) {
                    assertEquals(argmax(cold[pos]), argmax(warm[pos]), "token after position " + pos);
                    assertArrayEquals(cold[pos], warm[pos], "logits at position " + pos);
                }
            }
        }
    }

    /**
     * As {@link #warmUpDoesNotChangeTokensOrLogits} on GGUF files (Q4_K and Q6_K copies, Q4_0's, Q8_0's and the F32
     * norms): the GGML kernels' row sums are in {@link LaneSums}' order too, so a cold engine's logits are the warm one's bits.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"llama2-tiny-q4_k_m.gguf", "llama2-tiny-q4_0.gguf", "qwen2-tiny-q8_0.gguf"})
    void warmUpDoesNotChangeGgufLogits(String file) {
        try (Model m = io.github.llama2j.model.GgufModelLoader.load(io.github.llama2j.TestData.gguf().resolve("models/" + file))) {
            float[][] cold = generate(m, false, -1);
            float[][] warm = generate(m, false, 0);
            for (int pos = PROMPT - 1; pos < POSITIONS; pos++) {
                assertArrayEquals(cold[pos], warm[pos], file + ": logits at position " + pos);
            }
        }
    }

    /**
     * The one-token passes stop early only when, from {@link CpuEngine#WARM_UP_PROBE_NANOS} on, those run and those the
     * rest of the warm-up's 3 s holds at the fastest pass's speed make fewer than a third of
     * {@link CpuEngine#WARM_UP_MIN_PASSES} (64): a large model's passes, not a small model's first, interpreted ones.
     */
    @org.junit.jupiter.api.Test
    void passesStopEarlyOnlyWhenTooSlow() {
        long s = 1_000_000_000L, ms = 1_000_000L;
        org.junit.jupiter.api.Assertions.assertEquals(2 * s, CpuEngine.WARM_UP_PROBE_NANOS);
        org.junit.jupiter.api.Assertions.assertEquals(64, CpuEngine.WARM_UP_ENOUGH_PASSES);
        org.junit.jupiter.api.Assertions.assertFalse(CpuEngine.passesTooSlow(1, 2 * s - 1, 1900 * ms), "before the probe");
        org.junit.jupiter.api.Assertions.assertTrue(CpuEngine.passesTooSlow(3, 2 * s + 100 * ms, 500 * ms), "a 1B model's passes");
        org.junit.jupiter.api.Assertions.assertTrue(CpuEngine.passesTooSlow(40, 2 * s, 50 * ms), "40 + 20 more at 50 ms");
        org.junit.jupiter.api.Assertions.assertFalse(CpuEngine.passesTooSlow(20, 2 * s, 10 * ms), "20 interpreted, then 100 more at 10 ms");
        org.junit.jupiter.api.Assertions.assertFalse(CpuEngine.passesTooSlow(14, 2 * s, 20 * ms), "14 + 50 = 64");
        org.junit.jupiter.api.Assertions.assertTrue(CpuEngine.passesTooSlow(13, 2 * s, 20 * ms), "13 + 50 = 63");
        org.junit.jupiter.api.Assertions.assertTrue(CpuEngine.passesTooSlow(63, 3 * s, 10 * ms), "time is up: 63");
        org.junit.jupiter.api.Assertions.assertFalse(CpuEngine.passesTooSlow(64, 3 * s, 10 * ms), "time is up: 64");
    }

    /**
     * The passes do not stop at the first quiet spell of the JIT: at least {@link CpuEngine#WARM_UP_MIN_PASSES} run
     * (a tiny model's pass takes microseconds, far within the time limit), because the forward pass's small steps reach
     * C2's call thresholds only after that many (with the quiet rule alone, 64 passes at most, C2 compiled them during
     * the run's first tokens).
     */
    @org.junit.jupiter.api.Test
    void runsAtLeastTheMinimumPasses() {
        Configuration c = new Configuration(64, 192, 2, 4, 4, 50, 200, false, 0);
        Path file = tmp.resolve("min.bin");
        CheckpointWriter.write(new RandomWeights(c, 5, 0.3), ModelFormat.V1_F32, 0, file, null);
        try (Model m = ModelLoader.load(file);
             CpuEngine e = new CpuEngine(m, new VectorKernels(), FloatMath.standard(), 2, false)) {
            int passes = e.throwawayPasses(m);
            org.junit.jupiter.api.Assertions.assertTrue(passes >= CpuEngine.WARM_UP_MIN_PASSES,
                    passes + " passes, fewer than " + CpuEngine.WARM_UP_MIN_PASSES);
        }
    }

    /**
     * The kernel warm-up covers every kind of product the forward pass runs, at every input length: the products a
     * forward pass really calls (recorded by kernels that delegate to the vector ones) are those of
     * {@link CpuEngine#productKinds}, weight type, form, memory segment class and columns. A Q4_K_M file mixes Q4_K
     * and Q6_K matrices (and its classifier is its embedding's), and a kind left out ran uncompiled in the first
     * throwaway passes (seconds each at a real shape) and in the run's first tokens.
     */
    @org.junit.jupiter.api.Test
    void kernelWarmUpCoversEveryKindOfProduct() {
        Path file = io.github.llama2j.TestData.gguf().resolve("models/llama2-tiny-q4_k_m.gguf");
        java.util.Set<String> ran = java.util.concurrent.ConcurrentHashMap.newKeySet();
        VectorKernels vector = new VectorKernels();
        Kernels recording = new Kernels() {
            @Override
            public void matmul(float[] out, Activations x, MatrixForm m, int r0, int r1) {
                ran.add(product(m));
                vector.matmul(out, x, m, r0, r1);
            }

            @Override
            public void matmulF32(float[] out, float[] x, io.github.llama2j.model.Matrix.F32 w, int r0, int r1) {
                vector.matmulF32(out, x, w, r0, r1);
            }

            @Override
            public void matmulQ8(float[] out, byte[] xq, float[] xs, io.github.llama2j.model.Matrix.Q8 w, int r0, int r1) {
                vector.matmulQ8(out, xq, xs, w, r0, r1);
            }

            @Override
            public String name() {
                return vector.name();
            }
        };
        try (Model m = ModelLoader.load(file);
             CpuEngine e = new CpuEngine(m, recording, FloatMath.standard(), 2, false)) {
            e.forward(1, 0);
            e.forward(2, 1);
            java.util.Set<String> warmed = new java.util.TreeSet<>();
            java.util.Set<String> types = new java.util.TreeSet<>();
            for (CpuEngine.ProductKind kind : e.productKinds()) {
                for (MatrixForm form : kind.shapes()) {
                    warmed.add(product(form));
                    types.add(form.source().typeName());
                }
            }
            assertEquals(new java.util.TreeSet<>(ran), warmed);
            org.junit.jupiter.api.Assertions.assertTrue(types.containsAll(java.util.List.of("Q4_K", "Q6_K")), types.toString());
        }
    }

    /** A product's kernel and input length: the matrix's type, form, memory segment class and columns. */
    private static String product(MatrixForm f) {
        io.github.llama2j.model.Matrix read = f instanceof MatrixForm.Copy c ? c.copy() : f.source();
        Object segment = switch (read) {
            case io.github.llama2j.model.Matrix.F32 x -> x.data().getClass();
            case io.github.llama2j.model.Matrix.Q8 x -> x.values().getClass();
            case io.github.llama2j.model.Matrix.Ggml x -> x.data().getClass();
        };
        return f.source().typeName() + " " + f.getClass().getSimpleName() + " " + segment + " " + f.source().cols();
    }

    /**
     * A new engine without warm-up: the prompt as one batch, then greedy tokens; the throwaway passes run before
     * position {@code warmUpAt} is fed (never when negative). The logits after each position (the prompt's last
     * one and on; earlier rows are null).
     */
    private static float[][] generate(Model m, boolean exactKernels, int warmUpAt) {
        Kernels kernels = exactKernels ? new ExactVectorKernels() : new VectorKernels();
        float[][] logits = new float[POSITIONS][];
        int[] prompt = new SplittableRandom(3).ints(PROMPT, 0, m.config().vocabSize()).toArray();
        try (CpuEngine e = new CpuEngine(m, kernels, FloatMath.standard(), 2, false)) {
            if (warmUpAt == 0) {
                e.throwawayPasses(m);
            }
            logits[PROMPT - 1] = e.forwardBatch(prompt, 0).clone();
            for (int pos = PROMPT; pos < POSITIONS; pos++) {
                if (pos == warmUpAt) {
                    e.throwawayPasses(m);
                }
                logits[pos] = e.forward(argmax(logits[pos - 1]), pos).clone();
            }
        }
        return logits;
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }
}
