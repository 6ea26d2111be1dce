package io.github.llama2j.hybrid;

import io.github.llama2j.cpu.Activations;
import io.github.llama2j.cpu.Attention;
import io.github.llama2j.cpu.CpuLayer;
import io.github.llama2j.cpu.GgmlOps;
import io.github.llama2j.cpu.Kernels;
import io.github.llama2j.cpu.MatrixForm;
import io.github.llama2j.cpu.Parallel;
import io.github.llama2j.cpu.PreparedWeights;
import io.github.llama2j.cpu.Rope;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Weights;

import java.lang.foreign.MemorySegment;


/**
 * The host CPU's share, computed by the CPU engine's own kernels ({@link CpuLayer}: the same matmul
 * dispatches, {@link Rope}, {@link Attention} and {@link Activations}, same {@link Kernels}, same
 * {@link FloatMath}; for GGUF models the same {@link GgmlOps}: biases, head norms) on its slice: row views of
 * wq/wk/wv, w1/w3 and the classifier read in place from the mapped model, the matching rows of the q/k/v
 * biases, compact copies of its column slices of wo and w2 (in a file mapping, see {@link MappedScratch}),
 * and a key/value cache that holds only its key/value heads. The products of the step input read the forms
 * the host prepared ({@link StepInput#act}). A shard that owns everything therefore computes exactly what
 * the CPU engine computes.
 */
final class CpuShard implements Shard {
    private final Configuration c;
    private final Parallel parallel;
    private final CpuLayer ops;
    private final StepInput in;
    private final boolean onHost;
    private final String track;
    private final MappedScratch scratch;
    private final StepTimes last = new StepTimes();

    // attention: heads [h0, h1), kv heads [kv0, kv1)
    private final int heads, qRows, kvRows;
    private final MatrixForm[] wq, wk, wv, wo;      // the slices' forms: the file's layout or a load-time copy
    private final MemorySegment[] bq, bk, bv;       // qwen2: the biases of its rows (null: none)
    private final MemorySegment[] qNorm, kNorm;     // qwen3: each head's RMSNorm weight (null: none)
    private final float eps;
    private final float[] q, attOut;                // (own heads * head_size)
    private final float[] k, v;                     // (own kv heads * head_size)
    private final float[] att;                      // (own heads, cache.scoreStride())
    private final Attention cache;                  // own kv heads only; null if no heads
    private final Rope rope;
    private final float[] ropeCos, ropeSin;         // (head_size/2) at ropePos
    private int ropePos = -1;
    // feed-forward: hidden rows [r0, r1)
    private final int ffnRows;
    private final MatrixForm[] w1, w3, w2;
    private final float[] hb, hb2;
    private final Activations act;                  // the shard's own matmul inputs: attOut (own heads) or hb (own rows)
    // classifier: rows [v0, v1), computed straight into the logits
    private final int v0, v1;
    private final MatrixForm classifier;

    private final float[] partial;

    /**
     * @param threads worker threads of this shard's own parallel pool (the calling thread included)
     * @param onHost  whether this shard runs on the engine's calling thread (else on a worker thread)
     * @param prepared the load-time copies its slices' products read ({@link PreparedWeights#resolve}: Q4_K slices
     *                copied, the others in the file's layout; none with {@code --weight-copies=off})
     */
    CpuShard(String track, Configuration c, Weights w, SplitPlan plan, int shard, Kernels kernels, PreparedWeights prepared,
             int threads, FloatMath math, StepInput in, boolean onHost) {
        this.track = track;
        this.c = c;
        this.parallel = new Parallel(threads);
        this.ops = new CpuLayer(kernels, parallel, math);
        this.in = in;
        this.onHost = onHost;
        int L = c.nLayers(), hsz = c.headSize();
        int h0 = plan.headStart(shard), h1 = plan.headEnd(shard);
        int kv0 = h0 / c.kvMul(), kv1 = h1 / c.kvMul();
        heads = h1 - h0;
        qRows = heads * hsz;
        kvRows = (kv1 - kv0) * hsz;
        int r0 = plan.ffnStart(shard), r1 = plan.ffnEnd(shard);
        ffnRows = r1 - r0;
        v0 = plan.vocabStart(shard);
        v1 = plan.vocabEnd(shard);
        classifier = v1 > v0 ? prepared.resolve(w.classifier()) : new MatrixForm.File(w.classifier()); // no copy for no rows

        wq = new MatrixForm[L];
        wk = new MatrixForm[L];
        wv = new MatrixForm[L];
        wo = new MatrixForm[L];
        w1 = new MatrixForm[L];
        w3 = new MatrixForm[L];
        w2 = new MatrixForm[L];
        boolean bias = w.bq() != null;
        bq = bias ? new MemorySegment[L] : null;
        bk = bias ? new MemorySegment[L] : null;
        bv = bias ? new MemorySegment[L] : null;
        qNorm = w.qNorm();
        kNorm = w.kNorm();
        eps = c.rmsEps();
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
                wq[l] = prepared.resolve(WeightSlices.rows(w.wq()[l], h0 * hsz, h1 * hsz));
                wk[l] = prepared.resolve(WeightSlices.rows(w.wk()[l], kv0 * hsz, kv1 * hsz));
                wv[l] = prepared.resolve(WeightSlices.rows(w.wv()[l], kv0 * hsz, kv1 * hsz));
                wo[l] = prepared.resolve(WeightSlices.columns(w.wo()[l], h0 * hsz, h1 * hsz, scratch::allocate));
                if (bias) {
                    bq[l] = floats(w.bq()[l], h0 * hsz, h1 * hsz);
                    bk[l] = floats(w.bk()[l], kv0 * hsz, kv1 * hsz);
                    bv[l] = floats(w.bv()[l], kv0 * hsz, kv1 * hsz);
                }
            }
            if (ffnRows > 0) {
                w1[l] = prepared.resolve(WeightSlices.rows(w.w1()[l], r0, r1));
                w3[l] = prepared.resolve(WeightSlices.rows(w.w3()[l], r0, r1));
                w2[l] = prepared.resolve(WeightSlices.columns(w.w2()[l], r0, r1, scratch::allocate));
            }
        }
        q = new float[qRows];
        k = new float[kvRows];
        v = new float[kvRows];
        attOut = new float[qRows];
        cache = heads > 0 ? new Attention(L, c.seqLen(), hsz, kv1 - kv0, c.kvMul(), math) : null;
        att = new float[heads > 0 ? heads * cache.scoreStride() : 0];
        hb = new float[ffnRows];
        hb2 = new float[ffnRows];
        act = new Activations(Math.max(1, Math.max(qRows, ffnRows)));
        partial = new float[c.dim()];
        rope = Rope.of(c, w.ropeFreqs(), math);
        ropeCos = new float[rope.pairs()];
        ropeSin = new float[rope.pairs()];
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

    /**
     * The CPU engine's attention block for this shard's heads, up to wo: partial = wo[:, own columns] ·
     * attention(own heads), with the architecture's biases and head norms.
     */
    private void attention(int l, int pos) {
        ops.matmul3(q, wq[l], k, wk[l], v, wv[l], in.act);
        if (bq != null) { // qwen2
            GgmlOps.addBias(q, bq[l], qRows);
            GgmlOps.addBias(k, bk[l], kvRows);
            GgmlOps.addBias(v, bv[l], kvRows);
        }
        int hsz = c.headSize();
        if (qNorm != null) { // qwen3: RMSNorm of each head before RoPE
            GgmlOps.headNorms(q, heads, hsz, qNorm[l], eps);
            GgmlOps.headNorms(k, kvRows / hsz, hsz, kNorm[l], eps);
        }
        if (pos != ropePos) { // the angles depend on the position only: once per token
            rope.angles(pos, ropeCos, ropeSin);
            ropePos = pos;
        }
        // Local arrays start on a head boundary, so each local head is rotated as its global one.
        rope.rotate(q, heads, k, kvRows / hsz, ropeCos, ropeSin);
        cache.store(l, pos, k, v);
        // Heads are owned in whole key/value groups, so local head h reads local key/value head h / kvMul.
        ops.attention(cache, l, pos, heads, q, attOut, att);
        act.input(attOut, qRows);
        ops.matmul(partial, act, wo[l]);
    }

    /** The feed-forward block for this shard's hidden rows: partial = w2[:, own rows] · swiglu(w1·x, w3·x). */
    private void ffn(int l) {
        ops.matmulSwiglu(hb, hb2, w1[l], w3[l], in.act);
        act.input(hb, ffnRows);
        ops.matmul(partial, act, w2[l]);
    }

    /** This shard's rows of the logits, computed in place. */
    private void classifier() {
        ops.matmul(in.logits, in.act, classifier, v0, v1);
    }

    /** Floats [i0, i1) of a float32 vector (a view). */
    private static MemorySegment floats(MemorySegment v, int i0, int i1) {
        return v.asSlice((long) i0 * Float.BYTES, (long) (i1 - i0) * Float.BYTES);
    }

    @Override
    public long weightBytes(SplitPlan.Kind kind) {
        return switch (kind) {
            case ATTENTION -> heads == 0 ? 0 : wq[0].byteSize() + wk[0].byteSize() + wv[0].byteSize() + wo[0].byteSize();
            case FFN -> ffnRows == 0 ? 0 : w1[0].byteSize() + w3[0].byteSize() + w2[0].byteSize();
            case CLASSIFIER -> classifier.byteSize() / classifier.source().rows() * (v1 - v0);
        };
    }

    @Override
    public void close() {
        parallel.close();
        scratch.close();
    }
}
