package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
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
 * 6-bit scales and mins, 128 nibble bytes) is split into two streams, the rows in groups of four (the last
 * group padded with zero rows), per group and super-block:
 * <pre>
 *   qs   (groups × nb × 512 bytes, 64-byte aligned): for each run g = 0..3 of 32 nibble bytes (sub-blocks 2g
 *        and 2g + 1), the four rows' 32 bytes one after another (128 bytes, two cache lines)
 *   meta (groups × nb × 96 bytes): f32 d[4], f32 dmin[4], u8 sc[4][8], u8 m[4][8]   (decoded once)
 * </pre>
 * About the bytes per weight of the file (152 against 144 per 256 values), but the kernel no longer
 * unpacks the 6-bit fields and converts the halves of every super-block for every token, its loads
 * of nibbles never cross a cache line, one load of activations serves four rows (four independent
 * chains), and the mins' term is vectorized.
 */
final class KQuantPacked {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);

    private KQuantPacked() {
    }

    /** A Q4_K matrix in the engine's layout (see the class comment): four rows per group, interleaved per super-block. */
    record Q4K(Matrix.Q4_K source, MemorySegment qs, MemorySegment meta) {
        /** Rows per group; per group and super-block, the bytes of qs and of meta. */
        static final int ROWS = 4, QS = ROWS * 128, META = ROWS * 24;

        Q4K {
            long blocks = groups(source.rows()) * (source.cols() / Matrix.Q4_K.BLOCK);
            if (qs.byteSize() != blocks * QS || meta.byteSize() != blocks * META) {
                throw new IllegalArgumentException("packed Q4_K of " + blocks + " group super-blocks: qs " + qs.byteSize()
                        + " bytes, meta " + meta.byteSize());
            }
        }

        static long groups(int rows) {
            return (rows + ROWS - 1) / ROWS;
        }

        int rows() {
            return source.rows();
        }

        int cols() {
            return source.cols();
        }

        long byteSize() {
            return qs.byteSize() + meta.byteSize();
        }

        /**
         * Where row {@code r}'s super-block {@code blk} is: its 32 nibble bytes of run {@code g} (sub-blocks 2g, 2g + 1)
         * at {@code qsAt(r, blk, nb) + 128 g}; its d, dmin, scales and mins in meta ({@link #metaAt}).
         */
        static long qsAt(int r, int blk, int nb) {
            return ((long) (r / ROWS) * nb + blk) * QS + 32L * (r % ROWS);
        }

        /**
         * The record of row {@code r}'s group and super-block {@code blk} in meta: f32 d[4], f32 dmin[4], u8 sc[4][8],
         * u8 m[4][8] (index: the row's place in its group).
         */
        static long metaAt(int r, int blk, int nb) {
            return ((long) (r / ROWS) * nb + blk) * META;
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), unmapped when the form is no longer reachable. */
        static Q4K of(Matrix.Q4_K m) {
            MemorySegment src = m.data();
            int nb = m.cols() / Matrix.Q4_K.BLOCK;
            long blocks = groups(m.rows()) * nb;
            MemorySegment qs = allocate(blocks * QS), meta = allocate(blocks * META); // zeroed: padding rows are 0
            for (int r = 0; r < m.rows(); r++) {
                int i = r % ROWS;
                for (int blk = 0; blk < nb; blk++) {
                    long b = ((long) r * nb + blk) * Matrix.Q4_K.BLOCK_BYTES, q = qsAt(r, blk, nb), mt = metaAt(r, blk, nb);
                    for (int g = 0; g < 4; g++) {
                        MemorySegment.copy(src, b + 16 + 32L * g, qs, q + 128L * g, 32);
                    }
                    meta.set(FLOAT, mt + 4L * i, Float.float16ToFloat(src.get(Matrix.SHORT, b)));
                    meta.set(FLOAT, mt + 16 + 4L * i, Float.float16ToFloat(src.get(Matrix.SHORT, b + 2)));
                    for (int j = 0; j < 8; j++) {
                        meta.set(BYTE, mt + 32 + 8L * i + j, (byte) Matrix.Q4_K.scale(src, b + 4, j));
                        meta.set(BYTE, mt + 64 + 8L * i + j, (byte) Matrix.Q4_K.min(src, b + 4, j));
                    }
                }
            }
            return new Q4K(m, qs, meta);
        }
    }

    /**
     * A Q6_K matrix widened at load time to int8 values, four rows interleaved (the last group padded with zero
     * rows), per group and super-block:
     * <pre>
     *   qs   (groups × nb × 1024 bytes, 64-byte aligned): for each piece c = 0..7 of 32 values, the four rows'
     *        32 values q − 32 (int8, −32..31, in the file's value order) one after another (128 bytes)
     *   meta (groups × nb × 80 bytes): f32 d[4], i8 scales[4][16]
     * </pre>
     * 276 bytes per 256 values against the file's 210 (1.31×): the 6-bit values are rebuilt once, not for every
     * token, and the product is {@link GgmlMatmul#q8_0Packed}'s (one activation load for four rows, four chains)
     * with the sub-blocks' int8 scales. Made only within {@link PreparedWeights}' memory rule.
     */
    record Q6K(Matrix.Q6_K source, MemorySegment qs, MemorySegment meta) {
        static final int ROWS = 4, QS = ROWS * 256, META = ROWS * (4 + 16);

        Q6K {
            long blocks = Q4K.groups(source.rows()) * (source.cols() / Matrix.Q6_K.BLOCK);
            if (qs.byteSize() != blocks * QS || meta.byteSize() != blocks * META) {
                throw new IllegalArgumentException("packed Q6_K of " + blocks + " group super-blocks: qs " + qs.byteSize()
                        + " bytes, meta " + meta.byteSize());
            }
        }

        long byteSize() {
            return qs.byteSize() + meta.byteSize();
        }

        /** Bytes {@link #of} allocates for {@code m}. */
        static long bytes(Matrix.Q6_K m) {
            return Q4K.groups(m.rows()) * (m.cols() / Matrix.Q6_K.BLOCK) * (QS + META);
        }

        /** Row {@code r}'s value k (0..255) of super-block {@code blk} in qs. */
        static long qsAt(int r, int blk, int nb, int k) {
            return ((long) (r / ROWS) * nb + blk) * QS + 128L * (k / 32) + 32L * (r % ROWS) + k % 32;
        }

        /** Repacks {@code m} into private memory ({@link #allocate}), its groups split over {@code parallel}. */
        static Q6K of(Matrix.Q6_K m, Parallel parallel) {
            MemorySegment src = m.data();
            int nb = m.cols() / Matrix.Q6_K.BLOCK, rows = m.rows();
            long blocks = Q4K.groups(rows) * nb;
            MemorySegment qs = allocate(blocks * QS), meta = allocate(blocks * META); // zeroed: padding rows are 0
            parallel.forRange((int) Q4K.groups(rows), (g0, g1) -> {
                byte[] blockBytes = new byte[Matrix.Q6_K.BLOCK_BYTES], q = new byte[Matrix.Q6_K.BLOCK];
                for (int r = g0 * ROWS; r < Math.min(g1 * ROWS, rows); r++) {
                    int i = r % ROWS;
                    for (int blk = 0; blk < nb; blk++) {
                        long b = ((long) r * nb + blk) * Matrix.Q6_K.BLOCK_BYTES, mt = ((long) (r / ROWS) * nb + blk) * META;
                        MemorySegment.copy(src, BYTE, b, blockBytes, 0, Matrix.Q6_K.BLOCK_BYTES);
                        for (int k = 0; k < Matrix.Q6_K.BLOCK; k++) { // ggml's dequantize_row_q6_K order
                            int h = k / 128, c = k % 128 / 32, l = k % 32;
                            int lo = blockBytes[64 * h + l + 32 * (c % 2)] & 0xFF;
                            int hi = (blockBytes[128 + 32 * h + l] >> (2 * c)) & 3;
                            q[k] = (byte) (((c < 2 ? lo & 0xF : lo >> 4) | hi << 4) - 32);
                        }
                        for (int k = 0; k < Matrix.Q6_K.BLOCK; k += 32) {
                            MemorySegment.copy(q, k, qs, BYTE, qsAt(r, blk, nb, k), 32);
                        }
                        meta.set(FLOAT, mt + 4L * i, Float.float16ToFloat(src.get(Matrix.SHORT, b + 208)));
                        MemorySegment.copy(blockBytes, 192, meta, BYTE, mt + 16 + 16L * i, 16);
                    }
                }
            });
            return new Q6K(m, qs, meta);
        }
    }

    /**
     * {@code size} zero bytes of private memory, as a mapping: a private (copy-on-write) map of a sparse temporary
     * file, deleted at once, so the pages written are anonymous memory and the file never holds data.
     *
     * <p>Why a mapping and not {@code Arena.allocate}: the kernels' loads are JDK code shared by every caller, and
     * C2 specializes it for the segment classes it has seen. With the file's mapped segments and native ones both
     * reaching the kernels, the file-layout Q4_K kernel ran at 0.81x in cache (loaded machine,
     * docs/measurements/2026-12-03-k-quants.md); with every segment a mapped one, nothing changed.
     */
    static MemorySegment allocate(long size) {
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
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        MemorySegment qs = w.qs(), meta = w.meta();
        int grp1 = (r1 + Q4K.ROWS - 1) / Q4K.ROWS;
        for (int grp = r0 / Q4K.ROWS; grp < grp1; grp++) {
            long q = (long) grp * nb * Q4K.QS, mt = (long) grp * nb * Q4K.META;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            FloatVector m0 = FloatVector.zero(MF), m1 = m0, m2 = m0, m3 = m0;
            for (int blk = 0; blk < nb; blk++, q += Q4K.QS, mt += Q4K.META) {
                int j = blk * 256;
                // each row's sc[0..7], one byte each, read as one long before the loop (see the measurements page)
                long sc0 = meta.get(LONG, mt + 32), sc1 = meta.get(LONG, mt + 40), sc2 = meta.get(LONG, mt + 48), sc3 = meta.get(LONG, mt + 56);
                IntVector i0 = IntVector.zero(I), i1 = i0, i2 = i0, i3 = i0;
                for (int g = 0; g < 4; g++) {
                    long qo = q + 128L * g;
                    int xo = j + 64 * g;
                    // the four rows' short sums of sub-blocks 2g (low nibbles) and 2g + 1 (high); one chunk at 512 bits.
                    // (One loop from k = 0 for every width rather than the first chunk written out: the method must
                    // stay small enough for C1, or it is never compiled by C2 in a normal run; see the measurements.)
                    ShortVector l0 = ShortVector.zero(S), h0 = l0, l1 = l0, h1 = l0, l2 = l0, h2 = l0, l3 = l0, h3 = l0;
                    for (int k = 0; k < 32; k += CH) {
                        ShortVector xl = ShortVector.fromArray(S, xq, xo + k), xh = ShortVector.fromArray(S, xq, xo + 32 + k);
                        ShortVector v0 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        ShortVector v1 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 32 + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        ShortVector v2 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 64 + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        ShortVector v3 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 96 + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        l0 = l0.add(v0.and((short) 0x0F).mul(xl));
                        h0 = h0.add((NIBBLES_ZX ? v0.lanewise(VectorOperators.LSHR, 4) : v0.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh));
                        l1 = l1.add(v1.and((short) 0x0F).mul(xl));
                        h1 = h1.add((NIBBLES_ZX ? v1.lanewise(VectorOperators.LSHR, 4) : v1.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh));
                        l2 = l2.add(v2.and((short) 0x0F).mul(xl));
                        h2 = h2.add((NIBBLES_ZX ? v2.lanewise(VectorOperators.LSHR, 4) : v2.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh));
                        l3 = l3.add(v3.and((short) 0x0F).mul(xl));
                        h3 = h3.add((NIBBLES_ZX ? v3.lanewise(VectorOperators.LSHR, 4) : v3.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh));
                    }
                    int shift = 16 * g; // the bytes of sub-blocks 2g and 2g + 1
                    int w0 = (int) (sc0 >>> shift), w1 = (int) (sc1 >>> shift), w2 = (int) (sc2 >>> shift), w3 = (int) (sc3 >>> shift);
                    IntVector p0 = l0.reinterpretAsInts(), q0 = h0.reinterpretAsInts();
                    i0 = i0.add(p0.add(p0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(w0 & 0xFF))
                            .add(q0.add(q0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul((w0 >>> 8) & 0xFF));
                    IntVector p1 = l1.reinterpretAsInts(), q1 = h1.reinterpretAsInts();
                    i1 = i1.add(p1.add(p1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(w1 & 0xFF))
                            .add(q1.add(q1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul((w1 >>> 8) & 0xFF));
                    IntVector p2 = l2.reinterpretAsInts(), q2 = h2.reinterpretAsInts();
                    i2 = i2.add(p2.add(p2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(w2 & 0xFF))
                            .add(q2.add(q2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul((w2 >>> 8) & 0xFF));
                    IntVector p3 = l3.reinterpretAsInts(), q3 = h3.reinterpretAsInts();
                    i3 = i3.add(p3.add(p3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(w3 & 0xFF))
                            .add(q3.add(q3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul((w3 >>> 8) & 0xFF));
                }
                float xdb = xd[blk];
                a0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt) * xdb), a0);
                a1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt + 4) * xdb), a1);
                a2 = ((FloatVector) i2.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt + 8) * xdb), a2);
                a3 = ((FloatVector) i3.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt + 12) * xdb), a3);
                for (int p = 0; p < 8; p += ML) {
                    IntVector xs = IntVector.fromArray(MI, xs32, blk * 8 + p);
                    m0 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B8, meta, mt + 64, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML)).mul(xs).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(MF, meta.get(FLOAT, mt + 16) * xdb), m0);
                    m1 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B8, meta, mt + 72, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML)).mul(xs).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(MF, meta.get(FLOAT, mt + 20) * xdb), m1);
                    m2 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B8, meta, mt + 80, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML)).mul(xs).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(MF, meta.get(FLOAT, mt + 24) * xdb), m2);
                    m3 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B8, meta, mt + 88, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, MI, p / ML)).mul(xs).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(MF, meta.get(FLOAT, mt + 28) * xdb), m3);
                }
            }
            int r = grp * Q4K.ROWS;
            float f0 = a0.reduceLanes(VectorOperators.ADD) - m0.reduceLanes(VectorOperators.ADD);
            float f1 = a1.reduceLanes(VectorOperators.ADD) - m1.reduceLanes(VectorOperators.ADD);
            float f2 = a2.reduceLanes(VectorOperators.ADD) - m2.reduceLanes(VectorOperators.ADD);
            float f3 = a3.reduceLanes(VectorOperators.ADD) - m3.reduceLanes(VectorOperators.ADD);
            GgmlMatmul.store4(out, r, f0, f1, f2, f3, r0, r1);
        }
    }


    // ------------------------------------------------------------------ Q6_K × Q8_K

    /**
     * Q6_K × Q8_K on {@link Q6K}: per super-block and row, the exact int {@code sum_j scale_j · dot_j(q − 32, q8)} in
     * int lanes (int8 × int8 products in 16-bit lanes, folded to ints as {@link GgmlMatmul} does: neighbouring
     * values are in the same sub-block of 16, a pair ≤ 2 · 32 · 128 = 8192; then times the sub-block's scale), then
     * {@code acc += float(isum) · (d · d_x)} lane by lane: {@link GgmlMatmul#q6_K}'s integers and float order per
     * row. Four rows per pass; rows [r0, r1) are written (a group that straddles r0 or r1 is computed whole).
     * Its group and block loops have the shape of {@link #q4_K}'s on purpose: a shared loop taking the dot as a
     * lambda boxes the vectors ({@link GgmlMatmul}'s class comment).
     */
    static void q6_K(float[] out, Activations x, Q6K w, int r0, int r1) {
        int n = w.source().cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        MemorySegment qs = w.qs(), meta = w.meta();
        int grp1 = (r1 + Q6K.ROWS - 1) / Q6K.ROWS;
        for (int grp = r0 / Q6K.ROWS; grp < grp1; grp++) {
            long q = (long) grp * nb * Q6K.QS, mt = (long) grp * nb * Q6K.META;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int blk = 0; blk < nb; blk++, q += Q6K.QS, mt += Q6K.META) {
                int j = blk * 256;
                // at 512 bits: each row's 16 scales in the 16 int lanes, each piece's pair of scales one permute
                IntVector s0 = null, s1 = null, s2 = null, s3 = null;
                if (CH == 32) {
                    s0 = (IntVector) ByteVector.fromMemorySegment(SCALE_BYTES, meta, mt + 16, LE).convertShape(VectorOperators.B2I, I, 0);
                    s1 = (IntVector) ByteVector.fromMemorySegment(SCALE_BYTES, meta, mt + 32, LE).convertShape(VectorOperators.B2I, I, 0);
                    s2 = (IntVector) ByteVector.fromMemorySegment(SCALE_BYTES, meta, mt + 48, LE).convertShape(VectorOperators.B2I, I, 0);
                    s3 = (IntVector) ByteVector.fromMemorySegment(SCALE_BYTES, meta, mt + 64, LE).convertShape(VectorOperators.B2I, I, 0);
                }
                IntVector i0 = IntVector.zero(I), i1 = i0, i2 = i0, i3 = i0;
                for (int c = 0; c < 8; c++) {
                    for (int k = 0; k < 32; k += CH) {
                        long qo = q + 128L * c + k;
                        ShortVector xv = ShortVector.fromArray(S, xq, j + 32 * c + k);
                        IntVector p0 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, qo, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                        IntVector p1 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 32, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                        IntVector p2 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 64, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                        IntVector p3 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 96, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                        IntVector c0, c1, c2, c3;
                        if (CH == 32) { // lanes t < 8: sub-block 2c, t >= 8: 2c + 1
                            VectorShuffle<Integer> pair = PAIRS[c];
                            c0 = s0.rearrange(pair);
                            c1 = s1.rearrange(pair);
                            c2 = s2.rearrange(pair);
                            c3 = s3.rearrange(pair);
                        } else { // one sub-block per chunk
                            long sc = mt + 16 + (32 * c + k) / 16;
                            c0 = IntVector.broadcast(I, meta.get(BYTE, sc));
                            c1 = IntVector.broadcast(I, meta.get(BYTE, sc + 16));
                            c2 = IntVector.broadcast(I, meta.get(BYTE, sc + 32));
                            c3 = IntVector.broadcast(I, meta.get(BYTE, sc + 48));
                        }
                        i0 = i0.add(p0.add(p0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c0));
                        i1 = i1.add(p1.add(p1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c1));
                        i2 = i2.add(p2.add(p2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c2));
                        i3 = i3.add(p3.add(p3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c3));
                    }
                }
                float xdb = xd[blk];
                a0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt) * xdb), a0);
                a1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt + 4) * xdb), a1);
                a2 = ((FloatVector) i2.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt + 8) * xdb), a2);
                a3 = ((FloatVector) i3.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, meta.get(FLOAT, mt + 12) * xdb), a3);
            }
            int r = grp * Q6K.ROWS;
            float f0 = a0.reduceLanes(VectorOperators.ADD), f1 = a1.reduceLanes(VectorOperators.ADD);
            float f2 = a2.reduceLanes(VectorOperators.ADD), f3 = a3.reduceLanes(VectorOperators.ADD);
            GgmlMatmul.store4(out, r, f0, f1, f2, f3, r0, r1);
        }
    }

    private static final VectorSpecies<Byte> SCALE_BYTES = ByteVector.SPECIES_128;
    /** At 512 bits, piece c's scales: int lanes t < 8 take lane 2c, lanes t >= 8 lane 2c + 1 (below 512: unused). */
    @SuppressWarnings("unchecked")
    private static final VectorShuffle<Integer>[] PAIRS = new VectorShuffle[8];

    static {
        for (int c = 0; c < 8; c++) {
            int m = 2 * c;
            PAIRS[c] = VectorShuffle.fromOp(I, t -> CH == 32 ? m + (t >= 8 ? 1 : 0) : 0);
        }
    }
}
