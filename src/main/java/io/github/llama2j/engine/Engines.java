package io.github.llama2j.engine;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cpu.CpuEngine;
import io.github.llama2j.cpu.ExactVectorKernels;
import io.github.llama2j.cpu.Kernels;
import io.github.llama2j.cpu.VectorKernels;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Model;

import java.util.ServiceLoader;

/** Builds the engine named by {@link EngineOptions#kind()}. */
public final class Engines {
    /** What {@code --engine tornado|hybrid} and {@code llama2j devices} say where no TornadoVM engine was built in. */
    public static final String TORNADO_UNAVAILABLE =
            "TornadoVM engine not available: install a TornadoVM SDK and set TORNADOVM_HOME (then rebuild; scripts/llama2j does this)";

    private Engines() {
    }

    public static InferenceEngine create(Model model, EngineOptions options) {
        if (options.threads() < 1) {
            throw new Llama2jException("threads is " + options.threads() + ", must be >= 1", Llama2jException.BAD_USAGE);
        }
        if (options.kind().equals("cpu")) {
            // --exact: one C library call per expf, as run.c; otherwise the same values with softmax's and SwiGLU's expf vectorized
            FloatMath math = options.exact() ? FloatMath.standard() : FloatMath.vectorized();
            CpuEngine engine = new CpuEngine(model, cpuKernels(options.exact()), math, options.threads(), options.warmUp(),
                    options.weightCopies());
            if (options.verbose()) {
                System.err.println("[cpu] " + engine.weightCopies());
                System.err.println("[cpu] " + engine.warmUpSummary());
            }
            return engine;
        }
        for (EngineProvider p : ServiceLoader.load(EngineProvider.class)) {
            if (p.kind().equals(options.kind())) {
                if (!p.runsGguf()) {
                    requireLlama2cModel(model, options.kind());
                }
                return p.create(model, options);
            }
        }
        if (options.kind().equals("tornado")) {
            throw new Llama2jException(TORNADO_UNAVAILABLE, Llama2jException.UNAVAILABLE);
        }
        if (options.kind().equals("hybrid")) {
            boolean tornadoPresent = ServiceLoader.load(EngineProvider.class).stream()
                    .anyMatch(p -> p.get().kind().equals("tornado"));
            throw new Llama2jException(tornadoPresent
                    ? "hybrid engine not available: this build has the TornadoVM engine but not the hybrid one (not finished yet)"
                    : TORNADO_UNAVAILABLE, Llama2jException.UNAVAILABLE);
        }
        throw new Llama2jException("unknown engine '" + options.kind() + "': choose cpu, tornado or hybrid",
                Llama2jException.BAD_USAGE);
    }

    /**
     * An engine whose provider does not run GGUF models computes llama2.c's transformer
     * only: a GGUF model's head size, biases, q/k norms, RoPE style and factors and llama.cpp arithmetic are
     * not in it, so it refuses GGUF models up front (exit 3) rather than run them wrongly.
     */
    static void requireLlama2cModel(Model model, String kind) {
        if (model.format() == io.github.llama2j.model.ModelFormat.GGUF) {
            throw new Llama2jException("the " + kind + " engine does not run GGUF models yet (" + model.path().getFileName()
                    + "); run it with --engine cpu", Llama2jException.UNAVAILABLE);
        }
    }

    /**
     * Whether engines of {@code kind} generate device code that {@link EngineOptions#keepKernelSources()} can keep;
     * false for engines that generate none (the CPU engine runs Java).
     */
    public static boolean generatesKernels(String kind) {
        if (kind.equals("cpu")) {
            return false;
        }
        for (EngineProvider p : ServiceLoader.load(EngineProvider.class)) {
            if (p.kind().equals(kind)) {
                return p.generatesKernels();
            }
        }
        return false;
    }

    /** Exact mode keeps run.c's summation order in the float matmuls (vectorized across rows); otherwise the SIMD kernels. */
    public static Kernels cpuKernels(boolean exact) {
        VectorKernels.checkVectorWidth();
        return exact ? new ExactVectorKernels() : new VectorKernels();
    }
}
