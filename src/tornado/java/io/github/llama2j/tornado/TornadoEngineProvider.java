package io.github.llama2j.tornado;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.EngineProvider;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;

/** Registers {@code --engine tornado} (META-INF/services); touches TornadoVM only in {@link #create}. */
public final class TornadoEngineProvider implements EngineProvider {
    @Override
    public String kind() {
        return "tornado";
    }

    @Override
    public InferenceEngine create(Model model, EngineOptions options) {
        TornadoRuntimeCheck.runtime();
        return new TornadoEngine(model, options);
    }

    /** OpenCL sources, one file per task: see {@link KernelSources}. */
    @Override
    public boolean generatesKernels() {
        return true;
    }

    /** GGUF models of F32, F16, Q8_0, Q4_0, Q5_0 (as Q8_0), Q4_K and Q6_K tensors (other types are refused naming the tensor: {@link TensorTypes}). */
    @Override
    public boolean runsGguf() {
        return true;
    }
}
