package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.ShortArray;

import static io.github.llama2j.tornado.GgmlKernels.FROM_NORM;
import static io.github.llama2j.tornado.GgmlKernels.QK;
import static io.github.llama2j.tornado.GgmlKernels.ROWS_SHIFT;
import static io.github.llama2j.tornado.GgmlKernels.dotSourceF16;
import static io.github.llama2j.tornado.GgmlKernels.dotSourceF32;
import static io.github.llama2j.tornado.GgmlKernels.dotSourceQ8_0;
import static io.github.llama2j.tornado.GgmlKernels.halfToFloat;
import static io.github.llama2j.tornado.GgmlKernels.storeHead;
import static io.github.llama2j.tornado.GgmlKernels.storeRow;
import static io.github.llama2j.tornado.KQuantKernels.QK_K;
import static io.github.llama2j.tornado.KQuantKernels.TYPES_SHIFT;
import static io.github.llama2j.tornado.KQuantKernels.dotSourceQ4_K;
import static io.github.llama2j.tornado.KQuantKernels.dotSourceQ6_K;
import static io.github.llama2j.tornado.KQuantKernels.rowBase;
import static io.github.llama2j.tornado.KQuantKernels.rowBytes;
import static io.github.llama2j.tornado.KQuantKernels.rowType;
import static io.github.llama2j.tornado.KernelHelpers.reduceSlice;
import static io.github.llama2j.tornado.KernelHelpers.rmsScaleAt;
import static io.github.llama2j.tornado.KernelHelpers.slice;
import static io.github.llama2j.tornado.KernelHelpers.sliceLane;
import static io.github.llama2j.tornado.KernelHelpers.sliceRow;
import static io.github.llama2j.tornado.KernelHelpers.swiglu;
import static io.github.llama2j.tornado.PrefillKernels.COUNT;
import static io.github.llama2j.tornado.PrefillKernels.START;
import static io.github.llama2j.tornado.PrefillKernels.TOKENS;
import static io.github.llama2j.tornado.TransformerKernels.MAX_LOCAL;

/**
 * The batched prefill's kernels for GGUF models ({@link PrefillGraph}): the one-token GGUF kernels
 * ({@link GgmlKernels}' {@code qkvF32}, {@code productF32}, {@code w13F32} and their F16/Q8_0 twins,
 * {@link KQuantKernels}' for Q4_K/Q6_K) with a loop over the chunk's tokens around their bodies: the work-group that
 * owns a row (or a head's rows, for qkv) computes it for token 0, 1, ... of the chunk in turn, so each weight row is
 * fetched from memory once per chunk. Per token a work-group does what the one-token kernel does, through the same
 * per-row dot helpers ({@code GgmlKernels.dotSourceF32} ..., {@code KQuantKernels.dotSourceQ4_K/Q6_K}) with the
 * token's row of the chunk buffer as input ({@code inOff}), the same rmsnorm ({@link KernelHelpers#rmsScaleAt}),
 * slices ({@code rowsPerGroup} as the token path's), reduction trees and head store ({@code GgmlKernels.storeHead} at
 * the token's position): llama.cpp's activation rounding (F16, Q8_0, Q8_K) of each token's values and the same sums,
 * so a token's values are those of feeding it alone (tests: {@code GgufPrefillTest}).
 *
 * <p>The kernels of one operation differ only in the dot they call and the weights' array type: a TornadoVM kernel
 * takes no function argument and its arrays have one type, so each weight type keeps its own kernel (as in
 * {@link GgmlKernels}; {@code duplicates} lists these twins). A helper holding more of their common part (the barrier
 * and the head store, say) would wrap {@code GgmlKernels.storeHead}, whose shape TornadoVM's 600-node inlining limit
 * already set (see its comment); not tried. {@code pstate} is {@link PrefillKernels}' {@code [startPos, count, tokens]}; loops run to the
 * chunk's count, the same for every work-item, so every work-item passes every barrier.
 */
public final class GgmlPrefillKernels {
    private GgmlPrefillKernels() {
    }

    // ------------------------------------------------------------------ embedding (F32 and Q8_0: PrefillKernels')

    /** xB[i] = token i's row of an F16 table ({@link GgmlKernels#embedF16}). Global size: B × dim rounded up. */
    public static void embedF16(KernelContext ctx, IntArray pstate, ShortArray embedding, FloatArray xB, int dim) {
        int gid = ctx.globalIdx;
        int i = gid / dim;
        if (i < pstate.get(COUNT)) {
            xB.set(gid, halfToFloat(embedding.get(pstate.get(TOKENS + i) * dim + gid - i * dim)));
        }
    }

    /** xB[i] = token i's row of a Q4_K table ({@link KQuantKernels#embedQ4_K}). Global size: B × dim rounded up. */
    public static void embedQ4_K(KernelContext ctx, IntArray pstate, Int8Array w, FloatArray xB, int dim) {
        int gid = ctx.globalIdx;
        int i = gid / dim;
        if (i < pstate.get(COUNT)) {
            xB.set(gid, KQuantKernels.embeddingQ4_K(w, pstate.get(TOKENS + i), dim, gid - i * dim));
        }
    }

    /** xB[i] = token i's row of a Q6_K table ({@link KQuantKernels#embedQ6_K}). Global size: B × dim rounded up. */
    public static void embedQ6_K(KernelContext ctx, IntArray pstate, Int8Array w, FloatArray xB, int dim) {
        int gid = ctx.globalIdx;
        int i = gid / dim;
        if (i < pstate.get(COUNT)) {
            xB.set(gid, KQuantKernels.embeddingQ6_K(w, pstate.get(TOKENS + i), dim, gid - i * dim));
        }
    }

    // ------------------------------------------------------------------ q/k/v (one work-group per head)

    /**
     * {@link GgmlKernels#qkvF32} (wq/wk/wv stacked in {@code w}) for every token t of the chunk: rmsnorm of xB[t], the
     * head's rows into {@code qkvB[t]} (scratch, B × (q_dim + 2 kv_dim)), then bias, head RMSNorm, RoPE at position
     * startPos + t, q into qB[t], k and v into the caches' row startPos + t. Global size: (nHeads + 2 nKv) × local.
     */
    public static void qkvF32(KernelContext ctx, FloatArray xB, FloatArray weight, int dim, float eps, FloatArray w,
                              FloatArray qkvB, FloatArray bias, FloatArray norms, int flags, FloatArray qB, FloatArray keyCache,
                              FloatArray valueCache, IntArray pstate, FloatArray rope, int nHeads, int nKv, int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int h = ctx.groupIdx;
        int width = (nHeads + 2 * nKv) * headSize;
        int start = pstate.get(START);
        int count = pstate.get(COUNT);
        for (int t = 0; t < count; t++) {
            float scale = rmsScaleAt(ctx, scratch, xB, t * dim, dim, eps);
            for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
                int i = i0 + ctx.localIdx / slice;
                int n = i < headSize ? dim : 0;
                float total = reduceSlice(ctx, scratch,
                        dotSourceF32(xB, t * dim, weight, dim, FROM_NORM, scale, w, h * headSize + i, lane, slice, n), slice);
                storeRow(qkvB, t * width + h * headSize, i, headSize, lane, total, 0);
            }
            ctx.globalBarrier();
            if (ctx.localIdx == 0) {
                storeHead(qkvB, t * width, h, bias, norms, flags, eps, qB, t * nHeads * headSize, keyCache, valueCache, start + t,
                        rope, nHeads, nKv, headSize);
            }
        }
    }

    /** As {@link #qkvF32} for F16 weights ({@link GgmlKernels#qkvF16}). */
    public static void qkvF16(KernelContext ctx, FloatArray xB, FloatArray weight, int dim, float eps, ShortArray w,
                              FloatArray qkvB, FloatArray bias, FloatArray norms, int flags, FloatArray qB, FloatArray keyCache,
                              FloatArray valueCache, IntArray pstate, FloatArray rope, int nHeads, int nKv, int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int h = ctx.groupIdx;
        int width = (nHeads + 2 * nKv) * headSize;
        int start = pstate.get(START);
        int count = pstate.get(COUNT);
        for (int t = 0; t < count; t++) {
            float scale = rmsScaleAt(ctx, scratch, xB, t * dim, dim, eps);
            for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
                int i = i0 + ctx.localIdx / slice;
                int n = i < headSize ? dim : 0;
                float total = reduceSlice(ctx, scratch,
                        dotSourceF16(xB, t * dim, weight, dim, FROM_NORM, scale, w, h * headSize + i, lane, slice, n), slice);
                storeRow(qkvB, t * width + h * headSize, i, headSize, lane, total, 0);
            }
            ctx.globalBarrier();
            if (ctx.localIdx == 0) {
                storeHead(qkvB, t * width, h, bias, norms, flags, eps, qB, t * nHeads * headSize, keyCache, valueCache, start + t,
                        rope, nHeads, nKv, headSize);
            }
        }
    }

    /** As {@link #qkvF32} for Q8_0 weights ({@link GgmlKernels#qkvQ8_0}). */
    public static void qkvQ8_0(KernelContext ctx, FloatArray xB, FloatArray weight, int dim, float eps, IntArray wv, FloatArray ws,
                               FloatArray qkvB, FloatArray bias, FloatArray norms, int flags, FloatArray qB, FloatArray keyCache,
                               FloatArray valueCache, IntArray pstate, FloatArray rope, int nHeads, int nKv, int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int h = ctx.groupIdx;
        int width = (nHeads + 2 * nKv) * headSize;
        int start = pstate.get(START);
        int count = pstate.get(COUNT);
        for (int t = 0; t < count; t++) {
            float scale = rmsScaleAt(ctx, scratch, xB, t * dim, dim, eps);
            for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
                int i = i0 + ctx.localIdx / slice;
                int n = i < headSize ? dim / QK : 0;
                float total = reduceSlice(ctx, scratch,
                        dotSourceQ8_0(xB, t * dim, weight, dim, FROM_NORM, scale, wv, ws, h * headSize + i, lane, slice, n), slice);
                storeRow(qkvB, t * width + h * headSize, i, headSize, lane, total, 0);
            }
            ctx.globalBarrier();
            if (ctx.localIdx == 0) {
                storeHead(qkvB, t * width, h, bias, norms, flags, eps, qB, t * nHeads * headSize, keyCache, valueCache, start + t,
                        rope, nHeads, nKv, headSize);
            }
        }
    }

    /**
     * As {@link #qkvF32} for K-quant weights ({@link KQuantKernels#qkvKQuant}: bits {@link KQuantKernels#TYPES_SHIFT}
     * + 0, 1, 2 of {@code flags} set where wq, wk, wv are Q6_K). The choice of dot is made once, outside the token loop,
     * as the one-token kernel makes it outside its row loop, hence the two loops: one loop choosing the dot per row
     * before the reduction (as {@link #productKQuant} does) gave wrong logits on PoCL (0.67 of max|logit| off the token
     * path on llama2-tiny-q4_k_m, TornadoGgufPrefillTest), as the one-token kernel's choice inside its loop did there.
     */
    public static void qkvKQuant(KernelContext ctx, FloatArray xB, FloatArray weight, int dim, float eps, Int8Array w,
                                 FloatArray qkvB, FloatArray bias, FloatArray norms, int flags, FloatArray qB, FloatArray keyCache,
                                 FloatArray valueCache, IntArray pstate, FloatArray rope, int nHeads, int nKv, int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int h = ctx.groupIdx;
        int width = (nHeads + 2 * nKv) * headSize;
        int start = pstate.get(START);
        int count = pstate.get(COUNT);
        int types = (flags >> TYPES_SHIFT) & 7;
        int split1 = nHeads * headSize;
        int split2 = (nHeads + nKv) * headSize;
        int base = rowBase(h * headSize, dim, split1, split2, types);
        int type = rowType(h * headSize, split1, split2, types);
        int step = rowBytes(dim, type);
        if (type == 0) {
            for (int t = 0; t < count; t++) {
                float scale = rmsScaleAt(ctx, scratch, xB, t * dim, dim, eps);
                for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
                    int i = i0 + ctx.localIdx / slice;
                    int n = i < headSize ? dim / QK_K : 0;
                    float total = reduceSlice(ctx, scratch,
                            dotSourceQ4_K(xB, t * dim, weight, dim, FROM_NORM, scale, w, base + i * step, lane, slice, n), slice);
                    storeRow(qkvB, t * width + h * headSize, i, headSize, lane, total, 0);
                }
                ctx.globalBarrier();
                if (ctx.localIdx == 0) {
                    storeHead(qkvB, t * width, h, bias, norms, flags, eps, qB, t * nHeads * headSize, keyCache, valueCache,
                            start + t, rope, nHeads, nKv, headSize);
                }
            }
        } else {
            for (int t = 0; t < count; t++) {
                float scale = rmsScaleAt(ctx, scratch, xB, t * dim, dim, eps);
                for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
                    int i = i0 + ctx.localIdx / slice;
                    int n = i < headSize ? dim / QK_K : 0;
                    float total = reduceSlice(ctx, scratch,
                            dotSourceQ6_K(xB, t * dim, weight, dim, FROM_NORM, scale, w, base + i * step, lane, slice, n), slice);
                    storeRow(qkvB, t * width + h * headSize, i, headSize, lane, total, 0);
                }
                ctx.globalBarrier();
                if (ctx.localIdx == 0) {
                    storeHead(qkvB, t * width, h, bias, norms, flags, eps, qB, t * nHeads * headSize, keyCache, valueCache,
                            start + t, rope, nHeads, nKv, headSize);
                }
            }
        }
    }

    // ------------------------------------------------------------------ products (wo, w2 and the classifier)

    /** The chunk's first token a product computes: the last one ({@code lastOnly} != 0: the classifier) or token 0. */
    private static int firstToken(int count, int lastOnly) {
        int first = 0;
        if (lastOnly != 0) {
            first = count - 1;
        }
        return first;
    }

    /**
     * {@link GgmlKernels#productF32} for every token t of the chunk: out[t][r] (+= when {@code add} != 0) w[r] · the n
     * values of {@code source} from in[t] (rows of n; out's rows are {@code rows} wide), or, with {@code lastOnly} != 0
     * (the classifier), for the chunk's last token only, into out[r]. Global size: ⌈rows / rowsPerGroup⌉ × local.
     */
    public static void productF32(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps, FloatArray w,
                                  FloatArray out, int add, int rows, int rowsPerGroup, IntArray pstate, int lastOnly) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int cols = row < rows ? n : 0;
        int count = pstate.get(COUNT);
        for (int t = firstToken(count, lastOnly); t < count; t++) {
            float scale = rmsScaleAt(ctx, scratch, in, t * n, n, eps);
            float total = reduceSlice(ctx, scratch, dotSourceF32(in, t * n, weight, n, source, scale, w, row, lane, slice, cols), slice);
            storeRow(out, (1 - lastOnly) * t * rows, row, rows, lane, total, add);
        }
    }

    /** As {@link #productF32} for F16 weights ({@link GgmlKernels#productF16}). */
    public static void productF16(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps, ShortArray w,
                                  FloatArray out, int add, int rows, int rowsPerGroup, IntArray pstate, int lastOnly) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int cols = row < rows ? n : 0;
        int count = pstate.get(COUNT);
        for (int t = firstToken(count, lastOnly); t < count; t++) {
            float scale = rmsScaleAt(ctx, scratch, in, t * n, n, eps);
            float total = reduceSlice(ctx, scratch, dotSourceF16(in, t * n, weight, n, source, scale, w, row, lane, slice, cols), slice);
            storeRow(out, (1 - lastOnly) * t * rows, row, rows, lane, total, add);
        }
    }

    /** As {@link #productF32} for Q8_0 weights ({@link GgmlKernels#productQ8_0}). */
    public static void productQ8_0(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps, IntArray wv,
                                   FloatArray ws, FloatArray out, int add, int rows, int rowsPerGroup, IntArray pstate, int lastOnly) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int blocks = row < rows ? n / QK : 0;
        int count = pstate.get(COUNT);
        for (int t = firstToken(count, lastOnly); t < count; t++) {
            float scale = rmsScaleAt(ctx, scratch, in, t * n, n, eps);
            float total = reduceSlice(ctx, scratch,
                    dotSourceQ8_0(in, t * n, weight, n, source, scale, wv, ws, row, lane, slice, blocks), slice);
            storeRow(out, (1 - lastOnly) * t * rows, row, rows, lane, total, add);
        }
    }

    /** As {@link #productF32} for K-quant weights of type {@code type} (0: Q4_K, 1: Q6_K; {@link KQuantKernels#productKQuant}). */
    public static void productKQuant(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps, Int8Array w,
                                     int type, FloatArray out, int add, int rows, int rowsPerGroup, IntArray pstate, int lastOnly) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int blocks = row < rows ? n / QK_K : 0;
        int base = row * rowBytes(n, type);
        int count = pstate.get(COUNT);
        for (int t = firstToken(count, lastOnly); t < count; t++) {
            float scale = rmsScaleAt(ctx, scratch, in, t * n, n, eps);
            float part;
            if (type == 0) {
                part = dotSourceQ4_K(in, t * n, weight, n, source, scale, w, base, lane, slice, blocks);
            } else {
                part = dotSourceQ6_K(in, t * n, weight, n, source, scale, w, base, lane, slice, blocks);
            }
            float total = reduceSlice(ctx, scratch, part, slice);
            storeRow(out, (1 - lastOnly) * t * rows, row, rows, lane, total, add);
        }
    }

    // ------------------------------------------------------------------ the feed-forward input (w1 and w3 stacked)

    /**
     * {@link GgmlKernels#w13F32} for every token t: hbB[t][r] = silu(w1[r]·xn_t) * (w3[r]·xn_t), xn_t the rmsnorm of
     * xB[t] times {@code weight}. Global size: ⌈hidden / rowsPerGroup⌉ × local.
     */
    public static void w13F32(KernelContext ctx, FloatArray xB, FloatArray weight, int n, float eps, FloatArray w, FloatArray hbB,
                              int hidden, int rowsPerGroup, IntArray pstate) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int cols = row < hidden ? n : 0;
        int count = pstate.get(COUNT);
        for (int t = 0; t < count; t++) {
            float scale = rmsScaleAt(ctx, s0, xB, t * n, n, eps);
            float g = reduceSlice(ctx, s0, dotSourceF32(xB, t * n, weight, n, FROM_NORM, scale, w, row, lane, slice, cols), slice);
            float u = reduceSlice(ctx, s0, dotSourceF32(xB, t * n, weight, n, FROM_NORM, scale, w, hidden + row, lane, slice, cols), slice);
            if (lane == 0 && row < hidden) {
                hbB.set(t * hidden + row, swiglu(g, u));
            }
        }
    }

    /** As {@link #w13F32} for F16 weights ({@link GgmlKernels#w13F16}). */
    public static void w13F16(KernelContext ctx, FloatArray xB, FloatArray weight, int n, float eps, ShortArray w, FloatArray hbB,
                              int hidden, int rowsPerGroup, IntArray pstate) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int cols = row < hidden ? n : 0;
        int count = pstate.get(COUNT);
        for (int t = 0; t < count; t++) {
            float scale = rmsScaleAt(ctx, s0, xB, t * n, n, eps);
            float g = reduceSlice(ctx, s0, dotSourceF16(xB, t * n, weight, n, FROM_NORM, scale, w, row, lane, slice, cols), slice);
            float u = reduceSlice(ctx, s0, dotSourceF16(xB, t * n, weight, n, FROM_NORM, scale, w, hidden + row, lane, slice, cols), slice);
            if (lane == 0 && row < hidden) {
                hbB.set(t * hidden + row, swiglu(g, u));
            }
        }
    }

    /** As {@link #w13F32} for Q8_0 weights ({@link GgmlKernels#w13Q8_0}). */
    public static void w13Q8_0(KernelContext ctx, FloatArray xB, FloatArray weight, int n, float eps, IntArray wv, FloatArray ws,
                               FloatArray hbB, int hidden, int rowsPerGroup, IntArray pstate) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int blocks = row < hidden ? n / QK : 0;
        int count = pstate.get(COUNT);
        for (int t = 0; t < count; t++) {
            float scale = rmsScaleAt(ctx, s0, xB, t * n, n, eps);
            float g = reduceSlice(ctx, s0, dotSourceQ8_0(xB, t * n, weight, n, FROM_NORM, scale, wv, ws, row, lane, slice, blocks), slice);
            float u = reduceSlice(ctx, s0,
                    dotSourceQ8_0(xB, t * n, weight, n, FROM_NORM, scale, wv, ws, hidden + row, lane, slice, blocks), slice);
            if (lane == 0 && row < hidden) {
                hbB.set(t * hidden + row, swiglu(g, u));
            }
        }
    }

    /**
     * As {@link #w13F32} for K-quant weights ({@link KQuantKernels#w13KQuant}: bit 0 of {@code types} set where w1 is
     * Q6_K, bit 1 where w3 is). The choice between the two dots is written out here as there: a helper calling both
     * exceeds TornadoVM's inlining limit (see {@link KQuantKernels#rowBase}'s note).
     */
    public static void w13KQuant(KernelContext ctx, FloatArray xB, FloatArray weight, int n, float eps, Int8Array w, int types,
                                 FloatArray hbB, int hidden, int rowsPerGroup, IntArray pstate) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int blocks = row < hidden ? n / QK_K : 0;
        int base1 = rowBase(row, n, hidden, 2 * hidden, types);
        int base3 = rowBase(hidden + row, n, hidden, 2 * hidden, types);
        int count = pstate.get(COUNT);
        for (int t = 0; t < count; t++) {
            float scale = rmsScaleAt(ctx, s0, xB, t * n, n, eps);
            float p1;
            if ((types & 1) == 0) {
                p1 = dotSourceQ4_K(xB, t * n, weight, n, FROM_NORM, scale, w, base1, lane, slice, blocks);
            } else {
                p1 = dotSourceQ6_K(xB, t * n, weight, n, FROM_NORM, scale, w, base1, lane, slice, blocks);
            }
            float g = reduceSlice(ctx, s0, p1, slice);
            float p3;
            if ((types & 2) == 0) {
                p3 = dotSourceQ4_K(xB, t * n, weight, n, FROM_NORM, scale, w, base3, lane, slice, blocks);
            } else {
                p3 = dotSourceQ6_K(xB, t * n, weight, n, FROM_NORM, scale, w, base3, lane, slice, blocks);
            }
            float u = reduceSlice(ctx, s0, p3, slice);
            if (lane == 0 && row < hidden) {
                hbB.set(t * hidden + row, swiglu(g, u));
            }
        }
    }
}
