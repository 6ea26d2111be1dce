package io.github.llama2j.cpu;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.Weights;
import io.github.llama2j.profile.Profiler;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The CPU engine: llama2.c's forward pass over memory-mapped weights, all in {@link #forward}.
 * Float32 checkpoints follow run.c, Q8_0 checkpoints follow runq.c (activations re-quantized per
 * group before every matmul).
 *
 * <p>Where the time goes: the matmuls stream every weight once per token, so they are split by rows
 * across a persistent {@link Parallel} pool, and matmuls that read the same input share one
 * dispatch (Q, K and V; W1 and W3, with SwiGLU applied by the same thread to the rows it computed).
 * Attention runs heads in parallel. The {@link Kernels} decide the matmul's summation order
 * ({@link VectorKernels}: fast; {@link ExactVectorKernels}: run.c's order). Everything else
 * (rmsnorm, RoPE, softmax, attention, SwiGLU, quantization) is bit-identical to the
 * {@link ScalarKernels} reference in both modes, which is what lets Q8 models and exact mode match
 * llama2.c bit for bit.
 */
public final class CpuEngine implements InferenceEngine {
    /** RoPE base of these models (llama2.c hard-codes 10000). */
    public static final float ROPE_THETA = 10000.0f;
    /** Row ranges handed to the kernels start on multiples of this (their tile height). */
    private static final int ROW_GRAIN = 16;
    /** Speed (bytes of weights per nanosecond, i.e. GB/s) at which {@link #warmUp} deems a kernel compiled. */
    private static final double WARM_UP_BYTES_PER_NANO = 2.0;
    private static final long WARM_UP_MAX_NANOS = 3_000_000_000L;
    /** Kernel and weight-segment classes already warmed up in this JVM. */
    private static final Set<String> WARMED_UP = ConcurrentHashMap.newKeySet();

    private final Configuration c;
    private final Weights w;
    private final Kernels kernels;
    private final Parallel parallel;
    private final boolean ownsParallel;
    private final String name;
    private final float[] ropeFreq, ropeCos, ropeSin;
    private final Attention attention;
    private final FloatMath math;

    // Profiling (off unless setProfiler is called): task names are made once, not per token.
    private static final String[] LAYER_TASKS = {"attn_norm", "qkv", "rope", "attention", "wo", "ffn_norm", "w1w3_swiglu", "w2"};
    private final String[][] taskNames;
    private Profiler profiler = Profiler.NONE;
    private boolean profiling;
    private String currentTask = "";

    // Run state, as run.c's RunState.
    private final float[] x, xb, xb2, hb, hb2, q, k, v, att, logits;
    private final Activations in;                   // the current matmul input and its converted forms (runq's Q8, GGML's)

    public CpuEngine(Model model, Kernels kernels, FloatMath math, int threads) {
        this(model, kernels, math, checkedParallel(model, threads), true);
    }

    private static Parallel checkedParallel(Model model, int threads) {
        checkRunState(model); // before any thread or array is made
        return new Parallel(threads);
    }

    /**
     * @param math the float functions (exp, sin, cos, pow): the C library's (what llama2.c calls) or Java's
     */
    public CpuEngine(Model model, Kernels kernels, FloatMath math, Parallel parallel, boolean ownsParallel) {
        checkRunState(model);
        this.math = math;
        this.c = model.config();
        this.w = model.weights();
        this.kernels = kernels;
        this.parallel = parallel;
        this.ownsParallel = ownsParallel;
        this.name = "cpu-" + kernels.name() + "-" + parallel.threads() + "t";
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim();
        x = new float[dim];
        xb = new float[dim];
        xb2 = new float[dim];
        hb = new float[hidden];
        hb2 = new float[hidden];
        q = new float[dim];
        k = new float[kvDim];
        v = new float[kvDim];
        attention = new Attention(c, math);
        taskNames = new String[c.nLayers()][LAYER_TASKS.length];
        for (int l = 0; l < c.nLayers(); l++) {
            for (int t = 0; t < LAYER_TASKS.length; t++) {
                taskNames[l][t] = "layer" + l + "." + LAYER_TASKS[t];
            }
        }
        att = new float[c.nHeads() * attention.scoreStride()];
        logits = new float[c.vocabSize()];
        in = new Activations(Math.max(dim, hidden));
        ropeFreq = ScalarKernels.ropeFrequencies(c.headSize(), ROPE_THETA, math);
        ropeCos = new float[ropeFreq.length];
        ropeSin = new float[ropeFreq.length];
        warmUp();
    }

    /** Largest array the JVM allocates (a little under Integer.MAX_VALUE). */
    private static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

    /**
     * seq_len is not bounded by the file size in v1/v2 checkpoints, so the run state it sizes (the KV
     * cache above all) is checked before anything is allocated: every array must fit a Java array
     * (int products would wrap) and the total must fit the heap, else a clear error instead of
     * NegativeArraySizeException, an undersized array or OutOfMemoryError.
     */
    static void checkRunState(Model model) {
        Configuration c = model.config();
        String name = model.path() == null || model.path().getFileName() == null ? "model" : model.path().getFileName().toString();
        long kvRow = (long) c.seqLen() * c.kvDim();
        long att = (long) c.nHeads() * c.seqLen();
        if (kvRow > MAX_ARRAY || att > MAX_ARRAY) {
            throw new Llama2jException(name + ": header field seq_len is " + c.seqLen() + ": a KV cache row of seq_len x kv_dim = "
                    + kvRow + " floats does not fit a Java array");
        }
        long floats;
        try {
            floats = Math.addExact(Math.multiplyExact(2L * c.nLayers(), kvRow),
                    att + c.vocabSize() + 6L * c.dim() + 4L * c.hiddenDim() + 2L * c.kvDim());
        } catch (ArithmeticException e) {
            floats = Long.MAX_VALUE / Float.BYTES;
        }
        long bytes = floats * Float.BYTES, heap = Runtime.getRuntime().maxMemory();
        if (bytes > heap) {
            throw new Llama2jException(String.format(java.util.Locale.ROOT,
                    "%s: the KV cache for seq_len %d x n_layers %d needs %,d MiB, more than the Java heap's %,d MiB (raise -Xmx)",
                    name, c.seqLen(), c.nLayers(), bytes >> 20, heap >> 20));
        }
    }

    /**
     * Gets the matmul kernel compiled before the first token. Until C2 compiles it, Vector API code
     * runs boxed, a hundred times slower or more, and the first forward pass took seconds. Calls on
     * 16 rows of the model's first matrix get there sooner. They stop once 100 calls in a row run
     * at compiled speed (above {@link #WARM_UP_BYTES_PER_NANO}, the rows being in cache, or 50
     * times faster than the first calls), or after {@link #WARM_UP_MAX_NANOS}; and only once per
     * JVM for a given kernel and kind of weights. The model's own weights are used on purpose: C2
     * specializes the code to the class of memory segment it has seen (a mapped file here), and
     * warming up on other segments would leave slower, polymorphic code.
     */
    private void warmUp() {
        Matrix m = w.wq()[0];
        Object segmentClass = switch (m) {
            case Matrix.F32 f -> f.data().getClass();
            case Matrix.Q8 q8 -> q8.values().getClass();
            case Matrix.Ggml g -> g.data().getClass();
        };
        if (!WARMED_UP.add(kernels.getClass().getName() + " " + m.typeName() + " " + segmentClass)) {
            return;
        }
        int rows = Math.min(ROW_GRAIN, m.rows());
        double bytes = (double) m.byteSize() * rows / m.rows();
        float[] out = new float[rows];
        in.input(xb, m.cols());
        in.prepareFor(m);
        long deadline = System.nanoTime() + WARM_UP_MAX_NANOS;
        long firstCalls = Long.MAX_VALUE;
        for (int calls = 0, fastCalls = 0; fastCalls < 100 && System.nanoTime() < deadline; calls++) {
            long t0 = System.nanoTime();
            kernel(out, m, 0, rows);
            long t = System.nanoTime() - t0;
            if (calls < 3) {
                firstCalls = Math.min(firstCalls, t);
            }
            boolean fast = bytes >= WARM_UP_BYTES_PER_NANO * t || t * 50 < firstCalls;
            fastCalls = fast ? fastCalls + 1 : 0;
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Configuration config() {
        return c;
    }

    // ------------------------------------------------------------------ the forward pass

    @Override
    public float[] forward(int token, int pos) {
        if (token < 0 || token >= c.vocabSize()) {
            throw new IllegalArgumentException("token " + token + " outside the vocabulary [0, " + c.vocabSize() + ")");
        }
        if (pos < 0 || pos >= c.seqLen()) {
            throw new IllegalArgumentException("position " + pos + " outside [0, seq_len " + c.seqLen() + ")");
        }
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim(), headSize = c.headSize();

        long t = profiling ? System.nanoTime() : 0;
        embed(token, x);
        VectorOps.ropeAngles(pos, ropeFreq, ropeCos, ropeSin, math);
        t = mark("embed", t, (long) dim * Float.BYTES);
        for (int l = 0; l < c.nLayers(); l++) {
            String[] task = taskNames[l];
            // ---- attention block: x += wo · attention(rope(wq·xb), rope(wk·xb), wv·xb)
            VectorOps.rmsnorm(xb, x, w.rmsAtt()[l], dim);
            t = mark(task[0], t, (long) dim * Float.BYTES);
            currentTask = task[1];
            in.input(xb, dim);
            matmulQkv(w.wq()[l], w.wk()[l], w.wv()[l]);
            t = mark(task[1], t, w.wq()[l].byteSize() + w.wk()[l].byteSize() + w.wv()[l].byteSize());
            VectorOps.rope(q, k, dim, kvDim, headSize, ropeCos, ropeSin);
            attention.store(l, pos, k, v);
            t = mark(task[2], t, 0);
            final int layer = l;
            parallel.forRange(c.nHeads(), (h0, h1) -> {
                for (int h = h0; h < h1; h++) {
                    attention.head(layer, h, pos, q, xb, att, h * attention.scoreStride());
                }
            });
            t = mark(task[3], t, 2L * (pos + 1) * kvDim * Float.BYTES);
            currentTask = task[4];
            in.input(xb, dim);
            matmul(xb2, w.wo()[l]);
            VectorOps.add(x, xb2, dim);
            t = mark(task[4], t, w.wo()[l].byteSize());

            // ---- feed-forward block: x += w2 · (silu(w1·xb) * (w3·xb))
            VectorOps.rmsnorm(xb, x, w.rmsFfn()[l], dim);
            t = mark(task[5], t, (long) dim * Float.BYTES);
            currentTask = task[6];
            in.input(xb, dim);
            final Matrix w1 = w.w1()[l], w3 = w.w3()[l];
            in.prepareFor(w1);
            in.prepareFor(w3);
            parallel.forRange(hidden, ROW_GRAIN, (r0, r1) -> {
                kernel(hb, w1, r0, r1);
                kernel(hb2, w3, r0, r1);
                VectorOps.swiglu(hb, hb2, r0, r1, math);
            });
            t = mark(task[6], t, w1.byteSize() + w3.byteSize());
            currentTask = task[7];
            in.input(hb, hidden);
            matmul(xb, w.w2()[l]);
            VectorOps.add(x, xb, dim);
            t = mark(task[7], t, w.w2()[l].byteSize());
        }
        VectorOps.rmsnorm(x, x, w.rmsFinal(), dim);
        t = mark("final_norm", t, (long) dim * Float.BYTES);
        currentTask = "classifier";
        in.input(x, dim);
        matmul(logits, w.classifier());
        mark("classifier", t, w.classifier().byteSize());
        return logits;
    }

    /** The token's embedding row: run.c copies it, runq and GGML dequantize it. */
    private void embed(int token, float[] out) {
        w.tokenEmbedding().dequantizeRow(token, out, 0);
    }

    /** out = m · in, rows split across the pool. */
    private void matmul(float[] out, Matrix m) {
        in.prepareFor(m);
        parallel.forRange(m.rows(), ROW_GRAIN, (r0, r1) -> kernel(out, m, r0, r1));
    }

    /** q = wq · xb, k = wk · xb, v = wv · xb in one dispatch: the rows of the three are numbered one after another. */
    private void matmulQkv(Matrix wq, Matrix wk, Matrix wv) {
        int nq = wq.rows(), nk = wk.rows();
        in.prepareFor(wq);
        in.prepareFor(wk);
        in.prepareFor(wv);
        parallel.forRange(nq + nk + wv.rows(), ROW_GRAIN, (s, e) -> {
            kernel(q, wq, s, Math.min(e, nq));
            kernel(k, wk, Math.max(s - nq, 0), Math.min(e - nq, nk));
            kernel(v, wv, Math.max(s - nq - nk, 0), Math.min(e - nq - nk, wv.rows()));
        });
    }

    /** Rows [r0, r1) of out = m · in (nothing if the range is empty); in is prepared for m. */
    private void kernel(float[] out, Matrix m, int r0, int r1) {
        if (r0 >= r1) {
            return;
        }
        long t0 = profiling ? System.nanoTime() : 0;
        kernels.matmul(out, in, m, r0, r1);
        if (profiling) {
            // One slice per worker and chunk: the trace shows how the rows were spread over threads.
            profiler.record(currentTask, Thread.currentThread().getName(), Profiler.Kind.WORKER_SLICE, t0,
                    System.nanoTime() - t0, m.byteSize() * (r1 - r0) / m.rows());
        }
    }

    /** Records the step that ran since {@code t0} as task {@code task}'s kernel time; returns the new start. */
    private long mark(String task, long t0, long bytes) {
        if (!profiling) {
            return 0;
        }
        long t1 = System.nanoTime();
        profiler.record(task, "cpu", Profiler.Kind.KERNEL, t0, t1 - t0, bytes);
        return t1;
    }

    /**
     * CPU timers per step of the forward pass (wall time of each step, all workers together) and one
     * slice per worker chunk of every matmul; each matmul step includes its input quantization (Q8).
     */
    @Override
    public void setProfiler(Profiler profiler) {
        this.profiler = profiler;
        this.profiling = profiler != Profiler.NONE;
    }

    @Override
    public java.util.List<String> taskNames() {
        java.util.List<String> names = new java.util.ArrayList<>();
        names.add("embed");
        for (String[] layer : taskNames) {
            names.addAll(java.util.List.of(layer));
        }
        names.add("final_norm");
        names.add("classifier");
        return names;
    }

    @Override
    public void reset() {
        // Positions are always written before they are read (pos is fed in order), so nothing to clear.
    }

    @Override
    public void close() {
        if (ownsParallel) {
            parallel.close();
        }
    }
}
