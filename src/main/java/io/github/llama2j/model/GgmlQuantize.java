package io.github.llama2j.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;

/**
 * float32 to GGML's tensor types, written in their exact block layouts (see {@link Matrix}).
 *
 * <ul>
 *   <li>F16, BF16: round to nearest even (GGML's conversions).</li>
 *   <li>Q8_0, Q4_0, Q5_0, Q5_1: GGML's reference quantizers ({@code quantize_row_q8_0_ref},
 *       {@code quantize_row_q4_0_ref}, {@code quantize_row_q5_0_ref}, {@code quantize_row_q5_1_ref}), the ones
 *       llama-quantize runs without an importance matrix: the same bytes.</li>
 *   <li>Q2_K: llama.cpp's reference quantizer ({@code quantize_row_q2_K_ref}: per sub-block of 16 a scale and min
 *       searched on a grid of steps, errors weighted by |x|, then both to 4 bits), which llama-quantize runs without an
 *       importance matrix.</li>
 *   <li>Q3_K: llama.cpp's reference quantizer ({@code quantize_row_q3_K_ref}: a weighted least-squares search per
 *       sub-block of 16, then the sixteen scales to 6 bits), which llama-quantize runs without an importance matrix.</li>
 *   <li>IQ4_NL, IQ4_XS: llama.cpp's quantizer ({@code quantize_iq4_nl}, {@code quantize_iq4_xs}: per block of 32 a
 *       weighted search over 15 candidate scales, the levels by nearest of the 16 non-linear ones), which llama-quantize
 *       runs without an importance matrix.</li>
 *   <li>Q4_K, Q5_K, Q6_K: simple min/max quantizers in the right layout, not llama.cpp's (which searches
 *       for the scales that minimize the error): good enough for random-weight and test matrices,
 *       not byte-identical to llama-quantize.</li>
 * </ul>
 */
public final class GgmlQuantize {
    private static final ValueLayout.OfShort SHORT = Matrix.SHORT;

    private GgmlQuantize() {
    }

    /** Bytes of a row of {@code cols} values of {@code type} ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "Q5_1", "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"). */
    public static long rowBytes(String type, int cols) {
        return switch (type) {
            case "F32" -> 4L * cols;
            case "F16", "BF16" -> 2L * cols;
            case "Q8_0" -> Matrix.Q8_0.rowBytes(cols);
            case "Q4_0" -> Matrix.Q4_0.rowBytes(cols);
            case "Q5_0" -> Q5_0.rowBytes(cols);
            case "Q5_1" -> Matrix.Q5_1.rowBytes(cols);
            case "Q2_K" -> Matrix.Q2_K.rowBytes(cols);
            case "IQ4_NL" -> Matrix.IQ4_NL.rowBytes(cols);
            case "IQ4_XS" -> Matrix.IQ4_XS.rowBytes(cols);
            case "Q3_K" -> Matrix.Q3_K.rowBytes(cols);
            case "Q4_K" -> Matrix.Q4_K.rowBytes(cols);
            case "Q5_K" -> Matrix.Q5_K.rowBytes(cols);
            case "Q6_K" -> Matrix.Q6_K.rowBytes(cols);
            default -> throw new IllegalArgumentException("unknown tensor type " + type);
        };
    }

    /** {@code data} as a rows × cols matrix of {@code type}. */
    public static Matrix wrap(String type, MemorySegment data, int rows, int cols) {
        return switch (type) {
            case "F32" -> new Matrix.F32(data, rows, cols);
            case "F16" -> new Matrix.F16(data, rows, cols);
            case "BF16" -> new Matrix.BF16(data, rows, cols);
            case "Q8_0" -> new Matrix.Q8_0(data, rows, cols);
            case "Q4_0" -> new Matrix.Q4_0(data, rows, cols);
            case "Q5_1" -> new Matrix.Q5_1(data, rows, cols);
            case "Q2_K" -> new Matrix.Q2_K(data, rows, cols);
            case "IQ4_NL" -> new Matrix.IQ4_NL(data, rows, cols);
            case "IQ4_XS" -> new Matrix.IQ4_XS(data, rows, cols);
            case "Q3_K" -> new Matrix.Q3_K(data, rows, cols);
            case "Q4_K" -> new Matrix.Q4_K(data, rows, cols);
            case "Q5_K" -> new Matrix.Q5_K(data, rows, cols);
            case "Q6_K" -> new Matrix.Q6_K(data, rows, cols);
            default -> throw new IllegalArgumentException("unknown tensor type " + type);
        };
    }

    /** rows × cols values (row-major) quantized to {@code type}, in a new segment from {@code allocator}. */
    public static Matrix quantize(String type, float[] values, int rows, int cols, SegmentAllocator allocator) {
        long rowBytes = rowBytes(type, cols);
        MemorySegment data = allocator.allocate(rows * rowBytes, 64);
        for (int r = 0; r < rows; r++) {
            int off = r * cols;
            long at = r * rowBytes;
            switch (type) {
                case "F32" -> MemorySegment.copy(values, off, data, Matrix.FLOAT, at, cols);
                case "F16" -> f16(values, off, cols, data, at);
                case "BF16" -> bf16(values, off, cols, data, at);
                case "Q8_0" -> q8_0(values, off, cols, data, at);
                case "Q4_0" -> q4_0(values, off, cols, data, at);
                case "Q5_1" -> q5_1(values, off, cols, data, at);
                case "Q2_K" -> q2_K(values, off, cols, data, at);
                case "IQ4_NL" -> iq4_nl(values, off, cols, data, at);
                case "IQ4_XS" -> iq4_xs(values, off, cols, data, at);
                case "Q3_K" -> q3_K(values, off, cols, data, at);
                case "Q4_K" -> q4_K(values, off, cols, data, at);
                case "Q5_K" -> q5_K(values, off, cols, data, at);
                default -> q6_K(values, off, cols, data, at);
            }
        }
        return wrap(type, data, rows, cols);
    }

    /** x[off .. off+n) as F16 at byte {@code at}. */
    public static void f16(float[] x, int off, int n, MemorySegment out, long at) {
        for (int i = 0; i < n; i++) {
            out.set(SHORT, at + 2L * i, Float.floatToFloat16(x[off + i]));
        }
    }

    /** x[off .. off+n) as BF16 at byte {@code at}. */
    public static void bf16(float[] x, int off, int n, MemorySegment out, long at) {
        for (int i = 0; i < n; i++) {
            out.set(SHORT, at + 2L * i, Matrix.floatToBf16(x[off + i]));
        }
    }

    private static void half(MemorySegment out, long at, float v) {
        out.set(SHORT, at, Float.floatToFloat16(v));
    }

    /** quantize_row_q8_0_ref: d = amax / 127, q = roundf(x * (1 / d)) (half away from zero). n is a multiple of 32. */
    public static void q8_0(float[] x, int off, int n, MemorySegment out, long at) {
        for (int b = 0; b < n / 32; b++, at += 34) {
            int base = off + 32 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[base + j]));
            }
            float d = amax / 127;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            half(out, at, d);
            for (int j = 0; j < 32; j++) {
                out.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) roundHalfAway(x[base + j] * id));
            }
        }
    }

    /** Of the 32 values from x[base], the first of the largest magnitude, with its sign (Q4_0's and Q5_0's max). */
    private static float firstLargest(float[] x, int base) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++) {
            float v = x[base + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        return max;
    }

    /**
     * quantize_row_q4_0_ref: max = the first value of largest magnitude, d = max / -8,
     * q = min(15, (int) (x / d + 8.5)); value j and j + 16 share byte j (low, high nibble).
     */
    public static void q4_0(float[] x, int off, int n, MemorySegment out, long at) {
        for (int b = 0; b < n / 32; b++, at += 18) {
            int base = off + 32 * b;
            float d = firstLargest(x, base) / -8;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            half(out, at, d);
            for (int j = 0; j < 16; j++) {
                int lo = Math.min(15, (int) (x[base + j] * id + 8.5f));
                int hi = Math.min(15, (int) (x[base + 16 + j] * id + 8.5f));
                out.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) (lo | (hi << 4)));
            }
        }
    }

    /**
     * quantize_row_q5_0_ref: max = the first value of largest magnitude, d = max / -16,
     * q = min(31, (int) (x / d + 16.5)); value j and j + 16 share byte j of qs (low, high nibble), their fifth bits
     * are bits j and j + 16 of the little-endian word qh ({@link Q5_0}).
     */
    public static void q5_0(float[] x, int off, int n, MemorySegment out, long at) {
        for (int b = 0; b < n / 32; b++, at += Q5_0.BLOCK_BYTES) {
            int base = off + 32 * b;
            float d = firstLargest(x, base) / -16;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            half(out, at, d);
            int qh = 0;
            for (int j = 0; j < 16; j++) {
                int lo = Math.min(31, (int) (x[base + j] * id + 16.5f));
                int hi = Math.min(31, (int) (x[base + 16 + j] * id + 16.5f));
                out.set(ValueLayout.JAVA_BYTE, at + 6 + j, (byte) (lo & 0x0F | (hi & 0x0F) << 4));
                qh |= (lo >>> 4 & 1) << j | (hi >>> 4 & 1) << (j + 16);
            }
            out.set(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), at + 2, qh);
        }
    }

    /**
     * quantize_row_q5_1_ref: per block of 32, min and max of the values, d = (max - min) / 31 and m = min (both stored
     * as F16, computed with the floats), q = (int) ((x - min) * (1 / d) + 0.5) (truncated: the values are at least min),
     * packed as {@link Matrix.Q5_1}: the low 4 bits of values j and j + 16 in byte j of qs, their bit 4 as bits j and
     * j + 16 of the little-endian word qh.
     */
    public static void q5_1(float[] x, int off, int n, MemorySegment out, long at) {
        for (int b = 0; b < n / 32; b++, at += Matrix.Q5_1.BLOCK_BYTES) {
            int base = off + 32 * b;
            float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
            for (int j = 0; j < 32; j++) {
                float v = x[base + j];
                if (v < min) {
                    min = v;
                }
                if (v > max) {
                    max = v;
                }
            }
            float d = (max - min) / 31;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            half(out, at, d);
            half(out, at + Matrix.Q5_1.M, min);
            int qh = 0;
            for (int j = 0; j < 16; j++) {
                int lo = (int) ((x[base + j] - min) * id + 0.5f) & 0xFF, hi = (int) ((x[base + 16 + j] - min) * id + 0.5f) & 0xFF;
                out.set(ValueLayout.JAVA_BYTE, at + Matrix.Q5_1.QS + j, (byte) (lo & 0x0F | (hi & 0x0F) << 4));
                qh |= (lo >>> 4 & 1) << j | (hi >>> 4 & 1) << (j + 16);
            }
            out.set(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), at + Matrix.Q5_1.QH, qh);
        }
    }

    /**
     * A simple Q4_K quantizer: per sub-block of 32, scale (max - min) / 15 and min -min(0, x); the
     * eight scales and mins quantized to 6 bits against d = max scale / 63 and dmin = max min / 63
     * (as F16); then q = round((x + dmin m) / (d sc)) in [0, 15].
     */
    public static void q4_K(float[] x, int off, int n, MemorySegment out, long at) {
        int[] sc = new int[8], m = new int[8];
        for (int b = 0; b < n / 256; b++, at += Matrix.Q4_K.BLOCK_BYTES) {
            int base = off + 256 * b;
            float[] dm = scalesAndMins(x, base, 15, out, at, sc, m);
            for (int g = 0; g < 4; g++) {
                for (int l = 0; l < 32; l++) {
                    int lo = kQuant(x[base + 64 * g + l], dm[0] * sc[2 * g], dm[1] * m[2 * g], 15);
                    int hi = kQuant(x[base + 64 * g + 32 + l], dm[0] * sc[2 * g + 1], dm[1] * m[2 * g + 1], 15);
                    out.set(ValueLayout.JAVA_BYTE, at + 16 + 32L * g + l, (byte) (lo | (hi << 4)));
                }
            }
        }
    }

    /**
     * A simple Q5_K quantizer, as {@link #q4_K} with 31 steps per sub-block: q = round((x + dmin m) / (d sc)) in
     * [0, 31], its low 4 bits in qs (as Q4_K's nibbles) and its bit 4 as bit j of qh[l] for value l of sub-block j.
     */
    public static void q5_K(float[] x, int off, int n, MemorySegment out, long at) {
        int[] sc = new int[8], m = new int[8];
        for (int b = 0; b < n / 256; b++, at += Matrix.Q5_K.BLOCK_BYTES) {
            int base = off + 256 * b;
            float[] dm = scalesAndMins(x, base, 31, out, at, sc, m);
            int[] qh = new int[32];
            for (int g = 0; g < 4; g++) {
                for (int l = 0; l < 32; l++) {
                    int lo = kQuant(x[base + 64 * g + l], dm[0] * sc[2 * g], dm[1] * m[2 * g], 31);
                    int hi = kQuant(x[base + 64 * g + 32 + l], dm[0] * sc[2 * g + 1], dm[1] * m[2 * g + 1], 31);
                    out.set(ValueLayout.JAVA_BYTE, at + Matrix.Q5_K.QS + 32L * g + l, (byte) ((lo & 0x0F) | ((hi & 0x0F) << 4)));
                    qh[l] |= (lo >> 4) << (2 * g) | (hi >> 4) << (2 * g + 1);
                }
            }
            for (int l = 0; l < 32; l++) {
                out.set(ValueLayout.JAVA_BYTE, at + Matrix.Q5_K.QH + l, (byte) qh[l]);
            }
        }
    }

    /**
     * The Q4_K/Q5_K super-block at {@code base}: per sub-block of 32, scale (max - min) / levels and min -min(0, x),
     * quantized to 6 bits (sc, m) against d = max scale / 63 and dmin = max min / 63 (as F16), written as the
     * super-block's first 16 bytes (d, dmin, the 12 packed bytes) at {@code at}; returns {d, dmin}.
     */
    private static float[] scalesAndMins(float[] x, int base, int levels, MemorySegment out, long at, int[] sc, int[] m) {
        float[] scale = new float[8], min = new float[8];
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++) {
            float lo = 0, hi = -Float.MAX_VALUE;
            for (int l = 0; l < 32; l++) {
                lo = Math.min(lo, x[base + 32 * j + l]);
                hi = Math.max(hi, x[base + 32 * j + l]);
            }
            scale[j] = (hi - lo) / levels;
            min[j] = -lo;
            maxScale = Math.max(maxScale, scale[j]);
            maxMin = Math.max(maxMin, min[j]);
        }
        float d = Float.float16ToFloat(Float.floatToFloat16(maxScale / 63));
        float dmin = Float.float16ToFloat(Float.floatToFloat16(maxMin / 63));
        half(out, at, d);
        half(out, at + 2, dmin);
        for (int j = 0; j < 8; j++) {
            sc[j] = d == 0 ? 0 : Math.clamp(Math.round(scale[j] / d), 0, 63);
            m[j] = dmin == 0 ? 0 : Math.clamp(Math.round(min[j] / dmin), 0, 63);
        }
        for (int j = 0; j < 4; j++) {
            out.set(ValueLayout.JAVA_BYTE, at + 4 + j, (byte) (sc[j] | ((sc[j + 4] >> 4) << 6)));
            out.set(ValueLayout.JAVA_BYTE, at + 8 + j, (byte) (m[j] | ((m[j + 4] >> 4) << 6)));
            out.set(ValueLayout.JAVA_BYTE, at + 12 + j, (byte) ((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4)));
        }
        return new float[]{d, dmin};
    }

    private static int kQuant(float v, float step, float min, int levels) {
        return step == 0 ? 0 : Math.clamp(Math.round((v + min) / step), 0, levels);
    }

    /**
     * A simple Q6_K quantizer: per sub-block of 16, scale max|x| / 31; the sixteen scales as int8
     * against d = max scale / 127 (as F16); q = round(x / (d sc)) in [-32, 31], stored as q + 32
     * split into ql (4 bits) and qh (2 bits).
     */
    public static void q6_K(float[] x, int off, int n, MemorySegment out, long at) {
        float[] scale = new float[16];
        int[] sc = new int[16];
        for (int b = 0; b < n / 256; b++, at += 210) {
            int base = off + 256 * b;
            float maxScale = 0;
            for (int s = 0; s < 16; s++) {
                float amax = 0;
                for (int l = 0; l < 16; l++) {
                    amax = Math.max(amax, Math.abs(x[base + 16 * s + l]));
                }
                scale[s] = amax / 31;
                maxScale = Math.max(maxScale, scale[s]);
            }
            float d = Float.float16ToFloat(Float.floatToFloat16(maxScale / 127));
            half(out, at + 208, d);
            for (int s = 0; s < 16; s++) {
                sc[s] = d == 0 ? 0 : Math.clamp(Math.round(scale[s] / d), -128, 127);
                out.set(ValueLayout.JAVA_BYTE, at + 192 + s, (byte) sc[s]);
            }
            out.asSlice(at, 192).fill((byte) 0); // ql and qh, OR-ed below
            for (int v = 0; v < 256; v++) {
                float step = d * sc[v / 16];
                int q = (step == 0 ? 0 : Math.clamp(Math.round(x[base + v] / step), -32, 31)) + 32;
                int half = v / 128, i = (v % 128) / 32, l = v % 32;
                long ql = at + 64L * half + l + 32 * (i % 2), qh = at + 128 + 32L * half + l;
                out.set(ValueLayout.JAVA_BYTE, ql, (byte) (out.get(ValueLayout.JAVA_BYTE, ql) | ((q & 0x0F) << (i < 2 ? 0 : 4))));
                out.set(ValueLayout.JAVA_BYTE, qh, (byte) (out.get(ValueLayout.JAVA_BYTE, qh) | ((q >> 4) << (2 * i))));
            }
        }
    }

    /**
     * quantize_row_q2_K_ref, which llama-quantize runs for Q2_K without an importance matrix (in ggml-base's float order,
     * as {@link #q3_K}): per sub-block of 16 a scale and a min from {@link #q2Levels}; the scales to 4 bits against the
     * largest ({@code l = nearest_int(15 / max * scale)}, d = F16(max / 15)), the mins likewise into the high nibbles
     * (dmin); then each value again against its sub-block's stored scale and min, q = clamp(round((x + dmin m) / (d sc)),
     * 0, 3), except in a sub-block whose stored scale is 0, which keeps its first levels (layout: {@link Matrix.Q2_K}).
     */
    public static void q2_K(float[] x, int off, int n, MemorySegment out, long at) {
        int[] levels = new int[256];
        float[] scales = new float[16], mins = new float[16], weights = new float[16];
        int[] aux = new int[16];
        for (int b = 0; b < n / 256; b++, at += Matrix.Q2_K.BLOCK_BYTES) {
            int base = off + 256 * b;
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 16; j++) {
                for (int i = 0; i < 16; i++) {
                    weights[i] = Math.abs(x[base + 16 * j + i]);
                }
                scales[j] = q2Levels(x, base + 16 * j, weights, levels, 16 * j, aux, mins, j);
                if (scales[j] > maxScale) {
                    maxScale = scales[j];
                }
                if (mins[j] > maxMin) {
                    maxMin = mins[j];
                }
            }
            byte[] packed = new byte[16];
            float d = 0.0f, dmin = 0.0f;
            if (maxScale > 0) {
                float iscale = 15.0f / maxScale;
                for (int j = 0; j < 16; j++) {
                    packed[j] = (byte) nearestInt(iscale * scales[j]);
                }
                d = maxScale / 15.0f;
            }
            if (maxMin > 0) {
                float iscale = 15.0f / maxMin;
                for (int j = 0; j < 16; j++) {
                    packed[j] = (byte) (packed[j] | nearestInt(iscale * mins[j]) << 4);
                }
                dmin = maxMin / 15.0f;
            }
            MemorySegment.copy(packed, 0, out, ValueLayout.JAVA_BYTE, at + Matrix.Q2_K.SCALES, 16);
            half(out, at + Matrix.Q2_K.D, d);
            half(out, at + Matrix.Q2_K.DMIN, dmin);
            float dStored = Float.float16ToFloat(Float.floatToFloat16(d)), dminStored = Float.float16ToFloat(Float.floatToFloat16(dmin));
            for (int j = 0; j < 16; j++) {
                float dl = dStored * Matrix.Q2_K.scale(out, at, j);
                if (dl == 0) {
                    continue;
                }
                float ml = dminStored * Matrix.Q2_K.min(out, at, j);
                for (int i = 0; i < 16; i++) {
                    levels[16 * j + i] = Math.clamp(nearestInt((x[base + 16 * j + i] + ml) / dl), 0, 3);
                }
            }
            for (int h = 0; h < 2; h++) {
                for (int l = 0; l < 32; l++) {
                    int v = 128 * h + l;
                    out.set(ValueLayout.JAVA_BYTE, at + Matrix.Q2_K.QS + 32L * h + l, (byte) (levels[v] | levels[v + 32] << 2
                            | levels[v + 64] << 4 | levels[v + 96] << 6));
                }
            }
        }
    }

    /**
     * make_qkx2_quants(16, 3, x, weights, L, &amp;min, Laux, -0.5, 0.1, 15, true): the 16 values from x[from] to levels
     * in [0, 3] (into {@code levels[at ..]}), returning the scale and putting the min (as a non-negative offset:
     * x ≈ scale * l - min) in {@code mins[j]}. The first try spans [min(x, 0), max(x)] in 3 steps; then 16 more with
     * 2.5 + 0.1 s steps over that range, each a weighted least-squares fit of scale and offset (offset clamped to at
     * most 0) to its levels, kept when its weighted absolute error is below the best so far. A sub-block whose values
     * are all equal (to 0 or below, or after the min's clamp) is levels 0 with scale 0.
     */
    static float q2Levels(float[] x, int from, float[] weights, int[] levels, int at, int[] aux, float[] mins, int j) {
        final int nmax = 3, nstep = 15;
        final float rmin = -0.5f, rdelta = 0.1f;
        float min = x[from], max = x[from];
        float sumW = weights[0];
        float sumX = sumW * x[from];
        for (int i = 1; i < 16; i++) {
            float v = x[from + i];
            if (v < min) {
                min = v;
            }
            if (v > max) {
                max = v;
            }
            float w = weights[i];
            sumW += w;
            sumX += w * v;
        }
        if (min > 0) {
            min = 0;
        }
        if (max == min) {
            java.util.Arrays.fill(levels, at, at + 16, 0);
            mins[j] = -min;
            return 0.0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < 16; i++) {
            int l = Math.clamp(nearestInt(iscale * (x[from + i] - min)), 0, nmax);
            levels[at + i] = l;
            float diff = scale * l + min - x[from + i];
            bestError += weights[i] * Math.abs(diff);
        }
        for (int is = 0; is <= nstep; is++) {
            iscale = (rmin + rdelta * is + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < 16; i++) {
                int l = Math.clamp(nearestInt(iscale * (x[from + i] - min)), 0, nmax);
                aux[i] = l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[from + i];
            }
            float det = sumW * sumL2 - sumL * sumL;
            if (det > 0) {
                float thisScale = (sumW * sumXL - sumX * sumL) / det;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / det;
                if (thisMin > 0) {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float error = 0;
                for (int i = 0; i < 16; i++) {
                    float diff = thisScale * aux[i] + thisMin - x[from + i];
                    error += weights[i] * Math.abs(diff);
                }
                if (error < bestError) {
                    System.arraycopy(aux, 0, levels, at, 16);
                    bestError = error;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        mins[j] = -min;
        return scale;
    }

    /**
     * quantize_row_q3_K_ref, which llama-quantize runs for Q3_K without an importance matrix (ggml-base is built without
     * FMA contraction, so this float order is its order): per sub-block of 16 a scale from {@link #q3Levels}; the
     * sixteen scales to signed 6 bits against the one of largest magnitude ({@code iscale = -32 / max}, d = F16(1 /
     * iscale)); then each value again against its sub-block's stored scale, q = clamp(round(x / (d sc)), -4, 3), except
     * in a sub-block whose stored scale is 0, which keeps its first levels. Stored as q + 4: bit 2 in hmask, the low
     * two bits in qs (layout: {@link Matrix.Q3_K}).
     */
    public static void q3_K(float[] x, int off, int n, MemorySegment out, long at) {
        int[] levels = new int[256]; // per value, q + 4 in [0, 7]
        float[] scales = new float[16];
        byte[] packed = new byte[12];
        for (int b = 0; b < n / 256; b++, at += Matrix.Q3_K.BLOCK_BYTES) {
            int base = off + 256 * b;
            for (int j = 0; j < 16; j++) {
                scales[j] = q3Levels(x, base + 16 * j, levels, 16 * j);
            }
            float maxScale = firstOfLargestMagnitude(scales, 0, 16);
            java.util.Arrays.fill(packed, (byte) 0);
            float d = 0.0f;
            if (maxScale != 0) {
                float iscale = -32.0f / maxScale;
                for (int j = 0; j < 16; j++) {
                    int l = Math.clamp((byte) nearestInt(iscale * scales[j]), -32, 31) + 32;
                    packed[j % 8] |= (byte) ((l & 0x0F) << (j < 8 ? 0 : 4));
                    packed[8 + j % 4] |= (byte) ((l >> 4) << (2 * (j / 4)));
                }
                d = 1 / iscale;
            }
            half(out, at + Matrix.Q3_K.D, d);
            MemorySegment.copy(packed, 0, out, ValueLayout.JAVA_BYTE, at + Matrix.Q3_K.SCALES, 12);
            float dStored = Float.float16ToFloat(Float.floatToFloat16(d));
            for (int j = 0; j < 16; j++) {
                float dl = dStored * Matrix.Q3_K.scale(out, at, j);
                if (dl == 0) {
                    continue;
                }
                for (int i = 0; i < 16; i++) {
                    levels[16 * j + i] = Math.clamp(nearestInt(x[base + 16 * j + i] / dl), -4, 3) + 4;
                }
            }
            for (int l = 0; l < 32; l++) {
                int mask = 0;
                for (int k = 0; k < 8; k++) { // value 32k + l's bit 2 as bit k (half k / 4, part k % 4)
                    mask |= (levels[32 * k + l] >> 2) << k;
                }
                out.set(ValueLayout.JAVA_BYTE, at + Matrix.Q3_K.HMASK + l, (byte) mask);
            }
            for (int h = 0; h < 2; h++) {
                for (int l = 0; l < 32; l++) {
                    int v = 128 * h + l;
                    out.set(ValueLayout.JAVA_BYTE, at + Matrix.Q3_K.QS + 32L * h + l, (byte) ((levels[v] & 3) | (levels[v + 32] & 3) << 2
                            | (levels[v + 64] & 3) << 4 | (levels[v + 96] & 3) << 6));
                }
            }
        }
    }

    /**
     * make_q3_quants(16, 4, x, L, true): the 16 values from x[from] to levels q + 4 in [0, 7] (into
     * {@code levels[at ..]}) and their scale. Start from q = clamp(round(-4 x / max), -4, 3) (max the first value of
     * largest magnitude, with its sign); then up to five passes that move each q to {@code round(x sl2 / slx)} (the
     * least-squares optimum with the others fixed, weights x^2) when that raises {@code sumlx^2 / suml2}; the scale is
     * {@code sumlx / suml2}. A sub-block below 1e-15 in magnitude is all zeros (levels 0, not 4) with scale 0.
     */
    static float q3Levels(float[] x, int from, int[] levels, int at) {
        final int nmax = 4;
        float max = firstOfLargestMagnitude(x, from, 16);
        if (Math.abs(max) < 1e-15f) {
            java.util.Arrays.fill(levels, at, at + 16, 0);
            return 0.0f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < 16; i++) {
            float v = x[from + i];
            int l = Math.clamp(nearestInt(iscale * v), -nmax, nmax - 1);
            levels[at + i] = l;
            float w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        for (int pass = 0; pass < 5; pass++) {
            int changed = 0;
            for (int i = 0; i < 16; i++) {
                float v = x[from + i], w = v * v;
                int li = levels[at + i];
                float slx = sumlx - w * v * li;
                if (slx > 0) {
                    float sl2 = suml2 - w * li * li;
                    int l = Math.clamp(nearestInt(v * sl2 / slx), -nmax, nmax - 1);
                    if (l != li) {
                        slx += w * v * l;
                        sl2 += w * l * l;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            levels[at + i] = l;
                            sumlx = slx;
                            suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) {
                break;
            }
        }
        for (int i = 0; i < 16; i++) {
            levels[at + i] += nmax;
        }
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }

    /**
     * quantize_iq4_nl as llama-quantize runs it without an importance matrix: each block of 32 by {@link #iq4Block}
     * (layout: {@link Matrix.IQ4_NL}).
     */
    public static void iq4_nl(float[] x, int off, int n, MemorySegment out, long at) {
        int[] levels = new int[32];
        for (int b = 0; b < n / 32; b++, at += Matrix.IQ4_NL.BLOCK_BYTES) {
            int base = off + 32 * b;
            float d = iq4Block(x, base);
            float id = d != 0 ? 1 / d : 0.0f; // the levels again against the unrounded scale (scale 0: the level of 0)
            for (int j = 0; j < 32; j++) {
                levels[j] = iq4Nearest(id * x[base + j]);
            }
            half(out, at, d);
            iq4Nibbles(levels, 0, out, at + 2);
        }
    }

    /**
     * quantize_iq4_xs without an importance matrix: per sub-block of 32 a scale from {@link #iq4Block}; the eight
     * scales to signed 6 bits against the one of largest magnitude ({@code d = -max / 32} stored as F16, so an all-zero
     * super-block stores -0); then each value again by nearest level against {@code 1 / (d * l)} (d the float before
     * its rounding, l the sub-block's 6-bit scale), a zero {@code d * l} giving the levels of 0.
     */
    public static void iq4_xs(float[] x, int off, int n, MemorySegment out, long at) {
        int[] levels = new int[256];
        float[] scales = new float[8];
        for (int b = 0; b < n / 256; b++, at += Matrix.IQ4_XS.BLOCK_BYTES) {
            int base = off + 256 * b;
            for (int s = 0; s < 8; s++) {
                scales[s] = iq4Block(x, base + 32 * s);
            }
            float maxScale = firstOfLargestMagnitude(scales, 0, 8);
            float d = -maxScale / 32;
            float id = d != 0 ? 1 / d : 0.0f;
            int scalesH = 0;
            for (int s = 0; s < 8; s++) {
                int l = Math.clamp(nearestInt(id * scales[s]), -32, 31);
                float dl = d * l;
                float idl = dl != 0 ? 1 / dl : 0.0f;
                for (int j = 0; j < 32; j++) {
                    levels[32 * s + j] = iq4Nearest(idl * x[base + 32 * s + j]);
                }
                l += 32;
                int low = out.get(ValueLayout.JAVA_BYTE, at + Matrix.IQ4_XS.SCALES_L + s / 2);
                out.set(ValueLayout.JAVA_BYTE, at + Matrix.IQ4_XS.SCALES_L + s / 2,
                        (byte) (s % 2 == 0 ? l & 0x0F : low & 0x0F | (l & 0x0F) << 4));
                scalesH |= (l >> 4) << (2 * s);
            }
            half(out, at + Matrix.IQ4_XS.D, d);
            out.set(SHORT, at + Matrix.IQ4_XS.SCALES_H, (short) scalesH);
            for (int s = 0; s < 8; s++) {
                iq4Nibbles(levels, 32 * s, out, at + Matrix.IQ4_XS.QS + 16L * s);
            }
        }
    }

    /**
     * quantize_row_iq4_nl_impl's search for one block of 32 at {@code x[from]} (weights x^2, as without an importance
     * matrix; 7 tries each side): the returned scale (the callers then pick each value's level against it). A block
     * below 1e-15 in magnitude has scale 0. Start from d = max / 127 (max the first value of largest
     * magnitude, with its sign), levels by nearest to x / d, d the weighted least-squares scale of those; then for
     * t = -7..7 the levels nearest to x (t - 127) / max and their least-squares scale, kept when it explains more
     * ({@code sumqx^2 / sumq2} larger).
     */
    static float iq4Block(float[] x, int from) {
        float max = firstOfLargestMagnitude(x, from, 32);
        if (Math.abs(max) < 1e-15f) {
            return 0.0f;
        }
        float d = -max / IQ4_LEVELS[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float v = x[from + j];
            float q = IQ4_LEVELS[iq4Nearest(id * v)], w = v * v;
            sumqx += w * q * v;
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
        float best = d * sumqx;
        for (int t = -7; t <= 7; t++) {
            id = (t + IQ4_LEVELS[0]) / max;
            sumqx = 0;
            sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                float v = x[from + j];
                float q = IQ4_LEVELS[iq4Nearest(id * v)], w = v * v;
                sumqx += w * q * v;
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        return d;
    }

    private static final byte[] IQ4_LEVELS = Matrix.IQ4_NL.values();

    /**
     * best_index_int8 on the IQ4 levels: the index of the level nearest to v (below the first: 0, above the last: 15; a
     * tie between two neighbours goes to the upper one), found by bisection as ggml does.
     */
    static int iq4Nearest(float v) {
        if (v <= IQ4_LEVELS[0]) {
            return 0;
        }
        if (v >= IQ4_LEVELS[15]) {
            return 15;
        }
        int lo = 0, hi = 15;
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (v < IQ4_LEVELS[mid]) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        return v - IQ4_LEVELS[hi - 1] < IQ4_LEVELS[hi] - v ? hi - 1 : hi;
    }

    /** 32 levels from {@code levels[at]} as 16 bytes at {@code to}: level k in the low nibble of byte k, level k + 16 in its high nibble. */
    private static void iq4Nibbles(int[] levels, int at, MemorySegment out, long to) {
        for (int j = 0; j < 16; j++) {
            out.set(ValueLayout.JAVA_BYTE, to + j, (byte) (levels[at + j] | levels[at + 16 + j] << 4));
        }
    }

    /**
     * The first of {@code v[from .. from + n)} of largest magnitude, with its sign (ggml's {@code if (ax > amax)} scan from
     * 0: 0 when every value is 0 or NaN; also {@code Activations.quantizeQ8K}'s maximum).
     */
    public static float firstOfLargestMagnitude(float[] v, int from, int n) {
        float max = 0, amax = 0;
        for (int i = from; i < from + n; i++) {
            float a = Math.abs(v[i]);
            if (a > amax) {
                amax = a;
                max = v[i];
            }
        }
        return max;
    }

    /**
     * ggml's nearest_int: round half to even by adding 1.5 * 2^23 and reading the mantissa's low 23 bits (right for
     * |v| &lt;= 2^22 - 1; beyond, ggml's bits as they fall, kept so the clamped levels stay ggml's).
     */
    static int nearestInt(float v) {
        return (Float.floatToRawIntBits(v + 12582912.0f) & 0x007FFFFF) - 0x00400000;
    }

    /** C's roundf: half away from zero. */
    private static int roundHalfAway(float v) {
        return (int) (v < 0 ? -Math.floor(-(double) v + 0.5) : Math.floor((double) v + 0.5));
    }
}
