package io.github.llama2j.hybrid;

import io.github.llama2j.cpu.Activations;
import io.github.llama2j.cpu.GgmlOps;
import io.github.llama2j.cpu.VectorOps;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;
import io.github.llama2j.profile.Profiler;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Tensor parallelism across unequal devices: every matmul's rows are split between shards (a TornadoVM
 * device and the host CPU; the design takes N), each shard streams only its own slice of every weight
 * matrix from its own memory, and the shards of one step run at the same time, so a step costs the
 * slowest shard plus a small exchange instead of the sum. See {@link SplitPlan} for who owns what.
 *
 * <p>One layer is two steps, each followed by the one exchange of the layer's half:
 * <pre>
 *   host: xb = rmsnorm(x), xb's forms [Q8: runq's groups; GGUF: F16-rounded, Q8_0]   -- once, handed to every shard
 *   each shard: q,k,v of its heads [GGUF: + biases, head norms] → RoPE → its KV-cache slice → attention of
 *               its heads → its columns of wo
 *   host: x += (partial_0 + partial_1 + ...)          -- exchange: dim floats back from each device
 *   host: xb = rmsnorm(x), xb's forms
 *   each shard: its rows of w1, w3 → SwiGLU → its columns of w2
 *   host: x += (partial_0 + partial_1 + ...)
 * </pre>
 * and after the last layer one classifier step in which each shard computes its rows of the logits.
 * The norms, the residual and the conversions of the step inputs are done once, on the host, in run.c's
 * (runq.c's) order for llama2.c checkpoints and llama.cpp's for GGUF models (as the CPU engine does them), so
 * every shard works from the same bits; a shard that owns everything computes exactly what the CPU engine
 * computes. An architecture's extra steps (qwen2's biases, qwen3's head norms, RoPE's style and factors) are
 * the shards' own, within their heads.
 */
public final class HybridEngine implements InferenceEngine {

    /** Makes shard {@code shard} of {@code plan}, reading its inputs from {@code in}. */
    @FunctionalInterface
    interface ShardFactory {
        Shard create(Configuration c, Weights w, SplitPlan plan, int shard, StepInput in);
    }

    private final Configuration c;
    private final Weights w;
    private final SplitPlan plan;
    private final Shard[] shards;
    private final ShardWorker[] workers;
    private final StepJob[] jobs;
    private final StepInput in;
    private final float[] x;
    /** GGUF models: llama.cpp's arithmetic on the host (ggml's rmsnorm); llama2.c checkpoints: run.c's. */
    private final boolean ggml;
    private final HybridStats stats;
    private final String name;
    private final PrintStream log;
    private volatile Profiler profiler = Profiler.NONE;
    private boolean closed;

    /** Runs one step of one shard on its worker (reused, so a step allocates nothing). */
    private static final class StepJob implements Runnable {
        final Shard shard;
        SplitPlan.Kind kind;
        int layer;

        StepJob(Shard shard) {
            this.shard = shard;
        }

        @Override
        public void run() {
            shard.run(kind, layer);
        }
    }

    /**
     * @param c   the configuration (the calibration runs a copy with fewer layers)
     * @param w   the weights, at least {@code c.nLayers()} layers of them
     * @param log where to print the per-token breakdown at close (verbose runs), or null
     */
    HybridEngine(Configuration c, Weights w, SplitPlan plan, List<ShardFactory> factories, PrintStream log) {
        this.c = c;
        this.w = w;
        this.plan = plan;
        this.log = log;
        if (factories.size() != plan.shards()) {
            throw new IllegalArgumentException(factories.size() + " shards for a plan of " + plan.shards());
        }
        this.ggml = c.ropeStyle() != RopeStyle.LLAMA2C;
        this.in = new StepInput(c.dim(), c.vocabSize());
        this.x = new float[c.dim()];
        List<Shard> made = new ArrayList<>();
        try {
            for (int i = 0; i < factories.size(); i++) {
                made.add(factories.get(i).create(c, w, plan, i, in));
            }
        } catch (RuntimeException e) {
            made.forEach(Shard::close);
            throw e;
        }
        shards = made.toArray(Shard[]::new);
        workers = new ShardWorker[shards.length];
        jobs = new StepJob[shards.length];
        String[] tracks = new String[shards.length];
        StringBuilder n = new StringBuilder("hybrid:");
        for (int i = 0; i < shards.length; i++) {
            jobs[i] = new StepJob(shards[i]);
            tracks[i] = shards[i].track();
            if (!shards[i].runsOnHost()) {
                workers[i] = new ShardWorker(shards[i].track());
            }
            n.append(i > 0 ? "+" : "").append(shards[i].track());
        }
        this.name = n.toString();
        this.stats = new HybridStats(tracks);
    }

    @Override
    public String name() {
        return name;
    }

    /** The device shards' launches: per layer an attention and a feed-forward step, then the classifier step. */
    @Override
    public int launchesPerToken() {
        int n = 0;
        for (Shard s : shards) {
            n += c.nLayers() * (s.launches(SplitPlan.Kind.ATTENTION) + s.launches(SplitPlan.Kind.FFN))
                    + s.launches(SplitPlan.Kind.CLASSIFIER);
        }
        return n;
    }

    @Override
    public Configuration config() {
        return c;
    }

    public SplitPlan plan() {
        return plan;
    }

    /** Time and bytes per step and shard since the last reset. */
    public HybridStats stats() {
        return stats;
    }

    @Override
    public void setProfiler(Profiler profiler) {
        this.profiler = profiler == null ? Profiler.NONE : profiler;
        for (Shard s : shards) {
            s.reportLoad(this.profiler);
        }
    }

    // ------------------------------------------------------------------ the forward pass

    @Override
    public float[] forward(int token, int pos) {
        if (closed) {
            throw new IllegalStateException("engine closed");
        }
        InferenceEngine.checkForwardArguments(c, token, pos);
        long t0 = System.nanoTime();
        w.tokenEmbedding().dequantizeRow(token, x, 0);
        in.pos = pos;
        for (int l = 0; l < c.nLayers(); l++) {
            input(w.rmsAtt()[l], w.wq()[l], w.wk()[l], w.wv()[l]);
            step(SplitPlan.Kind.ATTENTION, l);
            input(w.rmsFfn()[l], w.w1()[l], w.w3()[l], null);
            step(SplitPlan.Kind.FFN, l);
        }
        // run.c (and llama.cpp) normalise x before the classifier; the same values, here into xb.
        input(w.rmsFinal(), w.classifier(), null, null);
        step(SplitPlan.Kind.CLASSIFIER, -1);
        stats.token(System.nanoTime() - t0);
        return in.logits;
    }

    /**
     * A step's input, computed once on the host for every shard: xb = rmsnorm(x) (run.c's; ggml's with the
     * model's epsilon for GGUF models), then the forms of xb that the step's matrices m0, m1, m2 (null: none)
     * read: runq's Q8 groups, or llama.cpp's F16 rounding and Q8_0 blocks ({@link Activations}).
     */
    private void input(MemorySegment norm, Matrix m0, Matrix m1, Matrix m2) {
        int dim = c.dim();
        if (ggml) {
            GgmlOps.rmsnorm(in.xb, 0, x, 0, norm, dim, c.rmsEps());
        } else {
            VectorOps.rmsnorm(in.xb, x, norm, dim);
        }
        in.act.input(in.xb, dim);
        prepareFor(m0);
        prepareFor(m1);
        prepareFor(m2);
    }

    private void prepareFor(Matrix m) {
        if (m != null) {
            in.act.prepareFor(m);
        }
    }

    /**
     * One step: every shard that owns rows of this kind runs its share (devices on their workers, the host
     * shard on this thread, all at once), then the host adds the partial sums into the residual in shard order.
     */
    private void step(SplitPlan.Kind kind, int layer) {
        long t0 = System.nanoTime();
        for (int i = 0; i < shards.length; i++) {
            if (workers[i] != null && plan.owns(i, kind)) {
                jobs[i].kind = kind;
                jobs[i].layer = layer;
                workers[i].submit(jobs[i]);
            }
        }
        RuntimeException failure = null;
        try {
            for (int i = 0; i < shards.length; i++) {
                if (workers[i] == null && plan.owns(i, kind)) {
                    shards[i].run(kind, layer);
                }
            }
        } catch (RuntimeException e) {
            failure = e;
        }
        long t1 = System.nanoTime();
        for (int i = 0; i < shards.length; i++) {
            if (workers[i] != null && plan.owns(i, kind)) {
                try {
                    workers[i].join();   // always, so no worker is left running into the next step
                } catch (RuntimeException e) {
                    failure = failure == null ? e : failure;
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
        long t2 = System.nanoTime();
        if (kind != SplitPlan.Kind.CLASSIFIER) {
            combine(kind);
        }
        long t3 = System.nanoTime();
        stats.step(kind, t2 - t0, t2 - t1, t3 - t2);
        long exchangeBytes = 0;
        for (int i = 0; i < shards.length; i++) {
            if (plan.owns(i, kind)) {
                StepTimes st = shards[i].last();
                stats.shard(i, st);
                exchangeBytes += st.bytesIn + st.bytesOut;
            }
        }
        Profiler p = profiler;
        if (p != Profiler.NONE) {
            profile(p, kind, layer, t2, t3, exchangeBytes);
        }
    }

    private void profile(Profiler p, SplitPlan.Kind kind, int layer, long t2, long t3, long exchangeBytes) {
        String task = (kind == SplitPlan.Kind.CLASSIFIER ? "" : "layer" + layer + ".") + kind.label;
        for (int i = 0; i < shards.length; i++) {
            if (plan.owns(i, kind)) {
                Shard s = shards[i];
                StepTimes st = s.last();
                String name = task + "." + s.track();
                p.record(name, s.track(), Profiler.Kind.KERNEL, st.startNanos + st.copyInNanos, st.computeNanos,
                        s.weightBytes(kind));
                if (st.bytesIn + st.bytesOut > 0) {
                    p.record(name, s.track(), Profiler.Kind.COPY_IN, st.startNanos, st.copyInNanos, st.bytesIn);
                    p.record(name, s.track(), Profiler.Kind.COPY_OUT, st.startNanos + st.copyInNanos + st.computeNanos,
                            st.copyOutNanos, st.bytesOut);
                }
            }
        }
        // The host's side of the exchange: adding the partial sums (the device transfers are the copies above).
        p.record(task + ".exchange", "host", Profiler.Kind.EXCHANGE, t2, t3 - t2, exchangeBytes);
    }

    /** x += sum of the owners' partials, added in shard order (one owner: x += its partial, as run.c adds). */
    private void combine(SplitPlan.Kind kind) {
        int first = -1, count = 0;
        for (int i = 0; i < shards.length; i++) {
            if (plan.owns(i, kind)) {
                if (first < 0) {
                    first = i;
                }
                count++;
            }
        }
        int dim = c.dim();
        if (count == 1) {
            VectorOps.add(x, shards[first].partial(), dim);
            return;
        }
        float[] sum = shards[first].partial();
        for (int j = 0; j < dim; j++) {
            float s = sum[j];
            for (int i = first + 1; i < shards.length; i++) {
                if (plan.owns(i, kind)) {
                    s += shards[i].partial()[j];
                }
            }
            x[j] += s;
        }
    }

    /** Prints the per-token breakdown (verbose runs, at close). */
    void printStats(PrintStream out) {
        if (stats.tokens() > 0) {
            out.println(stats.report());
            out.flush();
        }
    }

    @Override
    public void reset() {
        // Every position's cache rows are written (on whichever shard owns them) before they are read.
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (log != null) {
            printStats(log);
        }
        for (ShardWorker wk : workers) {
            if (wk != null) {
                wk.close();
            }
        }
        for (Shard s : shards) {
            s.close();
        }
    }

    Shard shard(int i) {
        return shards[i];
    }
}
