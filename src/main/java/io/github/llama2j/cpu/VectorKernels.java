package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The default (fast) kernels, with the Vector API at the preferred species (512, 256 or 128 bits:
 * {@code -XX:MaxVectorSize} picks it, as the tests do to run every width on one machine).
 *
 * <p>A matmul streams the whole weight matrix once per token, so these kernels are limited by
 * memory bandwidth, not arithmetic: what matters is reading the weights in long sequential streams
 * with enough independent work in flight.
 *
 * <ul>
 *   <li><b>Float32</b>: four rows per pass share each load of x, each row with its own FMA
 *       accumulator (four independent chains hide the FMA latency). The summation order differs
 *       from run.c's, so logits move by a few ulps (about 1e-6 relative); use
 *       {@link ExactVectorKernels} for run.c's order.</li>
 *   <li><b>Q8_0</b>: bit-identical to runq (each group's int dot is exact in any order, and the
 *       groups are accumulated in float one after another). On the load-time packed copy when the engine
 *       made one ({@link PreparedWeights}, {@link Q8Matmul#matmulPacked}: rows in the lanes); else, at every
 *       width of 128 bits and up, for group sizes that are multiples of the int lane count, {@link Q8Matmul}; otherwise a
 *       per-group vector dot (multiples of a smaller int width) or the scalar kernel (tiny test
 *       models' group size 4).</li>
 *   <li><b>GGML types</b> (F16, BF16, Q8_0, Q4_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; Q5_0 is Q8_0 from the load on): {@link GgmlMatmul}.</li>
 * </ul>
 */
public final class VectorKernels implements Kernels {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int FL = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    /**
     * Ints of the preferred width (I) and of half of it (IH, for group sizes like 8 on AVX-512), and
     * the bytes that widen to them, one int lane per byte. The smallest byte vector is 64 bits, so a
     * width with fewer than 8 int lanes is not used (null): those group sizes take the scalar path.
     */
    private static final VectorSpecies<Integer> I = intSpecies(IntVector.SPECIES_PREFERRED.vectorBitSize());
    private static final VectorSpecies<Byte> B = byteSpeciesFor(I);
    private static final VectorSpecies<Integer> IH = intSpecies(IntVector.SPECIES_PREFERRED.vectorBitSize() / 2);
    private static final VectorSpecies<Byte> BH = byteSpeciesFor(IH);

    private static final ScalarKernels SCALAR = new ScalarKernels();

    /**
     * Refuses this JVM's preferred float vectors if the kernels' row sums do not take them (they take 128, 256 and 512
     * bits, {@link LaneSums#check}); called before an engine is made, with exit code 3 and what to do.
     */
    public static void checkVectorWidth() {
        LaneSums.check(F.length());
    }

    @Override
    public String name() {
        return "vector" + F.vectorBitSize();
    }

    // ------------------------------------------------------------------ float32

    @Override
    public void matmulF32(float[] out, float[] x, Matrix.F32 w, int r0, int r1) {
        int n = w.cols();
        MemorySegment data = w.data();
        long rowBytes = (long) n * Float.BYTES;
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            rows4(out, x, data, r, n, rowBytes);
        }
        for (; r < r1; r++) {
            out[r] = row(x, data, r * rowBytes, n);
        }
    }

    /** out[r..r+3]: four rows at once, each x vector loaded once for all four. */
    private static void rows4(float[] out, float[] x, MemorySegment data, int r, int n, long rowBytes) {
        long b0 = r * rowBytes, b1 = b0 + rowBytes, b2 = b1 + rowBytes, b3 = b2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
        int upper = F.loopBound(n);
        int j = 0;
        for (; j < upper; j += FL) {
            FloatVector xv = FloatVector.fromArray(F, x, j);
            long o = (long) j * Float.BYTES;
            a0 = FloatVector.fromMemorySegment(F, data, b0 + o, LE).fma(xv, a0);
            a1 = FloatVector.fromMemorySegment(F, data, b1 + o, LE).fma(xv, a1);
            a2 = FloatVector.fromMemorySegment(F, data, b2 + o, LE).fma(xv, a2);
            a3 = FloatVector.fromMemorySegment(F, data, b3 + o, LE).fma(xv, a3);
        }
        FloatVector a0Sum = a0; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a0Sum = a0Sum.add(a0Sum.rearrange(LaneSums.P2)); }
        float s0 = (a0Sum.lane(0) + a0Sum.lane(2)) + (a0Sum.lane(1) + a0Sum.lane(3));
        FloatVector a1Sum = a1; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a1Sum = a1Sum.add(a1Sum.rearrange(LaneSums.P2)); }
        float s1 = (a1Sum.lane(0) + a1Sum.lane(2)) + (a1Sum.lane(1) + a1Sum.lane(3));
        FloatVector a2Sum = a2; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a2Sum = a2Sum.add(a2Sum.rearrange(LaneSums.P2)); }
        float s2 = (a2Sum.lane(0) + a2Sum.lane(2)) + (a2Sum.lane(1) + a2Sum.lane(3));
        FloatVector a3Sum = a3; // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { a3Sum = a3Sum.add(a3Sum.rearrange(LaneSums.P2)); }
        float s3 = (a3Sum.lane(0) + a3Sum.lane(2)) + (a3Sum.lane(1) + a3Sum.lane(3));
        for (; j < n; j++) {
            long o = (long) j * Float.BYTES;
            float xj = x[j];
            s0 += data.get(ScalarKernels.FLOAT, b0 + o) * xj;
            s1 += data.get(ScalarKernels.FLOAT, b1 + o) * xj;
            s2 += data.get(ScalarKernels.FLOAT, b2 + o) * xj;
            s3 += data.get(ScalarKernels.FLOAT, b3 + o) * xj;
        }
        out[r] = s0;
        out[r + 1] = s1;
        out[r + 2] = s2;
        out[r + 3] = s3;
    }

    /** One row, two accumulators (the leftover rows of a range). */
    private static float row(float[] x, MemorySegment data, long base, int n) {
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
        int upper2 = n - n % (2 * FL);
        int j = 0;
        for (; j < upper2; j += 2 * FL) {
            long o = base + (long) j * Float.BYTES;
            a0 = FloatVector.fromMemorySegment(F, data, o, LE).fma(FloatVector.fromArray(F, x, j), a0);
            a1 = FloatVector.fromMemorySegment(F, data, o + FL * 4L, LE).fma(FloatVector.fromArray(F, x, j + FL), a1);
        }
        for (; j < F.loopBound(n); j += FL) {
            a0 = FloatVector.fromMemorySegment(F, data, base + (long) j * Float.BYTES, LE).fma(FloatVector.fromArray(F, x, j), a0);
        }
        FloatVector aSum = a0.add(a1); // the lanes' sum in LaneSums' order, written out here (a method per row was slower: LaneSums)
        if (LaneSums.P_STEPS > 2) { aSum = aSum.add(aSum.rearrange(LaneSums.P1)); }
        if (LaneSums.P_STEPS > 3) { aSum = aSum.add(aSum.rearrange(LaneSums.P2)); }
        float sum = (aSum.lane(0) + aSum.lane(2)) + (aSum.lane(1) + aSum.lane(3));
        for (; j < n; j++) {
            sum += data.get(ScalarKernels.FLOAT, base + (long) j * Float.BYTES) * x[j];
        }
        return sum;
    }

    // ------------------------------------------------------------------ Q8_0, bit-exact with runq

    @Override
    public void matmulQ8(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1) {
        q8(out, xq, xs, w, r0, r1);
    }

    @Override
    public void matmulQ8(float[] out, Activations x, Matrix.Q8 w, int r0, int r1) {
        q8(out, x, w, r0, r1);
    }

    /**
     * The Q8 kernel on prepared activations and the file's layout, shared with {@link ExactVectorKernels} (the
     * load-time packed copy, when there is one, is read by {@link #matmulPackedQ8}).
     */
    static void q8(float[] out, Activations x, Matrix.Q8 w, int r0, int r1) {
        if (Q8Matmul.handles(w.groupSize())) {
            Q8Matmul.matmul(out, x.q8Input, w, r0, r1);
        } else {
            q8(out, x.q8, x.q8Scales, w, r0, r1);
        }
    }

    /** The Q8 kernel shared with {@link ExactVectorKernels} (it is exact already). */
    static void q8(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1) {
        int gs = w.groupSize();
        if (Q8Matmul.handles(gs)) {
            Q8Matmul.matmul(out, xq, xs, w, r0, r1);
        } else if (I != null && gs % I.length() == 0) {
            q8Full(out, widen(xq, w.cols()), xs, w, r0, r1);
        } else if (IH != null && gs % IH.length() == 0) {
            q8Half(out, widen(xq, w.cols()), xs, w, r0, r1);
        } else {
            SCALAR.matmulQ8(out, xq, xs, w, r0, r1);
        }
    }

    /** The activations as ints, so that each weight load needs only one widening (the fallback paths). */
    private static int[] widen(byte[] xq, int n) {
        int[] xi = new int[n];
        for (int i = 0; i < n; i++) {
            xi[i] = xq[i];
        }
        return xi;
    }

    /*
     * q8Full and q8Half are the same loop over two vector widths, on purpose: with the species passed as
     * arguments instead of read from static finals, C2 no longer intrinsifies the vector operations and
     * the half-width path ran 8x slower (stories15M-shaped Q8, group size 24, 2 threads, bench tg64:
     * 30 vs 230-280 tok/s).
     */
    private static void q8Full(float[] out, int[] xi, float[] xs, Matrix.Q8 w, int r0, int r1) {
        int n = w.cols(), gs = w.groupSize(), lanes = I.length();
        MemorySegment values = w.values(), scales = w.scales();
        for (int r = r0; r < r1; r++) {
            long in = (long) r * n;
            long sIn = in / gs * Float.BYTES;
            float val = 0.0f;
            for (int j = 0, g = 0; j < n; j += gs, g++) {
                IntVector acc = IntVector.zero(I);
                for (int k = 0; k < gs; k += lanes) {
                    IntVector wv = (IntVector) ByteVector.fromMemorySegment(B, values, in + j + k, LE)
                            .convertShape(VectorOperators.B2I, I, 0);
                    acc = acc.add(wv.mul(IntVector.fromArray(I, xi, j + k)));
                }
                int ival = acc.reduceLanes(VectorOperators.ADD);
                val += ((float) ival * scales.get(ScalarKernels.FLOAT, sIn + (long) g * Float.BYTES)) * xs[g];
            }
            out[r] = val;
        }
    }

    private static void q8Half(float[] out, int[] xi, float[] xs, Matrix.Q8 w, int r0, int r1) {
        int n = w.cols(), gs = w.groupSize(), lanes = IH.length();
        MemorySegment values = w.values(), scales = w.scales();
        for (int r = r0; r < r1; r++) {
            long in = (long) r * n;
            long sIn = in / gs * Float.BYTES;
            float val = 0.0f;
            for (int j = 0, g = 0; j < n; j += gs, g++) {
                IntVector acc = IntVector.zero(IH);
                for (int k = 0; k < gs; k += lanes) {
                    IntVector wv = (IntVector) ByteVector.fromMemorySegment(BH, values, in + j + k, LE)
                            .convertShape(VectorOperators.B2I, IH, 0);
                    acc = acc.add(wv.mul(IntVector.fromArray(IH, xi, j + k)));
                }
                int ival = acc.reduceLanes(VectorOperators.ADD);
                val += ((float) ival * scales.get(ScalarKernels.FLOAT, sIn + (long) g * Float.BYTES)) * xs[g];
            }
            out[r] = val;
        }
    }

    private static VectorSpecies<Integer> intSpecies(int bits) {
        return bits / Integer.SIZE >= 8 ? IntVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(bits)) : null;
    }

    private static VectorSpecies<Byte> byteSpeciesFor(VectorSpecies<Integer> ints) {
        return ints == null ? null : ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(ints.length() * Byte.SIZE));
    }
}
