package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;

/**
 * {@link CpuLayer}'s kernels for a batch of tokens (batched prefill): the same dispatches, each over
 * {@code (B, n)} inputs. Matmuls split their rows over the {@link Parallel} pool in blocks of
 * {@link CpuLayer#ROW_GRAIN} rows and compute every token of a row block together ({@link BatchMatmul});
 * attention runs heads in parallel, each head over the batch's tokens in order, four at a time
 * ({@link Attention#heads4}). One caller at a time.
 */
final class BatchLayer {
    private final Kernels kernels;
    private final Parallel parallel;
    private final FloatMath math;

    BatchLayer(Kernels kernels, Parallel parallel, FloatMath math) {
        this.kernels = kernels;
        this.parallel = parallel;
        this.math = math;
    }

    /** out[b] = m · in[b] for every token b. */
    void matmul(float[][] out, BatchActivations in, MatrixForm m) {
        in.prepareFor(m, parallel);
        parallel.forRange(m.source().rows(), CpuLayer.ROW_GRAIN, (a, b) -> BatchMatmul.matmul(out, in, m, a, b, kernels));
    }

    /** Q, K and V in one dispatch, as {@link CpuLayer#matmul3}. */
    void matmul3(float[][] out0, MatrixForm m0, float[][] out1, MatrixForm m1, float[][] out2, MatrixForm m2, BatchActivations in) {
        int n0 = m0.source().rows(), n1 = m1.source().rows(), n2 = m2.source().rows();
        in.prepareFor(m0, parallel);
        in.prepareFor(m1, parallel);
        in.prepareFor(m2, parallel);
        parallel.forRange(n0 + n1 + n2, CpuLayer.ROW_GRAIN, (s, e) -> {
            BatchMatmul.matmul(out0, in, m0, s, Math.min(e, n0), kernels);
            BatchMatmul.matmul(out1, in, m1, Math.max(s - n0, 0), Math.min(e - n0, n1), kernels);
            BatchMatmul.matmul(out2, in, m2, Math.max(s - n0 - n1, 0), Math.min(e - n0 - n1, n2), kernels);
        });
    }

    /**
     * hb[b] = silu(w1 · in[b]) * (w3 · in[b]): both products in one dispatch, then SwiGLU in a second one, a token's
     * whole row per call; hb2 is scratch.
     *
     * <p>Not SwiGLU inside the products' dispatch, as {@link CpuLayer#matmulSwiglu} does it for one token: there C2
     * compiled the lambda with both batched products inlined, and the SwiGLU after them ran at an eighth of its speed
     * (its vector code, past the inlining budget, boxed): with runq Q8 weights 290 ms of CPU per pp512 of
     * stories110M against 34 ms with F32 weights, in every measured run; as its own dispatch 25-34 ms (wall) for both,
     * and Q8 pp512 1.06-1.62x in six alternated pairs at 512 and 256 bits, F32's unchanged within the noise
     * (docs/measurements/2026-12-03-prefill-attention-swiglu.md).
     */
    void matmulSwiglu(float[][] hb, float[][] hb2, MatrixForm w1, MatrixForm w3, BatchActivations in) {
        in.prepareFor(w1, parallel);
        in.prepareFor(w3, parallel);
        parallel.forRange(w1.source().rows(), CpuLayer.ROW_GRAIN, (r0, r1) -> {
            BatchMatmul.matmul(hb, in, w1, r0, r1, kernels);
            BatchMatmul.matmul(hb2, in, w3, r0, r1, kernels);
        });
        int hidden = w1.source().rows();
        parallel.forRange(in.tokens(), (b0, b1) -> {
            for (int b = b0; b < b1; b++) {
                VectorOps.swiglu(hb[b], hb2[b], 0, hidden, math);
            }
        });
    }

    /**
     * Causal attention of every token b (at position startPos + b) over the cache up to its own position, heads
     * in parallel: the cache must already hold the keys and values of all the batch's positions; a token never
     * reads past its own.
     *
     * @param scores scratch, {@code heads * cache.scoreStride()} floats
     */
    void attention(Attention cache, int layer, int startPos, int tokens, int heads, float[][] q, float[][] out, float[] scores) {
        int stride = Attention.scoreLength(startPos + tokens);
        parallel.forRange(heads, (h0, h1) -> {
            float[] four = fourScores(Attention.QUERIES * stride);
            for (int h = h0; h < h1; h++) {
                int b = 0;
                for (; b + Attention.QUERIES <= tokens; b += Attention.QUERIES) { // four tokens per pass over the cache
                    cache.heads4(layer, h, startPos + b, q, b, out, four, stride);
                }
                for (; b < tokens; b++) {
                    cache.head(layer, h, startPos + b, q[b], out[b], scores, h * cache.scoreStride());
                }
            }
        });
    }

    /** Each worker's scores of four tokens, grown as contexts grow. */
    private static final ThreadLocal<float[]> FOUR_SCORES = ThreadLocal.withInitial(() -> new float[0]);

    private static float[] fourScores(int size) {
        float[] s = FOUR_SCORES.get();
        if (s.length < size) {
            s = new float[size];
            FOUR_SCORES.set(s);
        }
        return s;
    }
}
