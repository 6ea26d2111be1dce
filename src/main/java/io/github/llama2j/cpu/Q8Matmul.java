package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
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
 *       one L-lane int vector; then a transposing reduction (log2 L rounds of lane permutes, adds and blends)
 *       turns L such vectors into one vector holding the L group totals. A per-group horizontal
 *       sum ({@code reduceLanes}) costs several times more than the whole dot product.</li>
 *   <li><b>Scaling.</b> {@code ((float) idot * wScale) * xScale} for all the block's groups at once:
 *       elementwise, so vectorizing it changes no rounding.</li>
 *   <li><b>Accumulation.</b> Each row adds its group terms in order, as runq does (scalar).</li>
 * </ol>
 * For group sizes that are multiples of 2L the products are formed in 16-bit lanes (an int8 × int8
 * product fits, and so does the sum of two when the activations are in [-127, 127], which runq's
 * quantizer guarantees; activations holding -128 take the 32-bit path): bytes widened to shorts
 * ({@code vpmovsxbw}), multiplied ({@code vpmullw}), two products added, then widened to ints by
 * shifts (see {@link #dotsShorts}). The Vector API has no pairwise multiply-add ({@code vpmaddwd} or
 * {@code vpmaddubsw}) and C2 forms none from these operations, so this is the shortest sequence found. Other
 * multiples of L use 32-bit lanes. One source serves every width: all species derive from the
 * preferred one, so {@code -XX:MaxVectorSize} (the tests' width selection) picks the path.
 * {@link #SUPPORTED} says whether a width applies (at least 4 int lanes).
 *
 * <p>The engine's one-token products read the matrices' load-time packed copies instead ({@link #matmulPacked}:
 * the rows in the lanes, no horizontal sums; 1.8-2.1x this kernel at 512 bits); this kernel serves when there is
 * no copy (the memory rule of {@link PreparedWeights}, a test's matrix) and for activations holding -128.
 *
 * <p>The activations' widened forms are made once per input ({@link Input}, kept in {@link Activations});
 * each thread's scratch is its own ({@link #SCRATCH}), so a call allocates nothing.
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
     * The transposing reduction: in a round, two vectors a and b in which each "owner" (a group) holds
     * a block of `block` lanes are folded: a + a.rearrange(swap the halves of every block) holds each
     * of a's block sums in both halves, likewise b, and a blend takes a's in the lower halves and b's
     * in the upper ones: twice as many owners with blocks half as long. Single-source permutes and a
     * blend: a two-vector selectFrom compiles to four vpermd, two blends and mask arithmetic with
     * AVX2 (JDK 25), one vpermt2d with AVX-512; the fold measured 3-4% faster for the whole kernel at
     * 256 bits and the same at 512 (single thread, in-cache weights, loaded machine: see
     * docs/measurements/2026-12-02-cpu-avx2.md). The owners end in a bit-reversed order, so the
     * partial sums of group k are stored in row SLOT[k]. A round is skipped (null) where the vector is
     * narrower than its block.
     */
    private static final VectorShuffle<Integer> SW16 = swap(16), SW8 = swap(8), SW4 = swap(4), SW2 = swap(2);
    private static final VectorMask<Integer> UP16 = upper(16), UP8 = upper(8), UP4 = upper(4), UP2 = upper(2);
    /** The scratch row into which group k's partial sums go, so that its total ends in lane k. */
    private static final int[] SLOT = slots();

    private static VectorShuffle<Integer> swap(int block) {
        if (!SUPPORTED || block > LANES) {
            return null;
        }
        int[] idx = new int[LANES];
        for (int l = 0; l < LANES; l++) {
            idx[l] = l ^ (block / 2);
        }
        return VectorShuffle.fromArray(I, idx, 0);
    }

    private static VectorMask<Integer> upper(int block) {
        if (!SUPPORTED || block > LANES) {
            return null;
        }
        boolean[] m = new boolean[LANES];
        for (int l = 0; l < LANES; l++) {
            m[l] = l % block >= block / 2;
        }
        return VectorMask.fromArray(I, m, 0);
    }

    private static int[] slots() {
        int[] slot = new int[Math.max(LANES, 1)];
        if (!SUPPORTED) {
            return slot;
        }
        // which input row's total each lane holds after the rounds of transposeSum
        int[][] owner = new int[LANES][LANES];
        for (int r = 0; r < LANES; r++) {
            java.util.Arrays.fill(owner[r], r);
        }
        int live = LANES;
        for (int block = LANES; block >= 2; block /= 2) {
            for (int k = 0; k < live / 2; k++) {
                int[] a = owner[2 * k], b = owner[2 * k + 1], c = new int[LANES];
                for (int l = 0; l < LANES; l++) {
                    c[l] = l % block >= block / 2 ? b[l] : a[l];
                }
                owner[k] = c;
            }
            live /= 2;
        }
        for (int l = 0; l < LANES; l++) {
            slot[l] = owner[0][l];
        }
        return slot;
    }

    private Q8Matmul() {
    }

    @SuppressWarnings("unchecked")
    private static <E> VectorSpecies<E> species(VectorSpecies<E> like, int bits) {
        return (VectorSpecies<E>) like.withShape(VectorShape.forBitSize(bits));
    }

    /** Whether {@link #matmul} handles this group size. */
    static boolean handles(int groupSize) {
        return SUPPORTED && (groupSize % SL == 0 || B_FOR_I != null && groupSize % LANES == 0);
    }

    /** Whether {@link #matmulPacked} reads a packed copy for this group size (whole steps of four columns, activations prepared). */
    static boolean handlesPacked(int groupSize) {
        return handles(groupSize) && groupSize % 4 == 0;
    }

    /** Per-thread scratch: the transposing reduction's L vectors of L ints, a block's dots and terms (grown on demand). */
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private static final class Scratch {
        final int[] sums = new int[LANES * LANES];
        int[] dots = new int[0];
        float[] terms = new float[0];
    }

    /**
     * The activations in the forms the kernel reads, prepared once per input ({@link Activations#prepareFor})
     * and then only read by the workers.
     */
    static final class Input {
        private int n, groupSize;
        /** 16-bit path: the activations as shorts. */
        short[] x16 = new short[0];
        /** 32-bit path: the activations as ints (group sizes 16-bit lanes cannot take, or activations holding -128). */
        int[] x32 = new int[0];
        /** The group scales repeated for each row of a block of L rows: xsTiled[i] = xs[i % ng]. */
        float[] xsTiled = new float[0];
        /** The packed kernel's activation pairs: x2[k] holds x[2k] in its low 16 bits and x[2k + 1] in its high 16 bits. */
        int[] x2 = new int[0];
        byte[] xq;
        float[] xs;
        boolean minus128;

        /**
         * Sizes every array for inputs of up to {@code capacity} values in groups of {@code gs}, so that {@link #prepare}
         * never grows one. Why it matters: C2 compiles {@code prepare} from the warm-up's profile, in which the growth
         * had already happened, so the growth branch became a trap, and a fresh engine's first product of each size
         * deoptimized it just as generation started (JFR, 256 bits, 110M Q8_0: two "unstable_if ... reinterpret"
         * events on line {@code x16.length < n} at the first token).
         */
        void reserve(int capacity, int gs) {
            int ng = capacity / gs;
            if (x16.length < capacity) {
                x16 = new short[capacity];
                x32 = new int[capacity];
            }
            if (xsTiled.length < LANES * ng) {
                xsTiled = new float[LANES * ng];
            }
            if (x2.length < capacity / 2) {
                x2 = new int[capacity / 2];
            }
        }

        /** The forms of runq's quantized activations xq[0..n) (group size gs, one scale each in xs). */
        void prepare(byte[] xq, float[] xs, int n, int gs) {
            this.xq = xq;
            this.xs = xs;
            this.n = n;
            this.groupSize = gs;
            int ng = n / gs;
            minus128 = containsMinus128(xq, n);
            reserve(n, gs);
            for (int i = 0; i < n; i++) {
                x16[i] = xq[i];
                x32[i] = xq[i];
            }
            for (int i = 0; i < LANES * ng; i++) {
                xsTiled[i] = xs[i % ng];
            }
            for (int k = 0; k < n / 2; k++) {
                x2[k] = (xq[2 * k] & 0xffff) | xq[2 * k + 1] << 16;
            }
        }
    }

    /** out[r] for r in [r0, r1); requires {@link #handles}(w.groupSize()). */
    static void matmul(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1) {
        Input in = new Input();
        in.prepare(xq, xs, w.cols(), w.groupSize());
        matmul(out, in, w, r0, r1);
    }

    /** out[r] for r in [r0, r1); requires {@link #handles}(w.groupSize()) and {@code in} prepared for w. */
    static void matmul(float[] out, Input in, Matrix.Q8 w, int r0, int r1) {
        int n = w.cols(), gs = w.groupSize(), ng = n / gs;
        if (in.n != n || in.groupSize != gs) {
            throw new IllegalStateException("Q8 activations prepared for " + in.n + " values in groups of " + in.groupSize
                    + ", not " + n + " in groups of " + gs);
        }
        boolean shorts = !in.minus128 && gs % SL == 0;
        if (!shorts && (B_FOR_I == null || gs % LANES != 0)) { // -128 at 128 bits: no 32-bit path there
            new ScalarKernels().matmulQ8(out, in.xq, in.xs, w, r0, r1);
            return;
        }
        int blockGroups = LANES * ng;
        Scratch s = SCRATCH.get();
        if (s.dots.length < blockGroups) {
            s.dots = new int[blockGroups];
            s.terms = new float[blockGroups];
        }
        int[] scratch = s.sums, dots = s.dots;
        float[] terms = s.terms, xsTiled = in.xsTiled;
        MemorySegment values = w.values(), scales = w.scales();
        for (int r = r0; r < r1; r += LANES) {
            int rows = Math.min(LANES, r1 - r);
            int groups = rows * ng;
            long firstGroup = (long) r * ng;
            // 1. int dot of every group of the block
            if (shorts) {
                dotsShorts(values, firstGroup, groups, ng, gs, in.x16, scratch, dots);
            } else {
                dotsInts(values, firstGroup, groups, ng, gs, in.x32, scratch, dots);
            }
            for (int G = groups - groups % LANES, col = G % ng; G < groups; G++) { // the few left over in a short block
                dots[G] = scalarDot(values, (firstGroup + G) * gs, in.xq, col * gs, gs);
                col = col + 1 == ng ? 0 : col + 1;
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

    /** Rows per group of the packed copy ({@link PackedQ8_0}): one per int lane. */
    static final int PACK_ROWS = Math.max(LANES, 1);
    /** Columns of one row stored together in the packed copy: a short vector holds two columns of each of its rows. */
    static final int PACK_CHUNK = 2;

    /**
     * {@link #matmul} on the load-time packed copy ({@link PackedQ8_0}: {@link #PACK_ROWS} = L rows per group, each
     * pair of columns of the L rows together, 64-byte aligned; scales as floats, the L rows' scales of a group together):
     * bit-identical to runq per row. The rows are in the lanes: one step loads two pairs of columns of the L rows
     * (4L bytes), widens them to shorts and multiplies them by the two activation pairs broadcast to every lane (two
     * products per int lane, and the two steps' products added in shorts: |sum| ≤ 2 · 128 · 127), then splits the
     * shorts into the lanes' int sums ({@code (v << 16) >> 16} and {@code v >> 16}, exact). After a group's columns
     * each lane holds its row's exact int dot, and {@code val += ((float) idot * wScale) * xScale} runs on the L rows at
     * once: each lane adds its row's terms group after group from 0, runq's order, with no horizontal sum at all (the
     * form that keeps the rows in the groups' order needs a transposing reduction per L dots: measured 1.04-1.06x
     * the file's layout only, see docs/measurements/2026-12-03-runq-packed.md). Rows [r0, r1) are written; a packed
     * group that straddles r0 or r1 is computed whole and only its rows in the range are stored. Requires
     * {@link #handlesPacked}(group size); activations holding -128 read the source instead ({@link #matmul}).
     */
    static void matmulPacked(float[] out, Input in, PackedQ8_0 p, int r0, int r1) {
        Matrix.Q8 w = (Matrix.Q8) p.source();
        int n = w.cols(), gs = w.groupSize(), ng = n / gs;
        if (in.n != n || in.groupSize != gs) {
            throw new IllegalStateException("Q8 activations prepared for " + in.n + " values in groups of " + in.groupSize
                    + ", not " + n + " in groups of " + gs);
        }
        if (!handlesPacked(gs)) {
            throw new IllegalArgumentException("the packed Q8 kernel does not read group size " + gs + " at " + I.vectorBitSize() + " bits");
        }
        if (in.minus128) { // the 16-bit sums of two products could overflow: the source, with 32-bit products
            matmul(out, in, w, r0, r1);
            return;
        }
        float[] ws = p.scales(), xs = in.xs;
        int[] x2 = in.x2;
        MemorySegment q = p.quants();
        int groups = (r1 + PACK_ROWS - 1) / PACK_ROWS;
        for (int pk = r0 / PACK_ROWS; pk < groups; pk++) {
            long off = (long) pk * PACK_ROWS * n;
            int s = pk * ng * PACK_ROWS;
            FloatVector val = FloatVector.zero(F);
            for (int g = 0; g < ng; g++, s += PACK_ROWS) {
                IntVector acc = IntVector.zero(I);
                for (int c = g * gs / 2, end = c + gs / 2; c < end; c += 2, off += 4 * PACK_ROWS) {
                    ShortVector w01 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, q, off, LE).convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w23 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, q, off + 2 * PACK_ROWS, LE).convertShape(VectorOperators.B2S, S, 0);
                    IntVector v = w01.mul(IntVector.broadcast(I, x2[c]).reinterpretAsShorts())
                            .add(w23.mul(IntVector.broadcast(I, x2[c + 1]).reinterpretAsShorts())).reinterpretAsInts();
                    acc = acc.add(v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)).add(v.lanewise(VectorOperators.ASHR, 16));
                }
                val = val.add(((FloatVector) acc.convert(VectorOperators.I2F, 0)).mul(FloatVector.fromArray(F, ws, s)).mul(xs[g]));
            }
            int r = pk * PACK_ROWS;
            if (r >= r0 && r + PACK_ROWS <= r1) {
                val.intoArray(out, r);
            } else { // a group at an end of the range (or the padded last group): its rows in [r0, r1) only
                for (int i = Math.max(r, r0); i < Math.min(r + PACK_ROWS, r1); i++) {
                    out[i] = val.lane(i - r);
                }
            }
        }
    }

    /*
     * The dot loops below are written out in full, without helpers returning vectors: a vector
     * returned by a method that C2 does not inline gets boxed, which costs more than the arithmetic.
     */

    /**
     * dots[i] = int dot of group firstGroup + i for i in [0, groups - groups % L), with 16-bit products
     * (two summed per lane before widening to int), L groups at a time. The pair of products in each
     * short lane is widened by reading the shorts as ints and splitting each int with shifts: its low
     * short is (v << 16) >> 16 and its high short v >> 16 (arithmetic), both exact. That is the same sum
     * as convertShape(S2I, part 0) + convertShape(S2I, part 1), and with AVX2 faster: JDK 25 compiles
     * part 1 there to a general two-lane permute (vperm2i128, two vpshufb, two vpblendvb) before the
     * vpmovsxwd, and the shifts made the whole kernel about 1.3x faster (single thread, in-cache weights,
     * loaded machine; same speed at 512 bits; see docs/measurements/2026-12-02-cpu-avx2.md).
     */
    private static void dotsShorts(MemorySegment values, long firstGroup, int groups, int ng, int gs, short[] x,
                                   int[] scratch, int[] dots) {
        int col = 0; // the group's index within its row (blocks start at a row)
        for (int G = 0; G + LANES <= groups; G += LANES) {
            for (int k = 0; k < LANES; k++) {
                long off = (firstGroup + G + k) * gs;
                int xOff = col * gs;
                // The first 2 SL (or SL) bytes outside any loop: a loop that runs once costs more than its body here.
                IntVector acc;
                int b = 0;
                // Four short vectors of products where the group size allows (runq's 64 at 256 bits: the whole group, no
                // loop): 1.10-1.21x the kernel with two at 256 bits (6 A/B pairs, one core, thread CPU time, in cache and
                // from DRAM, loaded machine: docs/measurements/2026-12-03-avx2.md). A loop of four-vector steps as well
                // would exceed C2's inlining node budget (NodeCountInliningCutoff; see the measurement page).
                if (gs % (4 * SL) == 0) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + SL, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w2 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + 2 * SL, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w3 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + 3 * SL, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    IntVector p01 = w0.mul(ShortVector.fromArray(S, x, xOff))
                            .add(w1.mul(ShortVector.fromArray(S, x, xOff + SL))).reinterpretAsInts();
                    IntVector p23 = w2.mul(ShortVector.fromArray(S, x, xOff + 2 * SL))
                            .add(w3.mul(ShortVector.fromArray(S, x, xOff + 3 * SL))).reinterpretAsInts();
                    acc = p01.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(p01.lanewise(VectorOperators.ASHR, 16))
                            .add(p23.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(p23.lanewise(VectorOperators.ASHR, 16)));
                    b = 4 * SL;
                } else if (gs % (2 * SL) == 0) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b + SL, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b))
                            .add(w1.mul(ShortVector.fromArray(S, x, xOff + b + SL)));
                    IntVector pi = p.reinterpretAsInts();
                    acc = pi.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(pi.lanewise(VectorOperators.ASHR, 16));
                    b = 2 * SL;
                } else {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b));
                    IntVector pi = p.reinterpretAsInts();
                    acc = pi.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(pi.lanewise(VectorOperators.ASHR, 16));
                    b = SL;
                }
                for (; b + 2 * SL <= gs; b += 2 * SL) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b + SL, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b))
                            .add(w1.mul(ShortVector.fromArray(S, x, xOff + b + SL)));
                    IntVector pi = p.reinterpretAsInts();
                    acc = acc.add(pi.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)).add(pi.lanewise(VectorOperators.ASHR, 16));
                }
                if (b < gs) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B_FOR_S, values, off + b, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    ShortVector p = w0.mul(ShortVector.fromArray(S, x, xOff + b));
                    IntVector pi = p.reinterpretAsInts();
                    acc = acc.add(pi.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)).add(pi.lanewise(VectorOperators.ASHR, 16));
                }
                acc.intoArray(scratch, SLOT[k] * LANES);
                col = col + 1 == ng ? 0 : col + 1;
            }
            transposeSum(scratch, dots, G);
        }
    }

    /** As {@link #dotsShorts} with 32-bit products (group sizes that are odd multiples of L, or activations holding -128). */
    private static void dotsInts(MemorySegment values, long firstGroup, int groups, int ng, int gs, int[] x,
                                 int[] scratch, int[] dots) {
        int col = 0;
        for (int G = 0; G + LANES <= groups; G += LANES) {
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
                acc.intoArray(scratch, SLOT[k] * LANES);
                col = col + 1 == ng ? 0 : col + 1;
            }
            transposeSum(scratch, dots, G);
        }
    }

    private static int scalarDot(MemorySegment values, long off, byte[] x, int xOff, int gs) {
        int sum = 0;
        for (int k = 0; k < gs; k++) {
            sum += values.get(ValueLayout.JAVA_BYTE, off + k) * x[xOff + k];
        }
        return sum;
    }

    /** scratch holds L vectors of L partial sums; their L totals go to dots. */
    private static void transposeSum(int[] scratch, int[] dots, int at) {
        if (LANES >= 16) {
            for (int k = 0; k < 8; k++) {
                fold(SW16, UP16, scratch, 2 * k, k);
            }
        }
        if (LANES >= 8) {
            for (int k = 0; k < 4; k++) {
                fold(SW8, UP8, scratch, 2 * k, k);
            }
        }
        for (int k = 0; k < 2; k++) {
            fold(SW4, UP4, scratch, 2 * k, k);
        }
        IntVector a = IntVector.fromArray(I, scratch, 0), b = IntVector.fromArray(I, scratch, LANES);
        a.add(a.rearrange(SW2)).blend(b.add(b.rearrange(SW2)), UP2).intoArray(dots, at);
    }

    private static void fold(VectorShuffle<Integer> swap, VectorMask<Integer> upper, int[] scratch, int from, int to) {
        IntVector a = IntVector.fromArray(I, scratch, from * LANES), b = IntVector.fromArray(I, scratch, (from + 1) * LANES);
        a.add(a.rearrange(swap)).blend(b.add(b.rearrange(swap)), upper).intoArray(scratch, to * LANES);
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
