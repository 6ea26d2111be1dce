package io.github.llama2j.cpu;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
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
    /** Shorts with F's lane count (the GGML activations' values: {@link #quantizeQ8_0}, {@link #quantizeQ8K}). */
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(F.length() * Short.SIZE));
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
                IntVector r = roundHalfAway(FloatVector.fromArray(F, x, i).div(scale));
                ((ByteVector) r.convertShape(VectorOperators.I2B, B, 0)).intoArray(q, i);
            }
        }
    }

    /**
     * {@link #quantizeGroups} of one group of a vector of tokens at once, in the batched prefill's transposed
     * panels ({@link BatchMatmul#xIndex}): {@code x[at + j * w + lane]} holds column j of the group of token lane,
     * j in [0, groupSize), and is replaced by its runq value (as a float); the tokens' scales go to
     * {@code s[sOff + lane]}. The lanes run across tokens, so each lane takes its token's maximum and divisions as
     * {@link #quantizeGroups} does (the same "replace if greater" maximum, the same roundings): bit-identical, for
     * any group size. A lane of zeros (past the last token) gets scale 0 and values 0, as a zero group does there.
     */
    static void quantizeTokenLanes(float[] x, int at, int w, int groupSize, float[] s, int sOff) {
        FloatVector max = FloatVector.zero(F);
        for (int j = 0, i = at; j < groupSize; j++, i += w) {
            FloatVector a = FloatVector.fromArray(F, x, i).abs();
            max = max.blend(a, a.compare(VectorOperators.GT, max));
        }
        FloatVector scale = max.div(127.0f);
        scale.intoArray(s, sOff);
        for (int j = 0, i = at; j < groupSize; j++, i += w) {
            FloatVector v = FloatVector.fromArray(F, x, i).div(scale);
            ((FloatVector) roundHalfAway(v).convert(VectorOperators.I2F, 0)).intoArray(x, i);
        }
    }

    /**
     * C's round (half away from zero) of each lane, |v| <= 127 or NaN: t + (|v| - t >= 0.5) with t = (int) |v|, the
     * sign put back; NaN gives 0 ({@link #quantize}).
     */
    private static IntVector roundHalfAway(FloatVector v) {
        FloatVector a = v.abs();
        IntVector t = (IntVector) a.convert(VectorOperators.F2I, 0);
        FloatVector frac = a.sub((FloatVector) t.convert(VectorOperators.I2F, 0));
        IntVector r = t.add(1, frac.compare(VectorOperators.GE, 0.5f).cast(I));
        return r.lanewise(VectorOperators.NEG, v.compare(VectorOperators.LT, 0.0f).cast(I));
    }

    /**
     * {@link ScalarKernels#softmax} of four rows at once, bit-identical to four calls of it: row r at
     * {@code x[off + r * stride ..]} holds {@code size0 + r} scores ({@link Attention#heads4}'s four consecutive
     * queries). Each row's maximum is exact in any order, so taken a vector at a time (a NaN is skipped as there,
     * unless the row starts with one; a maximum of ±0 may come out with the other sign, which changes no
     * {@code expf(x - max)}); the exps are {@link io.github.llama2j.math.FloatMath#expShifted}'s; the four sequential
     * sums run interleaved, four independent add chains instead of one at a time, each in its row's order; the
     * divisions a vector at a time (the same single roundings). Four scalar calls were 3.2% of a Q8 pp512's samples
     * (perf, stories110M, 512 bits, 2026-12-05).
     */
    static void softmax4(float[] x, int off, int stride, int size0, io.github.llama2j.math.FloatMath math) {
        int o1 = off + stride, o2 = o1 + stride, o3 = o2 + stride;
        math.expShifted(x, off, size0, max(x, off, size0));
        math.expShifted(x, o1, size0 + 1, max(x, o1, size0 + 1));
        math.expShifted(x, o2, size0 + 2, max(x, o2, size0 + 2));
        math.expShifted(x, o3, size0 + 3, max(x, o3, size0 + 3));
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        for (int i = 0; i < size0; i++) {
            s0 += x[off + i];
            s1 += x[o1 + i];
            s2 += x[o2 + i];
            s3 += x[o3 + i];
        }
        s1 += x[o1 + size0];
        s2 += x[o2 + size0];
        s2 += x[o2 + size0 + 1];
        s3 += x[o3 + size0];
        s3 += x[o3 + size0 + 1];
        s3 += x[o3 + size0 + 2];
        divide(x, off, size0, s0);
        divide(x, o1, size0 + 1, s1);
        divide(x, o2, size0 + 2, s2);
        divide(x, o3, size0 + 3, s3);
    }

    /** The maximum of x[off .. off+size), size ≥ 1, as run.c's "replace if greater" from x[off] finds it (up to the sign of a zero). */
    private static float max(float[] x, int off, int size) {
        FloatVector m = FloatVector.broadcast(F, x[off]);
        int i = 0;
        for (; i < F.loopBound(size); i += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, off + i);
            m = m.blend(v, v.compare(VectorOperators.GT, m));
        }
        float max = m.reduceLanes(VectorOperators.MAX); // NaN only if x[off] is
        for (; i < size; i++) {
            if (x[off + i] > max) {
                max = x[off + i];
            }
        }
        return max;
    }

    /** x[off + i] /= sum for i in [0, size). */
    private static void divide(float[] x, int off, int size, float sum) {
        int i = 0;
        for (; i < F.loopBound(size); i += F.length()) {
            FloatVector.fromArray(F, x, off + i).div(sum).intoArray(x, off + i);
        }
        for (; i < size; i++) {
            x[off + i] /= sum;
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

    // ------------------------------------------------------------------ GGML's activations (llama.cpp's quantizers)

    /**
     * {@link Activations#quantizeQ8_0} a vector at a time, bit-identical to it: per block of 32 the maximum magnitude
     * (exact in any order; a NaN gives NaN there too), the same scalar scale, and each value's
     * {@code round-half-even(x * id)} by {@link #rint} (the same product, then exact). A block whose maximum is not
     * finite, or so small that {@code id} is infinite, takes the scalar code. Called once per input of a Q8_0 or Q4_0
     * product, on the calling thread.
     */
    static void quantizeQ8_0(float[] x, int n, short[] q, float[] scales) {
        int block = Activations.Q8_0_BLOCK;
        if (block % F.length() != 0) { // (never on x86: 4, 8 or 16 lanes)
            Activations.quantizeQ8_0(x, n, q, scales);
            return;
        }
        for (int b = 0; b < n / block; b++) {
            int base = b * block;
            float amax = maxMagnitude(x, base, block);
            if (!(amax < Float.POSITIVE_INFINITY)) { // NaN or infinity: the reference's own code for this block
                Activations.quantizeQ8_0(x, base, block, q, scales, b);
                continue;
            }
            scales[b] = Float.float16ToFloat(Float.floatToFloat16(amax / 127.0f));
            float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            if (!(id < Float.POSITIVE_INFINITY)) { // a subnormal maximum: the products overflow there
                Activations.quantizeQ8_0(x, base, block, q, scales, b);
                continue;
            }
            for (int i = base; i < base + block; i += F.length()) {
                IntVector r = rint(FloatVector.fromArray(F, x, i).mul(id)).min(127).max(-128);
                ((ShortVector) r.convertShape(VectorOperators.I2S, S, 0)).intoArray(q, i);
            }
        }
    }

    /**
     * {@link Activations#quantizeQ8K} a vector at a time, bit-identical to it: per block of 256 the maximum magnitude
     * (exact in any order), then the first value of that magnitude (the reference's "replace if greater" keeps the
     * first), the same scalar {@code iscale}, each value's {@code min(127, round-half-even(iscale * x))} by
     * {@link #rint}, and the sums of 16 in ints (exact). A block whose maximum is not finite, 0, or so small that
     * {@code iscale} is infinite, takes the scalar code.
     */
    static void quantizeQ8K(float[] x, int n, short[] q, float[] scales, int[] sums) {
        int block = Activations.Q8_K_BLOCK, run = Activations.Q8_K_SUM, fl = F.length();
        if (run % fl != 0) { // (never on x86: 4, 8 or 16 lanes)
            Activations.quantizeQ8K(x, n, q, scales, sums);
            return;
        }
        for (int b = 0; b < n / block; b++) {
            int base = b * block;
            float amax = maxMagnitude(x, base, block);
            if (!(amax < Float.POSITIVE_INFINITY) || amax == 0.0f) { // NaN, infinity or all zeros: the reference's code
                Activations.quantizeQ8K(x, base, block, q, scales, sums, b);
                continue;
            }
            int first = base;
            for (int i = base; ; i += fl) { // the first value of magnitude amax (there is one)
                int lane = FloatVector.fromArray(F, x, i).abs().compare(VectorOperators.EQ, amax).firstTrue();
                if (lane < fl) {
                    first = i + lane;
                    break;
                }
            }
            float iscale = -127.0f / x[first];
            if (!(Math.abs(iscale) < Float.POSITIVE_INFINITY)) { // a subnormal maximum: the products overflow there
                Activations.quantizeQ8K(x, base, block, q, scales, sums, b);
                continue;
            }
            for (int s = base; s < base + block; s += run) {
                IntVector sum = IntVector.zero(I);
                for (int i = s; i < s + run; i += fl) {
                    IntVector r = rint(FloatVector.fromArray(F, x, i).mul(iscale)).min(127);
                    ((ShortVector) r.convertShape(VectorOperators.I2S, S, 0)).intoArray(q, i);
                    sum = sum.add(r);
                }
                sums[s / run] = sum.reduceLanes(VectorOperators.ADD);
            }
            scales[b] = 1.0f / iscale;
        }
    }

    /** The largest |x[i]| for i in [base, base + size), size a multiple of the lane count (exact in any order; NaN if one is). */
    private static float maxMagnitude(float[] x, int base, int size) {
        FloatVector max = FloatVector.zero(F);
        for (int i = base; i < base + size; i += F.length()) {
            max = max.max(FloatVector.fromArray(F, x, i).abs());
        }
        return max.reduceLanes(VectorOperators.MAX);
    }

    /**
     * Math.rint (round half to even) of each lane, for |v| &lt; 2^22 (these quantizers' |v| &lt;= 127 and a rounding):
     * v + 1.5 · 2^23 lies in [2^23, 2^24), where floats are the integers, so the addition rounds v to an integer,
     * ties to even, and the subtraction is exact.
     */
    private static IntVector rint(FloatVector v) {
        return (IntVector) v.add(0x1.8p23f).sub(0x1.8p23f).convert(VectorOperators.F2I, 0);
    }
}
