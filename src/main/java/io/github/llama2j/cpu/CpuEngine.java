package io.github.llama2j.cpu;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.Weights;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The CPU engine: llama2.c's forward pass over memory-mapped weights. Float32 checkpoints follow
 * run.c, Q8_0 checkpoints follow runq.c (activations re-quantized per group before every matmul).
 * Matmul rows are split across a persistent {@link Parallel} pool; the {@link Kernels} decide the
 * summation order ({@link ScalarKernels}: run.c's exact order; {@link VectorKernels}: SIMD).
 */
public final class CpuEngine implements InferenceEngine {
    /** RoPE base of these models (llama2.c hard-codes 10000). */
    public static final float ROPE_THETA = 10000.0f;

    private final Configuration c;
    private final Weights w;
    private final Kernels kernels;
    private final Parallel parallel;
    private final boolean ownsParallel;
    private final String name;
    private final float[] ropeFreq;
    private final FloatMath math;

    // Run state, as run.c's RunState.
    private final float[] x, xb, xb2, hb, hb2, q, k, v, att, logits;
    private final float[][] keyCache, valueCache;   // [layer][seq_len * kv_dim]
    private final byte[] xq, hq;                    // runq's quantized activations (Q8 models only)
    private final float[] xs, hs;

    public CpuEngine(Model model, Kernels kernels, FloatMath math, int threads) {
        this(model, kernels, math, new Parallel(threads), true);
    }

    /**
     * @param math the float functions (exp, sin, cos, pow): Java's, or the C library's for bit-exact runs
     */
    public CpuEngine(Model model, Kernels kernels, FloatMath math, Parallel parallel, boolean ownsParallel) {
        this.math = math;
        this.c = model.config();
        this.w = model.weights();
        this.kernels = kernels;
        this.parallel = parallel;
        this.ownsParallel = ownsParallel;
        this.name = "cpu-" + kernels.name() + "-" + parallel.threads() + "t";
        try {
            checkRunState(model);
        } catch (Llama2jException e) {
            if (ownsParallel) {
                parallel.close();
            }
            throw e;
        }
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim();
        x = new float[dim];
        xb = new float[dim];
        xb2 = new float[dim];
        hb = new float[hidden];
        hb2 = new float[hidden];
        q = new float[dim];
        k = new float[kvDim];
        v = new float[kvDim];
        att = new float[c.nHeads() * c.seqLen()];
        logits = new float[c.vocabSize()];
        keyCache = new float[c.nLayers()][c.seqLen() * kvDim];
        valueCache = new float[c.nLayers()][c.seqLen() * kvDim];
        int gs = Math.max(1, c.groupSize());
        xq = new byte[dim];
        xs = new float[dim / gs];
        hq = new byte[hidden];
        hs = new float[hidden / gs];
        ropeFreq = ScalarKernels.ropeFrequencies(c.headSize(), ROPE_THETA, math);
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

        embed(token, x);
        for (int l = 0; l < c.nLayers(); l++) {
            // ---- attention block: x += wo · attention(rope(wq·xb), rope(wk·xb), wv·xb)
            ScalarKernels.rmsnorm(xb, x, w.rmsAtt()[l], dim);
            quantizeInput(xb, dim, xq, xs);
            matmul(q, xb, xq, xs, w.wq()[l]);
            matmul(k, xb, xq, xs, w.wk()[l]);
            matmul(v, xb, xq, xs, w.wv()[l]);
            ScalarKernels.rope(q, k, pos, dim, kvDim, headSize, ropeFreq, math);
            System.arraycopy(k, 0, keyCache[l], pos * kvDim, kvDim);
            System.arraycopy(v, 0, valueCache[l], pos * kvDim, kvDim);
            final float[] kc = keyCache[l], vc = valueCache[l];
            parallel.forRange(c.nHeads(), (h0, h1) -> {
                for (int h = h0; h < h1; h++) {
                    ScalarKernels.attentionHead(xb, q, kc, vc, att, h * c.seqLen(), h, pos, headSize, kvDim, c.kvMul(), math);
                }
            });
            quantizeInput(xb, dim, xq, xs);
            matmul(xb2, xb, xq, xs, w.wo()[l]);
            ScalarKernels.add(x, xb2, dim);

            // ---- feed-forward block: x += w2 · (silu(w1·xb) * (w3·xb))
            ScalarKernels.rmsnorm(xb, x, w.rmsFfn()[l], dim);
            quantizeInput(xb, dim, xq, xs);
            matmul(hb, xb, xq, xs, w.w1()[l]);
            matmul(hb2, xb, xq, xs, w.w3()[l]);
            ScalarKernels.swiglu(hb, hb2, hidden, math);
            quantizeInput(hb, hidden, hq, hs);
            matmul(xb, hb, hq, hs, w.w2()[l]);
            ScalarKernels.add(x, xb, dim);
        }
        ScalarKernels.rmsnorm(x, x, w.rmsFinal(), dim);
        quantizeInput(x, dim, xq, xs);
        matmul(logits, x, xq, xs, w.classifier());
        return logits;
    }

    /** The token's embedding row; runq dequantizes it (q * scale per group), run.c copies it. */
    private void embed(int token, float[] out) {
        int dim = c.dim();
        switch (w.tokenEmbedding()) {
            case Matrix.F32 m -> MemorySegment.copy(m.data(), ScalarKernels.FLOAT, (long) token * dim * Float.BYTES, out, 0, dim);
            case Matrix.Q8 m -> {
                long base = (long) token * dim;
                int gs = m.groupSize();
                for (int i = 0; i < dim; i++) {
                    out[i] = m.values().get(ValueLayout.JAVA_BYTE, base + i)
                            * m.scales().get(ScalarKernels.FLOAT, (base + i) / gs * Float.BYTES);
                }
            }
        }
    }

    /** Q8 models quantize each matmul input (runq); float models use it as is. */
    private void quantizeInput(float[] in, int n, byte[] q8, float[] scales) {
        if (c.quantized()) {
            ScalarKernels.quantize(in, n, c.groupSize(), q8, scales);
        }
    }

    private void matmul(float[] out, float[] in, byte[] inQ, float[] inS, Matrix m) {
        switch (m) {
            case Matrix.F32 f -> parallel.forRange(f.rows(), (r0, r1) -> kernels.matmulF32(out, in, f, r0, r1));
            case Matrix.Q8 q8 -> parallel.forRange(q8.rows(), (r0, r1) -> kernels.matmulQ8(out, inQ, inS, q8, r0, r1));
        }
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
