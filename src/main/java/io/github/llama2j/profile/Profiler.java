package io.github.llama2j.profile;

/**
 * Receives timed events from an engine: kernels (one per named task, e.g. {@code layer3.attention}),
 * copies between host and device, and one-off phases (JIT compilation, weight transfer).
 * Engines call it only when profiling is on; {@link #NONE} costs nothing.
 */
public interface Profiler {

    /** What an event measures; the table puts each kind in its own columns. */
    enum Kind {
        /** A task's kernel time (for the CPU engine: the wall time of the whole parallel operation). */
        KERNEL,
        /** One worker's share of a parallel CPU operation: shown in the trace, not added to the table. */
        WORKER_SLICE,
        COPY_IN, COPY_OUT,
        /** Host-side cost of launching work (TornadoVM's kernel and transfer dispatch). */
        DISPATCH,
        /** One-off: JIT compilation of a task. */
        COMPILE,
        /** One-off: moving the weights to the device. */
        TRANSFER_WEIGHTS,
        /** Hybrid engine: adding the partial sums of the two sides. */
        EXCHANGE,
        /** Host-side span (e.g. TornadoVM's {@code execute()} call as the host saw it): trace only, not in the table. */
        HOST
    }

    /**
     * @param task      task name as the engine and its graphs name it ({@code layer3.qkv}, {@code classifier})
     * @param track     where it ran, one trace track each: {@code cpu-worker-0}, {@code opencl:0:0}, ...
     * @param kind      what was measured
     * @param startNanos start, on the {@link System#nanoTime()} clock (device events are placed on it by the engine)
     * @param durationNanos duration
     * @param bytes     bytes the kernel reads from memory, or bytes copied; 0 if unknown
     */
    void record(String task, String track, Kind kind, long startNanos, long durationNanos, long bytes);

    /** Marks the end of one token's forward pass (the table divides by the number of tokens). */
    default void tokenDone(long startNanos, long durationNanos) {
    }

    Profiler NONE = (task, track, kind, start, duration, bytes) -> {
    };
}
