package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/** The batched kernels before 2026-12-02's tiling (2 rows x 4 token vectors), kept for the A/B in BatchMatmulBenchmark. */
final class BatchMatmulBaseline {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int FL = F.length();
    static final int TILE_ROWS = CpuLayer.ROW_GRAIN;
    static final int F32_BLOCK = 64;
    private static final ValueLayout.OfFloat FLOAT = ScalarKernels.FLOAT;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final VectorSpecies<Byte> B_FOR_F = FL >= 8
            ? ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(FL * Byte.SIZE)) : null;
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> WEIGHTS = ThreadLocal.withInitial(() -> new float[0]);

    private BatchMatmulBaseline() {
    }

    /** The old layout, xT[j * stride + b], of activations transposed in panels ({@link BatchMatmul#xIndex}). */
    static float[] rowMajor(float[] panels, int n, int stride) {
        float[] x = new float[n * stride];
        for (int j = 0; j < n; j++) {
            for (int b = 0; b < stride; b++) {
                x[j * stride + b] = panels[BatchMatmul.xIndex(j, b, n, stride)];
            }
        }
        return x;
    }

    private static float[] tile(int size) {
        float[] t = TILE.get();
        if (t.length < size) {
            t = new float[size];
            TILE.set(t);
        }
        Arrays.fill(t, 0, size, 0.0f);
        return t;
    }

    /** out[b][rt + i] = tile[i * stride + b]. */
    private static void scatter(float[] tile, float[][] out, int rt, int rows, int stride, int tokens) {
        for (int b = 0; b < tokens; b++) {
            float[] o = out[b];
            for (int i = 0; i < rows; i++) {
                o[rt + i] = tile[i * stride + b];
            }
        }
    }

    // ------------------------------------------------------------------ float32

    static void f32(float[][] out, float[] xT, int stride, int tokens, Matrix.F32 w, int r0, int r1) {
        int n = w.cols(), vectors = stride / FL;
        MemorySegment data = w.data();
        long rowBytes = (long) n * Float.BYTES;
        for (int rt = r0; rt < r1; rt += TILE_ROWS) {
            int rows = Math.min(TILE_ROWS, r1 - rt);
            float[] tile = tile(rows * stride);
            for (int k0 = 0; k0 < n; k0 += F32_BLOCK) {
                int k1 = Math.min(k0 + F32_BLOCK, n);
                int i = 0;
                for (; i + 2 <= rows; i += 2) {
                    long w0 = (rt + i) * rowBytes, w1 = w0 + rowBytes;
                    int o0 = i * stride, o1 = o0 + stride;
                    int v = 0;
                    for (; v + 4 <= vectors; v += 4) {
                        int t = v * FL;
                        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
                        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
                        for (int k = k0; k < k1; k++) {
                            FloatVector b0 = FloatVector.broadcast(F, data.get(FLOAT, w0 + 4L * k));
                            FloatVector b1 = FloatVector.broadcast(F, data.get(FLOAT, w1 + 4L * k));
                            int xo = k * stride + t;
                            FloatVector x0 = FloatVector.fromArray(F, xT, xo), x1 = FloatVector.fromArray(F, xT, xo + FL);
                            FloatVector x2 = FloatVector.fromArray(F, xT, xo + 2 * FL), x3 = FloatVector.fromArray(F, xT, xo + 3 * FL);
                            a00 = x0.fma(b0, a00);
                            a01 = x1.fma(b0, a01);
                            a02 = x2.fma(b0, a02);
                            a03 = x3.fma(b0, a03);
                            a10 = x0.fma(b1, a10);
                            a11 = x1.fma(b1, a11);
                            a12 = x2.fma(b1, a12);
                            a13 = x3.fma(b1, a13);
                        }
                        int t0 = o0 + t, t1 = o1 + t;
                        FloatVector.fromArray(F, tile, t0).add(a00).intoArray(tile, t0);
                        FloatVector.fromArray(F, tile, t0 + FL).add(a01).intoArray(tile, t0 + FL);
                        FloatVector.fromArray(F, tile, t0 + 2 * FL).add(a02).intoArray(tile, t0 + 2 * FL);
                        FloatVector.fromArray(F, tile, t0 + 3 * FL).add(a03).intoArray(tile, t0 + 3 * FL);
                        FloatVector.fromArray(F, tile, t1).add(a10).intoArray(tile, t1);
                        FloatVector.fromArray(F, tile, t1 + FL).add(a11).intoArray(tile, t1 + FL);
                        FloatVector.fromArray(F, tile, t1 + 2 * FL).add(a12).intoArray(tile, t1 + 2 * FL);
                        FloatVector.fromArray(F, tile, t1 + 3 * FL).add(a13).intoArray(tile, t1 + 3 * FL);
                    }
                    for (; v < vectors; v++) {
                        int t = v * FL;
                        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
                        for (int k = k0; k < k1; k++) {
                            FloatVector x0 = FloatVector.fromArray(F, xT, k * stride + t);
                            a0 = x0.fma(FloatVector.broadcast(F, data.get(FLOAT, w0 + 4L * k)), a0);
                            a1 = x0.fma(FloatVector.broadcast(F, data.get(FLOAT, w1 + 4L * k)), a1);
                        }
                        FloatVector.fromArray(F, tile, o0 + t).add(a0).intoArray(tile, o0 + t);
                        FloatVector.fromArray(F, tile, o1 + t).add(a1).intoArray(tile, o1 + t);
                    }
                }
                if (i < rows) { // the tile's last row when it has an odd number
                    long w0 = (rt + i) * rowBytes;
                    int o0 = i * stride;
                    for (int v = 0; v < vectors; v++) {
                        int t = v * FL;
                        FloatVector a0 = FloatVector.zero(F);
                        for (int k = k0; k < k1; k++) {
                            a0 = FloatVector.fromArray(F, xT, k * stride + t).fma(FloatVector.broadcast(F, data.get(FLOAT, w0 + 4L * k)), a0);
                        }
                        FloatVector.fromArray(F, tile, o0 + t).add(a0).intoArray(tile, o0 + t);
                    }
                }
            }
            scatter(tile, out, rt, rows, stride, tokens);
        }
    }


    /**
     * The scalar reference of {@link #f32}, in its order: for each row and token, per block of
     * {@link #F32_BLOCK} columns a fused multiply-add chain from 0, the block sums added in order.
     * x is row-major here, {@code x[b][j]}.

    // ------------------------------------------------------------------ runq's Q8, bit-identical

    /**
     * As {@link #f32} with a runq group as the column block: xT holds the int8 activations as floats and
     * sT the activation scales, {@code sT[g * stride + b]}; per group, the dot (exact) times the weight
     * scale times the activation scale is added to the token's sum.
     */
    static void q8(float[][] out, float[] xT, float[] sT, int stride, int tokens, Matrix.Q8 w, int r0, int r1) {
        int n = w.cols(), gs = w.groupSize(), vectors = stride / FL;
        MemorySegment values = w.values(), scales = w.scales();
        float[] wf = WEIGHTS.get();
        if (wf.length < TILE_ROWS * gs) {
            wf = new float[TILE_ROWS * gs];
            WEIGHTS.set(wf);
        }
        for (int rt = r0; rt < r1; rt += TILE_ROWS) {
            int rows = Math.min(TILE_ROWS, r1 - rt);
            float[] tile = tile(rows * stride);
            for (int k0 = 0, g = 0; k0 < n; k0 += gs, g++) {
                int so = g * stride;
                // the tile's weights of this group as floats, converted once for all the tokens (converting in
                // the multiply-add loop below ran it at a third of the speed)
                for (int i = 0; i < rows; i++) {
                    long base = (long) (rt + i) * n + k0;
                    int k = 0;
                    if (B_FOR_F != null) {
                        for (; k + FL <= gs; k += FL) {
                            ((FloatVector) ByteVector.fromMemorySegment(B_FOR_F, values, base + k, LE).convertShape(VectorOperators.B2F, F, 0))
                                    .intoArray(wf, i * gs + k);
                        }
                    }
                    for (; k < gs; k++) {
                        wf[i * gs + k] = values.get(BYTE, base + k);
                    }
                }
                int i = 0;
                for (; i + 2 <= rows; i += 2) {
                    int w0 = i * gs, w1 = w0 + gs;
                    long g0 = ((long) (rt + i) * n + k0) / gs;
                    float s0 = scales.getAtIndex(FLOAT, g0), s1 = scales.getAtIndex(FLOAT, g0 + n / gs);
                    int o0 = i * stride, o1 = o0 + stride;
                    int v = 0;
                    for (; v + 4 <= vectors; v += 4) {
                        int t = v * FL;
                        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
                        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
                        for (int k = 0; k < gs; k++) {
                            FloatVector b0 = FloatVector.broadcast(F, wf[w0 + k]);
                            FloatVector b1 = FloatVector.broadcast(F, wf[w1 + k]);
                            int xo = (k0 + k) * stride + t;
                            FloatVector x0 = FloatVector.fromArray(F, xT, xo), x1 = FloatVector.fromArray(F, xT, xo + FL);
                            FloatVector x2 = FloatVector.fromArray(F, xT, xo + 2 * FL), x3 = FloatVector.fromArray(F, xT, xo + 3 * FL);
                            a00 = x0.fma(b0, a00);
                            a01 = x1.fma(b0, a01);
                            a02 = x2.fma(b0, a02);
                            a03 = x3.fma(b0, a03);
                            a10 = x0.fma(b1, a10);
                            a11 = x1.fma(b1, a11);
                            a12 = x2.fma(b1, a12);
                            a13 = x3.fma(b1, a13);
                        }
                        // runq's per-group term, (dot * wScale) * xScale, added to each token's sum
                        int t0 = o0 + t, t1 = o1 + t, st = so + t;
                        FloatVector xs0 = FloatVector.fromArray(F, sT, st), xs1 = FloatVector.fromArray(F, sT, st + FL);
                        FloatVector xs2 = FloatVector.fromArray(F, sT, st + 2 * FL), xs3 = FloatVector.fromArray(F, sT, st + 3 * FL);
                        FloatVector.fromArray(F, tile, t0).add(a00.mul(s0).mul(xs0)).intoArray(tile, t0);
                        FloatVector.fromArray(F, tile, t0 + FL).add(a01.mul(s0).mul(xs1)).intoArray(tile, t0 + FL);
                        FloatVector.fromArray(F, tile, t0 + 2 * FL).add(a02.mul(s0).mul(xs2)).intoArray(tile, t0 + 2 * FL);
                        FloatVector.fromArray(F, tile, t0 + 3 * FL).add(a03.mul(s0).mul(xs3)).intoArray(tile, t0 + 3 * FL);
                        FloatVector.fromArray(F, tile, t1).add(a10.mul(s1).mul(xs0)).intoArray(tile, t1);
                        FloatVector.fromArray(F, tile, t1 + FL).add(a11.mul(s1).mul(xs1)).intoArray(tile, t1 + FL);
                        FloatVector.fromArray(F, tile, t1 + 2 * FL).add(a12.mul(s1).mul(xs2)).intoArray(tile, t1 + 2 * FL);
                        FloatVector.fromArray(F, tile, t1 + 3 * FL).add(a13.mul(s1).mul(xs3)).intoArray(tile, t1 + 3 * FL);
                    }
                    for (; v < vectors; v++) {
                        int t = v * FL;
                        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
                        for (int k = 0; k < gs; k++) {
                            FloatVector x0 = FloatVector.fromArray(F, xT, (k0 + k) * stride + t);
                            a0 = x0.fma(FloatVector.broadcast(F, wf[w0 + k]), a0);
                            a1 = x0.fma(FloatVector.broadcast(F, wf[w1 + k]), a1);
                        }
                        FloatVector xs = FloatVector.fromArray(F, sT, so + t);
                        FloatVector.fromArray(F, tile, o0 + t).add(a0.mul(s0).mul(xs)).intoArray(tile, o0 + t);
                        FloatVector.fromArray(F, tile, o1 + t).add(a1.mul(s1).mul(xs)).intoArray(tile, o1 + t);
                    }
                }
                if (i < rows) { // the tile's last row when it has an odd number
                    int w0 = i * gs;
                    float s0 = scales.getAtIndex(FLOAT, ((long) (rt + i) * n + k0) / gs);
                    int o0 = i * stride;
                    for (int v = 0; v < vectors; v++) {
                        int t = v * FL;
                        FloatVector a0 = FloatVector.zero(F);
                        for (int k = 0; k < gs; k++) {
                            a0 = FloatVector.fromArray(F, xT, (k0 + k) * stride + t).fma(FloatVector.broadcast(F, wf[w0 + k]), a0);
                        }
                        FloatVector xs = FloatVector.fromArray(F, sT, so + t);
                        FloatVector.fromArray(F, tile, o0 + t).add(a0.mul(s0).mul(xs)).intoArray(tile, o0 + t);
                    }
                }
            }
            scatter(tile, out, rt, rows, stride, tokens);
        }
    }
}
