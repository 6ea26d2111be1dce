package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;

import java.util.Map;

/**
 * One profiled execution of a kernel test's task graph: which tasks ran on the device and whether TornadoVM
 * fell back to Java ({@link TaskVerifier} reads that from the profile), and on which device.
 *
 * @param runs       every task's run, from TornadoVM's profile log
 * @param deviceName the device the graph ran on
 */
record KernelRun(Map<String, TaskVerifier.TaskRun> runs, String deviceName) {

    /** Executes {@code tg} once with {@code grid}; a failure names the seed of the random inputs. */
    static KernelRun executeOnce(TaskGraph tg, GridScheduler grid, long seed) {
        try (TornadoExecutionPlan plan = new TornadoExecutionPlan(tg.snapshot())) {
            plan.withGridScheduler(grid).withProfiler(ProfilerMode.SILENT);
            Map<String, TaskVerifier.TaskRun> runs = TaskVerifier.parse(plan.execute().getProfilerResult().getProfileLog());
            String device = plan.getDevice(0).getPhysicalDevice().getDeviceName();
            plan.withoutProfiler();
            return new KernelRun(runs, device);
        } catch (Exception e) {
            throw new IllegalStateException("seed " + seed + ": " + e, e);
        }
    }
}
