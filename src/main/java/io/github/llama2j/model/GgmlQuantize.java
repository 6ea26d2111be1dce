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
 *   <li>Q4_K, Q5_K, Q6_K: simple min/max quantizers in the right layout, not llama.cpp's (which searches
 *       for the scales that minimize the error): good enough for random-weight and test matrices,
 *       not byte-identical to llama-quantize.</li>
 * </ul>
 */
public final class GgmlQuantize {
    private static final ValueLayout.OfShort SHORT = Matrix.SHORT;

    private GgmlQuantize() {
    }

    /** Bytes of a row of {@code cols} values of {@code type} ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"). */
    public static long rowBytes(String type, int cols) {
        return switch (type) {
            case "F32" -> 4L * cols;
            case "F16", "BF16" -> 2L * cols;
            case "Q8_0" -> Matrix.Q8_0.rowBytes(cols);
            case "Q4_0" -> Matrix.Q4_0.rowBytes(cols);
            case "Q5_0" -> Q5_0.rowBytes(cols);
            case "Q5_1" -> Matrix.Q5_1.rowBytes(cols);
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

    /** C's roundf: half away from zero. */
    private static int roundHalfAway(float v) {
        return (int) (v < 0 ? -Math.floor(-(double) v + 0.5) : Math.floor((double) v + 0.5));
    }
}
