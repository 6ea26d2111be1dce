package io.github.llama2j.cpu;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs a probe JVM for the JIT-state tests: its stdout's lines, or a failure with its stderr; killed past the limit. */
final class Probes {
    private Probes() {
    }

    static List<String> run(List<String> command, String name, int limitSeconds) throws IOException, InterruptedException {
        Path out = Files.createTempFile(name, ".out"), err = Files.createTempFile(name, ".err");
        Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        try {
            assertTrue(p.waitFor(limitSeconds, TimeUnit.SECONDS), () -> name + " probe did not finish in " + limitSeconds
                    + " s: " + String.join(" ", command));
            assertEquals(0, p.exitValue(), () -> String.join(" ", command) + "\n" + read(err));
            return Files.readAllLines(out);
        } finally {
            p.destroyForcibly();
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            return e.toString();
        }
    }
}
