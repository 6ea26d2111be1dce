package io.github.llama2j.engine;

/**
 * How to build an engine, gathered in one place (the CLI fills it; nothing is read from system properties).
 *
 * @param kind    {@code cpu}, {@code tornado} or {@code hybrid}
 * @param threads CPU worker threads (CPU engine and the CPU side of the hybrid)
 * @param exact   follow run.c's float summation order in every matmul (bit-exact logits)
 * @param device  TornadoVM device as {@code backend:device} (e.g. {@code 0:0}), or null for TornadoVM's default
 * @param split   hybrid: the GPU's fraction of matmul rows in [0, 1], or NaN for automatic calibration
 * @param verbose print start-up phases (plan, JIT, weight transfer) on stderr
 * @param profile collect per-task timings for the profiler
 * @param keepKernelSources keep the device code the engine generates, for {@link InferenceEngine#dumpKernels}
 *                (it can only be captured while the engine compiles it, i.e. while the engine is built)
 * @param warmUp  CPU engine: run throwaway forward passes on scratch state while the engine is built, so that the JIT
 *                has compiled the forward pass before the first token (the results do not change; off: the first
 *                tokens run slower instead)
 * @param weightCopies CPU engine and the hybrid's CPU share: which load-time copies of weight matrices to make
 *                ({@link WeightCopies}; the results do not change)
 */
public record EngineOptions(String kind, int threads, boolean exact, String device, double split, boolean verbose,
                            boolean profile, boolean keepKernelSources, boolean warmUp, WeightCopies weightCopies) {

    public EngineOptions {
        java.util.Objects.requireNonNull(weightCopies, "weightCopies");
    }

    /** Options without kernel-source capture, with warm-up and the automatic weight copies. */
    public EngineOptions(String kind, int threads, boolean exact, String device, double split, boolean verbose,
                         boolean profile) {
        this(kind, threads, exact, device, split, verbose, profile, false, true, WeightCopies.AUTO);
    }

    /** Options with warm-up and the automatic weight copies. */
    public EngineOptions(String kind, int threads, boolean exact, String device, double split, boolean verbose,
                         boolean profile, boolean keepKernelSources) {
        this(kind, threads, exact, device, split, verbose, profile, keepKernelSources, true, WeightCopies.AUTO);
    }

    public static EngineOptions cpu(int threads, boolean exact) {
        return new EngineOptions("cpu", threads, exact, null, Double.NaN, false, false);
    }

    /** The same options, asking the engine to keep the device code it generates. */
    public EngineOptions withKernelSources() {
        return new EngineOptions(kind, threads, exact, device, split, verbose, profile, true, warmUp, weightCopies);
    }

    /** The same options, with or without warm-up. */
    public EngineOptions withWarmUp(boolean on) {
        return new EngineOptions(kind, threads, exact, device, split, verbose, profile, keepKernelSources, on, weightCopies);
    }

    /** The same options with the given load-time weight copies. */
    public EngineOptions withWeightCopies(WeightCopies copies) {
        return new EngineOptions(kind, threads, exact, device, split, verbose, profile, keepKernelSources, warmUp, copies);
    }

    public static int defaultThreads() {
        return Runtime.getRuntime().availableProcessors();
    }
}
