package io.github.llama2j.engine;

import io.github.llama2j.model.Model;

/**
 * Creates engines of one kind. The CPU engine is built in; the TornadoVM and hybrid engines are
 * compiled only where a TornadoVM SDK is present and are found through {@link java.util.ServiceLoader}.
 */
public interface EngineProvider {
    /** The {@code --engine} value this provider serves. */
    String kind();

    InferenceEngine create(Model model, EngineOptions options);

    /**
     * Whether this provider's engines generate device code they can keep for {@link InferenceEngine#dumpKernels}
     * (when built with {@link EngineOptions#keepKernelSources()}); false where the engine runs Java.
     */
    default boolean generatesKernels() {
        return false;
    }

    /**
     * Whether this provider's engines run GGUF models (their architectures, tensor types and llama.cpp's
     * arithmetic); where false, {@link Engines#create} refuses a GGUF model up front (exit 3).
     */
    default boolean runsGguf() {
        return false;
    }
}
