package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.profile.Profiler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;
import java.util.Map;

/**
 * The forward pass on a TornadoVM device (OpenCL or PTX). Everything expensive happens once, in the
 * constructor: the memory check, copying the weights into TornadoVM arrays, building the chain of task
 * graphs ({@link ForwardGraph}), JIT-compiling every task, transferring the weights, and a first execution
 * whose profiler record proves that every task ran on the device ({@link TaskVerifier}). After that a
 * token costs one execution of each graph, in order, without returning to the host in between: 8 bytes
 * in (token, position), the logits out.
 *
 * <p>Float32 checkpoints follow run.c's order of operations, Q8_0 checkpoints runq.c's, GGUF models (F32, F16,
 * Q8_0, Q4_0, Q4_K and Q6_K tensors; llama, qwen2, qwen3) llama.cpp's arithmetic as the CPU engine follows it
 * ({@link GgmlKernels}, {@link KQuantKernels}); the sums run
 * in a different order (per-work-item strides, tree reductions in local memory, FMA), so logits agree
 * with the CPU engine to float rounding, not bit for bit.
 */
public final class TornadoEngine implements InferenceEngine {

    private final Configuration c;
    private final DeviceSession session;
    private final TornadoDevice device;
    private final String deviceName;
    private final TornadoSettings settings;
    private final ForwardGraph forward;
    /**
     * The batched prefill's graphs (after the token-by-token ones in the plan), or null: the engine prefills token by
     * token (built without them, or a GGUF model whose layers do not stack, {@link PrefillGraph#supports}).
     */
    private final PrefillGraph prefill;
    /** Whether the prefill graphs' arrays are mapped and their first execution (JIT, task check) is done. */
    private boolean prefillReady;
    private final TornadoExecutionPlan plan;
    private final MemoryBudget budget;
    private final float[] logits;
    private final boolean profile;
    /** Each task graph captured once as a CUDA graph and replayed ({@link TornadoSettings#cudaGraph}). */
    private final boolean cudaGraphs;
    private final LoadTimes loadTimes;
    private final DeviceSession.FirstExecution firstRun;
    private final long bytesInPerToken, bytesOutPerToken;
    private final int graphCount;
    private final List<String> graphNames;
    private final DeviceProfile deviceProfile;
    private final long firstExecutionStart;
    /** Where TornadoVM wrote this plan's OpenCL sources (see {@link KernelSources}), or null. */
    private final Path kernelSources;
    private Profiler profiler = Profiler.NONE;
    private boolean profilerOn;
    /** Whether TornadoVM's profiler recorded the last execution (its record is then in {@code last}). */
    private boolean lastProfiled;
    private GraphRun[] last;   // each graph's profiler figures for the last token, when profiled
    private boolean closed;

    /**
     * Start-up phases in nanoseconds: copying weights into TornadoVM arrays, creating the task graph and
     * plan, the first execution in all, and within it JIT compilation (TornadoVM's Graal part and the
     * driver's part) and the weight transfer (host-to-device time and bytes).
     */
    public record LoadTimes(long copyNanos, long planNanos, long firstExecutionNanos, long graalNanos, long driverNanos,
                            long transferNanos, long transferBytes) {
    }

    public TornadoEngine(Model model, EngineOptions options) {
        this(model, options, null);
    }

    /**
     * @param settings work-group sizes and memory limit, or null to read them for the device's type from
     *                 tornado-config/llama2j-tornado.properties
     */
    public TornadoEngine(Model model, EngineOptions options, TornadoSettings settings) {
        this(DeviceSession.open(options.device()), model, options, settings);
    }

    /**
     * @param session  the device (see {@link DeviceSession}: the hybrid engine hands over the one it opened)
     * @param settings work-group sizes and memory limit, or null to read them for the device's type
     */
    public TornadoEngine(DeviceSession session, Model model, EngineOptions options, TornadoSettings settings) {
        this(session, model, options, settings, PrefillGraph.CHUNK);
    }

    /**
     * @param prefillChunk tokens per chunk of {@link #forwardBatch}'s graphs ({@link PrefillGraph#CHUNK}; tests use
     *                     small ones), 0 for none (token by token)
     */
    TornadoEngine(DeviceSession session, Model model, EngineOptions options, TornadoSettings settings, int prefillChunk) {
        this.c = model.config();
        this.profile = options.profile();
        PrintStream log = options.verbose() ? System.err : null;
        this.session = session;
        this.device = session.device();
        this.deviceName = session.name();
        this.settings = session.settings(settings);
        // Per-task device times (profile) need the tasks launched one by one: a replayed CUDA graph has none.
        this.cudaGraphs = this.settings.cudaGraph() && session.hasCudaGraphs() && !profile;
        ForwardGraph.checkUniform(c, model.weights());
        String modelName = String.valueOf(model.path().getFileName());
        budget = MemoryBudget.of(c, model.weights(), prefillChunk);
        long global = device.getMaxGlobalMemory();
        boolean limited = session.memoryLimited(this.settings);
        long available = session.memoryAvailable(this.settings);
        if (log != null) {
            log.printf(Locale.ROOT, "[tornado] device %s (%s, %s, %s global memory)%n", session.id(), deviceName,
                    device.getDeviceType(), MemoryBudget.mib(global));
            log.printf(Locale.ROOT, "[tornado] matmul shape: %d rows per work-group of %d work-items (%d per row); Q8_0 weights: %d rows"
                            + "; %d layers per task graph%n",
                    this.settings.matmulRows(), this.settings.matmulLocal(), this.settings.matmulLocal() / this.settings.matmulRows(),
                    this.settings.q8Rows(), this.settings.graphLayers());
            log.printf(Locale.ROOT, "[tornado] device memory needed: %s = weights %s + KV cache %s + activations %s%n",
                    MemoryBudget.mib(budget.total()), MemoryBudget.mib(budget.weights()), MemoryBudget.mib(budget.kvCache()),
                    MemoryBudget.mib(budget.activations()));
        }
        budget.check(modelName, "'" + deviceName + "'", available,
                limited ? "the configured memory limit" : "the device's global memory", device.getMaxAllocMemory());

        long t0 = System.nanoTime();
        forward = new ForwardGraph(c, model.weights(), this.settings, session.backend().equals("ptx"));
        long t1 = System.nanoTime();
        ImmutableTaskGraph[] graphs;
        ImmutableTaskGraph[] all;
        try {
            graphs = forward.build();
            if (prefillChunk > 0 && PrefillGraph.supports(c, model.weights())) {
                prefill = new PrefillGraph(forward, Math.min(prefillChunk, c.seqLen()), graphs.length, forward.gridScheduler());
                ImmutableTaskGraph[] more = prefill.build();
                all = java.util.Arrays.copyOf(graphs, graphs.length + more.length);
                System.arraycopy(more, 0, all, graphs.length, more.length);
            } else {
                prefill = null;
                all = graphs;
            }
        } catch (RuntimeException e) {
            throw new Llama2jException("TornadoVM could not build the forward pass's task graphs for " + modelName + ": "
                    + e, Llama2jException.UNAVAILABLE, e);
        }
        long t2 = System.nanoTime();
        String backend = session.backend();
        deviceProfile = new DeviceProfile(forward.tasks(), forward.graphNames(), new TaskTraffic(c, forward.ggmlWeightBytes()),
                session.track());
        // A plan's code cache reads TornadoVM's source-dump options when it is created, so they are set
        // around this plan's creation and first execution only.
        KernelSources.Capture capture = KernelSources.begin(backend, options.keepKernelSources());
        graphCount = graphs.length;
        graphNames = forward.graphNames();
        this.plan = session.plan(all, forward.gridScheduler());
        if (cudaGraphs) {
            plan.withCUDAGraph();
        }
        long t3 = System.nanoTime();
        logits = new float[c.vocabSize()];
        int tasks = forward.taskIds().size();
        if (log != null) {
            log.printf(Locale.ROOT, "[tornado] weights copied into TornadoVM arrays: %.1f ms%n", (t1 - t0) / 1e6);
            log.printf(Locale.ROOT, "[tornado] plan creation: %d task graphs of %d tasks %.1f ms, execution plan %.1f ms%n",
                    graphs.length, tasks, (t2 - t1) / 1e6, (t3 - t2) / 1e6);
            log.printf(Locale.ROOT, "[tornado] first execution: JIT-compiling %d tasks for %s, transferring weights ...%n",
                    tasks, deviceName);
            log.flush();
        }
        firstExecutionStart = t3;
        try (capture) {
            // First execution: JIT-compiles every task, transfers the weights (FIRST_EXECUTION), runs
            // BOS at position 0 (overwritten by the first real token), and proves every task ran on the device.
            forward.state.set(0, 1);
            forward.state.set(1, 0);
            String what = "the forward pass";
            DeviceSession.FirstExecution first = session.guarded(what, plan,
                    () -> session.firstExecution(plan, graphNames, forward.taskIdsPerGraph(), cudaGraphs));
            long t4 = System.nanoTime();
            kernelSources = capture.dir();
            firstRun = first;
            loadTimes = new LoadTimes(t1 - t0, t3 - t1, t4 - t3, first.graalNanos(), first.driverNanos(),
                    first.transferNanos(), first.transferBytes());
            // Second execution: what one token costs on the bus once the weights are resident.
            GraphRun[] steady = session.guarded(what, plan, () -> executeGraphs(true));
            bytesInPerToken = GraphRun.sum(steady, GraphRun::bytesIn);
            bytesOutPerToken = GraphRun.sum(steady, GraphRun::bytesOut);
            if (!profile) {
                plan.withoutProfiler();
            }
            profilerOn = profile;
        } catch (RuntimeException e) {
            KernelSources.delete(capture.dir());
            throw e;
        }
        if (log != null) {
            LoadTimes lt = loadTimes;
            log.printf(Locale.ROOT, "[tornado] JIT compilation: Graal %.1f ms + driver %.1f ms for %d tasks "
                            + "(first execution %.1f ms in all)%n",
                    lt.graalNanos() / 1e6, lt.driverNanos() / 1e6, tasks, lt.firstExecutionNanos() / 1e6);
            log.printf(Locale.ROOT, "[tornado] weight transfer: %s in %.1f ms%n",
                    MemoryBudget.mib(lt.transferBytes()), lt.transferNanos() / 1e6);
            log.printf(Locale.ROOT, "[tornado] verified: all %d tasks %s %s; per token %d kernel launches in %d graph "
                            + "executions, %d bytes in, %d bytes out%n",
                    tasks, cudaGraphs ? "compiled for and captured on" : "ran on", deviceName, tasks, graphCount, bytesInPerToken,
                    bytesOutPerToken);
            if (cudaGraphs) {
                log.printf(Locale.ROOT, "[tornado] CUDA graphs: each of the %d task graphs captured once, replayed per token "
                        + "(one driver launch per graph)%n", graphCount);
            } else if (this.settings.cudaGraph()) {
                log.printf(Locale.ROOT, "[tornado] CUDA graphs: off (%s)%n",
                        profile ? "per-task profiling launches tasks one by one" : "backend " + backend + " has none");
            }
            if (forward.attentionSplits() > 1) {
                log.printf(Locale.ROOT, "[tornado] attention: %d work-groups per head, chunks of at least %d positions%n",
                        forward.attentionSplits(), forward.settings().attentionChunk());
            }
            log.flush();
        }
    }

    @Override
    public String name() {
        return "tornado:" + session.backend();
    }

    @Override
    public Configuration config() {
        return c;
    }

    @Override
    public float[] forward(int token, int pos) {
        if (closed) {
            throw new IllegalStateException("engine closed");
        }
        InferenceEngine.checkForwardArguments(c, token, pos);
        forward.state.set(0, token);
        forward.state.set(1, pos);
        long t0 = profiler != Profiler.NONE ? System.nanoTime() : 0;
        // With the profiler on, each graph's record is read right after it ran (see executeGraphs), so
        // "execute" includes copying TornadoVM's log; "read profiler log" is the parsing.
        last = executeGraphs(profilerOn);
        lastProfiled = profilerOn;
        if (profiler != Profiler.NONE && cudaGraphs) {
            profiler.record("execute", DeviceProfile.HOST_TRACK, Profiler.Kind.HOST, t0, System.nanoTime() - t0, 0);
        } else if (profiler != Profiler.NONE) {
            long t1 = System.nanoTime();
            deviceProfile.recordToken(profiler, t0, t1 - t0, last, pos);
            profiler.record("read profiler log", DeviceProfile.HOST_TRACK, Profiler.Kind.HOST, t1, System.nanoTime() - t1, 0);
        }
        MemorySegment.copy(forward.logits.getSegment(), ValueLayout.JAVA_FLOAT, 0, logits, 0, logits.length);
        return logits;
    }

    /**
     * A prompt (or the new part of one) in chunks of {@link PrefillGraph#chunk()} tokens through the prefill graphs
     * ({@link PrefillGraph}, {@link PrefillKernels}): per chunk 8 + 4 B bytes in (positions, count, tokens), every
     * layer's weights read once, the chunk's keys and values written to the device caches, and the last token's
     * logits out. Single tokens, engines built without prefill graphs and the GGUF models {@link PrefillGraph#supports}
     * refuses feed the tokens one by one.
     * The first call maps the prefill graphs onto the token-by-token graphs' device arrays and compiles them.
     */
    @Override
    public float[] forwardBatch(int[] tokens, int startPos) {
        if (closed) {
            throw new IllegalStateException("engine closed");
        }
        InferenceEngine.checkBatchArguments(c, tokens, startPos);
        if (prefill == null || tokens.length == 1) {
            return InferenceEngine.super.forwardBatch(tokens, startPos);
        }
        int b = prefill.chunk();
        for (int off = 0; off < tokens.length; off += b) {
            int n = Math.min(b, tokens.length - off);
            prefill.pstate.set(PrefillKernels.START, startPos + off);
            prefill.pstate.set(PrefillKernels.COUNT, n);
            for (int i = 0; i < n; i++) {
                prefill.pstate.set(PrefillKernels.TOKENS + i, tokens[off + i]);
            }
            long t0 = profiler != Profiler.NONE ? System.nanoTime() : 0;
            if (!prefillReady) {
                session.guarded("the prefill", plan, this::firstPrefill);
                prefillReady = true;
            } else {
                for (int g = 0; g < prefill.graphCount(); g++) {
                    plan.withGraph(graphCount + g).execute();
                }
            }
            if (profiler != Profiler.NONE) {
                profiler.record("prefill chunk", DeviceProfile.HOST_TRACK, Profiler.Kind.HOST, t0, System.nanoTime() - t0, 0);
            }
        }
        lastProfiled = false;
        MemorySegment.copy(forward.logits.getSegment(), ValueLayout.JAVA_FLOAT, 0, logits, 0, logits.length);
        return logits;
    }

    /**
     * The prefill graphs' first chunk: each array they share with the token-by-token graphs mapped onto that graph's
     * device buffer (see {@link PrefillGraph}), then every prefill graph once with TornadoVM's profiler on (JIT
     * compilation), checking that each of its tasks ran on the device.
     */
    private Void firstPrefill() {
        for (PrefillGraph.Mapping m : prefill.mappings()) {
            plan.mapOnDeviceMemoryRegion(m.alias(), m.array(), 0, m.fromGraph(), m.toGraph());
        }
        if (!profilerOn) {
            plan.withProfiler(ProfilerMode.SILENT);
        }
        try {
            for (int g = 0; g < prefill.graphCount(); g++) {
                GraphRun run = GraphRun.of(PrefillGraph.GRAPH, plan.withGraph(graphCount + g).execute().getProfilerResult());
                TaskVerifier.verify(prefill.taskIdsPerGraph().get(g), TaskVerifier.parse(run.log()), deviceName, cudaGraphs);
            }
        } finally {
            if (!profilerOn) {
                plan.withoutProfiler();
            }
        }
        return null;
    }

    /** Tokens per chunk of {@link #forwardBatch}'s prefill graphs; 0 where the engine prefills token by token. */
    public int prefillChunk() {
        return prefill == null ? 0 : prefill.chunk();
    }

    /** Kernel launches per prefill chunk (every task of every prefill graph); 0 without prefill graphs. */
    public int launchesPerChunk() {
        return prefill == null ? 0 : prefill.tasks().size();
    }

    /** Prefill task ids in launch order ({@code prefill.embed}, {@code prefill.qkv}, ...), once per prefill graph. */
    List<String> prefillTaskIds() {
        return prefill == null ? List.of() : prefill.tasks().stream().map(ForwardGraph.Task::id).toList();
    }

    /**
     * Device times from TornadoVM's own profiler (switched on for the plan while profiling, if the engine
     * was not built with {@code profile}); see {@link DeviceProfile} for what each figure is and how task
     * ids become names. The one-off costs (JIT per task, weight transfer) are sent at once, from the
     * first execution's record.
     */
    @Override
    public void setProfiler(Profiler profiler) {
        Profiler p = profiler == null ? Profiler.NONE : profiler;
        if (cudaGraphs) {
            // A replayed CUDA graph has no per-task times: the profiler gets each token's host-side time only.
            this.profiler = p;
            return;
        }
        if (p != Profiler.NONE && !profilerOn) {
            plan.withProfiler(ProfilerMode.SILENT);
            profilerOn = true;
        } else if (p == Profiler.NONE && profilerOn && !profile) {
            plan.withoutProfiler();
            profilerOn = false;
        }
        this.profiler = p;
        if (p != Profiler.NONE) {
            deviceProfile.recordLoad(p, firstExecutionStart, firstRun.perGraph(), loadTimes);
        }
    }

    /** One name per task, in launch order, named as the CPU engine names the same step (see {@link DeviceProfile}). */
    @Override
    public List<String> taskNames() {
        return deviceProfile.names();
    }

    /**
     * Copies the OpenCL C source TornadoVM generated for every task into {@code dir}, one file per task
     * named by its profile name ({@code layer0.qkv.cl}). TornadoVM writes sources only while a plan is
     * compiled, so they must have been asked for when this engine was built ({@link EngineOptions#keepKernelSources()}).
     */
    @Override
    public void dumpKernels(Path dir) {
        if (kernelSources == null) {
            throw new Llama2jException("no kernel sources were captured: they are written while the engine compiles, so ask "
                    + "for them before it is built (llama2j profile ... --dump-kernels DIR)", Llama2jException.BAD_USAGE);
        }
        List<String> ids = forward.taskIds();
        List<String> names = deviceProfile.names();
        try {
            Files.createDirectories(dir);
            List<Path> files = KernelSources.files(kernelSources);
            for (int i = 0; i < ids.size(); i++) {
                String prefix = ids.get(i) + "-"; // TornadoVM names the file <task id>-<kernel name>.cl
                Path src = files.stream().filter(f -> f.getFileName().toString().startsWith(prefix)).findFirst()
                        .orElseThrow(() -> new Llama2jException("TornadoVM wrote no source for task " + prefix
                                .substring(0, prefix.length() - 1) + " in " + kernelSources, Llama2jException.UNAVAILABLE));
                Files.copy(src, dir.resolve(names.get(i) + ".cl"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The device, as {@code backend:device name}. */
    public String deviceDescription() {
        return session.id() + " " + deviceName;
    }

    public TornadoSettings settings() {
        return settings;
    }

    public LoadTimes loadTimes() {
        return loadTimes;
    }

    /** Device memory the model needs (weights, KV cache, activations). */
    public long deviceBytes() {
        return budget.total();
    }

    /** Every task of every graph, once per token. */
    @Override
    public int launchesPerToken() {
        return forward.taskIds().size();
    }

    /** Work-groups per head of the one-token attention (1: unsplit; see {@link TornadoSettings#attentionSplits}). */
    public int attentionSplits() {
        return forward.attentionSplits();
    }

    /** Whether each task graph runs as a captured CUDA graph ({@link TornadoSettings#cudaGraph}). */
    public boolean cudaGraphs() {
        return cudaGraphs;
    }

    /** Graph executions per token (each one a host-side {@code execute()} of TornadoVM's interpreter). */
    @Override
    public int graphsPerToken() {
        return graphCount;
    }

    /** Task ids in launch order ({@code forward.embed}, {@code forward.qkv}, ..., {@code forward.qkv_1}, ..., once per graph). */
    public java.util.List<String> taskIds() {
        return forward.taskIds();
    }

    /** The verification run's profiler record of every task. */
    Map<String, TaskVerifier.TaskRun> firstRun() {
        return firstRun.tasks();
    }

    /** Bytes copied host→device for one token once the weights are resident (the token id and position). */
    public long bytesInPerToken() {
        return bytesInPerToken;
    }

    /** Bytes copied device→host for one token (the logits). */
    public long bytesOutPerToken() {
        return bytesOutPerToken;
    }

    /**
     * Per-task kernel times (ns) of the last {@link #forward} call, by profile name ({@link #taskNames()}),
     * in launch order; empty unless TornadoVM's profiler was on for it ({@code EngineOptions.profile()} or a
     * {@link #setProfiler profiler}).
     */
    public Map<String, Long> lastKernelTimes() {
        return lastProfiled && last != null ? deviceProfile.kernelTimes(last) : Map.of();
    }

    /** Total device kernel time (ns) of the last {@link #forward} call; needs the profiler, as above. */
    public long lastDeviceKernelNanos() {
        return lastProfiled && last != null ? GraphRun.sum(last, GraphRun::kernelNanos) : 0;
    }

    /**
     * One token: every graph of the plan, one at a time and in order. TornadoVM hands a graph the device
     * buffers it consumes ({@code consumeFromDevice}) from the graph executed just before it, which it
     * tracks only when graphs are launched one by one; {@code plan.execute()} on all graphs would link
     * every graph to the last one.
     *
     * @param record read each graph's profiler figures right after it ran (a TornadoExecutionResult reads
     *               them from the plan lazily, and by then the plan has moved on to the next graph);
     *               null when false
     */
    private GraphRun[] executeGraphs(boolean record) {
        GraphRun[] runs = record ? new GraphRun[graphCount] : null;   // nothing allocated per token unless profiling
        for (int g = 0; g < graphCount; g++) {
            TornadoExecutionResult r = plan.withGraph(g).execute();
            if (record) {
                runs[g] = GraphRun.of(graphNames.get(g), r.getProfilerResult());
            }
        }
        return runs;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            DeviceSession.close(plan);
            KernelSources.delete(kernelSources);
        }
    }

}
