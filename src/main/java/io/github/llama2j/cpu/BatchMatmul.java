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

/**
 * Matrix products of a batch of B tokens (batched prefill): {@code out[b][r] = sum_j m[r][j] * x[b][j]}
 * for rows r in [r0, r1) and every token b, each weight read from memory once for all B tokens. One token's
 * product streams the whole matrix for a handful of multiply-adds per byte and waits on memory; B tokens
 * share each weight, so the batch runs at the speed of arithmetic instead.
 *
 * <p><b>Layout.</b> The tokens run along the vector lanes: the activations are transposed,
 * {@code xT[j * stride + b]} ({@link BatchActivations}, stride = B rounded up to the lane count), so one
 * broadcast weight {@code m[r][j]} multiply-adds into a vector of tokens and no horizontal sum is ever
 * needed. The loops walk a tile of {@link #TILE_ROWS} rows one column block at a time (a block's
 * activations, at most 64 columns × 64 tokens = 16 KiB, stay in L1 while the tile's rows pass over them),
 * two rows and four token vectors per pass (eight accumulators: 14 vector registers with the operands, so
 * AVX2's 16 hold them); the block sums of a tile gather in a scratch {@code (TILE_ROWS, stride)} and are
 * written back to {@code out[b][r]} at the end.
 *
 * <p><b>Order.</b> Each (row, token) is one lane, so its arithmetic is scalar arithmetic, in one order at
 * every vector width:
 * <ul>
 *   <li>{@link Matrix.F32}: per block of {@link #F32_BLOCK} columns, a fused multiply-add chain from 0 in
 *       column order; the block sums added in block order ({@link #f32Reference}, bit-identical). That is
 *       not the one-token kernel's order (a few ulps apart, like any two float orders).</li>
 *   <li>{@link Matrix.Q8} (runq): per group, the products of int8 weights and int8 activations are exact
 *       in float, and so are their sums while they stay within 2^24 (a group of up to
 *       {@link #MAX_EXACT_GROUP}: 1024 · 128 · 128 = 2^24), so the float chain gives runq's integer dot
 *       exactly; then {@code val += (dot * wScale) * xScale}, group after group, as runq. Bit-identical to
 *       {@link ScalarKernels#matmulQ8} for each token, hence to the one-token path.</li>
 *   <li>GGML types (and runq groups over 1024): the one-token kernel of {@code perToken} for each token, a
 *       tile of {@link #TILE_ROWS} rows at a time, so the tile's weights come from memory for the first
 *       token and from cache for the others. Bit-identical to the one-token path (same kernel, same rows,
 *       activations converted per token by {@link Activations}).</li>
 * </ul>
 *
 * <p>F32 and Q8 have a loop each, alike in shape: a shared loop taking the weight load as a lambda or the
 * species as an argument would not be intrinsified (see {@link VectorKernels}' note on q8Full and q8Half).
 */
final class BatchMatmul {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int FL = F.length();
    /** Rows per tile: the block sums of a tile stay in cache, and tiles start on the pool's row grain. */
    static final int TILE_ROWS = CpuLayer.ROW_GRAIN;
    /** Columns per F32 block (64 columns × 64 tokens of floats: 16 KiB, half an L1). */
    static final int F32_BLOCK = 64;
    /** Largest runq group whose int8 dot is exact as a float sum. */
    static final int MAX_EXACT_GROUP = 1024;

    private static final ValueLayout.OfFloat FLOAT = ScalarKernels.FLOAT;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** FL bytes, widened to FL floats (null at 128 bits: no byte vector is shorter than 64 bits; scalar there). */
    private static final VectorSpecies<Byte> B_FOR_F = FL >= 8
            ? ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(FL * Byte.SIZE)) : null;

    /** Each worker's tile of block sums, (TILE_ROWS, stride). */
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[0]);
    /** Each worker's Q8 weights of a tile and group as floats, (TILE_ROWS, group_size). */
    private static final ThreadLocal<float[]> WEIGHTS = ThreadLocal.withInitial(() -> new float[0]);

    private BatchMatmul() {
    }

    /** Whether {@link #matmul} reads m through the transposed forms (else through each token's {@link Activations}). */
    static boolean transposed(Matrix m) {
        return switch (m) {
            case Matrix.F32 f -> true;
            case Matrix.Q8 q -> q.groupSize() <= MAX_EXACT_GROUP;
            case Matrix.Ggml g -> false;
        };
    }

    /** Rows [r0, r1) of out[b] = m · x[b] for every token b of the batch; {@code in} is prepared for m. */
    static void matmul(float[][] out, BatchActivations in, Matrix m, int r0, int r1, Kernels perToken) {
        if (r0 >= r1) {
            return;
        }
        in.check(m);
        switch (m) {
            case Matrix.F32 f -> f32(out, in.xT, in.stride(), in.tokens(), f, r0, r1);
            case Matrix.Q8 q when transposed(q) -> q8(out, in.xT, in.sT, in.stride(), in.tokens(), q, r0, r1);
            case Matrix.Q8 q -> perTokenTiles(out, in, q, r0, r1, perToken);
            case Matrix.Ggml g -> perTokenTiles(out, in, g, r0, r1, perToken);
        }
    }

    /** The one-token kernel for each token, a tile of rows at a time (the tile's weights then come from cache). */
    private static void perTokenTiles(float[][] out, BatchActivations in, Matrix m, int r0, int r1, Kernels perToken) {
        for (int rt = r0; rt < r1; rt += TILE_ROWS) {
            int re = Math.min(rt + TILE_ROWS, r1);
            for (int b = 0; b < in.tokens(); b++) {
                perToken.matmul(out[b], in.token(b), m, rt, re);
            }
        }
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
     */
    static void f32Reference(float[][] out, float[][] x, int tokens, Matrix.F32 w, int r0, int r1) {
        int n = w.cols();
        MemorySegment data = w.data();
        for (int b = 0; b < tokens; b++) {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * n * Float.BYTES;
                float sum = 0.0f;
                for (int k0 = 0; k0 < n; k0 += F32_BLOCK) {
                    float block = 0.0f;
                    for (int k = k0; k < Math.min(k0 + F32_BLOCK, n); k++) {
                        block = Math.fma(data.get(FLOAT, base + 4L * k), x[b][k], block);
                    }
                    sum += block;
                }
                out[b][r] = sum;
            }
        }
    }

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
