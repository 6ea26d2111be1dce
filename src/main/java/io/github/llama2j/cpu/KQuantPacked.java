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
 *   qs   (rows × nb × 128 bytes, 64-byte aligned): the 128 nibble bytes, as in the file
 *   meta (rows × nb × 24 bytes): f32 d, f32 dmin, u8 sc[8], u8 m[8]   (scales and mins decoded once)
 * </pre>
 * About the bytes per weight of the file (152 against 144 per 256 values), but the kernel no longer
 * unpacks the 6-bit fields and converts the halves of every super-block for every token, its loads
 * of nibbles never cross a cache line, and the mins' term is vectorized. The same loop reads the file's
 * layout when a matrix has no copy ({@code --weight-copies=off}), with the same results bit for bit.
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
        static final int QS = 128, META = 24;

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

        /** Super-blocks [from, to) of {@code m} into the copy. */
        private static void copy(Matrix.Q4_K m, MemorySegment qs, MemorySegment meta, long from, long to) {
            MemorySegment src = m.data();
            for (long i = from; i < to; i++) {
                long b = i * Matrix.Q4_K.BLOCK_BYTES, mt = i * META;
                MemorySegment.copy(src, b + 16, qs, i * QS, QS);
                meta.set(FLOAT, mt, Float.float16ToFloat(src.get(Matrix.SHORT, b)));
                meta.set(FLOAT, mt + 4, Float.float16ToFloat(src.get(Matrix.SHORT, b + 2)));
                for (int j = 0; j < 8; j++) {
                    meta.set(BYTE, mt + 8 + j, (byte) Matrix.Q4_K.scale(src, b + 4, j));
                    meta.set(BYTE, mt + 16 + j, (byte) Matrix.Q4_K.min(src, b + 4, j));
                }
            }
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

    /**
     * Q4_K × Q8_K on the packed layout. Per super-block, four runs of 32 nibble bytes, each holding
     * sub-block 2g (low nibbles) and 2g + 1 (high). Nibble × activation products (≤ 15 · 128) of one
     * sub-block are summed in shorts over the chunks (at most 4: ≤ 4 · 15 · 127 = 7620, a pair of lanes
     * ≤ 15240), folded to ints ({@link GgmlMatmul}'s fold) and multiplied by the sub-block's 6-bit scale:
     * the exact int {@code sum_j sc_j * dot_j} in int lanes, then {@code acc += float(isum) * (d * d_x)}.
     * The mins' part as llama.cpp's AVX2 kernel forms it, lane by lane: {@code m_j * (q-sum of
     * sub-block j)} exact in int lanes (one lane per sub-block), converted and multiply-added with
     * {@code dmin * d_x} into a float accumulator, subtracted at the end (in cache, 1.14× the same
     * kernel with the mins' eight products in scalar).
     */
    static void q4_K(float[] out, Activations x, Q4K w, int r0, int r1) {
        q4_K(out, x, w.source().cols(), w.qs(), w.meta(), false, r0, r1);
    }

    /**
     * {@link #q4_K(float[], Activations, Q4K, int, int)} on the file's layout (a matrix with no copy:
     * {@code --weight-copies=off}): the same loop, hence the same results bit for bit; each super-block's f16
     * d and dmin converted and its 6-bit scales and mins unpacked (with masks, eight at a time) on every
     * product, which the copy does once at load, and its nibble loads not aligned.
     */
    static void q4_K(float[] out, Activations x, Matrix.Q4_K w, int r0, int r1) {
        q4_K(out, x, w.cols(), w.data(), w.data(), true, r0, r1);
    }

    /**
     * The Q4_K loop on either layout: the nibbles at {@code qs} and each super-block's d, dmin, scales and mins
     * at {@code meta}, both in the file's 144-byte super-blocks ({@code file}) or in {@link Q4K}'s.
     */
    private static void q4_K(float[] out, Activations x, int n, MemorySegment qs, MemorySegment meta, boolean file,
                             int r0, int r1) {
        int nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        long qsStep = file ? Matrix.Q4_K.BLOCK_BYTES : Q4K.QS, metaStep = file ? Matrix.Q4_K.BLOCK_BYTES : Q4K.META;
        // the file layout's unpacked mins, as bytes for the vector load (a 64-bit LongVector reinterpreted as bytes is
        // not intrinsified: it ran the Vector API's Java fallback, about 10x slower)
        byte[] minsOfFile = file ? new byte[8] : null;
        for (int r = r0; r < r1; r++) {
            long q = (long) r * nb * qsStep + (file ? 16 : 0), mt = (long) r * nb * metaStep;
            FloatVector acc = FloatVector.zero(F);
            FloatVector macc = FloatVector.zero(MF);
            for (int blk = 0; blk < nb; blk++, q += qsStep, mt += metaStep) {
                int j = blk * 256;
                float d, dmin;
                long scales; // sc[0..7], one byte each
                ByteVector minBytes; // m[0..7]
                if (file) {
                    d = Float.float16ToFloat(meta.get(Matrix.SHORT, mt));
                    dmin = Float.float16ToFloat(meta.get(Matrix.SHORT, mt + 2));
                    long lo = meta.get(LONG, mt + 4); // scales[0..7] of the 12 packed bytes
                    int hi = meta.get(INT, mt + 12);  // scales[8..11]
                    long sc47 = (hi & 0x0F0F0F0FL) | ((lo & 0xC0C0C0C0L) >>> 2);
                    long m47 = ((hi >>> 4) & 0x0F0F0F0FL) | (((lo >>> 32) & 0xC0C0C0C0L) >>> 2);
                    scales = (lo & 0x3F3F3F3FL) | sc47 << 32;
                    LONGS.set(minsOfFile, 0, ((lo >>> 32) & 0x3F3F3F3FL) | m47 << 32);
                    minBytes = ByteVector.fromArray(B8, minsOfFile, 0);
                } else {
                    d = meta.get(FLOAT, mt);
                    dmin = meta.get(FLOAT, mt + 4);
                    scales = meta.get(LONG, mt + 8);
                    minBytes = ByteVector.fromMemorySegment(B8, meta, mt + 16, LE);
                }
                int sc03 = (int) scales, sc47 = (int) (scales >>> 32);
                IntVector isum = IntVector.zero(I);
                for (int g = 0; g < 4; g++) {
                    long qo = q + 32L * g;
                    int xo = j + 64 * g;
                    ShortVector v = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo, LE).convertShape(NIBBLES_B2S, S, 0);
                    ShortVector plo = v.and((short) 0x0F).mul(ShortVector.fromArray(S, xq, xo));
                    ShortVector phi = (NIBBLES_ZX ? v.lanewise(VectorOperators.LSHR, 4) : v.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(ShortVector.fromArray(S, xq, xo + 32));
                    for (int k = CH; k < 32; k += CH) {
                        v = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        plo = plo.add(v.and((short) 0x0F).mul(ShortVector.fromArray(S, xq, xo + k)));
                        phi = phi.add((NIBBLES_ZX ? v.lanewise(VectorOperators.LSHR, 4) : v.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(ShortVector.fromArray(S, xq, xo + 32 + k)));
                    }
                    int scWord = g < 2 ? sc03 : sc47, shift = 16 * (g & 1);
                    int scLo = (scWord >>> shift) & 0xFF, scHi = (scWord >>> (shift + 8)) & 0xFF;
                    IntVector ilo = plo.reinterpretAsInts(), ihi = phi.reinterpretAsInts();
                    isum = isum.add(ilo.add(ilo.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scLo))
                            .add(ihi.add(ihi.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scHi));
                }
                float xdb = xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, d * xdb), acc);
                FloatVector dm = FloatVector.broadcast(MF, dmin * xdb);
                for (int p = 0; p < 8; p += ML) {
                    IntVector mv = (IntVector) minBytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML);
                    macc = ((FloatVector) mv.mul(IntVector.fromArray(MI, xs32, blk * 8 + p)).convert(VectorOperators.I2F, 0)).fma(dm, macc);
                }
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD) - macc.reduceLanes(VectorOperators.ADD);
        }
    }
}
