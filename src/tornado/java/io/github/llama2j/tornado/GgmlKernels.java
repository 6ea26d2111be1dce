package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.ShortArray;

import static io.github.llama2j.tornado.KernelHelpers.byteOf;
import static io.github.llama2j.tornado.KernelHelpers.dotF32;
import static io.github.llama2j.tornado.KernelHelpers.reduceSlice;
import static io.github.llama2j.tornado.KernelHelpers.reduceSum;
import static io.github.llama2j.tornado.KernelHelpers.rmsScale;
import static io.github.llama2j.tornado.KernelHelpers.slice;
import static io.github.llama2j.tornado.KernelHelpers.sliceLane;
import static io.github.llama2j.tornado.KernelHelpers.sliceRow;
import static io.github.llama2j.tornado.KernelHelpers.swiglu;
import static io.github.llama2j.tornado.TransformerKernels.MAX_LOCAL;

/**
 * The device kernels of GGUF models: llama.cpp's arithmetic as the CPU engine follows it
 * ({@code cpu.Activations}, {@code cpu.GgmlOps}, {@code cpu.ScalarKernels}' GGML matmuls), for weights of
 * type F32, F16 and Q8_0 (Q8_0 repacked at load into int8 values and float32 block scales, group 32).
 *
 * <ul>
 *   <li><b>Activations before a product</b>: the engine's kernels ({@link #productF32}, {@link #w13F32},
 *       {@link #qkvF32} and their F16/Q8_0 twins) derive, in every work-group, the form their weight type reads,
 *       with the same operations as {@link #prepare}, which writes the three forms as a launch of its own
 *       (every matmul input written in the three
 *       forms the weight types read, once per input: float32 as is (F32 weights), each value rounded to
 *       F16, nearest even (F16 weights), and Q8_0 blocks of 32 (Q8_0 weights: {@code d = F16(amax / 127)},
 *       {@code q = round-half-even(x * (127 / amax))})). The F16 rounding is done with integer operations on
 *       the float's bits ({@link #roundToHalf}): no device needs fp16 support (PoCL has none).</li>
 *   <li><b>Products</b>: Q8_0 × Q8_0 per block {@code sumf += sumi * (d_w * d_x)}; F16 weights decoded from
 *       their 16 bits ({@link #halfToFloat}, exact) times the F16-rounded activations (exact products) summed
 *       in float; F32 as is. The engine's kernels compute {@code rowsPerGroup} rows per work-group
 *       ({@link TornadoSettings#matmulRows}), a slice of the work-group per row with a local-memory tree for the
 *       row's sum (see "Several rows per work-group" below); {@link #matmulF32} and its twins (the hybrid's,
 *       after {@link #prepare}) one row per work-group.</li>
 *   <li><b>After q/k/v</b> ({@link #qkvHeads}): the biases (qwen2), each head's RMSNorm (qwen3), RoPE in the
 *       model's style (NORM: adjacent pairs; NEOX: halves) from the host's precomputed table, then k and v
 *       into the caches.</li>
 * </ul>
 * Sums run in other orders than ggml's (trees in local memory), so logits agree with llama.cpp's within
 * float rounding, plus an activation that rounds the other way at a Q8_0 boundary now and then (see
 * docs/tornadovm.md for what was measured). Static and allocation-free, as TornadoVM requires.
 */
public final class GgmlKernels {
    /** Q8_0's block: 32 values, one scale. */
    public static final int QK = 32;

    /** {@link #prepare}'s source: rmsnorm(in) * weight. */
    public static final int FROM_NORM = 0;
    /** {@link #prepare}'s source: in as it is. */
    public static final int FROM_INPUT = 1;
    /** {@link #prepare}'s source: swiglu(in[i], in[n + i]) (in stacks the w1 and w3 outputs). */
    public static final int FROM_SWIGLU = 2;

    private GgmlKernels() {
    }

    // ------------------------------------------------------------------ F16 by integer and exact float operations

    /** 2^-24: the F16 subnormal step. */
    private static final float TWO_M24 = 5.9604645e-8f;
    /** 2^-14: the smallest normal F16. */
    private static final float TWO_M14 = 6.1035156e-5f;

    /**
     * An IEEE half (its 16 bits in the low half of {@code h}) as a float: exact (the significand has at most
     * 11 bits and the scale is a power of two), subnormals and infinities included; a NaN half gives a NaN
     * (payload not kept). TornadoVM's OpenCL backend has no bit reinterpretation (Float.intBitsToFloat), so
     * the value is built with integer operations and exact float products.
     */
    public static float halfToFloat(int h) {
        int exp = (h >> 10) & 0x1F;
        int mant = h & 0x3FF;
        float v;
        if (exp == 0x1F) {
            // inf, or a NaN made at run time: TornadoVM 5.2's OpenCL code generator spells a NaN constant "NaNF",
            // which no OpenCL compiler accepts (it writes inf as 1.0F / 0.0F), and Graal folds inf * 0 into one
            v = mant == 0 ? Float.POSITIVE_INFINITY : TornadoMath.sqrt(-(float) mant);
        } else if (exp != 0) {
            v = (1024 + mant) * (TWO_M24 * (1 << (exp - 1)));   // (1024 + m) * 2^(exp - 25)
        } else {
            v = mant * TWO_M24;
        }
        return (h & 0x8000) != 0 ? -v : v;
    }

    /**
     * {@code f} rounded to the nearest F16 value (ties to even), returned as a float, as
     * {@code Float.float16ToFloat(Float.floatToFloat16(f))}: 65520 and above become inf, values below 2^-14 round
     * to multiples of 2^-24 (F16 subnormals). The magnitude's binade is found by comparisons, then
     * |f| / step is exact (a power-of-two step), rounded half to even in integers, and scaled back exactly.
     */
    public static float roundToHalf(float f) {
        float a = TornadoMath.abs(f);
        float r;
        if (a != a || a == 0.0f) {
            r = f; // NaN, ±0
        } else if (a >= 65520.0f) {
            r = f < 0 ? Float.NEGATIVE_INFINITY : Float.POSITIVE_INFINITY;
        } else {
            float step = TWO_M24;                   // subnormal halves: multiples of 2^-24
            if (a >= TWO_M14) {
                int e = 0;                          // 2^(e-14) <= a < 2^(e-13)
                float p = TWO_M14 * 2.0f;
                while (e < 29 && a >= p) {
                    p = p * 2.0f;
                    e++;
                }
                step = TWO_M24 * (1 << e);          // 2^(e-14-10): 11 significant bits
            }
            float m = roundHalfEven(a / step) * step;
            r = f < 0 ? -m : m;
        }
        return r;
    }

    /** Round half to even of a float whose magnitude is below 2^22, as an int (C's rintf). */
    public static int roundHalfEven(float v) {
        int i = (int) v;            // toward zero
        float frac = v - i;         // exact
        float a = TornadoMath.abs(frac);
        if (a > 0.5f || (a == 0.5f && (i & 1) != 0)) {
            i += v < 0 ? -1 : 1;
        }
        return i;
    }

    // ------------------------------------------------------------------ activations

    /**
     * The input of a product in every form a weight type reads, over values [0, n): {@code xf} float32,
     * {@code xh} F16-rounded floats and, per whole block of 32, {@code xq}/{@code xs} Q8_0. The values are
     * {@code source}: {@link #FROM_NORM} ggml's rms_norm then mul, {@code (in * scale) * weight} with
     * {@code scale = 1 / sqrt(mean(in²) + eps)} (every work-group sums the squares itself, in the same order);
     * {@link #FROM_INPUT} {@code in}; {@link #FROM_SWIGLU} {@code silu(in[i]) * in[n + i]}. One work-item per
     * block of 32 values; global size: ceil(n / 32) rounded up to the work-group.
     */
    public static void prepare(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps,
                               FloatArray xf, FloatArray xh, Int8Array xq, FloatArray xs) {
        // every work-group sums the squares (a uniform reduction with barriers; unused unless FROM_NORM)
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, scratch, in, n, eps);
        int b = ctx.globalIdx;
        int base = b * QK;
        if (base < n) {
            int end = TornadoMath.min(base + QK, n);
            float amax = 0.0f;
            for (int i = base; i < end; i++) {
                float v = value(in, 0, weight, n, source, scale, i);
                xf.set(i, v);
                xh.set(i, roundToHalf(v));
                amax = TornadoMath.max(amax, TornadoMath.abs(v));
            }
            if (end - base == QK) {
                xs.set(b, roundToHalf(amax / 127.0f));
                float id = amax != 0.0f ? 127.0f / amax : 0.0f;
                for (int i = base; i < end; i++) {
                    xq.set(i, (byte) toQ8_0(xf.get(i), id));
                }
            }
        }
    }

    /**
     * Value i of {@code source} (see {@link #prepare}) with {@code in} read from {@code in[inOff ..]} (0 for one token;
     * a token's row of a chunk for the batched prefill, {@link GgmlPrefillKernels}).
     */
    static float value(FloatArray in, int inOff, FloatArray weight, int n, int source, float scale, int i) {
        float v;
        if (source == FROM_NORM) {
            v = (in.get(inOff + i) * scale) * weight.get(i);
        } else if (source == FROM_SWIGLU) {
            v = swiglu(in.get(inOff + i), in.get(inOff + n + i));
        } else {
            v = in.get(inOff + i);
        }
        return v;
    }

    // ------------------------------------------------------------------ products (one work-group per row)

    /** out[outOff + r] (+)= w[r] · xf (F32 weights); {@code add} != 0 adds to out (a residual). Global size: rows × local. */
    public static void matmulF32(KernelContext ctx, FloatArray xf, FloatArray w, FloatArray out, int outOff, int n, int add) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        float total = reduceSum(ctx, scratch, dotF32(ctx, w, row, xf, n));
        store(ctx, out, outOff + row, total, add);
    }

    /** As {@link #matmulF32} for F16 weights (16-bit values, decoded here) and F16-rounded activations {@code xh}. */
    public static void matmulF16(KernelContext ctx, FloatArray xh, ShortArray w, FloatArray out, int outOff, int n, int add) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        int base = row * n;
        float sum = 0.0f;
        for (int j = ctx.localIdx; j < n; j += ctx.localGroupSizeX) {
            sum += halfToFloat(w.get(base + j)) * xh.get(j);
        }
        float total = reduceSum(ctx, scratch, sum);
        store(ctx, out, outOff + row, total, add);
    }

    /**
     * As {@link #matmulF32} for Q8_0 weights (int8 values, float32 block scales) and Q8_0 activations: per block
     * of 32 an exact int32 dot, then {@code sumf += sumi * (d_w * d_x)} (ggml_vec_dot_q8_0_q8_0).
     */
    public static void matmulQ8_0(KernelContext ctx, Int8Array xq, FloatArray xs, Int8Array wv, FloatArray ws, FloatArray out,
                                  int outOff, int n, int add) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        int blocks = n / QK;
        int base = row * n;
        int sbase = row * blocks;
        float sum = 0.0f;
        for (int b = ctx.localIdx; b < blocks; b += ctx.localGroupSizeX) {
            int off = b * QK;
            int sumi = 0;
            for (int k = 0; k < QK; k++) {
                sumi += wv.get(base + off + k) * xq.get(off + k);
            }
            sum += sumi * (ws.get(sbase + b) * xs.get(b));
        }
        float total = reduceSum(ctx, scratch, sum);
        store(ctx, out, outOff + row, total, add);
    }

    static void store(KernelContext ctx, FloatArray out, int i, float total, int add) {
        if (ctx.localIdx == 0) {
            if (add != 0) {
                out.set(i, out.get(i) + total);
            } else {
                out.set(i, total);
            }
        }
    }

    /** x = the embedding row of {@code state[0]} from an F16 table. Global size: dim rounded up. */
    public static void embedF16(KernelContext ctx, IntArray state, ShortArray embedding, FloatArray x, int dim) {
        int i = ctx.globalIdx;
        if (i < dim) {
            x.set(i, halfToFloat(embedding.get(state.get(0) * dim + i)));
        }
    }

    // ------------------------------------------------------------------ after the q/k/v products

    /**
     * One head per work-item, over {@code qkv} = [q (nHeads heads); k (nKv); v (nKv)] of position {@code state[1]}:
     * adds the bias ({@code hasBias}: {@code bias} stacks bq, bk, bv like qkv), applies RMSNorm per q and k head
     * ({@code hasNorm}: {@code norms} = [q_norm (headSize); k_norm (headSize)], epsilon {@code eps}, ggml's
     * {@code (x * scale) * w}), rotates q and k by RoPE ({@code neox}: pairs (i, i + headSize/2), else (2i, 2i+1);
     * the angle of pair i from {@code rope[(pos * headSize/2 + i) * 2 + {0: cos, 1: sin}]}), and writes q to
     * {@code q}, k and v to row pos of this layer's caches. Global size: nHeads + 2 nKv rounded up to the work-group.
     */
    public static void qkvHeads(KernelContext ctx, FloatArray qkv, FloatArray bias, int hasBias, FloatArray norms, int hasNorm,
                                float eps, FloatArray q, FloatArray keyCache, FloatArray valueCache, IntArray state,
                                FloatArray rope, int nHeads, int nKv, int headSize, int neox) {
        int h = ctx.globalIdx;
        int pos = state.get(1);
        int kvDim = nKv * headSize;
        int src = h * headSize;
        if (h < nHeads) {
            head(qkv, src, bias, hasBias, norms, 0, hasNorm, eps, q, h * headSize, rope, pos, headSize, neox);
        } else if (h < nHeads + nKv) {
            head(qkv, src, bias, hasBias, norms, headSize, hasNorm, eps, keyCache, pos * kvDim + (h - nHeads) * headSize,
                    rope, pos, headSize, neox);
        } else if (h < nHeads + 2 * nKv) {
            int dst = pos * kvDim + (h - nHeads - nKv) * headSize;
            for (int i = 0; i < headSize; i++) {
                float v = qkv.get(src + i);
                if (hasBias != 0) {
                    v += bias.get(src + i);
                }
                valueCache.set(dst + i, v);
            }
        }
    }

    /** One q or k head: bias, norm, RoPE, into dst[dOff ..]. */
    private static void head(FloatArray qkv, int src, FloatArray bias, int hasBias, FloatArray norms, int normOff, int hasNorm,
                             float eps, FloatArray dst, int dOff, FloatArray rope, int pos, int headSize, int neox) {
        float ss = 0.0f;
        for (int i = 0; i < headSize; i++) {
            float v = qkv.get(src + i);
            if (hasBias != 0) {
                v += bias.get(src + i);
            }
            dst.set(dOff + i, v);
            ss += v * v;
        }
        if (hasNorm != 0) {
            float scale = 1.0f / TornadoMath.sqrt(ss / headSize + eps);
            for (int i = 0; i < headSize; i++) {
                dst.set(dOff + i, (dst.get(dOff + i) * scale) * norms.get(normOff + i));
            }
        }
        int half = headSize / 2;
        for (int i = 0; i < half; i++) {
            int i0 = neox != 0 ? i : 2 * i;
            int i1 = neox != 0 ? i + half : 2 * i + 1;
            float cos = rope.get((pos * half + i) * 2);
            float sin = rope.get((pos * half + i) * 2 + 1);
            float x0 = dst.get(dOff + i0);
            float x1 = dst.get(dOff + i1);
            dst.set(dOff + i0, x0 * cos - x1 * sin);
            dst.set(dOff + i1, x0 * sin + x1 * cos);
        }
    }

    // ------------------------------------------------------------------ products that prepare their own input

    /*
     * The kernels the engine launches for GGUF models (5 per layer when wq/wk/wv share a type and w1/w3 do):
     * instead of a prepare launch writing the input in every form, each work-group of a product derives the
     * form its weight type reads, from the source, itself: rmsnorm's scale (every work-group sums the squares
     * in the same order, see prepare), then per value the float32 value, its F16 rounding, or per block of
     * 32 llama.cpp's Q8_0 (d = F16(amax / 127), q = round-half-even(v * 127 / amax)): the same operations on
     * the same values as prepare, so every work-group sees exactly the values prepare would have written.
     * The cost is ALU work (the input's conversion is redone for every row); the input is re-read from cache.
     */

    /** Flags of the fused q/k/v kernels: the q/k/v biases are added. */
    public static final int HAS_BIAS = 1;
    /** Flags of the fused q/k/v kernels: each q and k head gets its RMSNorm. */
    public static final int HAS_NORM = 2;
    /** Flags of the fused q/k/v kernels: RoPE rotates pairs (i, i + headSize/2) (NEOX) instead of (2i, 2i+1). */
    public static final int NEOX = 4;
    /**
     * Where the fused q/k/v kernels find their rows per work-group in their {@code flags}: bits 16 and up
     * ({@code rowsPerGroup << ROWS_SHIFT}; an argument of its own would exceed the 20 a TornadoVM task takes).
     */
    public static final int ROWS_SHIFT = 16;

    /*
     * Several rows per work-group ({@code rowsPerGroup}, R; see KernelHelpers' "Several rows per work-group"): each
     * row is computed by a slice of S = local / R consecutive work-items, lane l of a slice owning columns (or
     * blocks) l, l + S, ... of its row, reduced by KernelHelpers.reduceSlice. rmsnorm's scale stays the whole
     * work-group's (the same sum in the same order whatever R is), so every value, F16 rounding and Q8_0 block a
     * lane derives has the bits prepare writes; only the float sum of a row's parts changes order with R. R = 1
     * is one row per work-group, the former kernels step for step. A qkv kernel keeps one work-group per head and
     * spreads the head's rows over its R slices (rows i, i + R, ... of the head to slice i), then stores the head.
     * The F32, F16 and Q8_0 kernels below are one body each, differing only in the dot they call and the weights'
     * array type: a TornadoVM kernel takes no function argument and its arrays have one type, so each weight type
     * keeps its own kernel (which also keeps one dot per compiled kernel, under TornadoVM's inlining limit).
     */

    /**
     * Lane {@code lane}'s part of row {@code row} of F32 weights times the source's values (as {@link #prepare}'s
     * xf): columns {@code lane}, {@code lane + step}, ... below {@code count} (n for a live row, 0 for a slice past the
     * last row: it reads nothing).
     */
    static float dotSourceF32(FloatArray in, int inOff, FloatArray weight, int n, int source, float scale, FloatArray w, int row,
                                      int lane, int step, int count) {
        int base = row * n;
        float sum = 0.0f;
        for (int j = lane; j < count; j += step) {
            sum += w.get(base + j) * value(in, inOff, weight, n, source, scale, j);
        }
        return sum;
    }

    /** As {@link #dotSourceF32} for F16 weights and the values rounded to F16 (as {@link #prepare}'s xh). */
    static float dotSourceF16(FloatArray in, int inOff, FloatArray weight, int n, int source, float scale, ShortArray w, int row,
                                      int lane, int step, int count) {
        int base = row * n;
        float sum = 0.0f;
        for (int j = lane; j < count; j += step) {
            sum += halfToFloat(w.get(base + j)) * roundToHalf(value(in, inOff, weight, n, source, scale, j));
        }
        return sum;
    }

    /**
     * As {@link #dotSourceF32} for Q8_0 weights, over blocks of 32 ({@code count}: n / 32 for a live row, else 0): per
     * block this lane owns, the values' Q8_0 (as {@link #prepare}'s xq/xs), the exact int32 dot, then
     * {@code sumf += sumi * (d_w * d_x)} as {@link #matmulQ8_0}.
     */
    static float dotSourceQ8_0(FloatArray in, int inOff, FloatArray weight, int n, int source, float scale, IntArray wv,
                                       FloatArray ws, int row, int lane, int step, int count) {
        int base = row * n;
        int sbase = row * (n / QK);
        float sum = 0.0f;
        for (int b = lane; b < count; b += step) {
            int off = b * QK;
            float amax = 0.0f;
            for (int k = 0; k < QK; k++) {
                amax = TornadoMath.max(amax, TornadoMath.abs(value(in, inOff, weight, n, source, scale, off + k)));
            }
            float d = roundToHalf(amax / 127.0f);
            float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            int sumi = 0;
            for (int k = 0; k < QK; k += 4) {
                // the weights packed four to an int: one load per four values (an inner loop rather than
                // KernelHelpers.dot4: four inlined value() calls exceed TornadoVM's 600-node inlining limit)
                int w4 = wv.get((base + off + k) >> 2);
                for (int t = 0; t < 4; t++) {
                    sumi += toQ8_0(value(in, inOff, weight, n, source, scale, off + k + t), id) * byteOf(w4, t);
                }
            }
            sum += sumi * (ws.get(sbase + b) * d);
        }
        return sum;
    }

    /**
     * {@link #dotSourceQ8_0} for row {@code row} with the values' Q8_0 blocks made once per work-group and call, chunk
     * by chunk, in the local arrays {@code qx} ({@link KernelHelpers#Q8_CHUNK_LOCAL_INTS}: int8 values packed four to
     * an int) and {@code xd} ({@link KernelHelpers#Q8_CHUNK_LOCAL_SCALES}: the blocks' F16-rounded scales), as
     * {@link KernelHelpers#dotQ8InputShared} does for runq's groups and for the same reason (each slice quantizing
     * its blocks for every row made the Q8 kernels compute-bound on an H200); a lane owns the same blocks in the
     * same order as in {@link #dotSourceQ8_0} ({@link KernelHelpers#chunkGroups}), so the sums are the same bits.
     * Every work-item of the work-group must call it; {@code live} false for a slice past the last row.
     */
    static float dotSourceQ8_0Shared(KernelContext ctx, int[] qx, float[] xd, FloatArray in, int inOff, FloatArray weight, int n,
                                     int source, float scale, IntArray wv, FloatArray ws, int row, boolean live, int lane, int step) {
        int blocks = n / QK;
        int perBlock = QK / 4;
        int chunk = KernelHelpers.chunkGroups(ctx.localGroupSizeX, step, perBlock);
        int t = ctx.localIdx;
        int wbase = (row * n) >> 2;
        int sbase = row * blocks;
        float sum = 0.0f;
        for (int c = 0; c < blocks; c += chunk) {
            int count = Math.min(chunk, blocks - c);
            if (t < count) {
                int off = (c + t) * QK;
                float amax = 0.0f;
                for (int k = 0; k < QK; k++) {
                    amax = TornadoMath.max(amax, TornadoMath.abs(value(in, inOff, weight, n, source, scale, off + k)));
                }
                float id = amax != 0.0f ? 127.0f / amax : 0.0f;
                xd[t] = roundToHalf(amax / 127.0f);
                for (int k = 0; k < perBlock; k++) {
                    int packed = 0;
                    for (int u = 0; u < 4; u++) {
                        packed |= (toQ8_0(value(in, inOff, weight, n, source, scale, off + 4 * k + u), id) & 0xFF) << (8 * u);
                    }
                    qx[t * perBlock + k] = packed;
                }
            }
            ctx.localBarrier();
            for (int i = lane; live && i < count; i += step) {
                int b = c + i;
                int sumi = 0;
                for (int k = 0; k < perBlock; k++) {
                    sumi += KernelHelpers.dot4Packed(wv.get(wbase + b * perBlock + k), qx[i * perBlock + k]);
                }
                sum += sumi * (ws.get(sbase + b) * xd[i]);
            }
            ctx.localBarrier();
        }
        return sum;
    }

    /** ggml's Q8_0 value of v under the block's inverse scale {@code id}: round half to even, clamped to [-128, 127]. */
    private static int toQ8_0(float v, float id) {
        int q = roundHalfEven(v * id);
        if (q > 127) {
            q = 127;
        }
        if (q < -128) {
            q = -128;
        }
        return q;
    }

    /** The lane of a slice with row {@code row} of {@code rows}: out[outOff + row] (+)= total. */
    static void storeRow(FloatArray out, int outOff, int row, int rows, int lane, float total, int add) {
        if (lane == 0 && row < rows) {
            if (add != 0) {
                out.set(outOff + row, out.get(outOff + row) + total);
            } else {
                out.set(outOff + row, total);
            }
        }
    }

    /**
     * out[outOff + r] (+= when {@code add} != 0) w[r] · the n values of {@code source} ({@link #FROM_NORM} with
     * {@code weight} and {@code eps}, {@link #FROM_INPUT}, {@link #FROM_SWIGLU}) for the {@code rows} rows of w, F32
     * weights: {@link #prepare} and {@link #matmulF32} in one launch; {@code rowsPerGroup} rows per work-group, a slice
     * per row. Global size: ⌈rows / rowsPerGroup⌉ × local.
     */
    public static void productF32(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps,
                                  FloatArray w, FloatArray out, int outOff, int add, int rows, int rowsPerGroup) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, scratch, in, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int count = row < rows ? n : 0;
        float total = reduceSlice(ctx, scratch, dotSourceF32(in, 0, weight, n, source, scale, w, row, lane, slice, count), slice);
        storeRow(out, outOff, row, rows, lane, total, add);
    }

    /** As {@link #productF32} for F16 weights: {@link #prepare} and {@link #matmulF16} in one launch. */
    public static void productF16(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps,
                                  ShortArray w, FloatArray out, int outOff, int add, int rows, int rowsPerGroup) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, scratch, in, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int count = row < rows ? n : 0;
        float total = reduceSlice(ctx, scratch, dotSourceF16(in, 0, weight, n, source, scale, w, row, lane, slice, count), slice);
        storeRow(out, outOff, row, rows, lane, total, add);
    }

    /** As {@link #productF32} for Q8_0 weights: {@link #prepare} and {@link #matmulQ8_0} in one launch. */
    public static void productQ8_0(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps,
                                   IntArray wv, FloatArray ws, FloatArray out, int outOff, int add, int rows, int rowsPerGroup) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int[] qx = ctx.allocateIntLocalArray(KernelHelpers.Q8_CHUNK_LOCAL_INTS);
        float[] xd = ctx.allocateFloatLocalArray(KernelHelpers.Q8_CHUNK_LOCAL_SCALES);
        float scale = rmsScale(ctx, scratch, in, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        float total = reduceSlice(ctx, scratch,
                dotSourceQ8_0Shared(ctx, qx, xd, in, 0, weight, n, source, scale, wv, ws, row, row < rows, lane, slice), slice);
        storeRow(out, outOff, row, rows, lane, total, add);
    }

    /**
     * The feed-forward input when w1 and w3 share a type (F32; {@code w} stacks w1 over w3): rmsnorm(x) * weight,
     * the two products, SwiGLU: hb[r] = silu(w1[r]·xn) * (w3[r]·xn), the value {@link #FROM_SWIGLU} computes from
     * the two products. {@code rowsPerGroup} hidden rows per work-group, a slice per row. Global size:
     * ⌈hidden / rowsPerGroup⌉ × local.
     */
    public static void w13F32(KernelContext ctx, FloatArray x, FloatArray weight, int n, float eps, FloatArray w,
                              FloatArray hb, int hidden, int rowsPerGroup) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, s0, x, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int count = row < hidden ? n : 0;
        float g = reduceSlice(ctx, s0, dotSourceF32(x, 0, weight, n, FROM_NORM, scale, w, row, lane, slice, count), slice);
        float u = reduceSlice(ctx, s0, dotSourceF32(x, 0, weight, n, FROM_NORM, scale, w, hidden + row, lane, slice, count), slice);
        if (lane == 0 && row < hidden) {
            hb.set(row, swiglu(g, u));
        }
    }

    /** As {@link #w13F32} for F16 weights. */
    public static void w13F16(KernelContext ctx, FloatArray x, FloatArray weight, int n, float eps, ShortArray w,
                              FloatArray hb, int hidden, int rowsPerGroup) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, s0, x, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int count = row < hidden ? n : 0;
        float g = reduceSlice(ctx, s0, dotSourceF16(x, 0, weight, n, FROM_NORM, scale, w, row, lane, slice, count), slice);
        float u = reduceSlice(ctx, s0, dotSourceF16(x, 0, weight, n, FROM_NORM, scale, w, hidden + row, lane, slice, count), slice);
        if (lane == 0 && row < hidden) {
            hb.set(row, swiglu(g, u));
        }
    }

    /** As {@link #w13F32} for Q8_0 weights. */
    public static void w13Q8_0(KernelContext ctx, FloatArray x, FloatArray weight, int n, float eps, IntArray wv,
                               FloatArray ws, FloatArray hb, int hidden, int rowsPerGroup) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int[] qx = ctx.allocateIntLocalArray(KernelHelpers.Q8_CHUNK_LOCAL_INTS);
        float[] xd = ctx.allocateFloatLocalArray(KernelHelpers.Q8_CHUNK_LOCAL_SCALES);
        float scale = rmsScale(ctx, s0, x, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        boolean live = row < hidden;
        float g = reduceSlice(ctx, s0,
                dotSourceQ8_0Shared(ctx, qx, xd, x, 0, weight, n, FROM_NORM, scale, wv, ws, row, live, lane, slice), slice);
        float u = reduceSlice(ctx, s0,
                dotSourceQ8_0Shared(ctx, qx, xd, x, 0, weight, n, FROM_NORM, scale, wv, ws, hidden + row, live, lane, slice), slice);
        if (lane == 0 && row < hidden) {
            hb.set(row, swiglu(g, u));
        }
    }

    /**
     * The attention input, F32 weights: rmsnorm(x) * weight, then one work-group per head of this product (heads
     * {@code firstHead}, {@code firstHead + 1}, ... of the stacked [q; k; v] heads; {@code w} holds their rows:
     * wq/wk/wv stacked, or one of them), the head's rows computed {@code rowsPerGroup} ({@code flags >> }{@link #ROWS_SHIFT})
     * at a time, one per slice (row i of the head by slice i % rowsPerGroup), each reduced into its place in {@code qkv}
     * (device scratch, q_dim + 2 kv_dim, laid out as the stacked heads), then, after a barrier, what
     * {@link #qkvHeads} does to the head ({@code flags}: {@link #HAS_BIAS}, {@link #HAS_NORM}, {@link #NEOX}):
     * bias, RMSNorm, RoPE, and q into {@code q}, k and v into row pos of this layer's caches. Global size:
     * the product's heads × local.
     */
    public static void qkvF32(KernelContext ctx, FloatArray x, FloatArray weight, int dim, float eps, FloatArray w,
                              int firstHead, FloatArray qkv, FloatArray bias, FloatArray norms, int flags, FloatArray q,
                              FloatArray keyCache, FloatArray valueCache, IntArray state, FloatArray rope, int nHeads, int nKv,
                              int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, scratch, x, dim, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int h = firstHead + ctx.groupIdx;
        for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
            int i = i0 + ctx.localIdx / slice;
            int count = i < headSize ? dim : 0;
            float total = reduceSlice(ctx, scratch,
                    dotSourceF32(x, 0, weight, dim, FROM_NORM, scale, w, ctx.groupIdx * headSize + i, lane, slice, count), slice);
            storeRow(qkv, h * headSize, i, headSize, lane, total, 0);
        }
        ctx.globalBarrier();
        if (ctx.localIdx == 0) {
            storeHead(qkv, 0, h, bias, norms, flags, eps, q, 0, keyCache, valueCache, state.get(1), rope, nHeads, nKv, headSize);
        }
    }

    /** As {@link #qkvF32} for F16 weights. */
    public static void qkvF16(KernelContext ctx, FloatArray x, FloatArray weight, int dim, float eps, ShortArray w,
                              int firstHead, FloatArray qkv, FloatArray bias, FloatArray norms, int flags, FloatArray q,
                              FloatArray keyCache, FloatArray valueCache, IntArray state, FloatArray rope, int nHeads, int nKv,
                              int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, scratch, x, dim, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int h = firstHead + ctx.groupIdx;
        for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
            int i = i0 + ctx.localIdx / slice;
            int count = i < headSize ? dim : 0;
            float total = reduceSlice(ctx, scratch,
                    dotSourceF16(x, 0, weight, dim, FROM_NORM, scale, w, ctx.groupIdx * headSize + i, lane, slice, count), slice);
            storeRow(qkv, h * headSize, i, headSize, lane, total, 0);
        }
        ctx.globalBarrier();
        if (ctx.localIdx == 0) {
            storeHead(qkv, 0, h, bias, norms, flags, eps, q, 0, keyCache, valueCache, state.get(1), rope, nHeads, nKv, headSize);
        }
    }

    /** As {@link #qkvF32} for Q8_0 weights. */
    public static void qkvQ8_0(KernelContext ctx, FloatArray x, FloatArray weight, int dim, float eps, IntArray wv,
                               FloatArray ws, int firstHead, FloatArray qkv, FloatArray bias, FloatArray norms, int flags, FloatArray q,
                               FloatArray keyCache, FloatArray valueCache, IntArray state, FloatArray rope, int nHeads, int nKv,
                               int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int[] qx = ctx.allocateIntLocalArray(KernelHelpers.Q8_CHUNK_LOCAL_INTS);
        float[] xd = ctx.allocateFloatLocalArray(KernelHelpers.Q8_CHUNK_LOCAL_SCALES);
        float scale = rmsScale(ctx, scratch, x, dim, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int h = firstHead + ctx.groupIdx;
        for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
            int i = i0 + ctx.localIdx / slice;
            float total = reduceSlice(ctx, scratch, dotSourceQ8_0Shared(ctx, qx, xd, x, 0, weight, dim, FROM_NORM, scale, wv, ws,
                    ctx.groupIdx * headSize + i, i < headSize, lane, slice), slice);
            storeRow(qkv, h * headSize, i, headSize, lane, total, 0);
        }
        ctx.globalBarrier();
        if (ctx.localIdx == 0) {
            storeHead(qkv, 0, h, bias, norms, flags, eps, q, 0, keyCache, valueCache, state.get(1), rope, nHeads, nKv, headSize);
        }
    }

    /**
     * {@link #qkvHeads} for one head h of position {@code pos} whose product values are in
     * {@code qkv[qkvOff + h * headSize ..]} (the biases at {@code h * headSize} of {@code bias}), q written at
     * {@code q[qOff + h * headSize ..]} (offsets 0 for one token; a token's rows of a chunk for the batched prefill): the same
     * operations in the same order (bias; for q and k heads RMSNorm and RoPE), done in place there, then the
     * head is copied to q or row pos of the caches. (One body for q, k and v heads: TornadoVM 5.2 refuses to
     * inline a method of more than 600 graph nodes, which two copies of the q/k part exceeded. The head goes
     * through global memory, not local: a local array written on one side of an inlined call and read on the
     * other gave wrong values on PoCL.)
     */
    static void storeHead(FloatArray qkv, int qkvOff, int h, FloatArray bias, FloatArray norms, int flags, float eps, FloatArray q,
                          int qOff, FloatArray keyCache, FloatArray valueCache, int pos, FloatArray rope, int nHeads,
                          int nKv, int headSize) {
        int kvDim = nKv * headSize;
        int src = qkvOff + h * headSize;
        int bSrc = h * headSize;
        int rotated = h < nHeads + nKv ? 1 : 0;
        int normOff = h < nHeads ? 0 : headSize;
        float ss = 0.0f;
        for (int i = 0; i < headSize; i++) {
            float v = qkv.get(src + i);
            if ((flags & HAS_BIAS) != 0) {
                v += bias.get(bSrc + i);
            }
            qkv.set(src + i, v);
            ss += v * v;
        }
        if (rotated != 0 && (flags & HAS_NORM) != 0) {
            float scale = 1.0f / TornadoMath.sqrt(ss / headSize + eps);
            for (int i = 0; i < headSize; i++) {
                qkv.set(src + i, (qkv.get(src + i) * scale) * norms.get(normOff + i));
            }
        }
        if (rotated != 0) {
            int half = headSize / 2;
            for (int i = 0; i < half; i++) {
                int i0 = (flags & NEOX) != 0 ? i : 2 * i;
                int i1 = (flags & NEOX) != 0 ? i + half : 2 * i + 1;
                float cos = rope.get((pos * half + i) * 2);
                float sin = rope.get((pos * half + i) * 2 + 1);
                float x0 = qkv.get(src + i0);
                float x1 = qkv.get(src + i1);
                qkv.set(src + i0, x0 * cos - x1 * sin);
                qkv.set(src + i1, x0 * sin + x1 * cos);
            }
        }
        if (h < nHeads) {
            for (int i = 0; i < headSize; i++) {
                q.set(qOff + h * headSize + i, qkv.get(src + i));
            }
        } else if (h < nHeads + nKv) {
            int dst = pos * kvDim + (h - nHeads) * headSize;
            for (int i = 0; i < headSize; i++) {
                keyCache.set(dst + i, qkv.get(src + i));
            }
        } else {
            int dst = pos * kvDim + (h - nHeads - nKv) * headSize;
            for (int i = 0; i < headSize; i++) {
                valueCache.set(dst + i, qkv.get(src + i));
            }
        }
    }
}
