package io.github.llama2j.hybrid;

/**
 * One device's share of the forward pass: its slice of every matrix (see {@link SplitPlan}), its slice of
 * the key/value cache, and the code that runs them. A step reads the host's {@link StepInput} (the
 * normalised, for Q8 also quantized, activation), and leaves either a partial sum of the full-width
 * output ({@link #partial()}, attention and FFN steps) or its rows of the logits (classifier step).
 */
interface Shard extends AutoCloseable {

    /** Where it runs, for stats and profiles: {@code cpu}, {@code opencl:0:0}, ... */
    String track();

    /** Whether this shard computes on the calling thread (the host CPU), rather than on a worker of its own. */
    boolean runsOnHost();

    /** Runs this shard's part of one step of layer {@code layer} (ignored for the classifier). */
    void run(SplitPlan.Kind kind, int layer);

    /** The shard's partial sum after an attention or FFN step ({@code dim} floats). */
    float[] partial();

    /** Bytes of weights this shard streams in one step of this kind (one layer's, or the classifier's). */
    long weightBytes(SplitPlan.Kind kind);

    /** Device kernel launches of one step of this kind (0 for a shard that runs on the host). */
    default int launches(SplitPlan.Kind kind) {
        return 0;
    }

    /** Time and bytes of this shard's last step (device shards fill in transfers; the CPU has none). */
    StepTimes last();

    /** Sends the one-off costs of building this shard (JIT compilation, weight transfer) to a profiler. */
    default void reportLoad(io.github.llama2j.profile.Profiler profiler) {
    }

    @Override
    void close();
}
