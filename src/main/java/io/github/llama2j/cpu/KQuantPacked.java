package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
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
 *   meta (rows × nb × 32 bytes): f32 d, f32 dmin, u8 m[8], u8 sc[8], 8 zero bytes
 * </pre>
 * About the bytes per weight of the file (160 against 144 per 256 values). The nibbles are ordered so that one
 * int lane's multiply forms two products at once: a lane holding two nibbles {@code x + 2^16 y} times a lane of
 * activations {@code a_y + 2^16 a_x} is {@code x a_y + 2^16 (x a_x + y a_y)} modulo 2^32, so the upper half carries
 * the pair's sum (the multiply-add of pairs that x86's {@code vpmaddwd} does, which the Vector API lacks). Every int
 * lane holds values of one sub-block only (lane i: sub-block i mod 8 from 256 bits up), so a super-block's products
 * are summed lane by lane before its eight 6-bit scales are applied, once, as a vector. The order depends on the
 * vector width the copy is made for ({@link #LANES}); the activations are arranged to match
 * ({@link Activations}' {@code q8KPairs}). The file's layout ({@code --weight-copies=off}) is read by its own loop
 * (the same products on the file's order, then a transposing reduction), which forms the same integers in the same
 * lanes (the canonical form below): both give the same results bit for bit.
 */
final class KQuantPacked {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    private static final java.lang.invoke.VarHandle LONGS = java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, LE);

    private KQuantPacked() {
    }

    /** A Q4_K matrix in the engine's layout (see the class comment). */
    record Q4K(Matrix.Q4_K source, MemorySegment qs, MemorySegment meta) implements MatrixForm {
        static final int QS = 128, META = 32;

        Q4K {
            long blocks = (long) source.rows() * (source.cols() / Matrix.Q4_K.BLOCK);
            if (qs.byteSize() != blocks * QS || meta.byteSize() != blocks * META) {
                throw new IllegalArgumentException("packed Q4_K of " + blocks + " super-blocks: qs " + qs.byteSize()
                        + " bytes, meta " + meta.byteSize());
            }
        }

        /** Bytes of the copy (the file's matrix: {@link #byteSize}). */
        long copyBytes() {
            return qs.byteSize() + meta.byteSize();
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), unmapped when the form is no longer reachable. */
        static Q4K of(Matrix.Q4_K m) {
            long blocks = blocks(m);
            return of(m, allocate(blocks * QS), allocate(blocks * META), null);
        }

        /**
         * {@link #of(Matrix.Q4_K)} into memory from {@code memory} (a slicing allocator over one {@link #allocate}d
         * region for all of a model's copies: {@link PreparedWeights#prepare}), which must give zeroed memory, the rows
         * split over {@code parallel}'s threads.
         */
        static Q4K of(Matrix.Q4_K m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
            long blocks = blocks(m);
            return of(m, memory.allocate(blocks * QS, 64), memory.allocate(blocks * META, 64), parallel);
        }

        /** Bytes {@link #of(Matrix.Q4_K, java.lang.foreign.SegmentAllocator, Parallel)} takes from its allocator, alignment included. */
        static long allocationBytes(Matrix.Q4_K m) {
            return blocks(m) * (QS + META) + 2 * 64;
        }

        private static long blocks(Matrix.Q4_K m) {
            return (long) m.rows() * (m.cols() / Matrix.Q4_K.BLOCK);
        }

        /** The copy into {@code qs} and {@code meta}, on {@code parallel}'s threads (null: this thread). */
        private static Q4K of(Matrix.Q4_K m, MemorySegment qs, MemorySegment meta, Parallel parallel) {
            long perRow = m.cols() / Matrix.Q4_K.BLOCK, blocks = blocks(m);
            if (parallel == null) {
                copy(m, qs, meta, 0, blocks);
            } else {
                parallel.forRange(m.rows(), (r0, r1) -> copy(m, qs, meta, r0 * perRow, r1 * perRow));
            }
            return new Q4K(m, qs, meta);
        }

        /** Super-blocks [from, to) of {@code m} into the copy (the nibbles in {@link #SOURCE_NIBBLE}'s order). */
        private static void copy(Matrix.Q4_K m, MemorySegment qs, MemorySegment meta, long from, long to) {
            MemorySegment src = m.data();
            byte[] in = new byte[QS], outBytes = new byte[QS];
            for (long i = from; i < to; i++) {
                long b = i * Matrix.Q4_K.BLOCK_BYTES, mt = i * META;
                MemorySegment.copy(src, BYTE, b + 16, in, 0, QS);
                for (int p = 0; p < QS; p++) {
                    outBytes[p] = (byte) (nibble(in, SOURCE_NIBBLE[2 * p]) | nibble(in, SOURCE_NIBBLE[2 * p + 1]) << 4);
                }
                MemorySegment.copy(outBytes, 0, qs, BYTE, i * QS, QS);
                meta.set(FLOAT, mt, Float.float16ToFloat(src.get(Matrix.SHORT, b)));
                meta.set(FLOAT, mt + 4, Float.float16ToFloat(src.get(Matrix.SHORT, b + 2)));
                for (int j = 0; j < 8; j++) {
                    byte sc = (byte) Matrix.Q4_K.scale(src, b + 4, j);
                    meta.set(BYTE, mt + 8 + j, (byte) Matrix.Q4_K.min(src, b + 4, j));
                    meta.set(BYTE, mt + 16 + j, sc);
                }
            }
        }

        /** Value v (0..255) of a super-block's 128 nibble bytes in the file's order (sub-blocks 2g, 2g + 1 share 32 bytes). */
        private static int nibble(byte[] fileNibbles, int v) {
            int sub = v / 32;
            return (fileNibbles[32 * (sub / 2) + v % 32] >> (4 * (sub % 2))) & 0x0F;
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
     * {@link #PAIR_VALUE} for the file's layout: the same reads and shifts of the file's 128 nibble bytes, where byte p
     * holds value 64 · (p / 32) + p % 32 in its low nibble and that + 32 in its high one.
     */
    static final int[] FILE_PAIR_VALUE;
    /** {@code SOURCE_NIBBLE[2 * p + n]}: the value whose nibble is the low (n = 0) or high (n = 1) half of copy byte p. */
    private static final int[] SOURCE_NIBBLE;

    static {
        int bits = Math.max(128, Math.min(512, FloatVector.SPECIES_PREFERRED.vectorBitSize()));
        LANES = bits / 32;
        int vectors = 128 / LANES, groups = Math.max(1, 8 / LANES);
        PAIR_VALUE = new int[256];
        FILE_PAIR_VALUE = new int[256];
        SOURCE_NIBBLE = new int[256];
        int[] next = new int[8];
        for (int k = 0; k < vectors; k++) {
            for (int i = 0; i < LANES; i++) {
                int sub = LANES >= 8 ? i % 8 : k / (vectors / groups) * LANES + i;
                for (int h = 0; h < 2; h++) {
                    int v = 32 * sub + next[sub]++;
                    PAIR_VALUE[2 * (k * LANES + i) + h] = v;
                    int c = k / 4, j = k % 4, p = 4 * LANES * c + 4 * i + 2 * h + j / 2;
                    SOURCE_NIBBLE[2 * p + j % 2] = v;
                    FILE_PAIR_VALUE[2 * (k * LANES + i) + h] = 64 * (p / 32) + 32 * (j % 2) + p % 32;
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

    /** {@link #pairs} for the file's layout ({@link #FILE_PAIR_VALUE}). */
    static void pairsFile(short[] q, int base, int[] out, int at) {
        pairs(q, base, out, at, FILE_PAIR_VALUE);
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
    /** The 8 mins of a super-block: 8 bytes widened to int lanes, 8 (256 bits or more) or 4 (128 bits) at a time. */
    private static final VectorSpecies<Byte> B8 = ByteVector.SPECIES_64;
    private static final VectorSpecies<Integer> MI = species(IntVector.SPECIES_PREFERRED, Math.min(256, F.vectorBitSize()));
    private static final VectorSpecies<Float> MF = species(FloatVector.SPECIES_PREFERRED, Math.min(256, F.vectorBitSize()));
    private static final int ML = MI.length();

    @SuppressWarnings("unchecked")
    private static <E> VectorSpecies<E> species(VectorSpecies<E> like, int bits) {
        return (VectorSpecies<E>) like.withShape(VectorShape.forBitSize(bits));
    }

    // ------------------------------------------------------------------ Q4_K × Q8_K

    /** The Q4_K kernels' int and float lanes: as the copy was made for ({@link #LANES}). */
    private static final VectorSpecies<Integer> KI = species(IntVector.SPECIES_PREFERRED, LANES * 32);
    private static final VectorSpecies<Float> KF = species(FloatVector.SPECIES_PREFERRED, LANES * 32);
    /** A group of lanes' scales: 16 bytes at 16 lanes (the eight scales, then eight zeros), else 8 (the first 4 or 8 used). */
    private static final VectorSpecies<Byte> KSC = LANES == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;
    /** At 16 lanes: lane i + 8 onto lane i (both hold sub-block i's products in the copy's order). */
    private static final VectorShuffle<Integer> SWAP_HALVES = VectorShuffle.fromOp(KI, i -> (i + 8) % KI.length());

    /*
     * Both Q4_K kernels give each super-block's exact integers in one canonical form, whatever the layout they read:
     * {@code sc_j * dot_j} for sub-block j (dot_j: its 32 nibbles times their activations) in lane j of an int vector
     * (16 lanes: lanes 8-15 zero), or with 4 lanes sub-blocks 0-3 and 4-7 in two vectors; each lane is converted and
     * multiply-added with {@code d * d_x} into a float accumulator of its own, reduced at the end of the row. The same
     * integers in the same lanes through the same float steps: the copy and the file's layout agree bit for bit.
     */

    /**
     * Q4_K × Q8_K on the copy. Per read of {@link #LANES} ints, four nibble vectors (shifts and a mask), each
     * multiplied by its lanes of activation pairs ({@link #pairs}), the upper halves carrying the pairs' sums (the
     * class comment). Eight such products are added in an int lane started at 2^15 before the shift takes the upper
     * half out: the lower halves' products {@code x a_y} total at most 8 · 15 · 128 = 15360 in magnitude, so the bias
     * keeps the lower half in [0, 2^16) and nothing carries, and the upper halves total at most 8 · 2 · 15 · 128 =
     * 30720 &lt; 2^15, so the lane never overflows. The lanes' sums (at most two shifts' worth: 61440) are then folded
     * to one lane per sub-block and multiplied by the scales (the canonical form above); the mins' part as
     * {@link #mins}.
     */
    static void q4_K(float[] out, Activations x, Q4K w, int r0, int r1) {
        int nb = w.source().cols() / 256;
        MemorySegment qs = w.qs(), meta = w.meta();
        int[] pairs = x.q8KPairs;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        int groups = Math.max(1, 8 / LANES), reads = 32 / LANES / groups; // reads of LANES ints per group
        IntVector mask = IntVector.broadcast(KI, 0x000F000F), bias = IntVector.broadcast(KI, 1 << 15);
        for (int r = r0; r < r1; r++) {
            long q = (long) r * nb * Q4K.QS, mt = (long) r * nb * Q4K.META;
            FloatVector acc = FloatVector.zero(KF), acc2 = FloatVector.zero(KF); // acc2: sub-blocks 4-7 at 4 lanes
            FloatVector macc = FloatVector.zero(MF);
            for (int blk = 0; blk < nb; blk++, mt += Q4K.META) {
                int xo = blk * 128;
                float dx = meta.get(FLOAT, mt) * xd[blk];
                for (int g = 0; g < groups; g++) {
                    IntVector sums = IntVector.zero(KI);
                    for (int c = 0; c < reads; c += 2) {
                        IntVector t = bias;
                        for (int half = 0; half < 2; half++, q += 4 * LANES, xo += 4 * LANES) {
                            IntVector v = IntVector.fromMemorySegment(KI, qs, q, LE);
                            t = t.add(v.and(mask).mul(IntVector.fromArray(KI, pairs, xo)))
                                    .add(v.lanewise(VectorOperators.LSHR, 4).and(mask).mul(IntVector.fromArray(KI, pairs, xo + LANES)))
                                    .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 2 * LANES)))
                                    .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 3 * LANES)));
                        }
                        sums = sums.add(t.lanewise(VectorOperators.ASHR, 16));
                    }
                    if (LANES == 16) {
                        sums = sums.add(sums.rearrange(SWAP_HALVES));
                    }
                    IntVector sc = (IntVector) ByteVector.fromMemorySegment(KSC, meta, mt + 16 + (long) g * LANES, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, KI, 0);
                    FloatVector isum = (FloatVector) sums.mul(sc).convert(VectorOperators.I2F, 0);
                    if (g == 0) {
                        acc = isum.fma(FloatVector.broadcast(KF, dx), acc);
                    } else {
                        acc2 = isum.fma(FloatVector.broadcast(KF, dx), acc2);
                    }
                }
                macc = mins(macc, ByteVector.fromMemorySegment(B8, meta, mt + 8, LE), meta.get(FLOAT, mt + 4) * xd[blk], xs32, blk);
            }
            out[r] = acc.add(acc2).reduceLanes(VectorOperators.ADD) - macc.reduceLanes(VectorOperators.ADD);
        }
    }

    /**
     * The mins' part of a super-block, as llama.cpp's AVX2 kernel forms it, lane by lane: {@code m_j * (q-sum of
     * sub-block j)} exact in int lanes (one lane per sub-block), converted and multiply-added with {@code dmin * d_x}
     * into {@code macc}, subtracted at the end of the row (in cache, 1.14× the same kernel with the mins' eight
     * products in scalar). The same code for both layouts.
     */
    private static FloatVector mins(FloatVector macc, ByteVector minBytes, float dminX, int[] xs32, int blk) {
        FloatVector dm = FloatVector.broadcast(MF, dminX);
        for (int p = 0; p < 8; p += ML) {
            IntVector mv = (IntVector) minBytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML);
            macc = ((FloatVector) mv.mul(IntVector.fromArray(MI, xs32, blk * 8 + p)).convert(VectorOperators.I2F, 0)).fma(dm, macc);
        }
        return macc;
    }

    /**
     * {@link #q4_K(float[], Activations, Q4K, int, int)} on the file's layout (a matrix with no copy:
     * {@code --weight-copies=off}): the same exact integers in the same canonical lanes and the same float steps
     * after them, hence the same results bit for bit; each super-block's f16 d and dmin converted and its 6-bit
     * scales and mins unpacked (with masks, eight at a time) on every product, which the copy does once at load. Per
     * super-block, four runs of 32 nibble bytes, each holding sub-block 2g (low nibbles) and 2g + 1 (high):
     * nibble × activation products (≤ 15 · 128) of one sub-block summed in shorts over the chunks (at most 4: ≤ 4 ·
     * 15 · 128 = 7680, a pair of lanes ≤ 15360) and folded to ints ({@link GgmlMatmul}'s fold); the eight sub-blocks'
     * int vectors are then summed lane-wise into the canonical lanes by {@link #combine}s (a transposing reduction,
     * about 30 operations per super-block where eight reductions of the lanes took about 70), and multiplied by the
     * scales.
     */
    static void q4_K(float[] out, Activations x, Matrix.Q4_K w, int r0, int r1) {
        int nb = w.cols() / 256;
        MemorySegment data = w.data();
        int[] pairs = x.q8KPairsFile;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        // the unpacked mins and scales, as bytes for the vector loads (a 64-bit LongVector reinterpreted as bytes is not
        // intrinsified: it ran the Vector API's Java fallback, about 10x slower); scales then eight zeros, as the copy's
        byte[] minsOfFile = new byte[8], scalesOfFile = new byte[16];
        int[] canonical = new int[16], sums = new int[64];
        for (int r = r0; r < r1; r++) {
            long mt = (long) r * nb * Matrix.Q4_K.BLOCK_BYTES;
            FloatVector acc = FloatVector.zero(KF), acc2 = FloatVector.zero(KF);
            FloatVector macc = FloatVector.zero(MF);
            for (int blk = 0; blk < nb; blk++, mt += Matrix.Q4_K.BLOCK_BYTES) {
                float d = Float.float16ToFloat(data.get(Matrix.SHORT, mt));
                float dmin = Float.float16ToFloat(data.get(Matrix.SHORT, mt + 2));
                long lo = data.get(LONG, mt + 4); // scales[0..7] of the 12 packed bytes
                int hi = data.get(INT, mt + 12);  // scales[8..11]
                long sc47 = (hi & 0x0F0F0F0FL) | ((lo & 0xC0C0C0C0L) >>> 2);
                long m47 = ((hi >>> 4) & 0x0F0F0F0FL) | (((lo >>> 32) & 0xC0C0C0C0L) >>> 2);
                LONGS.set(scalesOfFile, 0, (lo & 0x3F3F3F3FL) | sc47 << 32);
                LONGS.set(minsOfFile, 0, ((lo >>> 32) & 0x3F3F3F3FL) | m47 << 32);
                fileSums(data, mt + 16, pairs, blk * 128, sums);
                canonicalSums(sums, scalesOfFile, canonical);
                float xdb = xd[blk], dx = d * xdb;
                acc = ((FloatVector) IntVector.fromArray(KI, canonical, 0).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(KF, dx), acc);
                if (LANES == 4) {
                    acc2 = ((FloatVector) IntVector.fromArray(KI, canonical, 4).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(KF, dx), acc2);
                }
                macc = mins(macc, ByteVector.fromArray(B8, minsOfFile, 0), dmin * xdb, xs32, blk);
            }
            out[r] = acc.add(acc2).reduceLanes(VectorOperators.ADD) - macc.reduceLanes(VectorOperators.ADD);
        }
    }

    /**
     * One super-block of the file's layout, its nibbles at {@code q}: {@code sc_j * dot_j} into {@code canonical[j]}
     * (16 lanes: 8-15 zero). The copy's products (reads of {@link #LANES} ints, four nibble vectors each, activations
     * in pairs, here in the file's order: {@code q8KPairsFile}), but a lane's sub-block changes from read to read and
     * between the vectors of odd and even shift: the low nibbles (shifts 0 and 8) of a read's 32-byte run are
     * sub-block 2 · run, the high ones (4 and 12) 2 · run + 1 (at 16 lanes a read holds two runs, lanes 0-7 and 8-15).
     * So each read's two products of one parity are added (bias 2^15, at most 2 · 15 · 128 in a lower half) and
     * shifted at once, runs split over two reads (4 lanes) added after, and the eight sub-blocks' lanes summed into
     * the canonical lanes by {@link #combine}s (a transposing reduction). Its own method, not inlined: within the row
     * loop C2 reached its inlining cutoff (NodeCountInliningCutoff, seen with -XX:+PrintIntrinsics at 256 bits) and
     * called the combines out of line, their vectors boxed (0.05 GB/s); the ints go back through the array.
     */
    private static void fileSums(MemorySegment data, long q, int[] pairs, int xo, int[] sums) {
        IntVector mask = IntVector.broadcast(KI, 0x000F000F), bias = IntVector.broadcast(KI, 1 << 15);
        for (int c = 0; c < 32 / LANES; c++, q += 4 * LANES, xo += 4 * LANES) {
            IntVector v = IntVector.fromMemorySegment(KI, data, q, LE);
            bias.add(v.and(mask).mul(IntVector.fromArray(KI, pairs, xo)))
                    .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 2 * LANES)))
                    .lanewise(VectorOperators.ASHR, 16).intoArray(sums, 2 * c * LANES);
            bias.add(v.lanewise(VectorOperators.LSHR, 4).and(mask).mul(IntVector.fromArray(KI, pairs, xo + LANES)))
                    .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).mul(IntVector.fromArray(KI, pairs, xo + 3 * LANES)))
                    .lanewise(VectorOperators.ASHR, 16).intoArray(sums, (2 * c + 1) * LANES);
        }
    }

    /**
     * {@link #fileSums}' 64 ints (per read: the even shifts' lanes, then the odd ones') summed into the canonical lanes
     * and multiplied by the scales: {@code sc_j * dot_j} into {@code canonical[j]} (16 lanes: 8-15 zero).
     */
    private static void canonicalSums(int[] sums, byte[] scales, int[] canonical) {
        if (LANES == 16) {
            // reads 0, 1: even lanes 0-7 | 8-15 sub-blocks 0 | 2 and 4 | 6, odd 1 | 3 and 5 | 7; combined 0 1 2 3 and
            // 4 5 6 7 by fours, then 0 0 4 4 1 1 5 5 2 2 6 6 3 3 7 7
            IntVector y = combine(combine(lanes(sums, 0), lanes(sums, 1), HI_L2, SWAP_L2),
                    combine(lanes(sums, 2), lanes(sums, 3), HI_L2, SWAP_L2), HI_L4, SWAP_L4);
            y = y.add(y.rearrange(SWAP_2));
            y.rearrange(FINAL).mul(scaleLanes(scales, 0)).intoArray(canonical, 0);
        } else if (LANES == 8) {
            // read g: sub-blocks 2g (even) and 2g + 1 (odd) in all lanes; combined, the lanes hold 0 4 2 6 1 5 3 7
            IntVector y = combine(combine(combine(lanes(sums, 0), lanes(sums, 1), HI_L, SWAP_L),
                            combine(lanes(sums, 2), lanes(sums, 3), HI_L, SWAP_L), HI_L2, SWAP_L2),
                    combine(combine(lanes(sums, 4), lanes(sums, 5), HI_L, SWAP_L),
                            combine(lanes(sums, 6), lanes(sums, 7), HI_L, SWAP_L), HI_L2, SWAP_L2), HI_L4, SWAP_L4);
            y.rearrange(FINAL).mul(scaleLanes(scales, 0)).intoArray(canonical, 0);
        } else {
            // reads 2g, 2g + 1: sub-blocks 2g (even) and 2g + 1 (odd); combined [0 2 1 3] and [4 6 5 7], one lane each
            combine(combine(run(sums, 0, true), run(sums, 0, false), HI_L, SWAP_L),
                    combine(run(sums, 1, true), run(sums, 1, false), HI_L, SWAP_L), HI_2, SWAP_2).rearrange(FINAL)
                    .mul(scaleLanes(scales, 0)).intoArray(canonical, 0);
            combine(combine(run(sums, 2, true), run(sums, 2, false), HI_L, SWAP_L),
                    combine(run(sums, 3, true), run(sums, 3, false), HI_L, SWAP_L), HI_2, SWAP_2).rearrange(FINAL)
                    .mul(scaleLanes(scales, 4)).intoArray(canonical, 4);
        }
    }

    /** The n-th vector of {@link #fileSums}' ints. */
    private static IntVector lanes(int[] sums, int n) {
        return IntVector.fromArray(KI, sums, n * LANES);
    }

    /** At 4 lanes: run g's even or odd lanes, over its two reads. */
    private static IntVector run(int[] sums, int g, boolean even) {
        int n = 4 * g + (even ? 0 : 1);
        return lanes(sums, n).add(lanes(sums, n + 2));
    }

    /** The scales {@code sc[from ..]} (then zeros) in the kernels' int lanes. */
    private static IntVector scaleLanes(byte[] scales, int from) {
        return (IntVector) ByteVector.fromArray(KSC, scales, from).convertShape(VectorOperators.ZERO_EXTEND_B2I, KI, 0);
    }

    /**
     * Two vectors whose blocks of w lanes each hold one partial sum (lane-wise), as one whose blocks hold a's sum in
     * the first w / 2 lanes and b's in the last: {@code [a_lo + a_hi, b_hi + b_lo]} per block ({@code hi}: the last
     * w / 2 lanes of each block; {@code swap}: the halves of each block exchanged).
     */
    private static IntVector combine(IntVector a, IntVector b, VectorMask<Integer> hi, VectorShuffle<Integer> swap) {
        return a.blend(b, hi).add(b.blend(a, hi).rearrange(swap));
    }

    /** Blocks of w lanes for {@link #combine}: the last w / 2 lanes of each, and its halves exchanged (w = LANES, LANES / 2, LANES / 4, 2). */
    private static final VectorMask<Integer> HI_L = hiLanes(LANES), HI_L2 = hiLanes(LANES / 2), HI_L4 = hiLanes(Math.max(2, LANES / 4)), HI_2 = hiLanes(2);
    private static final VectorShuffle<Integer> SWAP_L = swapHalves(LANES), SWAP_L2 = swapHalves(LANES / 2),
            SWAP_L4 = swapHalves(Math.max(2, LANES / 4)), SWAP_2 = swapHalves(2);
    /** Where sub-block j's sum lies after the combines (the comments in the file's kernel), into lane j. */
    private static final VectorShuffle<Integer> FINAL = VectorShuffle.fromArray(KI, switch (LANES) {
        case 16 -> new int[]{0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0}; // lanes 8-15: times a zero scale
        case 8 -> new int[]{0, 4, 2, 6, 1, 5, 3, 7};
        default -> new int[]{0, 2, 1, 3};
    }, 0);

    private static VectorMask<Integer> hiLanes(int w) {
        return VectorMask.fromLong(KI, java.util.stream.IntStream.range(0, LANES).filter(l -> l % w >= w / 2)
                .mapToLong(l -> 1L << l).sum());
    }

    private static VectorShuffle<Integer> swapHalves(int w) {
        return VectorShuffle.fromOp(KI, l -> l / w * w + (l % w + w / 2) % w);
    }
}
