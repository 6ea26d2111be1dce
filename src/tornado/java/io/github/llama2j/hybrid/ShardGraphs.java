package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.hybrid.WeightSlices.DeviceSlice;
import io.github.llama2j.hybrid.WeightSlices.F16Slice;
import io.github.llama2j.hybrid.WeightSlices.F32Slice;
import io.github.llama2j.hybrid.WeightSlices.KQuantSlice;
import io.github.llama2j.hybrid.WeightSlices.Q8Slice;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;
import io.github.llama2j.tornado.GgmlKernels;
import io.github.llama2j.tornado.KQuantKernels;
import io.github.llama2j.tornado.TensorTypes;
import io.github.llama2j.tornado.TornadoSettings;
import io.github.llama2j.tornado.TransformerKernels;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.ToIntFunction;

/**
 * Builds a device shard's task graphs (run by {@link DeviceShard}): its slices of the weights copied once
 * into TornadoVM arrays, and one small graph per step it owns. Per layer an attention graph and a
 * feed-forward graph, and one classifier graph:
 * <pre>
 *   attention graph "att" (layer l; the shard's heads h0..h1):
 *     xb [Q8: xq, xs], state ─► qkv ─► q, keyCache[pos], valueCache[pos]     (its rows of wq/wk/wv, RoPE, cache store)
 *     q, keyCache, valueCache ─► attention ─► attOut                         (its heads, over positions 0..pos)
 *     [Q8: attOut ─► quant ─► aq, as]
 *     attOut ─► wo ─► out                                                     (its columns of wo: a partial sum of dim)
 *   feed-forward graph "ffn" (layer l; the shard's hidden rows r0..r1):
 *     xb [Q8: xq, xs] ─► w13 ─► hb = silu(w1·xb) * (w3·xb)                   (its rows of w1 and w3)
 *     [Q8: hb ─► quant ─► hq, hs]
 *     hb ─► w2 ─► out                                                         (its columns of w2: a partial sum of dim)
 *   classifier graph "cls" (the shard's vocabulary rows v0..v1):
 *     xb [Q8: xq, xs] ─► classifier ─► out                                    (its rows of the logits)
 * </pre>
 * GGUF models compute with llama.cpp's arithmetic, from the TornadoVM engine's {@link GgmlKernels}: one
 * product per matrix type (stacked where the types agree, each reading the input form of its type), then
 * the heads step, and the inputs of wo and w2 prepared on the device in every form a type reads:
 * <pre>
 *   "att": xf|xh|xq/xs ─► qkv_T (or q_T, k_T, v_T) ─► qkv ─► heads ─► q, keyCache[pos], valueCache[pos]
 *                         (heads: its rows of the q/k/v biases, each head's RMSNorm, RoPE NORM or NEOX)
 *          attention ─► attOut ─► wo_prep ─► forms ─► wo_T ─► out
 *   "ffn": xf|xh|xq/xs ─► w13_T (or w1_T, w3_T) ─► hb ─► w2_prep (SwiGLU) ─► forms ─► w2_T ─► out
 *   "cls": xf|xh|xq/xs ─► classifier_T ─► out
 * </pre>
 * Only the step's input (the forms of the host's {@code xb} its matrices read: float32, runq's Q8, or
 * llama.cpp's F16 rounding and Q8_0 blocks) and {@code state} ({@code [token, pos]}) go in per launch, and
 * only {@code out} comes back: the weights, the RoPE table and the caches stay on the device. The host
 * normalises the input once per step for all shards and adds the partial sums.
 *
 * <p>Every layer's attention graph is named {@code att} and every feed-forward graph {@code ffn}: TornadoVM
 * caches compiled kernels per plan by task id ({@code att.qkv}, ...), so each kernel is JIT-compiled once
 * for all layers (their shapes, hence the specialised code, are the same) and shares one grid; only each
 * graph's last task ({@code wo}, {@code w2}) is compiled again per layer, which TornadoVM 5.2 forces for the
 * last task of every graph. The buffers stay per graph. (Measured on PoCL: tiny.bin from 23 s to 4 s of start-up.)
 *
 * <p>Every grid remembers how its number of work-groups follows from the share ({@link Share}), so that
 * calibration can {@link #resize} the grids to a smaller share without rebuilding anything.
 */
final class ShardGraphs {
    private final Configuration c;
    private final TornadoSettings s;
    private final List<ImmutableTaskGraph> graphs = new ArrayList<>();
    private final List<String> graphNames = new ArrayList<>();
    private final List<List<String>> graphTasks = new ArrayList<>();
    private final GridScheduler grid = new GridScheduler();
    private final Map<String, Grid> grids = new LinkedHashMap<>();
    private final Share built;
    private final long[] stepWeightBytes = new long[SplitPlan.Kind.values().length];
    private final KernelContext ctx = new KernelContext();
    /** GGUF models: llama.cpp's arithmetic ({@link GgmlKernels}); llama2.c checkpoints: run.c's and runq's. */
    private final boolean ggml;
    final Step[] attention, ffn;
    Step classifier;

    /** What a shard owns, in the units its grids count: heads, q rows, k/v rows, hidden rows, classifier rows. */
    record Share(int heads, int qRows, int kvRows, int ffnRows, int vocabRows) {
        static Share of(Configuration c, SplitPlan plan, int shard) {
            int heads = plan.headEnd(shard) - plan.headStart(shard);
            return new Share(heads, heads * c.headSize(), heads / c.kvMul() * c.headSize(),
                    plan.ffnEnd(shard) - plan.ffnStart(shard), plan.vocabEnd(shard) - plan.vocabStart(shard));
        }

        /** Whether this share fits in {@code other} kind by kind. */
        boolean within(Share other) {
            return heads <= other.heads && ffnRows <= other.ffnRows && vocabRows <= other.vocabRows;
        }
    }

    /**
     * One matrix product of a GGUF step: {@code m} written at {@code out[outOff ..]}; {@code kind} names the task
     * ({@code qkv} when wq, wk and wv share a type and are stacked, else {@code q}, {@code k}, {@code v}), and
     * {@code rows} gives its work-groups (one per row) for a share.
     */
    private record Product(String kind, DeviceSlice m, int outOff, ToIntFunction<Share> rows) {
    }

    /** A task's grid: how many work-groups a share needs (the same id, grid and kernel in every layer). */
    private record Grid(WorkerGrid1D grid, int local, ToIntFunction<Share> workGroups) {
    }

    /**
     * A product's input in the forms the weight types read (null where no matrix reads that form): float32
     * {@code xf}, F16-rounded {@code xh}, and int8 values {@code xq} with their group scales {@code xs} (runq's
     * Q8, or GGML's Q8_0 blocks of 32).
     */
    record Forms(FloatArray xf, FloatArray xh, Int8Array xq, FloatArray xs) {
        long bytes() {
            return (xf == null ? 0 : xf.getSize() * 4L) + (xh == null ? 0 : xh.getSize() * 4L)
                    + (xq == null ? 0 : xq.getSize() + xs.getSize() * 4L);
        }

        /** The arrays, for a transfer. */
        List<Object> arrays() {
            List<Object> a = new ArrayList<>();
            for (Object o : new Object[]{xf, xh, xq, xs}) {
                if (o != null) {
                    a.add(o);
                }
            }
            return a;
        }
    }

    /** One step's graph and its host-side arrays (the input's forms copied in, output copied out, every launch). */
    record Step(int graph, Forms in, IntArray state, FloatArray out) {
        long bytesIn() {
            return (state == null ? 0 : state.getSize() * 4L) + in.bytes();
        }

        long bytesOut() {
            return out.getSize() * 4L;
        }
    }

    /**
     * Copies shard {@code shard}'s slices of {@code plan} into TornadoVM arrays and builds its graphs.
     *
     * @param rope RoPE's cos/sin table ({@link DeviceShard#ropeTable}), or null when the shard owns no attention
     */
    ShardGraphs(Configuration c, Weights w, SplitPlan plan, int shard, TornadoSettings s, float[] rope) {
        this.c = c;
        this.s = s;
        this.built = Share.of(c, plan, shard);
        this.ggml = c.ropeStyle() != RopeStyle.LLAMA2C;
        int L = c.nLayers();
        attention = new Step[L];
        ffn = new Step[L];
        for (int l = 0; l < L; l++) {
            if (plan.owns(shard, SplitPlan.Kind.ATTENTION)) {
                attention[l] = ggml ? addAttentionGgml(w, plan, shard, l, rope) : addAttention(w, plan, shard, l, rope);
            }
            if (plan.owns(shard, SplitPlan.Kind.FFN)) {
                ffn[l] = ggml ? addFfnGgml(w, plan, shard, l) : addFfn(w, plan, shard, l);
            }
        }
        if (plan.owns(shard, SplitPlan.Kind.CLASSIFIER)) {
            classifier = ggml ? addClassifierGgml(w, plan.vocabStart(shard), plan.vocabEnd(shard))
                    : addClassifier(w, plan.vocabStart(shard), plan.vocabEnd(shard));
        }
    }

    boolean isEmpty() {
        return graphs.isEmpty();
    }

    ImmutableTaskGraph[] graphs() {
        return graphs.toArray(ImmutableTaskGraph[]::new);
    }

    /** Each graph's name ({@code att}, {@code ffn}, {@code cls}: repeated across layers). */
    List<String> graphNames() {
        return graphNames;
    }

    /** Each graph's task ids. */
    List<List<String>> graphTasks() {
        return graphTasks;
    }

    GridScheduler gridScheduler() {
        return grid;
    }

    /** The share the graphs were built for. */
    Share built() {
        return built;
    }

    /** Tasks (kernel launches) of one step of this kind, 0 if the shard owns none. */
    int launches(SplitPlan.Kind kind) {
        Step step = switch (kind) {
            case ATTENTION -> attention.length > 0 ? attention[0] : null;
            case FFN -> ffn.length > 0 ? ffn[0] : null;
            case CLASSIFIER -> classifier;
        };
        return step == null ? 0 : graphTasks.get(step.graph()).size();
    }

    /** What shard {@code shard} of {@code plan} owns, in the units of these graphs' grids. */
    Share shareOf(SplitPlan plan, int shard) {
        return Share.of(c, plan, shard);
    }

    /** Bytes of weights one step of this kind streams (one layer's, or the classifier's). */
    long weightBytes(SplitPlan.Kind kind) {
        return stepWeightBytes[kind.ordinal()];
    }

    /**
     * Sets every grid to the work-groups {@code share} needs (no more than the graphs were built for): each
     * step then streams as many weight bytes as that share's own slices would. Calibration only.
     */
    void resize(Share share) {
        if (!share.within(built)) {
            throw new IllegalArgumentException("cannot shrink " + built + " to " + share + ": more than it was built with");
        }
        for (Grid g : grids.values()) {
            g.grid().setGlobalWork((long) Math.max(1, g.workGroups().applyAsInt(share)) * g.local(), 1, 1);
        }
    }

    private Step addAttention(Weights w, SplitPlan plan, int shard, int l, float[] ropeValues) {
        int hs = c.headSize(), dim = c.dim(), gs = c.groupSize();
        int h0 = plan.headStart(shard), h1 = plan.headEnd(shard);
        int kv0 = h0 / c.kvMul(), kv1 = h1 / c.kvMul();
        int heads = h1 - h0, qRows = heads * hs, kvRows = (kv1 - kv0) * hs;
        String name = "att";
        DeviceSlice qkv = WeightSlices.toDevice("layer " + l + " wq/wk/wv", WeightSlices.rows(w.wq()[l], h0 * hs, h1 * hs),
                WeightSlices.rows(w.wk()[l], kv0 * hs, kv1 * hs), WeightSlices.rows(w.wv()[l], kv0 * hs, kv1 * hs));
        DeviceSlice wo = WeightSlices.columnsToDevice("layer " + l + " wo", w.wo()[l], h0 * hs, h1 * hs);
        stepWeightBytes[SplitPlan.Kind.ATTENTION.ordinal()] = qkv.bytes() + wo.bytes();
        FloatArray rope = FloatArray.fromArray(ropeValues);
        FloatArray q = new FloatArray(qRows);
        FloatArray keyCache = new FloatArray(c.seqLen() * kvRows);
        FloatArray valueCache = new FloatArray(c.seqLen() * kvRows);
        FloatArray att = new FloatArray(heads * c.seqLen());
        FloatArray attOut = new FloatArray(qRows);
        FloatArray out = new FloatArray(dim);
        IntArray state = new IntArray(2);
        Step step = input(state, out, w.wq()[l]);
        TaskGraph g = new TaskGraph(name);
        List<String> tasks = new ArrayList<>();
        List<Object> once = new ArrayList<>(weights(qkv));
        once.addAll(weights(wo));
        once.add(rope);
        Int8Array aq = null;
        FloatArray as = null;
        if (c.quantized()) {
            aq = new Int8Array(qRows);
            as = new FloatArray(qRows / gs);
            once.add(aq);   // TornadoVM wants int8 arrays declared; one copy of a scratch buffer is harmless
        }
        g.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        g.transferToDevice(DataTransferMode.EVERY_EXECUTION, inputs(step));
        switch (qkv) {
            case F32Slice f -> g.task("qkv", HybridKernels::qkvF32, ctx, step.in().xf(), f.data(), q, keyCache, valueCache, state,
                    rope, dim, qRows, kvRows, hs);
            case F16Slice h -> throw new IllegalStateException("F16 in a llama2.c checkpoint");
            case KQuantSlice k -> throw new IllegalStateException("K-quant in a llama2.c checkpoint");
            case Q8Slice q8 -> g.task("qkv", HybridKernels::qkvQ8, ctx, step.in().xq(), step.in().xs(), q8.values(), q8.scales(), q,
                    keyCache, valueCache, state, rope, dim, qRows, kvRows, hs, gs);
        }
        schedule(tasks, name, "qkv", sh -> (sh.qRows() + 2 * sh.kvRows()) / 2, s.matmulLocal());
        g.task("attention", TransformerKernels::attention, ctx, q, keyCache, valueCache, att, attOut, state, c.seqLen(), hs,
                kvRows, c.kvMul(), (float) Math.sqrt(hs));
        schedule(tasks, name, "attention", Share::heads, s.attentionLocal());
        switch (wo) {
            case F32Slice f -> g.task("wo", HybridKernels::matmulF32, ctx, attOut, f.data(), out, qRows);
            case F16Slice h -> throw new IllegalStateException("F16 in a llama2.c checkpoint");
            case KQuantSlice k -> throw new IllegalStateException("K-quant in a llama2.c checkpoint");
            case Q8Slice q8 -> {
                g.task("quant", TransformerKernels::quantize, ctx, attOut, aq, as, qRows, gs);
                schedule(tasks, name, "quant", sh -> ceilDiv(sh.qRows() / gs, s.quantizeLocal()), s.quantizeLocal());
                g.task("wo", TransformerKernels::matmulQ8, ctx, aq, as, q8.values(), q8.scales(), out, qRows, gs);
            }
        }
        // wo's columns are this shard's heads; emulating fewer heads (calibration) computes fewer rows instead
        schedule(tasks, name, "wo", sh -> scaled(dim, sh.qRows(), built.qRows()), s.matmulLocal());
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, name, tasks, step);
    }

    private Step addFfn(Weights w, SplitPlan plan, int shard, int l) {
        int dim = c.dim(), gs = c.groupSize();
        int r0 = plan.ffnStart(shard), r1 = plan.ffnEnd(shard), rows = r1 - r0;
        String name = "ffn";
        DeviceSlice w13 = WeightSlices.toDevice("layer " + l + " w1/w3", WeightSlices.rows(w.w1()[l], r0, r1),
                WeightSlices.rows(w.w3()[l], r0, r1));
        DeviceSlice w2 = WeightSlices.columnsToDevice("layer " + l + " w2", w.w2()[l], r0, r1);
        stepWeightBytes[SplitPlan.Kind.FFN.ordinal()] = w13.bytes() + w2.bytes();
        FloatArray hb = new FloatArray(rows);
        FloatArray out = new FloatArray(dim);
        Step step = input(null, out, w.w1()[l]);
        TaskGraph g = new TaskGraph(name);
        List<String> tasks = new ArrayList<>();
        List<Object> once = new ArrayList<>(weights(w13));
        once.addAll(weights(w2));
        Int8Array hq = null;
        FloatArray hs = null;
        if (c.quantized()) {
            hq = new Int8Array(rows);
            hs = new FloatArray(rows / gs);
            once.add(hq);
        }
        g.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        g.transferToDevice(DataTransferMode.EVERY_EXECUTION, inputs(step));
        switch (w13) {
            case F32Slice f -> g.task("w13", HybridKernels::w13F32, ctx, step.in().xf(), f.data(), hb, dim, rows);
            case F16Slice h -> throw new IllegalStateException("F16 in a llama2.c checkpoint");
            case KQuantSlice k -> throw new IllegalStateException("K-quant in a llama2.c checkpoint");
            case Q8Slice q8 -> g.task("w13", TransformerKernels::w13Q8, ctx, step.in().xq(), step.in().xs(), q8.values(), q8.scales(), hb,
                    dim, rows, gs);
        }
        schedule(tasks, name, "w13", Share::ffnRows, s.matmulLocal());
        switch (w2) {
            case F32Slice f -> g.task("w2", HybridKernels::matmulF32, ctx, hb, f.data(), out, rows);
            case F16Slice h -> throw new IllegalStateException("F16 in a llama2.c checkpoint");
            case KQuantSlice k -> throw new IllegalStateException("K-quant in a llama2.c checkpoint");
            case Q8Slice q8 -> {
                g.task("quant", TransformerKernels::quantize, ctx, hb, hq, hs, rows, gs);
                schedule(tasks, name, "quant", sh -> ceilDiv(sh.ffnRows() / gs, s.quantizeLocal()), s.quantizeLocal());
                g.task("w2", TransformerKernels::matmulQ8, ctx, hq, hs, q8.values(), q8.scales(), out, rows, gs);
            }
        }
        schedule(tasks, name, "w2", sh -> scaled(dim, sh.ffnRows(), built.ffnRows()), s.matmulLocal());
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, name, tasks, step);
    }

    private Step addClassifier(Weights w, int v0, int v1) {
        int rows = v1 - v0, dim = c.dim();
        String name = "cls";
        DeviceSlice cls = WeightSlices.toDevice("classifier", WeightSlices.rows(w.classifier(), v0, v1));
        stepWeightBytes[SplitPlan.Kind.CLASSIFIER.ordinal()] = cls.bytes();
        FloatArray out = new FloatArray(rows);
        Step step = input(null, out, w.classifier());
        TaskGraph g = new TaskGraph(name);
        List<String> tasks = new ArrayList<>();
        g.transferToDevice(DataTransferMode.FIRST_EXECUTION, weights(cls).toArray());
        g.transferToDevice(DataTransferMode.EVERY_EXECUTION, inputs(step));
        switch (cls) {
            case F32Slice f -> g.task("classifier", HybridKernels::matmulF32, ctx, step.in().xf(), f.data(), out, dim);
            case F16Slice h -> throw new IllegalStateException("F16 in a llama2.c checkpoint");
            case KQuantSlice k -> throw new IllegalStateException("K-quant in a llama2.c checkpoint");
            case Q8Slice q8 -> g.task("classifier", TransformerKernels::matmulQ8, ctx, step.in().xq(), step.in().xs(), q8.values(),
                    q8.scales(), out, dim, c.groupSize());
        }
        schedule(tasks, name, "classifier", Share::vocabRows, s.matmulLocal());
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, name, tasks, step);
    }

    // ------------------------------------------------------------------ GGUF models (llama.cpp's arithmetic)

    /** The attention graph of a GGUF layer: the products of its heads' rows, the heads step, attention, its columns of wo. */
    private Step addAttentionGgml(Weights w, SplitPlan plan, int shard, int l, float[] ropeValues) {
        int hs = c.headSize(), dim = c.dim();
        int h0 = plan.headStart(shard), h1 = plan.headEnd(shard);
        int kv0 = h0 / c.kvMul(), kv1 = h1 / c.kvMul();
        int heads = h1 - h0, kvHeads = kv1 - kv0, qRows = heads * hs, kvRows = kvHeads * hs;
        String name = "att", layer = "layer " + l;
        Matrix wq = WeightSlices.rows(w.wq()[l], h0 * hs, h1 * hs), wk = WeightSlices.rows(w.wk()[l], kv0 * hs, kv1 * hs),
                wv = WeightSlices.rows(w.wv()[l], kv0 * hs, kv1 * hs);
        List<Product> qkv = products(layer, "qkv", new String[]{"q", "k", "v"}, new Matrix[]{wq, wk, wv},
                List.of(Share::qRows, Share::kvRows, Share::kvRows));
        DeviceSlice wo = WeightSlices.columnsToDevice(layer + " wo", w.wo()[l], h0 * hs, h1 * hs);
        stepWeightBytes[SplitPlan.Kind.ATTENTION.ordinal()] = bytes(qkv) + wo.bytes();
        boolean hasBias = w.bq() != null, hasNorm = w.qNorm() != null;
        // the biases of its rows, stacked as the products' output is: [bq; bk; bv]
        FloatArray bias = hasBias ? floats(w.bq()[l].asSlice(h0 * hs * 4L, qRows * 4L),
                w.bk()[l].asSlice(kv0 * hs * 4L, kvRows * 4L), w.bv()[l].asSlice(kv0 * hs * 4L, kvRows * 4L)) : new FloatArray(1);
        FloatArray norms = hasNorm ? floats(w.qNorm()[l], w.kNorm()[l]) : new FloatArray(1);
        FloatArray rope = FloatArray.fromArray(ropeValues);
        FloatArray qkvOut = new FloatArray(qRows + 2 * kvRows);
        FloatArray q = new FloatArray(qRows);
        FloatArray keyCache = new FloatArray(c.seqLen() * kvRows);
        FloatArray valueCache = new FloatArray(c.seqLen() * kvRows);
        FloatArray att = new FloatArray(heads * c.seqLen());
        FloatArray attOut = new FloatArray(qRows);
        Forms woIn = deviceForms(qRows);
        FloatArray out = new FloatArray(dim);
        IntArray state = new IntArray(2);
        Step step = input(state, out, wq, wk, wv);
        TaskGraph g = new TaskGraph(name);
        List<String> tasks = new ArrayList<>();
        List<Object> once = new ArrayList<>();
        qkv.forEach(p -> once.addAll(weights(p.m())));
        once.addAll(weights(wo));
        once.addAll(List.of(rope, bias, norms, woIn.xq()));   // TornadoVM wants int8 arrays declared
        g.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        g.transferToDevice(DataTransferMode.EVERY_EXECUTION, inputs(step));
        for (Product p : qkv) {
            product(g, tasks, name, p, step.in(), qkvOut, norms);
        }
        g.task("heads", GgmlKernels::qkvHeads, ctx, qkvOut, bias, hasBias ? 1 : 0, norms, hasNorm ? 1 : 0, c.rmsEps(), q,
                keyCache, valueCache, state, rope, heads, kvHeads, hs, c.ropeStyle() == RopeStyle.NEOX ? 1 : 0);
        schedule(tasks, name, "heads", sh -> ceilDiv(sh.heads() + 2 * (sh.heads() / c.kvMul()), s.quantizeLocal()),
                s.quantizeLocal());
        g.task("attention", TransformerKernels::attention, ctx, q, keyCache, valueCache, att, attOut, state, c.seqLen(), hs,
                kvRows, c.kvMul(), (float) Math.sqrt(hs));
        schedule(tasks, name, "attention", Share::heads, s.attentionLocal());
        g.task("wo_prep", GgmlKernels::prepare, ctx, attOut, norms, qRows, GgmlKernels.FROM_INPUT, c.rmsEps(), woIn.xf(),
                woIn.xh(), woIn.xq(), woIn.xs());   // (the weight argument is not read)
        schedule(tasks, name, "wo_prep", sh -> ceilDiv(ceilDiv(sh.qRows(), GgmlKernels.QK), s.quantizeLocal()), s.quantizeLocal());
        // wo's columns are this shard's heads; emulating fewer heads (calibration) computes fewer rows instead
        product(g, tasks, name, new Product("wo", wo, 0, sh -> scaled(dim, sh.qRows(), built.qRows())), woIn, out, norms);
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, name, tasks, step);
    }

    /** The feed-forward graph of a GGUF layer: its rows of w1 and w3, SwiGLU with the input forms of w2, its columns of w2. */
    private Step addFfnGgml(Weights w, SplitPlan plan, int shard, int l) {
        int dim = c.dim();
        int r0 = plan.ffnStart(shard), r1 = plan.ffnEnd(shard), rows = r1 - r0;
        String name = "ffn", layer = "layer " + l;
        Matrix w1 = WeightSlices.rows(w.w1()[l], r0, r1), w3 = WeightSlices.rows(w.w3()[l], r0, r1);
        List<Product> w13 = products(layer, "w13", new String[]{"w1", "w3"}, new Matrix[]{w1, w3},
                List.of(Share::ffnRows, Share::ffnRows));
        DeviceSlice w2 = WeightSlices.columnsToDevice(layer + " w2", w.w2()[l], r0, r1);
        stepWeightBytes[SplitPlan.Kind.FFN.ordinal()] = bytes(w13) + w2.bytes();
        FloatArray hb = new FloatArray(2 * rows);   // w1's then w3's outputs
        FloatArray none = new FloatArray(1);
        Forms w2In = deviceForms(rows);
        FloatArray out = new FloatArray(dim);
        Step step = input(null, out, w1, w3);
        TaskGraph g = new TaskGraph(name);
        List<String> tasks = new ArrayList<>();
        List<Object> once = new ArrayList<>();
        w13.forEach(p -> once.addAll(weights(p.m())));
        once.addAll(weights(w2));
        once.addAll(List.of(none, w2In.xq()));
        g.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        g.transferToDevice(DataTransferMode.EVERY_EXECUTION, inputs(step));
        for (Product p : w13) {
            product(g, tasks, name, p, step.in(), hb, none);
        }
        g.task("w2_prep", GgmlKernels::prepare, ctx, hb, none, rows, GgmlKernels.FROM_SWIGLU, c.rmsEps(), w2In.xf(), w2In.xh(),
                w2In.xq(), w2In.xs());
        schedule(tasks, name, "w2_prep", sh -> ceilDiv(ceilDiv(sh.ffnRows(), GgmlKernels.QK), s.quantizeLocal()), s.quantizeLocal());
        product(g, tasks, name, new Product("w2", w2, 0, sh -> scaled(dim, sh.ffnRows(), built.ffnRows())), w2In, out, none);
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, name, tasks, step);
    }

    /** The classifier graph of a GGUF model: its rows of the logits. */
    private Step addClassifierGgml(Weights w, int v0, int v1) {
        String name = "cls";
        Matrix m = WeightSlices.rows(w.classifier(), v0, v1);
        DeviceSlice cls = WeightSlices.toDevice("classifier", m);
        stepWeightBytes[SplitPlan.Kind.CLASSIFIER.ordinal()] = cls.bytes();
        FloatArray out = new FloatArray(v1 - v0);
        FloatArray none = new FloatArray(1);
        Step step = input(null, out, m);
        TaskGraph g = new TaskGraph(name);
        List<String> tasks = new ArrayList<>();
        List<Object> once = new ArrayList<>(weights(cls));
        once.add(none);
        g.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        g.transferToDevice(DataTransferMode.EVERY_EXECUTION, inputs(step));
        product(g, tasks, name, new Product("classifier", cls, 0, Share::vocabRows), step.in(), out, none);
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, name, tasks, step);
    }

    /**
     * The products of matrices reading one input: one stacked product ({@code stacked}) when they share a type,
     * else one per matrix, each writing at its offset of the common output (as the TornadoVM engine does).
     */
    private static List<Product> products(String layer, String stacked, String[] names, Matrix[] parts,
                                          List<ToIntFunction<Share>> rows) {
        boolean same = true;
        for (Matrix m : parts) {
            same &= m.getClass() == parts[0].getClass();
        }
        if (same) {
            return List.of(new Product(stacked, WeightSlices.toDevice(layer + " " + String.join("/", names), parts), 0,
                    sh -> rows.stream().mapToInt(r -> r.applyAsInt(sh)).sum()));
        }
        List<Product> list = new ArrayList<>();
        int off = 0;
        for (int i = 0; i < parts.length; i++) {
            list.add(new Product(names[i], WeightSlices.toDevice(layer + " " + names[i], parts[i]), off, rows.get(i)));
            off += parts[i].rows();
        }
        return list;
    }

    /**
     * out[outOff + r] = m[r] · the input, in the {@link GgmlKernels} product of m's type, reading the form of the
     * input that type reads; the task id carries the type ({@code qkv_q8}), so products of different types never
     * share a compiled kernel. K-quants: {@link KQuantKernels#productKQuant} derives llama.cpp's Q8_K blocks from
     * the float32 form itself ({@code unread}: a float array of the graph, its norm-weight argument, which the
     * kernel does not read for an input taken as it is); its Q4_K and Q6_K products share one compiled kernel (the
     * type is an argument), as in the TornadoVM engine. One row per work-group, as every product of the hybrid's
     * (the grid's work-groups are the rows, which calibration scales down to emulate a smaller share).
     */
    private void product(TaskGraph g, List<String> tasks, String graph, Product p, Forms x, FloatArray out, FloatArray unread) {
        String task = p.kind() + "_" + p.m().kind();
        switch (p.m()) {
            case F32Slice f -> g.task(task, GgmlKernels::matmulF32, ctx, x.xf(), f.data(), out, p.outOff(), f.cols(), 0);
            case F16Slice h -> g.task(task, GgmlKernels::matmulF16, ctx, x.xh(), h.data(), out, p.outOff(), h.cols(), 0);
            case Q8Slice q8 -> g.task(task, GgmlKernels::matmulQ8_0, ctx, x.xq(), x.xs(), q8.values(), q8.scales(), out,
                    p.outOff(), q8.cols(), 0);
            case KQuantSlice k -> g.task(task, KQuantKernels::productKQuant, ctx, x.xf(), unread, k.cols(), GgmlKernels.FROM_INPUT,
                    c.rmsEps(), k.blocks(), k.type(), out, p.outOff(), 0, k.rows(), 1);
        }
        schedule(tasks, graph, task, p.rows(), s.matmulLocal());
    }

    /** Device-only arrays for every form of an n-value input ({@link GgmlKernels#prepare} writes all of them). */
    private static Forms deviceForms(int n) {
        return new Forms(new FloatArray(n), new FloatArray(n), new Int8Array(n), new FloatArray(n / GgmlKernels.QK + 1));
    }

    private static long bytes(List<Product> products) {
        return products.stream().mapToLong(p -> p.m().bytes()).sum();
    }

    /** Float32 vectors (biases, norm weights) concatenated into one array. */
    private static FloatArray floats(MemorySegment... parts) {
        long total = 0;
        for (MemorySegment p : parts) {
            total += p.byteSize();
        }
        FloatArray a = new FloatArray((int) (total / Float.BYTES));
        long off = 0;
        for (MemorySegment p : parts) {
            MemorySegment.copy(p, 0, a.getSegment(), off, p.byteSize());
            off += p.byteSize();
        }
        return a;
    }

    // ------------------------------------------------------------------ common

    /**
     * The host-side input arrays of one step (each graph has its own, so no graph depends on another's
     * buffers): the forms of the dim-value input that {@code readers} (the step's matrices that read it) need.
     */
    private Step input(IntArray state, FloatArray out, Matrix... readers) {
        int dim = c.dim();
        FloatArray xf = null, xh = null, xs = null;
        Int8Array xq = null;
        for (Matrix m : readers) {
            switch (m) {
                case Matrix.F32 f -> xf = xf != null ? xf : new FloatArray(dim);
                case Matrix.F16 h -> xh = xh != null ? xh : new FloatArray(dim);
                case Matrix.Q8 q8 -> {
                    xq = xq != null ? xq : new Int8Array(dim);
                    xs = xs != null ? xs : new FloatArray(dim / q8.groupSize());
                }
                case Matrix.Q8_0 q8 -> {
                    xq = xq != null ? xq : new Int8Array(dim);
                    xs = xs != null ? xs : new FloatArray(dim / Matrix.Q8_0.BLOCK);
                }
                case Matrix.Q4_0 q4 -> { // run as Q8_0 (WeightSlices widens it): the same Q8_0 input
                    xq = xq != null ? xq : new Int8Array(dim);
                    xs = xs != null ? xs : new FloatArray(dim / Matrix.Q8_0.BLOCK);
                }
                // K-quants: the device derives Q8_K from the float32 values (KQuantKernels.productKQuant)
                case Matrix.Q4_K q -> xf = xf != null ? xf : new FloatArray(dim);
                case Matrix.Q6_K q -> xf = xf != null ? xf : new FloatArray(dim);
                default -> throw TensorTypes.unsupportedByHybrid(m, "a step input");
            }
        }
        return new Step(graphs.size(), new Forms(xf, xh, xq, xs), state, out);
    }

    private static Object[] inputs(Step step) {
        List<Object> in = step.in().arrays();
        if (step.state != null) {
            in.add(step.state);
        }
        return in.toArray();
    }

    private static List<Object> weights(DeviceSlice m) {
        return switch (m) {
            case F32Slice f -> List.of(f.data());
            case F16Slice h -> List.of(h.data());
            case Q8Slice q -> List.of(q.values(), q.scales());
            case KQuantSlice k -> List.of(k.blocks());
        };
    }

    private Step add(TaskGraph g, String name, List<String> tasks, Step step) {
        graphs.add(g.snapshot());
        graphNames.add(name);
        graphTasks.add(tasks);
        return step;
    }

    /**
     * Schedules a task: {@code workGroups} gives its number of work-groups for a share (the built share here;
     * a smaller one when calibration resizes the grids). Every layer's graph uses the same task id, hence the
     * same grid and the same compiled kernel.
     */
    private void schedule(List<String> tasks, String graph, String task, ToIntFunction<Share> workGroups, int local) {
        String id = graph + "." + task;
        int groups = workGroups.applyAsInt(built);
        if (groups <= 0) {
            throw new Llama2jException("internal: grid of " + id + " has " + groups + " work-groups");
        }
        Grid g = grids.get(id);
        if (g == null) {
            WorkerGrid1D wg = new WorkerGrid1D(Math.multiplyExact(groups, local));
            wg.setLocalWork(local, 1, 1);
            grid.addWorkerGrid(id, wg);
            grids.put(id, new Grid(wg, local, workGroups));
        }
        tasks.add(id);
    }

    private static int ceilDiv(int n, int d) {
        return (n + d - 1) / d;
    }

    /** n × part / whole, at least 1 (the rows that stream as many weights as part of whole columns would). */
    private static int scaled(int n, int part, int whole) {
        return Math.max(1, (int) Math.round((double) n * part / whole));
    }
}
