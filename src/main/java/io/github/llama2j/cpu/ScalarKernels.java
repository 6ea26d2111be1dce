package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Matrix;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Plain scalar kernels in run.c's and runq.c's exact operation order (sequential float32 sums in
 * index order, no FMA: Java never contracts a*b+c). This is the reference every fast kernel is
 * tested against, and all the rest of the reference forward pass (rmsnorm, softmax, RoPE,
 * attention, SwiGLU, quantize) lives here too as static methods.
 */
public final class ScalarKernels implements Kernels {
    public static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void matmulF32(float[] out, float[] x, Matrix.F32 w, int r0, int r1) {
        int n = w.cols();
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * Float.BYTES;
            float val = 0.0f;
            for (int j = 0; j < n; j++) {
                val += data.get(FLOAT, base + (long) j * Float.BYTES) * x[j];
            }
            out[r] = val;
        }
    }

    @Override
    public void matmulQ8(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1) {
        int n = w.cols(), gs = w.groupSize();
        MemorySegment values = w.values(), scales = w.scales();
        for (int r = r0; r < r1; r++) {
            long in = (long) r * n;
            float val = 0.0f;
            for (int j = 0; j <= n - gs; j += gs) {
                int ival = 0;
                for (int k = 0; k < gs; k++) {
                    ival += xq[j + k] * values.get(ValueLayout.JAVA_BYTE, in + j + k);
                }
                val += ((float) ival * scales.get(FLOAT, (in + j) / gs * Float.BYTES)) * xs[j / gs];
            }
            out[r] = val;
        }
    }

    // ------------------------------------------------------------------ the other kernels, in run.c's order

    /**
     * rmsnorm's factor 1 / sqrt(mean(x^2) + 1e-5), with the sum of squares in run.c's order (left to
     * right: the rounding of this one sum decides bit-exactness, so every rmsnorm shares it).
     */
    static float rmsScale(float[] x, int size) {
        float ss = 0.0f;
        for (int j = 0; j < size; j++) {
            ss += x[j] * x[j];
        }
        ss /= size;
        ss += 1e-5f;
        return 1.0f / (float) Math.sqrt(ss);
    }

    /** run.c's rmsnorm: out = weight * (x / sqrt(mean(x^2) + 1e-5)); out may be x. */
    public static void rmsnorm(float[] out, float[] x, MemorySegment weight, int size) {
        float ss = rmsScale(x, size);
        for (int j = 0; j < size; j++) {
            out[j] = weight.get(FLOAT, (long) j * Float.BYTES) * (ss * x[j]);
        }
    }

    /** run.c's softmax over x[off .. off+size). */
    public static void softmax(float[] x, int off, int size, FloatMath math) {
        float max = x[off];
        for (int i = 1; i < size; i++) {
            if (x[off + i] > max) {
                max = x[off + i];
            }
        }
        float sum = 0.0f;
        for (int i = 0; i < size; i++) {
            x[off + i] = math.exp(x[off + i] - max);
            sum += x[off + i];
        }
        for (int i = 0; i < size; i++) {
            x[off + i] /= sum;
        }
    }

    /** run.c's embedding lookup: row {@code token} of the table into out; runq dequantizes it (q * scale per group). */
    public static void embed(Matrix table, int token, float[] out) {
        int dim = table.cols();
        switch (table) {
            case Matrix.F32 m -> MemorySegment.copy(m.data(), FLOAT, (long) token * dim * Float.BYTES, out, 0, dim);
            case Matrix.Q8 m -> {
                long base = (long) token * dim;
                int gs = m.groupSize();
                for (int i = 0; i < dim; i++) {
                    out[i] = m.values().get(ValueLayout.JAVA_BYTE, base + i) * m.scales().get(FLOAT, (base + i) / gs * Float.BYTES);
                }
            }
        }
    }

    /** The RoPE frequency of each even index i of a head, as run.c computes it: 1 / powf(theta, i / head_size). */
    public static float[] ropeFrequencies(int headSize, float theta, FloatMath math) {
        float[] freq = new float[headSize / 2];
        for (int i = 0; i < headSize; i += 2) {
            freq[i / 2] = 1.0f / math.pow(theta, i / (float) headSize);
        }
        return freq;
    }

    /**
     * run.c's RoPE: rotate each pair (i, i+1) of q (all dim) and k (the first kvDim) by pos * freq.
     * {@code k} may be null to rotate only q.
     */
    public static void rope(float[] q, float[] k, int pos, int dim, int kvDim, int headSize, float[] freq, FloatMath math) {
        for (int i = 0; i < dim; i += 2) {
            float val = pos * freq[(i % headSize) / 2];
            float fcr = math.cos(val);
            float fci = math.sin(val);
            float v0 = q[i], v1 = q[i + 1];
            q[i] = v0 * fcr - v1 * fci;
            q[i + 1] = v0 * fci + v1 * fcr;
            if (k != null && i < kvDim) {
                v0 = k[i];
                v1 = k[i + 1];
                k[i] = v0 * fcr - v1 * fci;
                k[i + 1] = v0 * fci + v1 * fcr;
            }
        }
    }

    /**
     * run.c's multi-head attention for query head h at position pos: scores against the cached
     * keys of its key/value head, softmax, weighted sum of cached values into out[h*headSize ..].
     *
     * @param keyCache   this layer's keys, [seq_len][kvDim]
     * @param valueCache this layer's values, [seq_len][kvDim]
     * @param att        scratch of at least pos+1 floats starting at attOff
     */
    public static void attentionHead(float[] out, float[] q, float[] keyCache, float[] valueCache, float[] att, int attOff,
                                     int h, int pos, int headSize, int kvDim, int kvMul, FloatMath math) {
        int qOff = h * headSize;
        int kvOff = (h / kvMul) * headSize;
        float scale = (float) Math.sqrt(headSize);
        for (int t = 0; t <= pos; t++) {
            int kOff = t * kvDim + kvOff;
            float score = 0.0f;
            for (int i = 0; i < headSize; i++) {
                score += q[qOff + i] * keyCache[kOff + i];
            }
            score /= scale;
            att[attOff + t] = score;
        }
        softmax(att, attOff, pos + 1, math);
        int xOff = h * headSize;
        for (int i = 0; i < headSize; i++) {
            out[xOff + i] = 0.0f;
        }
        for (int t = 0; t <= pos; t++) {
            int vOff = t * kvDim + kvOff;
            float a = att[attOff + t];
            for (int i = 0; i < headSize; i++) {
                out[xOff + i] += a * valueCache[vOff + i];
            }
        }
    }

    /** run.c's SwiGLU: hb = silu(hb) * hb2. */
    public static void swiglu(float[] hb, float[] hb2, int size, FloatMath math) {
        for (int i = 0; i < size; i++) {
            float val = hb[i];
            val *= (1.0f / (1.0f + math.exp(-val)));
            val *= hb2[i];
            hb[i] = val;
        }
    }

    /** runq's quantize: per group, scale = max|x| / 127, q = (int8) round-half-away(x / scale). */
    public static void quantize(float[] x, int n, int groupSize, byte[] q, float[] s) {
        for (int g = 0; g < n / groupSize; g++) {
            int base = g * groupSize;
            float wmax = 0.0f;
            for (int i = 0; i < groupSize; i++) {
                float val = Math.abs(x[base + i]);
                if (val > wmax) {
                    wmax = val;
                }
            }
            float scale = wmax / 127.0f;
            s[g] = scale;
            for (int i = 0; i < groupSize; i++) {
                float quant = x[base + i] / scale;
                q[base + i] = (byte) (int) roundHalfAway(quant);
            }
        }
    }

    /** C's round(): half away from zero (Java's Math.round rounds half up). */
    public static double roundHalfAway(float v) {
        double d = v;
        return d < 0 ? -Math.floor(-d + 0.5) : Math.floor(d + 0.5);
    }

    /** x += y. */
    public static void add(float[] x, float[] y, int size) {
        for (int i = 0; i < size; i++) {
            x[i] += y[i];
        }
    }
}
