package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * runq's Q8_0 matmul, bit-identical to {@link ScalarKernels#matmulQ8} but vectorized:
 * {@code out[r] = sum over groups g, in order, of ((float) idot(r, g) * wScale(r, g)) * xScale(g)}.
 *
 * <p>Only the float accumulation over groups is order-sensitive; each group's int32 dot product is
 * exact in any order. So the work is split in three passes over a block of up to L rows, where L is
 * the preferred int vector's lane count (16 with AVX-512, 8 with AVX2, 4 with NEON):
 * <ol>
 *   <li><b>Dots.</b> The block's groups are contiguous in memory (rows of whole groups), so they
 *       are taken L at a time regardless of row boundaries. Each group's products are summed into
 *       one L-lane int vector; then a transposing reduction (log2 L rounds of lane permutes and adds)
 *       turns L such vectors into one vector holding the L group totals. A per-group horizontal
 *       sum ({@code reduceLanes}) costs several times more than the whole dot product.</li>
 *   <li><b>Scaling.</b> {@code ((float) idot * wScale) * xScale} for all the block's groups at once:
 *       elementwise, so vectorizing it changes no rounding.</li>
 *   <li><b>Accumulation.</b> Each row adds its group terms in order, as runq does (scalar).</li>
 * </ol>
 * For group sizes that are multiples of 2L the products are formed in 16-bit lanes (an int8 × int8
 * product fits, and so does the sum of two when the activations are in [-127, 127], which runq's
 * quantizer guarantees; activations holding -128 take the 32-bit path): bytes widened to shorts
 * ({@code vpmovsxbw}), multiplied ({@code vpmullw}), two products added, then widened to ints. Other
 * multiples of L use 32-bit lanes. One source serves every width: all species derive from the
 * preferred one, so {@code -XX:MaxVectorSize} (the tests' width selection) picks the path.
 * {@link #SUPPORTED} says whether a width applies (at least 4 int lanes).
 */
final class Q8Matmul {
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    /** Groups (and rows) handled together: one int lane each. */
    private static final int LANES = I.length();
    private static final VectorSpecies<Short> S = species(ShortVector.SPECIES_PREFERRED, LANES * 2 * Short.SIZE);
    private static final VectorSpecies<Float> F = species(FloatVector.SPECIES_PREFERRED, LANES * Float.SIZE);
    /** Bytes widened to int lanes (null below 8 lanes: no byte vector is shorter than 64 bits). */
    private static final VectorSpecies<Byte> B_FOR_I = LANES >= 8 ? species(ByteVector.SPECIES_PREFERRED, LANES * Byte.SIZE) : null;
    private static final VectorSpecies<Byte> B_FOR_S = species(ByteVector.SPECIES_PREFERRED, LANES * 2 * Byte.SIZE);
    /** Bytes per 16-bit step (one short vector of products). */
    private static final int SL = 2 * LANES;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    /** True where the preferred int vector has at least 4 lanes (128 bits and up). */
    static final boolean SUPPORTED = LANES >= 4 && LANES <= 16;

    /*
     * Permutes of the transposing reduction, named by the block length they split. In a round, two
     * vectors a and b in which each "owner" (a group) holds a block of `block` lanes are combined:
     * LO takes the first half of every block (a's blocks, then b's), HI the second half, and LO + HI
     * holds twice as many owners with blocks half as long. Index i < L picks lane i of a, i + L lane i
     * of b. A round is skipped (null) where the vector is narrower than its block.
     */
    private static final IntVector LO16 = combineIndex(16, false), HI16 = combineIndex(16, true);
    private static final IntVector LO8 = combineIndex(8, false), HI8 = combineIndex(8, true);
    private static final IntVector LO4 = combineIndex(4, false), HI4 = combineIndex(4, true);
    private static final IntVector LO2 = combineIndex(2, false), HI2 = combineIndex(2, true);

    private Q8Matmul() {
    }

    @SuppressWarnings("unchecked")
    private static <E> VectorSpecies<E> species(VectorSpecies<E> like, int bits) {
        return (VectorSpecies<E>) like.withShape(VectorShape.forBitSize(bits));
    }

    private static IntVector combineIndex(int block, boolean high) {
        if (!SUPPORTED || block > LANES) {
            return null;
        }
        int half = block / 2, ownersPerInput = LANES / block;
        int[] idx = new int[LANES];
        for (int l = 0; l < LANES; l++) {
            int owner = l / half, within = l % half;
            int src = owner < ownersPerInput ? owner * block + within : (owner - ownersPerInput) * block + within + LANES;
            idx[l] = high ? src + half : src;
        }
        return IntVector.fromArray(I, idx, 0);
    }

    /** Whether {@link #matmul} handles this group size. */
    static boolean handles(int groupSize) {
        return SUPPORTED && (groupSize % SL == 0 || B_FOR_I != null && groupSize % LANES == 0);
    }

    /** out[r] for r in [r0, r1); requires {@link #handles}(w.groupSize()). */
    static void matmul(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1) {
        int n = w.cols(), gs = w.groupSize(), ng = n / gs;
        boolean shorts = gs % SL == 0 && !containsMinus128(xq, n);
        if (!shorts && (B_FOR_I == null || gs % LANES != 0)) { // -128 at 128 bits: no 32-bit path there
            new ScalarKernels().matmulQ8(out, xq, xs, w, r0, r1);
            return;
        }
        // The activations widened once, so that each weight load needs a single widening.
        short[] x16 = null;
        int[] x32 = null;
        if (shorts) {
            x16 = new short[n];
            for (int i = 0; i < n; i++) {
                x16[i] = xq[i];
            }
        } else {
            x32 = new int[n];
            for (int i = 0; i < n; i++) {
                x32[i] = xq[i];
            }
        }
        int blockGroups = LANES * ng;
        int[] dots = new int[blockGroups];
        float[] terms = new float[blockGroups];
        float[] xsTiled = new float[blockGroups]; // xs repeated for each row of a block
        for (int i = 0; i < blockGroups; i++) {
            xsTiled[i] = xs[i % ng];
        }
        int[] scratch = new int[LANES * LANES];
        MemorySegment values = w.values(), scales = w.scales();
        for (int r = r0; r < r1; r += LANES) {
            int rows = Math.min(LANES, r1 - r);
            int groups = rows * ng;
            long firstGroup = (long) r * ng;
            // 1. int dot of every group of the block
            if (shorts) {
                dotsShorts(values, firstGroup, groups, ng, gs, x16, scratch, dots);
            } else {
                dotsInts(values, firstGroup, groups, ng, gs, x32, scratch, dots);
            }
            // 2. the group terms ((float) idot * wScale) * xScale, elementwise
            int T = 0;
            for (; T + LANES <= groups; T += LANES) {
                ((FloatVector) IntVector.fromArray(I, dots, T).convert(VectorOperators.I2F, 0))
                        .mul(FloatVector.fromMemorySegment(F, scales, (firstGroup + T) * Float.BYTES, LE))
                        .mul(FloatVector.fromArray(F, xsTiled, T))
                        .intoArray(terms, T);
            }
            for (; T < groups; T++) {
                terms[T] = ((float) dots[T] * scales.get(ScalarKernels.FLOAT, (firstGroup + T) * Float.BYTES)) * xsTiled[T];
            }
            // 3. runq's accumulation: each row adds its terms group after group
            for (int i = 0; i < rows; i++) {
                float val = 0.0f;
                for (int g = i * ng, end = g + ng; g < end; g++) {
                    val += terms[g];
                }
                out[r + i] = val;
            }
        }
    }

    /*
     * The dot loops below are written out in full, without helpers returning vectors: a vector
     * returned by a method that C2 does not inline gets boxed, which costs more than the arithmetic.
     */

    /**
     * dots[i] = int dot of group firstGroup + i for i in [0, groups), with 16-bit products (two
     * summed per lane before widening to int). Groups are taken 16 at a time; the few left at the
     * end of a short block are done by {@link #scalarDot}.
     */
    private static void dotsShorts(MemorySegment values, long firstGroup, int groups, int ng, int gs, short[] x,
                                   int[] scratch, int[] dots) {
        int col = 0; // the group's index within its row (blocks start at a row)
        int G = 0;
        for (; G + LANES <= groups; G += LANES) {
            for (int k = 0; k < LANES; k++) {
                long off = (firstGroup + G + k) * gs;
                int xOff = col * gs;
                // The first 2 SL (or SL) bytes outside any loop: a loop that runs once costs more than its body here.
                IntVector acc;
                int b = 0;
                if (gs % (2 * SL) == 0) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b + SL, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b))
                            .add(w1.mul(ShortVector.fromArray(S, x, xOff + b + SL)));
                    acc = ((IntVector) p.convertShape(VectorOperators.S2I, I, 0)).add((IntVector) p.convertShape(VectorOperators.S2I, I, 1));
                    b = 2 * SL;
                } else {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b));
                    acc = ((IntVector) p.convertShape(VectorOperators.S2I, I, 0)).add((IntVector) p.convertShape(VectorOperators.S2I, I, 1));
                    b = SL;
                }
                for (; b + 2 * SL <= gs; b += 2 * SL) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b + SL, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b))
                            .add(w1.mul(ShortVector.fromArray(S, x, xOff + b + SL)));
                    acc = acc.add((IntVector) p.convertShape(VectorOperators.S2I, I, 0)).add((IntVector) p.convertShape(VectorOperators.S2I, I, 1));
                }
                if (b < gs) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b));
                    acc = acc.add((IntVector) p.convertShape(VectorOperators.S2I, I, 0)).add((IntVector) p.convertShape(VectorOperators.S2I, I, 1));
                }
                acc.intoArray(scratch, k * LANES);
                col = col + 1 == ng ? 0 : col + 1;
            }
            transposeSum(scratch, dots, G);
        }
        for (; G < groups; G++) {
            dots[G] = scalarDot(values, (firstGroup + G) * gs, x, col * gs, gs);
            col = col + 1 == ng ? 0 : col + 1;
        }
    }

    private static int scalarDot(MemorySegment values, long off, short[] x, int xOff, int gs) {
        int sum = 0;
        for (int k = 0; k < gs; k++) {
            sum += values.get(ValueLayout.JAVA_BYTE, off + k) * x[xOff + k];
        }
        return sum;
    }

    private static int scalarDot(MemorySegment values, long off, int[] x, int xOff, int gs) {
        int sum = 0;
        for (int k = 0; k < gs; k++) {
            sum += values.get(ValueLayout.JAVA_BYTE, off + k) * x[xOff + k];
        }
        return sum;
    }

    /** As {@link #dotsShorts} with 32-bit products (group sizes that are odd multiples of 16, or activations holding -128). */
    private static void dotsInts(MemorySegment values, long firstGroup, int groups, int ng, int gs, int[] x,
                                 int[] scratch, int[] dots) {
        int col = 0;
        int G = 0;
        for (; G + LANES <= groups; G += LANES) {
            for (int k = 0; k < LANES; k++) {
                long off = (firstGroup + G + k) * gs;
                int xOff = col * gs;
                IntVector acc = ((IntVector) ByteVector.fromMemorySegment(B_FOR_I, values, off, LE)
                        .convertShape(VectorOperators.B2I, I, 0)).mul(IntVector.fromArray(I, x, xOff));
                for (int b = LANES; b < gs; b += LANES) {
                    IntVector wv = (IntVector) ByteVector.fromMemorySegment(B_FOR_I, values, off + b, LE)
                            .convertShape(VectorOperators.B2I, I, 0);
                    acc = acc.add(wv.mul(IntVector.fromArray(I, x, xOff + b)));
                }
                acc.intoArray(scratch, k * LANES);
                col = col + 1 == ng ? 0 : col + 1;
            }
            transposeSum(scratch, dots, G);
        }
        for (; G < groups; G++) {
            dots[G] = scalarDot(values, (firstGroup + G) * gs, x, col * gs, gs);
            col = col + 1 == ng ? 0 : col + 1;
        }
    }

    /** scratch holds L vectors of L partial sums; their L totals go to dots[at .. at+L). */
    private static void transposeSum(int[] scratch, int[] dots, int at) {
        if (LANES >= 16) {
            for (int k = 0; k < 8; k++) {
                combine(LO16, HI16, scratch, 2 * k, k);
            }
        }
        if (LANES >= 8) {
            for (int k = 0; k < 4; k++) {
                combine(LO8, HI8, scratch, 2 * k, k);
            }
        }
        for (int k = 0; k < 2; k++) {
            combine(LO4, HI4, scratch, 2 * k, k);
        }
        IntVector a = IntVector.fromArray(I, scratch, 0), b = IntVector.fromArray(I, scratch, LANES);
        LO2.selectFrom(a, b).add(HI2.selectFrom(a, b)).intoArray(dots, at);
    }

    private static void combine(IntVector lo, IntVector hi, int[] scratch, int from, int to) {
        IntVector a = IntVector.fromArray(I, scratch, from * LANES), b = IntVector.fromArray(I, scratch, (from + 1) * LANES);
        lo.selectFrom(a, b).add(hi.selectFrom(a, b)).intoArray(scratch, to * LANES);
    }

    private static boolean containsMinus128(byte[] xq, int n) {
        for (int i = 0; i < n; i++) {
            if (xq[i] == Byte.MIN_VALUE) {
                return true;
            }
        }
        return false;
    }
}
