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
     * Asks the next engine this provider creates to keep the device code it generates, for
     * {@link InferenceEngine#dumpKernels}; device code can only be captured while it is compiled, i.e.
     * while the engine is built. Returns false where the engine has no such code to keep.
     */
    default boolean requestKernelSources() {
        return false;
    }
}
