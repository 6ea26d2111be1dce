package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cpu.Rope;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The whole forward pass as a chain of TornadoVM task graphs in one execution plan, built once at load
 * time: graph {@code first} embeds the token and runs layer 0, one graph {@code layer} runs each further
 * layer, and graph {@code output} applies the final norm and the classifier. A task id is {@code graph.task}
 * ({@code layer.qkv}); the same id is used in the graph, in the {@link GridScheduler} and in TornadoVM's
 * profiler output; the profile names tasks by layer ({@code layer5.qkv}, see {@link #tasks()}).
 * <pre>
 *   state ─► first [embed, layer 0] ─► layer [layer 1] ─► ... ─► layer [layer L-1] ─► output [final norm, classifier] ─► logits
 *            x, partials, q, xb, hb, att, xq, xs, state, rope: persisted by each graph, consumed by the next
 * </pre>
 *
 * <p>Why every further layer's graph has the same name: TornadoVM caches compiled kernels per plan by task
 * id, so the tasks of layers 2..L-1 reuse what layer 1's compiled (their shapes, hence the specialised code,
 * are the same; the graphs also share one grid per task). JIT time is that of at most two layers plus the
 * embedding and the output, whatever the depth. (Layer 0 shares a graph with the embedding: a graph that
 * only embedded would have to persist buffers that none of its tasks allocates on the device.) (It also keeps every graph far below TornadoVM's fixed 8 KiB task record,
 * 15 bytes per task plus 5 per argument, that one graph for a whole 7B model overflowed.) The activations
 * never leave the device between graphs: each graph persists them ({@code persistOnDevice}) and the next
 * consumes them ({@code consumeFromDevice}; TornadoVM takes them from the graph executed just before, so the
 * graphs are launched one by one, in order); a layer's key/value caches are used by that layer's graph only.
 *
 * <p>Data movement: the weights and the RoPE table are transferred once ({@code FIRST_EXECUTION}, each
 * layer's by its own graph); the key/value caches and all activations live only on the device; per token
 * only {@code state} ({@code [token, pos]}, 8 bytes of payload) goes in ({@code EVERY_EXECUTION}) and the
 * logits come out. (TornadoVM adds its own argument record per launch to the bytes it counts as copied in.)
 *
 * <p>Why unrolled layers rather than one per-layer graph run L times: a layer's weights are separate
 * arrays, so a per-layer-parameterized graph would need every layer's weights of one kind in a single
 * array (a 7B model's stacked w1/w3 is 2.9 G elements, beyond TornadoVM's int-indexed arrays).
 */
final class ForwardGraph {
    /** The graphs' names: the input with layer 0, one graph per further layer (all named {@value #LAYER}), the output. */
    static final String FIRST = "first", LAYER = "layer", OUTPUT = "output";

    /**
     * One kernel launch: the graph (its index in the plan) it belongs to, its TornadoVM task id, the layer
     * it computes (-1 for the input and output) and its kind (the task name: {@code qkv}, {@code attnorm}, ...).
     */
    record Task(int graph, String id, int layer, String kind) {
    }

    private final Configuration c;
    private final TornadoSettings s;
    private final List<TaskGraph> graphs = new ArrayList<>();
    private TaskGraph graph;   // the graph tasks are added to now (the last of graphs)
    private final GridScheduler grid = new GridScheduler();
    private final KernelContext ctx = new KernelContext();
    private final List<Task> tasks = new ArrayList<>();
    private final List<List<String>> taskIdsPerGraph = new ArrayList<>();
    private final List<String> graphNames = new ArrayList<>();
    private int layer = -1;    // the layer whose tasks are added now, -1 outside the layers
    private final java.util.Set<String> gridded = new java.util.HashSet<>();   // task ids that have their grid

    // ---- device weights (transferred once)
    private final DeviceMatrix embedding;
    private final DeviceMatrix classifier;
    private final FloatArray rmsFinal;
    private final Layer[] layers;
    private final FloatArray rope;

    // ---- per-token input and output
    final IntArray state = new IntArray(2);
    final FloatArray logits;

    // ---- device-only buffers
    private final FloatArray x, partials, q, xb, hb, att;
    private final FloatArray[] keyCache, valueCache;
    private final Int8Array xq;    // Q8 only: quantized activations (dim or hidden of them)
    private final FloatArray xs;   // Q8 only: their scales

    /** One layer's device weights; wqkv stacks wq/wk/wv and w13 stacks w1/w3. */
    record Layer(FloatArray rmsAtt, DeviceMatrix wqkv, DeviceMatrix wo, FloatArray rmsFfn, DeviceMatrix w13,
                 DeviceMatrix w2) {
    }

    /** Copies the weights into device-ready arrays (one off-heap copy) and sizes every buffer. */
    ForwardGraph(Configuration c, Weights w, TornadoSettings s) {
        this.c = c;
        this.s = s;
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim(), L = c.nLayers();
        embedding = DeviceMatrix.stack("token embedding", w.tokenEmbedding());
        classifier = w.classifier() == w.tokenEmbedding() ? embedding : DeviceMatrix.stack("classifier", w.classifier());
        rmsFinal = DeviceMatrix.floats("rms_final", w.rmsFinal());
        layers = new Layer[L];
        for (int l = 0; l < L; l++) {
            String n = "layer " + l;
            layers[l] = new Layer(DeviceMatrix.floats(n + " rms_att", w.rmsAtt()[l]),
                    DeviceMatrix.stack(n + " wq/wk/wv", w.wq()[l], w.wk()[l], w.wv()[l]),
                    DeviceMatrix.stack(n + " wo", w.wo()[l]),
                    DeviceMatrix.floats(n + " rms_ffn", w.rmsFfn()[l]),
                    DeviceMatrix.stack(n + " w1/w3", w.w1()[l], w.w3()[l]),
                    DeviceMatrix.stack(n + " w2", w.w2()[l]));
        }
        rope = ropeTable(c.seqLen(), c.headSize(), c.ropeTheta());

        logits = new FloatArray(c.vocabSize());
        x = new FloatArray(dim);
        partials = new FloatArray(s.normPartials());
        q = new FloatArray(dim);
        xb = new FloatArray(dim);
        hb = new FloatArray(hidden);
        att = new FloatArray(c.nHeads() * c.seqLen());
        keyCache = new FloatArray[L];
        valueCache = new FloatArray[L];
        for (int l = 0; l < L; l++) {
            keyCache[l] = new FloatArray(c.seqLen() * kvDim);
            valueCache[l] = new FloatArray(c.seqLen() * kvDim);
        }
        if (c.quantized()) {
            xq = new Int8Array(Math.max(dim, hidden));
            xs = new FloatArray(Math.max(dim, hidden) / c.groupSize());
        } else {
            xq = null;
            xs = null;
        }
    }

    /**
     * RoPE's cos/sin for every position and pair, from the one {@link Rope} every engine uses (run.c's
     * float powf/cosf/sinf through {@link FloatMath#standard()}, as the CPU engine computes them), laid out
     * as the kernels read it: [(pos * headSize/2 + i/2) * 2 + {0: cos, 1: sin}]. Computed on the host once
     * so every device uses the same values (a GPU's fast sin/cos are inaccurate for the large angles late
     * positions reach).
     */
    static FloatArray ropeTable(int seqLen, int headSize, float theta) {
        return FloatArray.fromArray(new Rope(headSize, theta, FloatMath.standard()).table(seqLen));
    }

    /** Every kernel launch of a token, in launch order. */
    List<Task> tasks() {
        return Collections.unmodifiableList(tasks);
    }

    /** Task ids in launch order, as TornadoVM's profiler names them ({@code layer.qkv}: repeated once per layer). */
    List<String> taskIds() {
        return tasks.stream().map(Task::id).toList();
    }

    /** Task ids of each graph, in graph order. */
    List<List<String>> taskIdsPerGraph() {
        return Collections.unmodifiableList(taskIdsPerGraph);
    }

    /** Each graph's name, in launch order. */
    List<String> graphNames() {
        return Collections.unmodifiableList(graphNames);
    }

    GridScheduler gridScheduler() {
        return grid;
    }

    /** Number of task graphs the forward pass of {@code c} is split into: one per layer, and the output. */
    static int graphCount(Configuration c) {
        return c.nLayers() + 1;
    }

    /** Assembles the graphs: input with layer 0, every other layer, output (see the class comment). */
    ImmutableTaskGraph[] build() {
        Object[] shared = shared();
        for (int l = 0; l < c.nLayers(); l++) {
            begin(l == 0 ? FIRST : LAYER, -1, shared);
            List<Object> once = new ArrayList<>();
            if (l == 0) {
                // the embedding table and the RoPE table go to the device once; state every token
                addMatrix(once, embedding);
                once.add(rope);
                if (xq != null) {
                    once.add(xq);   // TornadoVM wants int8 arguments declared; one copy of a scratch buffer is harmless
                }
            }
            once.add(layers[l].rmsAtt);
            once.add(layers[l].rmsFfn);
            addMatrix(once, layers[l].wqkv);
            addMatrix(once, layers[l].wo);
            addMatrix(once, layers[l].w13);
            addMatrix(once, layers[l].w2);
            graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
            if (l == 0) {
                graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, state);
                addInput();
            }
            layer = l;
            if (c.quantized()) {
                addLayerQ8(l);
            } else {
                addLayerF32(l);
            }
            graph.persistOnDevice(shared);
        }
        begin(OUTPUT, -1, shared);
        List<Object> once = new ArrayList<>();
        if (classifier != embedding) {
            addMatrix(once, classifier);
        }
        once.add(rmsFinal);
        graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        addOutput();
        graph.transferToHost(DataTransferMode.EVERY_EXECUTION, logits);
        return graphs.stream().map(TaskGraph::snapshot).toArray(ImmutableTaskGraph[]::new);
    }

    /** Starts the next graph; every graph but the first takes the shared buffers from the one before. */
    private void begin(String name, int layer, Object[] shared) {
        TaskGraph previous = graphs.isEmpty() ? null : graphs.getLast();
        graph = new TaskGraph(name);
        if (previous != null) {
            // Activations, state and RoPE table come from the previous graph's device buffers.
            graph.consumeFromDevice(previous.getTaskGraphName(), shared);
        }
        graphs.add(graph);
        graphNames.add(name);
        taskIdsPerGraph.add(new ArrayList<>());
        this.layer = layer;
    }

    /**
     * What every graph after the first takes from the previous one's device buffers. TornadoVM links a
     * consumed buffer only from the graph executed just before, so a shared classifier's table (the
     * embedding, put on the device by forward0 and read again by the last graph) is passed along the
     * whole chain rather than copied to the device twice.
     */
    private Object[] shared() {
        List<Object> s = new ArrayList<>(List.of(state, rope, x, partials, q, xb, hb, att));
        if (xq != null) {
            s.add(xq);
            s.add(xs);
        }
        if (classifier == embedding) {
            addMatrix(s, embedding);
        }
        return s.toArray();
    }

    private static void addMatrix(List<Object> out, DeviceMatrix m) {
        switch (m) {
            case DeviceMatrix.F32 f -> out.add(f.data());
            case DeviceMatrix.Q8 q8 -> {
                out.add(q8.values());
                out.add(q8.scales());
            }
        }
    }

    /**
     * Input: the token's embedding row, read on the device from the token id in {@code state}.
     * <pre>
     *   state[0] ──► embed ──► x          (Q8: values × scale per group, as runq dequantizes)
     * </pre>
     */
    private void addInput() {
        int dim = c.dim();
        switch (embedding) {
            case DeviceMatrix.F32 e -> graph.task("embed", TransformerKernels::embedF32, ctx, state, e.data(), x, dim);
            case DeviceMatrix.Q8 e -> graph.task("embed", TransformerKernels::embedQ8, ctx, state, e.values(), e.scales(), x,
                    dim, e.groupSize());
        }
        schedule("embed", roundUp(dim, s.quantizeLocal()), s.quantizeLocal());
    }

    /**
     * One float32 layer, 5 launches; rmsnorm is fused into its consumers (every work-group of qkv and w13
     * computes the sum of squares of x itself: dim floats re-read from cache instead of a launch):
     * <pre>
     *   x, rms_att, wqkv ─► qkv ─► q, keyCache[pos], valueCache[pos]
     *                              (rmsnorm + Q/K/V matmuls + RoPE + cache store, fused)
     *   q, keyCache, valueCache ─► attention ─► xb                    (scores, softmax, Σ att·v)
     *   xb, wo ─► wo ─► x += wo·xb                                    (matmul + residual, fused)
     *   x, rms_ffn, w13 ─► w13 ─► hb = silu(w1·xn) * (w3·xn)          (rmsnorm + 2 matmuls + SwiGLU, fused)
     *   hb, w2 ─► w2 ─► x += w2·hb
     * </pre>
     */
    private void addLayerF32(int l) {
        Layer w = layers[l];
        int dim = c.dim(), kvDim = c.kvDim(), hidden = c.hiddenDim();
        graph.task("qkv", TransformerKernels::qkvF32, ctx, x, w.rmsAtt, ((DeviceMatrix.F32) w.wqkv).data(), q, keyCache[l],
                valueCache[l], state, rope, dim, kvDim, c.headSize());
        schedule("qkv", (dim + 2 * kvDim) / 2 * s.matmulLocal(), s.matmulLocal());
        addAttention("attention", l);
        graph.task("wo", TransformerKernels::matmulResidualF32, ctx, xb, ((DeviceMatrix.F32) w.wo).data(), x, dim);
        schedule("wo", dim * s.matmulLocal(), s.matmulLocal());
        graph.task("w13", TransformerKernels::w13F32, ctx, x, w.rmsFfn, ((DeviceMatrix.F32) w.w13).data(), hb, dim, hidden);
        schedule("w13", hidden * s.matmulLocal(), s.matmulLocal());
        graph.task("w2", TransformerKernels::matmulResidualF32, ctx, hb, ((DeviceMatrix.F32) w.w2).data(), x, hidden);
        schedule("w2", dim * s.matmulLocal(), s.matmulLocal());
    }

    /**
     * One Q8_0 layer (runq), 11 launches: every matmul input is quantized on the device first.
     * <pre>
     *   x ─► attnorm ─► partials
     *   x, partials, rms_att ─► attquant ─► xq, xs                    (norm phase 2 + quantize, fused)
     *   xq, xs, wqkv ─► qkv ─► q, keyCache[pos], valueCache[pos]      (int8 dots + RoPE + cache store)
     *   q, keyCache, valueCache ─► attention ─► xb
     *   xb ─► woquant ─► xq, xs
     *   xq, xs, wo ─► wo ─► x += wo·xb
     *   x ─► ffnnorm ─► partials
     *   x, partials, rms_ffn ─► ffnquant ─► xq, xs
     *   xq, xs, w13 ─► w13 ─► hb = silu(w1·xn) * (w3·xn)
     *   hb ─► w2quant ─► xq, xs
     *   xq, xs, w2 ─► w2 ─► x += w2·hb
     * </pre>
     */
    private void addLayerQ8(int l) {
        Layer w = layers[l];
        int dim = c.dim(), kvDim = c.kvDim(), hidden = c.hiddenDim(), gs = c.groupSize();
        addNorm("attnorm");
        addQuantizeNorm("attquant", w.rmsAtt);
        DeviceMatrix.Q8 qkv = (DeviceMatrix.Q8) w.wqkv;
        graph.task("qkv", TransformerKernels::qkvQ8, ctx, xq, xs, qkv.values(), qkv.scales(), q, keyCache[l],
                valueCache[l], state, rope, dim, kvDim, c.headSize(), gs);
        schedule("qkv", (dim + 2 * kvDim) / 2 * s.matmulLocal(), s.matmulLocal());
        addAttention("attention", l);
        addQuantize("woquant", xb, dim);
        DeviceMatrix.Q8 wo = (DeviceMatrix.Q8) w.wo;
        graph.task("wo", TransformerKernels::matmulResidualQ8, ctx, xq, xs, wo.values(), wo.scales(), x, dim, gs);
        schedule("wo", dim * s.matmulLocal(), s.matmulLocal());
        addNorm("ffnnorm");
        addQuantizeNorm("ffnquant", w.rmsFfn);
        DeviceMatrix.Q8 w13 = (DeviceMatrix.Q8) w.w13;
        graph.task("w13", TransformerKernels::w13Q8, ctx, xq, xs, w13.values(), w13.scales(), hb, dim, hidden, gs);
        schedule("w13", hidden * s.matmulLocal(), s.matmulLocal());
        addQuantize("w2quant", hb, hidden);
        DeviceMatrix.Q8 w2 = (DeviceMatrix.Q8) w.w2;
        graph.task("w2", TransformerKernels::matmulResidualQ8, ctx, xq, xs, w2.values(), w2.scales(), x, hidden, gs);
        schedule("w2", dim * s.matmulLocal(), s.matmulLocal());
    }

    /**
     * Output: final rmsnorm and the classifier; only {@code logits} goes back to the host.
     * <pre>
     *   f32: x, rms_final, wcls ─► classifier ─► logits                     (rmsnorm fused)
     *   q8:  x ─► final_norm ─► partials; x, partials, rms_final ─► final_quant ─► xq, xs ─► classifier ─► logits
     * </pre>
     */
    private void addOutput() {
        int dim = c.dim();
        switch (classifier) {
            case DeviceMatrix.F32 cls -> graph.task("classifier", TransformerKernels::matmulNormF32, ctx, x, rmsFinal,
                    cls.data(), logits, dim);
            case DeviceMatrix.Q8 cls -> {
                addNorm("final_norm");
                addQuantizeNorm("final_quant", rmsFinal);
                graph.task("classifier", TransformerKernels::matmulQ8, ctx, xq, xs, cls.values(), cls.scales(), logits, dim,
                        c.groupSize());
            }
        }
        schedule("classifier", c.vocabSize() * s.matmulLocal(), s.matmulLocal());
    }

    private void addNorm(String name) {
        graph.task(name, TransformerKernels::rmsPartials, ctx, x, partials, c.dim());
        schedule(name, s.normPartials() * s.normLocal(), s.normLocal());
    }

    private void addQuantizeNorm(String name, FloatArray rmsWeight) {
        int dim = c.dim();
        graph.task(name, TransformerKernels::quantizeNorm, ctx, x, partials, s.normPartials(), rmsWeight, xq, xs, dim,
                c.groupSize());
        schedule(name, roundUp(dim / c.groupSize(), s.quantizeLocal()), s.quantizeLocal());
    }

    private void addQuantize(String name, FloatArray in, int n) {
        graph.task(name, TransformerKernels::quantize, ctx, in, xq, xs, n, c.groupSize());
        schedule(name, roundUp(n / c.groupSize(), s.quantizeLocal()), s.quantizeLocal());
    }

    private void addAttention(String name, int l) {
        graph.task(name, TransformerKernels::attention, ctx, q, keyCache[l], valueCache[l], att, xb, state, c.seqLen(),
                c.headSize(), c.kvDim(), c.kvMul(), (float) Math.sqrt(c.headSize()));
        schedule(name, c.nHeads() * s.attentionLocal(), s.attentionLocal());
    }

    /** Gives the task just added its grid (one per task id: every layer's graph shares it) and records it. */
    private void schedule(String task, int global, int local) {
        String id = graph.getTaskGraphName() + "." + task;
        if (global <= 0 || global % local != 0) {
            throw new Llama2jException("internal: grid of " + id + " is " + global + " work-items, not a multiple of " + local);
        }
        if (gridded.add(id)) {
            WorkerGrid1D g = new WorkerGrid1D(global);
            g.setLocalWork(local, 1, 1);
            grid.addWorkerGrid(id, g);
        }
        tasks.add(new Task(graphs.size() - 1, id, layer, task));
        taskIdsPerGraph.getLast().add(id);
    }

    private static int roundUp(int n, int multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }

    /** Rejects weights of mixed types (a checkpoint is all float32 or all Q8_0). */
    static void checkUniform(Configuration c, Weights w) {
        TensorTypes.requireSupported(c, w);
        Class<?> want = c.quantized() ? Matrix.Q8.class : Matrix.F32.class;
        List<Matrix> all = new ArrayList<>(List.of(w.tokenEmbedding(), w.classifier()));
        for (int l = 0; l < c.nLayers(); l++) {
            all.addAll(List.of(w.wq()[l], w.wk()[l], w.wv()[l], w.wo()[l], w.w1()[l], w.w2()[l], w.w3()[l]));
        }
        for (Matrix m : all) {
            if (!want.isInstance(m)) {
                throw new Llama2jException("model mixes float32 and Q8_0 matrices; the TornadoVM engine needs one type",
                        Llama2jException.BAD_INPUT);
            }
        }
    }
}
