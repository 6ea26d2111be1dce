package io.github.llama2j.engine;

import io.github.llama2j.model.Configuration;

/**
 * The forward-pass contract every engine implements (CPU, TornadoVM, hybrid): given the token at a
 * position, advance the key/value cache by that position and return the logits over the vocabulary.
 * Positions must be fed in order 0, 1, 2, ... within one generation; {@link #reset()} starts over.
 */
public interface InferenceEngine extends AutoCloseable {

    /** Short name for stats and profiles, e.g. {@code cpu}, {@code cpu-exact}, {@code tornado:opencl}. */
    String name();

    Configuration config();

    /**
     * Runs the transformer on {@code token} at {@code pos} (0 &lt;= pos &lt; seq_len) and returns
     * {@code vocab_size} logits. The array is owned by the engine and overwritten by the next call;
     * callers (the sampler) may modify it in place.
     */
    float[] forward(int token, int pos);

    /** Forgets the cached positions, for a new generation with the same weights. */
    default void reset() {
    }

    @Override
    default void close() {
    }
}
