package io.github.llama2j.cli;

import org.junit.jupiter.api.Assumptions;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

/** Runs the CLI in-process and finds the shared test models (only through LLAMA2J_TEST_MODELS). */
final class CliTestSupport {
    private CliTestSupport() {
    }

    /** Exit code and captured streams of one in-process run. */
    record Run(int exitCode, String out, String err) {
        /** stderr without the JVM's incubator-module notice. */
        String errLines() {
            return err.strip();
        }
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Run(code, out.toString(), err.toString());
    }

    /** A file of the shared test set; the test is skipped when LLAMA2J_TEST_MODELS is not set. */
    static Path sharedModel(String name) {
        String dir = System.getenv("LLAMA2J_TEST_MODELS");
        Assumptions.assumeTrue(dir != null && !dir.isBlank(), "LLAMA2J_TEST_MODELS is not set");
        Path p = Path.of(dir, name);
        Assumptions.assumeTrue(Files.isRegularFile(p), p + " is missing");
        return p;
    }
}
