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
            float[] x = RandomMatrices.floats(rnd, cols);
            Activations in = new Activations(cols);
            in.input(x, cols);
            // the reference's input: runq's quantization of x
            byte[] xq = new byte[cols];
            float[] xs = new float[cols / gs];
            ScalarKernels.quantize(x, cols, gs, xq, xs);
            Matrix a = matrix(arena, q8, 93, cols, gs), b = matrix(arena, q8, 37, cols, gs), c = matrix(arena, q8, 21, cols, gs);

            float[] out = filled(93);
            ops.matmul(out, in, new MatrixForm.File(a), 17, 80);
            float[] expected = filled(93);
            rows(expected, x, xq, xs, a, 17, 80);
            assertArrayEquals(expected, out, "rows [17, 80) computed, the others untouched");

            float[] o0 = filled(93), o1 = filled(37), o2 = filled(21);
            ops.matmul3(o0, new MatrixForm.File(a), o1, new MatrixForm.File(b), o2, new MatrixForm.File(c), in);
            float[] e0 = filled(93), e1 = filled(37), e2 = filled(21);
            rows(e0, x, xq, xs, a, 0, 93);
            rows(e1, x, xq, xs, b, 0, 37);
            rows(e2, x, xq, xs, c, 0, 21);
            assertArrayEquals(e0, o0, "matmul3 first");
            assertArrayEquals(e1, o1, "matmul3 second");
            assertArrayEquals(e2, o2, "matmul3 third");

            float[] hb = filled(37), hb2 = filled(37);
            ops.matmulSwiglu(hb, hb2, new MatrixForm.File(b), new MatrixForm.File(matrix(arena, q8, 37, cols, gs)), in);
            float[] eh = new float[37];
            rows(eh, x, xq, xs, b, 0, 37);
            for (int i = 0; i < 37; i++) {
                float silu = eh[i] * (1.0f / (1.0f + FloatMath.JAVA.exp(-eh[i])));
                assertEquals(silu * hb2[i], hb[i], "swiglu row " + i);
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

    private Matrix matrix(Arena arena, boolean q8, int rows, int cols, int gs) {
        return q8 ? RandomMatrices.q8(arena, rnd, rows, cols, gs) : RandomMatrices.f32(arena, rnd, rows, cols, 0);
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
