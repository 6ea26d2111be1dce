package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import static io.github.llama2j.tornado.GgmlKernels.FROM_NORM;
import static io.github.llama2j.tornado.GgmlKernels.ROWS_SHIFT;
import static io.github.llama2j.tornado.GgmlKernels.halfToFloat;
import static io.github.llama2j.tornado.GgmlKernels.roundHalfEven;
import static io.github.llama2j.tornado.GgmlKernels.storeHead;
import static io.github.llama2j.tornado.GgmlKernels.storeRow;
import static io.github.llama2j.tornado.GgmlKernels.value;
import static io.github.llama2j.tornado.KernelHelpers.reduceSlice;
import static io.github.llama2j.tornado.KernelHelpers.rmsScale;
import static io.github.llama2j.tornado.KernelHelpers.slice;
import static io.github.llama2j.tornado.KernelHelpers.sliceLane;
import static io.github.llama2j.tornado.KernelHelpers.sliceRow;
import static io.github.llama2j.tornado.KernelHelpers.swiglu;
import static io.github.llama2j.tornado.TransformerKernels.MAX_LOCAL;

/**
 * The device kernels of GGUF K-quant weights (Q4_K and Q6_K, the types of a Q4_K_M file), with llama.cpp's
 * arithmetic as the CPU engine's scalar reference follows it ({@code cpu.ScalarKernels.matmulQ4_K/Q6_K},
 * {@code cpu.Activations.quantizeQ8K}, {@code Matrix.Q4_K/Q6_K.dequantizeRow}).
 *
 * <ul>
 *   <li><b>Weights</b>: the GGUF blocks as they are in the file ({@code DeviceMatrix.KQuant}: bytes, row after
 *       row; Q4_K and Q6_K parts may be stacked, see {@link #rowBase}), decoded here: Q4_K {@code f16 d, f16 dmin, u8 scales[12], u8 qs[128]} (144 bytes per 256 values,
 *       eight sub-blocks of 32 with a 6-bit scale and min), Q6_K {@code u8 ql[128], u8 qh[64], int8 scales[16],
 *       f16 d} (210 bytes, sixteen sub-blocks of 16). The F16 scales are decoded from their bits
 *       ({@link GgmlKernels#halfToFloat}): no device needs fp16 support (PoCL has none).</li>
 *   <li><b>Activations</b>: llama.cpp's Q8_K (quantize_row_q8_K_ref), derived by the product kernel from its
 *       source as the Q8_0 kernels derive Q8_0 (no launch of its own): per block of 256, max = the first value of
 *       largest magnitude, {@code iscale = -127 / max}, {@code q = min(127, round-half-even(iscale * x))},
 *       {@code d_x = 1 / iscale} (an all-zero block: d_x = 0, q = 0).</li>
 *   <li><b>Products</b>, per super-block of 256, one work-item each: Q4_K the exact integers
 *       {@code sumi = Σ_j sc_j · dot_j(nibbles, q)} and {@code summ = Σ_j m_j · (Σ q of sub-block j)}, then
 *       {@code sumf += d_w * d_x * sumi; sumf -= dmin_w * d_x * summ}; Q6_K {@code sumi = Σ_j sc_j · dot_j(q6 - 32, q)},
 *       then {@code sumf += (d_w * d_x) * sumi}: the CPU reference's operations, in its order within a
 *       super-block. The row's super-blocks are summed over the work-group by a tree in local memory (the CPU
 *       adds them left to right: logits agree within float rounding).</li>
 * </ul>
 * One work-item per super-block leaves work-items idle where a row has fewer super-blocks than its slice has
 * work-items (a 2048-wide row has 8: at one row per 128-wide work-group 120 are idle, at {@code rowsPerGroup} 4
 * 24 of each 32-wide slice); splitting a super-block across work-items would change the order of the float
 * scaling the CPU engine follows. The kernels compute {@code rowsPerGroup} rows per work-group as
 * {@link GgmlKernels}' do (a slice per row; a qkv kernel spreads a head's rows over its slices). Static and allocation-free, as TornadoVM requires.
 */
public final class KQuantKernels {
    /** Values per K-quant super-block (and per Q8_K block). */
    public static final int QK_K = 256;
    /** Bytes per Q4_K super-block. */
    public static final int Q4_K_BYTES = 144;
    /** Bytes per Q6_K super-block. */
    public static final int Q6_K_BYTES = 210;

    private KQuantKernels() {
    }

    // ------------------------------------------------------------------ decoding the blocks

    private static int u8(Int8Array w, int i) {
        return w.get(i) & 0xFF;
    }

    /** The F16 value of the two bytes at {@code i} (little-endian), as a float. */
    private static float half(Int8Array w, int i) {
        return halfToFloat(u8(w, i) | (u8(w, i + 1) << 8));
    }

    /** Q4_K: the 6-bit scale of sub-block j (0..7) from the 12 packed bytes at {@code s} (ggml's get_scale_min_k4). */
    static int scaleQ4_K(Int8Array w, int s, int j) {
        int sc;
        if (j < 4) {
            sc = u8(w, s + j) & 63;
        } else {
            sc = (u8(w, s + j + 4) & 0x0F) | ((u8(w, s + j - 4) >> 6) << 4);
        }
        return sc;
    }

    /** Q4_K: the 6-bit min of sub-block j (0..7). */
    static int minQ4_K(Int8Array w, int s, int j) {
        int m;
        if (j < 4) {
            m = u8(w, s + j + 4) & 63;
        } else {
            m = (u8(w, s + j + 4) >> 4) | ((u8(w, s + j) >> 6) << 4);
        }
        return m;
    }

    // ------------------------------------------------------------------ Q8_K activations

    /**
     * Q8_K's {@code iscale = -127 / max} of the block of 256 source values from {@code off} (max: the first value
     * of largest magnitude), 0 for an all-zero block.
     */
    static float q8KInverseScale(FloatArray in, int inOff, FloatArray weight, int n, int source, float scale, int off) {
        float amax = 0.0f;
        float max = 0.0f;
        for (int k = 0; k < QK_K; k++) {
            float v = value(in, inOff, weight, n, source, scale, off + k);
            float a = TornadoMath.abs(v);
            if (a > amax) {
                amax = a;
                max = v;
            }
        }
        float iscale = 0.0f;
        if (amax != 0.0f) {
            iscale = -127.0f / max;
        }
        return iscale;
    }

    /** Q8_K's value of v in a block of inverse scale {@code iscale}: min(127, round-half-even(iscale * v)). */
    static int q8K(float v, float iscale) {
        int q = roundHalfEven(iscale * v);
        if (q > 127) {
            q = 127;
        }
        return q;
    }

    /** Q8_K's block scale {@code 1 / iscale} (0 for an all-zero block). */
    static float q8KScale(float iscale) {
        float d = 0.0f;
        if (iscale != 0.0f) {
            d = 1.0f / iscale;
        }
        return d;
    }

    // ------------------------------------------------------------------ one work-item's part of a row

    /**
     * Lane {@code lane}'s part of the Q4_K row at byte {@code rowBase} of {@code w} (n columns) times the Q8_K blocks
     * of the source's values: super-blocks lane, lane + step, ... below {@code count} (n / 256 for a live row, 0 for a
     * slice past the last row: it reads nothing).
     */
    static float dotSourceQ4_K(FloatArray in, int inOff, FloatArray weight, int n, int source, float scale, Int8Array w, int rowBase,
                               int lane, int step, int count) {
        float sum = 0.0f;
        for (int b = lane; b < count; b += step) {
            int off = b * QK_K;
            int wb = rowBase + b * Q4_K_BYTES;
            float iscale = q8KInverseScale(in, inOff, weight, n, source, scale, off);
            float xd = q8KScale(iscale);
            int sumi = 0;
            int summ = 0;
            for (int sub = 0; sub < 8; sub++) {
                int qs = wb + 16 + 32 * (sub / 2);
                int shift = 4 * (sub % 2);
                int xo = off + 32 * sub;
                int dot = 0;
                int qsum = 0;
                for (int l = 0; l < 32; l++) {
                    int q = q8K(value(in, inOff, weight, n, source, scale, xo + l), iscale);
                    dot += ((u8(w, qs + l) >> shift) & 0x0F) * q;
                    qsum += q;
                }
                sumi += scaleQ4_K(w, wb + 4, sub) * dot;
                summ += minQ4_K(w, wb + 4, sub) * qsum;
            }
            sum += half(w, wb) * xd * sumi;
            sum -= half(w, wb + 2) * xd * summ;
        }
        return sum;
    }

    /** As {@link #dotSourceQ4_K} for Q6_K weights. */
    static float dotSourceQ6_K(FloatArray in, int inOff, FloatArray weight, int n, int source, float scale, Int8Array w, int rowBase,
                               int lane, int step, int count) {
        float sum = 0.0f;
        for (int b = lane; b < count; b += step) {
            int off = b * QK_K;
            int wb = rowBase + b * Q6_K_BYTES;
            float iscale = q8KInverseScale(in, inOff, weight, n, source, scale, off);
            float xd = q8KScale(iscale);
            int sumi = 0;
            for (int part = 0; part < 2; part++) {   // halves of 128 values
                int ql = wb + 64 * part;
                int qh = wb + 128 + 32 * part;
                int sc = wb + 192 + 8 * part;
                int xo = off + 128 * part;
                for (int i = 0; i < 4; i++) {           // values l + 32 i of this half
                    int loOff = ql + 32 * (i % 2);
                    int loShift = 4 * (i / 2);
                    for (int s = 0; s < 2; s++) {       // sub-blocks of 16
                        int dot = 0;
                        for (int l = 16 * s; l < 16 * s + 16; l++) {
                            int lo = (u8(w, loOff + l) >> loShift) & 0x0F;
                            int hi = (u8(w, qh + l) >> (2 * i)) & 3;
                            int q6 = (lo | (hi << 4)) - 32;
                            dot += q6 * q8K(value(in, inOff, weight, n, source, scale, xo + 32 * i + l), iscale);
                        }
                        sumi += w.get(sc + s + 2 * i) * dot;
                    }
                }
            }
            sum += (half(w, wb + 208) * xd) * sumi;
        }
        return sum;
    }

    /** Bytes of an n-column row of type {@code type} (0: Q4_K, 1: Q6_K). */
    static int rowBytes(int n, int type) {
        int b = Q4_K_BYTES;
        if (type != 0) {
            b = Q6_K_BYTES;
        }
        return n / QK_K * b;
    }

    /*
     * A stacked K-quant matrix's rows are up to three parts (rows [0, split1), [split1, split2), [split2, ..)) of their
     * own types: bit p of {@code types} is set where part p is Q6_K, else Q4_K (a matrix of one type: all bits equal,
     * any splits). The kernels find a row's type and byte offset here, then call dotSourceQ4_K or dotSourceQ6_K
     * themselves: a helper calling both exceeds TornadoVM's inlining limit (600 graph nodes; it had 1053).
     */

    /** The type (0: Q4_K, 1: Q6_K) of row {@code row} of a stacked K-quant matrix (see above). */
    static int rowType(int row, int split1, int split2, int types) {
        int type = types & 1;
        if (row >= split2) {
            type = (types >> 2) & 1;
        } else if (row >= split1) {
            type = (types >> 1) & 1;
        }
        return type;
    }

    /** The byte offset of row {@code row} (n columns) of a stacked K-quant matrix (see above). */
    static int rowBase(int row, int n, int split1, int split2, int types) {
        int b0 = rowBytes(n, types & 1);
        int b1 = rowBytes(n, (types >> 1) & 1);
        int base = row * b0;
        if (row >= split2) {
            base = split1 * b0 + (split2 - split1) * b1 + (row - split2) * rowBytes(n, (types >> 2) & 1);
        } else if (row >= split1) {
            base = split1 * b0 + (row - split1) * b1;
        }
        return base;
    }

    // ------------------------------------------------------------------ the engine's kernels

    /** Where {@link #qkvKQuant} finds the types of the q, k and v rows in its {@code flags}: bits 8, 9, 10. */
    public static final int TYPES_SHIFT = 8;

    /**
     * out[outOff + r] (+= when {@code add} != 0) w[r] · the n values of {@code source} (see
     * {@link GgmlKernels#productF32}) for the {@code rows} rows of w, K-quant weights of type {@code type} (0: Q4_K,
     * 1: Q6_K) and Q8_K activations; {@code rowsPerGroup} rows per work-group, a slice per row (one lane per
     * super-block: a slice narrower than a row's super-blocks leaves fewer lanes idle). Global size:
     * ⌈rows / rowsPerGroup⌉ × local.
     */
    public static void productKQuant(KernelContext ctx, FloatArray in, FloatArray weight, int n, int source, float eps,
                                     Int8Array w, int type, FloatArray out, int outOff, int add, int rows, int rowsPerGroup) {
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, scratch, in, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int count = row < rows ? n / QK_K : 0;
        int base = row * rowBytes(n, type);
        float part;
        if (type == 0) {
            part = dotSourceQ4_K(in, 0, weight, n, source, scale, w, base, lane, slice, count);
        } else {
            part = dotSourceQ6_K(in, 0, weight, n, source, scale, w, base, lane, slice, count);
        }
        float total = reduceSlice(ctx, scratch, part, slice);
        storeRow(out, outOff, row, rows, lane, total, add);
    }

    /**
     * As {@link GgmlKernels#w13F32} for K-quant weights ({@code w} stacks w1 over w3; bit 0 of {@code types} set where
     * w1 is Q6_K, bit 1 where w3 is: a Q4_K_M file may mix them); {@code rowsPerGroup} hidden rows per work-group, a
     * slice per row. Global size: ⌈hidden / rowsPerGroup⌉ × local.
     */
    public static void w13KQuant(KernelContext ctx, FloatArray x, FloatArray weight, int n, float eps, Int8Array w,
                                 int types, FloatArray hb, int hidden, int rowsPerGroup) {
        float[] s0 = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, s0, x, n, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int row = sliceRow(ctx, rowsPerGroup);
        int count = row < hidden ? n / QK_K : 0;
        int base1 = rowBase(row, n, hidden, 2 * hidden, types);
        int base3 = rowBase(hidden + row, n, hidden, 2 * hidden, types);
        float p1;
        if ((types & 1) == 0) {
            p1 = dotSourceQ4_K(x, 0, weight, n, FROM_NORM, scale, w, base1, lane, slice, count);
        } else {
            p1 = dotSourceQ6_K(x, 0, weight, n, FROM_NORM, scale, w, base1, lane, slice, count);
        }
        float g = reduceSlice(ctx, s0, p1, slice);
        float p3;
        if ((types & 2) == 0) {
            p3 = dotSourceQ4_K(x, 0, weight, n, FROM_NORM, scale, w, base3, lane, slice, count);
        } else {
            p3 = dotSourceQ6_K(x, 0, weight, n, FROM_NORM, scale, w, base3, lane, slice, count);
        }
        float u = reduceSlice(ctx, s0, p3, slice);
        if (lane == 0 && row < hidden) {
            hb.set(row, swiglu(g, u));
        }
    }

    /**
     * As {@link GgmlKernels#qkvF32} for K-quant weights: rmsnorm, one work-group per head of this product, the
     * head's rows, then bias, head RMSNorm, RoPE and the store of q, k or v. The rows of q, k and v heads may be of
     * different K-quant types (a Q4_K_M file often has a Q6_K wv): bits {@link #TYPES_SHIFT} + 0, 1, 2 of
     * {@code flags} set where wq, wk, wv are Q6_K (all three equal for a product of one type). The head's rows
     * {@code rowsPerGroup} at a time, one per slice, as {@link GgmlKernels#qkvF32}. Global size: the product's
     * heads × local.
     */
    public static void qkvKQuant(KernelContext ctx, FloatArray x, FloatArray weight, int dim, float eps, Int8Array w,
                                 int firstHead, FloatArray qkv, FloatArray bias, FloatArray norms, int flags, FloatArray q,
                                 FloatArray keyCache, FloatArray valueCache, IntArray state, FloatArray rope, int nHeads, int nKv,
                                 int headSize) {
        int rowsPerGroup = flags >> ROWS_SHIFT;
        float[] scratch = ctx.allocateFloatLocalArray(MAX_LOCAL);
        float scale = rmsScale(ctx, scratch, x, dim, eps);
        int slice = slice(ctx, rowsPerGroup);
        int lane = sliceLane(ctx, rowsPerGroup);
        int first = ctx.groupIdx * headSize;
        int h = firstHead + ctx.groupIdx;
        int types = (flags >> TYPES_SHIFT) & 7;
        int split1 = (nHeads - firstHead) * headSize;
        int split2 = (nHeads + nKv - firstHead) * headSize;
        // a head's rows are all of one part, so of one type: one loop per type (uniform in the work-group). (Choosing
        // the dot by an if/else inside one loop, around the loop's reduceSum, gave wrong q rows on PoCL: KQuantKernelsTest.)
        int base = rowBase(first, dim, split1, split2, types);
        int step = rowBytes(dim, rowType(first, split1, split2, types));
        if (rowType(first, split1, split2, types) == 0) {
            for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
                int i = i0 + ctx.localIdx / slice;
                int count = i < headSize ? dim / QK_K : 0;
                float total = reduceSlice(ctx, scratch,
                        dotSourceQ4_K(x, 0, weight, dim, FROM_NORM, scale, w, base + i * step, lane, slice, count), slice);
                storeRow(qkv, h * headSize, i, headSize, lane, total, 0);
            }
        } else {
            for (int i0 = 0; i0 < headSize; i0 += rowsPerGroup) {
                int i = i0 + ctx.localIdx / slice;
                int count = i < headSize ? dim / QK_K : 0;
                float total = reduceSlice(ctx, scratch,
                        dotSourceQ6_K(x, 0, weight, dim, FROM_NORM, scale, w, base + i * step, lane, slice, count), slice);
                storeRow(qkv, h * headSize, i, headSize, lane, total, 0);
            }
        }
        ctx.globalBarrier();
        if (ctx.localIdx == 0) {
            storeHead(qkv, 0, h, bias, norms, flags, eps, q, 0, keyCache, valueCache, state.get(1), rope, nHeads, nKv, headSize);
        }
    }

    /**
     * x = the embedding row of {@code state[0]} from a Q4_K table, dequantized as {@code Matrix.Q4_K.dequantizeRow}:
     * {@code (d * sc) * nibble - dmin * m}. Global size: dim rounded up.
     */
    public static void embedQ4_K(KernelContext ctx, IntArray state, Int8Array w, FloatArray x, int dim) {
        int i = ctx.globalIdx;
        if (i < dim) {
            x.set(i, embeddingQ4_K(w, state.get(0), dim, i));
        }
    }

    /** Value i of the Q4_K embedding row of {@code token} (dim columns), as {@link #embedQ4_K} writes it. */
    static float embeddingQ4_K(Int8Array w, int token, int dim, int i) {
        int b = i / QK_K;
        int k = i % QK_K;
        int wb = token * rowBytes(dim, 0) + b * Q4_K_BYTES;
        int sub = k / 32;
        int q = (u8(w, wb + 16 + 32 * (sub / 2) + k % 32) >> (4 * (sub % 2))) & 0x0F;
        float d = half(w, wb) * scaleQ4_K(w, wb + 4, sub);
        float m = half(w, wb + 2) * minQ4_K(w, wb + 4, sub);
        return d * q - m;
    }

    /**
     * x = the embedding row of {@code state[0]} from a Q6_K table, dequantized as {@code Matrix.Q6_K.dequantizeRow}:
     * {@code (d * sc) * (q6 - 32)}. Global size: dim rounded up.
     */
    public static void embedQ6_K(KernelContext ctx, IntArray state, Int8Array w, FloatArray x, int dim) {
        int j = ctx.globalIdx;
        if (j < dim) {
            x.set(j, embeddingQ6_K(w, state.get(0), dim, j));
        }
    }

    /** Value j of the Q6_K embedding row of {@code token} (dim columns), as {@link #embedQ6_K} writes it. */
    static float embeddingQ6_K(Int8Array w, int token, int dim, int j) {
        int b = j / QK_K;
        int k = j % QK_K;
        int wb = token * rowBytes(dim, 1) + b * Q6_K_BYTES;
        int part = k / 128;
        int r = k % 128;
        int i = r / 32;
        int l = r % 32;
        int lo = (u8(w, wb + 64 * part + l + 32 * (i % 2)) >> (4 * (i / 2))) & 0x0F;
        int hi = (u8(w, wb + 128 + 32 * part + l) >> (2 * i)) & 3;
        // q6 - 32 in float (exact): TornadoVM's OpenCL code converted the negative int (q6 - 32) to float as if
        // unsigned on PoCL (KQuantKernelsTest saw 2.3e9 for -6.9); the value and the product are the same
        float q6 = (lo | (hi << 4)) - 32.0f;
        int sc = w.get(wb + 192 + 8 * part + l / 16 + 2 * i);
        return half(w, wb + 208) * sc * q6;
    }
}
