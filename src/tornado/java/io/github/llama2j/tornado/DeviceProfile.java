package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.profile.Profiler;
import io.github.llama2j.profile.Profiler.Kind;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Turns TornadoVM's own profiler records into {@link Profiler} events: the device times in the profile
 * table and the Chrome trace are TornadoVM's (OpenCL/CUDA event timestamps), not host clocks.
 *
 * <p><b>Task names.</b> TornadoVM ids are {@code graph.task}, the same in every graph
 * ({@code forward.qkv} for a graph's first layer, {@code forward.qkv_1} for its second); the profile names a task by its layer and uses the CPU engine's names, so the two
 * engines' tables line up row by row: {@code layerN.kind}, where a kind that is the same operation as a CPU
 * step takes the CPU step's name: {@code attnorm → attn_norm}, {@code ffnnorm → ffn_norm},
 * {@code w13 → w1w3_swiglu}. Kinds fused differently keep their own names: the device's {@code qkv}
 * includes rmsnorm, RoPE and the cache store (the CPU's separate {@code attn_norm} and {@code rope} steps),
 * {@code w13} includes rmsnorm, and the Q8 quantization of every matmul's input happens inside the matmul
 * tasks (as inside the matmul steps on the CPU). Should two tasks ever get the same name,
 * the graph stays in the name, so rows are never merged.
 *
 * <p><b>What TornadoVM reports, and where it goes.</b> Per task: {@code TASK_KERNEL_TIME} (the kernel
 * event's end - start), {@code TOTAL_COPY_IN_SIZE_BYTES} (the task's kernel-argument frame) and, on the
 * first execution, {@code TASK_COMPILE_GRAAL_TIME} and {@code TASK_COMPILE_DRIVER_TIME}. Per graph only:
 * {@code COPY_IN_TIME}, {@code COPY_OUT_TIME}, the graph's own transfers' bytes
 * ({@code TOTAL_COPY_IN_SIZE_BYTES}, {@code TOTAL_COPY_OUT_SIZE_BYTES}), and the dispatch times
 * {@code TOTAL_DISPATCH_KERNEL_TIME} and {@code TOTAL_DISPATCH_DATA_TRANSFERS_TIME} (event start -
 * queued). The per-graph times are shared out evenly over the graph's tasks (each task is one argument
 * write and one launch); the graph's own input transfer is booked on its first task and its output
 * transfer on its last.
 *
 * <p><b>Trace placement.</b> TornadoVM gives no per-kernel start timestamps (only durations), so each
 * token's device slices are laid out back to back from the moment {@code execute()} was called, in launch
 * order: copy-in, dispatch, kernel per task. With the profiler on TornadoVM waits for every event before
 * the next launch, so the device work really is sequential; the host time between launches appears as
 * the gap after the last kernel, up to the end of the {@code execute} slice on the host track.
 */
final class DeviceProfile {
    private static final Map<String, String> CPU_KIND = Map.of("attnorm", "attn_norm", "ffnnorm", "ffn_norm",
            "w13", "w1w3_swiglu");

    static final String HOST_TRACK = "host";

    private final List<ForwardGraph.Task> tasks;
    private final List<String> graphNames;
    private final List<String> names = new ArrayList<>();
    private final Map<Integer, List<Integer>> byGraph = new LinkedHashMap<>();
    private final TaskTraffic traffic;
    private final String track;

    /**
     * @param tasks      every kernel launch of a token, in launch order
     * @param graphNames each graph's name, in launch order
     * @param track      the device's trace track, e.g. {@code opencl:0:0} (the device name from TornadoVM's record is added)
     */
    DeviceProfile(List<ForwardGraph.Task> tasks, List<String> graphNames, TaskTraffic traffic, String track) {
        this.tasks = List.copyOf(tasks);
        this.graphNames = List.copyOf(graphNames);
        this.traffic = traffic;
        this.track = track;
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < this.tasks.size(); i++) {
            ForwardGraph.Task t = this.tasks.get(i);
            String kind = CPU_KIND.getOrDefault(t.kind(), t.kind());
            String name = t.layer() >= 0 ? "layer" + t.layer() + "." + kind : kind;
            names.add(seen.add(name) ? name : graphNames.get(t.graph()) + t.graph() + "." + name);
            byGraph.computeIfAbsent(t.graph(), g -> new ArrayList<>()).add(i);
        }
    }

    /** Profile names, in launch order (one per task). */
    List<String> names() {
        return List.copyOf(names);
    }

    /**
     * The one-off costs, from the first execution's records: each task's JIT compilation (Graal + driver;
     * a task whose kernel an earlier layer's graph compiled has none) on the host track, laid out one after
     * another from {@code firstExecutionStart}, then the weight transfer.
     */
    void recordLoad(Profiler p, long firstExecutionStart, List<Map<String, TaskVerifier.TaskRun>> firstRun,
                    TornadoEngine.LoadTimes load) {
        long t = firstExecutionStart;
        for (int i = 0; i < tasks.size(); i++) {
            ForwardGraph.Task task = tasks.get(i);
            TaskVerifier.TaskRun r = firstRun.get(task.graph()).get(task.id());
            long jit = r == null ? 0 : r.graalNanos() + r.driverNanos();
            p.record(names.get(i), HOST_TRACK, Kind.COMPILE, t, jit, 0);
            t += jit;
        }
        TaskVerifier.TaskRun any = firstRun.get(0).get(tasks.get(0).id());
        p.record("weights", any == null ? track : track + " " + any.device(), Kind.TRANSFER_WEIGHTS, t, load.transferNanos(), load.transferBytes());
    }

    /** Each task's kernel time (ns) in the graphs' records of one token, by profile name, in launch order. */
    Map<String, Long> kernelTimes(GraphRun[] runs) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (Map.Entry<Integer, List<Integer>> g : byGraph.entrySet()) {
            ProfileLog.GraphRecord r = record(runs, g.getKey());
            for (int i : g.getValue()) {
                out.put(names.get(i), r.task(tasks.get(i).id(), "TASK_KERNEL_TIME"));
            }
        }
        return out;
    }

    private ProfileLog.GraphRecord record(GraphRun[] runs, int graph) {
        String name = graphNames.get(graph);
        ProfileLog.GraphRecord r = runs[graph] == null ? null : ProfileLog.lastPerGraph(runs[graph].log(), List.of(name)).get(name);
        if (r == null) {
            throw new Llama2jException("TornadoVM's profiler has no record of task graph " + name + " (#" + graph
                    + "; was the profiler switched off?)", Llama2jException.UNAVAILABLE);
        }
        return r;
    }

    /**
     * One token's events from every graph's record (each graph's own, read right after it ran).
     *
     * @param start        when the token's first {@code execute()} was called ({@link System#nanoTime()})
     * @param executeNanos how long the token's executions took, as the host saw it
     * @param pos          the token's position (attention's bytes depend on it)
     */
    void recordToken(Profiler p, long start, long executeNanos, GraphRun[] runs, int pos) {
        p.record("execute", HOST_TRACK, Kind.HOST, start, executeNanos, 0);
        long t = start;
        for (Map.Entry<Integer, List<Integer>> g : byGraph.entrySet()) {
            ProfileLog.GraphRecord r = record(runs, g.getKey());
            List<Integer> graphTasks = g.getValue();
            int n = graphTasks.size();
            // The track carries the device name from TornadoVM's own record, so the trace shows where it ran.
            Map<String, String> first = r.tasks().get(tasks.get(graphTasks.get(0)).id());
            String track = first == null ? this.track : this.track + " " + first.getOrDefault("DEVICE", "?");
            long copyIn = r.total("COPY_IN_TIME");
            long dispatch = r.total("TOTAL_DISPATCH_KERNEL_TIME") + r.total("TOTAL_DISPATCH_DATA_TRANSFERS_TIME");
            for (int k = 0; k < n; k++) {
                int i = graphTasks.get(k);
                String id = tasks.get(i).id(), name = names.get(i);
                long inNanos = share(copyIn, n, k);
                long inBytes = r.task(id, "TOTAL_COPY_IN_SIZE_BYTES") + (k == 0 ? r.total("TOTAL_COPY_IN_SIZE_BYTES") : 0);
                p.record(name, track, Kind.COPY_IN, t, inNanos, inBytes);
                t += inNanos;
                long d = share(dispatch, n, k);
                p.record(name, track, Kind.DISPATCH, t, d, 0);
                t += d;
                long kernel = r.task(id, "TASK_KERNEL_TIME");
                p.record(name, track, Kind.KERNEL, t, kernel, traffic.bytesRead(tasks.get(i).kind(), pos));
                t += kernel;
                if (k == n - 1) {
                    long out = r.total("COPY_OUT_TIME");
                    p.record(name, track, Kind.COPY_OUT, t, out, r.total("TOTAL_COPY_OUT_SIZE_BYTES"));
                    t += out;
                }
            }
        }
    }

    /** Part {@code k} of {@code total} split over {@code n}; the remainder goes to part 0, so the parts add up. */
    private static long share(long total, int n, int k) {
        return total / n + (k == 0 ? total % n : 0);
    }
}
