package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;

/**
 * The CPU's kernels of a transformer layer, on whatever rows the caller owns: the CPU engine owns every
 * row of every matrix; the hybrid engine's CPU shard owns a slice (some heads, some hidden rows, some
 * vocabulary rows) and calls the same methods on its row views. So there is one CPU forward path to
 * optimise.
 * <ul>
 *   <li>matmuls split their rows over the {@link Parallel} pool in blocks of {@link #ROW_GRAIN} rows (the
 *       kernels' tile height), and matmuls that read the same input share one dispatch;</li>
 *   <li>attention runs heads in parallel over an {@link Attention} cache;</li>
 * </ul>
 * Every matrix comes as its {@link MatrixForm} (the file's layout or a load-time copy, resolved when the engine
 * or shard was built). Every matmul input comes as {@link Activations}: its float values and the converted forms the weight
 * types need (runq's Q8 groups, GGML's Q8_0/Q8_K blocks, F16/BF16), prepared once before the dispatch.
 * Each worker's chunk of a matmul is reported to the {@link StepTimer} (a trace slice per worker when
 * profiling is on). One caller at a time, as {@link Parallel}.
 */
public final class CpuLayer {
    /** Row ranges handed to the kernels start on multiples of this (their tile height). */
    static final int ROW_GRAIN = 16;

    private final Kernels kernels;
    private final Parallel parallel;
    private final FloatMath math;
    private final StepTimer timer;

    public CpuLayer(Kernels kernels, Parallel parallel, FloatMath math) {
        this(kernels, parallel, math, new StepTimer());
    }

    CpuLayer(Kernels kernels, Parallel parallel, FloatMath math, StepTimer timer) {
        this.kernels = kernels;
        this.parallel = parallel;
        this.math = math;
        this.timer = timer;
    }

    /** out = m · in, all rows. */
    public void matmul(float[] out, Activations in, MatrixForm m) {
        matmul(out, in, m, 0, m.source().rows());
    }

    /** out[r] = (m · in)[r] for rows r in [r0, r1) (the rest of out untouched), split across the pool. */
    public void matmul(float[] out, Activations in, MatrixForm m, int r0, int r1) {
        in.prepareFor(m.source());
        parallel.forRange(r1 - r0, ROW_GRAIN, (a, b) -> kernel(out, in, m, r0 + a, r0 + b));
    }

    /**
     * out0 = m0 · in, out1 = m1 · in and out2 = m2 · in in one dispatch (Q, K and V): the rows of the three
     * are numbered one after another and split across the pool together.
     */
    public void matmul3(float[] out0, MatrixForm m0, float[] out1, MatrixForm m1, float[] out2, MatrixForm m2, Activations in) {
        int n0 = m0.source().rows(), n1 = m1.source().rows(), n2 = m2.source().rows();
        in.prepareFor(m0.source());
        in.prepareFor(m1.source());
        in.prepareFor(m2.source());
        parallel.forRange(n0 + n1 + n2, ROW_GRAIN, (s, e) -> {
            kernel(out0, in, m0, s, Math.min(e, n0));
            kernel(out1, in, m1, Math.max(s - n0, 0), Math.min(e - n0, n1));
            kernel(out2, in, m2, Math.max(s - n0 - n1, 0), Math.min(e - n0 - n1, n2));
        });
    }

    /** hb = silu(w1 · in) * (w3 · in) in one dispatch: each thread applies SwiGLU to the rows it computed; hb2 is scratch. */
    public void matmulSwiglu(float[] hb, float[] hb2, MatrixForm w1, MatrixForm w3, Activations in) {
        in.prepareFor(w1.source());
        in.prepareFor(w3.source());
        parallel.forRange(w1.source().rows(), ROW_GRAIN, (r0, r1) -> {
            kernel(hb, in, w1, r0, r1);
            kernel(hb2, in, w3, r0, r1);
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

    /** Rows [r0, r1) of out = m · in on the calling thread (nothing if the range is empty); in is prepared for m. */
    void kernel(float[] out, Activations in, MatrixForm m, int r0, int r1) {
        if (r0 >= r1) {
            return;
        }
        long t0 = timer.sliceStart();
        kernels.matmul(out, in, m, r0, r1);
        timer.slice(t0, m.byteSize() * (r1 - r0) / m.source().rows());
    }
}
