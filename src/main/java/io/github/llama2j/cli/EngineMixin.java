package io.github.llama2j.cli;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.WeightCopies;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** Engine selection options shared by run, bench, profile and serve. */
public final class EngineMixin {
    @Option(names = "--engine", defaultValue = "cpu", paramLabel = "cpu|tornado|hybrid",
            description = "Engine: cpu (default), tornado (TornadoVM device), hybrid (rows split GPU+CPU).")
    String engine;

    @Option(names = "--threads", paramLabel = "N", split = ",",
            description = "CPU worker threads (default: all cores); bench takes a comma-separated list, e.g. 1,2,4.")
    int[] threads;

    @Option(names = "--exact", description = "Follow run.c/runq.c's float summation order everywhere: bit-exact logits, slower.")
    boolean exact;

    @Option(names = "--device", paramLabel = "B:D", description = "TornadoVM backend:device index (see 'llama2j devices').")
    String device;

    @Option(names = "--split", paramLabel = "auto|F", defaultValue = "auto",
            description = "Hybrid engine: the GPU's fraction of matmul rows, or auto to calibrate (default).")
    String split;

    @Option(names = "--verbose", description = "Print start-up phases and engine details on stderr.")
    boolean verbose;

    @Option(names = "--no-warmup", description = "CPU engine: skip the throwaway forward passes that get the JIT to"
            + " compile the forward pass before the first token (the first tokens then run slower; results are the same).")
    boolean noWarmUp;

    @Option(names = "--weight-copies", paramLabel = "auto|off", defaultValue = "auto", converter = WeightCopiesConverter.class,
            description = "CPU engine and the hybrid's CPU share: auto (default) copies Q2_K to Q6_K matrices, and Q8_0/runq Q8, Q4_0, Q5_1, float32, F16, BF16,"
                    + " IQ4_NL and IQ4_XS ones when the copies take at most half of the available memory, into private memory in layouts the kernels read faster"
                    + " (the last five, and Q3_K with 512-bit vectors, as they are); off reads the file's layout everywhere (less memory; K-quant products a few ulps apart, which a rounding flip may carry"
                    + " further into the logits; a GGUF Q5_0 matrix is still widened to Q8_0 at load).")
    WeightCopies weightCopies;

    /** {@code --weight-copies}: a bad value is a usage error at parse time, as any other option's. */
    static final class WeightCopiesConverter implements CommandLine.ITypeConverter<WeightCopies> {
        @Override
        public WeightCopies convert(String value) {
            try {
                return WeightCopies.parse(value);
            } catch (io.github.llama2j.Llama2jException e) {
                throw new CommandLine.TypeConversionException("'" + value + "' is not auto or off");
            }
        }
    }

    /** More worker threads than this is a typo (each is a real thread, started at once). */
    static final int MAX_THREADS = 1024;

    public EngineOptions toOptions(boolean profile) {
        checkNotEmpty();
        if (threads != null && threads.length != 1) {
            throw new io.github.llama2j.Llama2jException("--threads takes one number here, got " + threads.length,
                    io.github.llama2j.Llama2jException.BAD_USAGE);
        }
        return toOptions(profile, threads == null ? EngineOptions.defaultThreads() : threads[0]);
    }

    /** The --threads values, 0 (or less) meaning all cores: bench runs once per entry. */
    public int[] threadCounts() {
        if (threads == null) {
            return new int[]{EngineOptions.defaultThreads()};
        }
        checkNotEmpty();
        for (int t : threads) {
            checkThreads(t);
        }
        return threads.clone();
    }

    /** {@code --threads ,} (or {@code ""}) splits into no value at all: bench ran nothing and exited 0. */
    private void checkNotEmpty() {
        if (threads != null && threads.length == 0) {
            throw new io.github.llama2j.Llama2jException("--threads lists no thread count, give one or more numbers (e.g. 1,2,4)",
                    io.github.llama2j.Llama2jException.BAD_USAGE);
        }
    }

    private static void checkThreads(int t) {
        if (t < 1 || t > MAX_THREADS) {
            throw new io.github.llama2j.Llama2jException("--threads is " + t + ", must be in [1, " + MAX_THREADS + "]",
                    io.github.llama2j.Llama2jException.BAD_USAGE);
        }
    }

    /** The options with {@code threadCount} workers instead of --threads. */
    public EngineOptions toOptions(boolean profile, int threadCount) {
        checkThreads(threadCount);
        int t = threadCount;
        double s = Double.NaN;
        if (!"auto".equals(split)) {
            try {
                s = Double.parseDouble(split);
            } catch (NumberFormatException e) {
                throw new io.github.llama2j.Llama2jException("--split is '" + split + "', must be auto or a number in [0, 1]",
                        io.github.llama2j.Llama2jException.BAD_USAGE);
            }
            if (!(s >= 0 && s <= 1)) {
                throw new io.github.llama2j.Llama2jException("--split is " + split + ", must be in [0, 1]",
                        io.github.llama2j.Llama2jException.BAD_USAGE);
            }
        }
        checkApplies();
        return new EngineOptions(engine, t, exact, device, s, verbose, profile, false, !noWarmUp, weightCopies);
    }

    /**
     * Options that the chosen engine would ignore are usage errors, not silently dropped: {@code --split} is the
     * hybrid's, {@code --device} the device engines', {@code --exact} the CPU engine's (and the hybrid's CPU share;
     * the TornadoVM engine sums in its own order). An unknown engine name is left to the engine registry's message.
     */
    private void checkApplies() {
        if (!"auto".equals(split) && (engine.equals("cpu") || engine.equals("tornado"))) {
            throw new io.github.llama2j.Llama2jException("--split applies to --engine hybrid only, not " + engine,
                    io.github.llama2j.Llama2jException.BAD_USAGE);
        }
        if (device != null && engine.equals("cpu")) {
            throw new io.github.llama2j.Llama2jException("--device applies to --engine tornado or hybrid, not cpu",
                    io.github.llama2j.Llama2jException.BAD_USAGE);
        }
        if (exact && engine.equals("tornado")) {
            throw new io.github.llama2j.Llama2jException("--exact applies to the cpu engine (and the hybrid's CPU share); the"
                    + " TornadoVM engine sums in its own order", io.github.llama2j.Llama2jException.BAD_USAGE);
        }
    }
}
