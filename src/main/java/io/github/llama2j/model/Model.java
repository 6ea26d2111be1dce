package io.github.llama2j.model;

import io.github.llama2j.gguf.GgufFile;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A loaded model: its file, format, configuration and weights mapped from disk (a llama2.c checkpoint
 * or a GGUF file, whose metadata stays available through {@link #gguf()}).
 * Closing the model unmaps the file; weights must not be used afterwards.
 */
public final class Model implements AutoCloseable {
    private final Path path;
    private final ModelFormat format;
    private final Configuration config;
    private final Weights weights;
    private final AutoCloseable mapping;
    private final GgufFile gguf;
    private final Architecture architecture;

    Model(Path path, ModelFormat format, Configuration config, Weights weights, Arena arena) {
        this(path, format, config, weights, arena, null, null);
    }

    /** A model read from a GGUF file; closing it closes the file. */
    Model(GgufFile gguf, Architecture architecture, Configuration config, Weights weights) {
        this(gguf.path(), ModelFormat.GGUF, config, weights, gguf, gguf, architecture);
    }

    private Model(Path path, ModelFormat format, Configuration config, Weights weights, AutoCloseable mapping,
                  GgufFile gguf, Architecture architecture) {
        this.path = path;
        this.format = format;
        this.config = config;
        this.weights = weights;
        this.mapping = mapping;
        this.gguf = gguf;
        this.architecture = architecture;
    }

    /** The GGUF file this model was read from (its metadata: tokenizer, chat template), empty for llama2.c checkpoints. */
    public Optional<GgufFile> gguf() {
        return Optional.ofNullable(gguf);
    }

    /** The GGUF architecture, empty for llama2.c checkpoints. */
    public Optional<Architecture> architecture() {
        return Optional.ofNullable(architecture);
    }

    public Path path() {
        return path;
    }

    public ModelFormat format() {
        return format;
    }

    public Configuration config() {
        return config;
    }

    public Weights weights() {
        return weights;
    }

    @Override
    public void close() {
        try {
            mapping.close();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
