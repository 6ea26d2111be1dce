package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * K-quant matrices repacked at load time ({@link PreparedWeights}) and their Vector API kernels.
 *
 * <p><b>Q4_K</b> ({@link Q4K}): the file's 144-byte super-block (f16 d, f16 dmin, 12 bytes of packed
 * 6-bit scales and mins, 128 nibble bytes) is split into
 * <pre>
 *   qs   (rows × nb × 128 bytes, 64-byte aligned): the 256 nibbles, reordered for the kernel's int lanes (below)
 *   meta (rows × nb × {@link Q4K#META} bytes): f16 d, f16 dmin, u8 m[8], u8 sc[8] (twice for 16 int lanes)
 * </pre>
 * About the bytes per weight of the file (148 against 144 per 256 values at 256 bits, 156 at 512). The nibbles are
 * ordered so that one int lane's multiply forms two products at once: a lane holding two nibbles {@code x + 2^16 y} times a lane of
 * activations {@code a_y + 2^16 a_x} is {@code x a_y + 2^16 (x a_x + y a_y)} modulo 2^32, so the upper half carries
 * the pair's sum (the multiply-add of pairs that x86's {@code vpmaddwd} does, which the Vector API lacks). Every int
 * lane holds values of one sub-block only (lane i: sub-block i mod 8 from 256 bits up), so a super-block's products
 * are summed lane by lane before its eight 6-bit scales are applied, once, as a vector. The order depends on the
 * vector width the copy is made for ({@link #LANES}); the activations are arranged to match
 * ({@link Activations}' {@code q8KPairs}). The file's layout ({@code --weight-copies=off}) is read by its own loop
 * in 16-bit lanes: the same integers per sub-block, the float sums in other lanes (a few ulps apart).
 *
 * <p><b>Q5_K</b> ({@link Q5K}): Q4_K's copy with the fifth bits in a part of their own, put in at bit 4 of each
 * half in the kernel.
 *
 * <p><b>Q6_K</b> ({@link Q6K}): the same idea for the 6-bit values, in 16 sub-blocks of 16 with int8 scales.
 *
 * <p><b>Q2_K</b> ({@link Q2K}) and <b>Q3_K</b> ({@link Q3K}, below 512 bits): their 2- and 3-bit values (Q3_K's as
 * q + 4) in Q6_K's copy's order, so their kernels read Q6_K's activation pairs.
 *
 * <p>The copies hold rows of more than {@link #SPANS_FROM_BLOCKS} super-blocks in column spans of
 * {@link #SPAN_BLOCKS} ({@link #copyIndex}): span after span, each span's rows one after another; the kernels go span
 * by span over their rows and add each span's sum to the row's, so a span's activations stay in L1.
 */
final class KQuantPacked {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    private static final java.lang.invoke.VarHandle LONGS = java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, LE);

    private KQuantPacked() {
    }

    /** Throws unless {@code qs} and {@code meta} hold {@code blocks} super-blocks of a copy's two parts. */
    private static void checkCopy(String type, long blocks, MemorySegment qs, long qsBytes, MemorySegment meta, long metaBytes) {
        if (qs.byteSize() != blocks * qsBytes || meta.byteSize() != blocks * metaBytes) {
            throw new IllegalArgumentException("packed " + type + " of " + blocks + " super-blocks: qs " + qs.byteSize()
                    + " bytes, meta " + meta.byteSize());
        }
    }

    /** Super-blocks of 256 values in {@code m} (a K-quant matrix's). */
    private static long superBlocks(Matrix m) {
        return (long) m.rows() * (m.cols() / 256);
    }

    /** Super-blocks per column span of a copy ({@link #spanBlocks}): 2048 columns. */
    static final int SPAN_BLOCKS = 8;
    /**
     * Rows longer than this many super-blocks are stored and multiplied in column spans of {@link #SPAN_BLOCKS}. The
     * kernels read a row's activations once per super-block, and a long row's (2 bytes per column for each type) no
     * longer stay in the core's L1 beside the weights streaming through: Llama-3.1-8B's {@code ffn_down} (14336
     * columns, 56 super-blocks) ran at 17-21 GB/s where its 4096-column matrices ran at 28-36, and 27-29 in spans of
     * 2048 (a throwaway build); with the spans here, its {@code bench} tg8 1.07-1.16x at 512 bits. Llama-3.2-1B's
     * (8192 columns) gained nothing from spans (48 KiB L1 data cache, docs/measurements/2026-12-05-q4-k-one-loop.md).
     */
    static final int SPANS_FROM_BLOCKS = 32;

    /** Super-blocks per column span of a copy of rows of {@code nb} super-blocks: all of them, or {@link #SPAN_BLOCKS}. */
    static int spanBlocks(int nb) {
        return nb > SPANS_FROM_BLOCKS ? SPAN_BLOCKS : nb;
    }

    /**
     * Where the file's super-block i of {@code m} lies in its copy: the copy holds the matrix span after span (spans of
     * {@link #spanBlocks} super-blocks, the last one narrower where they do not divide the row), each span's rows one
     * after another; for rows of at most {@link #SPANS_FROM_BLOCKS} super-blocks, one span: i itself.
     */
    static long copyIndex(Matrix m, long i) {
        int nb = m.cols() / 256, span = spanBlocks(nb);
        long r = i / nb;
        int blk = (int) (i % nb), k0 = blk / span * span, width = Math.min(span, nb - k0);
        return (long) m.rows() * k0 + r * width + (blk - k0);
    }

    /** A copy of super-blocks [from, to). */
    private interface BlockCopy {
        void copy(long from, long to);
    }

    /** {@code copy} over all of a matrix's super-blocks, its rows split over {@code parallel}'s threads (null: this thread). */
    private static void copyRows(int rows, long perRow, Parallel parallel, BlockCopy copy) {
        if (parallel == null) {
            copy.copy(0, rows * perRow);
        } else {
            parallel.forRange(rows, (r0, r1) -> copy.copy(r0 * perRow, r1 * perRow));
        }
    }

    /** A copy of super-blocks [from, to) into a form's two parts. */
    private interface PartsCopy {
        void copy(MemorySegment qs, MemorySegment meta, long from, long to);
    }

    /**
     * A copy of {@code m} in two parts, {@code qsBytes} and {@code metaBytes} per super-block, from {@code memory}
     * (64-byte aligned) or, where it is null, each in private memory of its own ({@link #allocate}); {@code copy} fills
     * them, the rows split over {@code parallel}'s threads (null: this thread), and {@code form} makes the record.
     */
    private static <F> F twoParts(Matrix m, int qsBytes, int metaBytes, java.lang.foreign.SegmentAllocator memory, Parallel parallel,
                                  PartsCopy copy, java.util.function.BiFunction<MemorySegment, MemorySegment, F> form) {
        long blocks = superBlocks(m);
        MemorySegment qs = memory == null ? allocate(blocks * qsBytes) : memory.allocate(blocks * qsBytes, 64);
        MemorySegment meta = memory == null ? allocate(blocks * metaBytes) : memory.allocate(blocks * metaBytes, 64);
        copyRows(m.rows(), m.cols() / 256, parallel, (from, to) -> copy.copy(qs, meta, from, to));
        return form.apply(qs, meta);
    }

    /** A Q4_K matrix in the engine's layout (see the class comment). */
    record Q4K(Matrix.Q4_K source, MemorySegment qs, MemorySegment meta) implements MatrixForm {
        /**
         * Bytes per super-block of the nibbles and of the rest: f16 d, f16 dmin (the file's bits), u8 m[8], then the
         * scales as the kernel reads them for {@link #LANES} lanes: u8 sc[8] (8 lanes), twice (16 lanes: lane i holds
         * sub-block i mod 8), or once and 4 zero bytes (4 lanes: the second group's 8-byte read stays in the
         * super-block). 20 bytes at 256 bits where a float d and dmin and both copies of the scales took 32: the
         * kernel streams its copy at the speed of memory there (docs/measurements/2026-12-05-k-quant-meta.md).
         */
        static final int QS = 128, META = 12 + (LANES == 16 ? 16 : LANES == 8 ? 8 : 12);

        Q4K {
            checkCopy("Q4_K", superBlocks(source), qs, QS, meta, META);
        }

        /** Bytes of the copy (the file's matrix: {@link #byteSize}). */
        long copyBytes() {
            return qs.byteSize() + meta.byteSize();
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), unmapped when the form is no longer reachable. */
        static Q4K of(Matrix.Q4_K m) {
            return of(m, null, null);
        }

        /**
         * {@link #of(Matrix.Q4_K)} into memory from {@code memory} (a slicing allocator over one {@link #allocate}d region
         * for all of a model's copies of the type: {@link PreparedWeights#prepare}, which must give zeroed memory; null:
         * private memory of its own), the rows split over {@code parallel}'s threads (null: this thread).
         */
        static Q4K of(Matrix.Q4_K m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
            return twoParts(m, QS, META, memory, parallel, (qs, meta, from, to) -> copy(m, qs, meta, from, to), (qs, meta) -> new Q4K(m, qs, meta));
        }

        /** Bytes {@link #of(Matrix.Q4_K, java.lang.foreign.SegmentAllocator, Parallel)} takes from its allocator, alignment included. */
        static long allocationBytes(Matrix.Q4_K m) {
            return superBlocks(m) * (QS + META) + 2 * 64;
        }

        /**
         * Super-blocks [from, to) of {@code m} into the copy (the nibbles in {@link #PAIR_VALUE}'s order, read where
         * {@link #NIBBLE_BYTE} and {@link #NIBBLE_SHIFT} say).
         */
        private static void copy(Matrix.Q4_K m, MemorySegment qs, MemorySegment meta, long from, long to) {
            MemorySegment src = m.data();
            byte[] in = new byte[QS], outBytes = new byte[QS];
            for (long i = from; i < to; i++) {
                copyNibblesAndMeta(src, i * Matrix.Q4_K.BLOCK_BYTES, 16, qs, meta, copyIndex(m, i), in, outBytes);
            }
        }

        /**
         * The super-block at byte {@code b} of {@code src} (its nibbles at {@code b + nibblesAt}; Q4_K's and Q5_K's
         * super-blocks hold d, dmin and the packed scales alike) as copy super-block {@code d}: its nibbles in
         * {@link #PAIR_VALUE}'s order (read where {@link #NIBBLE_BYTE} and {@link #NIBBLE_SHIFT} say) and its
         * {@link #META} bytes; {@code in} and {@code outBytes} are {@link #QS} bytes of scratch.
         */
        static void copyNibblesAndMeta(MemorySegment src, long b, int nibblesAt, MemorySegment qs, MemorySegment meta, long d,
                                       byte[] in, byte[] outBytes) {
            long mt = d * META;
            MemorySegment.copy(src, BYTE, b + nibblesAt, in, 0, QS);
            for (int p = 0; p < QS; p++) {
                int lo = 2 * p, hi = lo + 1; // (a nibble's byte shifted: the sign bits shifted in are masked off)
                outBytes[p] = (byte) (in[NIBBLE_BYTE[lo]] >> NIBBLE_SHIFT[lo] & 0x0F | (in[NIBBLE_BYTE[hi]] >> NIBBLE_SHIFT[hi] & 0x0F) << 4);
            }
            MemorySegment.copy(outBytes, 0, qs, BYTE, d * QS, QS);
            meta.set(Matrix.SHORT, mt, src.get(Matrix.SHORT, b)); // d and dmin: the file's halves
            meta.set(Matrix.SHORT, mt + 2, src.get(Matrix.SHORT, b + 2));
            for (int j = 0; j < 8; j++) {
                byte sc = (byte) Matrix.Q4_K.scale(src, b + 4, j);
                meta.set(BYTE, mt + 4 + j, (byte) Matrix.Q4_K.min(src, b + 4, j));
                meta.set(BYTE, mt + 12 + j, sc);
                if (LANES == 16) {
                    meta.set(BYTE, mt + 20 + j, sc);
                }
            }
        }
    }

    /**
     * A Q5_K matrix in the engine's layout: {@link Q4K}'s nibbles and meta (the same order and bytes: a Q5_K
     * super-block is a Q4_K one with a fifth bit per value), and the fifth bits in a part of their own, {@code qh}
     * (rows × nb × 32 bytes), in the order the kernel reads them: for the c-th read of {@link #LANES} ints of
     * nibbles, {@link #LANES} bytes (byte i for int lane i), bit j + 4h of which is the fifth bit of the value in half
     * h of lane i of the read's nibble vector j ({@link #PAIR_VALUE}: vector 4c + j). 180 bytes per super-block at
     * 256 bits (188 at 512) against the file's 176: see {@link #q5_K(float[], Activations, Q5K, int, int)}.
     */
    record Q5K(Matrix.Q5_K source, MemorySegment qs, MemorySegment qh, MemorySegment meta) implements MatrixForm {
        static final int QS = Q4K.QS, QH = 32, META = Q4K.META;

        Q5K {
            checkCopy("Q5_K", superBlocks(source), qs, QS, meta, META);
            if (qh.byteSize() != superBlocks(source) * QH) {
                throw new IllegalArgumentException("packed Q5_K of " + superBlocks(source) + " super-blocks: qh " + qh.byteSize() + " bytes");
            }
        }

        /** Bytes of the copy (the file's matrix: {@link #byteSize}). */
        long copyBytes() {
            return qs.byteSize() + qh.byteSize() + meta.byteSize();
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), unmapped when the form is no longer reachable. */
        static Q5K of(Matrix.Q5_K m) {
            long blocks = superBlocks(m);
            return of(m, allocate(blocks * QS), allocate(blocks * QH), allocate(blocks * META), null);
        }

        /** As {@link Q4K#of(Matrix.Q4_K, java.lang.foreign.SegmentAllocator, Parallel)}. */
        static Q5K of(Matrix.Q5_K m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
            long blocks = superBlocks(m);
            return of(m, memory.allocate(blocks * QS, 64), memory.allocate(blocks * QH, 64), memory.allocate(blocks * META, 64), parallel);
        }

        /** Bytes {@link #of(Matrix.Q5_K, java.lang.foreign.SegmentAllocator, Parallel)} takes from its allocator, alignment included. */
        static long allocationBytes(Matrix.Q5_K m) {
            return superBlocks(m) * (QS + QH + META) + 3 * 64;
        }

        private static Q5K of(Matrix.Q5_K m, MemorySegment qs, MemorySegment qh, MemorySegment meta, Parallel parallel) {
            copyRows(m.rows(), m.cols() / Matrix.Q5_K.BLOCK, parallel, (from, to) -> copy(m, qs, qh, meta, from, to));
            return new Q5K(m, qs, qh, meta);
        }

        /** Super-blocks [from, to) of {@code m} into the copy: nibbles and meta as Q4_K's, the fifth bits where {@link #FIFTH_TO} says. */
        private static void copy(Matrix.Q5_K m, MemorySegment qs, MemorySegment qh, MemorySegment meta, long from, long to) {
            MemorySegment src = m.data();
            byte[] in = new byte[QS], outBytes = new byte[QS], fileBits = new byte[QH], bits = new byte[QH];
            for (long i = from; i < to; i++) {
                long b = i * Matrix.Q5_K.BLOCK_BYTES, d = copyIndex(m, i);
                Q4K.copyNibblesAndMeta(src, b, Matrix.Q5_K.QS, qs, meta, d, in, outBytes);
                MemorySegment.copy(src, BYTE, b + Matrix.Q5_K.QH, fileBits, 0, QH);
                java.util.Arrays.fill(bits, (byte) 0);
                for (int t = 0; t < 256; t++) { // value v of sub-block v / 32 takes bit v / 32 of the file's qh[v % 32]
                    int v = PAIR_VALUE[t];
                    bits[FIFTH_TO[t] >>> 3] |= (byte) ((fileBits[v % 32] >>> (v / 32) & 1) << (FIFTH_TO[t] & 7));
                }
                MemorySegment.copy(bits, 0, qh, BYTE, d * QH, QH);
            }
        }
    }

    /** A Q6_K matrix in the engine's layout (see {@link #q6_K(float[], Activations, Q6K, int, int)}). */
    record Q6K(Matrix.Q6_K source, MemorySegment qs, MemorySegment meta) implements MatrixForm {
        /**
         * Bytes per super-block of the values (the 256 six-bit values in three ints per lane and group:
         * {@link #Q6_PAIR_VALUE}) and of the rest: f16 d (the file's bits), int8 sc[16], and at 4 lanes 4 zero bytes (the
         * last group's 8-byte read stays in the super-block). 210 bytes in all at 8 and 16 lanes, the file's size.
         */
        static final int QS = 192, META = LANES == 4 ? 22 : 18;

        Q6K {
            checkCopy("Q6_K", superBlocks(source), qs, QS, meta, META);
        }

        /** Bytes of the copy (the file's matrix: {@link #byteSize}). */
        long copyBytes() {
            return qs.byteSize() + meta.byteSize();
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), unmapped when the form is no longer reachable. */
        static Q6K of(Matrix.Q6_K m) {
            return of(m, null, null);
        }

        /** As {@link Q4K#of(Matrix.Q4_K, java.lang.foreign.SegmentAllocator, Parallel)}. */
        static Q6K of(Matrix.Q6_K m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
            return twoParts(m, QS, META, memory, parallel, (qs, meta, from, to) -> copy(m, qs, meta, from, to), (qs, meta) -> new Q6K(m, qs, meta));
        }

        /** Bytes {@link #of(Matrix.Q6_K, java.lang.foreign.SegmentAllocator, Parallel)} takes from its allocator, alignment included. */
        static long allocationBytes(Matrix.Q6_K m) {
            return superBlocks(m) * (QS + META) + 2 * 64;
        }

        /** Super-blocks [from, to) of {@code m} into the copy (each value's six bits where {@link #Q6_WORD} says). */
        private static void copy(Matrix.Q6_K m, MemorySegment qs, MemorySegment meta, long from, long to) {
            MemorySegment src = m.data();
            byte[] in = new byte[Matrix.Q6_K.BLOCK_BYTES];
            int[] words = new int[QS / Integer.BYTES];
            for (long i = from; i < to; i++) {
                long b = i * Matrix.Q6_K.BLOCK_BYTES, d = copyIndex(m, i), mt = d * META;
                MemorySegment.copy(src, BYTE, b, in, 0, in.length);
                java.util.Arrays.fill(words, 0);
                for (int t = 0; t < 256; t++) { // (the tables: where each value's bits lie in the file and in the copy, at class init)
                    int lo = Q6_LOW_FROM[t], hi = Q6_HIGH_FROM[t];
                    int q = ((in[lo >>> 3] & 0xFF) >>> (lo & 7) & 0x0F) | ((in[hi >>> 3] & 0xFF) >>> (hi & 7) & 3) << 4;
                    int w = Q6_WORD[t];
                    if (w >= 0) { // all six bits in one place
                        words[w] |= q << Q6_SHIFT[t];
                    } else { // the low four bits in one word, the high two in the lane's third
                        words[~w] |= (q & 0x0F) << Q6_SHIFT[t];
                        words[Q6_HIGH_WORD[t]] |= (q >>> 4) << Q6_HIGH_SHIFT[t];
                    }
                }
                MemorySegment.copy(words, 0, qs, INT, d * QS, words.length);
                meta.set(Matrix.SHORT, mt, src.get(Matrix.SHORT, b + 208)); // d: the file's half
                MemorySegment.copy(in, 192, meta, BYTE, mt + 2, 16);
            }
        }

    }

    /**
     * A Q2_K matrix in the engine's layout (see {@link #q2_K(float[], Activations, Q2K, int, int)}): the 2-bit values
     * in {@link #Q6_PAIR_VALUE}'s order (Q6_K's copy's: lane i of group g holds sub-block g · LANES + i), one read of
     * {@link #LANES} ints per group, value pair k of a lane's half at bits 2k and 2k + 1 of it ({@link #Q2_WORD}); and
     * the meta: f16 d, f16 dmin (the file's bits), the file's 16 bytes of scale | min &lt;&lt; 4 (sub-block order), and
     * at 4 lanes 4 zero bytes (the last group's 8-byte read stays in the super-block). 84 bytes per super-block, the
     * file's size, at 8 and 16 lanes; 88 at 4.
     */
    record Q2K(Matrix.Q2_K source, MemorySegment qs, MemorySegment meta) implements MatrixForm {
        static final int QS = 64, META = LANES == 4 ? 24 : 20;

        Q2K {
            checkCopy("Q2_K", superBlocks(source), qs, QS, meta, META);
        }

        /** Bytes of the copy (the file's matrix: {@link #byteSize}). */
        long copyBytes() {
            return qs.byteSize() + meta.byteSize();
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), unmapped when the form is no longer reachable. */
        static Q2K of(Matrix.Q2_K m) {
            return of(m, null, null);
        }

        /** As {@link Q4K#of(Matrix.Q4_K, java.lang.foreign.SegmentAllocator, Parallel)}. */
        static Q2K of(Matrix.Q2_K m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
            return twoParts(m, QS, META, memory, parallel, (qs, meta, from, to) -> copy(m, qs, meta, from, to), (qs, meta) -> new Q2K(m, qs, meta));
        }

        /** Bytes {@link #of(Matrix.Q2_K, java.lang.foreign.SegmentAllocator, Parallel)} takes from its allocator, alignment included. */
        static long allocationBytes(Matrix.Q2_K m) {
            return superBlocks(m) * (QS + META) + 2 * 64;
        }

        /** Super-blocks [from, to) of {@code m} into the copy (each value's two bits where {@link #Q2_WORD} says). */
        private static void copy(Matrix.Q2_K m, MemorySegment qs, MemorySegment meta, long from, long to) {
            MemorySegment src = m.data();
            byte[] in = new byte[Matrix.Q2_K.BLOCK_BYTES];
            int[] words = new int[QS / Integer.BYTES];
            for (long i = from; i < to; i++) {
                long b = i * Matrix.Q2_K.BLOCK_BYTES, d = copyIndex(m, i), mt = d * META;
                MemorySegment.copy(src, BYTE, b, in, 0, in.length);
                java.util.Arrays.fill(words, 0);
                for (int t = 0; t < 256; t++) {
                    int v = Q6_PAIR_VALUE[t], h = v / 128, l = v % 32, shift = 2 * (v % 128 / 32); // (Matrix.Q2_K#value)
                    words[Q2_WORD[t]] |= ((in[Matrix.Q2_K.QS + 32 * h + l] & 0xFF) >>> shift & 3) << Q2_SHIFT[t];
                }
                MemorySegment.copy(words, 0, qs, INT, d * QS, words.length);
                meta.set(Matrix.SHORT, mt, src.get(Matrix.SHORT, b + Matrix.Q2_K.D)); // d and dmin: the file's halves
                meta.set(Matrix.SHORT, mt + 2, src.get(Matrix.SHORT, b + Matrix.Q2_K.DMIN));
                MemorySegment.copy(in, Matrix.Q2_K.SCALES, meta, BYTE, mt + 4, 16);
            }
        }
    }

    /**
     * A Q3_K matrix in the engine's layout (see {@link #q3_K(float[], Activations, Q3K, int, int)}), at 4 and 8 lanes
     * ({@link #Q3K_COPY}): the values as {@code q + 4} (0..7) in {@link #Q6_PAIR_VALUE}'s order (Q6_K's copy's: lane i of
     * group g holds sub-block g · LANES + i), each pair of groups in three reads A, B, C of {@link #LANES} ints
     * ({@link #Q3_WORD}), and Q6_K's copy's meta: f16 d (the file's bits), int8 sc[16] (the signed scales, sc - 32),
     * at 4 lanes 4 zero bytes. 114 bytes per super-block at 8 lanes (118 at 4) against the file's 110.
     */
    record Q3K(Matrix.Q3_K source, MemorySegment qs, MemorySegment meta) implements MatrixForm {
        static final int QS = 96, META = Q6K.META;

        Q3K {
            if (!Q3K_COPY) {
                throw new IllegalStateException("no Q3_K copy at " + LANES + " int lanes");
            }
            checkCopy("Q3_K", superBlocks(source), qs, QS, meta, META);
        }

        /** Bytes of the copy (the file's matrix: {@link #byteSize}). */
        long copyBytes() {
            return qs.byteSize() + meta.byteSize();
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), unmapped when the form is no longer reachable. */
        static Q3K of(Matrix.Q3_K m) {
            return of(m, null, null);
        }

        /** As {@link Q4K#of(Matrix.Q4_K, java.lang.foreign.SegmentAllocator, Parallel)}. */
        static Q3K of(Matrix.Q3_K m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
            return twoParts(m, QS, META, memory, parallel, (qs, meta, from, to) -> copy(m, qs, meta, from, to), (qs, meta) -> new Q3K(m, qs, meta));
        }

        /** Bytes {@link #of(Matrix.Q3_K, java.lang.foreign.SegmentAllocator, Parallel)} takes from its allocator, alignment included. */
        static long allocationBytes(Matrix.Q3_K m) {
            return superBlocks(m) * (QS + META) + 2 * 64;
        }

        /** Super-blocks [from, to) of {@code m} into the copy (each value's three bits where {@link #Q3_WORD} says). */
        private static void copy(Matrix.Q3_K m, MemorySegment qs, MemorySegment meta, long from, long to) {
            MemorySegment src = m.data();
            byte[] in = new byte[Matrix.Q3_K.BLOCK_BYTES];
            int[] words = new int[QS / Integer.BYTES];
            for (long i = from; i < to; i++) {
                long b = i * Matrix.Q3_K.BLOCK_BYTES, d = copyIndex(m, i), mt = d * META;
                MemorySegment.copy(src, BYTE, b, in, 0, in.length);
                java.util.Arrays.fill(words, 0);
                for (int t = 0; t < 256; t++) {
                    int v = Q6_PAIR_VALUE[t], h = v / 128, l = v % 32, part = v % 128 / 32; // (Matrix.Q3_K#value)
                    int low = (in[Matrix.Q3_K.QS + 32 * h + l] & 0xFF) >>> (2 * part) & 3;
                    int high = (in[Matrix.Q3_K.HMASK + l] & 0xFF) >>> (4 * h + part) & 1;
                    int u = low | high << 2; // q + 4
                    if (Q3_WORD[t] >= 0) {
                        words[Q3_WORD[t]] |= u << Q3_SHIFT[t];
                    } else { // a vector 7 of a pair's second group: its three bits at bit 15 of its half in A, B and C
                        int a = ~Q3_WORD[t];
                        for (int bit = 0; bit < 3; bit++) {
                            words[a + bit * LANES] |= (u >>> bit & 1) << Q3_SHIFT[t];
                        }
                    }
                }
                MemorySegment.copy(words, 0, qs, INT, d * QS, words.length);
                meta.set(Matrix.SHORT, mt, src.get(Matrix.SHORT, b + Matrix.Q3_K.D)); // d: the file's half
                long lo = src.get(LONG, b + Matrix.Q3_K.SCALES);
                int hi = src.get(INT, b + Matrix.Q3_K.SCALES + 8);
                long sl = Matrix.Q3_K.scalesLow(lo, hi), sh = Matrix.Q3_K.scalesHigh(lo, hi);
                for (int j = 0; j < 16; j++) {
                    meta.set(BYTE, mt + 2 + j, (byte) (((j < 8 ? sl : sh) >>> (8 * (j & 7)) & 0x3F) - 32));
                }
            }
        }
    }

    // ------------------------------------------------------------------ the copy's order of nibbles

    /**
     * Int lanes of the Q4_K copy's kernel (4, 8 or 16: this JVM's preferred width, clamped to 128..512 bits); the
     * copy's order of nibbles and the activations' pairs are made for it.
     */
    static final int LANES;
    /**
     * {@code PAIR_VALUE[2 * (k * LANES + i) + h]}: which of a super-block's 256 values lies in half h (0: bits 0-15,
     * 1: bits 16-31) of int lane i of the kernel's k-th nibble vector (k &lt; 128 / LANES). The kernel reads
     * {@link #LANES} ints (4 · LANES bytes) at a time and takes four nibble vectors out of them, by shifts of 0, 4, 8
     * and 12 and the mask {@code 0x000F000F}: vector k = 4c + j comes from byte 4i + 2h + j / 2 of the c-th read, its
     * low nibble for even j and its high nibble for odd j. Lane i holds values of sub-block i mod 8 (from 8 lanes up);
     * with 4 lanes the first half of the vectors holds sub-blocks 0-3, the second half 4-7.
     */
    static final int[] PAIR_VALUE;
    /**
     * Where the copy's nibbles come from: the low (n = 0) or high (n = 1) half of copy byte p is the nibble of file byte
     * {@code NIBBLE_BYTE[2 * p + n]} (of a super-block's 128 nibble bytes, where sub-blocks 2g and 2g + 1 share 32 bytes)
     * shifted right by {@code NIBBLE_SHIFT[2 * p + n]} (0 or 4). Tables, so that the copy is two lookups per nibble: with
     * the value's sub-block and place worked out for every nibble, the Q4_K copies of a Llama-3.2-1B Q4_K_M file took
     * 2.7-4.1 s of one thread the first time (the JIT compiling), 1.7-2.3 s after, and now take 1.7-1.9 s and 0.6-1.4 s;
     * all its copies (Q6_K's too) on the engine's two threads 1.95-2.58 s before, 1.51-1.85 s now
     * (docs/measurements/2026-12-05-q4-k-one-loop.md).
     */
    private static final int[] NIBBLE_BYTE, NIBBLE_SHIFT;
    /**
     * Where the Q5_K copy keeps the fifth bit of the value in slot t ({@code PAIR_VALUE[t]}, t = 2 (k LANES + i) + h):
     * 8 · byte + bit within a super-block's 32 bytes of {@link Q5K#qh}: byte {@code (k / 4) LANES + i}, bit
     * {@code k % 4 + 4 h}.
     */
    private static final int[] FIFTH_TO = new int[256];

    static {
        int bits = Math.max(128, Math.min(512, FloatVector.SPECIES_PREFERRED.vectorBitSize()));
        LANES = bits / 32;
        int vectors = 128 / LANES, groups = Math.max(1, 8 / LANES);
        PAIR_VALUE = new int[256];
        NIBBLE_BYTE = new int[256];
        NIBBLE_SHIFT = new int[256];
        int[] next = new int[8];
        for (int k = 0; k < vectors; k++) {
            for (int i = 0; i < LANES; i++) {
                int sub = LANES >= 8 ? i % 8 : k / (vectors / groups) * LANES + i;
                for (int h = 0; h < 2; h++) {
                    int v = 32 * sub + next[sub]++;
                    PAIR_VALUE[2 * (k * LANES + i) + h] = v;
                    int c = k / 4, j = k % 4, p = 4 * LANES * c + 4 * i + 2 * h + j / 2;
                    NIBBLE_BYTE[2 * p + j % 2] = 32 * (sub / 2) + v % 32; // value v of sub-block sub in the file's order
                    NIBBLE_SHIFT[2 * p + j % 2] = 4 * (sub % 2);
                    FIFTH_TO[2 * (k * LANES + i) + h] = 8 * (c * LANES + i) + j + 4 * h;
                }
            }
        }
    }


    /**
     * The Q6_K copy's order, for {@link #LANES} int lanes in 16 / LANES groups of 8 vectors: lane i of group g holds
     * values of sub-block g · LANES + i (16 values: 8 vectors, two halves), value {@code 16 (g LANES + i) + 2 k + h}
     * in half h of vector k. {@code Q6_PAIR_VALUE[2 * ((g * 8 + k) * LANES + i) + h]}: that value (the activations'
     * pairs follow it: {@link #pairs6}).
     *
     * <p>A group is three reads of LANES ints (A, B, C; 12 · LANES bytes), and half h of lane i of each holds, from bit
     * 16h up: A the six bits of vectors 0 and 1 (at 0 and 6) and the low four of vector 6 (at 12); B those of vectors 2, 3
     * and the low four of 7; C the six bits of vectors 4 and 5 and the high two of vectors 6 and 7 (at 12 and 14). So
     * vectors 0-5 are one shift and one mask each ({@code 0x003F003F}), 6 and 7 two shifts, two masks and an or: 19
     * operations for the group's eight vectors, where a nibble and a 2-bit part for every vector took 37 (the layout
     * before, the same 192 bytes per super-block; docs/measurements/2026-12-05-q6-k-three-words.md).
     * {@link #Q6_WORD}: where each value's bits go.
     */
    static final int[] Q6_PAIR_VALUE = new int[256];
    /** Bit positions (8 · byte + shift) in the file's super-block of the low 4 and high 2 bits of the value in slot t. */
    private static final int[] Q6_LOW_FROM = new int[256], Q6_HIGH_FROM = new int[256];
    /**
     * Slot t's place in the copy's 48 ints per super-block: its six bits at word {@code Q6_WORD[t]}, bit
     * {@code Q6_SHIFT[t]}; or, where {@code Q6_WORD[t]} is negative (vectors 6 and 7), its low four bits at word
     * {@code ~Q6_WORD[t]}, bit {@code Q6_SHIFT[t]}, and its high two at word {@code Q6_HIGH_WORD[t]}, bit
     * {@code Q6_HIGH_SHIFT[t]}.
     */
    private static final int[] Q6_WORD = new int[256], Q6_SHIFT = new int[256], Q6_HIGH_WORD = new int[256], Q6_HIGH_SHIFT = new int[256];

    static {
        for (int g = 0; g < 16 / LANES; g++) {
            for (int k = 0; k < 8; k++) {
                for (int i = 0; i < LANES; i++) {
                    for (int h = 0; h < 2; h++) {
                        int t = 2 * ((g * 8 + k) * LANES + i) + h, v = 16 * (g * LANES + i) + 2 * k + h;
                        Q6_PAIR_VALUE[t] = v;
                        Q6_LOW_FROM[t] = lowBitsOf6(v);
                        Q6_HIGH_FROM[t] = highBitsOf6(v);
                        int a = g * 3 * LANES + i, b = a + LANES, c = b + LANES; // lane i's words A, B, C
                        if (k < 6) {
                            Q6_WORD[t] = k < 2 ? a : k < 4 ? b : c;
                            Q6_SHIFT[t] = 6 * (k % 2) + 16 * h;
                        } else {
                            Q6_WORD[t] = ~(k == 6 ? a : b);
                            Q6_SHIFT[t] = 12 + 16 * h;
                            Q6_HIGH_WORD[t] = c;
                            Q6_HIGH_SHIFT[t] = 12 + 2 * (k - 6) + 16 * h;
                        }
                    }
                }
            }
        }
    }

    /**
     * Whether Q3_K matrices have a load-time copy ({@link Q3K}) at this vector width: at 4 and 8 lanes (128 and 256
     * bits). The copy packs the 3-bit values of two groups of lanes into three reads, and at 16 lanes a super-block
     * is one group; there the file-layout kernel, copied as it is ({@link PreparedWeights}), stays.
     */
    static final boolean Q3K_COPY = LANES < 16;

    /**
     * The Q2_K copy's places ({@link Q2K}): the value in slot t of {@link #Q6_PAIR_VALUE} (t = 2 ((g 8 + k) LANES + i) + h)
     * at bit {@code Q2_SHIFT[t]} = 16 h + 2 k of int {@code Q2_WORD[t]} = g LANES + i of its super-block's 16.
     */
    private static final int[] Q2_WORD = new int[256], Q2_SHIFT = new int[256];
    /**
     * The Q3_K copy's places ({@link Q3K}): groups 2p and 2p + 1 in reads A, B, C (ints 3p LANES + {0, LANES, 2 LANES}
     * + i for lane i); in half h of a lane (16 h up), the first group's vectors 0-4 at bits 3k of A and 5-7 at bits
     * 0, 3, 6 of C, the second group's vectors 0-4 at bits 3k of B and 5-6 at bits 9, 12 of C, and its vector 7's
     * three bits at bit 15 of A, B and C (bits 0, 1, 2 of the value). {@code Q3_WORD[t]}: the int of slot t's three
     * bits, or for the split vector ~(its int in A); {@code Q3_SHIFT[t]}: the bit.
     */
    private static final int[] Q3_WORD = new int[256], Q3_SHIFT = new int[256];

    static {
        for (int g = 0; g < 16 / LANES; g++) {
            for (int k = 0; k < 8; k++) {
                for (int i = 0; i < LANES; i++) {
                    for (int h = 0; h < 2; h++) {
                        int t = 2 * ((g * 8 + k) * LANES + i) + h;
                        Q2_WORD[t] = g * LANES + i;
                        Q2_SHIFT[t] = 16 * h + 2 * k;
                        int a = g / 2 * 3 * LANES + i, b = a + LANES, c = b + LANES;
                        if (g % 2 == 0) {
                            Q3_WORD[t] = k < 5 ? a : c;
                            Q3_SHIFT[t] = 16 * h + 3 * (k < 5 ? k : k - 5);
                        } else if (k < 7) {
                            Q3_WORD[t] = k < 5 ? b : c;
                            Q3_SHIFT[t] = 16 * h + (k < 5 ? 3 * k : 9 + 3 * (k - 5));
                        } else {
                            Q3_WORD[t] = ~a;
                            Q3_SHIFT[t] = 16 * h + 15;
                        }
                    }
                }
            }
        }
    }

    /** Where value v's low 4 bits lie in the file's Q6_K super-block: 8 · byte + shift (ql, as {@link Matrix.Q6_K#dequantizeRow} reads it). */
    private static int lowBitsOf6(int v) {
        int half = v / 128, l = v % 32, part = v % 128 / 32;
        return 8 * (64 * half + l + (part % 2 == 1 ? 32 : 0)) + (part < 2 ? 0 : 4);
    }

    /** Where value v's high 2 bits lie in the file's Q6_K super-block: 8 · byte + shift (qh). */
    private static int highBitsOf6(int v) {
        int half = v / 128, l = v % 32, part = v % 128 / 32;
        return 8 * (128 + 32 * half + l) + 2 * part;
    }

    /** A super-block's Q8_K activations as the Q6_K copy's kernel multiplies them ({@link #Q6_PAIR_VALUE}; see {@link #pairs}). */
    static void pairs6(short[] q, int base, int[] out, int at) {
        pairs(q, base, out, at, Q6_PAIR_VALUE);
    }

    /** Ints per super-block of {@link #q6Starts}: two chains per group of lanes, 16 lanes in all. */
    static final int Q6_STARTS = 32;

    /**
     * Where the Q6_K copy's kernel starts each int chain of a super-block whose pairs ({@link #pairs6}) are
     * {@code pairs[at .. at + 128)}: 2^15 (the bias that keeps the lower halves from borrowing from the upper) less
     * {@code 0x00200020} times each of the chain's four activation pairs. That is the signed {@code q6 - 32} of every
     * product taken out of the loop: {@code sum (q - 32) p = sum q p - 32 sum p} (both halves of each lane, modulo
     * 2^32), so the chain ends on the same bits as when every value was offset. {@code out[outAt + (2 g + c) LANES + i]}:
     * lane i's start of chain c (vectors 4c .. 4c + 3) of group g.
     */
    static void q6Starts(int[] pairs, int at, int[] out, int outAt) {
        for (int g = 0; g < 16 / LANES; g++) {
            for (int c = 0; c < 2; c++) {
                for (int i = 0; i < LANES; i++) {
                    int start = 1 << 15;
                    for (int k = 4 * c; k < 4 * c + 4; k++) {
                        start -= 0x00200020 * pairs[at + (g * 8 + k) * LANES + i];
                    }
                    out[outAt + (2 * g + c) * LANES + i] = start;
                }
            }
        }
    }

    /**
     * A super-block's Q8_K activations {@code q[base .. base + 256)} as the copy's kernel multiplies them: for each
     * lane of each nibble vector ({@link #PAIR_VALUE}), {@code a_y + 2^16 a_x}, x the value in the lane's low half.
     */
    static void pairs(short[] q, int base, int[] out, int at) {
        pairs(q, base, out, at, PAIR_VALUE);
    }

    private static void pairs(short[] q, int base, int[] out, int at, int[] order) {
        for (int t = 0; t < 128; t++) {
            out[at + t] = (q[base + order[2 * t]] << 16) + q[base + order[2 * t + 1]];
        }
    }

    /**
     * {@code size} zero bytes of private memory, released when no longer reachable: {@link PageMemory}'s anonymous
     * mapping in huge pages where it maps (Linux), else a private (copy-on-write) map of a sparse temporary file,
     * deleted at once, so the pages written are anonymous memory and the file never holds data.
     *
     * <p>Why not {@code Arena.allocate}: it zeroes the block on one thread first (PageMemory's comment). The
     * fallback is a file mapping because the kernels' loads are JDK code shared by every caller, and C2 specializes
     * it for the segment classes it has seen: with the file's mapped segments and native ones both reaching the
     * file-layout Q4_K kernel, it ran at 0.81x in cache (loaded machine, docs/measurements/2026-12-03-k-quants.md).
     * The Q4_K kernel reads either the copies (native segments from PageMemory) or, with no copies, the file, not
     * both; a Llama-3.2-1B Q4_K_M file's 470 MB of copies now cost 1.2 s less to make
     * (docs/measurements/2026-12-03-start-up-copies.md).
     */
    static MemorySegment allocate(long size) {
        if (PageMemory.maps()) { // anonymous memory in huge pages: see PageMemory (the kernels still see one class of segment)
            return PageMemory.allocate(Arena.ofAuto(), size);
        }
        try {
            Path f = Files.createTempFile("llama2j-prepared", ".bin");
            try (RandomAccessFile file = new RandomAccessFile(f.toFile(), "rw")) {
                file.setLength(size);
                return file.getChannel().map(FileChannel.MapMode.PRIVATE, 0, size, Arena.ofAuto());
            } finally {
                Files.deleteIfExists(f);
            }
        } catch (IOException | UnsupportedOperationException e) {
            // no writable temporary directory (or no private maps): correct, but slower (see above)
            return Arena.ofAuto().allocate(size, 64);
        }
    }

    // ------------------------------------------------------------------ species

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Byte> BS = species(ByteVector.SPECIES_PREFERRED, F.vectorBitSize() / 2);
    private static final int CH = S.length();
    /** The 8 mins of a super-block: 8 bytes widened to int lanes, 8 (256 bits or more) or 4 (128 bits) at a time. */
    private static final VectorSpecies<Byte> B8 = ByteVector.SPECIES_64;
    private static final VectorSpecies<Integer> MI = species(IntVector.SPECIES_PREFERRED, Math.min(256, F.vectorBitSize()));
    private static final VectorSpecies<Float> MF = species(FloatVector.SPECIES_PREFERRED, Math.min(256, F.vectorBitSize()));
    private static final int ML = MI.length();
    /**
     * The nibble bytes: zero-extended at 512 bits (the high nibble is then one shift), sign-extended below (the
     * high nibble shifted and masked); a constant, so C2 keeps one branch. Measured in cache on the file-layout
     * kernel, per-round ratios against the kernel before the fold: at 512 bits zero-extension 1.22×,
     * sign-extension 1.06×; at 256 bits zero-extension 0.84×, sign-extension 1.04×
     * (docs/measurements/2026-12-02-gguf-kernels.md).
     */
    private static final boolean NIBBLES_ZX = CH == 32;
    private static final VectorOperators.Conversion<Byte, Short> NIBBLES_B2S = NIBBLES_ZX ? VectorOperators.ZERO_EXTEND_B2S : VectorOperators.B2S;

    @SuppressWarnings("unchecked")
    private static <E> VectorSpecies<E> species(VectorSpecies<E> like, int bits) {
        return (VectorSpecies<E>) like.withShape(VectorShape.forBitSize(bits));
    }

    // ------------------------------------------------------------------ Q4_K × Q8_K

    /** The copies' kernels: int and float lanes as the copies were made for ({@link #LANES}). */
    private static final VectorSpecies<Integer> KI = species(IntVector.SPECIES_PREFERRED, LANES * 32);
    private static final VectorSpecies<Float> KF = species(FloatVector.SPECIES_PREFERRED, LANES * 32);
    /** Scale bytes of a group of lanes: 16 at 16 lanes, else 8 (the first 4 or 8 used). */
    private static final VectorSpecies<Byte> KSC = LANES == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;

    /**
     * Q4_K × Q8_K on the copy. Per read of {@link #LANES} ints, four nibble vectors (shifts and a mask), each
     * multiplied by its lanes of activation pairs ({@link #pairs}), the upper halves carrying the pairs' sums (the
     * class comment). Eight such products (two reads: {@link #eightProducts}) are added in an int lane started at 2^15
     * before the shift takes the upper half out: the lower halves' products {@code x a_y} total at most
     * 8 · 15 · 128 = 15360 in magnitude, so the bias keeps the lower half in [0, 2^16) and nothing carries, and the
     * upper halves total at most 8 · 2 · 15 · 128 = 30720 &lt; 2^15, so the lane never overflows. A lane holds one
     * sub-block, so its sums (at most two shifts' worth: 61440) are multiplied by that sub-block's scale: per lane the
     * exact int {@code sc_j} times a part of {@code dot_j}, converted and multiply-added with {@code d * d_x} into a
     * float accumulator, lane by lane. The mins' part as llama.cpp's AVX2 kernel forms it, lane by lane:
     * {@code m_j * (q-sum of sub-block j)} exact in int lanes (one lane per sub-block), converted and multiply-added
     * with {@code dmin * d_x} into a second accumulator, subtracted at the end of the row (in cache, 1.14× the same
     * kernel with the mins' eight products in scalar).
     *
     * <p>Written so that C2 compiles a super-block as straight code: its offsets computed from the super-block's index
     * (not carried from one to the next), the reads of a group in {@link #eightProducts} (no loop of two or four
     * trips, which C2 split into pre-, main- and post-loops with their range checks between the reads), and the
     * mins' part written out here (as a method of its own it was not inlined, NodeCountInliningCutoff, and its
     * vectors were boxed: 0.03×). Against the loops before, in one JVM, one thread's CPU time (quiet machine,
     * docs/measurements/2026-12-04-k-quant-straight-code.md): 1.07–1.09× at 256 bits and 1.03–1.04× at 512, in
     * cache and from DRAM; 0.93–0.96× at 128 bits (the forced width on x86).
     *
     * <p>One loop over all the super-blocks of rows [r0, r1), the row and the super-block within it carried along (a
     * row's sums taken after its last super-block), not a loop per row: each entry to a row's loop paid C2's set-up
     * again (its range checks recomputed, the first super-blocks in peeled copies of the body). The arithmetic of each
     * row is unchanged. Against the loop per row, Llama-3.2-1B Q4_K_M, every product of a token in one JVM, rounds
     * alternated, 2 threads: 0.91–0.94 of the time per token at 256 bits, 0.96–1.07 at 512 and 0.91–1.02 at 128; one
     * thread from DRAM, 2048 × 8192: 1.5× at 512 bits, 1.3× at 256. Llama-3.1-8B Q4_K_M (rows of 16 and 56
     * super-blocks), {@code bench} tg8 on 2 threads: 1.21–1.36× at 512 bits, 1.23–1.53× at 256
     * (docs/measurements/2026-12-05-q4-k-one-loop.md). Rows held in column spans ({@link #copyIndex}) run that loop
     * once per span, the span's sum added to the row's.
     */
    static void q4_K(float[] out, Activations x, Q4K w, int r0, int r1) {
        int nb = w.source().cols() / 256;
        MemorySegment qs = w.qs(), meta = w.meta();
        int[] pairs = x.q8KPairs;
        int pairsAt = x.q8KPairsAt; // (where the pairs start: a cache line's start, Activations)
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        int groups = Math.max(1, 8 / LANES), reads = 32 / LANES / groups; // reads of LANES ints per group
        IntVector mask = IntVector.broadcast(KI, 0x000F000F), bias = IntVector.broadcast(KI, 1 << 15);
        FloatVector zero = FloatVector.zero(KF), mzero = FloatVector.zero(MF);
        int rows = w.source().rows(), span = spanBlocks(nb);
        Math.multiplyExact(rows, nb); // (every super-block index below fits an int)
        for (int k0 = 0; k0 < nb; k0 += span) { // each column span (copyIndex): its rows one after another
            int width = Math.min(span, nb - k0), first = rows * k0; // the span's first super-block in the copy
            FloatVector acc = zero, macc = mzero;
            int r = r0, blk = k0; // the row and the (matrix) super-block of copy super-block i
            for (int i = first + r0 * width, end = first + r1 * width; i < end; i++) {
                long q = (long) i * Q4K.QS, mt = (long) i * Q4K.META;
                int xo = pairsAt + blk * 128;
                FloatVector dx = FloatVector.broadcast(KF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt)) * xd[blk]);
                for (int g = 0; g < groups; g++) {
                    long qg = q + (long) g * reads * 4 * LANES;
                    int xg = xo + g * reads * 4 * LANES;
                    IntVector sums = eightProducts(qs, qg, pairs, xg, mask, bias);
                    if (reads == 4) { // (256 and 128 bits; a constant: C2 keeps one branch)
                        sums = sums.add(eightProducts(qs, qg + 8 * LANES, pairs, xg + 8 * LANES, mask, bias));
                    }
                    IntVector sc = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 12 + (long) g * LANES, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, KI, 0);
                    acc = ((FloatVector) sums.mul(sc).convert(VectorOperators.I2F, 0)).fma(dx, acc);
                }
                FloatVector dm = FloatVector.broadcast(MF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt + 2)) * xd[blk]);
                ByteVector minBytes = ByteVector.fromMemorySegment(B8, meta, mt + 4, LE);
                for (int p = 0; p < 8; p += ML) {
                    IntVector mv = (IntVector) minBytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML);
                    macc = ((FloatVector) mv.mul(IntVector.fromArray(MI, xs32, blk * 8 + p)).convert(VectorOperators.I2F, 0)).fma(dm, macc);
                }
                if (++blk == k0 + width) { // the row's last super-block of the span: its sums, and the next row starts
                    FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
                    if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
                    if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
                    float v = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
                    FloatVector maccSum = macc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
                    if (LaneSums.M_STEPS > 2) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.M1)); }
                    if (LaneSums.M_STEPS > 3) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.M2)); }
                    v -= (maccSum.lane(0) + maccSum.lane(2)) + (maccSum.lane(1) + maccSum.lane(3));
                    out[r] = k0 == 0 ? v : out[r] + v;
                    r++;
                    acc = zero;
                    macc = mzero;
                    blk = k0;
                }
            }
        }
    }

    /**
     * Eight nibble vectors of two reads of {@link #LANES} ints at {@code q} times their activation pairs at
     * {@code xo}, added in int lanes started at {@code bias} (2^15), the upper halves (the pairs' sums) shifted out.
     */
    private static IntVector eightProducts(MemorySegment qs, long q, int[] pairs, int xo, IntVector mask, IntVector bias) {
        IntVector v = IntVector.fromMemorySegment(KI, qs, q, LE);
        IntVector u = IntVector.fromMemorySegment(KI, qs, q + 4 * LANES, LE);
        return bias.add(v.and(mask).mul(IntVector.fromArray(KI, pairs, xo)))
                .add(v.lanewise(VectorOperators.LSHR, 4).and(mask).mul(IntVector.fromArray(KI, pairs, xo + LANES)))
                .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 2 * LANES)))
                .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 3 * LANES)))
                .add(u.and(mask).mul(IntVector.fromArray(KI, pairs, xo + 4 * LANES)))
                .add(u.lanewise(VectorOperators.LSHR, 4).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 5 * LANES)))
                .add(u.lanewise(VectorOperators.LSHR, 8).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 6 * LANES)))
                .add(u.lanewise(VectorOperators.LSHR, 12).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 7 * LANES)))
                .lanewise(VectorOperators.ASHR, 16);
    }

    // ------------------------------------------------------------------ Q5_K × Q8_K

    /**
     * The loads of the fifth bits: {@link #LANES} bytes (one per int lane) for a read of nibbles; at 4 lanes (there is
     * no 32-bit byte vector) 8 bytes for two reads, the first read's in part 0 of the widening, the second's in part 1.
     */
    private static final VectorSpecies<Byte> K5H = LANES == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;
    /** For read r (0-3) of a group: where its fifth bits' load starts, past the group's first ({@link #K5H}), and which part of it is read r's. */
    private static final int[] FIFTH_AT = LANES == 4 ? new int[] {0, 0, 8, 8} : new int[] {0, LANES, 2 * LANES, 3 * LANES};
    private static final int[] FIFTH_PART = LANES == 4 ? new int[] {0, 1, 0, 1} : new int[] {0, 0, 0, 0};

    /**
     * Q5_K × Q8_K on the copy ({@link Q5K}): {@link #q4_K(float[], Activations, Q4K, int, int)}'s loop, with each
     * nibble vector's fifth bits put in at bit 4 of its halves ({@link #fiveBitRead}) and the products added in
     * chains of four instead of eight: counted signed, a chain's lower halves total at most 4 · 31 · 128 = 15872 in
     * magnitude and its upper halves (the pairs' sums) at most 4 · 2 · 31 · 128 = 31744 &lt; 2^15, where eight 5-bit
     * products could reach 63488. The same integers per sub-block as the file-layout kernel ({@link GgmlMatmul#q5_K})
     * and the scalar reference, the float sums in this kernel's lanes; the mins' part as Q4_K's copy kernel forms it,
     * written out here as there (a method of its own was not inlined in Q4_K's kernel, and its vectors were boxed).
     * A loop of its own, not Q4_K's with a flag (not measured as one loop): a loop holding both types' inner parts
     * would carry Q4_K's two {@code eightProducts} and these reads, about the inlined size that passed C2's
     * NodeCountInliningCutoff at 256 bits (four reads written out, -XX:+PrintInlining), after which the vectors of the
     * calls left out are boxed (docs/measurements/2026-12-06-q5-k-copy.md).
     */
    static void q5_K(float[] out, Activations x, Q5K w, int r0, int r1) {
        int nb = w.source().cols() / 256;
        MemorySegment qs = w.qs(), qh = w.qh(), meta = w.meta();
        int[] pairs = x.q8KPairs;
        int pairsAt = x.q8KPairsAt;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        int groups = Math.max(1, 8 / LANES), reads = 32 / LANES / groups; // reads of LANES ints per group
        IntVector mask = IntVector.broadcast(KI, 0x000F000F), fifth = IntVector.broadcast(KI, 0x00100010), bias = IntVector.broadcast(KI, 1 << 15);
        FloatVector zero = FloatVector.zero(KF), mzero = FloatVector.zero(MF);
        int rows = w.source().rows(), span = spanBlocks(nb);
        Math.multiplyExact(rows, nb); // (every super-block index below fits an int)
        for (int k0 = 0; k0 < nb; k0 += span) { // each column span (copyIndex): its rows one after another
            int width = Math.min(span, nb - k0), first = rows * k0;
            FloatVector acc = zero, macc = mzero;
            int r = r0, blk = k0;
            for (int i = first + r0 * width, end = first + r1 * width; i < end; i++) {
                long q = (long) i * Q5K.QS, h = (long) i * Q5K.QH, mt = (long) i * Q5K.META;
                int xo = pairsAt + blk * 128;
                FloatVector dx = FloatVector.broadcast(KF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt)) * xd[blk]);
                // two reads of nibbles at a time (a pair: one at 512 bits, two at 256, four at 128), their sums times the
                // scales of their group: four reads written out were more than C2 inlines at 256 bits
                // (NodeCountInliningCutoff), and the vectors of the calls it did not inline were boxed (the 1B file's products
                // at the file layout's 6 GB/s of one thread's CPU time); a loop over the reads carried the sums through a
                // phi C2 did not scalar-replace (7.8 GB/s at 512 bits). Read r's fifth bits: FIFTH_AT, FIFTH_PART.
                for (int pr = 0; pr < 16 / LANES; pr++) {
                    long qp = q + pr * 8L * LANES;
                    int xp = xo + pr * 8 * LANES, rd = 2 * pr % reads;
                    long hp = h + (long) (2 * pr / reads) * reads * LANES;
                    IntVector sums = fiveBitRead(qs, qp, qh, hp + FIFTH_AT[rd], FIFTH_PART[rd], pairs, xp, mask, fifth, bias)
                            .add(fiveBitRead(qs, qp + 4 * LANES, qh, hp + FIFTH_AT[rd + 1], FIFTH_PART[rd + 1], pairs, xp + 4 * LANES, mask, fifth, bias));
                    IntVector sc = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 12 + (long) (2 * pr / reads) * LANES, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, KI, 0);
                    acc = ((FloatVector) sums.mul(sc).convert(VectorOperators.I2F, 0)).fma(dx, acc);
                }
                FloatVector dm = FloatVector.broadcast(MF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt + 2)) * xd[blk]);
                ByteVector minBytes = ByteVector.fromMemorySegment(B8, meta, mt + 4, LE);
                for (int p = 0; p < 8; p += ML) {
                    IntVector mv = (IntVector) minBytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML);
                    macc = ((FloatVector) mv.mul(IntVector.fromArray(MI, xs32, blk * 8 + p)).convert(VectorOperators.I2F, 0)).fma(dm, macc);
                }
                if (++blk == k0 + width) {
                    FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
                    if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
                    if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
                    float v = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
                    FloatVector maccSum = macc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
                    if (LaneSums.M_STEPS > 2) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.M1)); }
                    if (LaneSums.M_STEPS > 3) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.M2)); }
                    v -= (maccSum.lane(0) + maccSum.lane(2)) + (maccSum.lane(1) + maccSum.lane(3));
                    out[r] = k0 == 0 ? v : out[r] + v;
                    r++;
                    acc = zero;
                    macc = mzero;
                    blk = k0;
                }
            }
        }
    }

    /**
     * Four 5-bit vectors of a read of {@link #LANES} ints of nibbles at {@code q} and their fifth bits, part
     * {@code part} of the bytes loaded at {@code h} ({@link #K5H}; one byte per lane, bit j + 4 hf for the value in half
     * hf of nibble vector j: {@link Q5K}), times
     * their activation pairs at {@code xo}, added in an int lane started at {@code bias} (2^15), the upper halves (the
     * pairs' sums) shifted out. The bits, widened to int lanes, are or-ed with themselves shifted by 12 (bits 4 + j,
     * half 1's, to 16 + j), so that one shift left by 4 - j and the mask {@code 0x00100010} put vector j's two fifth
     * bits at bits 4 and 20. One read per call: a method for two reads (566 bytes of bytecode) was too big for C2 to
     * inline ("hot method too big"), and its vectors were boxed at every call (the 1B Q5_K_M file's products ran at
     * 7.2-7.7 GB/s of one thread's CPU time, the file's layout at 5.6-6.1).
     */
    private static IntVector fiveBitRead(MemorySegment qs, long q, MemorySegment qh, long h, int part, int[] pairs, int xo,
                                         IntVector mask, IntVector fifth, IntVector bias) {
        IntVector v = IntVector.fromMemorySegment(KI, qs, q, LE);
        IntVector b = (IntVector) ByteVector.fromMemorySegment(K5H, qh, h, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, KI, part);
        b = b.or(b.lanewise(VectorOperators.LSHL, 12));
        return bias.add(v.and(mask).or(b.lanewise(VectorOperators.LSHL, 4).and(fifth)).mul(IntVector.fromArray(KI, pairs, xo)))
                .add(v.lanewise(VectorOperators.LSHR, 4).and(mask).or(b.lanewise(VectorOperators.LSHL, 3).and(fifth)).mul(IntVector.fromArray(KI, pairs, xo + LANES)))
                .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).or(b.lanewise(VectorOperators.LSHL, 2).and(fifth)).mul(IntVector.fromArray(KI, pairs, xo + 2 * LANES)))
                .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).or(b.lanewise(VectorOperators.LSHL, 1).and(fifth)).mul(IntVector.fromArray(KI, pairs, xo + 3 * LANES)))
                .lanewise(VectorOperators.ASHR, 16);
    }

    /**
     * Q4_K × Q8_K on the file's layout (a matrix with no copy: {@code --weight-copies=off}): the same exact integers
     * per sub-block as the copy's kernel, its float sums in other lanes (a few ulps apart: each kernel's lane order
     * is the one its layout makes cheap; putting the copy's sums in this kernel's lanes, or the other way round, cost
     * the file's layout 0.66× at 512 bits in cache, docs/measurements/2026-12-04-q4-k-q6-k-pairs.md). Each
     * super-block's f16 d and dmin converted and its 6-bit scales and mins unpacked (with masks, eight at a time) on
     * every product, which the copy does once at load. Per super-block, four runs of 32 nibble bytes, each holding
     * sub-block 2g (low nibbles) and 2g + 1 (high): nibble × activation products (≤ 15 · 128) of one sub-block summed
     * in shorts over the chunks (at most 4: ≤ 4 · 15 · 128 = 7680, a pair of lanes ≤ 15360), folded to ints
     * ({@link GgmlMatmul}'s fold) and multiplied by the sub-block's 6-bit scale: the exact int
     * {@code sum_j sc_j * dot_j} in int lanes, then {@code acc += float(isum) * (d * d_x)}; the mins' part as in
     * the copy's kernel.
     */
    static void q4_K(float[] out, Activations x, Matrix.Q4_K w, int r0, int r1) {
        int nb = w.cols() / 256;
        MemorySegment data = w.data();
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        // the unpacked mins, as bytes for the vector load (a 64-bit LongVector reinterpreted as bytes is not
        // intrinsified: it ran the Vector API's Java fallback, about 10x slower)
        byte[] minsOfFile = new byte[8];
        for (int r = r0; r < r1; r++) {
            long mt = (long) r * nb * Matrix.Q4_K.BLOCK_BYTES;
            FloatVector acc = FloatVector.zero(F);
            FloatVector macc = FloatVector.zero(MF);
            for (int blk = 0; blk < nb; blk++, mt += Matrix.Q4_K.BLOCK_BYTES) {
                long q = mt + 16;
                int j = blk * 256;
                float d = Float.float16ToFloat(data.get(Matrix.SHORT, mt));
                float dmin = Float.float16ToFloat(data.get(Matrix.SHORT, mt + 2));
                long lo = data.get(LONG, mt + 4); // scales[0..7] of the 12 packed bytes
                int hi = data.get(INT, mt + 12);  // scales[8..11]
                long scales = Matrix.Q4_K.scales(lo, hi);
                LONGS.set(minsOfFile, 0, Matrix.Q4_K.mins(lo, hi));
                int sc03 = (int) scales, sc47i = (int) (scales >>> 32);
                IntVector isum = IntVector.zero(I);
                for (int g = 0; g < 4; g++) {
                    long qo = q + 32L * g;
                    int xo = j + 64 * g;
                    ShortVector v = (ShortVector) ByteVector.fromMemorySegment(BS, data, qo, LE).convertShape(NIBBLES_B2S, S, 0);
                    ShortVector plo = v.and((short) 0x0F).mul(ShortVector.fromArray(S, xq, xo));
                    ShortVector phi = (NIBBLES_ZX ? v.lanewise(VectorOperators.LSHR, 4) : v.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(ShortVector.fromArray(S, xq, xo + 32));
                    for (int k = CH; k < 32; k += CH) {
                        v = (ShortVector) ByteVector.fromMemorySegment(BS, data, qo + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        plo = plo.add(v.and((short) 0x0F).mul(ShortVector.fromArray(S, xq, xo + k)));
                        phi = phi.add((NIBBLES_ZX ? v.lanewise(VectorOperators.LSHR, 4) : v.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(ShortVector.fromArray(S, xq, xo + 32 + k)));
                    }
                    int scWord = g < 2 ? sc03 : sc47i, shift = 16 * (g & 1);
                    int scLo = (scWord >>> shift) & 0xFF, scHi = (scWord >>> (shift + 8)) & 0xFF;
                    IntVector ilo = plo.reinterpretAsInts(), ihi = phi.reinterpretAsInts();
                    isum = isum.add(ilo.add(ilo.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scLo))
                            .add(ihi.add(ihi.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scHi));
                }
                float xdb = xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, d * xdb), acc);
                // the mins' part written out, as in the copy's kernel: as a method it was not inlined at 256 bits (C2's inlining
                // budget for this large loop), its vectors boxed: --weight-copies=off ran at 0.73x
                FloatVector dm = FloatVector.broadcast(MF, dmin * xdb);
                ByteVector minBytes = ByteVector.fromArray(B8, minsOfFile, 0);
                for (int p = 0; p < 8; p += ML) {
                    IntVector mv = (IntVector) minBytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML);
                    macc = ((FloatVector) mv.mul(IntVector.fromArray(MI, xs32, blk * 8 + p)).convert(VectorOperators.I2F, 0)).fma(dm, macc);
                }
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            float v = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
            FloatVector maccSum = macc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.M_STEPS > 2) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.M1)); }
            if (LaneSums.M_STEPS > 3) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.M2)); }
            out[r] = v - ((maccSum.lane(0) + maccSum.lane(2)) + (maccSum.lane(1) + maccSum.lane(3)));
        }
    }

    // ------------------------------------------------------------------ Q6_K × Q8_K

    /**
     * Q6_K × Q8_K on the copy ({@link Q6K}; order: {@link #Q6_PAIR_VALUE}). Per group of lanes, three reads of int
     * lanes and eight vectors of value pairs {@code x + 2^16 y} taken out of them (six by a shift and a mask, two also
     * gathering their high two bits from the third read), times the activation pairs (the Q4_K kernel's trick: the
     * pair's sum in the upper half). Four products are added in an int lane that starts where {@link #q6Starts} says:
     * 2^15, less what the signed q6 - 32 of the four products takes off, so no value is offset in the loop. Counted
     * signed, the lower halves' products total at most 4 · 32 · 127 = 16256 in magnitude and the upper halves' sums at
     * most 4 · 2 · 32 · 127 = 32512 &lt; 2^15, so the shift takes the upper half out exactly (the unsigned products may
     * wrap on the way; the end is the same modulo 2^32). A lane holds one sub-block, so its two sums are added and
     * multiplied by the sub-block's int8 scale (exact), converted and multiply-added with {@code d * d_x} into a float
     * accumulator, lane by lane. The file's layout ({@code --weight-copies=off}) is read by {@link GgmlMatmul#q6_K}:
     * the same integers per sub-block, its float sums in other lanes.
     *
     * <p>One loop over all the super-blocks of rows [r0, r1), as {@link #q4_K} (the row and its super-block carried
     * along, a row's sum taken after its last one), not a loop per row: the same arithmetic per row, so the same
     * bits. Against the loop per row, every product of a token in one JVM, rounds alternated, 2 threads
     * (docs/measurements/2026-12-06-q6-k-one-loop.md): Llama-3.2-1B Q4_K_M, the Q6_K {@code w2} layers 0.78–0.90 of
     * the time and the classifier 0.72–0.77 at 256 bits (0.79–0.87 and 0.83–0.90 at 512), the token 0.85–0.91 at 256
     * bits, 0.93–1.00 at 512 and 0.99–1.01 at 128; Llama-3.1-8B Q4_K_M 0.83–0.92 of the token at 256 bits (0.86–1.03
     * at 512). One thread, the 1B classifier's bytes read as rows of 2048, 4096 and 8192 columns: 1.15–1.7× at 512
     * bits, 1.3–1.5× at 256.
     */
    static void q6_K(float[] out, Activations x, Q6K w, int r0, int r1) {
        int nb = w.source().cols() / 256;
        MemorySegment qs = w.qs(), meta = w.meta();
        int[] pairs = x.q8KPairs6, starts = x.q8KStarts6;
        int pairsAt = x.q8KPairs6At, startsAt = x.q8KStarts6At; // (where each starts: a cache line's start, Activations)
        float[] xd = x.q8KScales;
        int groups = 16 / LANES;
        IntVector six = IntVector.broadcast(KI, 0x003F003F), low = IntVector.broadcast(KI, 0x000F000F), high = IntVector.broadcast(KI, 0x00300030);
        FloatVector zero = FloatVector.zero(KF);
        int rows = w.source().rows(), span = spanBlocks(nb);
        Math.multiplyExact(rows, nb); // (every super-block index below fits an int)
        for (int k0 = 0; k0 < nb; k0 += span) { // each column span (copyIndex): its rows one after another
            int width = Math.min(span, nb - k0), first = rows * k0; // the span's first super-block in the copy
            FloatVector acc = zero;
            int r = r0, blk = k0; // the row and the (matrix) super-block of copy super-block i
            for (int i = first + r0 * width, end = first + r1 * width; i < end; i++) {
                long q = (long) i * Q6K.QS, mt = (long) i * Q6K.META;
                FloatVector dx = FloatVector.broadcast(KF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt)) * xd[blk]);
                for (int g = 0; g < groups; g++) {
                    int xo = pairsAt + blk * 128 + g * 8 * LANES, so = startsAt + blk * Q6_STARTS + g * 2 * LANES;
                    long qg = q + (long) g * 12 * LANES;
                    IntVector a = IntVector.fromMemorySegment(KI, qs, qg, LE);
                    IntVector b = IntVector.fromMemorySegment(KI, qs, qg + 4 * LANES, LE);
                    IntVector c = IntVector.fromMemorySegment(KI, qs, qg + 8 * LANES, LE);
                    IntVector t = IntVector.fromArray(KI, starts, so)
                            .add(a.and(six).mul(IntVector.fromArray(KI, pairs, xo)))
                            .add(a.lanewise(VectorOperators.LSHR, 6).and(six).mul(IntVector.fromArray(KI, pairs, xo + LANES)))
                            .add(b.and(six).mul(IntVector.fromArray(KI, pairs, xo + 2 * LANES)))
                            .add(b.lanewise(VectorOperators.LSHR, 6).and(six).mul(IntVector.fromArray(KI, pairs, xo + 3 * LANES)));
                    IntVector t2 = IntVector.fromArray(KI, starts, so + LANES)
                            .add(c.and(six).mul(IntVector.fromArray(KI, pairs, xo + 4 * LANES)))
                            .add(c.lanewise(VectorOperators.LSHR, 6).and(six).mul(IntVector.fromArray(KI, pairs, xo + 5 * LANES)))
                            .add(a.lanewise(VectorOperators.LSHR, 12).and(low).or(c.lanewise(VectorOperators.LSHR, 8).and(high))
                                    .mul(IntVector.fromArray(KI, pairs, xo + 6 * LANES)))
                            .add(b.lanewise(VectorOperators.LSHR, 12).and(low).or(c.lanewise(VectorOperators.LSHR, 10).and(high))
                                    .mul(IntVector.fromArray(KI, pairs, xo + 7 * LANES)));
                    IntVector sc = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 2 + (long) g * LANES, LE)
                            .convertShape(VectorOperators.B2I, KI, 0);
                    acc = ((FloatVector) t.lanewise(VectorOperators.ASHR, 16).add(t2.lanewise(VectorOperators.ASHR, 16))
                            .mul(sc).convert(VectorOperators.I2F, 0)).fma(dx, acc);
                }
                if (++blk == k0 + width) { // the row's last super-block of the span: its sum, and the next row starts
                    FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
                    if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
                    if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
                    float v = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
                    out[r] = k0 == 0 ? v : out[r] + v;
                    r++;
                    acc = zero;
                    blk = k0;
                }
            }
        }
    }

    // ------------------------------------------------------------------ Q2_K and Q3_K × Q8_K

    /**
     * Groups of lanes per trip of the Q2_K copy's loop: one at 16 lanes (a super-block is one group), else two, written
     * out (the second group's chain a copy of the first's, kept for this measurement): with one group per trip (two
     * trips at 256 bits) C2 kept most of the loop's scalars on the stack, and one thread read the 1B file's Q2_K
     * matrices at 4.1-7.3 GB/s against 6.7-10.4 with two per trip (128 bits 4.0-4.1 against 4.4-4.5;
     * docs/measurements/2026-12-07-q2-k-q3-k-copies.md).
     */
    private static final int GROUP_STEP = LANES == 16 ? 1 : 2;

    /**
     * Q2_K × Q8_K on the copy ({@link Q2K}; order: {@link #Q6_PAIR_VALUE}, so the activation pairs are Q6_K's,
     * {@link #pairs6}). Per group of lanes one read of {@link #LANES} ints, eight vectors of value pairs
     * {@code x + 2^16 y} taken out of it by a shift and the mask {@code 0x00030003}, each times its activation pairs (the
     * Q4_K kernel's trick: the pair's sum in the upper half), the eight added in an int lane started at 2^15: the lower
     * halves total at most 8 · 3 · 128 = 3072 in magnitude, so nothing carries, and the upper halves at most 6144. A
     * lane holds one sub-block (all 16 of its values), so its sum times the sub-block's 4-bit scale is the exact int
     * {@code sc_j · dot_j}, converted and multiply-added with {@code d · d_x} into a float accumulator; the mins' part
     * lane by lane beside it, {@code m_j} times Q8_K's sum of the sub-block's 16 activations (exact), multiply-added
     * with {@code dmin · d_x} into a second accumulator subtracted at the end of the row, as the Q4_K kernel does. The
     * same integers per sub-block as the file-layout kernel ({@link GgmlMatmul#q2_K}) and the scalar reference, the
     * float sums in other lanes. One loop over all the super-blocks of rows [r0, r1), the row carried along, as
     * {@link #q4_K}; its sums written out here (no vector crosses a method boundary).
     */
    static void q2_K(float[] out, Activations x, Q2K w, int r0, int r1) {
        int nb = w.source().cols() / 256;
        MemorySegment qs = w.qs(), meta = w.meta();
        int[] pairs = x.q8KPairs6, xsum = x.q8KSums;
        int pairsAt = x.q8KPairs6At;
        float[] xd = x.q8KScales;
        int groups = 16 / LANES;
        IntVector two = IntVector.broadcast(KI, 0x00030003), bias = IntVector.broadcast(KI, 1 << 15);
        FloatVector zero = FloatVector.zero(KF);
        int rows = w.source().rows(), span = spanBlocks(nb);
        Math.multiplyExact(rows, nb); // (every super-block index below fits an int)
        for (int k0 = 0; k0 < nb; k0 += span) { // each column span (copyIndex): its rows one after another
            int width = Math.min(span, nb - k0), first = rows * k0;
            FloatVector acc = zero, macc = zero;
            int r = r0, blk = k0;
            for (int i = first + r0 * width, end = first + r1 * width; i < end; i++) {
                long q = (long) i * Q2K.QS, mt = (long) i * Q2K.META;
                float xdb = xd[blk];
                FloatVector dx = FloatVector.broadcast(KF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt)) * xdb);
                FloatVector dm = FloatVector.broadcast(KF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt + 2)) * xdb);
                for (int g = 0; g < groups; g += GROUP_STEP) { // (one group at 16 lanes, else two at a time: a constant)
                    int xo = pairsAt + blk * 128 + g * 8 * LANES;
                    IntVector v = IntVector.fromMemorySegment(KI, qs, q + (long) g * 4 * LANES, LE);
                    IntVector t = bias.add(v.and(two).mul(IntVector.fromArray(KI, pairs, xo)))
                            .add(v.lanewise(VectorOperators.LSHR, 2).and(two).mul(IntVector.fromArray(KI, pairs, xo + LANES)))
                            .add(v.lanewise(VectorOperators.LSHR, 4).and(two).mul(IntVector.fromArray(KI, pairs, xo + 2 * LANES)))
                            .add(v.lanewise(VectorOperators.LSHR, 6).and(two).mul(IntVector.fromArray(KI, pairs, xo + 3 * LANES)))
                            .add(v.lanewise(VectorOperators.LSHR, 8).and(two).mul(IntVector.fromArray(KI, pairs, xo + 4 * LANES)))
                            .add(v.lanewise(VectorOperators.LSHR, 10).and(two).mul(IntVector.fromArray(KI, pairs, xo + 5 * LANES)))
                            .add(v.lanewise(VectorOperators.LSHR, 12).and(two).mul(IntVector.fromArray(KI, pairs, xo + 6 * LANES)))
                            .add(v.lanewise(VectorOperators.LSHR, 14).and(two).mul(IntVector.fromArray(KI, pairs, xo + 7 * LANES)));
                    IntVector scm = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 4 + (long) g * LANES, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, KI, 0); // scale | min << 4
                    IntVector isum = t.lanewise(VectorOperators.ASHR, 16).mul(scm.and(0x0F));
                    IntVector msum = scm.lanewise(VectorOperators.LSHR, 4).mul(IntVector.fromArray(KI, xsum, blk * 16 + g * LANES));
                    if (GROUP_STEP == 2) {
                        int xo2 = xo + 8 * LANES;
                        IntVector u = IntVector.fromMemorySegment(KI, qs, q + (long) (g + 1) * 4 * LANES, LE);
                        IntVector t2 = bias.add(u.and(two).mul(IntVector.fromArray(KI, pairs, xo2)))
                                .add(u.lanewise(VectorOperators.LSHR, 2).and(two).mul(IntVector.fromArray(KI, pairs, xo2 + LANES)))
                                .add(u.lanewise(VectorOperators.LSHR, 4).and(two).mul(IntVector.fromArray(KI, pairs, xo2 + 2 * LANES)))
                                .add(u.lanewise(VectorOperators.LSHR, 6).and(two).mul(IntVector.fromArray(KI, pairs, xo2 + 3 * LANES)))
                                .add(u.lanewise(VectorOperators.LSHR, 8).and(two).mul(IntVector.fromArray(KI, pairs, xo2 + 4 * LANES)))
                                .add(u.lanewise(VectorOperators.LSHR, 10).and(two).mul(IntVector.fromArray(KI, pairs, xo2 + 5 * LANES)))
                                .add(u.lanewise(VectorOperators.LSHR, 12).and(two).mul(IntVector.fromArray(KI, pairs, xo2 + 6 * LANES)))
                                .add(u.lanewise(VectorOperators.LSHR, 14).and(two).mul(IntVector.fromArray(KI, pairs, xo2 + 7 * LANES)));
                        IntVector scm2 = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 4 + (long) (g + 1) * LANES, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, KI, 0);
                        isum = isum.add(t2.lanewise(VectorOperators.ASHR, 16).mul(scm2.and(0x0F)));
                        msum = msum.add(scm2.lanewise(VectorOperators.LSHR, 4).mul(IntVector.fromArray(KI, xsum, blk * 16 + (g + 1) * LANES)));
                    }
                    acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(dx, acc);
                    macc = ((FloatVector) msum.convert(VectorOperators.I2F, 0)).fma(dm, macc);
                }
                if (++blk == k0 + width) { // the row's last super-block of the span: its sums, and the next row starts
                    FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
                    if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
                    if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
                    float v = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
                    FloatVector maccSum = macc; // (the same order)
                    if (LaneSums.P_STEPS > 2) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.P1)); }
                    if (LaneSums.P_STEPS > 3) { maccSum = maccSum.add(maccSum.rearrange(LaneSums.P2)); }
                    v -= (maccSum.lane(0) + maccSum.lane(2)) + (maccSum.lane(1) + maccSum.lane(3));
                    out[r] = k0 == 0 ? v : out[r] + v;
                    r++;
                    acc = zero;
                    macc = zero;
                    blk = k0;
                }
            }
        }
    }

    /**
     * Q3_K × Q8_K on the copy ({@link Q3K}, at 4 and 8 lanes; order: {@link #Q6_PAIR_VALUE}, so the activation pairs
     * are Q6_K's, {@link #pairs6}). Per pair of groups three reads A, B, C of {@link #LANES} ints and sixteen vectors
     * of value pairs {@code x + 2^16 y} (the values as {@code q + 4}, 0..7) taken out of them: fifteen by a shift and
     * the mask {@code 0x00070007}, the second group's last from a bit of each read. Each is multiplied by its
     * activation pairs (the pair's sum in the upper half, as the Q4_K kernel) and a group's eight are added in an int
     * lane started at 2^15: the lower halves total at most 8 · 7 · 128 = 7168 in magnitude, so nothing carries, and
     * the upper halves at most 14336. A lane holds one sub-block (all 16 of its values), so its sum less 4 times
     * Q8_K's sum of the sub-block's 16 activations is the exact {@code dot_j(q, a)} with q in [-4, 3]; times the
     * sub-block's int8 scale (sc - 32), the two groups' added (exact), converted and multiply-added with
     * {@code d · d_x} into a float accumulator, lane by lane. The same integers per sub-block as the file-layout kernel
     * ({@link GgmlMatmul#q3_K}) and the scalar reference, the float sums in other lanes. One loop over all the
     * super-blocks of rows [r0, r1), as {@link #q4_K}.
     */
    static void q3_K(float[] out, Activations x, Q3K w, int r0, int r1) {
        int nb = w.source().cols() / 256;
        MemorySegment qs = w.qs(), meta = w.meta();
        int[] pairs = x.q8KPairs6, xsum = x.q8KSums;
        int pairsAt = x.q8KPairs6At;
        float[] xd = x.q8KScales;
        int pairsOfGroups = 8 / LANES;
        IntVector three = IntVector.broadcast(KI, 0x00070007), bias = IntVector.broadcast(KI, 1 << 15);
        IntVector bit0 = IntVector.broadcast(KI, 0x00010001), bit1 = IntVector.broadcast(KI, 0x00020002), bit2 = IntVector.broadcast(KI, 0x00040004);
        FloatVector zero = FloatVector.zero(KF);
        int rows = w.source().rows(), span = spanBlocks(nb);
        Math.multiplyExact(rows, nb); // (every super-block index below fits an int)
        for (int k0 = 0; k0 < nb; k0 += span) { // each column span (copyIndex): its rows one after another
            int width = Math.min(span, nb - k0), first = rows * k0;
            FloatVector acc = zero;
            int r = r0, blk = k0;
            for (int i = first + r0 * width, end = first + r1 * width; i < end; i++) {
                long q = (long) i * Q3K.QS, mt = (long) i * Q3K.META;
                FloatVector dx = FloatVector.broadcast(KF, Float.float16ToFloat(meta.get(Matrix.SHORT, mt)) * xd[blk]);
                for (int p = 0; p < pairsOfGroups; p++) {
                    int xo = pairsAt + blk * 128 + p * 16 * LANES, so = blk * 16 + p * 2 * LANES;
                    long qp = q + (long) p * 12 * LANES;
                    IntVector a = IntVector.fromMemorySegment(KI, qs, qp, LE);
                    IntVector b = IntVector.fromMemorySegment(KI, qs, qp + 4 * LANES, LE);
                    IntVector c = IntVector.fromMemorySegment(KI, qs, qp + 8 * LANES, LE);
                    IntVector t = bias.add(a.and(three).mul(IntVector.fromArray(KI, pairs, xo)))
                            .add(a.lanewise(VectorOperators.LSHR, 3).and(three).mul(IntVector.fromArray(KI, pairs, xo + LANES)))
                            .add(a.lanewise(VectorOperators.LSHR, 6).and(three).mul(IntVector.fromArray(KI, pairs, xo + 2 * LANES)))
                            .add(a.lanewise(VectorOperators.LSHR, 9).and(three).mul(IntVector.fromArray(KI, pairs, xo + 3 * LANES)))
                            .add(a.lanewise(VectorOperators.LSHR, 12).and(three).mul(IntVector.fromArray(KI, pairs, xo + 4 * LANES)))
                            .add(c.and(three).mul(IntVector.fromArray(KI, pairs, xo + 5 * LANES)))
                            .add(c.lanewise(VectorOperators.LSHR, 3).and(three).mul(IntVector.fromArray(KI, pairs, xo + 6 * LANES)))
                            .add(c.lanewise(VectorOperators.LSHR, 6).and(three).mul(IntVector.fromArray(KI, pairs, xo + 7 * LANES)));
                    IntVector t2 = bias.add(b.and(three).mul(IntVector.fromArray(KI, pairs, xo + 8 * LANES)))
                            .add(b.lanewise(VectorOperators.LSHR, 3).and(three).mul(IntVector.fromArray(KI, pairs, xo + 9 * LANES)))
                            .add(b.lanewise(VectorOperators.LSHR, 6).and(three).mul(IntVector.fromArray(KI, pairs, xo + 10 * LANES)))
                            .add(b.lanewise(VectorOperators.LSHR, 9).and(three).mul(IntVector.fromArray(KI, pairs, xo + 11 * LANES)))
                            .add(b.lanewise(VectorOperators.LSHR, 12).and(three).mul(IntVector.fromArray(KI, pairs, xo + 12 * LANES)))
                            .add(c.lanewise(VectorOperators.LSHR, 9).and(three).mul(IntVector.fromArray(KI, pairs, xo + 13 * LANES)))
                            .add(c.lanewise(VectorOperators.LSHR, 12).and(three).mul(IntVector.fromArray(KI, pairs, xo + 14 * LANES)))
                            .add(a.lanewise(VectorOperators.LSHR, 15).and(bit0).or(b.lanewise(VectorOperators.LSHR, 14).and(bit1))
                                    .or(c.lanewise(VectorOperators.LSHR, 13).and(bit2)).mul(IntVector.fromArray(KI, pairs, xo + 15 * LANES)));
                    IntVector sc = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 2 + (long) p * 2 * LANES, LE)
                            .convertShape(VectorOperators.B2I, KI, 0);
                    IntVector sc2 = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 2 + (long) (p * 2 + 1) * LANES, LE)
                            .convertShape(VectorOperators.B2I, KI, 0);
                    IntVector d1 = t.lanewise(VectorOperators.ASHR, 16).sub(IntVector.fromArray(KI, xsum, so).lanewise(VectorOperators.LSHL, 2));
                    IntVector d2 = t2.lanewise(VectorOperators.ASHR, 16).sub(IntVector.fromArray(KI, xsum, so + LANES).lanewise(VectorOperators.LSHL, 2));
                    acc = ((FloatVector) d1.mul(sc).add(d2.mul(sc2)).convert(VectorOperators.I2F, 0)).fma(dx, acc);
                }
                if (++blk == k0 + width) { // the row's last super-block of the span: its sum, and the next row starts
                    FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
                    if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
                    if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
                    float v = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
                    out[r] = k0 == 0 ? v : out[r] + v;
                    r++;
                    acc = zero;
                    blk = k0;
                }
            }
        }
    }
}
