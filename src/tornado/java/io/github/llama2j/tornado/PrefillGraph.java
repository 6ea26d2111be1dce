package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.common.TaskPackage;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.ShortArray;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.Function;

/**
 * A prompt's prefill as a second chain of task graphs in the engine's execution plan, after the token-by-token
 * chain of {@link ForwardGraph}: a chunk of up to {@link #chunk()} tokens goes through every layer as a matrix
 * ({@link PrefillKernels}; GGUF models {@link GgmlPrefillKernels}), each weight row fetched from memory once per chunk,
 * and only the chunk's last token reaches the classifier. llama2.c checkpoints (float32: run.c's arithmetic, Q8_0:
 * runq.c's) and GGUF models (llama, qwen2, qwen3; F32, F16, Q8_0, Q4_0 as Q8_0, Q4_K/Q6_K: llama.cpp's arithmetic, as
 * {@link ForwardGraph}'s GGUF kernels) whose every layer stacks wq/wk/wv and w1/w3 into one product each
 * ({@link #supports}); a GGUF model that does not (a layer mixing, say, F16 and Q8_0 matrices) prefills token by
 * token. Built once for a fixed chunk size B; a shorter chunk (a prompt's tail, a short prompt)
 * runs the same graphs with its token count in {@code pstate}, so no prompt recompiles anything.
 * <pre>
 *   pstate [startPos, count, tokens] ─► prefill [embed, layers 0, 1] ─► prefill [layers 2, 3] ─► ... ─► prefill [layers .., classifier] ─► logits
 *            pstate, xB, qB, xbB, hbB, attB: persisted by each prefill graph, consumed by the next (as ForwardGraph's activations)
 *
 *   per chunk:  pstate, embedding ─► embed ─► xB                               (B × dim: token i's row)
 *   per layer:  xB, rms_att, wqkv, rope ─► qkv ─► qB, keyCache[start .. start+count), valueCache[same]
 *                                             (per token: rmsnorm + Q/K/V matmuls + RoPE + cache store)
 *               qB, keyCache, valueCache ─► attention ─► xbB                 (token i: positions 0 .. start + i)
 *               xbB, wo ─► wo ─► xB += wo·xbB                                (per token: matmul + residual)
 *               xB, rms_ffn, w13 ─► w13 ─► hbB = silu(w1·xn) * (w3·xn)      (per token: rmsnorm + 2 matmuls + SwiGLU)
 *               hbB, w2 ─► w2 ─► xB += w2·hbB
 *   per chunk:  xB[count - 1], rms_final, wcls ─► classifier ─► logits        (the last token only)
 *
 *   GGUF (T: the weights' type, f32, f16, q8 or kq; each work-group derives its input in the form T reads, per token)
 *   per chunk:  pstate, embedding ─► embed ─► xB
 *   per layer:  xB, rms_att, wqkv, bias, norms, rope ─► qkv_T ─► qB, keyCache[start ..), valueCache[same]   (qkvB: scratch)
 *                          (per token: rmsnorm + the Q/K/V products, one work-group per head + bias + head RMSNorm
 *                           + RoPE + cache store, as ForwardGraph's qkv_T)
 *               qB, keyCache, valueCache ─► attention ─► xbB                 (B × q_dim)
 *               xbB, wo ─► wo_T ─► xB += wo·xbB
 *               xB, rms_ffn, w13 ─► w13_T ─► hbB = silu(w1·xn) * (w3·xn)
 *               hbB, w2 ─► w2_T ─► xB += w2·hbB
 *   per chunk:  xB[count - 1], rms_final, wcls ─► classifier_T ─► logits
 * </pre>
 * Launches per chunk: 5 per layer plus 2, as for one token ({@code Q8}: quantization fused as there). Task ids are
 * {@code prefill.kind} in a graph's first layer slot and {@code prefill.kind_s} in slot s, the same in the graph,
 * the grid scheduler and TornadoVM's profiler; as in {@link ForwardGraph}, every prefill graph has one name, so a
 * slot's kernels compile once for all of them.
 *
 * <p>Sharing the device arrays: the prefill graphs read the weights, the RoPE table and the key/value caches that
 * the token-by-token graphs put on the device, and must write the caches those graphs read. TornadoVM links a
 * consumed buffer only from the graph executed just before, so instead each such array is mapped once, before the
 * prefill graphs first run, onto the device buffer of the token-by-token graph that owns it
 * ({@code TornadoExecutionPlan.mapOnDeviceMemoryRegion}, offset 0: the same device memory; see {@link #mappings()}).
 * None of them is transferred by a prefill graph. The prefill tasks name each such array by an <em>alias</em>, a
 * one-element array of the same type: TornadoVM allocates the destination of a mapping (at the destination's size)
 * before it points it at the source, and never frees that allocation, so mapping the arrays themselves would reserve
 * a second, unused copy of the weights and caches (real device memory on the PTX backend, whose mapping is a plain
 * pointer, as on OpenCL with offset 0: the kernels read the source buffer, header and all).
 */
final class PrefillGraph {
    /** Every prefill graph's name. */
    static final String GRAPH = "prefill";

    /** Tokens per chunk: the CPU engine's chunk ({@code CpuEngine.CHUNK}). */
    static final int CHUNK = 128;

    /**
     * A device array of a token-by-token graph (its index in the plan) that prefill graph {@code toGraph} reads through
     * {@code alias} (a one-element array of the same type, mapped onto the array's device buffer).
     */
    record Mapping(Object array, Object alias, int fromGraph, int toGraph) {
    }

    private final ForwardGraph f;
    private final Configuration c;
    private final TornadoSettings s;
    private final int chunk;
    private final int firstGraph;   // the plan index of the first prefill graph
    private final KernelContext ctx = new KernelContext();
    private final GridScheduler grid;
    private final List<TaskGraph> graphs = new ArrayList<>();
    private final List<ForwardGraph.Task> tasks = new ArrayList<>();
    private final List<List<String>> taskIdsPerGraph = new ArrayList<>();
    private final List<Mapping> mappings = new ArrayList<>();
    private final java.util.Set<String> gridded = new java.util.HashSet<>();
    private TaskGraph graph;
    private int layer = -1, slot;
    private int fromGraph;     // the token-by-token graph whose layers the current prefill graph runs
    private int recordBytes;   // the current graph's tasks' share of TornadoVM's task record

    // ---- per chunk in; the logits (the token-by-token graphs' host array) out
    final IntArray pstate;           // [startPos, count, token 0 .. token B-1]
    private final FloatArray logits;

    // ---- device-only chunk buffers (token i in row i)
    private final FloatArray xB;     // (B, dim) the residual stream
    private final FloatArray qB;     // (B, q_dim) the rotated queries
    private final FloatArray xbB;    // (B, q_dim) attention outputs
    private final FloatArray hbB;    // (B, hidden) SwiGLU outputs
    private final FloatArray attB;   // (B, n_heads, seq_len) attention scores
    private final FloatArray qkvB;   // GGUF only, else null: (B, q_dim + 2 kv_dim) a layer's q/k/v heads before their store
    private final boolean ggml;

    /**
     * @param f          the token-by-token graphs, already built ({@link ForwardGraph#build}): their arrays and layout
     * @param chunk      B, tokens per chunk
     * @param firstGraph the plan index the first prefill graph will have (after the token-by-token graphs)
     * @param grid       the plan's grid scheduler, which gets the prefill tasks' grids
     */
    PrefillGraph(ForwardGraph f, int chunk, int firstGraph, GridScheduler grid) {
        this.f = f;
        this.c = f.config();
        this.s = f.settings();
        this.ggml = ForwardGraph.isGgml(c);
        for (int l = 0; l < c.nLayers() && ggml; l++) {
            if (f.ggmlLayer(l).qkv().size() != 1 || f.ggmlLayer(l).w13().size() != 1) {
                throw new IllegalArgumentException("batched prefill needs wq/wk/wv and w1/w3 of one type in every layer");
            }
        }
        if (chunk < 1 || chunk > c.seqLen()) {
            throw new IllegalArgumentException("chunk " + chunk + " outside [1, seq_len " + c.seqLen() + "]");
        }
        this.chunk = chunk;
        this.firstGraph = firstGraph;
        this.grid = grid;
        this.logits = f.logits;
        pstate = new IntArray(PrefillKernels.TOKENS + chunk);
        xB = new FloatArray(chunk * c.dim());
        qB = new FloatArray(chunk * c.qDim());
        xbB = new FloatArray(chunk * c.qDim());
        hbB = new FloatArray(chunk * c.hiddenDim());
        attB = new FloatArray(chunk * c.nHeads() * c.seqLen());
        qkvB = ggml ? new FloatArray(chunk * (c.qDim() + 2 * c.kvDim())) : null;
    }

    /**
     * Whether the model has batched prefill kernels: llama2.c checkpoints (float32 and Q8_0), and GGUF models whose
     * every layer's wq/wk/wv and w1/w3 stack into one product each ({@link ForwardGraph#stacks}: one type, or all
     * K-quants), the 5-launch layer; the others prefill token by token.
     */
    static boolean supports(Configuration c, Weights w) {
        if (!ForwardGraph.isGgml(c)) {
            return true;
        }
        for (int l = 0; l < c.nLayers(); l++) {
            if (!ForwardGraph.stacks(w.wq()[l], w.wk()[l], w.wv()[l]) || !ForwardGraph.stacks(w.w1()[l], w.w3()[l])) {
                return false;
            }
        }
        return true;
    }

    /**
     * Device bytes of the chunk buffers: B × (dim + 2 q_dim + hidden + n_heads × seq_len) floats (GGUF: B × (q_dim +
     * 2 kv_dim) more, the q/k/v scratch) and pstate.
     */
    static long bytes(Configuration c, int chunk) {
        long perToken = c.dim() + 2L * c.qDim() + c.hiddenDim() + (long) c.nHeads() * c.seqLen()
                + (ForwardGraph.isGgml(c) ? c.qDim() + 2L * c.kvDim() : 0);
        return 4L * chunk * perToken + 4L * (PrefillKernels.TOKENS + chunk);
    }

    int chunk() {
        return chunk;
    }

    /** Every kernel launch of a chunk, in launch order (graph: the plan index). */
    List<ForwardGraph.Task> tasks() {
        return Collections.unmodifiableList(tasks);
    }

    /** Task ids of each prefill graph, in order. */
    List<List<String>> taskIdsPerGraph() {
        return Collections.unmodifiableList(taskIdsPerGraph);
    }

    /** The arrays to map before the first execution of a prefill graph (see the class comment). */
    List<Mapping> mappings() {
        return Collections.unmodifiableList(mappings);
    }

    int graphCount() {
        return graphs.size();
    }

    /**
     * The prefill graphs: one per token-by-token graph that runs layers, with the same layers (so a layer's arrays
     * are mapped from one graph); the first also embeds the chunk, the last also runs the classifier.
     */
    ImmutableTaskGraph[] build() {
        int L = c.nLayers();
        List<int[]> groups = new ArrayList<>();   // {from graph, first layer, end layer}
        for (int l = 0; l < L; l++) {
            int g = f.graphOfLayer(l);
            if (groups.isEmpty() || groups.getLast()[0] != g) {
                groups.add(new int[]{g, l, l + 1});
            } else {
                groups.getLast()[2] = l + 1;
            }
        }
        Object[] shared = ggml ? new Object[]{pstate, xB, qB, xbB, hbB, attB, qkvB} : new Object[]{pstate, xB, qB, xbB, hbB, attB};
        for (int p = 0; p < groups.size(); p++) {
            int[] group = groups.get(p);
            TaskGraph previous = graph;
            graph = new TaskGraph(GRAPH);
            graphs.add(graph);
            taskIdsPerGraph.add(new ArrayList<>());
            if (previous == null) {
                graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, pstate);
                slot = 0;
                layer = -1;
                addEmbed();
            } else {
                graph.consumeFromDevice(GRAPH, shared);
            }
            fromGraph = group[0];
            for (int l = group[1]; l < group[2]; l++) {
                slot = l - group[1];
                layer = l;
                ForwardGraph.Layer w = f.layer(l);
                if (ggml) {
                    addLayerGgml(f.ggmlLayer(l), l);
                } else if (c.quantized()) {
                    addLayerQ8(w, l);
                } else {
                    addLayerF32(w, l);
                }
            }
            if (p == groups.size() - 1) {
                slot = 0;
                layer = -1;
                addClassifier();
                graph.transferToHost(DataTransferMode.EVERY_EXECUTION, logits);
            } else {
                graph.persistOnDevice(shared);
            }
            // The mapped arrays are never copied in (their host copies are stale: the caches live on the device only)
            int index = firstGraph + graphs.size() - 1;
            graph.transferToDevice(DataTransferMode.UNDER_DEMAND, mappings.stream().filter(m -> m.toGraph() == index)
                    .map(Mapping::alias).toArray());
        }
        graph = null;
        return graphs.stream().map(TaskGraph::snapshot).toArray(ImmutableTaskGraph[]::new);
    }

    /**
     * The alias through which the current prefill graph reads {@code array} of token-by-token graph {@code from}
     * (made and recorded on first use in this graph; see the class comment).
     */
    @SuppressWarnings("unchecked")
    private <T> T dev(T array, int from) {
        int to = firstGraph + graphs.size() - 1;
        for (Mapping m : mappings) {
            if (m.array() == array && m.toGraph() == to) {
                return (T) m.alias();
            }
        }
        Object alias = switch (array) {
            case FloatArray a -> new FloatArray(1);
            case IntArray a -> new IntArray(1);
            case ShortArray a -> new ShortArray(1);
            case Int8Array a -> new Int8Array(1);
            default -> throw new IllegalStateException("internal: no alias for a " + array.getClass().getSimpleName());
        };
        mappings.add(new Mapping(array, alias, from, to));
        return (T) alias;
    }

    private void addEmbed() {
        int dim = c.dim();
        int local = s.quantizeLocal();
        switch (f.embedding()) {
            case DeviceMatrix.F32 e -> {
                FloatArray data = dev(e.data(), 0);
                add("embed", id -> new TaskPackage(id, PrefillKernels::embedF32, ctx, pstate, data, xB, dim));
            }
            case DeviceMatrix.Q8 e -> {
                IntArray values = dev(e.values(), 0);
                FloatArray scales = dev(e.scales(), 0);
                add("embed", id -> new TaskPackage(id, PrefillKernels::embedQ8, ctx, pstate, values, scales, xB, dim, e.groupSize()));
            }
            case DeviceMatrix.F16 e -> {
                ShortArray data = dev(e.data(), 0);
                add("embed", id -> new TaskPackage(id, GgmlPrefillKernels::embedF16, ctx, pstate, data, xB, dim));
            }
            case DeviceMatrix.KQuant e when e.firstType() == 0 -> {
                Int8Array blocks = dev(e.blocks(), 0);
                add("embed", id -> new TaskPackage(id, GgmlPrefillKernels::embedQ4_K, ctx, pstate, blocks, xB, dim));
            }
            case DeviceMatrix.KQuant e -> {
                Int8Array blocks = dev(e.blocks(), 0);
                add("embed", id -> new TaskPackage(id, GgmlPrefillKernels::embedQ6_K, ctx, pstate, blocks, xB, dim));
            }
        }
        schedule("embed", roundUp(chunk * dim, local), local);
    }

    /** One float32 layer, 5 launches (see the class comment). */
    private void addLayerF32(ForwardGraph.Layer w, int l) {
        int dim = c.dim(), kvDim = c.kvDim(), hidden = c.hiddenDim(), local = s.matmulLocal();
        FloatArray kc = dev(f.keyCache(l), fromGraph), vc = dev(f.valueCache(l), fromGraph), rope = dev(f.rope(), 0);
        FloatArray rmsAtt = dev(w.rmsAtt(), fromGraph), rmsFfn = dev(w.rmsFfn(), fromGraph);
        FloatArray wqkv = dev(((DeviceMatrix.F32) w.wqkv()).data(), fromGraph), wo = dev(((DeviceMatrix.F32) w.wo()).data(), fromGraph);
        FloatArray w13 = dev(((DeviceMatrix.F32) w.w13()).data(), fromGraph), w2 = dev(((DeviceMatrix.F32) w.w2()).data(), fromGraph);
        add("qkv", id -> new TaskPackage(id, PrefillKernels::qkvF32, ctx, xB, rmsAtt, wqkv, qB, kc, vc, pstate, rope, dim, kvDim,
                c.headSize()));
        schedule("qkv", (dim + 2 * kvDim) / 2 * local, local);
        addAttention(kc, vc);
        add("wo", id -> new TaskPackage(id, PrefillKernels::matmulResidualF32, ctx, xbB, wo, xB, pstate, dim, dim));
        schedule("wo", dim * local, local);
        add("w13", id -> new TaskPackage(id, PrefillKernels::w13F32, ctx, xB, rmsFfn, w13, hbB, pstate, dim, hidden));
        schedule("w13", hidden * local, local);
        add("w2", id -> new TaskPackage(id, PrefillKernels::matmulResidualF32, ctx, hbB, w2, xB, pstate, hidden, dim));
        schedule("w2", dim * local, local);
    }

    /** One Q8_0 layer (runq), 5 launches, the quantization of each input done where it is consumed. */
    private void addLayerQ8(ForwardGraph.Layer w, int l) {
        int dim = c.dim(), kvDim = c.kvDim(), hidden = c.hiddenDim(), gs = c.groupSize(), local = s.matmulLocal();
        FloatArray kc = dev(f.keyCache(l), fromGraph), vc = dev(f.valueCache(l), fromGraph), rope = dev(f.rope(), 0);
        FloatArray rmsAtt = dev(w.rmsAtt(), fromGraph), rmsFfn = dev(w.rmsFfn(), fromGraph);
        DeviceMatrix.Q8 qkv = (DeviceMatrix.Q8) w.wqkv(), wo = (DeviceMatrix.Q8) w.wo(), w13 = (DeviceMatrix.Q8) w.w13(),
                w2 = (DeviceMatrix.Q8) w.w2();
        IntArray qkvV = dev(qkv.values(), fromGraph), woV = dev(wo.values(), fromGraph), w13V = dev(w13.values(), fromGraph),
                w2V = dev(w2.values(), fromGraph);
        FloatArray qkvS = dev(qkv.scales(), fromGraph), woS = dev(wo.scales(), fromGraph), w13S = dev(w13.scales(), fromGraph),
                w2S = dev(w2.scales(), fromGraph);
        add("qkv", id -> new TaskPackage(id, PrefillKernels::qkvQ8, ctx, xB, rmsAtt, qkvV, qkvS, qB, kc, vc, pstate, rope,
                dim, kvDim, c.headSize(), gs, s.normPartials()));
        schedule("qkv", (dim + 2 * kvDim) / 2 * local, local);
        addAttention(kc, vc);
        add("wo", id -> new TaskPackage(id, PrefillKernels::matmulResidualQ8, ctx, xbB, woV, woS, xB, pstate, dim, dim, gs));
        schedule("wo", dim * local, local);
        add("w13", id -> new TaskPackage(id, PrefillKernels::w13Q8, ctx, xB, rmsFfn, w13V, w13S, hbB, pstate, dim, hidden,
                gs, s.normPartials()));
        schedule("w13", hidden * local, local);
        add("w2", id -> new TaskPackage(id, PrefillKernels::matmulResidualQ8, ctx, hbB, w2V, w2S, xB, pstate, hidden, dim, gs));
        schedule("w2", dim * local, local);
    }

    /**
     * One GGUF layer, 5 launches ({@link GgmlPrefillKernels}, the kernels of {@link ForwardGraph}'s GGUF layer with a
     * token loop): a task id carries the weights' type ({@code qkv_q8}), as in {@link ForwardGraph}. Each product
     * keeps the token path's rows per work-group ({@link TornadoSettings#matmulRows}), so each token's sums are those
     * of the one-token kernels.
     */
    private void addLayerGgml(ForwardGraph.GgmlLayer w, int l) {
        int dim = c.dim(), hidden = c.hiddenDim(), rows = s.matmulRows(), nH = c.nHeads(), nKv = c.nKvHeads(), hs = c.headSize();
        float eps = c.rmsEps();
        FloatArray kc = dev(f.keyCache(l), fromGraph), vc = dev(f.valueCache(l), fromGraph), rope = dev(f.rope(), 0);
        FloatArray rmsAtt = dev(w.rmsAtt(), fromGraph), rmsFfn = dev(w.rmsFfn(), fromGraph);
        FloatArray bias = dev(w.bias(), fromGraph), norms = dev(w.norms(), fromGraph);
        DeviceMatrix qkv = w.qkv().getFirst().m();
        int flags = (w.hasBias() ? GgmlKernels.HAS_BIAS : 0) | (w.hasNorm() ? GgmlKernels.HAS_NORM : 0)
                | (c.ropeStyle() == RopeStyle.NEOX ? GgmlKernels.NEOX : 0) | rows << GgmlKernels.ROWS_SHIFT;
        String name = "qkv_" + DeviceMatrix.kind(qkv);
        switch (qkv) {
            case DeviceMatrix.F32 m -> {
                FloatArray data = dev(m.data(), fromGraph);
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::qkvF32, ctx, xB, rmsAtt, dim, eps, data, qkvB, bias, norms,
                        flags, qB, kc, vc, pstate, rope, nH, nKv, hs));
            }
            case DeviceMatrix.F16 m -> {
                ShortArray data = dev(m.data(), fromGraph);
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::qkvF16, ctx, xB, rmsAtt, dim, eps, data, qkvB, bias, norms,
                        flags, qB, kc, vc, pstate, rope, nH, nKv, hs));
            }
            case DeviceMatrix.Q8 m -> {
                IntArray values = dev(m.values(), fromGraph);
                FloatArray scales = dev(m.scales(), fromGraph);
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::qkvQ8_0, ctx, xB, rmsAtt, dim, eps, values, scales, qkvB, bias,
                        norms, flags, qB, kc, vc, pstate, rope, nH, nKv, hs));
            }
            case DeviceMatrix.KQuant m -> {
                Int8Array blocks = dev(m.blocks(), fromGraph);
                int types = m.parts() == 3 ? m.types() : 7 * m.firstType();
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::qkvKQuant, ctx, xB, rmsAtt, dim, eps, blocks, qkvB, bias,
                        norms, flags | types << KQuantKernels.TYPES_SHIFT, qB, kc, vc, pstate, rope, nH, nKv, hs));
            }
        }
        schedule(name, qkv.rows() / hs * s.matmulLocal(), s.matmulLocal());
        addAttention(kc, vc);
        addProduct("wo", w.wo(), fromGraph, xbB, rmsAtt, c.qDim(), GgmlKernels.FROM_INPUT, xB, 1, 0); // (the norm weight is not read)
        DeviceMatrix w13 = w.w13().getFirst().m();
        String w13Name = "w13_" + DeviceMatrix.kind(w13);
        switch (w13) {
            case DeviceMatrix.F32 m -> {
                FloatArray data = dev(m.data(), fromGraph);
                add(w13Name, id -> new TaskPackage(id, GgmlPrefillKernels::w13F32, ctx, xB, rmsFfn, dim, eps, data, hbB, hidden, rows,
                        pstate));
            }
            case DeviceMatrix.F16 m -> {
                ShortArray data = dev(m.data(), fromGraph);
                add(w13Name, id -> new TaskPackage(id, GgmlPrefillKernels::w13F16, ctx, xB, rmsFfn, dim, eps, data, hbB, hidden, rows,
                        pstate));
            }
            case DeviceMatrix.Q8 m -> {
                IntArray values = dev(m.values(), fromGraph);
                FloatArray scales = dev(m.scales(), fromGraph);
                add(w13Name, id -> new TaskPackage(id, GgmlPrefillKernels::w13Q8_0, ctx, xB, rmsFfn, dim, eps, values, scales, hbB,
                        hidden, rows, pstate));
            }
            case DeviceMatrix.KQuant m -> {
                Int8Array blocks = dev(m.blocks(), fromGraph);
                add(w13Name, id -> new TaskPackage(id, GgmlPrefillKernels::w13KQuant, ctx, xB, rmsFfn, dim, eps, blocks, m.types(), hbB,
                        hidden, rows, pstate));
            }
        }
        schedule(w13Name, ForwardGraph.groupsFor(hidden, rows) * s.matmulLocal(), s.matmulLocal());
        addProduct("w2", w.w2(), fromGraph, hbB, rmsFfn, hidden, GgmlKernels.FROM_INPUT, xB, 1, 0);
    }

    /**
     * out[t][r] (+= when {@code add} != 0) m[r] · the n values of {@code source} from in[t] for every token t of the chunk,
     * or ({@code lastOnly} 1) out[r] for the chunk's last token: {@link GgmlPrefillKernels#productF32} and its twins.
     * {@code m} is an array of token-by-token graph {@code from}.
     */
    private void addProduct(String kind, DeviceMatrix m, int from, FloatArray in, FloatArray weight, int n, int source, FloatArray out,
                            int add, int lastOnly) {
        String name = kind + "_" + DeviceMatrix.kind(m);
        int rows = m.rows(), rowsPerGroup = s.matmulRows();
        float eps = c.rmsEps();
        switch (m) {
            case DeviceMatrix.F32 w -> {
                FloatArray data = dev(w.data(), from);
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::productF32, ctx, in, weight, n, source, eps, data, out, add, rows,
                        rowsPerGroup, pstate, lastOnly));
            }
            case DeviceMatrix.F16 w -> {
                ShortArray data = dev(w.data(), from);
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::productF16, ctx, in, weight, n, source, eps, data, out, add, rows,
                        rowsPerGroup, pstate, lastOnly));
            }
            case DeviceMatrix.Q8 w -> {
                IntArray values = dev(w.values(), from);
                FloatArray scales = dev(w.scales(), from);
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::productQ8_0, ctx, in, weight, n, source, eps, values, scales, out,
                        add, rows, rowsPerGroup, pstate, lastOnly));
            }
            case DeviceMatrix.KQuant w -> {
                Int8Array blocks = dev(w.blocks(), from);
                add(name, id -> new TaskPackage(id, GgmlPrefillKernels::productKQuant, ctx, in, weight, n, source, eps, blocks,
                        w.firstType(), out, add, rows, rowsPerGroup, pstate, lastOnly));
            }
        }
        schedule(name, ForwardGraph.groupsFor(rows, rowsPerGroup) * s.matmulLocal(), s.matmulLocal());
    }

    /** The chunk's attention over the layer's caches (their aliases in this graph). */
    private void addAttention(FloatArray kc, FloatArray vc) {
        add("attention", id -> new TaskPackage(id, PrefillKernels::attention, ctx, qB, kc, vc, attB, xbB, pstate, c.seqLen(), c.headSize(),
                c.kvDim(), c.kvMul(), (float) Math.sqrt(c.headSize()), c.nHeads()));
        schedule("attention", chunk * c.nHeads() * s.attentionLocal(), s.attentionLocal());
    }

    /** The final norm and the classifier on the chunk's last token; the logits go to the host. */
    private void addClassifier() {
        int dim = c.dim(), local = s.matmulLocal();
        FloatArray rmsFinal = dev(f.rmsFinal(), f.outputGraph());
        int from = f.classifierGraph();
        if (ggml) {
            addProduct("classifier", f.classifier(), from, xB, rmsFinal, dim, GgmlKernels.FROM_NORM, logits, 0, 1);
            return;
        }
        switch (f.classifier()) {
            case DeviceMatrix.F32 cls -> {
                FloatArray data = dev(cls.data(), from);
                add("classifier", id -> new TaskPackage(id, PrefillKernels::classifierF32, ctx, xB, rmsFinal, data, logits, pstate, dim));
            }
            case DeviceMatrix.Q8 cls -> {
                IntArray values = dev(cls.values(), from);
                FloatArray scales = dev(cls.scales(), from);
                add("classifier", id -> new TaskPackage(id, PrefillKernels::classifierQ8, ctx, xB, rmsFinal, values, scales, logits, pstate,
                        dim, c.groupSize(), s.normPartials()));
            }
            default -> throw new IllegalStateException("classifier of a llama2.c checkpoint is " + f.classifier().getClass());
        }
        schedule("classifier", c.vocabSize() * local, local);
    }

    /** Adds a task to the current graph under {@code prefill.kind} (slot 0) or {@code prefill.kind_s}. */
    private void add(String kind, Function<String, TaskPackage> task) {
        String name = slot == 0 ? kind : kind + "_" + slot;
        TaskPackage p = task.apply(name);
        int args = p.getTaskParameters().length - 1;
        if (taskIdsPerGraph.getLast().isEmpty()) {
            recordBytes = 0;
        }
        graph.addTask(p);
        String id = GRAPH + "." + name;
        tasks.add(new ForwardGraph.Task(firstGraph + graphs.size() - 1, id, layer, kind));
        taskIdsPerGraph.getLast().add(id);
        recordBytes += ForwardGraph.recordBytes(args);
        if (recordBytes > ForwardGraph.TASK_RECORD_BYTES) {
            throw new Llama2jException("internal: prefill graph " + (graphs.size() - 1) + "'s tasks need " + recordBytes
                    + " bytes of TornadoVM's " + ForwardGraph.TASK_RECORD_BYTES + "-byte task record", Llama2jException.UNAVAILABLE);
        }
    }

    /** The grid of the task just added (one per id: the same in every graph). */
    private void schedule(String kind, int global, int local) {
        String id = tasks.getLast().id();
        if (!tasks.getLast().kind().equals(kind) || global <= 0 || global % local != 0) {
            throw new IllegalStateException("internal: grid of " + kind + " is " + global + " work-items in groups of " + local);
        }
        if (gridded.add(id)) {
            WorkerGrid1D g = new WorkerGrid1D(global);
            g.setLocalWork(local, 1, 1);
            grid.addWorkerGrid(id, g);
        }
    }

    private static int roundUp(int n, int multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }
}
