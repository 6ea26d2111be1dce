package io.github.llama2j.math;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.util.SplittableRandom;

/**
 * A vectorized float32 {@code exp} that returns, on every float input, the very float the platform C library's
 * {@code expf} returns ({@link CLibraryMath}): used for softmax and SwiGLU, where one foreign call per element
 * cost 3.6–7 ns (docs/measurements/2026-12-03-prefill.md).
 *
 * <p>How it can equal a function it does not reproduce: each lane computes exp(x) in double precision, far more
 * accurately than a float needs (relative error below 2^-45, see below), then rounds that double to float. That
 * float is the correctly rounded exp(x) unless the exact value lies near a midpoint between two floats; the C
 * library's expf is correctly rounded there too, unless it is also near a midpoint (glibc's documents 0.502 ulp:
 * its own error before the final rounding is about 2^-9 ulp). So a lane whose double lies within
 * {@link #WINDOW} (in units of the double's last bit, 2^-29 of a float ulp: 2^-8 ulp) of a float midpoint is
 * handed to the C library instead, as is every lane outside [{@link #LOW}, {@link #HIGH}] (subnormal results,
 * overflow, NaN) except those below {@link #ZERO_BELOW}, whose exp rounds to +0 (the C library's result there; a
 * softmax over a long context has many such lanes: with one foreign call each, they were most of a prompt's
 * softmax time on the random-weight benchmark models). 0.19% of the floats in range take that path (the sweep; uniform tails would give 2^22 / 2^29 =
 * 0.8%), and the largest midpoint distance at which the rounded double and glibc disagreed was 878,793 last bits,
 * 42% of the window.
 *
 * <p>That this equals the C library is a measured fact about a C library, not a theorem: {@code ExpfSweep} (a main
 * in the tests) compared it on every finite float, once, against this machine's glibc (2026-12-03 page); the
 * engine only uses it after {@link #selfCheck} agreed on random inputs and on the inputs nearest the window's
 * edge on that sweep ({@link FloatMath#vectorized()}).
 *
 * <p>The double computation, per lane: {@code k = rint(x / ln 2)} (the 1.5 · 2^52 shift), {@code u = x - k·ln 2}
 * with ln 2 split in a high and a low double, each product subtracted with one fused multiply-add (|u| ≤ 0.35,
 * error about 2^-54), {@code e^u} by its Taylor polynomial of degree 11 in Horner's form (truncation
 * 0.35^12 / 12! ≈ 2^-47 relative, evaluation a few 2^-53), and {@code 2^k} added to the exponent bits. The
 * midpoint test reads the double's 29 bits below a float's 24.
 */
public final class VectorExpf {
    /** Double lanes; the float inputs are loaded in as many lanes (half the width). */
    static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(D.vectorBitSize() / 2));
    /** Elements per vector step. */
    public static final int LANES = D.length();

    /** Inputs below this give subnormal floats (e^-87.33 &gt; 2^-126), above it overflow: the C library's. */
    static final float LOW = -87.33f, HIGH = 88.7f;
    /**
     * Inputs below this (and -infinity) give +0: e^-104 &lt; 2^-150, half the smallest subnormal, so exp rounds to 0
     * in every rounding of a correctly rounded or 0.502-ulp expf (glibc: 0 below -103.97208).
     */
    static final float ZERO_BELOW = -104.0f;
    /** Half-width of the band around a float midpoint, in units of the double's last bit, handed to the C library. */
    static final long WINDOW = 1L << 21;
    /** The low double bits below a float's mantissa, and their midpoint. */
    private static final long TAIL_MASK = (1L << 29) - 1, MIDPOINT = 1L << 28;

    static final double INV_LN2 = 1.4426950408889634;      // 1 / ln 2, rounded
    static final double LN2_HI = 0.6931471805599453;       // ln 2, rounded
    static final double LN2_LO = 2.3190468138462996e-17;   // ln 2 - LN2_HI
    static final double SHIFT = 0x1.8p52;                  // x + SHIFT - SHIFT = rint(x) for |x| < 2^51
    private static final long SHIFT_BITS = Double.doubleToRawLongBits(SHIFT);
    /** 1 / j!, j = 0..11 (read by ExpfSweep's scalar copy of the lane arithmetic). */
    static final double[] TAYLOR = new double[12];

    static {
        double f = 1.0;
        for (int j = 0; j < TAYLOR.length; j++) {
            if (j > 0) {
                f *= j;
            }
            TAYLOR[j] = 1.0 / f;
        }
    }

    private static final double C0 = TAYLOR[0], C1 = TAYLOR[1], C2 = TAYLOR[2], C3 = TAYLOR[3], C4 = TAYLOR[4],
            C5 = TAYLOR[5], C6 = TAYLOR[6], C7 = TAYLOR[7], C8 = TAYLOR[8], C9 = TAYLOR[9], C10 = TAYLOR[10],
            C11 = TAYLOR[11];

    private VectorExpf() {
    }

    /**
     * x[off+i] = expf(x[off+i] - shift) for i in [0, n), the subtraction in float (softmax's form); equal to
     * n calls of {@code libm.exp}.
     */
    static void expShifted(float[] x, int off, int n, float shift, FloatMath libm) {
        expInto(x, off, off + n, 1.0f, shift, x, off, libm);
    }

    /** Elements of SwiGLU's exp per step (a scratch of this many floats per thread). */
    private static final int SWIGLU_STEP = 256;

    /**
     * Each thread's scratch for {@link #swiglu}'s exps and {@link #expInto}'s inputs handed to the C library. Allocated
     * per call, they were all of a Q8 prefill's allocation (3.75 GB in 12 s of pp512, JFR), and the young
     * generation's growth faulted fresh pages in all along: 3% of its samples in the kernel's page clearing
     * (docs/measurements/2026-12-04-prefill-tile-read.md).
     */
    private static final ThreadLocal<float[]> SWIGLU_SCRATCH = ThreadLocal.withInitial(() -> new float[SWIGLU_STEP]);
    private static final ThreadLocal<float[]> LIBM_INPUTS = ThreadLocal.withInitial(() -> new float[LANES]);

    /** run.c's SwiGLU on [from, to): hb[i] = hb[i] * (1 / (1 + expf(-hb[i]))) * hb2[i], as libm would give it. */
    static void swiglu(float[] hb, float[] hb2, int from, int to, FloatMath libm) {
        float[] e = SWIGLU_SCRATCH.get();
        for (int step = from; step < to; step += SWIGLU_STEP) {
            int end = Math.min(step + SWIGLU_STEP, to);
            expInto(hb, step, end, -1.0f, 0.0f, e, 0, libm); // e[i - step] = expf(-hb[i])
            int upper = step + F.loopBound(end - step);
            int i = step;
            for (; i < upper; i += LANES) {
                FloatVector val = FloatVector.fromArray(F, hb, i);
                FloatVector ei = FloatVector.fromArray(F, e, i - step);
                val.mul(FloatVector.broadcast(F, 1.0f).div(ei.add(1.0f))).mul(FloatVector.fromArray(F, hb2, i)).intoArray(hb, i);
            }
            for (; i < end; i++) {
                hb[i] = hb[i] * (1.0f / (1.0f + e[i - step])) * hb2[i];
            }
        }
    }

    /**
     * out[outOff + i - from] = expf(a[i] · sign − shift) for i in [from, to) (sign ±1, so the product is exact; the
     * subtraction in float), equal to that many calls of {@code libm.exp}; out may be a itself (outOff = from).
     *
     * <p>One method holds the loop and the whole lane arithmetic, and no vector enters or leaves it: a vector passed
     * to or returned from a call that C2 does not inline is boxed, an allocation per vector. The lane arithmetic as
     * a method of its own (436 bytes of bytecode, above C2's inlining limit for hot calls) was called with a boxed
     * argument per vector: 22% of a Q8 prefill's samples (JFR). Here the loop's constants also stay in registers.
     */
    private static void expInto(float[] a, int from, int to, float sign, float shift, float[] out, int outOff, FloatMath libm) {
        int upper = from + F.loopBound(to - from);
        int i = from;
        float[] in = null; // a vector's inputs, for its lanes that go to the C library (taken when a vector has one)
        for (; i < upper; i += LANES) {
            FloatVector x = FloatVector.fromArray(F, a, i).mul(sign).sub(shift);
            VectorMask<Float> zero = x.compare(VectorOperators.LT, ZERO_BELOW);
            long outOfRange = x.compare(VectorOperators.GE, LOW).and(x.compare(VectorOperators.LE, HIGH)).not().andNot(zero).toLong();
            DoubleVector xd = (DoubleVector) x.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector s = xd.lanewise(VectorOperators.FMA, INV_LN2, SHIFT);
            DoubleVector k = s.sub(SHIFT);
            DoubleVector u = k.lanewise(VectorOperators.FMA, -LN2_HI, xd);
            u = k.lanewise(VectorOperators.FMA, -LN2_LO, u);
            // e^u by its Taylor polynomial of degree 11, Horner's form
            DoubleVector p = u.lanewise(VectorOperators.FMA, C11, C10);
            p = p.lanewise(VectorOperators.FMA, u, C9);
            p = p.lanewise(VectorOperators.FMA, u, C8);
            p = p.lanewise(VectorOperators.FMA, u, C7);
            p = p.lanewise(VectorOperators.FMA, u, C6);
            p = p.lanewise(VectorOperators.FMA, u, C5);
            p = p.lanewise(VectorOperators.FMA, u, C4);
            p = p.lanewise(VectorOperators.FMA, u, C3);
            p = p.lanewise(VectorOperators.FMA, u, C2);
            p = p.lanewise(VectorOperators.FMA, u, C1);
            p = p.lanewise(VectorOperators.FMA, u, C0);
            LongVector pBits = (LongVector) p.viewAsIntegralLanes();
            LongVector kBits = ((LongVector) s.viewAsIntegralLanes()).sub(SHIFT_BITS);
            DoubleVector y = (DoubleVector) pBits.add(kBits.lanewise(VectorOperators.LSHL, 52)).viewAsFloatingLanes();
            int o = outOff + i - from;
            ((FloatVector) y.convertShape(VectorOperators.D2F, F, 0)).blend(0.0f, zero).intoArray(out, o);
            // |tail - midpoint| < WINDOW as two signed compares (a 64-bit abs is AVX-512 only, and boxed on AVX2)
            LongVector tail = pBits.and(TAIL_MASK);
            long bad = tail.compare(VectorOperators.GT, MIDPOINT - WINDOW).and(tail.compare(VectorOperators.LT, MIDPOINT + WINDOW))
                    .toLong() & ~zero.toLong() | outOfRange;
            if (bad != 0) {
                if (in == null) {
                    in = LIBM_INPUTS.get();
                }
                x.intoArray(in, 0); // (not x.lane(j): with a variable index that is a slow path of its own)
                for (; bad != 0; bad &= bad - 1) {
                    int j = Long.numberOfTrailingZeros(bad);
                    out[o + j] = libm.exp(in[j]);
                }
            }
        }
        for (; i < to; i++) {
            out[outOff + i - from] = libm.exp(a[i] * sign - shift);
        }
    }

    /**
     * Whether this equals {@code libm} on random floats over the whole range, on a few edge inputs and on
     * {@link #HARD}, the inputs nearest the window's edge in the sweep: a C library other than the swept one may
     * round those differently.
     */
    public static boolean selfCheck(FloatMath libm, int randomInputs, long seed) {
        float[] in = new float[randomInputs + HARD.length + EDGES.length];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < randomInputs; i++) {
            in[i] = (i & 1) == 0 ? (float) r.nextDouble(-104.0, 89.0) : Float.intBitsToFloat(r.nextInt());
        }
        System.arraycopy(HARD, 0, in, randomInputs, HARD.length);
        System.arraycopy(EDGES, 0, in, randomInputs + HARD.length, EDGES.length);
        float[] out = in.clone();
        expShifted(out, 0, out.length, 0.0f, libm);
        for (int i = 0; i < in.length; i++) {
            if (Float.floatToRawIntBits(out[i]) != Float.floatToRawIntBits(libm.exp(in[i]))) {
                return false;
            }
        }
        return true;
    }

    /**
     * The 16 inputs whose double lay nearest outside the window (2^21 to 2^21 + 10 last bits from a midpoint) in the
     * sweep of 2026-12-03: a C library less accurate than glibc's is most likely to round these otherwise.
     */
    static final float[] HARD = floats(0x367bf7e1, 0xbf294041, 0x3ac872c2, 0xb2fe0000, 0x3b2684ce, 0xbedc8fed, 0xc0e82c04,
            0x3d4ec01f, 0x3d5f039d, 0xbc2fc25a, 0x337dffff, 0x33810000, 0x34407fff, 0x34e03ffd, 0x36fdfbc1, 0xbc1b7494);
    private static final float[] EDGES = {0.0f, -0.0f, LOW, HIGH, Math.nextDown(LOW), Math.nextUp(HIGH), 1e-8f, -1e-8f,
            Float.MIN_VALUE, -Float.MIN_VALUE, 88.72f, -103.9f, -104.0f, ZERO_BELOW, Math.nextDown(ZERO_BELOW),
            Math.nextUp(ZERO_BELOW), -1e30f, -Float.MAX_VALUE, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};

    private static float[] floats(int... bits) {
        float[] f = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            f[i] = Float.intBitsToFloat(bits[i]);
        }
        return f;
    }
}
