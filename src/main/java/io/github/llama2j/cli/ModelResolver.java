package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;

/** Turns the MODEL argument into a file path. */
public final class ModelResolver {
    private ModelResolver() {
    }

    public static Path resolve(String model, PrintWriter log) {
        Path p = Path.of(model);
        if (Files.exists(p)) {
            return p;
        }
        throw new Llama2jException(model + ": no such model file", Llama2jException.BAD_INPUT);
    }
}
