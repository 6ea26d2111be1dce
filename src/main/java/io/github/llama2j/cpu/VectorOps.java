package io.github.llama2j.cpu;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The small steps of the forward pass besides matmul and attention, bit-identical to the
 * {@link ScalarKernels} statics in every mode: only elementwise work is vectorized (one rounding
 * per operation either way); the sequential sums stay sequential, and expf/cosf/sinf are the
 * reference's own {@link io.github.llama2j.math.FloatMath} calls. The CPU engine and the hybrid engine's host
 * steps use them.
 */
public final class VectorOps {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Ints and bytes with F's lane count, for quantize (null where no byte vector is that short: 128-bit float vectors). */
    private static final VectorSpecies<Integer> I = F.withLanes(int.class);
    private static final VectorSpecies<Byte> B = F.length() >= 8
            ? ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(F.length() * Byte.SIZE)) : null;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private VectorOps() {
    }

    /** run.c's rmsnorm: out = weight * (x / sqrt(mean(x^2) + 1e-5)); out may be x. */
    public static void rmsnorm(float[] out, float[] x, MemorySegment weight, int size) {
        float ss = ScalarKernels.rmsScale(x, size);
        int j = 0;
        for (; j < F.loopBound(size); j += F.length()) {
            FloatVector.fromMemorySegment(F, weight, (long) j * Float.BYTES, LE)
                    .mul(FloatVector.fromArray(F, x, j).mul(ss))
                    .intoArray(out, j);
        }
        for (; j < size; j++) {
            out[j] = weight.get(ScalarKernels.FLOAT, (long) j * Float.BYTES) * (ss * x[j]);
        }
    }

    /**
     * The cos and sin of RoPE's angles at pos, for each pair (i, i+1) of a head: run.c computes
     * them per pair of every head of every layer, but they depend only on pos and i % head_size.
     */
    static void ropeAngles(int pos, float[] freq, float[] cos, float[] sin, io.github.llama2j.math.FloatMath math) {
        for (int p = 0; p < freq.length; p++) {
            float val = pos * freq[p];
            cos[p] = math.cos(val);
            sin[p] = math.sin(val);
        }
    }

    /** run.c's RoPE with precomputed angles: rotates each pair of q (dim) and of k (its first kvDim). */
    static void rope(float[] q, float[] k, int dim, int kvDim, int headSize, float[] cos, float[] sin) {
        for (int i = 0; i < dim; i += 2) {
            int p = (i % headSize) / 2;
            float fcr = cos[p], fci = sin[p];
            float v0 = q[i], v1 = q[i + 1];
            q[i] = v0 * fcr - v1 * fci;
            q[i + 1] = v0 * fci + v1 * fcr;
            if (i < kvDim) {
                v0 = k[i];
                v1 = k[i + 1];
                k[i] = v0 * fcr - v1 * fci;
                k[i + 1] = v0 * fci + v1 * fcr;
            }
        }
    }

    /** run.c's SwiGLU on [from, to): hb = silu(hb) * hb2, with math's expf ({@link io.github.llama2j.math.FloatMath#swiglu}). */
    static void swiglu(float[] hb, float[] hb2, int from, int to, io.github.llama2j.math.FloatMath math) {
        math.swiglu(hb, hb2, from, to);
    }

    /**
     * runq's quantize, bit-identical to {@link ScalarKernels#quantize}: per group, scale = max|x| / 127
     * and q = (int8) round(x / scale) with C's round (half away from zero). Vectorized exactly:
     * <ul>
     *   <li>the maximum is taken as "replace if greater", so a NaN is skipped as in the reference;</li>
     *   <li>the divisions are the same single roundings;</li>
     *   <li>rounding |v| half up is t + (|v| - t >= 0.5) with t = (int) |v|: the truncation and the
     *       subtraction are exact for |v| < 2^23 (here |v| <= 127), and a NaN gives 0 as C's
     *       conversion of round(NaN) does in the reference ((int) NaN = 0 in Java).</li>
     * </ul>
     * Group sizes that are not a multiple of the vector width use the scalar reference.
     */
    public static void quantize(float[] x, int n, int groupSize, byte[] q, float[] s) {
        quantizeGroups(x, 0, n / groupSize, groupSize, q, s);
    }

    /** {@link #quantize} of groups [g0, g1) only (q and s indexed as for the whole row; the batched prefill's split). */
    static void quantizeGroups(float[] x, int g0, int g1, int groupSize, byte[] q, float[] s) {
        if (B == null || groupSize % F.length() != 0) {
            ScalarKernels.quantizeGroups(x, g0, g1, groupSize, q, s);
            return;
        }
        for (int g = g0; g < g1; g++) {
            int base = g * groupSize;
            FloatVector max = FloatVector.zero(F);
            for (int i = base; i < base + groupSize; i += F.length()) {
                FloatVector a = FloatVector.fromArray(F, x, i).abs();
                max = max.blend(a, a.compare(VectorOperators.GT, max));
            }
            float wmax = max.reduceLanes(VectorOperators.MAX); // max holds no NaN
            float scale = wmax / 127.0f;
            s[g] = scale;
            for (int i = base; i < base + groupSize; i += F.length()) {
                FloatVector v = FloatVector.fromArray(F, x, i).div(scale);
                FloatVector a = v.abs();
                IntVector t = (IntVector) a.convert(VectorOperators.F2I, 0);
                FloatVector frac = a.sub((FloatVector) t.convert(VectorOperators.I2F, 0));
                IntVector r = t.add(1, frac.compare(VectorOperators.GE, 0.5f).cast(I));
                r = r.lanewise(VectorOperators.NEG, v.compare(VectorOperators.LT, 0.0f).cast(I));
                ((ByteVector) r.convertShape(VectorOperators.I2B, B, 0)).intoArray(q, i);
            }
        }
    }

    /** x += y. */
    public static void add(float[] x, float[] y, int size) {
        int i = 0;
        for (; i < F.loopBound(size); i += F.length()) {
            FloatVector.fromArray(F, x, i).add(FloatVector.fromArray(F, y, i)).intoArray(x, i);
        }
        for (; i < size; i++) {
            x[i] += y[i];
        }
    }
}
