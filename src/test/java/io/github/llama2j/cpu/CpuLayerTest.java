package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Matrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The CPU kernels on a slice of rows, as the hybrid engine's CPU shard runs them: every row computed
 * equals the scalar reference's, rows outside the slice are untouched, and an attention cache holding a
 * slice of the key/value heads gives its heads exactly what the whole cache gives them.
 */
class CpuLayerTest {
    private final SplittableRandom rnd = new SplittableRandom(4);
    private final ScalarKernels reference = new ScalarKernels();

    /** Matmuls on a row range, three matmuls in one dispatch and W1/W3 with SwiGLU, with 3 threads, F32 and Q8. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void matmulsOnRowRangesMatchTheReference(boolean q8) {
        int cols = 64, gs = 16;
        try (Arena arena = Arena.ofShared(); Parallel parallel = new Parallel(3)) {
            // exact kernels: run.c's summation order, so every row equals the reference bit for bit
            CpuLayer ops = new CpuLayer(io.github.llama2j.engine.Engines.cpuKernels(true), parallel, FloatMath.JAVA);
            Input input = input(cols, gs);
            Activations in = input.in();
            Matrix a = matrix(arena, q8, 93, cols, gs), b = matrix(arena, q8, 37, cols, gs), c = matrix(arena, q8, 21, cols, gs);

            float[] out = filled(93);
            ops.matmul(out, in, new MatrixForm.File(a), 17, 80);
            float[] expected = filled(93);
            rows(expected, input, a, 17, 80);
            assertArrayEquals(expected, out, "rows [17, 80) computed, the others untouched");

            assertMatmul3(ops, input, a, b, c, Integer.MAX_VALUE);

            float[] hb = filled(37), hb2 = filled(37);
            ops.matmulSwiglu(hb, hb2, new MatrixForm.File(b), new MatrixForm.File(matrix(arena, q8, 37, cols, gs)), in);
            float[] eh = new float[37];
            rows(eh, input, b, 0, 37);
            for (int i = 0; i < 37; i++) {
                float silu = eh[i] * (1.0f / (1.0f + FloatMath.JAVA.exp(-eh[i])));
                assertEquals(silu * hb2[i], hb[i], "swiglu row " + i);
            }
        }
    }

    /**
     * The warm-up's scratch engine's products ({@link CpuLayer#warmUpRows}): each computes its first rows, as the
     * reference does, and leaves every row after them untouched, whether alone, three in one dispatch or with SwiGLU,
     * one token at a time and batched.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void warmUpProductsComputeOnlyTheirFirstRows(boolean q8) {
        int cols = 64, gs = 16;
        try (Arena arena = Arena.ofShared(); Parallel parallel = new Parallel(3)) {
            int cap = CpuLayer.warmUpRows(parallel);
            assertEquals(96, cap, "two blocks of 16 rows per thread");
            CpuLayer ops = new CpuLayer(io.github.llama2j.engine.Engines.cpuKernels(true), parallel, FloatMath.JAVA, new StepTimer(), cap);
            Input input = input(cols, gs);
            Activations in = input.in();
            Matrix a = matrix(arena, q8, 150, cols, gs), b = matrix(arena, q8, 120, cols, gs), c = matrix(arena, q8, 40, cols, gs);

            float[] out = filled(150);
            ops.matmul(out, in, new MatrixForm.File(a));
            float[] expected = filled(150);
            rows(expected, input, a, 0, cap);
            assertArrayEquals(expected, out, "rows [0, 96) computed, the others untouched");

            assertMatmul3(ops, input, a, b, c, cap); // c has fewer rows than the cap: all of them

            float[] hb = filled(120), hb2 = filled(120);
            ops.matmulSwiglu(hb, hb2, new MatrixForm.File(b), new MatrixForm.File(matrix(arena, q8, 120, cols, gs)), in);
            for (int i = cap; i < 120; i++) {
                assertEquals(-12345.0f, hb[i], "swiglu row " + i + " untouched");
            }

            // batched: three tokens, the SIMD batch kernels; rows past the cap untouched, the others close to the reference
            BatchLayer batch = new BatchLayer(new VectorKernels(), parallel, FloatMath.JAVA, cap);
            int tokens = 3;
            float[][] xb = new float[tokens][];
            for (int t = 0; t < tokens; t++) {
                xb[t] = RandomMatrices.floats(rnd, cols);
            }
            BatchActivations bin = new BatchActivations(tokens, cols);
            bin.input(xb, tokens, cols);
            float[][] bout = new float[tokens][];
            for (int t = 0; t < tokens; t++) {
                bout[t] = filled(150);
            }
            batch.matmul(bout, bin, new MatrixForm.File(a));
            for (int t = 0; t < tokens; t++) {
                byte[] tq = new byte[cols];
                float[] ts = new float[cols / gs];
                ScalarKernels.quantize(xb[t], cols, gs, tq, ts);
                float[] e = filled(150);
                rows(e, xb[t], tq, ts, a, 0, cap);
                assertArrayEquals(e, bout[t], 1e-4f, "token " + t + ": rows [0, 96) computed, the others untouched");
            }
        }
    }

    /** Key/value heads [1, 3) of 4 (two query heads each): the slice's heads see exactly the whole cache's values. */
    @Test
    void attentionOverASliceOfTheHeadsMatchesTheWholeCache() {
        int layers = 2, seqLen = 40, headSize = 16, kvHeads = 4, kvMul = 2, kv0 = 1, kv1 = 3;
        int kvDim = kvHeads * headSize, heads = kvHeads * kvMul;
        int h0 = kv0 * kvMul, sliceHeads = (kv1 - kv0) * kvMul;
        FloatMath math = FloatMath.JAVA;
        Attention whole = new Attention(layers, seqLen, headSize, kvHeads, kvMul, math);
        Attention slice = new Attention(layers, seqLen, headSize, kv1 - kv0, kvMul, math);
        float[][] keys = new float[seqLen][], values = new float[seqLen][];
        int layer = 1;
        try (Parallel parallel = new Parallel(2)) {
            CpuLayer ops = new CpuLayer(reference, parallel, math);
            for (int pos = 0; pos < seqLen; pos++) {
                keys[pos] = RandomMatrices.floats(rnd, kvDim);
                values[pos] = RandomMatrices.floats(rnd, kvDim);
                whole.store(layer, pos, keys[pos], values[pos]);
                slice.store(layer, pos, Arrays.copyOfRange(keys[pos], kv0 * headSize, kv1 * headSize),
                        Arrays.copyOfRange(values[pos], kv0 * headSize, kv1 * headSize));
                if (pos % 13 != 0 && pos != seqLen - 1) {
                    continue;
                }
                float[] q = RandomMatrices.floats(rnd, heads * headSize);
                float[] outWhole = new float[heads * headSize];
                ops.attention(whole, layer, pos, heads, q, outWhole, new float[heads * whole.scoreStride()]);
                float[] qSlice = Arrays.copyOfRange(q, h0 * headSize, (h0 + sliceHeads) * headSize);
                float[] outSlice = new float[sliceHeads * headSize];
                ops.attention(slice, layer, pos, sliceHeads, qSlice, outSlice, new float[sliceHeads * slice.scoreStride()]);
                assertArrayEquals(Arrays.copyOfRange(outWhole, h0 * headSize, (h0 + sliceHeads) * headSize), outSlice,
                        "heads [" + h0 + ", " + (h0 + sliceHeads) + ") at pos " + pos);

                // and both are run.c's attention
                float[] kc = new float[seqLen * kvDim], vc = new float[seqLen * kvDim];
                for (int t = 0; t <= pos; t++) {
                    System.arraycopy(keys[t], 0, kc, t * kvDim, kvDim);
                    System.arraycopy(values[t], 0, vc, t * kvDim, kvDim);
                }
                float[] expected = new float[heads * headSize];
                for (int h = 0; h < heads; h++) {
                    ScalarKernels.attentionHead(expected, q, kc, vc, new float[seqLen], 0, h, pos, headSize, kvDim, kvMul, math);
                }
                assertArrayEquals(expected, outWhole, "run.c's attention at pos " + pos);
            }
        }
    }

    /** Q, K and V in one dispatch: each output's first min(rows, cap) rows as the reference's, the rest untouched. */
    private void assertMatmul3(CpuLayer ops, Input input, Matrix a, Matrix b, Matrix c, int cap) {
        Matrix[] ms = {a, b, c};
        float[][] out = new float[3][], expected = new float[3][];
        for (int i = 0; i < 3; i++) {
            out[i] = filled(ms[i].rows());
            expected[i] = filled(ms[i].rows());
            rows(expected[i], input, ms[i], 0, Math.min(ms[i].rows(), cap));
        }
        ops.matmul3(out[0], new MatrixForm.File(a), out[1], new MatrixForm.File(b), out[2], new MatrixForm.File(c), input.in());
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(expected[i], out[i], "matmul3, matrix " + i);
        }
    }

    /** A random input: its values, as the kernels take them, and runq's quantization of them (the reference's input). */
    private record Input(float[] x, Activations in, byte[] xq, float[] xs) {
    }

    private Input input(int cols, int gs) {
        float[] x = RandomMatrices.floats(rnd, cols);
        Activations in = new Activations(cols);
        in.input(x, cols);
        byte[] xq = new byte[cols];
        float[] xs = new float[cols / gs];
        ScalarKernels.quantize(x, cols, gs, xq, xs);
        return new Input(x, in, xq, xs);
    }

    private Matrix matrix(Arena arena, boolean q8, int rows, int cols, int gs) {
        return q8 ? RandomMatrices.q8(arena, rnd, rows, cols, gs) : RandomMatrices.f32(arena, rnd, rows, cols, 0);
    }

    private void rows(float[] out, Input in, Matrix m, int r0, int r1) {
        rows(out, in.x(), in.xq(), in.xs(), m, r0, r1);
    }

    private void rows(float[] out, float[] x, byte[] xq, float[] xs, Matrix m, int r0, int r1) {
        switch (m) {
            case Matrix.F32 f -> reference.matmulF32(out, x, f, r0, r1);
            case Matrix.Q8 q -> reference.matmulQ8(out, xq, xs, q, r0, r1);
            case Matrix.Ggml g -> throw new AssertionError("llama2.c types only here");
        }
    }

    private static float[] filled(int n) {
        float[] a = new float[n];
        Arrays.fill(a, -12345.0f);
        return a;
    }
}
