package io.github.llama2j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The small steps of the forward pass besides matmul and attention, bit-identical to the
 * {@link ScalarKernels} statics in every mode: only elementwise work is vectorized (one rounding
 * per operation either way); the sequential sums stay sequential, and expf/cosf/sinf stay the
 * scalar {@code (float) Math.f(double)} of the reference.
 */
final class VectorOps {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private VectorOps() {
    }

    /** run.c's rmsnorm: out = weight * (x / sqrt(mean(x^2) + 1e-5)); out may be x. */
    static void rmsnorm(float[] out, float[] x, MemorySegment weight, int size) {
        float ss = 0.0f;
        for (int j = 0; j < size; j++) {
            ss += x[j] * x[j];
        }
        ss /= size;
        ss += 1e-5f;
        ss = 1.0f / (float) Math.sqrt(ss);
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
    static void ropeAngles(int pos, float[] freq, float[] cos, float[] sin) {
        for (int p = 0; p < freq.length; p++) {
            float val = pos * freq[p];
            cos[p] = (float) Math.cos(val);
            sin[p] = (float) Math.sin(val);
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

    /** run.c's SwiGLU on [from, to): hb = silu(hb) * hb2. */
    static void swiglu(float[] hb, float[] hb2, int from, int to) {
        for (int i = from; i < to; i++) {
            float val = hb[i];
            val *= (1.0f / (1.0f + (float) Math.exp(-val)));
            val *= hb2[i];
            hb[i] = val;
        }
    }

    /** x += y. */
    static void add(float[] x, float[] y, int size) {
        int i = 0;
        for (; i < F.loopBound(size); i += F.length()) {
            FloatVector.fromArray(F, x, i).add(FloatVector.fromArray(F, y, i)).intoArray(x, i);
        }
        for (; i < size; i++) {
            x[i] += y[i];
        }
    }
}
