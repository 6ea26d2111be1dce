package io.github.llama2j.model;

import java.lang.foreign.Arena;
import java.nio.file.Path;

/**
 * A loaded checkpoint: its file, format, configuration and weights mapped from disk.
 * Closing the model unmaps the file; weights must not be used afterwards.
 */
public final class Model implements AutoCloseable {
    private final Path path;
    private final ModelFormat format;
    private final Configuration config;
    private final Weights weights;
    private final Arena arena;

    Model(Path path, ModelFormat format, Configuration config, Weights weights, Arena arena) {
        this.path = path;
        this.format = format;
        this.config = config;
        this.weights = weights;
        this.arena = arena;
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
        arena.close();
    }
}
