package io.github.llama2j.cpu;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.engine.WeightCopies;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;
import io.github.llama2j.profile.Profiler;

import java.lang.foreign.MemorySegment;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The CPU engine: llama2.c's forward pass over memory-mapped weights, all in {@link #forward}.
 * Float32 checkpoints follow run.c, Q8_0 checkpoints follow runq.c (activations re-quantized per
 * group before every matmul); GGUF models add their architecture's optional steps (biases, q/k norms,
 * llama.cpp's RoPE and rmsnorm) and follow llama.cpp's activation conversions ({@link Activations}).
 *
 * <p>Where the time goes: the matmuls stream every weight once per token, so they are split by rows
 * across a persistent {@link Parallel} pool, and matmuls that read the same input share one
 * dispatch (Q, K and V; W1 and W3, with SwiGLU applied by the same thread to the rows it computed).
 * Attention runs heads in parallel. Those kernels live in {@link CpuLayer}, which the hybrid engine's
 * CPU shard runs on its slice of the rows: one CPU path. Profiling stays beside the steps ({@link StepTimer}). The {@link Kernels} decide the matmul's summation order
 * ({@link VectorKernels}: fast; {@link ExactVectorKernels}: run.c's order). Everything else
 * (rmsnorm, RoPE, softmax, attention, SwiGLU, quantization) is bit-identical to the
 * {@link ScalarKernels} reference in both modes, which is what lets Q8 models and exact mode match
 * llama2.c bit for bit.
 */
public final class CpuEngine implements InferenceEngine {
    /** Speed (bytes of weights per nanosecond, i.e. GB/s) at which {@link #warmUpKernels} deems a kernel compiled. */
    private static final double WARM_UP_BYTES_PER_NANO = 2.0;
    /** The same for the batched kernel, in multiply-adds per nanosecond (compiled: 10 and more per core). */
    private static final double WARM_UP_MACS_PER_NANO = 1.0;
    private static final long WARM_UP_MAX_NANOS = 3_000_000_000L;
    /**
     * {@link #warmUpKernels}' limit for all kinds of product together: the one-token and batched kernel of one kind at
     * their limits, what the warm-up of a single kind could take before it covered every kind.
     */
    private static final long WARM_UP_KERNELS_MAX_NANOS = 2 * WARM_UP_MAX_NANOS;
    /** {@link #warmUpBatchedAttention}'s limit: C2's compilation of it was waited for 0.01-0.67 s (2026-12-03). */
    private static final long WARM_UP_ATTENTION_MAX_NANOS = 1_000_000_000L;
    /** {@link #warmUpOncePerToken}'s limit per step. */
    private static final long WARM_UP_ONCE_MAX_NANOS = 500_000_000L;
    /** {@link #warmUpForward}: the scratch engine's positions, its prompt (token ids), and when it stops. */
    private static final int WARM_UP_POSITIONS = 128;
    private static final int[] WARM_UP_PROMPT = {1, 400, 2300, 7, 911};
    /**
     * Where the scratch engine's one-token passes start, and its prompts: past four of attention's blocks of timesteps
     * (its four-block loop, 48 positions at 512 bits). With passes from position 0 and a 5-token prompt, C2 compiled
     * attention while the passes were still below that (a loop never entered is compiled as a trap): the first long
     * prompt or context then deoptimized it, and it ran interpreted, its vectors boxed, until C2 compiled it again
     * (JFR: Attention.head deoptimized at its four-block loop in every bench run of 2026-12-03, after the warm-up).
     */
    static final int WARM_UP_START_POSITION = 70;
    /**
     * The scratch engine's prompts: three of batched attention's groups of four queries and two more tokens (its two
     * paths). A 70-token prompt run first, its code still C1's with the vectors boxed, took 1.5-4 s of the warm-up's 3
     * (loaded; 0-26 one-token passes were left at 110M, 0 for a 1B model), so C2 compiled the one-token path's methods
     * during the first tokens of a run.
     */
    static final int WARM_UP_PROMPT_TOKENS = 3 * Attention.QUERIES + 2;
    private static final int WARM_UP_QUIET_PASSES = 4;
    /** Batched prompts after the one-token passes, at most (see {@link #throwawayPasses}). */
    private static final int WARM_UP_PROMPT_PASSES = 6;
    /**
     * Single-token passes that always run (within {@link #WARM_UP_MAX_NANOS}) before the quiet rule may stop them.
     * The forward pass's small steps (rmsnorm, residual add, RoPE, the key/value store, the pool's forRange and
     * block loop, the per-layer lambdas, argmax) are called a few dozen times per pass: HotSpot queues them for C2
     * only after about 5,000 calls (Tier4InvocationThreshold), so after 64 passes the JIT looked quiet while they
     * still ran C1 code, and C2 compiled them during the first ~100 tokens of a run, on a core the worker pool
     * needed: about ten C2 compilations of these methods and 0.6-0.8 s of compiler time (loaded) in a 256-token
     * run's generation, against two and 0.15-0.3 s in the same process's second generation, what bench measures
     * after its warm-up run (docs/measurements/2026-12-02-run-vs-bench.md). 192 = the 64 passes plus the 128 of
     * bench's unmeasured tg128 run.
     */
    static final int WARM_UP_MIN_PASSES = 192;
    private static final int WARM_UP_MAX_PASSES = 256;
    /**
     * When {@link #throwawayPasses} judges whether its one-token passes can do their job: from this long on, passes
     * that would not reach {@link #WARM_UP_ENOUGH_PASSES} within {@link #WARM_UP_MAX_NANOS}, the rest of the
     * time going at the fastest pass's speed so far, stop, and the prompts after them are skipped
     * ({@link #passesTooSlow}). A large model's passes are as slow as its tokens: Llama-3.2-1B Q4_K_M (2 threads, 512
     * bits) ran 7-43 passes in the 3 s, then a 14-token prompt in 1.0-2.1 s, for nothing: with the passes stopped its
     * first token came 9.3-9.7 s after the JVM started instead of 11.9-12.8 s, the 256-token run took 17.1-17.4 s
     * instead of 20.0-20.9, its tokens as fast. A small model needs them: stories110M f32 ran 145-192 passes and 79-84
     * tok/s after the first token, 59-66 without the passes. The first passes run interpreted (stories110M's first
     * 13-14 took about 1 s, 5-7 at 256 bits; a 1B model's first 1.1-1.5 s), so judged at 1 s the average rate, the
     * last pass's and even the fastest pass's (at 256 bits) stopped stories110M in some runs; at 2 s the fastest
     * pass's let all of them go on and stopped every 1B run (docs/measurements/2026-12-05-warm-up-probe.md).
     */
    static final long WARM_UP_PROBE_NANOS = 2_000_000_000L;
    /**
     * Fewer one-token passes than this within {@link #WARM_UP_MAX_NANOS} cannot do the passes' job
     * ({@link #WARM_UP_PROBE_NANOS}): a third of {@link #WARM_UP_MIN_PASSES}.
     */
    static final int WARM_UP_ENOUGH_PASSES = WARM_UP_MIN_PASSES / 3;
    /** Kernel and weight-segment classes already warmed up in this JVM. */
    private static final Set<String> WARMED_UP = ConcurrentHashMap.newKeySet();

    private final Configuration c;
    private final Weights w;
    private final Kernels kernels;
    private final Parallel parallel;
    private final boolean ownsParallel;
    private final String name;
    private final Rope rope;
    private final FloatMath math;
    private final float[] ropeCos, ropeSin;         // (head_size/2): the rotations at the current position
    private final Attention attention;
    private final CpuLayer ops;
    /** The load-time copies of the weight matrices ({@link PreparedWeights}) and the forms the products read. */
    private final PreparedWeights prepared;
    private final PreparedWeights.Forms forms;
    /** Whether this engine frees the load-time copies on close (a warm-up's scratch engine shares them). */
    private final boolean ownsPrepared;
    /** GGUF models: llama.cpp's arithmetic outside the matmuls ({@link GgmlOps}); llama2.c checkpoints: run.c's. */
    private final boolean ggml;

    // Profiling (off unless setProfiler is called): task names are made once, not per token.
    private static final String[] LAYER_TASKS = {"attn_norm", "qkv", "rope", "attention", "wo", "ffn_norm", "w1w3_swiglu", "w2"};
    private final String[][] taskNames;
    private final StepTimer timer = new StepTimer();

    // Run state, as run.c's RunState.
    private final float[] x, xb2;                   // (dim)
    private final float[] xb;                       // (max(dim, q_dim)): the normed input, then the attention output
    private final float[] q;                        // (q_dim = n_heads * head_size)
    private final float[] k, v;                     // (kv_dim)
    private final float[] hb, hb2;                  // (hidden_dim)
    private final float[] att;                      // (n_heads, seq_len rounded up to Attention's blocks)
    private final float[] logits;                   // (vocab_size)
    private final Activations in;                   // the current matmul input and its converted forms (runq's Q8, GGML's)

    /** An engine that warms up before it returns (see {@link #CpuEngine(Model, Kernels, FloatMath, int, boolean, WeightCopies)}). */
    public CpuEngine(Model model, Kernels kernels, FloatMath math, int threads) {
        this(model, kernels, math, threads, true, WeightCopies.AUTO);
    }

    /**
     * @param warmUp get the JIT to compile the forward pass before this returns ({@link #warmUpKernels} and
     *               {@link #warmUpForward}: throwaway passes on a scratch run state, never on this engine's), so that the
     *               first tokens run at full speed; false leaves that to the first tokens
     */
    public CpuEngine(Model model, Kernels kernels, FloatMath math, int threads, boolean warmUp) {
        this(model, kernels, math, threads, warmUp, WeightCopies.AUTO);
    }

    /**
     * @param warmUp as {@link #CpuEngine(Model, Kernels, FloatMath, int, boolean)}
     * @param copies the load-time copies of weight matrices to make ({@link PreparedWeights}; none with kernels that
     *               read none, the scalar references)
     */
    public CpuEngine(Model model, Kernels kernels, FloatMath math, int threads, boolean warmUp, WeightCopies copies) {
        this(model, kernels, math, checkedParallel(model, threads), true, model.config().seqLen(), warmUp,
                new PreparedWeights(kernels.readsCopies() ? copies : WeightCopies.OFF), true);
    }

    private static Parallel checkedParallel(Model model, int threads) {
        checkRunState(model); // before any thread or array is made
        return new Parallel(threads);
    }

    /**
     * @param math the float functions (exp, sin, cos, pow): the C library's (what llama2.c calls) or Java's
     */
    public CpuEngine(Model model, Kernels kernels, FloatMath math, Parallel parallel, boolean ownsParallel) {
        this(model, kernels, math, parallel, ownsParallel, model.config().seqLen(), true,
                new PreparedWeights(kernels.readsCopies() ? WeightCopies.AUTO : WeightCopies.OFF), true);
    }

    /**
     * @param positions the key/value cache's length: seq_len, or fewer for {@link #warmUpForward}'s scratch engine
     *                  (which feeds no position past it)
     * @param prepared     the load-time copies: made here ({@link PreparedWeights#prepare}) if this engine owns them
     * @param ownsPrepared whether this engine makes the copies and frees them when closed (false for the scratch
     *                     engine, which shares this one's)
     */
    private CpuEngine(Model model, Kernels kernels, FloatMath math, Parallel parallel, boolean ownsParallel, int positions,
                      boolean warmUp, PreparedWeights prepared, boolean ownsPrepared) {
        checkRunState(model);
        this.c = model.config();
        this.w = model.weights();
        this.kernels = kernels;
        this.prepared = prepared;
        if (ownsPrepared) {
            prepared.prepare(w, parallel); // load-time copies (Q2_K to Q6_K, Q8_0, runq Q8, Q4_0, Q5_1; float32, F16, BF16, IQ4 and at 512 bits Q3_K as they are), as the option and memory allow
        }
        this.forms = prepared.resolve(w); // each product reads its matrix's form: no lookup per product
        this.math = math;
        this.parallel = parallel;
        this.ownsParallel = ownsParallel;
        this.name = "cpu-" + kernels.name() + "-" + parallel.threads() + "t";
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim(), qDim = c.qDim();
        ggml = c.ropeStyle() != RopeStyle.LLAMA2C;
        x = new float[dim];
        xb = new float[Math.max(dim, qDim)];
        xb2 = new float[dim];
        hb = new float[hidden];
        hb2 = new float[hidden];
        q = new float[qDim];
        k = new float[kvDim];
        v = new float[kvDim];
        attention = new Attention(c.nLayers(), positions, c.headSize(), c.nKvHeads(), c.kvMul(), math);
        this.ownsPrepared = ownsPrepared;
        ops = new CpuLayer(kernels, parallel, math, timer);
        taskNames = new String[c.nLayers()][LAYER_TASKS.length];
        for (int l = 0; l < c.nLayers(); l++) {
            for (int t = 0; t < LAYER_TASKS.length; t++) {
                taskNames[l][t] = "layer" + l + "." + LAYER_TASKS[t];
            }
        }
        att = new float[c.nHeads() * attention.scoreStride()];
        logits = new float[c.vocabSize()];
        in = new Activations(Math.max(Math.max(dim, qDim), hidden));
        in.reserveFor(w.wq()[0]);
        rope = Rope.of(c, w.ropeFreqs(), math);
        ropeCos = new float[rope.pairs()];
        ropeSin = new float[rope.pairs()];
        if (warmUp) {
            long t0 = System.nanoTime();
            warmedKinds = warmUpKernels();
            warmUpOncePerToken();
            long t1 = System.nanoTime();
            warmUpForward(model);
            warmUpReport = String.format(java.util.Locale.ROOT, "warm-up: kernels %.2f s (%s), forward %.2f s (%s)",
                    (t1 - t0) / 1e9, warmedKinds, (System.nanoTime() - t1) / 1e9,
                    warmUpPasses == null ? "done earlier in this JVM" : warmUpPasses);
        } else {
            warmUpReport = "warm-up: off";
        }
    }

    /** For {@code --verbose}: how long the warm-up took, in two parts, and the forward passes it ran. */
    public String warmUpSummary() {
        return warmUpReport;
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
                    att + c.vocabSize() + 4L * c.dim() + 2L * Math.max(c.dim(), c.qDim()) + 4L * c.hiddenDim() + 2L * c.kvDim());
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
     * Gets the matmul kernels compiled before the first token. Until C2 compiles a kernel, Vector API code runs
     * boxed, a hundred times slower or more, and the first forward pass took seconds. Every kind of product the forward
     * pass runs (weight type, form, class of memory segment: {@link #productKinds}) is warmed up, each at every input
     * length it is used with, by calls on 16 rows of the first matrix of that kind and length. They stop once 100 calls
     * have run at compiled speed (above {@link #WARM_UP_BYTES_PER_NANO}, the rows being in cache, or 50 times faster
     * than the first calls), or after {@link #WARM_UP_MAX_NANOS}, all kinds within {@link #WARM_UP_KERNELS_MAX_NANOS}
     * (kinds past it are left to the forward warm-up); and only once per JVM for a given kind. A file of
     * one weight type has one or two kinds (a classifier that is the embedding's matrix, read in the file's layout, is a
     * kind of its own); a Q4_K_M file two to four. With only the first query matrix's kind warmed up, Qwen2.5-0.5B-shaped Q4_K_M (Q5_0
     * widened to Q8_0, Q4_K and Q6_K in the down matrices; 512 bits, 2 threads, 2026-12-06) ran its first throwaway
     * pass in 2.2-2.8 s, which stopped the forward warm-up, and 256-token runs at 39-43 tok/s against bench's 49.7;
     * with every kind, 46-50 tok/s, and a 156-token prompt's first token 1.2-1.7 s after the warm-up instead of
     * 3.7-4.2 (the warm-up itself 1.4-3.6 s longer; docs/measurements/2026-12-06-warm-up-every-kind.md). The model's own weights are used on
     * purpose: C2 specializes the code to the class of memory segment it has seen (a mapped file here), and warming up
     * on other segments would leave slower, polymorphic code.
     */
    private String warmUpKernels() {
        long deadline = System.nanoTime() + WARM_UP_KERNELS_MAX_NANOS;
        List<ProductKind> kinds = productKinds();
        int warmed = 0, skipped = 0;
        for (ProductKind kind : kinds) {
            if (WARMED_UP.contains(kind.key())) {
                continue;
            }
            if (System.nanoTime() >= deadline) {
                skipped++; // left to the forward warm-up and the first tokens (and a later engine's warm-up)
                continue;
            }
            warmUpKernel(kind, deadline);
            warmed++;
        }
        return kinds.size() + " kinds of product, " + warmed + " warmed up now"
                + (skipped > 0 ? ", " + skipped + " skipped: out of time" : "");
    }

    /** {@link #warmUpSummary}'s count of the kinds of product and how many {@link #warmUpKernels} warmed up. */
    private String warmedKinds;

    /**
     * A kind of product ({@link #productKinds}): its key (kernel class, weight type, segment class, form), the forms of
     * the first matrix of that kind at each input length (columns) it has, and whether the layers have it (the
     * prompt's batches run the layers' products; only the classifier's kind is one-token only).
     */
    record ProductKind(String key, List<MatrixForm> shapes, boolean inLayers) {
        ProductKind {
            shapes = List.copyOf(shapes);
        }
    }

    /** The forward pass's kinds of product, in the order it first runs them. */
    List<ProductKind> productKinds() {
        java.util.Map<String, List<MatrixForm>> shapes = new java.util.LinkedHashMap<>();
        java.util.Set<String> inLayers = new java.util.HashSet<>();
        for (int l = 0; l < c.nLayers(); l++) {
            for (MatrixForm f : new MatrixForm[] {forms.wq()[l], forms.wk()[l], forms.wv()[l], forms.wo()[l],
                    forms.w1()[l], forms.w3()[l], forms.w2()[l]}) {
                inLayers.add(addKind(shapes, f));
            }
        }
        addKind(shapes, forms.classifier());
        List<ProductKind> kinds = new java.util.ArrayList<>();
        shapes.forEach((key, forms) -> kinds.add(new ProductKind(key, forms, inLayers.contains(key))));
        return kinds;
    }

    /** Adds f's shape to its kind's unless one of as many columns is there; returns the kind's key. */
    private String addKind(java.util.Map<String, List<MatrixForm>> kinds, MatrixForm f) {
        Matrix m = f.source();
        Matrix read = f instanceof MatrixForm.Copy copy ? copy.copy() : m;
        String key = kernels.getClass().getName() + " " + m.typeName() + " " + segmentClass(read) + " " + f.getClass().getSimpleName();
        List<MatrixForm> shapes = kinds.computeIfAbsent(key, k -> new java.util.ArrayList<>());
        if (shapes.stream().noneMatch(s -> s.source().cols() == m.cols())) {
            shapes.add(f);
        }
        return key;
    }

    /** {@link #warmUpKernels} for one kind of product, at each of its input lengths, until {@code deadline} at the latest. */
    private void warmUpKernel(ProductKind kind, long deadline) {
        String key = kind.key();
        List<MatrixForm> shapeForms = kind.shapes();
        // every input size of the kind (dim: q/k/v, wo, w1/w3, the classifier; hidden: w2), alternately: the kernels'
        // loops over the input run dim or hidden long, and C2 compiled from a profile of one size deoptimized the runq
        // Q8 kernel at the other in the middle of a bench run (JFR, 6 traps, each finishing its call interpreted)
        int n = shapeForms.size();
        Matrix[] shapes = new Matrix[n];
        for (int i = 0; i < n; i++) {
            shapes[i] = shapeForms.get(i).source();
        }
        if (System.nanoTime() < deadline && WARMED_UP.add(key)) {
            Activations[] ins = new Activations[n];
            float[][] outs = new float[n][];
            int[] rows = new int[n];
            double work = 0;
            for (int i = 0; i < n; i++) {
                rows[i] = Math.min(CpuLayer.ROW_GRAIN, shapes[i].rows());
                outs[i] = new float[rows[i]];
                ins[i] = new Activations(shapes[i].cols());
                ins[i].input(new float[shapes[i].cols()], shapes[i].cols());
                ins[i].prepareFor(shapes[i]);
                work += (double) shapes[i].byteSize() * rows[i] / shapes[i].rows();
            }
            untilFast(() -> {
                for (int i = 0; i < n; i++) {
                    ops.kernel(outs[i], ins[i], shapeForms.get(i), 0, rows[i]);
                }
            }, work, WARM_UP_BYTES_PER_NANO, deadline);
        }
        // the batched kernel too (batched prefill), on a full tile of tokens: the first prompt would otherwise run
        // it uncompiled, seconds for a chunk of a 110M model
        // (a full tile of tokens and a short prompt's few: the kernel has a loop for each, and C2, having seen only
        // the first, compiled the second as a trap, so that the first real prompt ran the kernel uncompiled again).
        // The full batch is a whole panel and one vector more (both loops of the kernel), and at least the tokens from
        // which the matrix's type takes the transposed kernel (a short prompt's few take the one-token kernels)
        if (kind.inLayers() && kernels instanceof VectorKernels && BatchMatmul.transposed(shapeForms.get(0))
                && System.nanoTime() < deadline && WARMED_UP.add(key + " batched")) {
            int full = Math.max(BatchMatmul.PANEL, BatchMatmul.transposedFromTokens(shapeForms.get(0))) + BatchMatmul.FL;
            int few = WARM_UP_PROMPT.length;
            BatchActivations[] fullIn = new BatchActivations[n], fewIn = new BatchActivations[n];
            float[][][] outs = new float[n][][];
            int[] rows = new int[n];
            double work = 0;
            for (int i = 0; i < n; i++) {
                rows[i] = Math.min(CpuLayer.ROW_GRAIN, shapes[i].rows());
                fullIn[i] = batchInput(shapeForms.get(i), full);
                fewIn[i] = batchInput(shapeForms.get(i), few);
                outs[i] = new float[full][rows[i]]; // (the rows [0, rows[i]) are all it writes)
                work += (double) rows[i] * shapes[i].cols() * (full + few);
            }
            untilFast(() -> {
                for (int i = 0; i < n; i++) {
                    BatchMatmul.matmul(outs[i], fullIn[i], shapeForms.get(i), 0, rows[i], kernels);
                    BatchMatmul.matmul(outs[i], fewIn[i], shapeForms.get(i), 0, rows[i], kernels);
                }
            }, work, WARM_UP_MACS_PER_NANO, deadline);
        }
    }

    /**
     * Gets the two steps a token runs once, the embedding's row ({@link Matrix#dequantizeRow}) and RoPE's angles
     * ({@link Rope#angles}), compiled: {@link #warmUpForward}'s passes call them once each, a few dozen times in all
     * for a 1B model, fewer than HotSpot counts before C2 compiles a method (about 600 calls of a long loop), so they
     * ran interpreted through a whole bench or run. Llama-3.2-1B Q4_K_M (a Q6_K embedding, RoPE through the C
     * library's cosf and sinf), 512 bits, 2026-12-05: 195-260 µs and 32-40 µs per token (0.8% of it) before, 5-9 and
     * 1 µs compiled; the calls here took about 0.1 s. Each is called until 100 calls have run fast (the embedding at
     * 0.1 values per ns and more, RoPE at 100 ns per pair or less: interpreted they ran 0.01 and 1,000), or for
     * {@link #WARM_UP_ONCE_MAX_NANOS}; once per JVM for a given type and segment class. (A 256-column view of the
     * embedding, cheaper calls, took 80 ms: its C1 code ran until call 4,000.)
     */
    private void warmUpOncePerToken() {
        Matrix emb = w.tokenEmbedding();
        if (WARMED_UP.add("embedding " + emb.typeName() + " " + segmentClass(emb))) {
            float[] row = new float[emb.cols()];
            int[] next = {0};
            double values = emb.cols();
            untilFast(() -> emb.dequantizeRow(next[0]++ % emb.rows(), row, 0), t -> values >= 0.1 * t, WARM_UP_ONCE_MAX_NANOS);
        }
        if (WARMED_UP.add("rope " + rope.style() + " " + math.getClass().getName())) {
            float[] cos = new float[rope.pairs()], sin = new float[rope.pairs()];
            int[] pos = {0};
            long fastNanos = 100L * rope.pairs();
            untilFast(() -> rope.angles(pos[0]++ % c.seqLen(), cos, sin), t -> t <= fastNanos, WARM_UP_ONCE_MAX_NANOS);
        }
    }

    /** The class of memory segment {@code m}'s values are in (C2 specializes the code that reads them to it). */
    private static Class<?> segmentClass(Matrix m) {
        return switch (m) {
            case Matrix.F32 f -> f.data().getClass();
            case Matrix.Q8 q8 -> q8.values().getClass();
            case Matrix.Ggml g -> g.data().getClass();
        };
    }

    /**
     * Gets batched attention ({@link Attention#heads4}) compiled, for {@link #throwawayPasses}: calls it on a scratch
     * cache of one head (the model's head size) and 32 positions, its four queries at positions 0, 4, .., 28 (from no
     * whole pair of key blocks to one or more, as a prompt's first chunk has them), until 100 calls have run at most
     * twice as long as {@link Attention#head}, compiled by the one-token passes, takes for the same 32 queries, or for
     * {@link #WARM_UP_ATTENTION_MAX_NANOS}. Not a rate: at 128 bits and a head size of 8 compiled calls ran 0.26
     * multiply-adds per ns, where 110M's run 5 and more. With 110M's head size (64), 32 calls of head took 6-7 µs at
     * 256 and 512 bits and 62 µs at 128, heads4's eight calls 5-6 and 52 µs compiled and 0.4-1.9 ms before; with a
     * head size of 8 at 128 bits (stories260K), 30 µs against 35-150 µs compiled: too close to tell, hence the limit.
     */
    private void warmUpBatchedAttention() {
        int headSize = c.headSize(), positions = 32, queries = Attention.QUERIES;
        Attention cache = new Attention(1, positions, headSize, 1, 1, math);
        float[] k = new float[headSize], v = new float[headSize];
        for (int pos = 0; pos < positions; pos++) {
            for (int i = 0; i < headSize; i++) {
                k[i] = (float) Math.sin(pos * 0.7 + i);
                v[i] = (float) Math.cos(pos * 0.3 - i);
            }
            cache.store(0, pos, k, v);
        }
        float[][] q = new float[queries][headSize], out = new float[queries][headSize];
        for (float[] row : q) {
            java.util.Arrays.fill(row, 0.25f);
        }
        int stride = cache.scoreStride();
        float[] scores = new float[queries * stride];
        long oneByOne = Long.MAX_VALUE;
        for (int round = 0; round < 5; round++) {
            long t0 = System.nanoTime();
            for (int pos = 0; pos < positions; pos++) {
                cache.head(0, 0, pos, q[0], out[0], scores, 0);
            }
            oneByOne = Math.min(oneByOne, System.nanoTime() - t0);
        }
        long fastNanos = 2 * oneByOne;
        untilFast(() -> {
            for (int pos0 = 0; pos0 < positions; pos0 += queries) {
                cache.heads4(0, 0, pos0, q, 0, out, scores, stride);
            }
        }, t -> t <= fastNanos, WARM_UP_ATTENTION_MAX_NANOS);
    }

    /** {@code tokens} zero activations, prepared for a matrix in form f. */
    private static BatchActivations batchInput(MatrixForm f, int tokens) {
        int cols = f.source().cols();
        BatchActivations bin = new BatchActivations(tokens, cols);
        bin.input(new float[tokens][cols], tokens, cols);
        bin.prepareFor(f, null);
        return bin;
    }

    /**
     * Gets the rest of the forward pass compiled before the first token: attention, RoPE, rmsnorm, SwiGLU, the
     * activations' conversions, the pool's loops and the forward loop itself, which {@link #warmUpKernels} does not
     * reach and which C2 otherwise compiled during the first dozen tokens of a run (a 256-token run then reached only
     * half of {@code bench}'s steady speed; docs/measurements/2026-12-02-warmup-threads.md). A scratch engine (the
     * same weights and worker pool, its own run state and a key/value cache of {@link #WARM_UP_POSITIONS} positions,
     * dropped afterwards) runs one token at a time from {@link #WARM_UP_START_POSITION}, until the JIT has gone quiet
     * (no compilation finished during {@link #WARM_UP_QUIET_PASSES} passes in a row, each within 1.5 times the
     * fastest) after at least {@link #WARM_UP_MIN_PASSES} passes, or {@link #WARM_UP_MAX_PASSES} passes, or
     * {@link #WARM_UP_MAX_NANOS}, or as soon as they prove too slow to do their job ({@link #passesTooSlow}: a large
     * model's); then, unless they proved too slow, short prompts through {@link #forwardBatch} (one always, more until
     * one runs with no compilation finishing, within the same time). This
     * engine's state is never touched: its results are the same with and without warm-up (CpuWarmUpTest). Once per
     * JVM for a given kernel and kind of weights, as {@link #warmUpKernels}.
     */
    private void warmUpForward(Model model) {
        Matrix m = w.wq()[0];
        String key = kernels.getClass().getName() + " " + m.typeName() + " forward";
        if (WARMED_UP.add(key)) {
            throwawayPasses(model);
        }
    }

    /** {@link #warmUpSummary}'s parts. */
    private String warmUpReport;
    private String warmUpPasses;

    /**
     * {@link #warmUpForward}'s passes, on a scratch engine over {@code model} (this engine's).
     *
     * @return the single-token passes run (the prompt's batch not counted)
     */
    int throwawayPasses(Model model) {
        int positions = Math.min(c.seqLen(), WARM_UP_POSITIONS);
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        boolean jitTimed = jit != null && jit.isCompilationTimeMonitoringSupported();
        long deadline = System.nanoTime() + WARM_UP_MAX_NANOS;
        try (CpuEngine scratch = new CpuEngine(model, kernels, math, parallel, false, positions, false, prepared, false)) {
            // the one-token passes first, from a position past attention's four-block loop (the cache's earlier rows
            // are zeros: their values do not matter here)
            int start = Math.min(WARM_UP_START_POSITION, positions / 2);
            int pos = start;
            long t0 = System.nanoTime();
            long fastest = Long.MAX_VALUE, compiled = jitTimed ? jit.getTotalCompilationTime() : 0;
            int pass = 0;
            boolean tooSlow = false;
            for (int quiet = 0; pass < WARM_UP_MAX_PASSES && (pass < WARM_UP_MIN_PASSES || quiet < WARM_UP_QUIET_PASSES)
                    && System.nanoTime() < deadline && !(tooSlow = passesTooSlow(pass, System.nanoTime() - t0, fastest));
                 pass++, pos = (pos + 1) % positions) {
                long t = System.nanoTime();
                scratch.forward((pass * 7919 + 13) % c.vocabSize(), pos);
                t = System.nanoTime() - t;
                fastest = Math.min(fastest, t);
                long nowCompiled = jitTimed ? jit.getTotalCompilationTime() : compiled;
                quiet = nowCompiled == compiled && 2 * t <= 3 * fastest ? quiet + 1 : 0;
                compiled = nowCompiled;
            }
            // then short prompts at that position, once whatever the time, again until one runs with no compilation
            // finishing during it (C2's queue is short now: the prefill's own methods, attention's heads4 first, get
            // compiled here rather than during the first real prompts; the batched kernels' token loops were
            // covered by warmUpKernels)
            long t1 = System.nanoTime();
            int[] prompt = new int[Math.min(WARM_UP_PROMPT_TOKENS, positions - start)];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = (i < WARM_UP_PROMPT.length ? WARM_UP_PROMPT[i] : i * 7919 + 13) % c.vocabSize();
            }
            int prompts = 0;
            for (int quiet = 0; !tooSlow && prompt.length > 1 && prompts < WARM_UP_PROMPT_PASSES && quiet < 1
                    && (prompts == 0 || System.nanoTime() < deadline); prompts++) {
                scratch.forwardBatch(prompt, start);
                long nowCompiled = jitTimed ? jit.getTotalCompilationTime() : compiled;
                quiet = prompts > 0 && nowCompiled == compiled ? quiet + 1 : 0;
                compiled = nowCompiled;
            }
            // then batched attention (every prompt's chunks run it) until C2 has compiled it: the prompts above call it
            // too few times for HotSpot to queue it, and C2 compiled it during the first long prompt, which meanwhile
            // ran it as C1 code, its vectors boxed (pp512 of stories110M, 512 bits: the first prompt's attention
            // 0.42-1.11 s instead of 0.05-0.11 s; calls before the passes, for C2 to compile it during them, cost more,
            // the first ones interpreted, than this wait: docs/measurements/2026-12-03-prefill-attention-swiglu.md)
            long t2 = System.nanoTime();
            if (kernels instanceof VectorKernels && WARMED_UP.add(kernels.getClass().getName() + " batched attention")) {
                warmUpBatchedAttention();
            }
            warmUpPasses = String.format(java.util.Locale.ROOT,
                    "%d one-token passes in %.2f s%s, %d prompts of %d tokens in %.2f s, batched attention %.2f s",
                    pass, (t1 - t0) / 1e9, tooSlow ? " (stopped: too slow to reach " + WARM_UP_ENOUGH_PASSES + " in "
                            + WARM_UP_MAX_NANOS / 1_000_000_000L + " s, so no prompts)" : "",
                    prompts, prompt.length, (t2 - t1) / 1e9, (System.nanoTime() - t2) / 1e9);
            return pass;
        }
    }

    /**
     * Whether {@link #throwawayPasses} should stop its one-token passes after {@code passes} of them in
     * {@code elapsedNanos}, the fastest one taking {@code fastestNanos}: from {@link #WARM_UP_PROBE_NANOS} on, when they
     * and the passes that the rest of {@link #WARM_UP_MAX_NANOS} holds at the fastest one's speed make fewer than
     * {@link #WARM_UP_ENOUGH_PASSES}.
     */
    static boolean passesTooSlow(int passes, long elapsedNanos, long fastestNanos) {
        if (elapsedNanos < WARM_UP_PROBE_NANOS) {
            return false;
        }
        double more = Math.max(0, WARM_UP_MAX_NANOS - elapsedNanos) / (double) Math.max(1, fastestNanos);
        return passes + more < WARM_UP_ENOUGH_PASSES;
    }

    /**
     * Calls {@code call} (doing {@code work} units) until 100 calls have run at {@code fastWorkPerNano} or 50
     * times faster than the first calls, or for {@link #WARM_UP_MAX_NANOS}, stopping at {@code deadline} if that comes first.
     */
    private static void untilFast(Runnable call, double work, double fastWorkPerNano, long deadline) {
        untilFast(call, t -> work >= fastWorkPerNano * t, Math.min(WARM_UP_MAX_NANOS, Math.max(0, deadline - System.nanoTime())));
    }

    /**
     * Calls {@code call} until 100 calls have run fast ({@code fast} of their nanoseconds, or 50 times faster than
     * the first calls), or for {@code maxNanos}.
     */
    private static void untilFast(Runnable call, java.util.function.LongPredicate fast, long maxNanos) {
        long deadline = System.nanoTime() + maxNanos;
        long firstCalls = Long.MAX_VALUE;
        for (int calls = 0, fastCalls = 0; fastCalls < 100 && System.nanoTime() < deadline; calls++) {
            long t0 = System.nanoTime();
            call.run();
            long t = System.nanoTime() - t0;
            if (calls < 3) {
                firstCalls = Math.min(firstCalls, t);
            }
            // not "in a row": on a loaded machine a compiled call that the OS preempts is slow, and 100 in a row
            // then took the whole WARM_UP_MAX_NANOS (a slow call before compilation is not fast, so any fast one
            // ran compiled code)
            fastCalls = fast.test(t) || t * 50 < firstCalls ? fastCalls + 1 : fastCalls;
        }
    }

    @Override
    public String name() {
        return name;
    }

    /** Which load-time copies of weight matrices this engine reads and their size ({@link PreparedWeights#summary}). */
    public String weightCopies() {
        return prepared.summary();
    }

    /** The forms its products read (tests: that they read a copy). */
    PreparedWeights.Forms forms() {
        return forms;
    }

    @Override
    public Configuration config() {
        return c;
    }

    // ------------------------------------------------------------------ the forward pass

    @Override
    public float[] forward(int token, int pos) {
        InferenceEngine.checkForwardArguments(c, token, pos);
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim(), qDim = c.qDim();
        int nHeads = c.nHeads(), nKvHeads = c.nKvHeads(), headSize = c.headSize();
        long dimBytes = (long) dim * Float.BYTES;

        step("embed", dimBytes, () -> {
            w.tokenEmbedding().dequantizeRow(token, x, 0); // run.c copies the row; runq and GGML dequantize it
            rope.angles(pos, ropeCos, ropeSin);
        });
        for (int l = 0; l < c.nLayers(); l++) {
            final int layer = l;
            final String[] task = taskNames[l];
            final MatrixForm wq = forms.wq()[l], wk = forms.wk()[l], wv = forms.wv()[l], wo = forms.wo()[l];
            final MatrixForm w1 = forms.w1()[l], w2 = forms.w2()[l], w3 = forms.w3()[l];

            // ---- attention block: x += wo · attention(rope(wq·xb + bq), rope(wk·xb + bk), wv·xb + bv)
            step(task[0], dimBytes, () -> rmsnorm(xb, x, w.rmsAtt()[layer], dim));
            step(task[1], wq.byteSize() + wk.byteSize() + wv.byteSize(), () -> {
                in.input(xb, dim);
                ops.matmul3(q, wq, k, wk, v, wv, in);
                if (w.bq() != null) { // qwen2
                    GgmlOps.addBias(q, w.bq()[layer], qDim);
                    GgmlOps.addBias(k, w.bk()[layer], kvDim);
                    GgmlOps.addBias(v, w.bv()[layer], kvDim);
                }
            });
            step(task[2], 0, () -> {
                if (w.qNorm() != null) { // qwen3: RMSNorm of each head before RoPE
                    GgmlOps.headNorms(q, nHeads, headSize, w.qNorm()[layer], c.rmsEps());
                    GgmlOps.headNorms(k, nKvHeads, headSize, w.kNorm()[layer], c.rmsEps());
                }
                rope.rotate(q, nHeads, k, nKvHeads, ropeCos, ropeSin);
                attention.store(layer, pos, k, v);
            });
            step(task[3], 2L * (pos + 1) * kvDim * Float.BYTES,
                    () -> ops.attention(attention, layer, pos, nHeads, q, xb, att));
            step(task[4], wo.byteSize(), () -> {
                in.input(xb, qDim);
                ops.matmul(xb2, in, wo);
                VectorOps.add(x, xb2, dim);
            });

            // ---- feed-forward block: x += w2 · (silu(w1·xb) * (w3·xb))
            step(task[5], dimBytes, () -> rmsnorm(xb, x, w.rmsFfn()[layer], dim));
            step(task[6], w1.byteSize() + w3.byteSize(), () -> {
                in.input(xb, dim);
                ops.matmulSwiglu(hb, hb2, w1, w3, in);
            });
            step(task[7], w2.byteSize(), () -> {
                in.input(hb, hidden);
                ops.matmul(xb, in, w2);
                VectorOps.add(x, xb, dim);
            });
        }
        step("final_norm", dimBytes, () -> rmsnorm(x, x, w.rmsFinal(), dim));
        step("classifier", forms.classifier().byteSize(), () -> {
            in.input(x, dim);
            ops.matmul(logits, in, forms.classifier());
        });
        return logits;
    }

    // ------------------------------------------------------------------ batched prefill

    /**
     * Tokens per chunk of {@link #forwardBatch}: the batch buffers' first dimension (bounded memory). Each weight is
     * read, and a Q8 weight widened to float, once per chunk: with 64 the widening was 11% of a Q8_0 pp512's JFR
     * samples (stories110M, 512 bits, 2 threads), with 128 5.5%. In one JVM, slices of 64, 128 and 256 tokens
     * (loaded machine, load 13–17, 6 rounds): pp512 median 46, 61 and 60 tok/s (docs/measurements/2026-12-02-prefill.md).
     */
    public static final int CHUNK = 128;

    /** The batch buffers, made on the first {@link #forwardBatch}: (CHUNK, ...) each. */
    private Batch batch;

    /** Run state of a chunk, as the per-token fields with the tokens as first index. */
    private static final class Batch {
        final float[][] x, xb2;              // (CHUNK, dim)
        final float[][] xb;                  // (CHUNK, max(dim, q_dim))
        final float[][] q;                   // (CHUNK, q_dim)
        final float[][] k, v;                // (CHUNK, kv_dim)
        final float[][] hb, hb2;             // (CHUNK, hidden_dim)
        final float[][] cos, sin;            // (CHUNK, head_size/2): each token's rotations
        final BatchActivations in;
        final BatchLayer ops;

        Batch(Configuration c, int pairs, Kernels kernels, Parallel parallel, FloatMath math) {
            int dim = c.dim(), qDim = c.qDim(), kvDim = c.kvDim(), hidden = c.hiddenDim();
            x = new float[CHUNK][dim];
            xb2 = new float[CHUNK][dim];
            xb = new float[CHUNK][Math.max(dim, qDim)];
            q = new float[CHUNK][qDim];
            k = new float[CHUNK][kvDim];
            v = new float[CHUNK][kvDim];
            hb = new float[CHUNK][hidden];
            hb2 = new float[CHUNK][hidden];
            cos = new float[CHUNK][pairs];
            sin = new float[CHUNK][pairs];
            in = new BatchActivations(CHUNK, Math.max(Math.max(dim, qDim), hidden));
            ops = new BatchLayer(kernels, parallel, math);
        }
    }

    /**
     * Batched prefill: the tokens go through the forward pass {@link #CHUNK} at a time as a matrix, each weight
     * read once per chunk ({@link BatchMatmul}), the cache written for every position, each token attending to
     * the positions up to its own. The last token's logits come out as {@link #forward}'s would: bit-identical
     * for Q8 (runq) and GGML quantized weights (but the types with batched kernels of their own, docs/performance.md),
     * within float rounding for F32 weights (another summation order). Exact mode ({@link ExactVectorKernels}: run.c's order) and the {@link ScalarKernels} reference
     * feed the tokens one at a time.
     */
    @Override
    public float[] forwardBatch(int[] tokens, int startPos) {
        InferenceEngine.checkBatchArguments(c, tokens, startPos);
        if (!(kernels instanceof VectorKernels) || tokens.length == 1) {
            return InferenceEngine.super.forwardBatch(tokens, startPos);
        }
        if (batch == null) {
            batch = new Batch(c, rope.pairs(), kernels, parallel, math);
        }
        for (int off = 0; off < tokens.length; off += CHUNK) {
            int n = Math.min(CHUNK, tokens.length - off);
            forwardChunk(tokens, off, n, startPos + off, off + n == tokens.length);
        }
        return logits;
    }

    /**
     * {@link #forward} for tokens[off, off + n) at positions startPos.. at once; logits (of the last) only if {@code last}.
     *
     * <p>The per-token loops are small methods of their own ({@link #rmsnormRows}, {@link #qkRows}, {@link #addRows}),
     * so that this method loops only over the layers: called once per chunk, it stays C1 code, while its loops over
     * a chunk's tokens (with all they inline) had C2 compile it on-stack, 0.2-0.5 s of a core each time, in the middle
     * of the first prompts (JFR: three such compilations during bench's measured pp512 runs, the run they fell in at
     * 0.6-0.7x the others; docs/measurements/2026-12-03-prefill-warm-up.md).
     */
    private void forwardChunk(int[] tokens, int off, int n, int startPos, boolean last) {
        int dim = c.dim(), hidden = c.hiddenDim(), qDim = c.qDim();
        Batch s = batch;
        BatchActivations in = s.in;
        embedRows(tokens, off, n, startPos);
        for (int l = 0; l < c.nLayers(); l++) {
            final MatrixForm wq = forms.wq()[l], wk = forms.wk()[l], wv = forms.wv()[l], wo = forms.wo()[l];
            final MatrixForm w1 = forms.w1()[l], w2 = forms.w2()[l], w3 = forms.w3()[l];

            // ---- attention block, every token: x += wo · attention(rope(wq·xb + bq), rope(wk·xb + bk), wv·xb + bv)
            rmsnormRows(s.xb, s.x, n, w.rmsAtt()[l]);
            in.input(s.xb, n, dim);
            s.ops.matmul3(s.q, wq, s.k, wk, s.v, wv, in);
            qkRows(l, n, startPos); // biases, q/k norms, RoPE, the key/value cache
            s.ops.attention(attention, l, startPos, n, c.nHeads(), s.q, s.xb, att); // causal: token b reads up to startPos + b
            in.input(s.xb, n, qDim);
            s.ops.matmul(s.xb2, in, wo);
            addRows(s.x, s.xb2, n);

            // ---- feed-forward block, every token: x += w2 · (silu(w1·xb) * (w3·xb))
            rmsnormRows(s.xb, s.x, n, w.rmsFfn()[l]);
            in.input(s.xb, n, dim);
            s.ops.matmulSwiglu(s.hb, s.hb2, w1, w3, in);
            in.input(s.hb, n, hidden);
            s.ops.matmul(s.xb, in, w2);
            addRows(s.x, s.xb, n);
        }
        if (last) { // the classifier for the last token only, as forward() does it
            rmsnorm(x, s.x[n - 1], w.rmsFinal(), dim);
            this.in.input(x, dim);
            ops.matmul(logits, this.in, forms.classifier());
        }
    }

    /** The chunk's embeddings into batch.x[0 .. n) and their RoPE angles. */
    private void embedRows(int[] tokens, int off, int n, int startPos) {
        Batch s = batch;
        for (int b = 0; b < n; b++) {
            w.tokenEmbedding().dequantizeRow(tokens[off + b], s.x[b], 0);
            rope.angles(startPos + b, s.cos[b], s.sin[b]);
        }
    }

    /** out[b] = rmsnorm(in[b]) * weight for b in [0, n). */
    private void rmsnormRows(float[][] out, float[][] in, int n, MemorySegment weight) {
        for (int b = 0; b < n; b++) {
            rmsnorm(out[b], in[b], weight, c.dim());
        }
    }

    /** x[b] += y[b] (dim values) for b in [0, n). */
    private void addRows(float[][] x, float[][] y, int n) {
        for (int b = 0; b < n; b++) {
            VectorOps.add(x[b], y[b], c.dim());
        }
    }

    /** Layer l's queries and keys of the chunk's tokens: biases (qwen2), head norms (qwen3), RoPE; keys and values cached. */
    private void qkRows(int l, int n, int startPos) {
        Batch s = batch;
        int qDim = c.qDim(), kvDim = c.kvDim(), nHeads = c.nHeads(), nKvHeads = c.nKvHeads(), headSize = c.headSize();
        for (int b = 0; b < n; b++) {
            if (w.bq() != null) { // qwen2
                GgmlOps.addBias(s.q[b], w.bq()[l], qDim);
                GgmlOps.addBias(s.k[b], w.bk()[l], kvDim);
                GgmlOps.addBias(s.v[b], w.bv()[l], kvDim);
            }
            if (w.qNorm() != null) { // qwen3
                GgmlOps.headNorms(s.q[b], nHeads, headSize, w.qNorm()[l], c.rmsEps());
                GgmlOps.headNorms(s.k[b], nKvHeads, headSize, w.kNorm()[l], c.rmsEps());
            }
            rope.rotate(s.q[b], nHeads, s.k[b], nKvHeads, s.cos[b], s.sin[b]);
            attention.store(l, startPos + b, s.k[b], s.v[b]);
        }
    }

    /** run.c's rmsnorm (epsilon 1e-5) for llama2.c checkpoints, ggml's with the model's epsilon for GGUF models. */
    private void rmsnorm(float[] out, float[] in, MemorySegment weight, int n) {
        if (ggml) {
            GgmlOps.rmsnorm(out, 0, in, 0, weight, n, c.rmsEps());
        } else {
            VectorOps.rmsnorm(out, in, weight, n);
        }
    }

    /** One named step of the forward pass, timed beside it when profiling is on (see {@link StepTimer}). */
    private void step(String task, long bytes, Runnable body) {
        timer.step(task, bytes, body);
    }

    /**
     * CPU timers per step of the forward pass (wall time of each step, all workers together) and one
     * slice per worker chunk of every matmul; each matmul step includes its input quantization (Q8).
     */
    @Override
    public void setProfiler(Profiler profiler) {
        timer.setProfiler(profiler);
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
        if (ownsPrepared) {
            prepared.close();
        }
    }
}
