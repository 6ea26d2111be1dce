package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.hybrid.WeightSlices.DeviceSlice;
import io.github.llama2j.hybrid.WeightSlices.F32Slice;
import io.github.llama2j.hybrid.WeightSlices.Q8Slice;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Weights;
import io.github.llama2j.profile.Profiler;
import io.github.llama2j.tornado.TornadoAccess;
import io.github.llama2j.tornado.TornadoSettings;
import io.github.llama2j.tornado.TransformerKernels;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.TornadoProfilerResult;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.exceptions.TornadoExecutionPlanException;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToIntFunction;

/**
 * A TornadoVM device's share. Every step it owns is one small task graph, built once: per layer an
 * attention graph (Q/K/V of its heads with RoPE and the cache store, attention over its own key/value
 * cache slice, [Q8: quantize], its columns of wo) and a feed-forward graph (its rows of w1/w3 with SwiGLU,
 * [Q8: quantize], its columns of w2), and one classifier graph for its rows of the logits. All of them
 * live in one execution plan and are launched one at a time with {@code withGraph(i)}. The weights (its
 * slices only, copied once into TornadoVM arrays), the RoPE table and the caches stay on the device; per
 * step only the normalised activation (Q8: its int8 values and scales) and the position go in, and the
 * partial sum (or its logits rows) comes out.
 *
 * <p>Every layer's attention graph is named {@code att} and every feed-forward graph {@code ffn}: TornadoVM
 * caches compiled kernels per plan by task id ({@code att.qkv}, ...), so each kernel is JIT-compiled once
 * for all layers (their shapes, hence the specialised code, are the same) and shares one grid. The
 * buffers stay per graph. (Measured on PoCL: tiny.bin from 23 s to 4 s of start-up.)
 *
 * <p>Why a graph per step rather than the TornadoVM engine's chain of graphs that keeps everything on the
 * device for the whole token: the host must add
 * the shards' partial sums between steps, so a token is 2 × layers + 1 launches on each device.
 */
final class DeviceShard implements Shard {
    private final Configuration c;
    private StepInput in;
    private final TornadoDevice device;
    private final String deviceName;
    private final String track;
    private final TornadoSettings s;
    private final boolean profile;
    private final List<ImmutableTaskGraph> graphs = new ArrayList<>();
    private final List<List<String>> graphTasks = new ArrayList<>();
    private final GridScheduler grid = new GridScheduler();
    private final Map<String, Grid> grids = new LinkedHashMap<>();
    private final Share built;
    private final long[] stepWeightBytes = new long[3];
    private int emulatedVocabRows = -1;
    private final KernelContext ctx = new KernelContext();
    private final StepTimes last = new StepTimes();
    private final float[] partial;
    private final Step[] attention, ffn;
    private Step classifier;
    private final int v0, v1;
    private final long deviceBytes;
    private TornadoExecutionPlan plan;
    private boolean closed;
    private long loadStartNanos, compileNanos, weightTransferNanos, weightTransferBytes;

    /** What a shard owns, in the units its grids count: heads, q rows, k/v rows, hidden rows, classifier rows. */
    record Share(int heads, int qRows, int kvRows, int ffnRows, int vocabRows) {
        static Share of(Configuration c, SplitPlan plan, int shard) {
            int heads = plan.headEnd(shard) - plan.headStart(shard);
            return new Share(heads, heads * c.headSize(), heads / c.kvMul() * c.headSize(),
                    plan.ffnEnd(shard) - plan.ffnStart(shard), plan.vocabEnd(shard) - plan.vocabStart(shard));
        }
    }

    /** A task's grid: how many work-groups a share needs (the same id, grid and kernel in every layer). */
    private record Grid(WorkerGrid1D grid, int local, ToIntFunction<Share> workGroups) {
    }

    /** One step's graph and its host-side arrays (inputs copied in, output copied out, every launch). */
    private record Step(int graph, FloatArray xin, Int8Array xq, FloatArray xs, IntArray state, FloatArray out) {
        long bytesIn() {
            long b = state == null ? 0 : state.getSize() * 4L;
            return b + (xq != null ? xq.getSize() + xs.getSize() * 4L : xin.getSize() * 4L);
        }

        long bytesOut() {
            return out.getSize() * 4L;
        }
    }

    /**
     * Copies this shard's slices into TornadoVM arrays, builds its graphs, then JIT-compiles and runs each
     * once (transferring the weights) and checks from TornadoVM's profiler that every task ran on the device.
     *
     * @param memoryAvailable device memory this shard may use (its global memory, or a configured limit)
     * @param math            the float functions of the host's RoPE, so that device heads rotate by the same values
     */
    DeviceShard(TornadoDevice device, Configuration c, Weights w, SplitPlan plan, int shard, TornadoSettings s,
                StepInput in, FloatMath math, boolean profile, long memoryAvailable, PrintStream log) {
        this.c = c;
        this.in = in;
        this.device = device;
        this.deviceName = device.getPhysicalDevice().getDeviceName();
        this.track = device.getTornadoVMBackend().name().toLowerCase(Locale.ROOT) + ":" + TornadoAccess.deviceId(device);
        this.s = s;
        this.profile = profile;
        this.partial = new float[c.dim()];
        this.v0 = plan.vocabStart(shard);
        this.v1 = plan.vocabEnd(shard);
        this.built = Share.of(c, plan, shard);
        long needed = DeviceBudget.bytes(c, plan, shard);
        if (needed > memoryAvailable) {
            throw new Llama2jException(String.format(Locale.ROOT,
                    "the device's share (%s) needs %.1f MiB on '%s', which has %.1f MiB: give it a smaller --split",
                    plan.describe(), needed / 1048576.0, deviceName, memoryAvailable / 1048576.0), Llama2jException.UNAVAILABLE);
        }
        this.deviceBytes = needed;
        long maxWorkGroup = TornadoAccess.maxWorkGroup(device);
        if (s.maxLocal() > maxWorkGroup) {
            throw new Llama2jException("TornadoVM settings ask for work-groups of " + s.maxLocal() + ", device '" + deviceName
                    + "' allows " + maxWorkGroup + TornadoAccess.limitReason(device, maxWorkGroup), Llama2jException.BAD_USAGE);
        }

        int L = c.nLayers();
        float[] rope = plan.owns(shard, SplitPlan.Kind.ATTENTION) ? ropeTable(c, math) : null;
        attention = new Step[L];
        ffn = new Step[L];
        for (int l = 0; l < L; l++) {
            if (plan.owns(shard, SplitPlan.Kind.ATTENTION)) {
                attention[l] = addAttention(w, plan, shard, l, rope);
            }
            if (plan.owns(shard, SplitPlan.Kind.FFN)) {
                ffn[l] = addFfn(w, plan, shard, l);
            }
        }
        if (plan.owns(shard, SplitPlan.Kind.CLASSIFIER)) {
            classifier = addClassifier(w);
        }
        if (graphs.isEmpty()) {
            return;
        }
        long t0 = System.nanoTime();
        TornadoExecutionPlan p = new TornadoExecutionPlan(graphs.toArray(ImmutableTaskGraph[]::new));
        p.withDevice(device).withGridScheduler(grid).withProfiler(ProfilerMode.SILENT);
        this.plan = p;
        long graal = 0, driver = 0, transferBytes = 0, transferNanos = 0;
        try {
            // First launch of each graph: JIT compilation, the weight transfer (FIRST_EXECUTION), and proof that
            // every task ran on the device. Attention graphs write cache row 0, overwritten by the first token.
            in.pos = 0;
            for (int g = 0; g < graphs.size(); g++) {
                TornadoExecutionResult r = p.withGraph(g).execute();
                TornadoProfilerResult pr = r.getProfilerResult();
                TornadoAccess.verifyTasksRanOnDevice(graphTasks.get(g), pr.getProfileLog(), deviceName);
                graal += pr.getTornadoCompilerTime();
                driver += pr.getDriverInstallTime();
                transferBytes += pr.getTotalBytesCopyIn();
                transferNanos += pr.getDeviceWriteTime();
            }
            if (!profile) {
                p.withoutProfiler();
            }
            loadStartNanos = t0;
            compileNanos = graal + driver;
            weightTransferNanos = transferNanos;
            weightTransferBytes = transferBytes;
        } catch (Llama2jException e) {
            close();
            throw e;
        } catch (RuntimeException e) {
            close();
            throw new Llama2jException("TornadoVM could not compile or run the hybrid engine's kernels on '" + deviceName
                    + "': " + e.getMessage(), Llama2jException.UNAVAILABLE, e);
        }
        if (log != null) {
            int tasks = graphTasks.stream().mapToInt(List::size).sum();
            log.printf(Locale.ROOT, "[hybrid] %s (%s): %d graphs, %d tasks, %.1f MiB on the device; first launch %.1f ms "
                            + "(JIT: Graal %.1f ms + driver %.1f ms; weights in: %.1f MiB in %.1f ms)%n",
                    track, deviceName, graphs.size(), tasks, deviceBytes / 1048576.0, (System.nanoTime() - t0) / 1e6,
                    graal / 1e6, driver / 1e6, transferBytes / 1048576.0, transferNanos / 1e6);
            log.flush();
        }
    }

    // ------------------------------------------------------------------ graph construction

    /**
     * RoPE's cos/sin for every position and pair, computed on the host exactly as the CPU side computes them
     * (run.c: freq = 1 / powf(theta, i / headSize), then cosf/sinf(pos * freq)), laid out as the TornadoVM
     * engine's table: [(pos * headSize/2 + i/2) * 2 + {0: cos, 1: sin}].
     */
    static float[] ropeTable(Configuration c, FloatMath math) {
        int hs = c.headSize(), half = hs / 2;
        float[] freq = ScalarKernels.ropeFrequencies(hs, HybridEngine.ROPE_THETA, math);
        float[] t = new float[c.seqLen() * hs];
        for (int pos = 0; pos < c.seqLen(); pos++) {
            for (int p = 0; p < half; p++) {
                float val = pos * freq[p];
                t[(pos * half + p) * 2] = math.cos(val);
                t[(pos * half + p) * 2 + 1] = math.sin(val);
            }
        }
        return t;
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
        Step step = input(state, out);
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
            case F32Slice f -> g.task("qkv", HybridKernels::qkvF32, ctx, step.xin, f.data(), q, keyCache, valueCache, state,
                    rope, dim, qRows, kvRows, hs);
            case Q8Slice q8 -> g.task("qkv", HybridKernels::qkvQ8, ctx, step.xq, step.xs, q8.values(), q8.scales(), q,
                    keyCache, valueCache, state, rope, dim, qRows, kvRows, hs, gs);
        }
        schedule(tasks, name, "qkv", sh -> (sh.qRows() + 2 * sh.kvRows()) / 2, s.matmulLocal());
        g.task("attention", TransformerKernels::attention, ctx, q, keyCache, valueCache, att, attOut, state, c.seqLen(), hs,
                kvRows, c.kvMul(), (float) Math.sqrt(hs));
        schedule(tasks, name, "attention", Share::heads, s.attentionLocal());
        switch (wo) {
            case F32Slice f -> g.task("wo", HybridKernels::matmulF32, ctx, attOut, f.data(), out, qRows);
            case Q8Slice q8 -> {
                g.task("quant", TransformerKernels::quantize, ctx, attOut, aq, as, qRows, gs);
                schedule(tasks, name, "quant", sh -> ceilDiv(sh.qRows() / gs, s.quantizeLocal()), s.quantizeLocal());
                g.task("wo", TransformerKernels::matmulQ8, ctx, aq, as, q8.values(), q8.scales(), out, qRows, gs);
            }
        }
        // wo's columns are this shard's heads; emulating fewer heads (calibration) computes fewer rows instead
        schedule(tasks, name, "wo", sh -> scaled(dim, sh.qRows(), built.qRows()), s.matmulLocal());
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, tasks, step);
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
        Step step = input(null, out);
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
            case F32Slice f -> g.task("w13", HybridKernels::w13F32, ctx, step.xin, f.data(), hb, dim, rows);
            case Q8Slice q8 -> g.task("w13", TransformerKernels::w13Q8, ctx, step.xq, step.xs, q8.values(), q8.scales(), hb,
                    dim, rows, gs);
        }
        schedule(tasks, name, "w13", Share::ffnRows, s.matmulLocal());
        switch (w2) {
            case F32Slice f -> g.task("w2", HybridKernels::matmulF32, ctx, hb, f.data(), out, rows);
            case Q8Slice q8 -> {
                g.task("quant", TransformerKernels::quantize, ctx, hb, hq, hs, rows, gs);
                schedule(tasks, name, "quant", sh -> ceilDiv(sh.ffnRows() / gs, s.quantizeLocal()), s.quantizeLocal());
                g.task("w2", TransformerKernels::matmulQ8, ctx, hq, hs, q8.values(), q8.scales(), out, rows, gs);
            }
        }
        schedule(tasks, name, "w2", sh -> scaled(dim, sh.ffnRows(), built.ffnRows()), s.matmulLocal());
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, tasks, step);
    }

    private Step addClassifier(Weights w) {
        int rows = v1 - v0, dim = c.dim();
        String name = "cls";
        DeviceSlice cls = WeightSlices.toDevice("classifier", WeightSlices.rows(w.classifier(), v0, v1));
        stepWeightBytes[SplitPlan.Kind.CLASSIFIER.ordinal()] = cls.bytes();
        FloatArray out = new FloatArray(rows);
        Step step = input(null, out);
        TaskGraph g = new TaskGraph(name);
        List<String> tasks = new ArrayList<>();
        g.transferToDevice(DataTransferMode.FIRST_EXECUTION, weights(cls).toArray());
        g.transferToDevice(DataTransferMode.EVERY_EXECUTION, inputs(step));
        switch (cls) {
            case F32Slice f -> g.task("classifier", HybridKernels::matmulF32, ctx, step.xin, f.data(), out, dim);
            case Q8Slice q8 -> g.task("classifier", TransformerKernels::matmulQ8, ctx, step.xq, step.xs, q8.values(),
                    q8.scales(), out, dim, c.groupSize());
        }
        schedule(tasks, name, "classifier", Share::vocabRows, s.matmulLocal());
        g.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        return add(g, tasks, step);
    }

    /** The host-side input arrays of one step (each graph has its own, so no graph depends on another's buffers). */
    private Step input(IntArray state, FloatArray out) {
        int dim = c.dim();
        if (c.quantized()) {
            return new Step(graphs.size(), null, new Int8Array(dim), new FloatArray(dim / c.groupSize()), state, out);
        }
        return new Step(graphs.size(), new FloatArray(dim), null, null, state, out);
    }

    private static Object[] inputs(Step step) {
        List<Object> in = new ArrayList<>();
        if (step.xq != null) {
            in.add(step.xq);
            in.add(step.xs);
        } else {
            in.add(step.xin);
        }
        if (step.state != null) {
            in.add(step.state);
        }
        return in.toArray();
    }

    private static List<Object> weights(DeviceSlice m) {
        return switch (m) {
            case F32Slice f -> List.of(f.data());
            case Q8Slice q -> List.of(q.values(), q.scales());
        };
    }

    private Step add(TaskGraph g, List<String> tasks, Step step) {
        graphs.add(g.snapshot());
        graphTasks.add(tasks);
        return step;
    }

    /**
     * Schedules a task: {@code workGroups} gives its number of work-groups for a share (the built share here;
     * a smaller one when calibration emulates it). Every layer's graph uses the same task id, hence the same
     * grid and the same compiled kernel.
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

    // ------------------------------------------------------------------ running

    @Override
    public String track() {
        return track;
    }

    @Override
    public boolean runsOnHost() {
        return false;
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
    public void reportLoad(Profiler profiler) {
        if (compileNanos > 0) {
            profiler.record("jit", track, Profiler.Kind.COMPILE, loadStartNanos, compileNanos, 0);
            profiler.record("weights", track, Profiler.Kind.TRANSFER_WEIGHTS, loadStartNanos, weightTransferNanos,
                    weightTransferBytes);
        }
    }

    @Override
    public long weightBytes(SplitPlan.Kind kind) {
        return stepWeightBytes[kind.ordinal()];
    }

    /** The classifier step's device output as the host last received it (tests). */
    float[] classifierOutput() {
        return classifier.out.toHeapArray();
    }

    /** Device memory this shard uses. */
    long deviceBytes() {
        return deviceBytes;
    }

    String deviceName() {
        return deviceName;
    }

    @Override
    public void run(SplitPlan.Kind kind, int layer) {
        if (closed) {
            throw new IllegalStateException("shard closed");
        }
        Step step = switch (kind) {
            case ATTENTION -> attention[layer];
            case FFN -> ffn[layer];
            case CLASSIFIER -> classifier;
        };
        last.clear();
        long t0 = System.nanoTime();
        if (step.xq != null) {
            MemorySegment.copy(in.xq, 0, step.xq.getSegment(), ValueLayout.JAVA_BYTE, 0, step.xq.getSize());
            MemorySegment.copy(in.xs, 0, step.xs.getSegment(), ValueLayout.JAVA_FLOAT, 0, step.xs.getSize());
        } else {
            MemorySegment.copy(in.xb, 0, step.xin.getSegment(), ValueLayout.JAVA_FLOAT, 0, step.xin.getSize());
        }
        if (step.state != null) {
            step.state.set(1, in.pos);
        }
        long t1 = System.nanoTime();
        TornadoExecutionResult r = plan.withGraph(step.graph).execute();
        long t2 = System.nanoTime();
        if (kind == SplitPlan.Kind.CLASSIFIER) {
            int rows = emulatedVocabRows >= 0 ? emulatedVocabRows : v1 - v0;
            MemorySegment.copy(step.out.getSegment(), ValueLayout.JAVA_FLOAT, 0, in.logits, v0, rows);
        } else {
            MemorySegment.copy(step.out.getSegment(), ValueLayout.JAVA_FLOAT, 0, partial, 0, partial.length);
            if (emulatedVocabRows >= 0) {
                // Calibration: only some rows were computed; keep the residual stream clean of stale values.
                java.util.Arrays.fill(partial, 0f);
            }
        }
        long t3 = System.nanoTime();
        last.startNanos = t0;
        last.computeNanos = t2 - t1;
        last.copyInNanos = t1 - t0;
        last.copyOutNanos = t3 - t2;
        last.bytesIn = step.bytesIn();
        last.bytesOut = step.bytesOut();
        if (profile) {
            TornadoProfilerResult pr = r.getProfilerResult();
            long write = pr.getDeviceWriteTime(), read = pr.getDeviceReadTime();
            last.copyInNanos += write;
            last.copyOutNanos += read;
            last.computeNanos = Math.max(0, last.computeNanos - write - read);
            last.deviceKernelNanos = pr.getDeviceKernelTime();
        }
    }

    /**
     * Calibration: from now on, compute as if this shard owned {@code plan}'s share for {@code shard} (no more
     * than it was built with): every grid shrinks to that share's work-groups, so each step streams as many
     * weights as that share's own slices would, without building and JIT-compiling a shard per candidate.
     * The results are meaningless (partial sums are zeroed); only the time counts.
     */
    void emulate(SplitPlan plan, int shard, StepInput input) {
        this.in = input;
        Share s = Share.of(c, plan, shard);
        if (s.heads() > built.heads() || s.ffnRows() > built.ffnRows() || s.vocabRows() > built.vocabRows()) {
            throw new IllegalArgumentException("cannot emulate " + plan + ": more than the shard was built with");
        }
        for (Grid g : grids.values()) {
            g.grid().setGlobalWork((long) Math.max(1, g.workGroups().applyAsInt(s)) * g.local(), 1, 1);
        }
        emulatedVocabRows = s.vocabRows();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (plan != null) {
                plan.freeDeviceMemory();
                plan.close();
            }
        } catch (TornadoExecutionPlanException | RuntimeException e) {
            // Freeing device memory at shutdown: nothing useful to do if the driver complains.
        }
    }
}
