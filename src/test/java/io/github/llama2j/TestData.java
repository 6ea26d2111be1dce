package io.github.llama2j;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Locates the shared test data (llama2.c's checkpoints and golden outputs) through environment
 * variables: LLAMA2J_TEST_MODELS, LLAMA2J_TEST_GOLDEN and LLAMA2J_TEST_GGUF (shared/gguf: GGUF models,
 * vocabularies and llama.cpp's outputs). Tests that need them are skipped when
 * they are unset, unless LLAMA2J_REQUIRE_TEST_DATA=true (as in CI), where a missing directory fails.
 */
public final class TestData {
    private TestData() {
    }

    public static Path models() {
        return dir("LLAMA2J_TEST_MODELS");
    }

    public static Path golden() {
        return dir("LLAMA2J_TEST_GOLDEN");
    }

    /** shared/gguf: models/, vocab/, golden/ (see its README). */
    public static Path gguf() {
        return dir("LLAMA2J_TEST_GGUF");
    }

    public static Path model(String file) {
        return models().resolve(file);
    }

    private static Path dir(String variable) {
        String value = System.getenv(variable);
        boolean required = "true".equals(System.getenv("LLAMA2J_REQUIRE_TEST_DATA"));
        if (value == null || value.isBlank() || !Files.isDirectory(Path.of(value))) {
            if (required) {
                throw new AssertionError(variable + " must name the test data directory (is '" + value + "')");
            }
            Assumptions.abort(variable + " not set: test data unavailable");
        }
        return Path.of(value);
    }
}
