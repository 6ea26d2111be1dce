package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Matrix;

/**
 * The CPU's kernels of a transformer layer, on whatever rows the caller owns: the CPU engine owns every
 * row of every matrix; the hybrid engine's CPU shard owns a slice (some heads, some hidden rows, some
 * vocabulary rows) and calls the same methods on its row views. So there is one CPU forward path to
 * optimise.
 * <ul>
 *   <li>matmuls split their rows over the {@link Parallel} pool in blocks of {@link #ROW_GRAIN} rows (the
 *       kernels' tile height), and matmuls that read the same input share one dispatch;</li>
 *   <li>attention runs heads in parallel over an {@link Attention} cache;</li>
 *   <li>{@link #quantize} is runq's re-quantization of a matmul input (Q8 models only).</li>
 * </ul>
 * Every matmul input comes as its float values and, for Q8 weights, its runq quantization (values, scales).
 * Each worker's chunk of a matmul is reported to the {@link StepTimer} (a trace slice per worker when
 * profiling is on). One caller at a time, as {@link Parallel}.
 */
public final class CpuLayer {
    /** Row ranges handed to the kernels start on multiples of this (their tile height). */
    static final int ROW_GRAIN = 16;

    private final Kernels kernels;
    private final Parallel parallel;
    private final FloatMath math;
    private final int groupSize;
    private final StepTimer timer;

    /**
     * @param groupSize the Q8_0 group size of the model's weights, 0 for a float32 model (no quantization)
     */
    public CpuLayer(Kernels kernels, Parallel parallel, FloatMath math, int groupSize) {
        this(kernels, parallel, math, groupSize, new StepTimer());
    }

    CpuLayer(Kernels kernels, Parallel parallel, FloatMath math, int groupSize, StepTimer timer) {
        this.kernels = kernels;
        this.parallel = parallel;
        this.math = math;
        this.groupSize = groupSize;
        this.timer = timer;
    }

    /** runq's quantization of the matmul input in[0, n) into (q, s) for Q8 models; nothing for float models. */
    public void quantize(float[] in, int n, byte[] q, float[] s) {
        if (groupSize > 0) {
            VectorOps.quantize(in, n, groupSize, q, s);
        }
    }

    /** out = m · in, all rows. */
    public void matmul(float[] out, float[] in, byte[] inQ, float[] inS, Matrix m) {
        matmul(out, in, inQ, inS, m, 0, m.rows());
    }

    /** out[r] = (m · in)[r] for rows r in [r0, r1) (the rest of out untouched), split across the pool. */
    public void matmul(float[] out, float[] in, byte[] inQ, float[] inS, Matrix m, int r0, int r1) {
        parallel.forRange(r1 - r0, ROW_GRAIN, (a, b) -> kernel(out, in, inQ, inS, m, r0 + a, r0 + b));
    }

    /**
     * out0 = m0 · in, out1 = m1 · in and out2 = m2 · in in one dispatch (Q, K and V): the rows of the three
     * are numbered one after another and split across the pool together.
     */
    public void matmul3(float[] out0, Matrix m0, float[] out1, Matrix m1, float[] out2, Matrix m2,
                        float[] in, byte[] inQ, float[] inS) {
        int n0 = m0.rows(), n1 = m1.rows(), n2 = m2.rows();
        parallel.forRange(n0 + n1 + n2, ROW_GRAIN, (s, e) -> {
            kernel(out0, in, inQ, inS, m0, s, Math.min(e, n0));
            kernel(out1, in, inQ, inS, m1, Math.max(s - n0, 0), Math.min(e - n0, n1));
            kernel(out2, in, inQ, inS, m2, Math.max(s - n0 - n1, 0), Math.min(e - n0 - n1, n2));
        });
    }

    /** hb = silu(w1 · in) * (w3 · in) in one dispatch: each thread applies SwiGLU to the rows it computed; hb2 is scratch. */
    public void matmulSwiglu(float[] hb, float[] hb2, Matrix w1, Matrix w3, float[] in, byte[] inQ, float[] inS) {
        parallel.forRange(w1.rows(), ROW_GRAIN, (r0, r1) -> {
            kernel(hb, in, inQ, inS, w1, r0, r1);
            kernel(hb2, in, inQ, inS, w3, r0, r1);
            VectorOps.swiglu(hb, hb2, r0, r1, math);
        });
    }

    /**
     * run.c's multi-head attention of heads [0, heads) of q over the layer's cache up to pos, heads in
     * parallel: out[h*head_size ..] for each head h.
     *
     * @param scores scratch, {@code heads * cache.scoreStride()} floats
     */
    public void attention(Attention cache, int layer, int pos, int heads, float[] q, float[] out, float[] scores) {
        parallel.forRange(heads, (h0, h1) -> {
            for (int h = h0; h < h1; h++) {
                cache.head(layer, h, pos, q, out, scores, h * cache.scoreStride());
            }
        });
    }

    /** Rows [r0, r1) of out = m · in on the calling thread (nothing if the range is empty). */
    void kernel(float[] out, float[] in, byte[] inQ, float[] inS, Matrix m, int r0, int r1) {
        if (r0 >= r1) {
            return;
        }
        long t0 = timer.sliceStart();
        switch (m) {
            case Matrix.F32 f -> kernels.matmulF32(out, in, f, r0, r1);
            case Matrix.Q8 q8 -> kernels.matmulQ8(out, inQ, inS, q8, r0, r1);
        }
        timer.slice(t0, m.byteSize() * (r1 - r0) / m.rows());
    }
}
