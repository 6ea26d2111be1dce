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

    /** The references read every matrix in the file's layout: an engine on them makes no copy. */
    @Override
    public boolean readsCopies() {
        return false;
    }

    /** The file's layout, whatever form m is (a copy's source holds the same values). */
    @Override
    public void matmul(float[] out, Activations x, MatrixForm m, int r0, int r1) {
        matmul(out, x, m.source(), r0, r1);
    }

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

    // ------------------------------------------------------------------ GGML types, in ggml's reference order

    private static final ValueLayout.OfShort SHORT = Matrix.SHORT;

    /** ggml_vec_dot_f16's reference: products exact in float, summed in double, rounded once. */
    @Override
    public void matmulF16(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        halfMatmul(out, x.f16, w.data(), w.cols(), false, r0, r1);
    }

    /** The reference has no check to skip on weights known to be finite: {@link #matmulF16}. */
    @Override
    public void matmulFiniteF16(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        matmul(out, x, (Matrix) w, r0, r1);
    }

    /** ggml_vec_dot_bf16's reference: products exact in float, summed in double, rounded once. */
    @Override
    public void matmulBF16(float[] out, Activations x, Matrix.BF16 w, int r0, int r1) {
        halfMatmul(out, x.bf16, w.data(), w.cols(), true, r0, r1);
    }

    /** 16-bit weights (F16, or BF16 when {@code bf16}) times x, each row summed in double. */
    private static void halfMatmul(float[] out, float[] x, MemorySegment data, int n, boolean bf16, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            double sum = 0.0;
            for (int j = 0; j < n; j++) {
                short h = data.get(SHORT, base + 2L * j);
                sum += (bf16 ? Matrix.bf16ToFloat(h) : Float.float16ToFloat(h)) * x[j];
            }
            out[r] = (float) sum;
        }
    }

    /** The reference on the packed matrix's source (the file's layout). */
    @Override
    public void matmulPackedQ8_0(float[] out, Activations x, PackedQ8_0 w, int r0, int r1) {
        x.check(w.source());
        matmul(out, x, w.source(), r0, r1);
    }

    /** The reference on the packed matrix's source (the file's layout). */
    @Override
    public void matmulPackedQ4_0(float[] out, Activations x, PackedQ4_0 w, int r0, int r1) {
        x.check(w.source());
        matmul(out, x, w.source(), r0, r1);
    }

    /** The reference on the packed matrix's source (the file's layout). */
    @Override
    public void matmulPackedQ5_1(float[] out, Activations x, PackedQ5_1 w, int r0, int r1) {
        x.check(w.source());
        matmul(out, x, w.source(), r0, r1);
    }

    /** The reference on the packed matrix's source (the file's layout). */
    @Override
    public void matmulPackedQ8(float[] out, Activations x, PackedQ8_0 w, int r0, int r1) {
        x.check(w.source());
        matmul(out, x, w.source(), r0, r1);
    }

    /** ggml_vec_dot_q8_0_q8_0's reference: per block, {@code sumf += sumi * (d_w * d_x)}. */
    @Override
    public void matmulQ8_0(float[] out, Activations x, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.Q8_0.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.Q8_0.BLOCK, b += Matrix.Q8_0.BLOCK_BYTES) {
                int sumi = 0;
                for (int k = 0; k < Matrix.Q8_0.BLOCK; k++) {
                    sumi += data.get(ValueLayout.JAVA_BYTE, b + 2 + k) * xq[j + k];
                }
                sumf += sumi * (Float.float16ToFloat(data.get(SHORT, b)) * xd[j / Matrix.Q8_0.BLOCK]);
            }
            out[r] = sumf;
        }
    }

    /** ggml_vec_dot_q4_0_q8_0's reference: per block, {@code sumf += sumi * d_w * d_x} (left to right). */
    @Override
    public void matmulQ4_0(float[] out, Activations x, Matrix.Q4_0 w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.Q4_0.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.Q4_0.BLOCK, b += Matrix.Q4_0.BLOCK_BYTES) {
                int sumi = 0;
                for (int k = 0; k < 16; k++) {
                    int q = data.get(ValueLayout.JAVA_BYTE, b + 2 + k) & 0xFF;
                    sumi += ((q & 0x0F) - 8) * xq[j + k] + ((q >>> 4) - 8) * xq[j + k + 16];
                }
                sumf += sumi * Float.float16ToFloat(data.get(SHORT, b)) * xd[j / Matrix.Q4_0.BLOCK];
            }
            out[r] = sumf;
        }
    }

    /**
     * ggml_vec_dot_q5_1_q8_1's reference: per block, the exact {@code sumi = sum_k q_k * a_k} (q_k the 5-bit values,
     * a_k the Q8_1 activations' int8 values), then {@code sumf += (d_w * d_x) * sumi + m_w * s_x}, left to right.
     */
    @Override
    public void matmulQ5_1(float[] out, Activations x, Matrix.Q5_1 w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q80;
        float[] xd = x.q80Scales, xs = x.q81Sums;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.Q5_1.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.Q5_1.BLOCK, b += Matrix.Q5_1.BLOCK_BYTES) {
                int sumi = 0;
                for (int k = 0; k < Matrix.Q5_1.BLOCK; k++) {
                    sumi += Matrix.Q5_1.value(data, b, k) * xq[j + k];
                }
                int blk = j / Matrix.Q5_1.BLOCK;
                sumf += (Float.float16ToFloat(data.get(SHORT, b)) * xd[blk]) * sumi
                        + Float.float16ToFloat(data.get(SHORT, b + Matrix.Q5_1.M)) * xs[blk];
            }
            out[r] = sumf;
        }
    }

    /**
     * Q2_K × Q8_K, as ggml_vec_dot_q2_K_q8_K: per super-block the exact {@code isum = sum_j sc_j * dot_j(q2, q)} over the
     * 16 sub-blocks of 16 (q2 in [0, 3], sc_j the 4-bit scale: see {@link Matrix.Q2_K}) and {@code summs = sum_j m_j *
     * (Q8_K's sum of sub-block j)} (m_j the 4-bit min), then {@code sumf += (d_x * d_w) * isum - (d_x * dmin_w) * summs}.
     */
    @Override
    public void matmulQ2_K(float[] out, Activations x, Matrix.Q2_K w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xsum = x.q8KSums;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.Q2_K.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.Q2_K.BLOCK, b += Matrix.Q2_K.BLOCK_BYTES) {
                int isum = 0, summs = 0;
                for (int sub = 0; sub < 16; sub++) {
                    int dot = 0;
                    for (int k = 0; k < 16; k++) {
                        dot += Matrix.Q2_K.value(data, b, 16 * sub + k) * xq[j + 16 * sub + k];
                    }
                    isum += Matrix.Q2_K.scale(data, b, sub) * dot;
                    summs += Matrix.Q2_K.min(data, b, sub) * xsum[j / 16 + sub];
                }
                float xdj = xd[j / Matrix.Q2_K.BLOCK];
                float dall = xdj * Float.float16ToFloat(data.get(SHORT, b + Matrix.Q2_K.D));
                float dmin = xdj * Float.float16ToFloat(data.get(SHORT, b + Matrix.Q2_K.DMIN));
                sumf += dall * isum - dmin * summs;
            }
            out[r] = sumf;
        }
    }

    /**
     * IQ4_NL × Q8_0, ggml_vec_dot_iq4_nl_q8_0: per block the exact int dot of the 32 levels ({@link Matrix.IQ4_NL}) and
     * the activations, then {@code sumf += (d_x * d_w) * sumi} (llama.cpp's AVX2 code: the same per-block product,
     * summed over 8 float lanes).
     */
    @Override
    public void matmulIQ4_NL(float[] out, Activations x, Matrix.IQ4_NL w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.IQ4_NL.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.IQ4_NL.BLOCK, b += Matrix.IQ4_NL.BLOCK_BYTES) {
                int sumi = 0;
                for (int k = 0; k < Matrix.IQ4_NL.BLOCK; k++) {
                    sumi += Matrix.IQ4_NL.value(data, b, k) * xq[j + k];
                }
                sumf += (xd[j / Matrix.IQ4_NL.BLOCK] * Float.float16ToFloat(data.get(SHORT, b))) * sumi;
            }
            out[r] = sumf;
        }
    }

    /**
     * IQ4_XS × Q8_K: per super-block the exact {@code sumi = sum_s (ls_s - 32) * dot_s(levels, q)} over the 8 sub-blocks
     * of 32, then {@code sumf += (d_w * d_x) * sumi}, as llama.cpp's AVX2 ggml_vec_dot_iq4_xs_q8_K (its generic code
     * multiplies each sub-block's dot by {@code d_w * d_x * (ls - 32)} in float instead).
     */
    @Override
    public void matmulIQ4_XS(float[] out, Activations x, Matrix.IQ4_XS w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.IQ4_XS.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.IQ4_XS.BLOCK, b += Matrix.IQ4_XS.BLOCK_BYTES) {
                int sumi = 0;
                for (int s = 0; s < 8; s++) {
                    int dot = 0;
                    for (int k = 0; k < 32; k++) {
                        dot += Matrix.IQ4_XS.value(data, b, 32 * s + k) * xq[j + 32 * s + k];
                    }
                    sumi += Matrix.IQ4_XS.scale(data, b, s) * dot;
                }
                sumf += (Float.float16ToFloat(data.get(SHORT, b + Matrix.IQ4_XS.D)) * xd[j / Matrix.IQ4_XS.BLOCK]) * sumi;
            }
            out[r] = sumf;
        }
    }

    /**
     * Q3_K × Q8_K: per super-block the exact {@code sumi = sum_j (sc_j - 32) * dot_j(q3, q)} over the 16 sub-blocks of 16
     * (q3 in [-4, 3]: see {@link Matrix.Q3_K}), then {@code sumf += (d_w * d_x) * sumi}. (ggml's generic code splits
     * sumi over 8 float lanes, its AVX2 code over 8 others: only the float order differs.)
     */
    @Override
    public void matmulQ3_K(float[] out, Activations x, Matrix.Q3_K w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.Q3_K.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.Q3_K.BLOCK, b += Matrix.Q3_K.BLOCK_BYTES) {
                int sumi = 0;
                for (int sub = 0; sub < 16; sub++) {
                    int dot = 0;
                    for (int k = 0; k < 16; k++) {
                        dot += Matrix.Q3_K.value(data, b, 16 * sub + k) * xq[j + 16 * sub + k];
                    }
                    sumi += Matrix.Q3_K.scale(data, b, sub) * dot;
                }
                sumf += (Float.float16ToFloat(data.get(SHORT, b + Matrix.Q3_K.D)) * xd[j / Matrix.Q3_K.BLOCK]) * sumi;
            }
            out[r] = sumf;
        }
    }

    /**
     * Q4_K × Q8_K: per super-block the exact integers {@code sumi = sum_j sc_j * dot_j(nibbles, q)}
     * and {@code summ = sum_j m_j * (q sum of sub-block j)}, then
     * {@code sumf += (d_w * d_x) * sumi; sumf -= (dmin_w * d_x) * summ}. (ggml's generic code
     * splits sumi over 8 float lanes; its x86 code over others: only the float order differs.)
     */
    @Override
    public void matmulQ4_K(float[] out, Activations x, Matrix.Q4_K w, int r0, int r1) {
        kQuant45(out, x, w.data(), w.cols(), Matrix.Q4_K.BLOCK_BYTES, 16, -1, r0, r1);
    }

    /**
     * Q5_K × Q8_K, as {@link #matmulQ4_K} with 5-bit values: per super-block the exact integers
     * {@code sumi = sum_j sc_j * dot_j(q5, q)} (q5 = nibble + 16 * high bit, 0..31) and
     * {@code summ = sum_j m_j * (q sum of sub-block j)}, then {@code sumf += (d_w * d_x) * sumi;
     * sumf -= (dmin_w * d_x) * summ}.
     */
    @Override
    public void matmulQ5_K(float[] out, Activations x, Matrix.Q5_K w, int r0, int r1) {
        kQuant45(out, x, w.data(), w.cols(), Matrix.Q5_K.BLOCK_BYTES, Matrix.Q5_K.QS, Matrix.Q5_K.QH, r0, r1);
    }

    /**
     * {@link #matmulQ4_K} and {@link #matmulQ5_K}, whose super-blocks differ only by Q5_K's fifth bits ({@code qhAt},
     * negative: none; see {@link Matrix.Q5_K}): the nibbles at {@code qsAt}, the packed scales and mins at 4.
     */
    private static void kQuant45(float[] out, Activations x, MemorySegment data, int n, int blockBytes, int qsAt, int qhAt,
                                 int r0, int r1) {
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xsum = x.q8KSums;
        long rowBytes = (long) n / 256 * blockBytes;
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            float sumf = 0.0f;
            for (int j = 0; j < n; j += 256, b += blockBytes) {
                int sumi = 0, summ = 0;
                for (int sub = 0; sub < 8; sub++) {
                    long qs = b + qsAt + 32L * (sub / 2);
                    int shift = 4 * (sub % 2), xo = j + 32 * sub;
                    int dot = 0;
                    for (int l = 0; l < 32; l++) {
                        int nibble = (data.get(ValueLayout.JAVA_BYTE, qs + l) >> shift) & 0x0F;
                        int high = qhAt < 0 ? 0 : (data.get(ValueLayout.JAVA_BYTE, b + qhAt + l) >> sub) & 1;
                        dot += (nibble | high << 4) * xq[xo + l];
                    }
                    sumi += Matrix.Q4_K.scale(data, b + 4, sub) * dot;
                    summ += Matrix.Q4_K.min(data, b + 4, sub) * (xsum[xo / 16] + xsum[xo / 16 + 1]);
                }
                float xdj = xd[j / 256];
                sumf += Float.float16ToFloat(data.get(SHORT, b)) * xdj * sumi;
                sumf -= Float.float16ToFloat(data.get(SHORT, b + 2)) * xdj * summ;
            }
            out[r] = sumf;
        }
    }

    /** Q6_K × Q8_K: per super-block the exact {@code sumi = sum_j sc_j * dot_j(q6 - 32, q)}, then {@code sumf += (d_w * d_x) * sumi}. */
    @Override
    public void matmulQ6_K(float[] out, Activations x, Matrix.Q6_K w, int r0, int r1) {
        int n = w.cols();
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        MemorySegment data = w.data();
        for (int r = r0; r < r1; r++) {
            long b = r * Matrix.Q6_K.rowBytes(n);
            float sumf = 0.0f;
            for (int j = 0; j < n; j += Matrix.Q6_K.BLOCK, b += Matrix.Q6_K.BLOCK_BYTES) {
                int sumi = 0;
                for (int half = 0; half < 2; half++) {
                    long ql = b + 64L * half, qh = b + 128 + 32L * half, sc = b + 192 + 8L * half;
                    int xo = j + 128 * half;
                    for (int i = 0; i < 4; i++) { // values l + 32 i
                        for (int s = 0; s < 2; s++) { // sub-blocks of 16
                            int dot = 0;
                            for (int l = 16 * s; l < 16 * s + 16; l++) {
                                int lo = data.get(ValueLayout.JAVA_BYTE, ql + l + 32 * (i % 2)) & 0xFF;
                                int h = data.get(ValueLayout.JAVA_BYTE, qh + l) & 0xFF;
                                int q = ((i < 2 ? lo & 0x0F : lo >>> 4) | (((h >>> (2 * i)) & 3) << 4)) - 32;
                                dot += q * xq[xo + 32 * i + l];
                            }
                            sumi += data.get(ValueLayout.JAVA_BYTE, sc + s + 2 * i) * dot;
                        }
                    }
                }
                sumf += (Float.float16ToFloat(data.get(SHORT, b + 208)) * xd[j / Matrix.Q6_K.BLOCK]) * sumi;
            }
            out[r] = sumf;
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
        math.expShifted(x, off, size, max); // expf(x - max) per element (vectorized by FloatMath.vectorized())
        float sum = 0.0f;
        for (int i = 0; i < size; i++) {
            sum += x[off + i];
        }
        for (int i = 0; i < size; i++) {
            x[off + i] /= sum;
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
        quantizeGroups(x, 0, n / groupSize, groupSize, q, s);
    }

    /** {@link #quantize} of groups [g0, g1) only (q and s indexed as for the whole row). */
    public static void quantizeGroups(float[] x, int g0, int g1, int groupSize, byte[] q, float[] s) {
        for (int g = g0; g < g1; g++) {
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
