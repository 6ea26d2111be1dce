package io.github.llama2j.cli;

import io.github.llama2j.engine.EngineOptions;
import picocli.CommandLine.Option;

/** Engine selection options shared by run, bench and profile. */
public final class EngineMixin {
    @Option(names = "--engine", defaultValue = "cpu", paramLabel = "cpu|tornado|hybrid",
            description = "Engine: cpu (default), tornado (TornadoVM device), hybrid (rows split GPU+CPU).")
    String engine;

    @Option(names = "--threads", paramLabel = "N", description = "CPU worker threads (default: all cores, ${DEFAULT-VALUE}).",
            defaultValue = "0")
    int threads;

    @Option(names = "--exact", description = "Follow run.c/runq.c's float summation order everywhere: bit-exact logits, slower.")
    boolean exact;

    @Option(names = "--device", paramLabel = "B:D", description = "TornadoVM backend:device index (see 'llama2j devices').")
    String device;

    @Option(names = "--split", paramLabel = "auto|F", defaultValue = "auto",
            description = "Hybrid engine: the GPU's fraction of matmul rows, or auto to calibrate (default).")
    String split;

    @Option(names = "--verbose", description = "Print start-up phases and engine details on stderr.")
    boolean verbose;

    /** More worker threads than this is a typo (each is a real thread, started at once). */
    static final int MAX_THREADS = 1024;

    public EngineOptions toOptions(boolean profile) {
        if (threads > MAX_THREADS) {
            throw new io.github.llama2j.Llama2jException("--threads is " + threads + ", at most " + MAX_THREADS,
                    io.github.llama2j.Llama2jException.BAD_USAGE);
        }
        int t = threads <= 0 ? EngineOptions.defaultThreads() : threads;
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
        return new EngineOptions(engine, t, exact, device, s, verbose, profile);
    }
}
