package io.github.llama2j.cpu;

import io.github.llama2j.profile.Profiler;

/**
 * The CPU engine's profiling, kept beside the forward pass: {@link #step} runs one named step of it and,
 * when profiling is on, records the step's wall time (all workers together) on the {@code cpu} track;
 * the matmul kernels report one {@link #slice} per worker chunk on the worker's own track, under the
 * name of the step that runs them. With {@link Profiler#NONE} a step is just the call.
 */
final class StepTimer {
    private Profiler profiler = Profiler.NONE;
    private boolean on;
    /** The step now running, for the worker slices (written before the dispatch that publishes it to the workers). */
    private String current = "";

    void setProfiler(Profiler profiler) {
        this.profiler = profiler == null ? Profiler.NONE : profiler;
        this.on = this.profiler != Profiler.NONE;
    }

    boolean on() {
        return on;
    }

    /** Runs {@code body} as task {@code task}, which reads {@code bytes} bytes of weights or cache (0 if none). */
    void step(String task, long bytes, Runnable body) {
        if (!on) {
            body.run();
            return;
        }
        current = task;
        long t0 = System.nanoTime();
        body.run();
        profiler.record(task, "cpu", Profiler.Kind.KERNEL, t0, System.nanoTime() - t0, bytes);
    }

    /** Start time of a worker slice (0 when off: no clock read). */
    long sliceStart() {
        return on ? System.nanoTime() : 0;
    }

    /** One worker's chunk of the current step since {@code t0}: the trace shows how rows were spread over threads. */
    void slice(long t0, long bytes) {
        if (on) {
            profiler.record(current, Thread.currentThread().getName(), Profiler.Kind.WORKER_SLICE, t0,
                    System.nanoTime() - t0, bytes);
        }
    }
}
