package io.github.llama2j.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A row-major weight matrix [rows × cols] that lives in the memory-mapped model file.
 * Each tensor type knows its own storage; the engines' kernels read it in place (no copies).
 *
 * <p>{@link F32} and {@link Q8} are llama2.c's types. The others are GGML's, with GGML's block
 * layouts (ggml-common.h) and dequantization (ggml-quants.c), every multi-byte field
 * little-endian and unaligned (GGUF aligns tensors, but blocks of 34 or 18 bytes are not aligned):
 * <pre>
 *   type   values/block  bytes/block  layout of one block
 *   F16    1             2            IEEE half
 *   BF16   1             2            the upper 16 bits of a float32
 *   Q8_0   32            34           f16 d, int8 qs[32]                       x = d * q
 *   Q4_0   32            18           f16 d, u8 qs[16]                         x = d * (nibble - 8)
 *   Q5_1   32            24           f16 d, f16 m, u8 qh[4], u8 qs[16]        x = d * q + m, q in [0, 31]
 *   Q2_K   256           84           u8 scales[16], u8 qs[64], f16 d, f16 dmin
 *   IQ4_NL 32            18           f16 d, u8 qs[16]                         x = d * VALUES[nibble]
 *   Q3_K   256           110          u8 hmask[32], u8 qs[64], u8 scales[12], f16 d
 *   IQ4_XS 256           136          f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]
 *   Q4_K   256           144          f16 d, f16 dmin, u8 scales[12], u8 qs[128]
 *   Q5_K   256           176          f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
 *   Q6_K   256           210          u8 ql[128], u8 qh[64], int8 scales[16], f16 d
 * </pre>
 * A row is a whole number of blocks (cols is a multiple of the block size), so row r starts at
 * byte {@code r * rowBytes}.
 */
public sealed interface Matrix permits Matrix.F32, Matrix.Q8, Matrix.Ggml {
    ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    int rows();

    int cols();

    /** Bytes a full pass over this matrix reads (what one matmul streams from memory). */
    long byteSize();

    /** The type's name as GGML spells it ({@code Q4_K}), or {@code Q8 (llama2.c)}, for messages and stats. */
    String typeName();

    /**
     * Row {@code row} as floats into {@code out[off .. off + cols)}, exactly as GGML's
     * {@code dequantize_row_*} computes it (the embedding lookup).
     */
    void dequantizeRow(int row, float[] out, int off);

    /** An IEEE half (as its 16 bits) to float: exact. */
    static float halfToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** A bfloat16 (the upper 16 bits of a float32) to float: exact. */
    static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat(bits << 16);
    }

    /**
     * float to bfloat16 with round-to-nearest-even, as GGML's {@code ggml_compute_fp32_to_bf16}
     * (a NaN stays a quiet NaN).
     */
    static short floatToBf16(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) {
            return (short) ((u >>> 16) | 64);
        }
        return (short) ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16);
    }

    /** Checks a GGML matrix's shape against its segment; returns the bytes of one row. */
    private static long checkBlocks(String type, MemorySegment data, int rows, int cols, int blockValues, int blockBytes) {
        if (rows < 0 || cols <= 0 || cols % blockValues != 0) {
            throw new IllegalArgumentException(type + " matrix " + rows + " x " + cols + ": cols must be a positive multiple of "
                    + blockValues);
        }
        long rowBytes = (long) cols / blockValues * blockBytes;
        if (data.byteSize() != rows * rowBytes) {
            throw new IllegalArgumentException(type + " matrix " + rows + " x " + cols + " needs " + rows * rowBytes
                    + " bytes, its segment has " + data.byteSize());
        }
        return rowBytes;
    }

    /** A GGML tensor: rows of whole blocks, one after another, in one segment of the mapped file. */
    sealed interface Ggml extends Matrix permits F16, BF16, Q8_0, Q4_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K {
        MemorySegment data();

        @Override
        default long byteSize() {
            return data().byteSize();
        }

        /** The record's name is GGML's name of the type. */
        @Override
        default String typeName() {
            return getClass().getSimpleName();
        }
    }

    /** Float32 weights: rows × cols little-endian floats. */
    record F32(MemorySegment data, int rows, int cols) implements Matrix {
        @Override
        public long byteSize() {
            return data.byteSize();
        }

        @Override
        public String typeName() {
            return "F32";
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            MemorySegment.copy(data, FLOAT, (long) row * cols * Float.BYTES, out, off, cols);
        }
    }

    /**
     * llama2.c's Q8_0 weights (runq): rows × cols int8 values, then one float32 scale per group of
     * {@code groupSize} consecutive values (groups never straddle rows because groupSize divides cols).
     * Not GGML's {@link Q8_0}, whose blocks interleave an f16 scale with 32 values.
     */
    record Q8(MemorySegment values, MemorySegment scales, int rows, int cols, int groupSize) implements Matrix {
        @Override
        public long byteSize() {
            return values.byteSize() + scales.byteSize();
        }

        @Override
        public String typeName() {
            return "Q8 (llama2.c)";
        }

        /** runq's dequantization: q * scale, value by value. */
        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long base = (long) row * cols;
            for (int i = 0; i < cols; i++) {
                out[off + i] = values.get(ValueLayout.JAVA_BYTE, base + i) * scales.get(FLOAT, (base + i) / groupSize * Float.BYTES);
            }
        }
    }

    /** IEEE half-precision weights: rows × cols little-endian 16-bit values. */
    record F16(MemorySegment data, int rows, int cols) implements Ggml {
        public F16 {
            checkBlocks("F16", data, rows, cols, 1, 2);
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long base = (long) row * cols * 2;
            for (int i = 0; i < cols; i++) {
                out[off + i] = Float.float16ToFloat(data.get(SHORT, base + 2L * i));
            }
        }
    }

    /** bfloat16 weights: rows × cols little-endian 16-bit values, each the upper half of a float32. */
    record BF16(MemorySegment data, int rows, int cols) implements Ggml {
        public BF16 {
            checkBlocks("BF16", data, rows, cols, 1, 2);
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long base = (long) row * cols * 2;
            for (int i = 0; i < cols; i++) {
                out[off + i] = bf16ToFloat(data.get(SHORT, base + 2L * i));
            }
        }
    }

    /** GGML Q8_0: blocks of 32 values, {@code f16 d, int8 qs[32]} (34 bytes); x = d * q. */
    record Q8_0(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 32, BLOCK_BYTES = 34;

        public Q8_0 {
            checkBlocks("Q8_0", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        /** Bytes of one row of {@code cols} values. */
        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b));
                for (int k = 0; k < BLOCK; k++) {
                    out[off + j + k] = data.get(ValueLayout.JAVA_BYTE, b + 2 + k) * d;
                }
            }
        }
    }

    /**
     * GGML Q4_0: blocks of 32 values, {@code f16 d, u8 qs[16]} (18 bytes); value k < 16 is the low
     * nibble of qs[k], value k + 16 its high nibble; x = d * (nibble - 8).
     */
    record Q4_0(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 32, BLOCK_BYTES = 18;

        public Q4_0 {
            checkBlocks("Q4_0", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        /**
         * Block {@code block}'s 32 values as int8 {@code nibble - 8} (in [-8, 7]), in the block's order, into
         * {@code out} from byte {@code at}: with the block's scale ({@link #scale}) a Q8_0 block of the same values,
         * for the device engines, which run Q4_0 through their Q8_0 kernels (llama.cpp's Q4_0 and Q8_0 dot products
         * are the same integer sum times the same two scales).
         */
        public void widenBlock(long block, MemorySegment out, long at) {
            long b = block * BLOCK_BYTES + 2;
            for (int k = 0; k < 16; k++) {
                int q = data.get(ValueLayout.JAVA_BYTE, b + k) & 0xFF;
                out.set(ValueLayout.JAVA_BYTE, at + k, (byte) ((q & 0x0F) - 8));
                out.set(ValueLayout.JAVA_BYTE, at + k + 16, (byte) ((q >>> 4) - 8));
            }
        }

        /** Block {@code block}'s scale d, as a float (exact). */
        public float scale(long block) {
            return Float.float16ToFloat(data.get(SHORT, block * BLOCK_BYTES));
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b));
                for (int k = 0; k < 16; k++) {
                    int q = data.get(ValueLayout.JAVA_BYTE, b + 2 + k) & 0xFF;
                    out[off + j + k] = ((q & 0x0F) - 8) * d;
                    out[off + j + k + 16] = ((q >>> 4) - 8) * d;
                }
            }
        }
    }

    /**
     * GGML Q5_1: blocks of 32 values, {@code f16 d, f16 m, u8 qh[4], u8 qs[16]} (24 bytes); value k &lt; 16 is the low
     * nibble of qs[k] with bit k of the little-endian word qh as its fifth bit, value k + 16 the high nibble of qs[k]
     * with bit k + 16 (Q5_0's packing); x = d * q + m, q in [0, 31]. Not widened to Q8_0 as Q5_0 is: the offset m is
     * not a multiple of d, and llama.cpp multiplies it with the activations' block sums (Q8_1), not value by value.
     */
    record Q5_1(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 32, BLOCK_BYTES = 24;
        /** Offsets in a block: the offset m, the word of fifth bits, the nibbles. */
        public static final int M = 2, QH = 4, QS = 8;

        public Q5_1 {
            checkBlocks("Q5_1", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        /** The 5-bit value k (0..31) of the block at byte {@code b}. */
        public static int value(MemorySegment data, long b, int k) {
            int qh = data.get(QH_WORD, b + QH);
            int q = data.get(ValueLayout.JAVA_BYTE, b + QS + (k & 15)) & 0xFF;
            return (k < 16 ? q & 0x0F : q >>> 4) | (qh >>> k & 1) << 4;
        }

        private static final ValueLayout.OfInt QH_WORD = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

        /** dequantize_row_q5_1: x = q * d + m, one float product and one sum per value. */
        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b)), m = Float.float16ToFloat(data.get(SHORT, b + M));
                for (int k = 0; k < BLOCK; k++) {
                    out[off + j + k] = value(data, b, k) * d + m;
                }
            }
        }
    }

    /**
     * GGML Q2_K: super-blocks of 256 values, {@code u8 scales[16], u8 qs[64], f16 d, f16 dmin} (84 bytes). Sixteen
     * sub-blocks of 16 values; scales[j] holds sub-block j's 4-bit scale (low nibble) and 4-bit min (high nibble); a
     * value q is 2 bits, 0..3; x = (d * scale) * q - dmin * min. In each half h of 128 values (qs[32h ..]), value
     * l + 32i (l &lt; 32, i &lt; 4) takes bits 2i..2i+1 of qs[32h + l]; its sub-block is 8h + 2i + l / 16 (Q3_K's order
     * of its low bits, and Q6_K's).
     */
    record Q2_K(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 256, BLOCK_BYTES = 84;
        /** Offsets in a super-block: the scale/min bytes, the 2-bit values, the F16 d and dmin. */
        public static final int SCALES = 0, QS = 16, D = 80, DMIN = 82;

        public Q2_K {
            checkBlocks("Q2_K", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        /** The 4-bit scale (0..15) of sub-block j (0..15) of the super-block at byte {@code b}. */
        public static int scale(MemorySegment data, long b, int j) {
            return data.get(ValueLayout.JAVA_BYTE, b + SCALES + j) & 0x0F;
        }

        /** The 4-bit min (0..15) of sub-block j of the super-block at byte {@code b}. */
        public static int min(MemorySegment data, long b, int j) {
            return data.get(ValueLayout.JAVA_BYTE, b + SCALES + j) >> 4 & 0x0F;
        }

        /** Value v (0..255) of the super-block at byte {@code b}: q in [0, 3]. */
        public static int value(MemorySegment data, long b, int v) {
            int h = v / 128, i = v % 128 / 32, l = v % 32;
            return data.get(ValueLayout.JAVA_BYTE, b + QS + 32L * h + l) >> (2 * i) & 3;
        }

        /**
         * dequantize_row_q2_K: per sub-block {@code dl = d * scale} and {@code ml = dmin * min} (exact products), then
         * x = dl * q - ml (one rounding, in the subtraction).
         */
        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b + D)), dmin = Float.float16ToFloat(data.get(SHORT, b + DMIN));
                for (int sub = 0; sub < 16; sub++) {
                    float dl = d * scale(data, b, sub), ml = dmin * min(data, b, sub);
                    for (int k = 0; k < 16; k++) {
                        out[off + j + 16 * sub + k] = dl * value(data, b, 16 * sub + k) - ml;
                    }
                }
            }
        }
    }

    /**
     * GGML IQ4_NL: blocks of 32 values, {@code f16 d, u8 qs[16]} (18 bytes), Q4_0's layout with a non-linear code:
     * value k &lt; 16 is the low nibble of qs[k], value k + 16 its high nibble, and a nibble is an index into the
     * 16 int8 levels {@link #VALUES} (llama.cpp's kvalues_iq4nl); x = d * VALUES[nibble].
     */
    record IQ4_NL(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 32, BLOCK_BYTES = 18;
        /** The 16 levels a nibble indexes, ascending, in [-127, 113] (shared with {@link IQ4_XS}). */
        private static final byte[] VALUES = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

        public IQ4_NL {
            checkBlocks("IQ4_NL", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        /** The 16 levels (a copy). */
        public static byte[] values() {
            return VALUES.clone();
        }

        /** The level of nibble {@code q} (0..15). */
        public static int value(int q) {
            return VALUES[q];
        }

        /** Value v (0..31) of the block at byte {@code b}: the level of its nibble, in [-127, 113]. */
        public static int value(MemorySegment data, long b, int v) {
            int q = data.get(ValueLayout.JAVA_BYTE, b + 2 + (v & 15)) & 0xFF;
            return VALUES[v < 16 ? q & 0x0F : q >>> 4];
        }

        /** dequantize_row_iq4_nl: x = d * level (one float product). */
        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b));
                for (int k = 0; k < BLOCK; k++) {
                    out[off + j + k] = d * value(data, b, k);
                }
            }
        }
    }

    /**
     * GGML IQ4_XS: super-blocks of 256 values, {@code f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]} (136 bytes).
     * Eight sub-blocks of 32, each laid out as an {@link IQ4_NL} block's nibbles (sub-block s: qs[16s ..], value k
     * &lt; 16 the low nibble of byte k, k + 16 its high nibble, a level of {@link IQ4_NL#value(int)}), with a 6-bit
     * scale ls: its low 4 bits the low (s even) or high (s odd) nibble of scales_l[s / 2], its high 2 bits bits 2s,
     * 2s + 1 of scales_h; x = d * (ls - 32) * level.
     */
    record IQ4_XS(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 256, BLOCK_BYTES = 136;
        /** Offsets in a super-block: the F16 d, the high scale bits, the low scale nibbles, the nibbles. */
        public static final int D = 0, SCALES_H = 2, SCALES_L = 4, QS = 8;

        public IQ4_XS {
            checkBlocks("IQ4_XS", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        /** The signed scale ls - 32 (-32..31) of sub-block s (0..7) of the super-block at byte {@code b}. */
        public static int scale(MemorySegment data, long b, int s) {
            return scale(data.get(HEAD, b), s);
        }

        /**
         * The same from the super-block's first eight bytes read as a little-endian long ({@code head}: d, scales_h,
         * scales_l), as the kernels read them, once per super-block: nibble s of scales_l (bits 32 + 4s) and bits
         * 2s, 2s + 1 of scales_h (bits 16 + 2s).
         */
        public static int scale(long head, int s) {
            int low = (int) (head >>> 8 * SCALES_L) >>> 4 * s & 0x0F; // (int shifts of the long's halves: a kernel's loop
            int high = (int) head >>> 8 * SCALES_H + 2 * s & 3;            // over s keeps the halves, long shifts cost more)
            return (low | high << 4) - 32;
        }

        private static final ValueLayout.OfLong HEAD = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

        /** Value v (0..255) of the super-block at byte {@code b}: a level in [-127, 113]. */
        public static int value(MemorySegment data, long b, int v) {
            return IQ4_NL.value(data, b + QS - 2 + 16L * (v / 32), v % 32); // (IQ4_NL.value reads from 2 bytes in)
        }

        /** dequantize_row_iq4_xs: per sub-block {@code dl = d * (ls - 32)} (one float product), then x = dl * level. */
        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b + D));
                for (int s = 0; s < 8; s++) {
                    float dl = d * scale(data, b, s);
                    for (int k = 0; k < 32; k++) {
                        out[off + j + 32 * s + k] = dl * value(data, b, 32 * s + k);
                    }
                }
            }
        }
    }

    /**
     * GGML Q3_K: super-blocks of 256 values, {@code u8 hmask[32], u8 qs[64], u8 scales[12], f16 d} (110 bytes).
     * Sixteen sub-blocks of 16 values, each with a signed 6-bit scale; a value is 3 bits, two from qs and one from
     * hmask, read as q = (2 bits) - 4 when its hmask bit is 0 and (2 bits) when it is 1, so q in [-4, 3];
     * x = d * (scale - 32) * q. In each half h of 128 values (qs[32h ..]), value l + 32i (l &lt; 32, i &lt; 4) takes bits
     * 2i..2i+1 of qs[32h + l] and bit 4h + i of hmask[l]; its sub-block is 8h + 2i + l / 16 (Q6_K's order). Sub-block
     * j's scale has its low 4 bits in scales[j] (j &lt; 8, low nibble) or scales[j - 8] (high nibble), its high 2 bits
     * at bits 2 (j / 4) of scales[8 + j % 4] ({@link #scales}).
     */
    record Q3_K(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 256, BLOCK_BYTES = 110;
        /** Offsets in a super-block: the high bits, the low 2-bit pairs, the packed scales, the F16 d. */
        public static final int HMASK = 0, QS = 32, SCALES = 96, D = 108;

        public Q3_K {
            checkBlocks("Q3_K", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        /**
         * The sixteen 6-bit scales (unsigned, 0..63: the signed scale is this minus 32) as the bytes of two longs,
         * sub-block j in byte j of {@code [0]} (j &lt; 8) or byte j - 8 of {@code [1]}, from the 12 packed bytes read as
         * a little-endian long ({@code lo}, bytes 0..7) and int ({@code hi}, bytes 8..11): the low nibbles of bytes
         * 0..7 are scales 0..7's low 4 bits, their high nibbles scales 8..15's; byte 8 + k holds the high 2 bits of
         * scales k, k + 4, k + 8, k + 12 at bits 0, 2, 4, 6.
         */
        public static long scalesLow(long lo, int hi) {
            long h = hi & 0xFFFFFFFFL;
            return (lo & 0x0F0F0F0F0F0F0F0FL) | ((h & 0x03030303L) | ((h >>> 2) & 0x03030303L) << 32) << 4;
        }

        /** Scales 8..15 as the bytes of a long, as {@link #scalesLow}. */
        public static long scalesHigh(long lo, int hi) {
            long h = hi & 0xFFFFFFFFL;
            return ((lo >>> 4) & 0x0F0F0F0F0F0F0F0FL) | (((h >>> 4) & 0x03030303L) | ((h >>> 6) & 0x03030303L) << 32) << 4;
        }

        /** The signed scale (-32..31) of sub-block j (0..15) of the super-block at byte {@code b}. */
        public static int scale(MemorySegment data, long b, int j) {
            long lo = data.get(LONG, b + SCALES);
            int hi = data.get(INT, b + SCALES + 8);
            long s = j < 8 ? scalesLow(lo, hi) : scalesHigh(lo, hi);
            return (int) (s >>> (8 * (j & 7)) & 0x3F) - 32;
        }

        /** Value v (0..255) of the super-block at byte {@code b}: q in [-4, 3]. */
        public static int value(MemorySegment data, long b, int v) {
            int h = v / 128, i = v % 128 / 32, l = v % 32;
            int low = data.get(ValueLayout.JAVA_BYTE, b + QS + 32L * h + l) >>> (2 * i) & 3;
            int high = data.get(ValueLayout.JAVA_BYTE, b + HMASK + l) >>> (4 * h + i) & 1;
            return low - (high == 0 ? 4 : 0);
        }

        private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

        /** dequantize_row_q3_K: per sub-block {@code dl = d * (scale - 32)} (one float product), then x = dl * q. */
        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b + D));
                for (int sub = 0; sub < 16; sub++) {
                    float dl = d * scale(data, b, sub);
                    for (int k = 0; k < 16; k++) {
                        out[off + j + 16 * sub + k] = dl * value(data, b, 16 * sub + k);
                    }
                }
            }
        }
    }

    /**
     * GGML Q4_K: super-blocks of 256 values, {@code f16 d, f16 dmin, u8 scales[12], u8 qs[128]}
     * (144 bytes). Eight sub-blocks of 32 values, each with a 6-bit scale sc and a 6-bit min m packed
     * in scales[12] (see {@link #scale} and {@link #min}); x = d * sc * nibble - dmin * m. Sub-blocks
     * 2i and 2i+1 share the 32 bytes qs[32i ..]: low nibbles for the first, high for the second.
     */
    record Q4_K(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 256, BLOCK_BYTES = 144;

        public Q4_K {
            checkBlocks("Q4_K", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        /** The 6-bit scale of sub-block j (0..7) from the 12 packed bytes at {@code scales} (GGML's get_scale_min_k4). */
        public static int scale(MemorySegment s, long scales, int j) {
            return j < 4 ? u8(s, scales + j) & 63 : (u8(s, scales + j + 4) & 0x0F) | ((u8(s, scales + j - 4) >>> 6) << 4);
        }

        /**
         * The eight 6-bit scales ({@link #scale}) as the bytes of a long, sub-block j in byte j, from the 12 packed bytes
         * read as a little-endian long ({@code lo}, bytes 0..7) and int ({@code hi}, bytes 8..11): the kernels' unpacking.
         */
        public static long scales(long lo, int hi) {
            return (lo & 0x3F3F3F3FL) | ((hi & 0x0F0F0F0FL) | ((lo & 0xC0C0C0C0L) >>> 2)) << 32;
        }

        /** The eight 6-bit mins ({@link #min}) as the bytes of a long, as {@link #scales}. */
        public static long mins(long lo, int hi) {
            return ((lo >>> 32) & 0x3F3F3F3FL) | (((hi >>> 4) & 0x0F0F0F0FL) | (((lo >>> 32) & 0xC0C0C0C0L) >>> 2)) << 32;
        }

        /** The 6-bit min of sub-block j (0..7). */
        public static int min(MemorySegment s, long scales, int j) {
            return j < 4 ? u8(s, scales + j + 4) & 63 : (u8(s, scales + j + 4) >>> 4) | ((u8(s, scales + j) >>> 6) << 4);
        }

        private static int u8(MemorySegment s, long at) {
            return s.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            dequantize(data, row, cols, BLOCK_BYTES, 16, -1, out, off);
        }

        /**
         * Q4_K's and Q5_K's values, whose super-blocks differ only by Q5_K's 32 bytes of fifth bits ({@code qhAt};
         * negative: none): x = d * sc * q - dmin * m, sub-blocks 2i and 2i + 1 from the low and high nibbles of the 32
         * bytes at {@code qsAt + 32i}, value l of sub-block j taking bit j of qh[l] as its bit 4.
         */
        static void dequantize(MemorySegment data, int row, int cols, int blockBytes, int qsAt, int qhAt, float[] out, int off) {
            long b = row * ((long) cols / BLOCK * blockBytes);
            for (int j = 0; j < cols; j += BLOCK, b += blockBytes) {
                float d = Float.float16ToFloat(data.get(SHORT, b));
                float dmin = Float.float16ToFloat(data.get(SHORT, b + 2));
                long qs = b + qsAt;
                for (int sub = 0; sub < 8; sub += 2) {
                    float d1 = d * scale(data, b + 4, sub), m1 = dmin * min(data, b + 4, sub);
                    float d2 = d * scale(data, b + 4, sub + 1), m2 = dmin * min(data, b + 4, sub + 1);
                    int o = off + j + sub * 32;
                    for (int l = 0; l < 32; l++) {
                        int q = u8(data, qs + l), h = qhAt < 0 ? 0 : u8(data, b + qhAt + l) >>> sub;
                        out[o + l] = d1 * ((q & 0x0F) | (h & 1) << 4) - m1;
                        out[o + 32 + l] = d2 * ((q >>> 4) | (h & 2) << 3) - m2;
                    }
                    qs += 32;
                }
            }
        }
    }

    /**
     * GGML Q5_K: super-blocks of 256 values, {@code f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]}
     * (176 bytes). As {@link Q4_K} with a fifth bit per value: eight sub-blocks of 32 with 6-bit scales
     * and mins packed as Q4_K's ({@link Q4_K#scale}, {@link Q4_K#min}); sub-blocks 2i and 2i+1 share the
     * 32 bytes qs[32i ..], low nibbles for the first, high for the second; value l (l &lt; 32) of sub-block
     * j takes bit j of qh[l] as its bit 4. q = nibble + 16 * bit, in [0, 31]; x = d * sc * q - dmin * m.
     */
    record Q5_K(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 256, BLOCK_BYTES = 176;
        /** Offsets in a super-block: the packed scales, the high bits, the nibbles. */
        public static final int SCALES = 4, QH = 16, QS = 48;

        public Q5_K {
            checkBlocks("Q5_K", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            Q4_K.dequantize(data, row, cols, BLOCK_BYTES, QS, QH, out, off);
        }
    }

    /**
     * GGML Q6_K: super-blocks of 256 values, {@code u8 ql[128], u8 qh[64], int8 scales[16], f16 d}
     * (210 bytes). Sixteen sub-blocks of 16 values with an int8 scale each; a value's 6 bits are
     * 4 from ql and 2 from qh, and x = d * scale * (q - 32). In each half of 128 values (ql 64
     * bytes, qh 32 bytes, 8 scales), value l + 32i (l < 32, i < 4) takes the low (i < 2) or high (i >= 2)
     * nibble of ql[l + 32 (i mod 2)] and bits 2i..2i+1 of qh[l]; its scale is scales[l / 16 + 2i].
     */
    record Q6_K(MemorySegment data, int rows, int cols) implements Ggml {
        public static final int BLOCK = 256, BLOCK_BYTES = 210;

        public Q6_K {
            checkBlocks("Q6_K", data, rows, cols, BLOCK, BLOCK_BYTES);
        }

        public static long rowBytes(int cols) {
            return (long) cols / BLOCK * BLOCK_BYTES;
        }

        @Override
        public void dequantizeRow(int row, float[] out, int off) {
            long b = row * rowBytes(cols);
            for (int j = 0; j < cols; j += BLOCK, b += BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(SHORT, b + 208));
                for (int half = 0; half < 2; half++) {
                    long ql = b + 64L * half, qh = b + 128 + 32L * half, sc = b + 192 + 8L * half;
                    int o = off + j + 128 * half;
                    for (int l = 0; l < 32; l++) {
                        int is = l / 16;
                        int lo = data.get(ValueLayout.JAVA_BYTE, ql + l) & 0xFF, hi = data.get(ValueLayout.JAVA_BYTE, ql + l + 32) & 0xFF;
                        int h = data.get(ValueLayout.JAVA_BYTE, qh + l) & 0xFF;
                        int q1 = ((lo & 0x0F) | ((h & 3) << 4)) - 32;
                        int q2 = ((hi & 0x0F) | (((h >>> 2) & 3) << 4)) - 32;
                        int q3 = ((lo >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
                        int q4 = ((hi >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
                        out[o + l] = d * data.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                        out[o + l + 32] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                        out[o + l + 64] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                        out[o + l + 96] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
                    }
                }
            }
        }
    }
}
