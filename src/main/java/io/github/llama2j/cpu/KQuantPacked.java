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
                    ShortVector xl = ShortVector.fromArray(S, xq, xo), xh = ShortVector.fromArray(S, xq, xo + 32);
                    ShortVector v0 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo, LE).convertShape(NIBBLES_B2S, S, 0);
                    ShortVector v1 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 32, LE).convertShape(NIBBLES_B2S, S, 0);
                    ShortVector v2 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 64, LE).convertShape(NIBBLES_B2S, S, 0);
                    ShortVector v3 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 96, LE).convertShape(NIBBLES_B2S, S, 0);
                    ShortVector l0 = v0.and((short) 0x0F).mul(xl), h0 = (NIBBLES_ZX ? v0.lanewise(VectorOperators.LSHR, 4) : v0.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh);
                    ShortVector l1 = v1.and((short) 0x0F).mul(xl), h1 = (NIBBLES_ZX ? v1.lanewise(VectorOperators.LSHR, 4) : v1.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh);
                    ShortVector l2 = v2.and((short) 0x0F).mul(xl), h2 = (NIBBLES_ZX ? v2.lanewise(VectorOperators.LSHR, 4) : v2.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh);
                    ShortVector l3 = v3.and((short) 0x0F).mul(xl), h3 = (NIBBLES_ZX ? v3.lanewise(VectorOperators.LSHR, 4) : v3.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F)).mul(xh);
                    for (int k = CH; k < 32; k += CH) { // below 512 bits: the run's other chunks
                        xl = ShortVector.fromArray(S, xq, xo + k);
                        xh = ShortVector.fromArray(S, xq, xo + 32 + k);
                        v0 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        v1 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 32 + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        v2 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 64 + k, LE).convertShape(NIBBLES_B2S, S, 0);
                        v3 = (ShortVector) ByteVector.fromMemorySegment(BS, qs, qo + 96 + k, LE).convertShape(NIBBLES_B2S, S, 0);
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
            if (r >= r0 && r + 3 < r1) {
                out[r] = f0;
                out[r + 1] = f1;
                out[r + 2] = f2;
                out[r + 3] = f3;
            } else { // a group at an end of the range (or the padded last group): its rows in [r0, r1) only
                GgmlMatmul.store(out, r, f0, r0, r1);
                GgmlMatmul.store(out, r + 1, f1, r0, r1);
                GgmlMatmul.store(out, r + 2, f2, r0, r1);
                GgmlMatmul.store(out, r + 3, f3, r0, r1);
            }
        }
    }

}
