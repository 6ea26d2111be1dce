package io.github.llama2j.hybrid;

import io.github.llama2j.cpu.Kernels;
import io.github.llama2j.cpu.Parallel;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;
import io.github.llama2j.tornado.TensorTypes;


/**
 * The host CPU's share, computed as the CPU engine computes the whole model (same {@link Kernels},
 * same {@link ScalarKernels} steps in the same order, same {@link FloatMath}), on its slice: row views
 * of wq/wk/wv, w1/w3 and the classifier read in place from the mapped checkpoint, compact copies of its
 * column slices of wo and w2 (in a file mapping, see {@link MappedScratch}), and a key/value cache that holds
 * only its key/value heads. A shard that
 * owns everything therefore computes exactly what the CPU engine computes.
 */
final class CpuShard implements Shard {
    private final Configuration c;
    private final Kernels kernels;
    private final Parallel parallel;
    private final FloatMath math;
    private final StepInput in;
    private final boolean onHost;
    private final String track;
    private final MappedScratch scratch;
    private final StepTimes last = new StepTimes();

    // attention: heads [h0, h1), kv heads [kv0, kv1)
    private final int heads, qRows, kvRows;
    private final Matrix[] wq, wk, wv, wo;
    private final float[] q, k, v, attOut, att;
    private final float[][] keyCache, valueCache;
    private final byte[] aq;
    private final float[] as;
    private final float[] ropeFreq;
    // feed-forward: hidden rows [r0, r1)
    private final int ffnRows;
    private final Matrix[] w1, w3, w2;
    private final float[] hb, hb2;
    private final byte[] hq;
    private final float[] hs;
    // classifier: rows [v0, v1), computed straight into the logits
    private final int v0, v1;
    private final Matrix classifier;

    private final float[] partial;

    /**
     * @param threads worker threads of this shard's own parallel pool (the calling thread included)
     * @param onHost  whether this shard runs on the engine's calling thread (else on a worker thread)
     */
    CpuShard(String track, Configuration c, Weights w, SplitPlan plan, int shard, Kernels kernels, int threads,
             FloatMath math, StepInput in, boolean onHost) {
        this.track = track;
        this.c = c;
        this.kernels = kernels;
        this.parallel = new Parallel(threads);
        this.math = math;
        this.in = in;
        this.onHost = onHost;
        int L = c.nLayers(), hsz = c.headSize(), gs = Math.max(1, c.groupSize());
        int h0 = plan.headStart(shard), h1 = plan.headEnd(shard);
        int kv0 = h0 / c.kvMul(), kv1 = h1 / c.kvMul();
        heads = h1 - h0;
        qRows = heads * hsz;
        kvRows = (kv1 - kv0) * hsz;
        int r0 = plan.ffnStart(shard), r1 = plan.ffnEnd(shard);
        ffnRows = r1 - r0;
        v0 = plan.vocabStart(shard);
        v1 = plan.vocabEnd(shard);
        classifier = w.classifier();

        wq = new Matrix[L];
        wk = new Matrix[L];
        wv = new Matrix[L];
        wo = new Matrix[L];
        w1 = new Matrix[L];
        w3 = new Matrix[L];
        w2 = new Matrix[L];
        keyCache = new float[heads > 0 ? L : 0][];
        valueCache = new float[heads > 0 ? L : 0][];
        java.util.List<Long> copies = new java.util.ArrayList<>();
        for (int l = 0; l < L; l++) {
            if (heads > 0) {
                for (long b : WeightSlices.columnBytes(w.wo()[l], h0 * hsz, h1 * hsz)) {
                    copies.add(b);
                }
            }
            if (ffnRows > 0) {
                for (long b : WeightSlices.columnBytes(w.w2()[l], r0, r1)) {
                    copies.add(b);
                }
            }
        }
        scratch = new MappedScratch(MappedScratch.sizeOf(copies.stream().mapToLong(Long::longValue).toArray()));
        for (int l = 0; l < L; l++) {
            if (heads > 0) {
                wq[l] = WeightSlices.rows(w.wq()[l], h0 * hsz, h1 * hsz);
                wk[l] = WeightSlices.rows(w.wk()[l], kv0 * hsz, kv1 * hsz);
                wv[l] = WeightSlices.rows(w.wv()[l], kv0 * hsz, kv1 * hsz);
                wo[l] = WeightSlices.columns(w.wo()[l], h0 * hsz, h1 * hsz, scratch::allocate);
                keyCache[l] = new float[c.seqLen() * kvRows];
                valueCache[l] = new float[c.seqLen() * kvRows];
            }
            if (ffnRows > 0) {
                w1[l] = WeightSlices.rows(w.w1()[l], r0, r1);
                w3[l] = WeightSlices.rows(w.w3()[l], r0, r1);
                w2[l] = WeightSlices.columns(w.w2()[l], r0, r1, scratch::allocate);
            }
        }
        q = new float[qRows];
        k = new float[kvRows];
        v = new float[kvRows];
        attOut = new float[qRows];
        att = new float[heads * c.seqLen()];
        aq = new byte[qRows];
        as = new float[qRows / gs];
        hb = new float[ffnRows];
        hb2 = new float[ffnRows];
        hq = new byte[ffnRows];
        hs = new float[ffnRows / gs];
        partial = new float[c.dim()];
        ropeFreq = ScalarKernels.ropeFrequencies(hsz, HybridEngine.ROPE_THETA, math);
    }

    @Override
    public String track() {
        return track;
    }

    @Override
    public boolean runsOnHost() {
        return onHost;
    }

    @Override
    public float[] partial() {
        return partial;
    }

    @Override
    public StepTimes last() {
        return last;
    }

    @Override
    public void run(SplitPlan.Kind kind, int layer) {
        long t0 = System.nanoTime();
        switch (kind) {
            case ATTENTION -> attention(layer, in.pos);
            case FFN -> ffn(layer);
            case CLASSIFIER -> classifier();
        }
        last.clear();
        last.startNanos = t0;
        last.computeNanos = System.nanoTime() - t0;
    }

    /** run.c's attention block for this shard's heads, up to wo: partial = wo[:, own columns] · attention(own heads). */
    private void attention(int l, int pos) {
        // q, k and v in one parallel dispatch (each row's value does not depend on who computes it).
        matmul3(q, wq[l], k, wk[l], v, wv[l]);
        // Local arrays start on a head boundary, so i % headSize (RoPE's frequency index) is the global one.
        ScalarKernels.rope(q, k, pos, qRows, kvRows, c.headSize(), ropeFreq, math);
        System.arraycopy(k, 0, keyCache[l], pos * kvRows, kvRows);
        System.arraycopy(v, 0, valueCache[l], pos * kvRows, kvRows);
        final float[] kc = keyCache[l], vc = valueCache[l];
        final int seqLen = c.seqLen(), headSize = c.headSize(), kvMul = c.kvMul();
        // Heads are owned in whole key/value groups, so local head h reads local key/value head h / kvMul.
        parallel.forRange(heads, (a, b) -> {
            for (int h = a; h < b; h++) {
                ScalarKernels.attentionHead(attOut, q, kc, vc, att, h * seqLen, h, pos, headSize, kvRows, kvMul, math);
            }
        });
        if (c.quantized()) {
            ScalarKernels.quantize(attOut, qRows, c.groupSize(), aq, as);
        }
        matmul(partial, attOut, aq, as, wo[l]);
    }

    /** run.c's feed-forward block for this shard's hidden rows: partial = w2[:, own rows] · swiglu(w1·x, w3·x). */
    private void ffn(int l) {
        // w1 and w3 in one parallel dispatch, then SwiGLU (element by element, as run.c).
        matmul3(hb, w1[l], hb2, w3[l], null, null);
        ScalarKernels.swiglu(hb, hb2, ffnRows, math);
        if (c.quantized()) {
            ScalarKernels.quantize(hb, ffnRows, c.groupSize(), hq, hs);
        }
        matmul(partial, hb, hq, hs, w2[l]);
    }

    /** This shard's rows of the logits, computed in place. */
    private void classifier() {
        float[] out = in.logits;
        switch (classifier) {
            case Matrix.F32 f -> parallel.forRange(v1 - v0, (a, b) -> kernels.matmulF32(out, in.xb, f, v0 + a, v0 + b));
            case Matrix.Q8 q8 -> parallel.forRange(v1 - v0, (a, b) -> kernels.matmulQ8(out, in.xq, in.xs, q8, v0 + a, v0 + b));
            default -> throw TensorTypes.unsupported(classifier, "classifier");
        }
    }

    /**
     * out0 = m0 · xb, out1 = m1 · xb (and out2 = m2 · xb unless m2 is null), the rows of all of them split
     * over the pool in one dispatch: a token is dozens of short matmuls, and each dispatch wakes the workers.
     */
    private void matmul3(float[] out0, Matrix m0, float[] out1, Matrix m1, float[] out2, Matrix m2) {
        int n0 = m0.rows(), n1 = m1.rows(), n2 = m2 == null ? 0 : m2.rows();
        parallel.forRange(n0 + n1 + n2, (a, b) -> {
            rows(out0, m0, a, Math.min(b, n0));
            rows(out1, m1, Math.max(a, n0) - n0, Math.min(b, n0 + n1) - n0);
            if (m2 != null) {
                rows(out2, m2, Math.max(a, n0 + n1) - n0 - n1, b - n0 - n1);
            }
        });
    }

    /** Rows [r0, r1) of m · xb (nothing if the range is empty). */
    private void rows(float[] out, Matrix m, int r0, int r1) {
        if (r0 >= r1) {
            return;
        }
        switch (m) {
            case Matrix.F32 f -> kernels.matmulF32(out, in.xb, f, r0, r1);
            case Matrix.Q8 q8 -> kernels.matmulQ8(out, in.xq, in.xs, q8, r0, r1);
            default -> throw TensorTypes.unsupported(m, "a layer matrix");
        }
    }

    private void matmul(float[] out, float[] x, byte[] xq, float[] xs, Matrix m) {
        switch (m) {
            case Matrix.F32 f -> parallel.forRange(f.rows(), (r0, r1) -> kernels.matmulF32(out, x, f, r0, r1));
            case Matrix.Q8 q8 -> parallel.forRange(q8.rows(), (r0, r1) -> kernels.matmulQ8(out, xq, xs, q8, r0, r1));
            default -> throw TensorTypes.unsupported(m, "a layer matrix");
        }
    }

    @Override
    public long weightBytes(SplitPlan.Kind kind) {
        return switch (kind) {
            case ATTENTION -> heads == 0 ? 0 : wq[0].byteSize() + wk[0].byteSize() + wv[0].byteSize() + wo[0].byteSize();
            case FFN -> ffnRows == 0 ? 0 : w1[0].byteSize() + w3[0].byteSize() + w2[0].byteSize();
            case CLASSIFIER -> classifier.byteSize() / classifier.rows() * (v1 - v0);
        };
    }

    @Override
    public void close() {
        parallel.close();
        scratch.close();
    }
}
