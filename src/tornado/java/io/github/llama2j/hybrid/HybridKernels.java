package io.github.llama2j.hybrid;

import io.github.llama2j.tornado.TransformerKernels;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import static io.github.llama2j.tornado.KernelHelpers.dotF32;
import static io.github.llama2j.tornado.KernelHelpers.dotQ8;
import static io.github.llama2j.tornado.KernelHelpers.reduceSum;
import static io.github.llama2j.tornado.KernelHelpers.storeQkv;
import static io.github.llama2j.tornado.KernelHelpers.swiglu;

/**
 * The device kernels a hybrid shard needs beyond {@link TransformerKernels} (whose attention, quantize,
 * w13Q8 and matmulQ8 kernels it uses as they are). They differ from the TornadoVM engine's in two ways:
 * the input arrives already normalised (and, for Q8, quantized) from the host, which computes rmsnorm
 * once per step for all shards; and a shard holds only some heads, so the Q/K/V kernels know how many
 * query and key/value rows it owns rather than assuming dim and kvDim.
 *
 * <p>Same conventions as {@link TransformerKernels}: one work-group per output row (per pair of rows for
 * Q/K/V, which RoPE rotates together), tree reductions in local memory with a barrier before every step,
 * {@code state[1]} = position; the pieces both engines share are in {@link io.github.llama2j.tornado.KernelHelpers}.
 * Compiled by TornadoVM at load time, so this class needs {@code -g}.
 */
public final class HybridKernels {
    static final int MAX_LOCAL = TransformerKernels.MAX_LOCAL;

    private HybridKernels() {
    }

    /** out[r] = w[r] · x over n columns. Global size: rows × local. */
    public static void matmulF32(KernelContext ctx, FloatArray x, FloatArray w, FloatArray out, int n) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        float total = reduceSum(ctx, scratch, dotF32(ctx, w, row, x, n));
        if (ctx.localIdx == 0) {
            out.set(row, total);
        }
    }

    /**
     * hb[r] = silu(w1[r]·x) * (w3[r]·x) for the shard's {@code rows} hidden rows; {@code w13} stacks the
     * shard's rows of w1 over the same rows of w3. Global size: rows × local.
     */
    public static void w13F32(KernelContext ctx, FloatArray x, FloatArray w13, FloatArray hb, int n, int rows) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float[] s1 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx;
        int base1 = row * n;
        int base3 = (rows + row) * n;
        float a = 0.0f;
        float b = 0.0f;
        for (int j = ctx.localIdx; j < n; j += ctx.localGroupSizeX) {
            float xj = x.get(j);
            a += w13.get(base1 + j) * xj;
            b += w13.get(base3 + j) * xj;
        }
        float g = reduceSum(ctx, s0, a);
        float u = reduceSum(ctx, s1, b);
        if (ctx.localIdx == 0) {
            hb.set(row, swiglu(g, u));
        }
    }

    /**
     * The shard's Q/K/V rows: {@code w} stacks its qRows rows of wq, then its kvRows rows of wk and of wv
     * (whole heads, so a local row index has the same position within its head as the global one). One
     * work-group per pair of rows; q and k are rotated by RoPE, k and v go to row {@code pos} of the
     * shard's caches ([seq_len][kvRows]). Global size: (qRows + 2 kvRows) / 2 × local.
     *
     * @param rope cos/sin per position and pair: rope[(pos * headSize/2 + i/2) * 2 + {0,1}]
     */
    public static void qkvF32(KernelContext ctx, FloatArray x, FloatArray w, FloatArray q, FloatArray keyCache,
                              FloatArray valueCache, IntArray state, FloatArray rope, int n, int qRows, int kvRows,
                              int headSize) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float[] s1 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx * 2;
        int base0 = row * n;
        int base1 = base0 + n;
        float a = 0.0f;
        float b = 0.0f;
        for (int j = ctx.localIdx; j < n; j += ctx.localGroupSizeX) {
            float xj = x.get(j);
            a += w.get(base0 + j) * xj;
            b += w.get(base1 + j) * xj;
        }
        float va = reduceSum(ctx, s0, a);
        float vb = reduceSum(ctx, s1, b);
        if (ctx.localIdx == 0) {
            storeQkv(state, rope, q, keyCache, valueCache, row, va, vb, qRows, kvRows, headSize);
        }
    }

    /** Q8 version of {@link #qkvF32}: the input is runq's quantized xb (values and per-group scales). */
    public static void qkvQ8(KernelContext ctx, Int8Array xq, FloatArray xs, Int8Array wv, FloatArray ws, FloatArray q,
                             FloatArray keyCache, FloatArray valueCache, IntArray state, FloatArray rope, int n, int qRows,
                             int kvRows, int headSize, int groupSize) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float[] s1 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        int row = ctx.groupIdx * 2;
        float va = reduceSum(ctx, s0, dotQ8(ctx, xq, xs, wv, ws, row, n, groupSize));
        float vb = reduceSum(ctx, s1, dotQ8(ctx, xq, xs, wv, ws, row + 1, n, groupSize));
        if (ctx.localIdx == 0) {
            storeQkv(state, rope, q, keyCache, valueCache, row, va, vb, qRows, kvRows, headSize);
        }
    }
}
