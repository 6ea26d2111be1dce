package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Vector API matmuls for GGML's tensor types, at the preferred vector width (512, 256 or 128 bits:
 * every species below is derived from it, so the same code runs on AVX-512, AVX2 and NEON).
 *
 * <p>The quantized products follow llama.cpp's arithmetic: per block, an exact integer dot of the
 * weights' small integers with the activations' int8 values (held as shorts), then a float
 * multiply by the two scales. The integer dot is formed in 16-bit lanes (an int8 × int8 product
 * fits, and so do the sums noted at each kernel), widened to 32-bit lanes (where both halves of an
 * int lane belong to the same scale) by reading the short vector as ints and adding its two halves
 * in three operations, {@code (p + (p << 16)) >> 16}: the top half of {@code p + (p << 16)} is
 * {@code hi + lo} modulo 2^16, exact because every pair sum here stays below 2^15 in magnitude (the
 * activations' int8 values are within ±127, so a Q8_0 pair is at most 2 · 128 · 127 = 32512). With
 * zero-extended nibble loads, in cache, against the previous four-operation
 * {@code (p >> 16) + ((p << 16) >> 16)} (per-round median ratios, loaded machine,
 * docs/measurements/2026-12-02-gguf-kernels.md): Q8_0 1.09×, Q4_K 1.20×, Q6_K 1.07× at 512 bits;
 * 1.32×, 1.06×, 1.07× at 256. Each block's int vector is
 * converted to float and multiply-added into a float accumulator with the block's scale, lane by
 * lane (as llama.cpp's x86 code does): one horizontal sum per row, none per block. That differs
 * from the scalar reference only in the order of the float additions.
 *
 * <p>Measured and not kept: summing each block's int8 products in float lanes (the weights widened
 * straight to float, the activations held as floats: exact, since every block sum stays below
 * 2^24) was 0.85× in cache on Q8_0, 0.73× on Q4_K and 0.63× on Q6_K at 512 bits, and 0.75× on Q8_0 at
 * 256; two rows per pass and two or four accumulators per row were 0.8–0.9× in cache (on the file's layout;
 * four rows per pass from an interleaved copy is {@link #q8_0Packed}).
 *
 * <p>F16 and BF16 weights are widened to float in the lanes (bit operations; no half-float vector
 * type is needed) and multiplied with the activations rounded to F16/BF16, products exact, summed
 * in float with FMA.
 *
 * <p>The loops are written out without helpers that return vectors: a vector returned by a method
 * C2 does not inline gets boxed, which costs more than the arithmetic. That is also why each type
 * has its own row and block loop, alike in shape (walk the blocks, integer dot, scale, FMA, one
 * horizontal sum) rather than one loop taking the dot as a lambda (see VectorKernels' note on
 * species passed as arguments: 8x slower there).
 */
final class GgmlMatmul {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final java.lang.foreign.ValueLayout.OfLong LONG = java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);
    private static final java.lang.foreign.ValueLayout.OfInt INT = java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);

    /** Floats and ints of the preferred width: L lanes (16, 8 or 4). */
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    static final int L = F.length();
    /** int8 dots: 2L bytes (half the width) widened to 2L shorts (the full width), then to two int vectors. */
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Byte> BS = species(ByteVector.SPECIES_PREFERRED, F.vectorBitSize() / 2);
    private static final int CH = S.length();
    /** Q4_0 and IQ4: the 16 nibble bytes of a block, CQ at a time (16, or 8 at 128 bits), widened to CQ shorts. */
    private static final int CQ = Math.min(16, CH);
    private static final VectorSpecies<Byte> BQ = species(ByteVector.SPECIES_PREFERRED, CQ * Byte.SIZE);
    private static final VectorSpecies<Short> SQ = species(ShortVector.SPECIES_PREFERRED, CQ * Short.SIZE);
    /**
     * Whether CQ shorts are as wide as an int vector (256 and 128 bits): their pair sums then go into the int lanes by
     * shifts; at 512 bits they are half as wide and widen into the int lanes in one step.
     */
    private static final boolean SHORTS_FILL_INTS = SQ.vectorBitSize() == I.vectorBitSize();

    private GgmlMatmul() {
    }

    @SuppressWarnings("unchecked")
    private static <E> VectorSpecies<E> species(VectorSpecies<E> like, int bits) {
        return (VectorSpecies<E>) like.withShape(VectorShape.forBitSize(bits));
    }

    // ------------------------------------------------------------------ Q8_0 × Q8_0

    /**
     * Per block of 32: 32 / 2L chunks of int8 weights widened to shorts times the activations
     * (|w·x| ≤ 128 · 127, one product per short lane), widened to ints and summed; then
     * {@code acc += float(isum) * (d_w * d_x)} lane-wise.
     */
    static void q8_0(float[] out, Activations x, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 34) {
                int j = blk * 32;
                IntVector p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2, LE).convertShape(VectorOperators.B2S, S, 0))
                        .mul(ShortVector.fromArray(S, xq, j)).reinterpretAsInts();
                IntVector isum = p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE).convertShape(VectorOperators.B2S, S, 0))
                            .mul(ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    isum = isum.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
        }
    }

    /**
     * {@link #q8_0} on a {@link PackedQ8_0}: the same integers, scales and float order per row (so the same
     * results), four rows per pass. Each chunk of activations is loaded once for the four rows,
     * the four rows' weights come from one aligned stream, the scales are floats (no F16 conversion per
     * block), and the four accumulators are independent chains. Rows [r0, r1) are written; a group that
     * straddles r0 or r1 is computed whole and only its rows in the range are stored.
     *
     * <p>Against {@link #q8_0} on the same matrices (per-round median ratios in thread CPU time, loaded
     * machine, docs/measurements/2026-12-03-q8-0-gguf.md): 1.51× in cache and 1.92× from DRAM at 512
     * bits, 1.56× in cache at 256, 1.37× at 128. The single-row form of the same layout (no F16 scale
     * path, aligned values, one chain) was 1.24× and 1.45×: most of the gain is the four rows.
     */
    static void q8_0Packed(float[] out, Activations x, PackedQ8_0 w, int r0, int r1) {
        int n = w.source().cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales, ds = w.scales();
        MemorySegment qs = w.quants();
        int g1 = (r1 + PackedQ8_0.ROWS - 1) / PackedQ8_0.ROWS;
        for (int g = r0 / PackedQ8_0.ROWS; g < g1; g++) {
            long b = (long) g * PackedQ8_0.ROWS * n;
            int s = g * nb * PackedQ8_0.ROWS;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int blk = 0; blk < nb; blk++, b += 4 * 32, s += 4) {
                int j = blk * 32;
                float dx = xd[blk];
                // below 512 bits two chunks' products are added in shorts before they are widened (|w·x| <= 128 · 127,
                // so a sum of two is at most 32512): one widening per two chunks, the same integers in the same lanes
                ShortVector xv = ShortVector.fromArray(S, xq, j);
                ShortVector q0 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv);
                ShortVector q1 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv);
                ShortVector q2 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv);
                ShortVector q3 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv);
                if (CH < 32) {
                    xv = ShortVector.fromArray(S, xq, j + CH);
                    q0 = q0.add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv));
                    q1 = q1.add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32 + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv));
                    q2 = q2.add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64 + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv));
                    q3 = q3.add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96 + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv));
                }
                // each int lane: its two short lanes' sum (sign-extended separately, as a pair sum may exceed a short;
                // at 512 bits one product each, so their sum fits one and the fold takes one operation less)
                IntVector i0 = q0.reinterpretAsInts(), i1 = q1.reinterpretAsInts(), i2 = q2.reinterpretAsInts(), i3 = q3.reinterpretAsInts();
                i0 = CH < 32 ? i0.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(i0.lanewise(VectorOperators.ASHR, 16))
                        : i0.add(i0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i1 = CH < 32 ? i1.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(i1.lanewise(VectorOperators.ASHR, 16))
                        : i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i2 = CH < 32 ? i2.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(i2.lanewise(VectorOperators.ASHR, 16))
                        : i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i3 = CH < 32 ? i3.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(i3.lanewise(VectorOperators.ASHR, 16))
                        : i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = 2 * CH; k < 32; k += 2 * CH) { // 128 bits: the block's other two chunks
                    xv = ShortVector.fromArray(S, xq, j + k);
                    ShortVector xw = ShortVector.fromArray(S, xq, j + k + CH);
                    IntVector p0 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv)
                            .add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + k + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xw)).reinterpretAsInts();
                    IntVector p1 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv)
                            .add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32 + k + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xw)).reinterpretAsInts();
                    IntVector p2 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv)
                            .add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64 + k + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xw)).reinterpretAsInts();
                    IntVector p3 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv)
                            .add(((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96 + k + CH, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xw)).reinterpretAsInts();
                    i0 = i0.add(p0.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)).add(p0.lanewise(VectorOperators.ASHR, 16));
                    i1 = i1.add(p1.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)).add(p1.lanewise(VectorOperators.ASHR, 16));
                    i2 = i2.add(p2.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)).add(p2.lanewise(VectorOperators.ASHR, 16));
                    i3 = i3.add(p3.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)).add(p3.lanewise(VectorOperators.ASHR, 16));
                }
                a0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[s] * dx), a0);
                a1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[s + 1] * dx), a1);
                a2 = ((FloatVector) i2.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[s + 2] * dx), a2);
                a3 = ((FloatVector) i3.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[s + 3] * dx), a3);
            }
            int r = g * PackedQ8_0.ROWS;
            FloatVector a0Sum = a0; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P2)); }
            float f0 = (a0Sum.lane(0) + a0Sum.lane(2)) + (a0Sum.lane(1) + a0Sum.lane(3));
            FloatVector a1Sum = a1; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P2)); }
            float f1 = (a1Sum.lane(0) + a1Sum.lane(2)) + (a1Sum.lane(1) + a1Sum.lane(3));
            FloatVector a2Sum = a2; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P2)); }
            float f2 = (a2Sum.lane(0) + a2Sum.lane(2)) + (a2Sum.lane(1) + a2Sum.lane(3));
            FloatVector a3Sum = a3; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P2)); }
            float f3 = (a3Sum.lane(0) + a3Sum.lane(2)) + (a3Sum.lane(1) + a3Sum.lane(3));
            if (r >= r0 && r + 3 < r1) {
                out[r] = f0;
                out[r + 1] = f1;
                out[r + 2] = f2;
                out[r + 3] = f3;
            } else { // a group at an end of the range (or the padded last group): its rows in [r0, r1) only
                store(out, r, f0, r0, r1);
                store(out, r + 1, f1, r0, r1);
                store(out, r + 2, f2, r0, r1);
                store(out, r + 3, f3, r0, r1);
            }
        }
    }

    /** out[r] = v if r is in [r0, r1) (shared with {@link Q8Matmul#matmulPacked}). */
    static void store(float[] out, int r, float v, int r0, int r1) {
        if (r >= r0 && r < r1) {
            out[r] = v;
        }
    }

    // ------------------------------------------------------------------ Q4_0 × Q8_0

    /**
     * Per block of 32: the 16 nibble bytes widened to shorts; low nibbles - 8 times activations
     * 0..15, high nibbles - 8 times activations 16..31, added in shorts (|sum| ≤ 2 · 8 · 128); at 512 bits
     * widened to ints, at 256 and 128 bits (the shorts as wide as an int vector) each int lane takes the sum of its
     * two shorts ({@code (v + (v << 16)) >> 16}: at most 4096 in magnitude) instead of widening them in two parts,
     * which with AVX2 is a long permute sequence (docs/measurements/2026-12-07-iq4-kernel.md); then
     * {@code acc += float(isum) * (d_w * d_x)} lane-wise. The file's layout, read where the load-time copy
     * ({@link PackedQ4_0}) is not made.
     */
    static void q4_0(float[] out, Activations x, Matrix.Q4_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q4_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 18) {
                int j = blk * 32;
                IntVector isum = IntVector.zero(I);
                for (int c = 0; c < 16; c += CQ) {
                    ShortVector q = (ShortVector) ByteVector.fromMemorySegment(BQ, data, b + 2 + c, LE)
                            .convertShape(VectorOperators.B2S, SQ, 0);
                    ShortVector lo = q.and((short) 0x0F).sub((short) 8);
                    ShortVector hi = q.lanewise(VectorOperators.ASHR, 4).and((short) 0x0F).sub((short) 8);
                    ShortVector p = lo.mul(ShortVector.fromArray(SQ, xq, j + c)).add(hi.mul(ShortVector.fromArray(SQ, xq, j + 16 + c)));
                    if (SHORTS_FILL_INTS) { // (a constant: C2 keeps one branch)
                        IntVector v = p.reinterpretAsInts();
                        isum = isum.add(v.add(v.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    } else {
                        isum = isum.add((IntVector) p.convertShape(VectorOperators.S2I, I, 0));
                    }
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
        }
    }

    // ------------------------------------------------------------------ Q5_1 × Q8_1 (the file's layout; the copy's: q5_1Packed)

    /** {@link #q5_1}'s nibble bytes: L of them per chunk (at least 8: at 128 bits a chunk of 8 is two parts of 4). */
    private static final VectorSpecies<Byte> B5 = species(ByteVector.SPECIES_PREFERRED, Math.max(64, L * Byte.SIZE));
    private static final int B5_PARTS = B5.length() / L;
    /** Lane k of a chunk: k, the shift that brings bit k (and bit k + 16) of a block's word of fifth bits down to bit 0 (16). */
    private static final int[] LANE_INDEX = java.util.stream.IntStream.range(0, 16).toArray();

    /**
     * As llama.cpp's AVX2 ggml_vec_dot_q5_1_q8_1, one int lane per byte of nibbles. Per block of 32, chunks of L of the
     * 16 nibble bytes, byte k zero-extended into int lane k and made {@code lo_k + 2^16 hi_k}, the two 5-bit values that
     * share it (value k: the low nibble and bit k of the word qh; value k + 16: the high nibble and bit k + 16), the
     * fifth bits of a lane both at once from {@code (qh >>> k) & 0x00010001}, moved to bits 4 and 20. Read as 2L shorts
     * the values are in the order of {@link Activations#q81Pairs} (per block {@code a_0, a_16, a_1, a_17, ...}): one
     * short multiply makes 2L products, whose pairs (at most 2 · 31 · 127 = 7874) are added into the int lanes in three
     * operations ({@code (p + (p << 16)) >> 16}, as the Q8_0 kernel). Then {@code acc += float(isum) * (d_w * d_x)}
     * lane-wise; the offsets' part, {@code m_w * s_x} per block, in a float sum of its own added after the row's
     * horizontal sum, as llama.cpp does.
     */
    static void q5_1(float[] out, Activations x, Matrix.Q5_1 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xp = x.q81Pairs;
        float[] xd = x.q80Scales, xs = x.q81Sums;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q5_1.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            float summs = 0.0f;
            for (int blk = 0; blk < nb; blk++, b += Matrix.Q5_1.BLOCK_BYTES) {
                int j = blk * 32;
                IntVector qh = IntVector.broadcast(I, data.get(INT, b + Matrix.Q5_1.QH));
                IntVector isum = IntVector.zero(I);
                for (int c = 0; c < 16; c += B5.length()) {
                    ByteVector bytes = ByteVector.fromMemorySegment(B5, data, b + Matrix.Q5_1.QS + c, LE);
                    for (int part = 0; part < B5_PARTS; part++) {
                        int k = c + part * L;
                        IntVector v = (IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, part);
                        IntVector q = v.and(0x0F).or(v.and(0xF0).lanewise(VectorOperators.LSHL, 12))
                                .or(qh.lanewise(VectorOperators.LSHR, IntVector.fromArray(I, LANE_INDEX, k))
                                        .lanewise(VectorOperators.LSHL, 4).and(0x00100010));
                        IntVector p = q.reinterpretAsShorts().mul(ShortVector.fromArray(S, xp, j + 2 * k)).reinterpretAsInts();
                        isum = isum.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    }
                }
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc);
                summs += Float.float16ToFloat(data.get(Matrix.SHORT, b + Matrix.Q5_1.M)) * xs[blk];
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = ((accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3))) + summs;
        }
    }

    /** {@link #q4_0Packed}'s int lanes: the preferred width, at most 512 bits; one row per lane ({@link PackedQ4_0}). */
    private static final VectorSpecies<Integer> QI = species(IntVector.SPECIES_PREFERRED, Math.max(128, Math.min(512, I.vectorBitSize())));
    private static final VectorSpecies<Float> QF = species(FloatVector.SPECIES_PREFERRED, QI.vectorBitSize());
    /** Rows per group of {@link PackedQ4_0}: {@link #q4_0Packed}'s int lanes (16 at 512 bits, 8 at 256, 4 at 128). */
    static final int Q4_0_ROWS = QI.length();

    /**
     * {@link #q4_0} on a {@link PackedQ4_0}, one row per int lane: the same integers per block and row ({@code sum_k
     * (q_k - 8) a_k}), the float sum of each row one FMA chain over the blocks, {@code acc += float(isum) * (d_w *
     * d_x)}, in its lane (no sum across lanes; a few ulps from {@link #q4_0}, which sums a row in several lanes). A load
     * holds four bytes of each row ({@link PackedQ4_0}'s runs), taken in pairs of nibbles as the Q4_K copy's kernel
     * takes them ({@link KQuantPacked}): {@code (v >>> s) & 0x000F000F} for s = 0, 4, 8, 12 holds two nibbles
     * {@code x + 2^16 y}, and its product with {@code a_y + 2^16 a_x} (the same for every row: a broadcast,
     * {@link Activations#q40Pairs}) carries {@code x a_x + y a_y} in its upper half. Two runs' products (16 per lane)
     * are added in an int chain started at {@code 2^15 - 2^16 · 8 · (their activations' sum)} (the lower halves' sum,
     * at most 8 · 15 · 127 from 2^15, stays within 2^16; the upper half is then the runs' {@code sum (q - 8) a}, at most
     * 16 · 8 · 128 in magnitude), and shifted out. Rows [r0, r1) are written; a group that straddles r0 or r1 is
     * computed whole and only its rows in the range are stored. Written out per run (no helper returning a vector).
     */
    static void q4_0Packed(float[] out, Activations x, PackedQ4_0 w, int r0, int r1) {
        int n = w.source().cols(), nb = n / 32, run = 4 * Q4_0_ROWS;
        int[] pairs = x.q40Pairs;
        float[] xd = x.q80Scales, ds = w.scales();
        MemorySegment qs = w.nibbles();
        IntVector mask = IntVector.broadcast(QI, 0x000F000F);
        int g1 = (r1 + Q4_0_ROWS - 1) / Q4_0_ROWS;
        for (int g = r0 / Q4_0_ROWS; g < g1; g++) {
            long b = (long) g * nb * 4 * run;
            int s = g * nb * Q4_0_ROWS;
            FloatVector acc = FloatVector.zero(QF);
            for (int blk = 0; blk < nb; blk++, b += 4 * run, s += Q4_0_ROWS) {
                int p = blk * Activations.Q4_0_PAIRS;
                IntVector v = IntVector.fromMemorySegment(QI, qs, b, LE);
                IntVector t = IntVector.broadcast(QI, pairs[p + 16])
                        .add(v.and(mask).mul(pairs[p]))
                        .add(v.lanewise(VectorOperators.LSHR, 4).and(mask).mul(pairs[p + 1]))
                        .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).mul(pairs[p + 2]))
                        .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).mul(pairs[p + 3]));
                v = IntVector.fromMemorySegment(QI, qs, b + run, LE);
                t = t.add(v.and(mask).mul(pairs[p + 4]))
                        .add(v.lanewise(VectorOperators.LSHR, 4).and(mask).mul(pairs[p + 5]))
                        .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).mul(pairs[p + 6]))
                        .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).mul(pairs[p + 7]));
                IntVector isum = t.lanewise(VectorOperators.ASHR, 16);
                v = IntVector.fromMemorySegment(QI, qs, b + 2 * run, LE);
                t = IntVector.broadcast(QI, pairs[p + 17])
                        .add(v.and(mask).mul(pairs[p + 8]))
                        .add(v.lanewise(VectorOperators.LSHR, 4).and(mask).mul(pairs[p + 9]))
                        .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).mul(pairs[p + 10]))
                        .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).mul(pairs[p + 11]));
                v = IntVector.fromMemorySegment(QI, qs, b + 3 * run, LE);
                t = t.add(v.and(mask).mul(pairs[p + 12]))
                        .add(v.lanewise(VectorOperators.LSHR, 4).and(mask).mul(pairs[p + 13]))
                        .add(v.lanewise(VectorOperators.LSHR, 8).and(mask).mul(pairs[p + 14]))
                        .add(v.lanewise(VectorOperators.LSHR, 12).and(mask).mul(pairs[p + 15]));
                isum = isum.add(t.lanewise(VectorOperators.ASHR, 16));
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(QF, ds, s).mul(xd[blk]), acc);
            }
            int r = g * Q4_0_ROWS;
            if (r >= r0 && r + Q4_0_ROWS <= r1) {
                acc.intoArray(out, r);
            } else { // a group at an end of the range (or the padded last group): its rows in [r0, r1) only
                for (int i = 0; i < Q4_0_ROWS; i++) {
                    store(out, r + i, acc.lane(i), r0, r1);
                }
            }
        }
    }

    // ------------------------------------------------------------------ Q2_K × Q8_K on the file's layout

    /**
     * {@link #q3_K}'s loop on Q2_K's super-block, whose 2-bit values lie as Q3_K's low bits do (per half of 128: value
     * l + 32 i from bits 2i..2i+1 of byte l of the half's 32 qs bytes, sub-block 2i + l / 16 of the half), with no
     * high bit and unsigned values: q_i in [0, 3] times activations l + 32 i (|q·x| ≤ 3 · 128, a pair ≤ 768), widened
     * to ints by int-lane halves and multiplied by their sub-block's 4-bit scale (the low nibbles of scales[16], at 512
     * bits widened once per super-block to the 16 int lanes and permuted per chunk as Q6_K's). Then
     * {@code acc += float(isum) * (d_x * d_w)} lane-wise; the mins' part, {@code summs = sum_j m_j * bsum_j} over the
     * sixteen high nibbles and Q8_K's sums of 16, an exact int per super-block, is summed as
     * {@code mins += (d_x * dmin_w) * summs} beside it and subtracted once per row. A loop of its own beside
     * {@link #q3_K}'s, which it copies but for the value rebuild, the scales and the mins (not measured as one loop):
     * the shared tail as a method would take and return vectors, which C2 boxes when it does not inline the call (a
     * K-quant kernel's part as a method ran at 0.03×: {@link KQuantPacked#q4_K}'s comment), and one loop with a type
     * flag would carry both bodies, as {@link #q3_K}'s comment says of Q6_K's.
     */
    static void q2_K(float[] out, Activations x, Matrix.Q2_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xsum = x.q8KSums;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q2_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            float mins = 0.0f;
            for (int blk = 0; blk < nb; blk++, b += Matrix.Q2_K.BLOCK_BYTES) {
                long lo = data.get(LONG, b + Matrix.Q2_K.SCALES), hi = data.get(LONG, b + Matrix.Q2_K.SCALES + 8);
                int summs = 0;
                for (int j = 0; j < 8; j++) {
                    summs += (int) (lo >>> (8 * j + 4) & 0x0F) * xsum[16 * blk + j] + (int) (hi >>> (8 * j + 4) & 0x0F) * xsum[16 * blk + 8 + j];
                }
                long scalesLow = lo & 0x0F0F0F0F0F0F0F0FL, scalesHigh = hi & 0x0F0F0F0F0F0F0F0FL;
                // at 512 bits: the 16 scales in the 16 int lanes, permuted into each chunk's pair below (as Q6_K)
                IntVector scales = CH == 32 ? (IntVector) LongVector.zero(LongVector.SPECIES_128).withLane(0, scalesLow)
                        .withLane(1, scalesHigh).reinterpretAsBytes().convertShape(VectorOperators.B2I, I, 0) : null;
                IntVector isum = IntVector.zero(I);
                for (int half = 0; half < 2; half++) {
                    long qs = b + Matrix.Q2_K.QS + 32L * half;
                    long halfScales = half == 0 ? scalesLow : scalesHigh;
                    int xo = blk * 256 + 128 * half;
                    for (int k = 0; k < 32; k += CH) {
                        ShortVector a = (ShortVector) ByteVector.fromMemorySegment(BS, data, qs + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector q1 = a.and((short) 3);
                        ShortVector q2 = a.lanewise(VectorOperators.LSHR, 2).and((short) 3);
                        ShortVector q3 = a.lanewise(VectorOperators.LSHR, 4).and((short) 3);
                        ShortVector q4 = a.lanewise(VectorOperators.LSHR, 6);
                        IntVector i1 = q1.mul(ShortVector.fromArray(S, xq, xo + k)).reinterpretAsInts();
                        IntVector i2 = q2.mul(ShortVector.fromArray(S, xq, xo + 32 + k)).reinterpretAsInts();
                        IntVector i3 = q3.mul(ShortVector.fromArray(S, xq, xo + 64 + k)).reinterpretAsInts();
                        IntVector i4 = q4.mul(ShortVector.fromArray(S, xq, xo + 96 + k)).reinterpretAsInts();
                        IntVector c1, c2, c3, c4;
                        if (CH == 32) {
                            c1 = scales.rearrange(half == 0 ? PAIR_0 : PAIR_8);
                            c2 = scales.rearrange(half == 0 ? PAIR_2 : PAIR_10);
                            c3 = scales.rearrange(half == 0 ? PAIR_4 : PAIR_12);
                            c4 = scales.rearrange(half == 0 ? PAIR_6 : PAIR_14);
                        } else { // the chunk's sub-blocks of the half: 2i + k / 16
                            int at = 8 * (k / 16);
                            c1 = IntVector.broadcast(I, (int) (halfScales >>> at) & 0x0F);
                            c2 = IntVector.broadcast(I, (int) (halfScales >>> (at + 16)) & 0x0F);
                            c3 = IntVector.broadcast(I, (int) (halfScales >>> (at + 32)) & 0x0F);
                            c4 = IntVector.broadcast(I, (int) (halfScales >>> (at + 48)) & 0x0F);
                        }
                        isum = isum.add(i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c1))
                                .add(i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c2))
                                .add(i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c3))
                                .add(i4.add(i4.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c4));
                    }
                }
                float xdb = xd[blk];
                float dall = xdb * Float.float16ToFloat(data.get(Matrix.SHORT, b + Matrix.Q2_K.D));
                mins += xdb * Float.float16ToFloat(data.get(Matrix.SHORT, b + Matrix.Q2_K.DMIN)) * summs;
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, dall), acc);
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = ((accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3))) - mins;
        }
    }

    // ------------------------------------------------------------------ IQ4_NL × Q8_0 and IQ4_XS × Q8_K on the file's layout

    /** The 16 IQ4 levels in one 128-bit vector, the table {@code selectFrom} looks the nibbles up in. */
    static final VectorSpecies<Byte> B16 = ByteVector.SPECIES_128;
    /** The same 16 nibble bytes as two longs: their high nibbles shifted down (x86 has no byte shift). */
    static final VectorSpecies<Long> L16 = LongVector.SPECIES_128;
    static final byte[] IQ4_LEVELS = Matrix.IQ4_NL.values();
    /** IQ4: the 16 looked-up bytes of a half block as shorts, CQ at a time, IQ_PARTS parts (1, or 2 at 128 bits). */
    private static final int IQ_PARTS = 16 / CQ;

    /** IQ4_NL × Q8_0: {@link #iq4} with blocks of one sub-block and no sub-block scales. */
    static void iq4_nl(float[] out, Activations x, Matrix.IQ4_NL w, int r0, int r1) {
        iq4(out, x.q80, x.q80Scales, w.data(), w.cols(), Matrix.IQ4_NL.BLOCK, Matrix.IQ4_NL.BLOCK_BYTES, 2, r0, r1);
    }

    /** IQ4_XS × Q8_K: {@link #iq4} with super-blocks of eight sub-blocks, each with its 6-bit scale. */
    static void iq4_xs(float[] out, Activations x, Matrix.IQ4_XS w, int r0, int r1) {
        iq4(out, x.q8K, x.q8KScales, w.data(), w.cols(), Matrix.IQ4_XS.BLOCK, Matrix.IQ4_XS.BLOCK_BYTES, Matrix.IQ4_XS.QS, r0, r1);
    }

    /**
     * IQ4_NL (blocks of one sub-block of 32: the F16 d, then 16 nibble bytes) and IQ4_XS (super-blocks of eight: the
     * F16 d, 2 bytes scales_h, 4 bytes scales_l, 128 nibble bytes) against Q8_0 or Q8_K activations. Per sub-block:
     * its 16 nibble bytes in one 128-bit vector, the low nibbles and (shifted down in two 64-bit lanes: x86 has no
     * byte shift) the high ones looked up in the 16 levels ({@code selectFrom}, one byte shuffle each), widened to
     * shorts; levels of values 0..15 times activations 0..15 plus levels of values 16..31 times activations 16..31,
     * added in shorts (|sum| ≤ 2 · 127 · 128 &lt; 2^15); then, where the shorts are as wide as an int vector (256 and
     * 128 bits), each int lane takes the sum of its two shorts ({@code (v << 16 >> 16) + (v >> 16)}), and at 512 bits
     * the shorts widen into the int lanes. IQ4_XS multiplies each sub-block's int dot by its signed scale (ls - 32:
     * {@link Matrix.IQ4_XS#scale(long, int)}, from the super-block's first eight bytes, read once) and adds them into
     * one int sum per super-block (|sum| ≤ 256 · 127 · 128 · 32 &lt; 2^31). Then {@code acc += float(isum) * (d_w *
     * d_x)} lane-wise. (One loop for both types, the sub-block count an argument: no vector crosses a method
     * boundary.) Against the loop before (the high nibbles shifted as bytes, which x86 does in five instructions;
     * the shorts widened to ints in two parts, a long permute sequence with AVX2; the scale read by a call per
     * sub-block that C2 did not inline), the IQ4_XS matrices of a Llama-3.2-1B-shaped file, one thread:
     * docs/measurements/2026-12-07-iq4-kernel.md.
     */
    private static void iq4(float[] out, short[] xq, float[] xd, MemorySegment data, int n, int blockValues, int blockBytes,
                            int qsAt, int r0, int r1) {
        int nb = n / blockValues, subs = blockValues / 32;
        long rowBytes = (long) nb * blockBytes;
        ByteVector table = ByteVector.fromArray(B16, IQ4_LEVELS, 0);
        IntVector zero = IntVector.zero(I);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += blockBytes) {
                IntVector isum = zero;
                long head = data.get(LONG, b); // d (bits 0-15); IQ4_XS: scales_h (16-31), scales_l (32-63)
                for (int s = 0; s < subs; s++) {
                    int j = blk * blockValues + 32 * s;
                    long q = b + qsAt + 16L * s;
                    ByteVector lo = ByteVector.fromMemorySegment(B16, data, q, LE).and((byte) 0x0F).selectFrom(table);
                    ByteVector hi = LongVector.fromMemorySegment(L16, data, q, LE)
                            .lanewise(VectorOperators.LSHR, 4).reinterpretAsBytes().and((byte) 0x0F).selectFrom(table);
                    IntVector dot = zero;
                    for (int part = 0; part < IQ_PARTS; part++) { // (1, or 2 at 128 bits: a constant)
                        int c = part * CQ;
                        ShortVector p = ((ShortVector) lo.convertShape(VectorOperators.B2S, SQ, part)).mul(ShortVector.fromArray(SQ, xq, j + c))
                                .add(((ShortVector) hi.convertShape(VectorOperators.B2S, SQ, part)).mul(ShortVector.fromArray(SQ, xq, j + 16 + c)));
                        if (SHORTS_FILL_INTS) { // (a constant: C2 keeps one branch)
                            IntVector v = p.reinterpretAsInts();
                            dot = dot.add(v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16))
                                    .add(v.lanewise(VectorOperators.ASHR, 16));
                        } else {
                            dot = dot.add((IntVector) p.convertShape(VectorOperators.S2I, I, 0));
                        }
                    }
                    if (subs == 1) {
                        isum = dot;
                    } else {
                        isum = isum.add(dot.mul(Matrix.IQ4_XS.scale(head, s)));
                    }
                }
                float scale = Float.float16ToFloat((short) head) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
        }
    }

    // ------------------------------------------------------------------ Q3_K × Q8_K on the file's layout

    /**
     * Q6_K's loop on Q3_K's super-block, whose values lie in the same order (per half of 128: value l + 32 i from
     * byte l of the half's 32 qs bytes, bits 2i..2i+1, and bit 4 half + i of hmask[l]; sub-block 2i + l / 16 of
     * the half): 32 / 2L chunks of l; for each, the four 3-bit values q_i = (2 bits) | (hmask bit) &lt;&lt; 2, minus 4
     * (in [-4, 3]), times activations l + 32 i (|q·x| ≤ 4 · 128, a pair ≤ 1024), widened to ints by int-lane halves
     * (two neighbouring l, always in one sub-block) and multiplied by their sub-block's signed scale (sc - 32, unpacked
     * once per super-block: {@link Matrix.Q3_K#scalesLow}). Then {@code acc += float(isum) * (d_w * d_x)} lane-wise.
     * A loop of its own beside {@link #q6_K}'s (not measured as one): the two share the products' tail (multiply, fold,
     * scale), but every value is rebuilt from other bits and the scales are unpacked otherwise; the tail as a method
     * would take and return vectors, which C2 boxes when it does not inline the call (a K-quant kernel's part as a
     * method of its own ran at 0.03×: {@link KQuantPacked#q4_K}'s comment), and one loop with a type flag would carry
     * both bodies, as large as the Q5_K copy's loop that passed C2's inlining limits (KQuantPacked#q5_K).
     */
    static void q3_K(float[] out, Activations x, Matrix.Q3_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q3_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += Matrix.Q3_K.BLOCK_BYTES) {
                long lo = data.get(LONG, b + Matrix.Q3_K.SCALES);
                int hi = data.get(INT, b + Matrix.Q3_K.SCALES + 8);
                long scalesLow = Matrix.Q3_K.scalesLow(lo, hi), scalesHigh = Matrix.Q3_K.scalesHigh(lo, hi);
                // at 512 bits: the 16 signed scales in the 16 int lanes, permuted into each chunk's pair below (as Q6_K)
                IntVector scales = CH == 32 ? ((IntVector) LongVector.zero(LongVector.SPECIES_128).withLane(0, scalesLow)
                        .withLane(1, scalesHigh).reinterpretAsBytes().convertShape(VectorOperators.B2I, I, 0)).sub(32) : null;
                IntVector isum = IntVector.zero(I);
                for (int half = 0; half < 2; half++) {
                    long qs = b + Matrix.Q3_K.QS + 32L * half;
                    long halfScales = half == 0 ? scalesLow : scalesHigh;
                    int xo = blk * 256 + 128 * half;
                    for (int k = 0; k < 32; k += CH) {
                        ShortVector a = (ShortVector) ByteVector.fromMemorySegment(BS, data, qs + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector h = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + Matrix.Q3_K.HMASK + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0)).lanewise(VectorOperators.LSHR, 4 * half);
                        ShortVector q1 = a.and((short) 3).or(h.and((short) 1).lanewise(VectorOperators.LSHL, 2)).sub((short) 4);
                        ShortVector q2 = a.lanewise(VectorOperators.LSHR, 2).and((short) 3).or(h.and((short) 2).lanewise(VectorOperators.LSHL, 1))
                                .sub((short) 4);
                        ShortVector q3 = a.lanewise(VectorOperators.LSHR, 4).and((short) 3).or(h.and((short) 4)).sub((short) 4);
                        ShortVector q4 = a.lanewise(VectorOperators.LSHR, 6).or(h.lanewise(VectorOperators.LSHR, 1).and((short) 4)).sub((short) 4);
                        IntVector i1 = q1.mul(ShortVector.fromArray(S, xq, xo + k)).reinterpretAsInts();
                        IntVector i2 = q2.mul(ShortVector.fromArray(S, xq, xo + 32 + k)).reinterpretAsInts();
                        IntVector i3 = q3.mul(ShortVector.fromArray(S, xq, xo + 64 + k)).reinterpretAsInts();
                        IntVector i4 = q4.mul(ShortVector.fromArray(S, xq, xo + 96 + k)).reinterpretAsInts();
                        IntVector c1, c2, c3, c4;
                        if (CH == 32) {
                            c1 = scales.rearrange(half == 0 ? PAIR_0 : PAIR_8);
                            c2 = scales.rearrange(half == 0 ? PAIR_2 : PAIR_10);
                            c3 = scales.rearrange(half == 0 ? PAIR_4 : PAIR_12);
                            c4 = scales.rearrange(half == 0 ? PAIR_6 : PAIR_14);
                        } else { // the chunk's sub-blocks of the half: 2i + k / 16
                            int at = 8 * (k / 16);
                            c1 = IntVector.broadcast(I, (int) (halfScales >>> at & 0x3F) - 32);
                            c2 = IntVector.broadcast(I, (int) (halfScales >>> (at + 16) & 0x3F) - 32);
                            c3 = IntVector.broadcast(I, (int) (halfScales >>> (at + 32) & 0x3F) - 32);
                            c4 = IntVector.broadcast(I, (int) (halfScales >>> (at + 48) & 0x3F) - 32);
                        }
                        isum = isum.add(i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c1))
                                .add(i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c2))
                                .add(i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c3))
                                .add(i4.add(i4.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c4));
                    }
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b + Matrix.Q3_K.D)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
        }
    }

    // ------------------------------------------------------------------ Q5_1 × Q8_1 on the load-time copy

    /**
     * {@link #q5_1} on a {@link PackedQ5_1}, one row per int lane: the same integers per block and row ({@code sumi =
     * sum_k q_k a_k}), the row's float sums in its lane (a few ulps from {@link #q5_1}, which sums a row in several lanes).
     * Each of the block's 16 pair vectors is {@code (v >>> 5f) & 0x001F001F} of one of the copy's six runs, a lane
     * {@code q_(t+16) + 2^16 q_t}, times the activations' pair {@code a_t + 2^16 a_(t+16)} (the same for every row: a
     * broadcast, {@link Activations#q51Pairs}), whose upper half is {@code q_t a_t + q_(t+16) a_(t+16)}. Four products
     * are added in an int chain started at 2^15 (the lower halves, at most 4 · 31 · 127 = 15748 in magnitude, stay within
     * [0, 2^16); the upper halves at most 8 · 31 · 127 = 31496 &lt; 2^15), then shifted out: four chains per block. Then
     * {@code acc += float(sumi) * (d_w * d_x)} and, in an accumulator of its own, {@code macc += m_w * s_x}, added at the
     * end, as llama.cpp keeps the offsets' part apart. Rows [r0, r1) are written; a group that straddles r0 or r1 is
     * computed whole and only its rows in the range are stored. Written out per pair vector (no helper returning a vector).
     */
    static void q5_1Packed(float[] out, Activations x, PackedQ5_1 w, int r0, int r1) {
        int n = w.source().cols(), nb = n / 32, run = 4 * Q4_0_ROWS;
        int[] pairs = x.q51Pairs;
        float[] xd = x.q80Scales, xs = x.q81Sums, ds = w.scales(), ms = w.mins();
        MemorySegment qs = w.values();
        IntVector mask = IntVector.broadcast(QI, 0x001F001F), bias = IntVector.broadcast(QI, 1 << 15);
        int g1 = (r1 + Q4_0_ROWS - 1) / Q4_0_ROWS;
        for (int g = r0 / Q4_0_ROWS; g < g1; g++) {
            long b = (long) g * nb * PackedQ5_1.INTS * run;
            int s = g * nb * Q4_0_ROWS;
            FloatVector acc = FloatVector.zero(QF), macc = FloatVector.zero(QF);
            for (int blk = 0; blk < nb; blk++, b += PackedQ5_1.INTS * run, s += Q4_0_ROWS) {
                int p = blk * 16;
                IntVector v0 = IntVector.fromMemorySegment(QI, qs, b, LE);
                IntVector v1 = IntVector.fromMemorySegment(QI, qs, b + run, LE);
                IntVector t = bias.add(v0.and(mask).mul(pairs[p]))
                        .add(v0.lanewise(VectorOperators.LSHR, 5).and(mask).mul(pairs[p + 1]))
                        .add(v0.lanewise(VectorOperators.LSHR, 10).and(mask).mul(pairs[p + 2]))
                        .add(v1.and(mask).mul(pairs[p + 3]));
                IntVector isum = t.lanewise(VectorOperators.ASHR, 16);
                IntVector v2 = IntVector.fromMemorySegment(QI, qs, b + 2 * run, LE);
                t = bias.add(v1.lanewise(VectorOperators.LSHR, 5).and(mask).mul(pairs[p + 4]))
                        .add(v1.lanewise(VectorOperators.LSHR, 10).and(mask).mul(pairs[p + 5]))
                        .add(v2.and(mask).mul(pairs[p + 6]))
                        .add(v2.lanewise(VectorOperators.LSHR, 5).and(mask).mul(pairs[p + 7]));
                isum = isum.add(t.lanewise(VectorOperators.ASHR, 16));
                IntVector v3 = IntVector.fromMemorySegment(QI, qs, b + 3 * run, LE);
                t = bias.add(v2.lanewise(VectorOperators.LSHR, 10).and(mask).mul(pairs[p + 8]))
                        .add(v3.and(mask).mul(pairs[p + 9]))
                        .add(v3.lanewise(VectorOperators.LSHR, 5).and(mask).mul(pairs[p + 10]))
                        .add(v3.lanewise(VectorOperators.LSHR, 10).and(mask).mul(pairs[p + 11]));
                isum = isum.add(t.lanewise(VectorOperators.ASHR, 16));
                IntVector v4 = IntVector.fromMemorySegment(QI, qs, b + 4 * run, LE);
                IntVector v5 = IntVector.fromMemorySegment(QI, qs, b + 5 * run, LE);
                t = bias.add(v4.and(mask).mul(pairs[p + 12]))
                        .add(v4.lanewise(VectorOperators.LSHR, 5).and(mask).mul(pairs[p + 13]))
                        .add(v4.lanewise(VectorOperators.LSHR, 10).and(mask).mul(pairs[p + 14]))
                        .add(v5.mul(pairs[p + 15])); // (int 5 holds pair 15 alone: no mask)
                isum = isum.add(t.lanewise(VectorOperators.ASHR, 16));
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(QF, ds, s).mul(xd[blk]), acc);
                macc = FloatVector.fromArray(QF, ms, s).fma(FloatVector.broadcast(QF, xs[blk]), macc);
            }
            acc = acc.add(macc);
            int r = g * Q4_0_ROWS;
            if (r >= r0 && r + Q4_0_ROWS <= r1) {
                acc.intoArray(out, r);
            } else { // a group at an end of the range (or the padded last group): its rows in [r0, r1) only
                for (int i = 0; i < Q4_0_ROWS; i++) {
                    store(out, r + i, acc.lane(i), r0, r1);
                }
            }
        }
    }

    // ------------------------------------------------------------------ Q4_K × Q8_K: KQuantPacked (a load-time repack)

    // ------------------------------------------------------------------ Q5_K × Q8_K on the file's layout (--weight-copies=off; the copy's: KQuantPacked)

    /**
     * Per super-block, four groups g of 64 values (sub-blocks 2g and 2g + 1, which share the nibble bytes
     * qs[32g ..] and take bits 2g and 2g + 1 of qh[l]): 32 / 2L chunks of l; each chunk's nibbles and high bits
     * (zero-extended to shorts) make the two sub-blocks' 5-bit values q = nibble | bit &lt;&lt; 4, times their activations,
     * added in short lanes over the chunks (a lane holds at most 32 / 2L products of 31 · 127, and an int lane's two
     * halves at most 8 · 31 · 127 = 31496 &lt; 2^15: exact), widened to ints and multiplied by the sub-block's 6-bit scale.
     * Then {@code acc += float(isum) * (d_w * d_x)} lane-wise. The mins' part is an exact int per super-block,
     * {@code summ = sum_j m_j * (q8 sum of sub-block j)}, subtracted as {@code (dmin_w * d_x) * summ} in a float sum
     * of its own, after the row's horizontal sum.
     */
    static void q5_K(float[] out, Activations x, Matrix.Q5_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q5_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            float mins = 0.0f;
            for (int blk = 0; blk < nb; blk++, b += Matrix.Q5_K.BLOCK_BYTES) {
                int j = blk * 256;
                // the 12 packed bytes: scales[0..3] and mins[0..3] in their low 6 bits, the upper two of scales[0..7]
                // above them, scales[8..11] holding the low 4 bits of sub-blocks 4..7's scales (low nibble) and mins (high)
                long lo = data.get(LONG, b + Matrix.Q5_K.SCALES);
                int hi = data.get(INT, b + Matrix.Q5_K.SCALES + 8);
                long scales = Matrix.Q4_K.scales(lo, hi), minBytes = Matrix.Q4_K.mins(lo, hi);
                IntVector isum = IntVector.zero(I);
                for (int g = 0; g < 4; g++) {
                    long qo = b + Matrix.Q5_K.QS + 32L * g;
                    int xo = j + 64 * g;
                    // (zeros, not null before the first chunk: a vector that may be null is a phi C2 cannot scalar-replace,
                    // and every vector of the loop was allocated: the 1B Q5_K_M file's tg32 ran at 7.1 tok/s)
                    ShortVector plo = ShortVector.zero(S), phi = ShortVector.zero(S);
                    for (int k = 0; k < 32; k += CH) {
                        ShortVector v = (ShortVector) ByteVector.fromMemorySegment(BS, data, qo + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector h = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + Matrix.Q5_K.QH + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0)).lanewise(VectorOperators.LSHR, 2 * g);
                        ShortVector q1 = v.and((short) 0x0F).or(h.lanewise(VectorOperators.LSHL, 4).and((short) 0x10));
                        ShortVector q2 = v.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHL, 3).and((short) 0x10));
                        ShortVector p1 = q1.mul(ShortVector.fromArray(S, xq, xo + k));
                        ShortVector p2 = q2.mul(ShortVector.fromArray(S, xq, xo + 32 + k));
                        plo = plo.add(p1);
                        phi = phi.add(p2);
                    }
                    int scLo = (int) (scales >>> (16 * g)) & 0xFF, scHi = (int) (scales >>> (16 * g + 8)) & 0xFF;
                    IntVector ilo = plo.reinterpretAsInts(), ihi = phi.reinterpretAsInts();
                    isum = isum.add(ilo.add(ilo.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scLo))
                            .add(ihi.add(ihi.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scHi));
                }
                int summ = 0;
                for (int s = 0; s < 8; s++) {
                    summ += ((int) (minBytes >>> (8 * s)) & 0xFF) * xs32[blk * 8 + s];
                }
                float xdb = xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xdb), acc);
                mins += Float.float16ToFloat(data.get(Matrix.SHORT, b + 2)) * xdb * summ;
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = ((accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3))) - mins;
        }
    }

    // ------------------------------------------------------------------ Q6_K × Q8_K

    /**
     * Per half super-block of 128 (ql 64 bytes, qh 32, 8 scales): 32 / 2L chunks of l; for each,
     * the four 6-bit values q_i = (nibble of ql) | (2 bits of qh) - 32, i = 0..3, times activations
     * l + 32 i (|q·x| ≤ 32 · 127, a pair ≤ 8128), widened to ints by int-lane halves (two neighbouring l, always in
     * the same sub-block of 16) and multiplied by their sub-block's int8 scale. Then
     * {@code acc += float(isum) * (d_w * d_x)} lane-wise.
     */
    static void q6_K(float[] out, Activations x, Matrix.Q6_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q6_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 210) {
                IntVector isum = IntVector.zero(I);
                // at 512 bits: the 16 int8 scales in the 16 int lanes, permuted into each chunk's pair of scales below
                IntVector scales = CH == 32 ? (IntVector) ByteVector.fromMemorySegment(SCALE_BYTES, data, b + 192, LE)
                        .convertShape(VectorOperators.B2I, I, 0) : null;
                for (int half = 0; half < 2; half++) {
                    long ql = b + 64L * half, qh = b + 128 + 32L * half, sc = b + 192 + 8L * half;
                    int xo = blk * 256 + 128 * half;
                    for (int k = 0; k < 32; k += CH) {
                        ShortVector a = (ShortVector) ByteVector.fromMemorySegment(BS, data, ql + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector c = (ShortVector) ByteVector.fromMemorySegment(BS, data, ql + 32 + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector h = (ShortVector) ByteVector.fromMemorySegment(BS, data, qh + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector q1 = a.and((short) 0x0F).or(h.and((short) 3).lanewise(VectorOperators.LSHL, 4)).sub((short) 32);
                        ShortVector q2 = c.and((short) 0x0F).or(h.and((short) 0x0C).lanewise(VectorOperators.LSHL, 2)).sub((short) 32);
                        ShortVector q3 = a.lanewise(VectorOperators.LSHR, 4).or(h.and((short) 0x30)).sub((short) 32);
                        ShortVector q4 = c.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 2).and((short) 0x30)).sub((short) 32);
                        IntVector i1 = q1.mul(ShortVector.fromArray(S, xq, xo + k)).reinterpretAsInts();
                        IntVector i2 = q2.mul(ShortVector.fromArray(S, xq, xo + 32 + k)).reinterpretAsInts();
                        IntVector i3 = q3.mul(ShortVector.fromArray(S, xq, xo + 64 + k)).reinterpretAsInts();
                        IntVector i4 = q4.mul(ShortVector.fromArray(S, xq, xo + 96 + k)).reinterpretAsInts();
                        // As ints, lane t holds l = k + 2t and k + 2t + 1, in sub-block (k + 2t) / 16: one
                        // sub-block per chunk below 512 bits; at 512 (32 l) the upper 8 lanes are the next one.
                        IntVector c1, c2, c3, c4;
                        if (CH == 32) {
                            c1 = scales.rearrange(half == 0 ? PAIR_0 : PAIR_8);
                            c2 = scales.rearrange(half == 0 ? PAIR_2 : PAIR_10);
                            c3 = scales.rearrange(half == 0 ? PAIR_4 : PAIR_12);
                            c4 = scales.rearrange(half == 0 ? PAIR_6 : PAIR_14);
                        } else {
                            long s = sc + k / 16;
                            c1 = IntVector.broadcast(I, data.get(ScalarInts.BYTE, s));
                            c2 = IntVector.broadcast(I, data.get(ScalarInts.BYTE, s + 2));
                            c3 = IntVector.broadcast(I, data.get(ScalarInts.BYTE, s + 4));
                            c4 = IntVector.broadcast(I, data.get(ScalarInts.BYTE, s + 6));
                        }
                        isum = isum.add(i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c1))
                                .add(i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c2))
                                .add(i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c3))
                                .add(i4.add(i4.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c4));
                    }
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b + 208)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            FloatVector accSum = acc; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { accSum = accSum.add(accSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { accSum = accSum.add(accSum.rearrange(LaneSums.P2)); }
            out[r] = (accSum.lane(0) + accSum.lane(2)) + (accSum.lane(1) + accSum.lane(3));
        }
    }

    /**
     * Q6_K at 512 bits, where a chunk of 32 l spans two sub-blocks (int lanes t < 8 and t >= 8): the 16
     * scales of a super-block are read once, widened to the 16 int lanes, and each chunk's pair
     * (scales m and m + 1) is one permute, {@code PAIR_m}. It replaced, per pair, two scalar loads,
     * two broadcasts and a blend: 1.47× in cache and 1.45× from DRAM, per-round medians of interleaved
     * runs on a loaded machine (docs/measurements/2026-12-02-gguf-speed.md).
     */
    private static final VectorSpecies<Byte> SCALE_BYTES = ByteVector.SPECIES_128;
    private static final VectorShuffle<Integer> PAIR_0 = pair(0), PAIR_2 = pair(2), PAIR_4 = pair(4), PAIR_6 = pair(6);
    private static final VectorShuffle<Integer> PAIR_8 = pair(8), PAIR_10 = pair(10), PAIR_12 = pair(12), PAIR_14 = pair(14);

    /** Lanes t < 8 take lane m, lanes t >= 8 lane m + 1 (at 512 bits; below, lane m, never used). */
    private static VectorShuffle<Integer> pair(int m) {
        return VectorShuffle.fromOp(I, t -> CH == 32 ? m + (t >= 8 ? 1 : 0) : 0);
    }

    // ------------------------------------------------------------------ F16 and BF16

    /**
     * F16 weights to float in int lanes: the sign and the 15 exponent/mantissa bits moved to their
     * float positions, which is the weight times 2^-112 (exact, and right for subnormal halves too). The factor
     * 2^112 that rebiases the exponent is not applied to the weights: the activations come multiplied by it
     * ({@code Activations.f16Pairs}, exact), and an FMA's product is exact, so {@code fma(w·2^-112, x·2^112, acc)}
     * rounds the same sum as {@code fma(w, x, acc)}, one vector multiply fewer per L weights (in cache 1.41× at 512
     * bits and 1.29× at 256, from DRAM 1.13× and 1.12×: GgufStreamSpeed, loaded machine,
     * docs/measurements/2026-12-03-f16-convert.md).
     * One load of 2L halves, read as L int lanes of two, gives both float vectors: the odd halves (bits 16-31) as
     * {@code (v >> 3) & 0x8FFFE000} and the even ones as {@code ((v << 16) >> 3) & 0x8FFFE000}, against the activations
     * in the same order (per block of 2L, the even values, then the odd ones). Two loads
     * of L halves widened to ints ({@code convertShape(S2I)}, the kernel before) cost more at 256 bits: Llama-3.2-1B
     * F16, docs/measurements/2026-12-05-f16-copy.md.
     * The rebiasing is wrong only for halves with the all-ones exponent
     * (inf, NaN), so each row also keeps the largest {@code h & 0x7FFF} in short lanes (an and and a
     * max per 2L weights), and a row that holds
     * one is computed again by {@link #f16RowSpecial}, which gives them the float's all-ones
     * exponent. Two accumulators per row (the even and the odd halves); four rows at a time ({@link #f16Rows4}), then one.
     *
     * <p>The row-level check replaced a check of every vector (an and, a compare into a mask, an or
     * of two masks and a test and branch per 2L weights, as {@link #f16RowSpecial} still does): 1.12×
     * in cache at 512 bits, per-round median of interleaved runs on a loaded machine (within noise from
     * DRAM there), docs/measurements/2026-12-02-gguf-speed.md.
     */
    static void f16(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        f16(out, x, w, r0, r1, true);
    }

    /**
     * {@link #f16(float[], Activations, Matrix.F16, int, int)}, told whether w may hold an inf or NaN half: false only
     * for a copy checked for them when it was made ({@link MatrixForm.Copy#finiteHalves}), whose rows four at a time
     * then skip the per-row check (an and and a max per 2L weights of each row). Llama-3.2-1B F16, {@code bench} tg32,
     * 2 threads, against the check kept, pairs of JVMs: 256 bits 1.02-1.35x (six pairs), 512 bits 0.99-1.13x (six);
     * docs/measurements/2026-12-06-f16-checked-copy.md.
     */
    static void f16(float[] out, Activations x, Matrix.F16 w, int r0, int r1, boolean mayHoldSpecials) {
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            f16Rows4(out, x, w, r, mayHoldSpecials);
        }
        f16Rows(out, x, w, r, r1);
    }

    /**
     * Rows r..r+3 of {@link #f16Rows} at once: four streams of weights sharing each load of the activations (one row
     * at a time ran at 0.79-1.00x of it on a Llama-3.2-1B F16 file's copy, two threads, docs/measurements/2026-12-05-f16-copy.md).
     * Each row's sums are in its own two accumulators in {@link #f16Rows}' order, so the same sums; one
     * inf/NaN check for the four (any of them: all four again as {@link #f16RowSpecial}, which gives a row without one
     * the same sums).
     */
    private static void f16Rows4(float[] out, Activations x, Matrix.F16 w, int r, boolean check) {
        int n = w.cols();
        float[] xh = x.f16, xp = x.f16Pairs; // xp: xh · 2^112, even and odd values apart per block of 2L
        MemorySegment data = w.data();
        int upper = n - n % (2 * L);
        long b0 = (long) r * n * 2, b1 = b0 + 2L * n, b2 = b1 + 2L * n, b3 = b2 + 2L * n;
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        ShortVector top = ShortVector.zero(S);
        int j = 0;
        for (; j < upper; j += 2 * L) {
            FloatVector x0 = FloatVector.fromArray(F, xp, j), x1 = FloatVector.fromArray(F, xp, j + L);
            ShortVector h;
            IntVector v;
            h = ShortVector.fromMemorySegment(S, data, b0 + 2L * j, LE);
            if (check) { // (loop-invariant: C2 compiles the loop once with the check and once without)
                top = top.max(h.and((short) 0x7FFF));
            }
            v = (IntVector) h.reinterpretAsInts();
            a00 = v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x0, a00);
            a01 = v.lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x1, a01);
            h = ShortVector.fromMemorySegment(S, data, b1 + 2L * j, LE);
            if (check) {
                top = top.max(h.and((short) 0x7FFF));
            }
            v = (IntVector) h.reinterpretAsInts();
            a10 = v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x0, a10);
            a11 = v.lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x1, a11);
            h = ShortVector.fromMemorySegment(S, data, b2 + 2L * j, LE);
            if (check) {
                top = top.max(h.and((short) 0x7FFF));
            }
            v = (IntVector) h.reinterpretAsInts();
            a20 = v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x0, a20);
            a21 = v.lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x1, a21);
            h = ShortVector.fromMemorySegment(S, data, b3 + 2L * j, LE);
            if (check) {
                top = top.max(h.and((short) 0x7FFF));
            }
            v = (IntVector) h.reinterpretAsInts();
            a30 = v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x0, a30);
            a31 = v.lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(x1, a31);
        }
        if (check && top.reduceLanes(VectorOperators.MAX) >= 0x7C00) {
            for (int i = 0; i < 4; i++) {
                out[r + i] = f16RowSpecial(xh, xp, data, (long) (r + i) * n * 2, n);
            }
            return;
        }
        FloatVector a0Sum = a00.add(a01); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P2)); }
        out[r] = f16Tail((a0Sum.lane(0) + a0Sum.lane(2)) + (a0Sum.lane(1) + a0Sum.lane(3)), xh, data, b0, j, n);
        FloatVector a1Sum = a10.add(a11); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P2)); }
        out[r + 1] = f16Tail((a1Sum.lane(0) + a1Sum.lane(2)) + (a1Sum.lane(1) + a1Sum.lane(3)), xh, data, b1, j, n);
        FloatVector a2Sum = a20.add(a21); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P2)); }
        out[r + 2] = f16Tail((a2Sum.lane(0) + a2Sum.lane(2)) + (a2Sum.lane(1) + a2Sum.lane(3)), xh, data, b2, j, n);
        FloatVector a3Sum = a30.add(a31); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P2)); }
        out[r + 3] = f16Tail((a3Sum.lane(0) + a3Sum.lane(2)) + (a3Sum.lane(1) + a3Sum.lane(3)), xh, data, b3, j, n);
    }

    /**
     * Whether the {@code count} halves at byte {@code from} of {@code data} hold an inf or NaN (an F16 with the all-ones
     * exponent): what {@link #f16(float[], Activations, Matrix.F16, int, int, boolean)} needs to know of a matrix to
     * skip its check. Four halves per long: a half's exponent bits plus 2^10 reach bit 15 only when they are all ones,
     * and never carry into the next half. Scalar and over a byte offset: fast from the first call (it runs once per
     * chunk of a copy at load). A copy of 1 GiB in chunks of 256 KiB, one thread, took 0.08 s, and 0.08-0.10 s with
     * this check, 0.33-0.41 s with the same loop over an int index of halves, 0.09-0.30 s with the Vector API's max
     * (slow until C2 compiles it).
     */
    static boolean holdsSpecialHalves(MemorySegment data, long from, int count) {
        long found = 0, end = from + 2L * (count & ~3);
        for (long at = from; at < end; at += 8) {
            found |= (data.get(HALVES4, at) & 0x7C007C007C007C00L) + 0x0400040004000400L;
        }
        for (long at = end; at < from + 2L * count; at += 2) {
            found |= (data.get(Matrix.SHORT, at) & 0x7C00L) + 0x0400L;
        }
        return (found & 0x8000800080008000L) != 0;
    }

    private static final java.lang.foreign.ValueLayout.OfLong HALVES4 = java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** {@code sum} plus a row's last columns from j, one at a time (the part no whole pair of vectors covers). */
    private static float f16Tail(float sum, float[] xh, MemorySegment data, long base, int j, int n) {
        for (; j < n; j++) {
            sum += Float.float16ToFloat(data.get(Matrix.SHORT, base + 2L * j)) * xh[j];
        }
        return sum;
    }

    /** Rows [r0, r1) one at a time (a range's last rows, fewer than four). */
    private static void f16Rows(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        int n = w.cols();
        float[] xh = x.f16, xp = x.f16Pairs;
        MemorySegment data = w.data();
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            ShortVector top = ShortVector.zero(S);
            int j = 0;
            for (; j < upper; j += 2 * L) {
                ShortVector h = ShortVector.fromMemorySegment(S, data, base + 2L * j, LE);
                top = top.max(h.and((short) 0x7FFF));
                IntVector v = (IntVector) h.reinterpretAsInts();
                a0 = v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats()
                        .fma(FloatVector.fromArray(F, xp, j), a0);
                a1 = v.lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, j + L), a1);
            }
            if (top.reduceLanes(VectorOperators.MAX) >= 0x7C00) {
                out[r] = f16RowSpecial(xh, xp, data, base, n);
                continue;
            }
            FloatVector aSum = a0.add(a1); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { aSum = aSum.add(aSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { aSum = aSum.add(aSum.rearrange(LaneSums.P2)); }
            out[r] = f16Tail((aSum.lane(0) + aSum.lane(2)) + (aSum.lane(1) + aSum.lane(3)), xh, data, base, j, n);
        }
    }

    /**
     * One F16 row as {@link #f16} computes it, for a row holding an inf or NaN half: every vector
     * checked, and the all-ones exponent set in the lanes that have one.
     */
    private static float f16RowSpecial(float[] xh, float[] xp, MemorySegment data, long base, int n) {
        int upper = n - n % (2 * L);
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
        int j = 0;
        for (; j < upper; j += 2 * L) {
            IntVector v = (IntVector) ShortVector.fromMemorySegment(S, data, base + 2L * j, LE).reinterpretAsInts();
            VectorMask<Integer> specialEven = v.and(0x7C00).compare(VectorOperators.EQ, 0x7C00);
            VectorMask<Integer> specialOdd = v.and(0x7C000000).compare(VectorOperators.EQ, 0x7C000000);
            // the all-ones exponent: inf or NaN (its mantissa kept), which times x · 2^112 is the product's inf or NaN
            FloatVector w0 = v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000)
                    .lanewise(VectorOperators.OR, 0x7F800000, specialEven).reinterpretAsFloats();
            FloatVector w1 = v.lanewise(VectorOperators.ASHR, 3).and(0x8FFFE000).lanewise(VectorOperators.OR, 0x7F800000, specialOdd).reinterpretAsFloats();
            a0 = w0.fma(FloatVector.fromArray(F, xp, j), a0);
            a1 = w1.fma(FloatVector.fromArray(F, xp, j + L), a1);
        }
        FloatVector aSum = a0.add(a1); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { aSum = aSum.add(aSum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { aSum = aSum.add(aSum.rearrange(LaneSums.P2)); }
        return f16Tail((aSum.lane(0) + aSum.lane(2)) + (aSum.lane(1) + aSum.lane(3)), xh, data, base, j, n);
    }

    /**
     * BF16 weights to float in int lanes: the 16 bits moved to the top. As {@link #f16}: one load of 2L halves read as
     * L int lanes of two gives both float vectors (even halves {@code v << 16}, odd ones {@code v & 0xFFFF0000}) against
     * the activations in the same order ({@code Activations.bf16Pairs}), two accumulators per row, four rows at a time
     * sharing the activations' loads, then one (the F16 kernel's measurements: docs/measurements/2026-12-05-f16-copy.md).
     */
    static void bf16(float[] out, Activations x, Matrix.BF16 w, int r0, int r1) {
        int n = w.cols();
        float[] xb = x.bf16, xp = x.bf16Pairs;
        MemorySegment data = w.data();
        int upper = n - n % (2 * L);
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            long b0 = (long) r * n * 2, b1 = b0 + 2L * n, b2 = b1 + 2L * n, b3 = b2 + 2L * n;
            FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            int j = 0;
            for (; j < upper; j += 2 * L) {
                FloatVector x0 = FloatVector.fromArray(F, xp, j), x1 = FloatVector.fromArray(F, xp, j + L);
                IntVector v;
                v = (IntVector) ShortVector.fromMemorySegment(S, data, b0 + 2L * j, LE).reinterpretAsInts();
                a00 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x0, a00);
                a01 = v.and(0xFFFF0000).reinterpretAsFloats().fma(x1, a01);
                v = (IntVector) ShortVector.fromMemorySegment(S, data, b1 + 2L * j, LE).reinterpretAsInts();
                a10 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x0, a10);
                a11 = v.and(0xFFFF0000).reinterpretAsFloats().fma(x1, a11);
                v = (IntVector) ShortVector.fromMemorySegment(S, data, b2 + 2L * j, LE).reinterpretAsInts();
                a20 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x0, a20);
                a21 = v.and(0xFFFF0000).reinterpretAsFloats().fma(x1, a21);
                v = (IntVector) ShortVector.fromMemorySegment(S, data, b3 + 2L * j, LE).reinterpretAsInts();
                a30 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x0, a30);
                a31 = v.and(0xFFFF0000).reinterpretAsFloats().fma(x1, a31);
            }
            FloatVector a0Sum = a00.add(a01); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P2)); }
            out[r] = bf16Tail((a0Sum.lane(0) + a0Sum.lane(2)) + (a0Sum.lane(1) + a0Sum.lane(3)), xb, data, b0, j, n);
            FloatVector a1Sum = a10.add(a11); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P2)); }
            out[r + 1] = bf16Tail((a1Sum.lane(0) + a1Sum.lane(2)) + (a1Sum.lane(1) + a1Sum.lane(3)), xb, data, b1, j, n);
            FloatVector a2Sum = a20.add(a21); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P2)); }
            out[r + 2] = bf16Tail((a2Sum.lane(0) + a2Sum.lane(2)) + (a2Sum.lane(1) + a2Sum.lane(3)), xb, data, b2, j, n);
            FloatVector a3Sum = a30.add(a31); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P2)); }
            out[r + 3] = bf16Tail((a3Sum.lane(0) + a3Sum.lane(2)) + (a3Sum.lane(1) + a3Sum.lane(3)), xb, data, b3, j, n);
        }
        for (; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            int j = 0;
            for (; j < upper; j += 2 * L) {
                IntVector v = (IntVector) ShortVector.fromMemorySegment(S, data, base + 2L * j, LE).reinterpretAsInts();
                a0 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, j), a0);
                a1 = v.and(0xFFFF0000).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, j + L), a1);
            }
            FloatVector aSum = a0.add(a1); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
            if (LaneSums.P_STEPS > 2) { aSum = aSum.add(aSum.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { aSum = aSum.add(aSum.rearrange(LaneSums.P2)); }
            out[r] = bf16Tail((aSum.lane(0) + aSum.lane(2)) + (aSum.lane(1) + aSum.lane(3)), xb, data, base, j, n);
        }
    }

    /** {@code sum} plus a BF16 row's last columns from j, one at a time. */
    private static float bf16Tail(float sum, float[] xb, MemorySegment data, long base, int j, int n) {
        for (; j < n; j++) {
            sum += Matrix.bf16ToFloat(data.get(Matrix.SHORT, base + 2L * j)) * xb[j];
        }
        return sum;
    }

    /** Little-endian unaligned scalar layouts for the block fields. */
    private static final class ScalarInts {
        static final java.lang.foreign.ValueLayout.OfByte BYTE = java.lang.foreign.ValueLayout.JAVA_BYTE;
    }
}
