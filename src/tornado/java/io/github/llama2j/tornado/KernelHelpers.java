package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The pieces the device kernels of both TornadoVM-based engines are made of ({@link TransformerKernels} for
 * the TornadoVM engine, {@code hybrid.HybridKernels} for the hybrid's device shard): one copy of each, which
 * TornadoVM inlines into every kernel that calls it (the generated OpenCL C has no calls to them; check with
 * {@code llama2j profile --dump-kernels}). Static, allocation-free, and compiled with {@code -g} like every
 * class TornadoVM reads.
 */
public final class KernelHelpers {
    private KernelHelpers() {
    }

    /** Sum of {@code value} over the work-group, by a tree in local memory; every work-item gets the total. */
    public static float reduceSum(KernelContext ctx, float[] scratch, float value) {
        return reduceSlice(ctx, scratch, value, ctx.localGroupSizeX);
    }

    /**
     * Sum of {@code value} over each slice of {@code slice} consecutive work-items (a power of two dividing the
     * work-group), by a tree in local memory per slice; every work-item gets its slice's total. All work-items
     * pass the same barriers. With one slice (the whole work-group) this is {@link #reduceSum}, step for step.
     */
    public static float reduceSlice(KernelContext ctx, float[] scratch, float value, int slice) {
        int lid = ctx.localIdx;
        int lane = lid & (slice - 1);
        scratch[lid] = value;
        for (int stride = slice / 2; stride > 0; stride >>= 1) {
            ctx.localBarrier();
            if (lane < stride) {
                scratch[lid] += scratch[lid + stride];
            }
        }
        ctx.localBarrier();
        float total = scratch[lid - lane];
        ctx.localBarrier();
        return total;
    }

    /*
     * Several rows per work-group: a work-group of L work-items computes R consecutive output rows (R a power of
     * two dividing L), each by a slice of S = L / R consecutive work-items (on a GPU, S = 32 is a warp per row)
     * that strides over the row S columns at a time and reduces with reduceSlice. Whatever is per work-group
     * (rmsnorm's sum of squares over the whole work-group, in the order of its width L) is then done once per R
     * rows. R = 1 is one row per work-group, the former kernels step for step. Rows are those of the kernel
     * (a qkv kernel's row is a pair); the last work-group's slices past the last row compute nothing and store
     * nothing, but pass every barrier.
     */

    /** Work-items per row (the slice) in a work-group computing {@code rowsPerGroup} rows. */
    public static int slice(KernelContext ctx, int rowsPerGroup) {
        return ctx.localGroupSizeX / rowsPerGroup;
    }

    /** This work-item's row: slice {@code localIdx / slice} of work-group {@code groupIdx}. */
    public static int sliceRow(KernelContext ctx, int rowsPerGroup) {
        return ctx.groupIdx * rowsPerGroup + ctx.localIdx / slice(ctx, rowsPerGroup);
    }

    /** This work-item's place in its slice. */
    public static int sliceLane(KernelContext ctx, int rowsPerGroup) {
        return ctx.localIdx & (slice(ctx, rowsPerGroup) - 1);
    }

    /** Maximum of {@code value} over the work-group, as {@link #reduceSum}. */
    public static float reduceMax(KernelContext ctx, float[] scratch, float value) {
        int lid = ctx.localIdx;
        scratch[lid] = value;
        for (int stride = ctx.localGroupSizeX / 2; stride > 0; stride >>= 1) {
            ctx.localBarrier();
            if (lid < stride) {
                scratch[lid] = TornadoMath.max(scratch[lid], scratch[lid + stride]);
            }
        }
        ctx.localBarrier();
        float total = scratch[0];
        ctx.localBarrier();
        return total;
    }

    /**
     * rmsnorm's factor 1 / sqrt(mean(x²) + eps) over x[0..n), computed by the whole work-group: each
     * work-item sums the squares of x[lid], x[lid + local], ..., then {@link #reduceSum}. Every work-group
     * adds in the same order, so all of them get the same bits: a consumer kernel normalises its input
     * itself (n floats re-read from cache per work-group) instead of waiting for a separate norm kernel.
     */
    public static float rmsScale(KernelContext ctx, float[] scratch, FloatArray x, int n, float eps) {
        return rmsScaleAt(ctx, scratch, x, 0, n, eps);
    }

    /**
     * {@link #rmsScale} with the sum of squares in the order of the former two-launch norm (an {@code rmsPartials}
     * kernel then the quantize kernel, with a work-group of this one's size): {@code nPartials} partial sums, partial p the
     * work-group's tree over lanes l of x[p·local + l + k·nPartials·local], the partials added in order. The Q8
     * kernels use it so that their normalised inputs, hence their int8 values, keep the bits they had when
     * the norm was a launch of its own (an int8 value flips when its input moves by one ulp at a rounding
     * boundary, and llama2.c's greedy tokens were matched with that order).
     */
    public static float rmsScalePartials(KernelContext ctx, float[] scratch, FloatArray x, int n, int nPartials, float eps) {
        return rmsScalePartialsAt(ctx, scratch, x, 0, n, nPartials, eps);
    }

    /** C's round() (half away from zero) of a float, exactly: no float addition that could round. */
    public static int roundHalfAway(float v) {
        float a = TornadoMath.abs(v);
        int i = (int) a;
        if (a - i >= 0.5f) {
            i++;
        }
        return v < 0 ? -i : i;
    }

    /** SwiGLU of one hidden row: silu(g) * u = g * (1 / (1 + e^-g)) * u. */
    public static float swiglu(float g, float u) {
        return g * (1.0f / (1.0f + TornadoMath.exp(-g))) * u;
    }

    /**
     * This work-item's part of row {@code row} of a float32 matrix times {@code x} (columns lid, lid + local, ...);
     * {@link #reduceSum} adds the parts.
     */
    public static float dotF32(KernelContext ctx, FloatArray w, int row, FloatArray x, int n) {
        return dotF32Lanes(w, row, x, n, ctx.localIdx, ctx.localGroupSizeX);
    }

    /** {@link #dotF32} by one lane of a slice: columns {@code lane}, {@code lane + step}, ... below {@code n}. */
    public static float dotF32Lanes(FloatArray w, int row, FloatArray x, int n, int lane, int step) {
        return dotF32LanesAt(w, row, x, 0, n, lane, step);
    }

    /**
     * {@link #dotF32Lanes} with x read from x[xOff ..]. Four columns per step have their weights loaded before any is
     * added (see "Loads in flight" below), then added one by one in column order: the same sum, bit for bit, as one
     * column per step.
     */
    public static float dotF32LanesAt(FloatArray w, int row, FloatArray x, int xOff, int n, int lane, int step) {
        int base = row * n;
        float sum = 0.0f;
        int j = lane;
        for (; j + 3 * step < n; j += 4 * step) {
            float w0 = w.get(base + j);
            float w1 = w.get(base + j + step);
            float w2 = w.get(base + j + 2 * step);
            float w3 = w.get(base + j + 3 * step);
            sum += w0 * x.get(xOff + j);
            sum += w1 * x.get(xOff + j + step);
            sum += w2 * x.get(xOff + j + 2 * step);
            sum += w3 * x.get(xOff + j + 3 * step);
        }
        for (; j < n; j += step) {
            sum += w.get(base + j) * x.get(xOff + j);
        }
        return sum;
    }

    /*
     * Loads in flight: the float kernels' weight loads of a lane's next few columns are issued together, before the
     * arithmetic that uses them, so that a lane has several memory requests in flight instead of one; the sums keep
     * their order. H200, PTX, llama2j profile of the 110M f32 model (2026-12-04, runs 1 and 4 of
     * docs/measurements/2026-12-04-h200.md): qkv 277 -> 353 GB/s, wo 124 -> 199, w1w3 562 -> 689, w2 188 -> 394;
     * 324.6 -> 344.8 tok/s (runs 3 and 4). The Q8 kernels' int8 words loaded four at a time gained
     * nothing there (7B: 390-490 GB/s either way, 31.4 -> 29.3 tok/s) and pushed their helpers past TornadoVM's
     * inlining limit: they load one word per step.
     */

    /**
     * runq's product of row {@code row} of an int8 matrix with the quantized activation, over the groups
     * this work-item owns (groups lid, lid + local, ...): an exact int32 dot per group, then
     * {@code ((float) idot * wScale) * xScale} accumulated in float.
     */
    public static float dotQ8(KernelContext ctx, Int8Array xq, FloatArray xs, Int8Array wv, FloatArray ws, int row, int n,
                              int groupSize) {
        int groups = n / groupSize;
        int base = row * n;
        int sbase = row * groups;
        float sum = 0.0f;
        for (int g = ctx.localIdx; g < groups; g += ctx.localGroupSizeX) {
            int off = g * groupSize;
            int idot = 0;
            for (int k = 0; k < groupSize; k++) {
                idot += xq.get(off + k) * wv.get(base + off + k);
            }
            sum += ((float) idot * ws.get(sbase + g)) * xs.get(g);
        }
        return sum;
    }

    /**
     * One value of a Q8 matmul's input as runq quantizes it: {@code rmsWeight[j] * (ss * x[j])} (run.c's rmsnorm
     * order) when {@code norm} is not 0, else {@code x[j]} as it is.
     */
    public static float inputValue(FloatArray x, FloatArray rmsWeight, float ss, int norm, int j) {
        return inputValueAt(x, 0, rmsWeight, ss, norm, j);
    }

    /**
     * runq's quantization of group {@code g} of the input ({@link #inputValue}), done where it is consumed:
     * {@code scale = max|v| / 127}. Every work-group that calls this computes the same scale from the same
     * values, so all of them see runq's one quantized vector.
     */
    public static float groupScale(FloatArray x, int xOff, FloatArray rmsWeight, float ss, int norm, int g, int groupSize) {
        int off = g * groupSize;
        float wmax = 0.0f;
        for (int k = 0; k < groupSize; k++) {
            float v = TornadoMath.abs(inputValueAt(x, xOff, rmsWeight, ss, norm, off + k));
            if (v > wmax) {
                wmax = v;
            }
        }
        return wmax / 127.0f;
    }

    /** runq's int8 value of input j under its group's {@code scale} (0 for an all-zero group), as {@link TransformerKernels#quantize}. */
    public static int quantized(FloatArray x, int xOff, FloatArray rmsWeight, float ss, int norm, int j, float scale) {
        return scale == 0.0f ? 0 : roundHalfAway(inputValueAt(x, xOff, rmsWeight, ss, norm, j) / scale);
    }

    /**
     * {@link #dotQ8} with the input quantized here instead of read from a quantize kernel's output: for each
     * group this work-item owns, runq's scale and int8 values of the input x[xOff ..] ({@link #groupScale},
     * {@link #quantized}), the exact int32 dot with row {@code row}, then {@code ((float) idot * wScale) * xScale}.
     * This work-item owns groups {@code lane}, {@code lane + step}, ... below {@code groups} (0 for a slice past the
     * last row: it reads nothing).
     */
    public static float dotQ8InputLanesAt(FloatArray x, int xOff, FloatArray rmsWeight, float ss, int norm, IntArray wv,
                                          FloatArray ws, int row, int n, int groupSize, int groups, int lane, int step) {
        int base = row * n;
        int sbase = row * (n / groupSize);
        float sum = 0.0f;
        for (int g = lane; g < groups; g += step) {
            int off = g * groupSize;
            float scale = groupScale(x, xOff, rmsWeight, ss, norm, g, groupSize);
            int idot = 0;
            for (int k = 0; k < groupSize; k += 4) {
                int j = off + k;
                idot += dot4(wv.get((base + j) >> 2), quantized(x, xOff, rmsWeight, ss, norm, j, scale),
                        quantized(x, xOff, rmsWeight, ss, norm, j + 1, scale), quantized(x, xOff, rmsWeight, ss, norm, j + 2, scale),
                        quantized(x, xOff, rmsWeight, ss, norm, j + 3, scale));
            }
            sum += ((float) idot * ws.get(sbase + g)) * scale;
        }
        return sum;
    }

    /*
     * Q8 inputs quantized once per work-group and row. dotQ8InputLanesAt quantizes the groups a work-item owns for every
     * row it computes, so each of a work-group's R slices quantizes its input (qkv, w13: twice), IEEE divisions included:
     * on an H200 that made the 7B-shaped Q8 kernels compute-bound at 60-120 GB/s (docs/measurements/2026-12-04-h200.md).
     * dotQ8InputShared instead walks the input in chunks of groups (chunkGroups: up to one per work-item): the chunk's
     * groups are quantized into local memory (one work-item per group, runq's scale and int8 values, packed four to an
     * int), then every row's slice takes the int8 values from there. A lane owns the same groups in the same order as in
     * dotQ8InputLanesAt (lane l owns groups l, l + slice, ...; chunks are whole multiples of the slice width while
     * groupSize × slice ≤ 4 × Q8_CHUNK_INTS and slice ≤ Q8_CHUNK_GROUPS), so the sums, hence the logits, are the same bits. qkv and w13 call it once per row of their pair (a second result
     * handed back through a local array read stale on PoCL with TornadoVM 5.2): the input is quantized twice per
     * work-group instead of 2R times.
     */

    /** Packed int8 values (four to an int) of one chunk of a Q8 input held in local memory. */
    public static final int Q8_CHUNK_INTS = 1024;
    /** Most groups per chunk (scales in local memory). */
    public static final int Q8_CHUNK_GROUPS = 256;
    /**
     * Declared sizes of the chunk's local arrays: {@link #localLength} of what is used, because TornadoVM 5.2's PTX backend
     * indexes local arrays with byte offsets that are scaled again by the element size (see {@link #localLength}).
     */
    public static final int Q8_CHUNK_LOCAL_INTS = localLength(Q8_CHUNK_INTS);
    public static final int Q8_CHUNK_LOCAL_SCALES = localLength(Q8_CHUNK_GROUPS);

    /**
     * The length to declare for a local array of 4-byte elements of which {@code used} entries are indexed, so that all
     * of them are inside it on every backend. TornadoVM 5.2's PTX backend declares {@code .shared .s32 a[n]} (4n bytes)
     * but addresses entry i at byte 4 × (4i + 16): Graal's byte offset of a Java array element (a 16-byte array header
     * plus 4i) scaled by the element size once more. Entry i's last byte is then 16i + 67, inside 4n bytes while
     * i &lt; (4n - 64) / 16 ({@link #ptxUsable}): a {@code MAX_LOCAL} (1,024) array holds 252 entries there
     * (DeviceSelection.PTX_MAX_LOCAL, compute-sanitizer on an H200), a 4,096-int chunk array 1,020, which is what made
     * the first Q8 kernels with a 1,024-int chunk fail there with CUDA error 700 (docs/measurements/2026-12-04-h200.md).
     * Other backends index correctly and only hold the slack unused.
     */
    public static int localLength(int used) {
        return 4 * used + 16;
    }

    /** Entries TornadoVM 5.2's PTX backend can index in a local array of {@code declared} 4-byte elements (see {@link #localLength}). */
    public static int ptxUsable(int declared) {
        return (4 * declared - 64) / 16;
    }

    /**
     * Groups per chunk: as many as the work-group has work-items (each quantizes one), at most what the local arrays
     * hold, a multiple of the slice width {@code step} (so a lane's groups l, l + step, ... come in the same order
     * chunk after chunk), at least one slice's width if that fits, else what fits.
     */
    public static int chunkGroups(int local, int step, int perGroup) {
        int fit = Math.min(Math.min(local, Q8_CHUNK_INTS / perGroup), Q8_CHUNK_GROUPS);
        return fit >= step ? fit - fit % step : fit;
    }

    /** a0·b0 + a1·b1 + a2·b2 + a3·b3 for the int8 values packed four to an int in {@code a} and {@code b} (low byte first). */
    public static int dot4Packed(int a, int b) {
        return ((a << 24) >> 24) * ((b << 24) >> 24) + ((a << 16) >> 24) * ((b << 16) >> 24)
                + ((a << 8) >> 24) * ((b << 8) >> 24) + (a >> 24) * (b >> 24);
    }

    /** Four int8 values packed in an int, low byte first. */
    public static int pack4(int a, int b, int c, int d) {
        return (a & 0xFF) | ((b & 0xFF) << 8) | ((c & 0xFF) << 16) | (d << 24);
    }

    /**
     * {@link #dotQ8InputLanesAt} for row {@code row} with the input quantized once per work-group and call, chunk by
     * chunk, in the local arrays {@code qx} ({@link #Q8_CHUNK_LOCAL_INTS}) and {@code xs} ({@link #Q8_CHUNK_LOCAL_SCALES}).
     * Every work-item of the work-group must call it (it passes barriers); {@code live} false for a slice past the
     * last row.
     */
    public static float dotQ8InputShared(KernelContext ctx, int[] qx, float[] xs, FloatArray x, FloatArray rmsWeight, float ss,
                                         int norm, IntArray wv, FloatArray ws, int row, int n, int groupSize, boolean live, int lane,
                                         int step) {
        int nGroups = n / groupSize;
        int perGroup = groupSize / 4;
        int chunk = chunkGroups(ctx.localGroupSizeX, step, perGroup);
        int t = ctx.localIdx;
        int wbase = (row * n) >> 2;
        int sbase = row * nGroups;
        float sum = 0.0f;
        for (int c = 0; c < nGroups; c += chunk) {
            int count = Math.min(chunk, nGroups - c);
            if (t < count) {
                int off = (c + t) * groupSize;
                float scale = groupScale(x, 0, rmsWeight, ss, norm, c + t, groupSize);
                xs[t] = scale;
                for (int k = 0; k < perGroup; k++) {
                    int j = off + 4 * k;
                    qx[t * perGroup + k] = pack4(quantized(x, 0, rmsWeight, ss, norm, j, scale),
                            quantized(x, 0, rmsWeight, ss, norm, j + 1, scale), quantized(x, 0, rmsWeight, ss, norm, j + 2, scale),
                            quantized(x, 0, rmsWeight, ss, norm, j + 3, scale));
                }
            }
            ctx.localBarrier();
            for (int i = lane; live && i < count; i += step) {
                int g = c + i;
                int wo = (g * groupSize) >> 2;
                int idot = 0;
                for (int k = 0; k < perGroup; k++) {
                    idot += dot4Packed(wv.get(wbase + wo + k), qx[i * perGroup + k]);
                }
                sum += ((float) idot * ws.get(sbase + g)) * xs[i];
            }
            ctx.localBarrier();
        }
        return sum;
    }

    /*
     * Q8 weights on the device are int8 values packed four to an int ({@code DeviceMatrix.Q8}: the bytes as they
     * are, so value i is byte i % 4 of int i / 4, little-endian), read a whole int at a time: one load per four
     * values instead of four byte loads. Integer dots are exact, so the products' order does not matter.
     */

    /** The int8 value at index {@code i} of packed values. */
    public static int int8At(IntArray packed, int i) {
        return byteOf(packed.get(i >> 2), i & 3);
    }

    /** Byte {@code t} (0 = the lowest) of {@code w} as a signed int8 value. */
    public static int byteOf(int w, int t) {
        return (w << (24 - 8 * t)) >> 24;
    }

    /** a·w0 + b·w1 + c·w2 + d·w3 for the four int8 values w0..w3 (low byte first) packed in {@code w}. */
    public static int dot4(int w, int a, int b, int c, int d) {
        return a * ((w << 24) >> 24) + b * ((w << 16) >> 24) + c * ((w << 8) >> 24) + d * (w >> 24);
    }

    /**
     * Writes one pair (row, row + 1) of the stacked [q; k; v] outputs at position {@code state[1]}: q and k
     * rotated by RoPE, k and v into row pos of the caches ([seq_len][kvRows]). Rows below {@code qRows} are q,
     * the next {@code kvRows} k, the rest v (whole heads, so a row's place in its head is {@code r % headSize}).
     *
     * @param rope cos/sin per position and pair: rope[(pos * headSize/2 + i/2) * 2 + {0,1}]
     */
    public static void storeQkv(IntArray state, FloatArray rope, FloatArray q, FloatArray keyCache, FloatArray valueCache,
                                int row, float v0, float v1, int qRows, int kvRows, int headSize) {
        storeQkvAt(rope, q, 0, keyCache, valueCache, row, v0, v1, state.get(1), qRows, kvRows, headSize);
    }

    // ------------------------------------------------------------------ one token's row of a chunk (PrefillKernels)

    /*
     * The helpers below are the one-token helpers above with the input read from a row of a chunk's matrix
     * ({@code xOff}: the row's first index) and the position given rather than read from {@code state}:
     * PrefillKernels calls them once per token of the chunk, so each token's sums keep the one-token kernels'
     * order (per-work-item strides, the same tree). The one-token helpers are the offset-0 cases of these (or of
     * their *LanesAt forms, which the several-rows-per-work-group kernels call with a slice's lane and step).
     */

    /** {@link #rmsScale} of x[xOff .. xOff + n). */
    public static float rmsScaleAt(KernelContext ctx, float[] scratch, FloatArray x, int xOff, int n, float eps) {
        float sum = 0.0f;
        for (int j = ctx.localIdx; j < n; j += ctx.localGroupSizeX) {
            float v = x.get(xOff + j);
            sum += v * v;
        }
        float ss = reduceSum(ctx, scratch, sum);
        ss /= n;
        ss += eps;
        return 1.0f / TornadoMath.sqrt(ss);
    }

    /** {@link #rmsScalePartials} of x[xOff .. xOff + n). */
    public static float rmsScalePartialsAt(KernelContext ctx, float[] scratch, FloatArray x, int xOff, int n, int nPartials,
                                           float eps) {
        int stride = nPartials * ctx.localGroupSizeX;
        float ss = 0.0f;
        for (int p = 0; p < nPartials; p++) {
            float sum = 0.0f;
            for (int i = p * ctx.localGroupSizeX + ctx.localIdx; i < n; i += stride) {
                float v = x.get(xOff + i);
                sum += v * v;
            }
            ss += reduceSum(ctx, scratch, sum);
        }
        ss /= n;
        ss += eps;
        return 1.0f / TornadoMath.sqrt(ss);
    }

    /**
     * This work-item's part of a float32 matrix row (starting at {@code w[base]}) times x[xOff .. xOff + n) normalised
     * on the fly, {@code rmsWeight[j] * (ss * x[xOff + j])} (run.c's rmsnorm order), columns lid, lid + local, ...
     */
    public static float normedDotAt(KernelContext ctx, FloatArray w, int base, FloatArray x, int xOff, FloatArray rmsWeight,
                                    float ss, int n) {
        float sum = 0.0f;
        for (int j = ctx.localIdx; j < n; j += ctx.localGroupSizeX) {
            sum += w.get(base + j) * (rmsWeight.get(j) * (ss * x.get(xOff + j)));
        }
        return sum;
    }

    /** {@link #dotF32} with x read from x[xOff ..]. */
    public static float dotF32At(KernelContext ctx, FloatArray w, int row, FloatArray x, int xOff, int n) {
        return dotF32LanesAt(w, row, x, xOff, n, ctx.localIdx, ctx.localGroupSizeX);
    }

    /**
     * {@link #dotQ8InputLanesAt} over all of x[xOff ..] by the whole work-group: runq's scale and int8 values
     * of each group this work-item owns, the exact int32 dot with row {@code row}, {@code ((float) idot * wScale) * xScale}.
     */
    public static float dotQ8InputAt(KernelContext ctx, FloatArray x, int xOff, FloatArray rmsWeight, float ss, int norm,
                                     IntArray wv, FloatArray ws, int row, int n, int groupSize) {
        return dotQ8InputLanesAt(x, xOff, rmsWeight, ss, norm, wv, ws, row, n, groupSize, n / groupSize, ctx.localIdx,
                ctx.localGroupSizeX);
    }

    /** {@link #inputValue} of x[xOff + j] (norm weight j). */
    public static float inputValueAt(FloatArray x, int xOff, FloatArray rmsWeight, float ss, int norm, int j) {
        float v = x.get(xOff + j);
        if (norm != 0) {
            v = rmsWeight.get(j) * (ss * v);
        }
        return v;
    }

    /**
     * {@link #storeQkv} at position {@code pos}, q written at q[qOff + r]: one pair (row, row + 1) of the stacked
     * [q; k; v] outputs, q and k rotated by RoPE, k and v into row pos of the caches ([seq_len][kvRows]).
     */
    public static void storeQkvAt(FloatArray rope, FloatArray q, int qOff, FloatArray keyCache, FloatArray valueCache,
                                  int row, float v0, float v1, int pos, int qRows, int kvRows, int headSize) {
        if (row < qRows + kvRows) {
            int r = row < qRows ? row : row - qRows;
            int ri = (pos * (headSize / 2) + (r % headSize) / 2) * 2;
            float fcr = rope.get(ri);
            float fci = rope.get(ri + 1);
            float o0 = v0 * fcr - v1 * fci;
            float o1 = v0 * fci + v1 * fcr;
            if (row < qRows) {
                q.set(qOff + r, o0);
                q.set(qOff + r + 1, o1);
            } else {
                keyCache.set(pos * kvRows + r, o0);
                keyCache.set(pos * kvRows + r + 1, o1);
            }
        } else {
            int r = row - qRows - kvRows;
            valueCache.set(pos * kvRows + r, v0);
            valueCache.set(pos * kvRows + r + 1, v1);
        }
    }

    /**
     * Attention of one query head over the cached positions 0 .. {@code last}, by the whole work-group (the one-token
     * kernel's and the batched prefill's head): scores q·k / sqrt(headSize) into {@code att[attOff + t]}, softmax
     * (max and sum reduced in local memory), then {@code out[qOff + k] = Σ_t att[t] · v[t][k]} in t order. The query
     * is {@code q[qOff ..]}; the key/value head starts at {@code kvOff} in each cache row of {@code kvDim}. With
     * {@code last < 0} nothing is computed or stored, and every barrier is still passed.
     */
    public static void attendHead(KernelContext ctx, float[] scratch, FloatArray q, int qOff, FloatArray keyCache,
                                  FloatArray valueCache, int kvDim, int kvOff, FloatArray att, int attOff, FloatArray out,
                                  int last, int headSize, float sqrtHeadSize) {
        attendChunk(ctx, scratch, q, qOff, keyCache, valueCache, kvDim, kvOff, att, attOff, out, qOff, -1, 0, last, 1, headSize,
                sqrtHeadSize);
    }

    /**
     * Attention of one query head over the cached positions {@code first .. last} (one chunk of a split head, or the
     * whole head when {@code first} is 0: {@link #attendHead} is this with first 0 and {@code normalize} 1, step for
     * step). Scores into {@code att[attOff + t]}, the chunk's max m (a local-memory tree) and e_t = exp(score - m),
     * their sum s; then {@code out[outOff + k]}: with {@code normalize} != 0 Σ_t (e_t / s) · v[t][k] (softmax over the
     * chunk, today's head), else the unnormalised Σ_t e_t · v[t][k], both in t order. With {@code stats >= 0} it also
     * writes {@code out[stats] = m, out[stats + 1] = s} (0 and 1 when normalised, so that a combine of one chunk
     * leaves the values as they are). An empty chunk ({@code last < first}) writes only the stats (m = -FLT_MAX,
     * s = 0) and still passes every barrier.
     */
    public static void attendChunk(KernelContext ctx, float[] scratch, FloatArray q, int qOff, FloatArray keyCache,
                                   FloatArray valueCache, int kvDim, int kvOff, FloatArray att, int attOff, FloatArray out,
                                   int outOff, int stats, int first, int last, int normalize, int headSize,
                                   float sqrtHeadSize) {
        int lid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        float max = -Float.MAX_VALUE;
        for (int t = first + lid; t <= last; t += local) {
            int kOff = t * kvDim + kvOff;
            float score = 0.0f;
            for (int k = 0; k < headSize; k++) {
                score += q.get(qOff + k) * keyCache.get(kOff + k);
            }
            score /= sqrtHeadSize;
            att.set(attOff + t, score);
            max = TornadoMath.max(max, score);
        }
        float m = reduceMax(ctx, scratch, max);
        float sum = 0.0f;
        for (int t = first + lid; t <= last; t += local) {
            float e = TornadoMath.exp(att.get(attOff + t) - m);
            att.set(attOff + t, e);
            sum += e;
        }
        float total = reduceSum(ctx, scratch, sum);
        if (normalize != 0) {
            for (int t = first + lid; t <= last; t += local) {
                att.set(attOff + t, att.get(attOff + t) / total);
            }
        }
        // Each work-item wrote its own t's above; below every work-item reads all of them.
        ctx.globalBarrier();
        int outEnd = last < first ? 0 : headSize;
        for (int k = lid; k < outEnd; k += local) {
            float acc = 0.0f;
            for (int t = first; t <= last; t++) {
                acc += att.get(attOff + t) * valueCache.get(t * kvDim + kvOff + k);
            }
            out.set(outOff + k, acc);
        }
        if (lid == 0 && stats >= 0) {
            out.set(stats, normalize != 0 ? 0.0f : m);
            out.set(stats + 1, normalize != 0 ? 1.0f : total);
        }
    }

    // ------------------------------------------------------------------ split attention (several work-groups per head)

    /*
     * Split ("flash-decoding") attention of one token: head h's positions 0 .. pos are cut into chunks of
     * chunkLength(pos + 1, chunk, splits) positions, at most `splits` of them; work-group (h, c) of the attention
     * kernel computes chunk c and writes its partial [m, s, o_0 .. o_{headSize-1}] (PARTIAL + headSize floats at
     * ((h * splits + c) * (PARTIAL + headSize)); o unnormalised) with attendChunk. The consumer (wo) combines
     * the live chunks of every head in each of its work-groups (splitWeight and the kernel body): M = max_c m_c,
     * out_h = Σ_c e^(m_c - M) o_c / Σ_c e^(m_c - M) s_c, in chunk order, so every work-group gets the same bits.
     * When one chunk covers all positions (pos + 1 <= chunk) it is today's head exactly: attendChunk normalises
     * it as attendHead does and the combine copies it.
     */

    /** Floats before o in one partial: m and s. */
    public static final int PARTIAL = 2;

    /** Largest input (q_dim) a split consumer combines into local memory. */
    public static final int MAX_SPLIT_INPUT = 8192;

    /** Positions per chunk for {@code n} positions: {@code chunk}, or more when {@code splits} chunks of it are too few. */
    public static int chunkLength(int n, int chunk, int splits) {
        int len = (n + splits - 1) / splits;
        return len < chunk ? chunk : len;
    }

    /** Live chunks (at most {@code splits}) of a token at position {@code pos}: ⌈(pos + 1) / chunkLength⌉. */
    public static int liveChunks(int pos, int chunk, int splits) {
        int len = chunkLength(pos + 1, chunk, splits);
        return (pos + len) / len;
    }

    /*
     * The consumer's combine runs in the kernel body (TransformerKernels.matmulResidualSplitF32 / Q8): it fills two
     * local arrays, weights[h * (splits + 1) + j] = splitWeight(...) (e^(m_c - M) for the live chunks c, the
     * denominator Σ_c e^(m_c - M) s_c at j = splits) and xl[i] = the combined output, both by the work-group, with
     * a barrier after each. A helper that stores into a local array its caller then reads gives wrong values
     * on PoCL with TornadoVM 5.2 (the caller does not see the store: the same failure TransformerKernels notes
     * for the Q8 rows; seen again here, SplitAttentionTest), so only the pure parts are helpers.
     */

    /**
     * Entry j of head h's combine weights (see above): for j < live e^(m_j - M) with M the max of the live chunks'
     * m, for j == splits the denominator Σ_c e^(m_c - M) s_c, else 0. Reads only.
     */
    public static float splitWeight(FloatArray partials, int h, int j, int live, int headSize, int splits) {
        int width = PARTIAL + headSize;
        int base = h * splits * width;
        float big = -Float.MAX_VALUE;
        for (int c = 0; c < live; c++) {
            big = TornadoMath.max(big, partials.get(base + c * width));
        }
        float v = 0.0f;
        if (j < live) {
            v = TornadoMath.exp(partials.get(base + j * width) - big);
        } else if (j == splits) {
            for (int c = 0; c < live; c++) {
                v += TornadoMath.exp(partials.get(base + c * width) - big) * partials.get(base + c * width + 1);
            }
        }
        return v;
    }
}
