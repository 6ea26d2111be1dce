package io.github.llama2j.engine;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.profile.Profiler;

import java.nio.file.Path;
import java.util.List;

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

    /**
     * Runs the transformer on {@code tokens} at positions {@code startPos, startPos + 1, ...} (a prompt, or the
     * new part of one), writing the key/value cache of every one of them, and returns the logits of the last
     * token, as {@link #forward} would after feeding them one by one (the array is the engine's, as there).
     * Engines that can push the tokens through as a matrix (the CPU engine: each weight row is read once for
     * all of them) override this; the default feeds them one at a time.
     *
     * @throws IllegalArgumentException for an empty array, a token outside the vocabulary or positions past seq_len
     */
    default float[] forwardBatch(int[] tokens, int startPos) {
        checkBatchArguments(config(), tokens, startPos);
        float[] logits = null;
        for (int i = 0; i < tokens.length; i++) {
            logits = forward(tokens[i], startPos + i);
        }
        return logits;
    }

    /**
     * Sends timed events (per task kernels, copies, compilation) to {@code profiler} from now on;
     * {@link Profiler#NONE} turns profiling off. Engines that cannot be profiled say so.
     */
    default void setProfiler(Profiler profiler) {
        throw new Llama2jException("engine " + name() + " cannot be profiled", Llama2jException.UNAVAILABLE);
    }

    /** The names of the tasks one forward pass runs, in order (the rows a profile can have). */
    default List<String> taskNames() {
        return List.of();
    }

    /** Writes the generated device code of every task (OpenCL C, PTX, SPIR-V) to {@code dir}, one file per task. */
    default void dumpKernels(Path dir) {
        throw new Llama2jException("engine " + name() + " runs no generated kernels to dump (use --engine tornado)",
                Llama2jException.BAD_USAGE);
    }

    /**
     * Device kernel launches one {@link #forward} makes (every task of every graph it executes); 0 for an
     * engine that launches none (the CPU engine). Shown by {@code --verbose}, {@code profile} and {@code bench --json}.
     */
    default int launchesPerToken() {
        return 0;
    }

    /**
     * Task-graph executions one {@link #forward} makes (each a host-side {@code execute()} of TornadoVM's
     * interpreter); 0 for an engine that executes none or does not count them. Shown with the launches.
     */
    default int graphsPerToken() {
        return 0;
    }

    /**
     * Why this engine runs, when another engine chose it ({@code --engine hybrid --split auto} may run the CPU or
     * the TornadoVM engine, or a split): the candidates and their measured times, one line; null when the
     * engine was asked for by name. Shown by {@code profile} and {@code bench --json}.
     */
    default String selection() {
        return null;
    }

    /** Forgets the cached positions, for a new generation with the same weights. */
    default void reset() {
    }

    @Override
    default void close() {
    }

    /**
     * The argument checks of {@link #forwardBatch}: at least one token, each in the vocabulary, all positions
     * in [0, seq_len).
     *
     * @throws IllegalArgumentException naming the value and its range
     */
    static void checkBatchArguments(Configuration c, int[] tokens, int startPos) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("an empty batch of tokens");
        }
        if (startPos < 0 || startPos > c.seqLen() - tokens.length) {
            throw new IllegalArgumentException("positions " + startPos + " to " + ((long) startPos + tokens.length - 1)
                    + " outside [0, seq_len " + c.seqLen() + ")");
        }
        for (int token : tokens) {
            checkForwardArguments(c, token, startPos);
        }
    }

    /**
     * The argument checks every {@link #forward} starts with: token in the vocabulary, pos in [0, seq_len).
     *
     * @throws IllegalArgumentException naming the value and its range
     */
    static void checkForwardArguments(Configuration c, int token, int pos) {
        if (token < 0 || token >= c.vocabSize()) {
            throw new IllegalArgumentException("token " + token + " outside the vocabulary [0, " + c.vocabSize() + ")");
        }
        if (pos < 0 || pos >= c.seqLen()) {
            throw new IllegalArgumentException("position " + pos + " outside [0, seq_len " + c.seqLen() + ")");
        }
    }
}
