package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cpu.Rope;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
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
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The whole forward pass as a chain of TornadoVM task graphs in one execution plan, built once at load
 * time: {@link TornadoSettings#graphLayers} layers per graph (2 unless the device profile says otherwise), the
 * first graph also embeds the token, the last also applies the final norm and the classifier. Every graph is named {@value #GRAPH}; a task id is
 * {@code forward.kind} for a graph's first layer and {@code forward.kind_s} for its layer slot s
 * ({@code forward.qkv}, {@code forward.qkv_1}); the same id is used in the graph, in the {@link GridScheduler}
 * and in TornadoVM's profiler output; the profile names tasks by layer ({@code layer5.qkv}, see {@link #tasks()}).
 * <pre>
 *   state ─► forward [embed, layers 0, 1] ─► forward [layers 2, 3] ─► ... ─► forward [layer L-1, final norm + classifier] ─► logits
 *            state, rope, x, q, xb, hb, att (GGUF: qkv): persisted by each graph, consumed by the next
 * </pre>
 * Launches per token, whatever the weights' type: 5 per layer ({@code qkv}, {@code attention}, {@code wo},
 * {@code w13}, {@code w2}; see {@link #addLayerF32}, {@link #addLayerQ8}, {@link #addLayerGgml}) plus
 * {@code embed} and {@code classifier}: 5 × layers + 2 (a GGUF layer whose wq/wk/wv or w1/w3 differ in type
 * has one more per product that cannot be stacked). No launch normalises or quantizes on its own: every
 * work-group of a consumer computes rmsnorm's sum of squares, and the Q8/F16 form of its input, itself.
 *
 * <p>Why this layout (TornadoVM 5.2's source): compiled kernels are cached per execution plan by task id
 * and method ({@code OCLDeviceContext.isCached(plan, id, method)}), so a task whose id and method an earlier
 * graph compiled is not compiled again: every graph has the same name, and slot s of every graph reuses the
 * kernels slot s of the first graph compiled. Two tasks of one id in one graph are not possible (a
 * {@code CompilableTask} equals another of the same id, and TornadoVM's execution context keeps one of them),
 * hence one set of ids per layer slot. JIT work is that of graphLayers layers plus the
 * embedding and the classifier, whatever the depth, plus TornadoVM's forced recompilation of each graph's last
 * task ({@code TornadoVMInterpreter}: the last task of a graph is always compiled, for FPGAs). Graph executions
 * per token are ⌈layers / graphLayers⌉ (each a host-side {@code execute()} of TornadoVM's
 * interpreter, see docs/tornadovm-performance.md). Every graph stays far below TornadoVM's fixed 8 KiB task
 * record ({@link #TASK_RECORD_BYTES}; {@link #pack} starts a new graph before a graph would overflow it). The
 * activations never leave the device between graphs: each graph persists them ({@code persistOnDevice}) and
 * the next consumes them ({@code consumeFromDevice}; TornadoVM takes them from the graph executed just before,
 * so the graphs are launched one by one, in order); a layer's key/value caches are used by its graph only.
 *
 * <p>Data movement: the weights and the RoPE table are transferred once ({@code FIRST_EXECUTION}, each
 * layer's by the graph that runs it); the key/value caches and all activations live only on the device; per token
 * only {@code state} ({@code [token, pos]}, 8 bytes of payload) goes in ({@code EVERY_EXECUTION}) and the
 * logits come out. (TornadoVM adds its own argument record per launch to the bytes it counts as copied in.)
 *
 * <p>Why unrolled layers rather than one per-layer graph run L times: a layer's weights are separate
 * arrays, so a per-layer-parameterized graph would need every layer's weights of one kind in a single
 * array (a 7B model's stacked w1/w3 is 2.9 G elements, beyond TornadoVM's int-indexed arrays).
 */
final class ForwardGraph {
    /** Every graph's name: tasks of the same id in different graphs share one compiled kernel. */
    static final String GRAPH = "forward";

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
    private int layer = -1;    // the layer whose tasks are created now, -1 outside the layers
    private final java.util.Map<String, Long> ggmlWeightBytes = new java.util.HashMap<>();
    private List<Pending> pending;   // the tasks created now (see unit), before they join a graph
    private final int recordBytes, maxLayersPerGraph;
    /**
     * Rows per work-group of the matmul kernels over float weights ({@link TornadoSettings#matmulRows}) and over Q8_0
     * weights ({@link TornadoSettings#q8Rows}): llama2.c's and GGUF's (a GGUF qkv kernel keeps one work-group per head
     * and computes the head's rows this many at a time); see {@link #rows}.
     */
    private final int rowsPerGroup, q8RowsPerGroup;
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

    // ---- device-only buffers (no quantized or prepared copies of activations: every kernel derives the
    //      form its weights read from these itself, see TransformerKernels and GgmlKernels)
    private final FloatArray x;      // (dim) the residual stream
    private final FloatArray q;      // (q_dim) the rotated query
    private final FloatArray xb;     // (q_dim) attention output
    private final FloatArray hb;     // (hidden; GGUF 2 hidden: [w1·xn; w3·xn] where w1 and w3 are separate products)
    private final FloatArray att;    // (n_heads × seq_len) attention scores
    private final FloatArray qkv;    // GGUF only, else null: (q_dim + 2 kv_dim) a layer's q/k/v heads before their store
    private final FloatArray partials;   // split attention only, else null: (n_heads × splits × (2 + head_size)) [m, s, o] per chunk
    /** Work-groups per head of the one-token attention ({@link #attentionSplits}); 1: unsplit. */
    private final int splits;
    private final FloatArray[] keyCache, valueCache;   // per layer (seq_len × kv_dim)

    /** GGUF models: llama.cpp's arithmetic ({@link GgmlKernels}), per-matrix types; llama2.c checkpoints: run.c's / runq.c's. */
    private final boolean ggml;
    private final GgmlLayer[] ggmlLayers;

    /** One layer's device weights; wqkv stacks wq/wk/wv and w13 stacks w1/w3. */
    record Layer(FloatArray rmsAtt, DeviceMatrix wqkv, DeviceMatrix wo, FloatArray rmsFfn, DeviceMatrix w13,
                 DeviceMatrix w2) {
    }

    /**
     * One matrix product of a GGUF layer: {@code m} written at {@code out[outOff ..]}; {@code name} is the
     * task's kind ({@code qkv} when wq, wk and wv share a type and are stacked, else {@code q}, {@code k}, {@code v}).
     */
    record Product(String name, DeviceMatrix m, int outOff) {
    }

    /**
     * One GGUF layer's device weights: the q/k/v and w1/w3 products (stacked where their types agree),
     * the biases stacked as [bq; bk; bv] and the head norms as [q_norm; k_norm] (a 1-float placeholder where
     * the architecture has none).
     */
    record GgmlLayer(FloatArray rmsAtt, List<Product> qkv, DeviceMatrix wo, FloatArray rmsFfn, List<Product> w13,
                     DeviceMatrix w2, FloatArray bias, boolean hasBias, FloatArray norms, boolean hasNorm) {
    }

    /** Copies the weights into device-ready arrays (one off-heap copy) and sizes every buffer; packs layers into graphs. */
    ForwardGraph(Configuration c, Weights w, TornadoSettings s) {
        this(c, w, s, false);
    }

    /**
     * @param ptx the device is on TornadoVM's PTX backend, whose local arrays hold fewer entries than declared
     *            ({@link KernelHelpers#localLength}): the split attention is used only where its local arrays fit there
     */
    ForwardGraph(Configuration c, Weights w, TornadoSettings s, boolean ptx) {
        this(c, w, s, s.graphLayers(), TASK_RECORD_BYTES, ptx);
    }

    /**
     * @param maxLayersPerGraph at most this many layers per graph (instead of {@link TornadoSettings#graphLayers})
     * @param recordBytes       the task record's size per graph ({@link #TASK_RECORD_BYTES})
     */
    ForwardGraph(Configuration c, Weights w, TornadoSettings s, int maxLayersPerGraph, int recordBytes) {
        this(c, w, s, maxLayersPerGraph, recordBytes, false);
    }

    private ForwardGraph(Configuration c, Weights w, TornadoSettings s, int maxLayersPerGraph, int recordBytes, boolean ptx) {
        this.c = c;
        this.s = s;
        this.maxLayersPerGraph = maxLayersPerGraph;
        this.recordBytes = recordBytes;
        this.rowsPerGroup = s.matmulRows();
        this.q8RowsPerGroup = s.q8Rows();
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim(), L = c.nLayers(), qDim = c.qDim();
        ggml = isGgml(c);
        embedding = DeviceMatrix.stack("token embedding", w.tokenEmbedding());
        classifier = w.classifier() == w.tokenEmbedding() ? embedding : DeviceMatrix.stack("classifier", w.classifier());
        rmsFinal = DeviceMatrix.floats("rms_final", w.rmsFinal());
        layers = ggml ? null : new Layer[L];
        ggmlLayers = ggml ? new GgmlLayer[L] : null;
        for (int l = 0; l < L && ggml; l++) {
            String n = "layer " + l;
            boolean bias = w.bq() != null, norm = w.qNorm() != null;
            ggmlLayers[l] = new GgmlLayer(DeviceMatrix.floats(n + " rms_att", w.rmsAtt()[l]),
                    products(n, "qkv", new String[]{"q", "k", "v"}, new int[]{0, qDim, qDim + kvDim}, w.wq()[l], w.wk()[l], w.wv()[l]),
                    DeviceMatrix.stack(n + " wo", w.wo()[l]),
                    DeviceMatrix.floats(n + " rms_ffn", w.rmsFfn()[l]),
                    products(n, "w13", new String[]{"w1", "w3"}, new int[]{0, hidden}, w.w1()[l], w.w3()[l]),
                    DeviceMatrix.stack(n + " w2", w.w2()[l]),
                    bias ? DeviceMatrix.floats(n + " q/k/v bias", w.bq()[l], w.bk()[l], w.bv()[l]) : new FloatArray(1), bias,
                    norm ? DeviceMatrix.floats(n + " q/k norm", w.qNorm()[l], w.kNorm()[l]) : new FloatArray(1), norm);
        }
        for (int l = 0; l < L && !ggml; l++) {
            String n = "layer " + l;
            layers[l] = new Layer(DeviceMatrix.floats(n + " rms_att", w.rmsAtt()[l]),
                    DeviceMatrix.stack(n + " wq/wk/wv", w.wq()[l], w.wk()[l], w.wv()[l]),
                    DeviceMatrix.stack(n + " wo", w.wo()[l]),
                    DeviceMatrix.floats(n + " rms_ffn", w.rmsFfn()[l]),
                    DeviceMatrix.stack(n + " w1/w3", w.w1()[l], w.w3()[l]),
                    DeviceMatrix.stack(n + " w2", w.w2()[l]));
        }
        // llama2.c: run.c's angles; GGUF: ggml's, in the model's style, with its rope_freqs factors
        rope = ggml ? FloatArray.fromArray(Rope.of(c, w.ropeFreqs(), FloatMath.standard()).table(c.seqLen()))
                : ropeTable(c.seqLen(), c.headSize(), c.ropeTheta());

        logits = new FloatArray(c.vocabSize());
        x = new FloatArray(dim);
        q = new FloatArray(ggml ? qDim : dim);
        xb = new FloatArray(ggml ? qDim : dim);
        hb = new FloatArray(ggml ? 2 * hidden : hidden);   // GGUF: w1's then w3's outputs
        att = new FloatArray(c.nHeads() * c.seqLen());
        qkv = ggml ? new FloatArray(qDim + 2 * kvDim) : null;
        splits = attentionSplits(c, s, ptx);
        partials = splits > 1 ? new FloatArray(c.nHeads() * splits * (KernelHelpers.PARTIAL + c.headSize())) : null;
        keyCache = new FloatArray[L];
        valueCache = new FloatArray[L];
        for (int l = 0; l < L; l++) {
            keyCache[l] = new FloatArray(c.seqLen() * kvDim);
            valueCache[l] = new FloatArray(c.seqLen() * kvDim);
        }
    }

    /**
     * Work-groups per head of the one-token attention: {@link TornadoSettings#attentionSplits} for a llama2.c
     * checkpoint whose wo can combine the partials in local memory (q_dim at most {@link KernelHelpers#MAX_SPLIT_INPUT},
     * heads × (splits + 1) at most {@link TransformerKernels#MAX_LOCAL}; on PTX, what those local arrays hold there,
     * {@link KernelHelpers#ptxUsable}), else 1. GGUF models keep one work-group per head (their wo kernels, one per
     * weight type, read the attention output as it is).
     */
    static int attentionSplits(Configuration c, TornadoSettings s, boolean ptx) {
        int splits = s.attentionSplits();
        int input = ptx ? KernelHelpers.ptxUsable(KernelHelpers.MAX_SPLIT_INPUT) : KernelHelpers.MAX_SPLIT_INPUT;
        int weights = ptx ? KernelHelpers.ptxUsable(TransformerKernels.MAX_LOCAL) : TransformerKernels.MAX_LOCAL;
        if (splits == 1 || isGgml(c) || c.dim() > input || c.nHeads() * (splits + 1) > weights) {
            return 1;
        }
        return splits;
    }

    /** Whether a model computes with llama.cpp's arithmetic (a GGUF model) rather than run.c's. */
    static boolean isGgml(Configuration c) {
        return c.ropeStyle() != RopeStyle.LLAMA2C;
    }

    /**
     * A GGUF layer's products reading one input: one stacked task ({@code stacked}) when the matrices share a
     * type or are all K-quants (Q4_K and Q6_K stack, each part keeping its type), else one task per matrix, each
     * writing at its offset of the common output.
     */
    private static List<Product> products(String layer, String stacked, String[] names, int[] offsets, Matrix... parts) {
        if (stacks(parts)) {
            return List.of(new Product(stacked, DeviceMatrix.stack(layer + " " + String.join("/", names), parts), 0));
        }
        List<Product> list = new ArrayList<>();
        for (int i = 0; i < parts.length; i++) {
            list.add(new Product(names[i], DeviceMatrix.stack(layer + " " + names[i], parts[i]), offsets[i]));
        }
        return list;
    }

    /** Whether a GGUF layer's products reading one input are one stacked task: they share a type, or are all K-quants. */
    static boolean stacks(Matrix... parts) {
        boolean same = true;
        for (Matrix m : parts) {
            same &= m.getClass() == parts[0].getClass() || (DeviceMatrix.kQuant(m) && DeviceMatrix.kQuant(parts[0]));
        }
        return same;
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

    /** Task ids in launch order, as TornadoVM's profiler names them ({@code forward.qkv}: repeated once per graph). */
    List<String> taskIds() {
        return tasks.stream().map(Task::id).toList();
    }

    /** Work-groups per head of the one-token attention (1: unsplit). */
    int attentionSplits() {
        return splits;
    }

    /** Task ids of each graph, in graph order. */
    List<List<String>> taskIdsPerGraph() {
        return Collections.unmodifiableList(taskIdsPerGraph);
    }

    /** Each graph's name, in launch order. */
    List<String> graphNames() {
        return Collections.unmodifiableList(graphNames);
    }

    // ---- what the prefill graphs (PrefillGraph) read of this one: the same device weights, caches and tables

    Configuration config() {
        return c;
    }

    TornadoSettings settings() {
        return s;
    }

    /** Layer l's float32 / Q8_0 weights (llama2.c checkpoints; null for GGUF models). */
    Layer layer(int l) {
        return layers == null ? null : layers[l];
    }

    /** Layer l's GGUF weights (null for llama2.c checkpoints). */
    GgmlLayer ggmlLayer(int l) {
        return ggmlLayers == null ? null : ggmlLayers[l];
    }

    FloatArray keyCache(int l) {
        return keyCache[l];
    }

    FloatArray valueCache(int l) {
        return valueCache[l];
    }

    FloatArray rope() {
        return rope;
    }

    DeviceMatrix embedding() {
        return embedding;
    }

    DeviceMatrix classifier() {
        return classifier;
    }

    FloatArray rmsFinal() {
        return rmsFinal;
    }

    /** The graph (its index in the plan) that transferred the classifier to the device (the embedding's, if shared). */
    int classifierGraph() {
        return classifier == embedding ? 0 : graphs.size() - 1;
    }

    /** The graph (its index in the plan) that transferred the final norm's weight to the device. */
    int outputGraph() {
        return graphs.size() - 1;
    }

    /** The graph (its index in the plan) that runs layer l (and put its weights and caches on the device). */
    int graphOfLayer(int l) {
        for (Task t : tasks) {
            if (t.layer() == l) {
                return t.graph();
            }
        }
        throw new IllegalArgumentException("no layer " + l);
    }

    /** The device arrays of a matrix (values and scales for Q8). */
    static List<Object> arrays(DeviceMatrix m) {
        List<Object> out = new ArrayList<>();
        addMatrix(out, m);
        return out;
    }

    GridScheduler gridScheduler() {
        return grid;
    }

    /** Task graphs per token. */
    int graphCount() {
        return graphs.size();
    }

    /**
     * TornadoVM's record of a graph's tasks: a fixed 8 KiB buffer ({@code TornadoTaskGraph.highLevelCode}), 15
     * bytes per task plus 5 per argument (see {@link Pending#recordBytes}); a graph whose tasks need more
     * fails to build with a BufferOverflowException.
     */
    static final int TASK_RECORD_BYTES = 8192;

    /**
     * Bytes one task of {@code args} arguments takes in TornadoVM's task record ({@code TornadoTaskGraph.addInner}):
     * CONTEXT (1 + 2 ints), ARG_LIST (1 + 1 int), LOAD_REF or LOAD_PRIM (1 + 1 int) per argument, LAUNCH (1).
     */
    static int recordBytes(int args) {
        return 15 + 5 * args;
    }

    /** Assembles the graphs: as many layers per graph as the task record allows (see the class comment). */
    ImmutableTaskGraph[] build() {
        Object[] shared = shared();
        List<Pending> input = unit(-1, this::addInput);
        List<List<Pending>> perLayer = new ArrayList<>();
        int[] layerBytes = new int[c.nLayers()];
        for (int l = 0; l < c.nLayers(); l++) {
            int layer = l;
            perLayer.add(unit(l, () -> {
                if (ggml) {
                    addLayerGgml(layer);
                } else if (c.quantized()) {
                    addLayerQ8(layer);
                } else {
                    addLayerF32(layer);
                }
            }));
            layerBytes[l] = Pending.bytes(perLayer.getLast());
        }
        List<Pending> output = unit(-1, this::addOutput);
        Packing packing = pack(Pending.bytes(input), layerBytes, Pending.bytes(output), recordBytes, maxLayersPerGraph);

        int graphsOfLayers = packing.start().length - 1;
        for (int g = 0; g < graphsOfLayers; g++) {
            begin(shared);
            List<Object> once = new ArrayList<>();
            if (g == 0) {
                // the embedding table and the RoPE table go to the device once; state every token
                addMatrix(once, embedding);
                once.add(rope);
            }
            for (int l = packing.start()[g]; l < packing.start()[g + 1]; l++) {
                once.addAll(layerWeights(l));
            }
            boolean last = g == graphsOfLayers - 1;
            boolean withOutput = last && !packing.outputOwnGraph();
            if (withOutput) {
                once.addAll(outputWeights());
            }
            graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
            if (g == 0) {
                graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, state);
                place(input, 0);
            }
            for (int l = packing.start()[g]; l < packing.start()[g + 1]; l++) {
                place(perLayer.get(l), l - packing.start()[g]);
            }
            if (withOutput) {
                place(output, 0);
                graph.transferToHost(DataTransferMode.EVERY_EXECUTION, logits);
            } else {
                graph.persistOnDevice(shared);
            }
        }
        if (packing.outputOwnGraph()) {
            begin(shared);
            graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, outputWeights().toArray());
            place(output, 0);
            graph.transferToHost(DataTransferMode.EVERY_EXECUTION, logits);
        }
        return graphs.stream().map(TaskGraph::snapshot).toArray(ImmutableTaskGraph[]::new);
    }

    /** Layer l's weights, transferred once by the graph that runs it. */
    private List<Object> layerWeights(int l) {
        List<Object> once = new ArrayList<>();
        if (ggml) {
            GgmlLayer gl = ggmlLayers[l];
            once.addAll(List.of(gl.rmsAtt(), gl.rmsFfn(), gl.bias(), gl.norms()));
            gl.qkv().forEach(p -> addMatrix(once, p.m()));
            addMatrix(once, gl.wo());
            gl.w13().forEach(p -> addMatrix(once, p.m()));
            addMatrix(once, gl.w2());
        } else {
            once.add(layers[l].rmsAtt);
            once.add(layers[l].rmsFfn);
            addMatrix(once, layers[l].wqkv);
            addMatrix(once, layers[l].wo);
            addMatrix(once, layers[l].w13);
            addMatrix(once, layers[l].w2);
        }
        return once;
    }

    /** The final norm's weights and an unshared classifier, transferred once by the graph that runs the classifier. */
    private List<Object> outputWeights() {
        List<Object> once = new ArrayList<>();
        if (classifier != embedding) {
            addMatrix(once, classifier);
        }
        once.add(rmsFinal);
        return once;
    }

    /**
     * Where the layers go: graph g runs layers {@code start[g] .. start[g+1]-1} (graph 0 also the embedding);
     * the classifier runs in the last of them, or in a graph of its own ({@code outputOwnGraph}).
     */
    record Packing(int[] start, boolean outputOwnGraph) {
        int graphs() {
            return start.length - 1 + (outputOwnGraph ? 1 : 0);
        }
    }

    /**
     * Fills graphs in order with whole layers while their tasks fit TornadoVM's task record ({@code budget}
     * bytes) and at most {@code maxLayers} layers each; the classifier joins the last graph if it fits there.
     * {@code maxLayers == 1} is the former one-graph-per-layer layout (the classifier in a graph of its own).
     */
    static Packing pack(int inputBytes, int[] layerBytes, int outputBytes, int budget, int maxLayers) {
        if (maxLayers < 1) {
            throw new IllegalArgumentException("maxLayers " + maxLayers);
        }
        List<Integer> start = new ArrayList<>(List.of(0));
        int used = inputBytes, inGraph = 0;
        for (int l = 0; l < layerBytes.length; l++) {
            if (inGraph > 0 && (used + layerBytes[l] > budget || inGraph == maxLayers)) {
                start.add(l);
                used = 0;
                inGraph = 0;
            }
            used += layerBytes[l];
            inGraph++;
            if (used > budget) {
                throw new Llama2jException("internal: layer " + l + "'s tasks need " + layerBytes[l] + " bytes of TornadoVM's "
                        + budget + "-byte task record", Llama2jException.UNAVAILABLE);
            }
        }
        start.add(layerBytes.length);
        boolean own = maxLayers == 1 || used + outputBytes > budget;
        return new Packing(start.stream().mapToInt(Integer::intValue).toArray(), own);
    }

    /**
     * One task before it joins a graph: TornadoVM's package (its id is the task's name, {@code qkv}), the
     * layer it computes (-1 for the input and the output) and its grid.
     */
    private record Pending(String kind, java.util.function.Function<String, TaskPackage> task, int args, int layer,
                           int global, int local) {
        int recordBytes() {
            return ForwardGraph.recordBytes(args);
        }

        static int bytes(List<Pending> tasks) {
            return tasks.stream().mapToInt(Pending::recordBytes).sum();
        }
    }

    /** The tasks {@code adder} creates, for layer {@code l} (-1: input or output). */
    private List<Pending> unit(int l, Runnable adder) {
        pending = new ArrayList<>();
        layer = l;
        adder.run();
        List<Pending> made = pending;
        pending = null;
        layer = -1;
        return made;
    }

    /**
     * Records the weight bytes a GGUF task kind streams per token (its matrix; layer 0 and the output, the layers being
     * uniform), for the profile's GB/s ({@link TaskTraffic}); returns {@code kind}.
     */
    private String weigh(String kind, DeviceMatrix m) {
        if (layer <= 0) {
            ggmlWeightBytes.merge(kind, m.bytes(), Long::sum);
        }
        return kind;
    }

    /** GGUF task kind → weight bytes it reads per token (see {@link #weigh}); empty for llama2.c checkpoints. */
    java.util.Map<String, Long> ggmlWeightBytes() {
        return java.util.Collections.unmodifiableMap(ggmlWeightBytes);
    }

    /**
     * Adds a task of kind {@code kind} to the unit being built: {@code task} makes TornadoVM's package under a
     * given task name (the kind, or the kind and the layer's slot, see {@link #place}); its grid follows ({@link #schedule}).
     */
    private void add(String kind, java.util.function.Function<String, TaskPackage> task) {
        int args = task.apply(kind).getTaskParameters().length - 1;   // parameter 0 is the method
        pending.add(new Pending(kind, task, args, layer, 0, 0));
    }

    /** Gives the task just added its grid. */
    private void schedule(String task, int global, int local) {
        Pending p = pending.getLast();
        if (!p.kind().equals(task)) {
            throw new IllegalStateException("internal: grid for " + task + " after task " + p.kind());
        }
        if (global <= 0 || global % local != 0) {
            throw new Llama2jException("internal: grid of " + task + " is " + global + " work-items, not a multiple of " + local);
        }
        pending.set(pending.size() - 1, new Pending(p.kind(), p.task(), p.args(), p.layer(), global, local));
    }

    /**
     * Adds a unit's tasks to the current graph at layer slot {@code slot}: a task id is {@code forward.kind}
     * in slot 0 and {@code forward.kind_s} in slot s (ids must differ within a graph: TornadoVM takes two tasks
     * of one id for the same task), and every graph has the same name, so a task of one slot is compiled once
     * for all graphs. Every id gets one grid (the same in every graph).
     */
    private void place(List<Pending> unit, int slot) {
        for (Pending p : unit) {
            String kind = p.kind();
            String name = slot == 0 ? kind : kind + "_" + slot;
            graph.addTask(p.task().apply(name));
            String id = graph.getTaskGraphName() + "." + name;
            if (gridded.add(id)) {
                WorkerGrid1D g = new WorkerGrid1D(p.global());
                g.setLocalWork(p.local(), 1, 1);
                grid.addWorkerGrid(id, g);
            }
            tasks.add(new Task(graphs.size() - 1, id, p.layer(), kind));
            taskIdsPerGraph.getLast().add(id);
        }
    }

    /** Starts the next graph (all are named {@value #GRAPH}); every graph but the first takes the shared buffers from the one before. */
    private void begin(Object[] shared) {
        TaskGraph previous = graphs.isEmpty() ? null : graphs.getLast();
        graph = new TaskGraph(GRAPH);
        if (previous != null) {
            // Activations, state and RoPE table come from the previous graph's device buffers.
            graph.consumeFromDevice(previous.getTaskGraphName(), shared);
        }
        graphs.add(graph);
        graphNames.add(GRAPH);
        taskIdsPerGraph.add(new ArrayList<>());
    }

    /**
     * What every graph after the first takes from the previous one's device buffers. TornadoVM links a
     * consumed buffer only from the graph executed just before, so a shared classifier's table (the
     * embedding, put on the device by forward0 and read again by the last graph) is passed along the
     * whole chain rather than copied to the device twice.
     */
    private Object[] shared() {
        List<Object> s = new ArrayList<>(List.of(state, rope, x, q, xb, hb, att));
        if (qkv != null) {
            s.add(qkv);
        }
        if (partials != null) {
            s.add(partials);
        }
        if (classifier == embedding) {
            addMatrix(s, embedding);
        }
        return s.toArray();
    }

    private static void addMatrix(List<Object> out, DeviceMatrix m) {
        switch (m) {
            case DeviceMatrix.F32 f -> out.add(f.data());
            case DeviceMatrix.F16 f -> out.add(f.data());
            case DeviceMatrix.Q8 q8 -> {
                out.add(q8.values());
                out.add(q8.scales());
            }
            case DeviceMatrix.KQuant k -> out.add(k.blocks());
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
            case DeviceMatrix.F32 e -> add("embed", id -> new TaskPackage(id, TransformerKernels::embedF32, ctx, state, e.data(), x, dim));
            case DeviceMatrix.Q8 e -> add("embed", id -> new TaskPackage(id, TransformerKernels::embedQ8, ctx, state, e.values(), e.scales(), x,
                    dim, e.groupSize()));
            case DeviceMatrix.F16 e -> add("embed", id -> new TaskPackage(id, GgmlKernels::embedF16, ctx, state, e.data(), x, dim));
            case DeviceMatrix.KQuant e when e.firstType() == 0 ->
                    add("embed", id -> new TaskPackage(id, KQuantKernels::embedQ4_K, ctx, state, e.blocks(), x, dim));
            case DeviceMatrix.KQuant e -> add("embed", id -> new TaskPackage(id, KQuantKernels::embedQ6_K, ctx, state, e.blocks(), x, dim));
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
        add("qkv", id -> new TaskPackage(id, TransformerKernels::qkvF32, ctx, x, w.rmsAtt, ((DeviceMatrix.F32) w.wqkv).data(), q, keyCache[l],
                valueCache[l], state, rope, dim, kvDim, c.headSize(), rowsPerGroup));
        scheduleRows("qkv", (dim + 2 * kvDim) / 2);
        addAttention("attention", l);
        FloatArray wo = ((DeviceMatrix.F32) w.wo).data();
        if (splits > 1) {
            add("wo", id -> new TaskPackage(id, TransformerKernels::matmulResidualSplitF32, ctx, partials, state, wo, x, dim, dim,
                    rowsPerGroup, c.headSize(), splits, s.attentionChunk()));
        } else {
            add("wo", id -> new TaskPackage(id, TransformerKernels::matmulResidualF32, ctx, xb, wo, x, dim, dim, rowsPerGroup));
        }
        scheduleRows("wo", dim);
        add("w13", id -> new TaskPackage(id, TransformerKernels::w13F32, ctx, x, w.rmsFfn, ((DeviceMatrix.F32) w.w13).data(), hb, dim, hidden,
                rowsPerGroup));
        scheduleRows("w13", hidden);
        add("w2", id -> new TaskPackage(id, TransformerKernels::matmulResidualF32, ctx, hb, ((DeviceMatrix.F32) w.w2).data(), x, hidden, dim,
                rowsPerGroup));
        scheduleRows("w2", dim);
    }

    /**
     * One Q8_0 layer (runq), 5 launches, as float32's: every work-group quantizes the input it reads itself
     * (runq's scale max|v| / 127 and round half away per group, after rmsnorm where the input is normalised;
     * the same values in every work-group), so neither the norm nor the quantization is a launch:
     * <pre>
     *   x, rms_att, wqkv ─► qkv ─► q, keyCache[pos], valueCache[pos]
     *                              (rmsnorm + quantize + int8 Q/K/V dots + RoPE + cache store, fused)
     *   q, keyCache, valueCache ─► attention ─► xb
     *   xb, wo ─► wo ─► x += wo·quantize(xb)                        (quantize + matmul + residual, fused)
     *   x, rms_ffn, w13 ─► w13 ─► hb = silu(w1·xq) * (w3·xq)         (rmsnorm + quantize + 2 matmuls + SwiGLU)
     *   hb, w2 ─► w2 ─► x += w2·quantize(hb)
     * </pre>
     */
    private void addLayerQ8(int l) {
        Layer w = layers[l];
        int dim = c.dim(), kvDim = c.kvDim(), hidden = c.hiddenDim(), gs = c.groupSize();
        DeviceMatrix.Q8 qkv = (DeviceMatrix.Q8) w.wqkv;
        add("qkv", id -> new TaskPackage(id, TransformerKernels::qkvNormQ8, ctx, x, w.rmsAtt, qkv.values(), qkv.scales(), q, keyCache[l],
                valueCache[l], state, rope, dim, kvDim, c.headSize(), gs, s.normPartials(), q8RowsPerGroup));
        scheduleRows("qkv", (dim + 2 * kvDim) / 2, q8RowsPerGroup);
        addAttention("attention", l);
        DeviceMatrix.Q8 wo = (DeviceMatrix.Q8) w.wo;
        if (splits > 1) {
            add("wo", id -> new TaskPackage(id, TransformerKernels::matmulResidualSplitQ8, ctx, partials, state, wo.values(), wo.scales(), x,
                    dim, gs, dim, q8RowsPerGroup, c.headSize(), splits, s.attentionChunk()));
        } else {
            add("wo", id -> new TaskPackage(id, TransformerKernels::matmulResidualQuantQ8, ctx, xb, wo.values(), wo.scales(), x, dim, gs,
                    dim, q8RowsPerGroup));
        }
        scheduleRows("wo", dim, q8RowsPerGroup);
        DeviceMatrix.Q8 w13 = (DeviceMatrix.Q8) w.w13;
        add("w13", id -> new TaskPackage(id, TransformerKernels::w13NormQ8, ctx, x, w.rmsFfn, w13.values(), w13.scales(), hb, dim, hidden, gs,
                s.normPartials(), q8RowsPerGroup));
        scheduleRows("w13", hidden, q8RowsPerGroup);
        DeviceMatrix.Q8 w2 = (DeviceMatrix.Q8) w.w2;
        add("w2", id -> new TaskPackage(id, TransformerKernels::matmulResidualQuantQ8, ctx, hb, w2.values(), w2.scales(), x, hidden, gs, dim,
                q8RowsPerGroup));
        scheduleRows("w2", dim, q8RowsPerGroup);
    }

    /**
     * Output: final rmsnorm and the classifier; only {@code logits} goes back to the host.
     * <pre>
     *   f32:  x, rms_final, wcls ─► classifier ─► logits             (rmsnorm fused)
     *   q8:   x, rms_final, wcls ─► classifier ─► logits             (rmsnorm + quantize fused)
     *   GGUF: x, rms_final, wcls ─► classifier_T ─► logits           (rmsnorm + the input in the form T reads, fused)
     * </pre>
     */
    private void addOutput() {
        int dim = c.dim();
        if (ggml) {
            addProduct("classifier", classifier, x, rmsFinal, dim, GgmlKernels.FROM_NORM, logits, 0, false);
            return;
        }
        switch (classifier) {
            case DeviceMatrix.F32 cls -> add("classifier", id -> new TaskPackage(id, TransformerKernels::matmulNormF32, ctx, x, rmsFinal,
                    cls.data(), logits, dim, c.vocabSize(), rowsPerGroup));
            case DeviceMatrix.Q8 cls -> add("classifier", id -> new TaskPackage(id, TransformerKernels::matmulNormQ8, ctx, x, rmsFinal,
                    cls.values(), cls.scales(), logits, dim, c.groupSize(), s.normPartials(), c.vocabSize(), q8RowsPerGroup));
            case DeviceMatrix.F16 cls -> throw new IllegalStateException("F16 classifier in a llama2.c checkpoint");
            case DeviceMatrix.KQuant cls -> throw new IllegalStateException("K-quant classifier in a llama2.c checkpoint");
        }
        scheduleRows("classifier", c.vocabSize(), rows(classifier));
    }

    /**
     * One GGUF layer (llama.cpp's arithmetic, {@link GgmlKernels}), 5 launches when wq/wk/wv share a type and
     * w1/w3 do (one more per product that cannot be stacked). Each product's work-groups derive the input in the
     * form its weight type T reads (float32, F16-rounded, Q8_0 blocks, or Q8_K blocks for Q4_K/Q6_K) from the source themselves, after
     * rmsnorm where the input is normalised. A task id carries its weight type ({@code qkv_q8}), so layers of
     * different types never share a compiled kernel:
     * <pre>
     *   x, rms_att, wqkv, bias, norms, rope ─► qkv_T ─► q, keyCache[pos], valueCache[pos]  (qkv: scratch)
     *          (rmsnorm + the Q/K/V products, one work-group per head + bias + head RMSNorm + RoPE + cache store)
     *   q, keyCache, valueCache ─► attention ─► xb                       (q_dim)
     *   xb, wo ─► wo_T ─► x += wo·xb                                     (matmul + residual)
     *   x, rms_ffn, w13 ─► w13_T ─► hb = silu(w1·xn) * (w3·xn)           (rmsnorm + 2 products + SwiGLU)
     *   hb, w2 ─► w2_T ─► x += w2·hb                                     (matmul + residual)
     * </pre>
     * Where w1 and w3 differ in type: {@code w1_T}, {@code w3_T} write hb = [w1·xn; w3·xn] (2 hidden), and
     * {@code w2_T} computes SwiGLU from the two as it reads them; where wq, wk, wv differ: {@code q_T},
     * {@code k_T}, {@code v_T}, each for its own heads.
     */
    private void addLayerGgml(int l) {
        GgmlLayer w = ggmlLayers[l];
        int dim = c.dim(), hidden = c.hiddenDim(), qDim = c.qDim(), headSize = c.headSize();
        int flags = (w.hasBias() ? GgmlKernels.HAS_BIAS : 0) | (w.hasNorm() ? GgmlKernels.HAS_NORM : 0)
                | (c.ropeStyle() == RopeStyle.NEOX ? GgmlKernels.NEOX : 0);
        for (Product p : w.qkv()) {
            addQkv(p.name(), p.m(), l, w.rmsAtt(), p.outOff() / headSize, w.bias(), w.norms(), flags);
        }
        addAttention("attention", l);
        addProduct("wo", w.wo(), xb, w.rmsAtt(), qDim, GgmlKernels.FROM_INPUT, x, 0, true);  // (the norm weight is not read)
        if (w.w13().size() == 1) {
            addW13(w.w13().getFirst().m(), w.rmsFfn());
            addProduct("w2", w.w2(), hb, w.rmsFfn(), hidden, GgmlKernels.FROM_INPUT, x, 0, true);
        } else {
            for (Product p : w.w13()) {
                addProduct(p.name(), p.m(), x, w.rmsFfn(), dim, GgmlKernels.FROM_NORM, hb, p.outOff(), false);
            }
            addProduct("w2", w.w2(), hb, w.rmsFfn(), hidden, GgmlKernels.FROM_SWIGLU, x, 0, true);
        }
    }

    /**
     * The q/k/v heads {@code firstHead ..} of layer l from product m ({@link GgmlKernels#qkvF32} and its
     * F16/Q8_0 twins, {@link KQuantKernels#qkvKQuant}): one work-group per head, its rows {@link #rowsPerGroup} at a time.
     */
    private void addQkv(String kind, DeviceMatrix m, int l, FloatArray rmsAtt, int firstHead, FloatArray bias,
                        FloatArray norms, int headFlags) {
        String name = weigh(kind + "_" + DeviceMatrix.kind(m), m);
        int dim = c.dim(), nH = c.nHeads(), nKv = c.nKvHeads(), hs = c.headSize();
        int flags = headFlags | rows(m) << GgmlKernels.ROWS_SHIFT;
        float eps = c.rmsEps();
        switch (m) {
            case DeviceMatrix.F32 f -> add(name, id -> new TaskPackage(id, GgmlKernels::qkvF32, ctx, x, rmsAtt, dim, eps, f.data(), firstHead,
                    qkv, bias, norms, flags, q, keyCache[l], valueCache[l], state, rope, nH, nKv, hs));
            case DeviceMatrix.F16 f -> add(name, id -> new TaskPackage(id, GgmlKernels::qkvF16, ctx, x, rmsAtt, dim, eps, f.data(), firstHead,
                    qkv, bias, norms, flags, q, keyCache[l], valueCache[l], state, rope, nH, nKv, hs));
            case DeviceMatrix.Q8 q8 -> add(name, id -> new TaskPackage(id, GgmlKernels::qkvQ8_0, ctx, x, rmsAtt, dim, eps, q8.values(),
                    q8.scales(), firstHead, qkv, bias, norms, flags, q, keyCache[l], valueCache[l], state, rope, nH, nKv, hs));
            case DeviceMatrix.KQuant k -> {
                // the types of the q, k and v rows (a Q4_K_M layer's wv may be Q6_K): all one type for a single product
                int types = k.parts() == 3 ? k.types() : 7 * k.firstType();
                add(name, id -> new TaskPackage(id, KQuantKernels::qkvKQuant, ctx, x, rmsAtt, dim, eps, k.blocks(), firstHead, qkv, bias, norms,
                        flags | types << KQuantKernels.TYPES_SHIFT, q, keyCache[l], valueCache[l], state, rope, nH, nKv, hs));
            }
        }
        schedule(name, m.rows() / hs * s.matmulLocal(), s.matmulLocal());
    }

    /** w1 and w3 stacked in m: hb = silu(w1·xn) * (w3·xn) ({@link GgmlKernels#w13F32} and its twins). */
    private void addW13(DeviceMatrix m, FloatArray rmsFfn) {
        String name = weigh("w13_" + DeviceMatrix.kind(m), m);
        int dim = c.dim(), hidden = c.hiddenDim();
        float eps = c.rmsEps();
        switch (m) {
            case DeviceMatrix.F32 f -> add(name, id -> new TaskPackage(id, GgmlKernels::w13F32, ctx, x, rmsFfn, dim, eps, f.data(), hb, hidden,
                    rowsPerGroup));
            case DeviceMatrix.F16 f -> add(name, id -> new TaskPackage(id, GgmlKernels::w13F16, ctx, x, rmsFfn, dim, eps, f.data(), hb, hidden,
                    rowsPerGroup));
            case DeviceMatrix.Q8 q8 -> add(name, id -> new TaskPackage(id, GgmlKernels::w13Q8_0, ctx, x, rmsFfn, dim, eps, q8.values(),
                    q8.scales(), hb, hidden, q8RowsPerGroup));
            case DeviceMatrix.KQuant k -> add(name, id -> new TaskPackage(id, KQuantKernels::w13KQuant, ctx, x, rmsFfn, dim, eps, k.blocks(), k.types(),
                    hb, hidden, rowsPerGroup));
        }
        scheduleRows(name, hidden, rows(m));
    }

    /**
     * out[outOff + r] (+= when {@code residual}) m[r] · the n values of {@code source} read from {@code in}
     * ({@code weight}: the norm weight, read only by FROM_NORM), in the kernel of m's type
     * ({@link GgmlKernels#productF32} and its twins).
     */
    private void addProduct(String kind, DeviceMatrix m, FloatArray in, FloatArray weight, int n, int source, FloatArray out,
                            int outOff, boolean residual) {
        String name = weigh(kind + "_" + DeviceMatrix.kind(m), m);
        int add = residual ? 1 : 0;
        int rows = m.rows();
        float eps = c.rmsEps();
        switch (m) {
            case DeviceMatrix.F32 f -> add(name, id -> new TaskPackage(id, GgmlKernels::productF32, ctx, in, weight, n, source, eps, f.data(), out,
                    outOff, add, rows, rowsPerGroup));
            case DeviceMatrix.F16 f -> add(name, id -> new TaskPackage(id, GgmlKernels::productF16, ctx, in, weight, n, source, eps, f.data(), out,
                    outOff, add, rows, rowsPerGroup));
            case DeviceMatrix.Q8 q8 -> add(name, id -> new TaskPackage(id, GgmlKernels::productQ8_0, ctx, in, weight, n, source, eps, q8.values(),
                    q8.scales(), out, outOff, add, rows, q8RowsPerGroup));
            case DeviceMatrix.KQuant k -> add(name, id -> new TaskPackage(id, KQuantKernels::productKQuant, ctx, in, weight, n, source, eps, k.blocks(),
                    k.firstType(), out, outOff, add, rows, rowsPerGroup));
        }
        scheduleRows(name, rows, rows(m));
    }

    /**
     * The one-token attention of layer l: one work-group per head ({@link TransformerKernels#attention}, into xb), or
     * with {@link #splits} > 1 heads × splits work-groups ({@link TransformerKernels#attentionSplit}, into the
     * partials that wo combines). The grid is fixed for the graph: TornadoVM takes a task's grid per execution
     * plan, and a grid that changed per token would also change what a captured launch (CUDA graphs) replays, so a
     * token whose position needs fewer chunks leaves the rest empty (a work-group that reads the position, writes
     * its empty partial and ends).
     */
    private void addAttention(String name, int l) {
        if (splits > 1) {
            add(name, id -> new TaskPackage(id, TransformerKernels::attentionSplit, ctx, q, keyCache[l], valueCache[l], att, partials, state,
                    c.seqLen(), c.headSize(), c.kvDim(), c.kvMul(), (float) Math.sqrt(c.headSize()), splits, s.attentionChunk()));
            schedule(name, c.nHeads() * splits * s.attentionLocal(), s.attentionLocal());
            return;
        }
        add(name, id -> new TaskPackage(id, TransformerKernels::attention, ctx, q, keyCache[l], valueCache[l], att, xb, state, c.seqLen(),
                c.headSize(), c.kvDim(), c.kvMul(), (float) Math.sqrt(c.headSize())));
        schedule(name, c.nHeads() * s.attentionLocal(), s.attentionLocal());
    }

    /**
     * The grid of a task computing {@code rows} rows with {@link #rowsPerGroup} rows per work-group of
     * {@code matmul.local} work-items (see {@link KernelHelpers#slice}): ⌈rows / R⌉ work-groups.
     */
    private void scheduleRows(String task, int rows) {
        scheduleRows(task, rows, rowsPerGroup);
    }

    /** {@link #scheduleRows(String, int)} at {@code perGroup} rows per work-group. */
    private void scheduleRows(String task, int rows, int perGroup) {
        schedule(task, groupsFor(rows, perGroup) * s.matmulLocal(), s.matmulLocal());
    }

    /** Rows per work-group of the kernel over m: {@link TornadoSettings#q8Rows} for Q8_0 weights, else matmul.rows. */
    private int rows(DeviceMatrix m) {
        return m instanceof DeviceMatrix.Q8 ? q8RowsPerGroup : rowsPerGroup;
    }

    /** Work-groups for {@code rows} rows at {@code rowsPerGroup} rows each (the last one may be partly idle). */
    static int groupsFor(int rows, int rowsPerGroup) {
        return (rows + rowsPerGroup - 1) / rowsPerGroup;
    }

    private static int roundUp(int n, int multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }

    /**
     * Rejects weights of types the kernels lack ({@link TensorTypes}) and, for llama2.c checkpoints, mixed
     * types (a checkpoint is all float32 or all Q8_0; a GGUF model's products each use their own type's kernel).
     */
    static void checkUniform(Configuration c, Weights w) {
        if (isGgml(c)) {
            TensorTypes.requireSupportedGguf(c, w);
            return;
        }
        TensorTypes.requireSupported(c, w);
        if (c.quantized() && c.groupSize() % 4 != 0) {
            throw new Llama2jException("Q8_0 group size " + c.groupSize() + ": the TornadoVM engine reads int8 weights four at a time "
                    + "and needs a group size that is a multiple of 4", Llama2jException.UNAVAILABLE);
        }
        if (c.quantized() && c.groupSize() > 4 * KernelHelpers.Q8_CHUNK_INTS) {
            throw new Llama2jException("Q8_0 group size " + c.groupSize() + ": the TornadoVM engine quantizes a group's input in "
                    + "local memory and takes groups of at most " + 4 * KernelHelpers.Q8_CHUNK_INTS + " values", Llama2jException.UNAVAILABLE);
        }
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
