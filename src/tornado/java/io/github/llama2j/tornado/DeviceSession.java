package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Weights;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.exceptions.TornadoExecutionPlanException;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * One TornadoVM device as every engine here starts on it: the TornadoVM engine ({@link TornadoEngine}) and
 * the hybrid engine's device shard use this one sequence, so both fail the same way with the same words.
 * <ol>
 *   <li>{@link #open}: no silent bailout to Java, TornadoVM's runtime present, the device of {@code --device B:D}
 *       (or TornadoVM's default);</li>
 *   <li>{@link #settings}: work-group sizes for the device's type, checked against the device's limit;</li>
 *   <li>{@link #plan}: an execution plan of the caller's graphs on this device, TornadoVM's profiler on;</li>
 *   <li>{@link #firstExecution}: every graph once, in order (JIT compilation, weight transfer), with
 *       the proof from TornadoVM's profiler that every task ran on this device ({@link TaskVerifier});</li>
 *   <li>{@link #guarded}: any TornadoVM failure on the way becomes one clear error, and the plan's device
 *       memory is freed.</li>
 * </ol>
 */
public final class DeviceSession {
    private final TornadoDevice device;
    private final String name;
    private final String id;
    private final String backend;

    private DeviceSession(TornadoDevice device) {
        this.device = device;
        this.name = device.getPhysicalDevice().getDeviceName();
        this.id = DeviceSelection.id(device);
        this.backend = device.getTornadoVMBackend().name().toLowerCase(Locale.ROOT);
    }

    /**
     * The device named by {@code --device B:D}, or the default one ({@link DeviceSelection#preferred}) when {@code spec}
     * is null; a clear error if TornadoVM's runtime is missing or no such device exists.
     */
    public static DeviceSession open(String spec) {
        TornadoRuntimeCheck.requireNoBailoutRecovery();
        TornadoRuntimeCheck.runtime();
        return new DeviceSession(DeviceSelection.select(spec));
    }

    /** A session on a device already at hand (tests: {@code TornadoExecutionPlan.DEFAULT_DEVICE}). */
    public static DeviceSession of(TornadoDevice device) {
        TornadoRuntimeCheck.requireNoBailoutRecovery();
        return new DeviceSession(device);
    }

    public TornadoDevice device() {
        return device;
    }

    /** The driver's name for the device. */
    public String name() {
        return name;
    }

    /**
     * Whether the device runs CUDA graphs (TornadoVM's {@code withCUDAGraph()}): a device of the PTX or CUDA backend.
     */
    public boolean hasCudaGraphs() {
        return backend.equals("ptx") || backend.equals("cuda");
    }

    /** {@code B:D}, as {@code --device} takes it. */
    public String id() {
        return id;
    }

    /** {@code opencl}, {@code ptx}, ... */
    public String backend() {
        return backend;
    }

    /** {@code backend:B:D}, the device's track in profiles and stats. */
    public String track() {
        return backend + ":" + id;
    }

    /**
     * The work-group sizes and memory limit to use: {@code given}, or those configured for the device's type
     * (tornado-config/llama2j-tornado.properties); an error if they ask for larger work-groups than the device allows.
     */
    public TornadoSettings settings(TornadoSettings given) {
        TornadoSettings s = given != null ? given : TornadoSettings.load(device.getDeviceType().name());
        long maxWorkGroup = DeviceSelection.maxWorkGroup(device);
        if (s.maxLocal() > maxWorkGroup) {
            throw new Llama2jException("TornadoVM settings ask for work-groups of " + s.maxLocal() + ", device '" + name
                    + "' allows " + maxWorkGroup + DeviceSelection.limitReason(device, maxWorkGroup), Llama2jException.BAD_USAGE);
        }
        return s;
    }

    /** Whether {@code s} limits the device's memory below its global memory. */
    public boolean memoryLimited(TornadoSettings s) {
        return s.memoryLimit() > 0 && s.memoryLimit() < device.getMaxGlobalMemory();
    }

    /** The device memory a model may use: its global memory, or the configured limit if smaller. */
    public long memoryAvailable(TornadoSettings s) {
        return memoryLimited(s) ? s.memoryLimit() : device.getMaxGlobalMemory();
    }

    /**
     * Whether the TornadoVM engine's whole model fits this device: the check {@link TornadoEngine} makes before
     * it copies anything ({@link MemoryBudget}), as a question (the hybrid's {@code auto} asks it before offering
     * the whole TornadoVM engine as a candidate).
     */
    public boolean holdsWholeModel(Configuration c, Weights w, TornadoSettings s) {
        MemoryBudget b = MemoryBudget.of(c, w);
        long maxBuffer = device.getMaxAllocMemory();
        return b.total() <= memoryAvailable(s) && (maxBuffer <= 0 || b.largest() <= maxBuffer);
    }

    /** An execution plan of {@code graphs} on this device with the caller's grids and TornadoVM's profiler on. */
    public TornadoExecutionPlan plan(ImmutableTaskGraph[] graphs, GridScheduler grid) {
        TornadoExecutionPlan p = new TornadoExecutionPlan(graphs);
        p.withDevice(device).withGridScheduler(grid).withProfiler(ProfilerMode.SILENT);
        return p;
    }

    /**
     * What the first execution cost and proved: each graph's profiler figures, and every task's record.
     * Compilation (TornadoVM's Graal part and the driver's part) and the weight transfer happen here.
     */
    public record FirstExecution(GraphRun[] runs, List<Map<String, TaskVerifier.TaskRun>> perGraph) {
        /** Every task's record by task id (a task id repeated in several graphs: its last graph's record). */
        Map<String, TaskVerifier.TaskRun> tasks() {
            Map<String, TaskVerifier.TaskRun> all = new java.util.LinkedHashMap<>();
            perGraph.forEach(all::putAll);
            return all;
        }

        public long graalNanos() {
            return GraphRun.sum(runs, GraphRun::graalNanos);
        }

        public long driverNanos() {
            return GraphRun.sum(runs, GraphRun::driverNanos);
        }

        /** Host-to-device time (the weights, mostly). */
        public long transferNanos() {
            return GraphRun.sum(runs, GraphRun::writeNanos);
        }

        /** Host-to-device bytes. */
        public long transferBytes() {
            return GraphRun.sum(runs, GraphRun::bytesIn);
        }
    }

    /**
     * Executes every graph of {@code plan} once, in order, one at a time ({@code withGraph(g)}), and checks
     * from TornadoVM's profiler that every task of graph {@code g} ({@code tasks.get(g)}) ran on this device
     * with a kernel time above zero. Call it through {@link #guarded}; the plan's profiler must be on.
     *
     * @param graphNames each graph's name (TornadoVM's profiler record is headed by it; names may repeat)
     */
    public FirstExecution firstExecution(TornadoExecutionPlan plan, List<String> graphNames, List<List<String>> tasks) {
        return firstExecution(plan, graphNames, tasks, false);
    }

    /**
     * As {@link #firstExecution(TornadoExecutionPlan, List, List)}; with {@code captured} the plan captures CUDA graphs
     * ({@link TornadoSettings#cudaGraph}), whose tasks have no kernel time of their own ({@link TaskVerifier#verify(List,
     * Map, String, boolean)}).
     */
    public FirstExecution firstExecution(TornadoExecutionPlan plan, List<String> graphNames, List<List<String>> tasks,
                                         boolean captured) {
        GraphRun[] runs = new GraphRun[graphNames.size()];
        List<Map<String, TaskVerifier.TaskRun>> perGraph = new java.util.ArrayList<>();
        for (int g = 0; g < runs.length; g++) {
            runs[g] = GraphRun.of(graphNames.get(g), plan.withGraph(g).execute().getProfilerResult());
            perGraph.add(TaskVerifier.parse(runs[g].log()));
            TaskVerifier.verify(tasks.get(g), perGraph.getLast(), name, captured);
        }
        return new FirstExecution(runs, List.copyOf(perGraph));
    }

    /**
     * Runs {@code work} (building, compiling or first running {@code plan}); if it fails, frees the plan and
     * throws one error: a {@link Llama2jException} as it is, anything else from TornadoVM as "TornadoVM could
     * not compile or run {@code what} on 'device': why".
     */
    public <T> T guarded(String what, TornadoExecutionPlan plan, Supplier<T> work) {
        try {
            return work.get();
        } catch (Llama2jException e) {
            close(plan);
            throw e;
        } catch (RuntimeException | uk.ac.manchester.tornado.api.exceptions.TornadoInternalError e) {
            close(plan);
            throw new Llama2jException("TornadoVM could not compile or run " + what + " on '" + name + "': " + e.getMessage()
                    + hint(e), Llama2jException.UNAVAILABLE, e);
        }
    }

    /**
     * What to change for a TornadoVM failure the settings cause, or "". TornadoVM 5.2 builds each task graph in a
     * fixed table of 1,024 nodes ({@code TornadoGraph}: a node per object, per constant, per task and per transfer)
     * and cannot grow it: on an H200 a GGUF Llama-3.2-1B with 16 layers in one graph failed so.
     */
    static String hint(Throwable e) {
        return String.valueOf(e.getMessage()).contains("Graph resize")
                ? " (TornadoVM's task graph holds at most 1,024 nodes: fewer layers per graph, "
                + "-Dllama2j.tornado.graph.layers=N)"
                : "";
    }

    /** Frees a plan's device memory and closes it; a driver complaint at shutdown is not worth reporting. */
    public static void close(TornadoExecutionPlan plan) {
        try {
            if (plan != null) {
                plan.freeDeviceMemory();
                plan.close();
            }
        } catch (TornadoExecutionPlanException | RuntimeException | uk.ac.manchester.tornado.api.exceptions.TornadoInternalError e) {
            // Freeing device memory at shutdown: nothing useful to do if the driver complains (nor if TornadoVM's own
            // bookkeeping does, as its PTX backend did after a failed first execution on an H200: "This buffer should not
            // be used", which then hid the error that mattered).
        }
    }

    /**
     * Throws unless every task in {@code taskIds} appears in TornadoVM's profiler log as run on this device
     * with a kernel time above zero (for kernels run outside {@link #firstExecution}, e.g. in tests).
     */
    public void verifyRanOnDevice(List<String> taskIds, String profileLog) {
        TaskVerifier.verify(taskIds, TaskVerifier.parse(profileLog), name);
    }
}
