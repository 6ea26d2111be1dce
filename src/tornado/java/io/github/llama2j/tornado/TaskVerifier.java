package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Proof that the forward pass really ran on the device: TornadoVM's profiler entry for every task must
 * name the chosen device and report a kernel time above zero. A task that bailed out to plain Java
 * (TornadoVM's "recover bailout") has no device kernel time, and a task that never ran has no entry;
 * both are errors naming the task. This backs up {@code -Dtornado.recover.bailout=False}, which makes
 * TornadoVM throw instead of falling back in the first place.
 */
final class TaskVerifier {
    private static final Pattern ENTRY = Pattern.compile("\"([A-Za-z0-9_]+\\.[A-Za-z0-9_]+)\"\\s*:\\s*\\{([^{}]*)}");
    private static final Pattern FIELD = Pattern.compile("\"([A-Z_]+)\"\\s*:\\s*\"([^\"]*)\"");

    /** One task's profiler entry: device name and kernel time in ns. */
    record TaskRun(String device, long kernelNanos, long graalNanos, long driverNanos) {
    }

    private TaskVerifier() {
    }

    /** Parses the last profiler record of each task in TornadoVM's JSON log. */
    static Map<String, TaskRun> parse(String profileLog) {
        Map<String, TaskRun> runs = new LinkedHashMap<>();
        Matcher m = ENTRY.matcher(profileLog);
        while (m.find()) {
            Map<String, String> f = new LinkedHashMap<>();
            Matcher fm = FIELD.matcher(m.group(2));
            while (fm.find()) {
                f.put(fm.group(1), fm.group(2));
            }
            if (f.containsKey("METHOD")) {
                runs.put(m.group(1), new TaskRun(f.getOrDefault("DEVICE", "?"), num(f.get("TASK_KERNEL_TIME")),
                        num(f.get("TASK_COMPILE_GRAAL_TIME")), num(f.get("TASK_COMPILE_DRIVER_TIME"))));
            }
        }
        return runs;
    }

    private static long num(String s) {
        if (s == null) {
            return 0;
        }
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /** Throws unless every task in {@code taskIds} ran on {@code deviceName} with a kernel time above zero. */
    static void verify(List<String> taskIds, Map<String, TaskRun> runs, String deviceName) {
        verify(taskIds, runs, deviceName, false);
    }

    /**
     * As {@link #verify(List, Map, String)}; with {@code captured} the tasks were captured into CUDA graphs
     * ({@link TornadoSettings#cudaGraph}), where TornadoVM's profiler records no per-task kernel time (the tasks run
     * inside one graph launch): then a record, where there is one, must name the device, and the proof that nothing
     * ran as plain Java is TornadoVM's own (no bailout recovery: a task it cannot compile throws, and a graph
     * captures device launches only).
     */
    static void verify(List<String> taskIds, Map<String, TaskRun> runs, String deviceName, boolean captured) {
        for (String id : taskIds) {
            TaskRun r = runs.get(id);
            if (r == null) {
                if (captured) {
                    continue;
                }
                throw new Llama2jException("TornadoVM task " + id + " did not run on the device (no profiler record)",
                        Llama2jException.UNAVAILABLE);
            }
            if (!r.device().equals(deviceName) && !(captured && r.device().equals("?"))) {
                throw new Llama2jException("TornadoVM task " + id + " ran on '" + r.device() + "', not on the selected device '"
                        + deviceName + "'", Llama2jException.UNAVAILABLE);
            }
            if (!captured && r.kernelNanos() <= 0) {
                throw new Llama2jException("TornadoVM task " + id + " has no device kernel time: it did not run on '"
                        + deviceName + "' (bailed out to Java?)", Llama2jException.UNAVAILABLE);
            }
        }
    }
}
