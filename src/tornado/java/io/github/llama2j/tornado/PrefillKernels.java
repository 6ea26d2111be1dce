package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import static io.github.llama2j.tornado.KernelHelpers.attendHead;
import static io.github.llama2j.tornado.KernelHelpers.dotF32At;
import static io.github.llama2j.tornado.KernelHelpers.dotQ8InputAt;
import static io.github.llama2j.tornado.KernelHelpers.normedDotAt;
import static io.github.llama2j.tornado.KernelHelpers.int8At;
import static io.github.llama2j.tornado.KernelHelpers.reduceSum;
import static io.github.llama2j.tornado.KernelHelpers.rmsScaleAt;
import static io.github.llama2j.tornado.KernelHelpers.rmsScalePartialsAt;
import static io.github.llama2j.tornado.KernelHelpers.storeQkvAt;
import static io.github.llama2j.tornado.KernelHelpers.swiglu;
import static io.github.llama2j.tornado.TransformerKernels.MAX_LOCAL;
import static io.github.llama2j.tornado.TransformerKernels.RMS_EPS;

/**
 * The device kernels of a prompt's prefill ({@link PrefillGraph}): a chunk of up to B tokens goes through each
 * layer as a matrix, row i of every chunk buffer being token i ({@code xB}: (B, dim), ...), and each weight row is
 * fetched from memory once per chunk: the work-group that owns a row (or a RoPE pair of rows) computes it for every
 * token of the chunk in turn, so the B − 1 later passes over the row read it from cache.
 *
 * <p>Per token the arithmetic is the one-token kernels' ({@link TransformerKernels}: run.c's for float32,
 * runq.c's for Q8_0) through the same helpers with an offset ({@link KernelHelpers#rmsScaleAt},
 * {@link KernelHelpers#dotF32At}, {@link KernelHelpers#dotQ8InputAt}, {@link KernelHelpers#storeQkvAt}): the same
 * per-work-item strides and reduction tree with the same work-group size, so a token's values are those of
 * feeding it alone, up to the compiler's contraction of multiply-adds (tests: {@code PrefillKernelsTest},
 * {@code PrefillVsTokenTest}).
 *
 * <p>{@code pstate} holds the chunk: {@code [startPos, count, token 0, ..., token B-1]}; token i is at
 * position startPos + i. Work-groups past the chunk's {@code count} tokens do nothing, so a graph built for B
 * serves every chunk of at most B tokens. Attention is causal inside the chunk: token i attends to positions
 * 0 .. startPos + i, whose keys and values the qkv kernel wrote before (an earlier launch).
 */
public final class PrefillKernels {
    /** Index of the chunk's first position in {@code pstate}. */
    public static final int START = 0;
    /** Index of the chunk's token count in {@code pstate}. */
    public static final int COUNT = 1;
    /** Index of the chunk's first token in {@code pstate}. */
    public static final int TOKENS = 2;

    private PrefillKernels() {
    }

    // ------------------------------------------------------------------ embedding (one launch per chunk)

    /** xB[i] = embedding row of token i (float32 table). Global size: B × dim rounded up to the work-group. */
    public static void embedF32(KernelContext ctx, IntArray pstate, FloatArray embedding, FloatArray xB, int dim) {
        int gid = ctx.globalIdx;
        int i = gid / dim;
        if (i < pstate.get(COUNT)) {
            int j = gid - i * dim;
            xB.set(gid, embedding.get(pstate.get(TOKENS + i) * dim + j));
        }
    }

    /** xB[i] = dequantized embedding row of token i (q × scale, as runq). Global size: B × dim rounded up. */
    public static void embedQ8(KernelContext ctx, IntArray pstate, IntArray values, FloatArray scales, FloatArray xB,
                               int dim, int groupSize) {
        int gid = ctx.globalIdx;
        int i = gid / dim;
        if (i < pstate.get(COUNT)) {
            int idx = pstate.get(TOKENS + i) * dim + gid - i * dim;
            xB.set(gid, int8At(values, idx) * scales.get(idx / groupSize));
        }
    }

    // ------------------------------------------------------------------ float32 (run.c)

    /**
     * {@link TransformerKernels#qkvF32} for every token of the chunk: one work-group per pair of rows of the stacked
     * [wq; wk; wv]; for token i, rmsnorm of xB[i] (sum of squares per work-group), the two dots, RoPE at position
     * startPos + i, q into qB[i], k and v into the caches' row startPos + i. Global size: (dim + 2 kvDim) / 2 × local.
     */
    public static void qkvF32(KernelContext ctx, FloatArray xB, FloatArray rmsWeight, FloatArray wqkv, FloatArray qB,
                              FloatArray keyCache, FloatArray valueCache, IntArray pstate, FloatArray rope, int dim, int kvDim,
                              int headSize) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float[] s1 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx * 2;
        int base0 = row * dim;
        int base1 = base0 + dim;
        int start = pstate.get(START);
        int count = pstate.get(COUNT);
        for (int i = 0; i < count; i++) {
            int xOff = i * dim;
            float ss = rmsScaleAt(ctx, s0, xB, xOff, dim, RMS_EPS);
            float va = reduceSum(ctx, s0, normedDotAt(ctx, wqkv, base0, xB, xOff, rmsWeight, ss, dim));
            float vb = reduceSum(ctx, s1, normedDotAt(ctx, wqkv, base1, xB, xOff, rmsWeight, ss, dim));
            if (ctx.localIdx == 0) {
                storeQkvAt(rope, qB, xOff, keyCache, valueCache, row, va, vb, start + i, dim, kvDim, headSize);
            }
        }
    }

    /**
     * xB[i][r] += w[r] · inB[i] for every token i (wo on the attention output, w2 on SwiGLU's): one work-group per
     * row r. Global size: rows × local.
     *
     * @param n    the input's width (a row of inB; the weight's columns)
     * @param rows the output's width (a row of xB)
     */
    public static void matmulResidualF32(KernelContext ctx, FloatArray inB, FloatArray w, FloatArray xB, IntArray pstate,
                                         int n, int rows) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        int count = pstate.get(COUNT);
        for (int i = 0; i < count; i++) {
            float total = reduceSum(ctx, scratch, dotF32At(ctx, w, row, inB, i * n, n));
            if (ctx.localIdx == 0) {
                int o = i * rows + row;
                xB.set(o, xB.get(o) + total);
            }
        }
    }

    /**
     * {@link TransformerKernels#w13F32} for every token: hbB[i][r] = silu(w1[r]·xn_i) * (w3[r]·xn_i), xn_i the rmsnorm
     * of xB[i]. One work-group per hidden row; global size: hidden × local.
     */
    public static void w13F32(KernelContext ctx, FloatArray xB, FloatArray rmsWeight, FloatArray w13, FloatArray hbB,
                              IntArray pstate, int dim, int hidden) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float[] s1 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        int base1 = row * dim;
        int base3 = (hidden + row) * dim;
        int count = pstate.get(COUNT);
        for (int i = 0; i < count; i++) {
            int xOff = i * dim;
            float ss = rmsScaleAt(ctx, s0, xB, xOff, dim, RMS_EPS);
            float g = reduceSum(ctx, s0, normedDotAt(ctx, w13, base1, xB, xOff, rmsWeight, ss, dim));
            float u = reduceSum(ctx, s1, normedDotAt(ctx, w13, base3, xB, xOff, rmsWeight, ss, dim));
            if (ctx.localIdx == 0) {
                hbB.set(i * hidden + row, swiglu(g, u));
            }
        }
    }

    /**
     * The classifier on the chunk's last token only: out[r] = w[r] · rmsnorm(xB[count - 1])
     * ({@link TransformerKernels#matmulNormF32}). Global size: vocab × local.
     */
    public static void classifierF32(KernelContext ctx, FloatArray xB, FloatArray rmsWeight, FloatArray w, FloatArray out,
                                     IntArray pstate, int n) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int xOff = (pstate.get(COUNT) - 1) * n;
        float ss = rmsScaleAt(ctx, scratch, xB, xOff, n, RMS_EPS);
        int row = ctx.groupIdx;
        float total = reduceSum(ctx, scratch, normedDotAt(ctx, w, row * n, xB, xOff, rmsWeight, ss, n));
        if (ctx.localIdx == 0) {
            out.set(row, total);
        }
    }

    // ------------------------------------------------------------------ attention

    /**
     * {@link TransformerKernels#attention} for every (token, head) of the chunk: work-group g computes head
     * g mod nHeads of token i = g / nHeads over positions 0 .. startPos + i (scores into its own row of
     * {@code attB}, softmax, Σ att·v in position order) into xbB[i]. Global size: B × nHeads × local.
     *
     * @param attB scratch (B × nHeads × seqLen) in global memory
     */
    public static void attention(KernelContext ctx, FloatArray qB, FloatArray keyCache, FloatArray valueCache,
                                 FloatArray attB, FloatArray xbB, IntArray pstate, int seqLen, int headSize, int kvDim,
                                 int kvMul, float sqrtHeadSize, int nHeads) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int i = ctx.groupIdx / nHeads;
        int h = ctx.groupIdx - i * nHeads;
        // A work-group past the chunk's count runs no iteration (last = -1) but passes every barrier: barriers inside
        // a branch on the group id corrupted PoCL's memory (TornadoVM 5.2, PoCL 6; the branch form ran, then crashed).
        int last = i < pstate.get(COUNT) ? pstate.get(START) + i : -1;
        attendHead(ctx, scratch, qB, (i * nHeads + h) * headSize, keyCache, valueCache, kvDim, (h / kvMul) * headSize, attB,
                ctx.groupIdx * seqLen, xbB, last, headSize, sqrtHeadSize);
    }

    // ------------------------------------------------------------------ Q8_0 (runq), quantized where consumed

    /**
     * {@link TransformerKernels#qkvNormQ8} for every token: rmsnorm of xB[i] (runq's partial-sum order), runq's
     * quantization of it in each work-group, the int8 dots of the row pair, RoPE at startPos + i, cache store.
     * Global size: (dim + 2 kvDim) / 2 × local.
     */
    public static void qkvQ8(KernelContext ctx, FloatArray xB, FloatArray rmsWeight, IntArray wv, FloatArray ws,
                             FloatArray qB, FloatArray keyCache, FloatArray valueCache, IntArray pstate, FloatArray rope,
                             int dim, int kvDim, int headSize, int groupSize, int nPartials) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float[] s1 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx * 2;
        int start = pstate.get(START);
        int count = pstate.get(COUNT);
        for (int i = 0; i < count; i++) {
            int xOff = i * dim;
            float ss = rmsScalePartialsAt(ctx, s0, xB, xOff, dim, nPartials, RMS_EPS);
            float va = reduceSum(ctx, s0, dotQ8InputAt(ctx, xB, xOff, rmsWeight, ss, 1, wv, ws, row, dim, groupSize));
            float vb = reduceSum(ctx, s1, dotQ8InputAt(ctx, xB, xOff, rmsWeight, ss, 1, wv, ws, row + 1, dim, groupSize));
            if (ctx.localIdx == 0) {
                storeQkvAt(rope, qB, xOff, keyCache, valueCache, row, va, vb, start + i, dim, kvDim, headSize);
            }
        }
    }

    /**
     * xB[i][r] += w[r] · quantize(inB[i]) for every token ({@link TransformerKernels#matmulResidualQuantQ8}).
     * Global size: rows × local.
     */
    public static void matmulResidualQ8(KernelContext ctx, FloatArray inB, IntArray wv, FloatArray ws, FloatArray xB,
                                        IntArray pstate, int n, int rows, int groupSize) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        int count = pstate.get(COUNT);
        for (int i = 0; i < count; i++) {
            float total = reduceSum(ctx, scratch, dotQ8InputAt(ctx, inB, i * n, inB, 1.0f, 0, wv, ws, row, n, groupSize));
            if (ctx.localIdx == 0) {
                int o = i * rows + row;
                xB.set(o, xB.get(o) + total);
            }
        }
    }

    /** {@link TransformerKernels#w13NormQ8} for every token. Global size: hidden × local. */
    public static void w13Q8(KernelContext ctx, FloatArray xB, FloatArray rmsWeight, IntArray wv, FloatArray ws,
                             FloatArray hbB, IntArray pstate, int dim, int hidden, int groupSize, int nPartials) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float[] s1 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        int count = pstate.get(COUNT);
        for (int i = 0; i < count; i++) {
            int xOff = i * dim;
            float ss = rmsScalePartialsAt(ctx, s0, xB, xOff, dim, nPartials, RMS_EPS);
            float g = reduceSum(ctx, s0, dotQ8InputAt(ctx, xB, xOff, rmsWeight, ss, 1, wv, ws, row, dim, groupSize));
            float u = reduceSum(ctx, s1, dotQ8InputAt(ctx, xB, xOff, rmsWeight, ss, 1, wv, ws, hidden + row, dim, groupSize));
            if (ctx.localIdx == 0) {
                hbB.set(i * hidden + row, swiglu(g, u));
            }
        }
    }

    /**
     * The classifier of a Q8 checkpoint on the chunk's last token ({@link TransformerKernels#matmulNormQ8}).
     * Global size: vocab × local.
     */
    public static void classifierQ8(KernelContext ctx, FloatArray xB, FloatArray rmsWeight, IntArray wv, FloatArray ws,
                                    FloatArray out, IntArray pstate, int n, int groupSize, int nPartials) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int xOff = (pstate.get(COUNT) - 1) * n;
        float ss = rmsScalePartialsAt(ctx, scratch, xB, xOff, n, nPartials, RMS_EPS);
        int row = ctx.groupIdx;
        float total = reduceSum(ctx, scratch, dotQ8InputAt(ctx, xB, xOff, rmsWeight, ss, 1, wv, ws, row, n, groupSize));
        if (ctx.localIdx == 0) {
            out.set(row, total);
        }
    }
}
