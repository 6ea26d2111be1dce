package io.github.llama2j.cpu;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every one-token CPU kernel gives the same bits whatever the JIT has made of it: {@link KernelBitsProbe} in a JVM that
 * only interprets ({@code -Xint}, the Vector API's Java fallback) and in one whose C2 compiles every kernel before its
 * results are printed ({@code -XX:-TieredCompilation -Xbatch}, a low compile threshold) must print the same lines.
 * A kernel that ended a row with {@code reduceLanes(ADD)} would fail: the probe's control line sums that way, and on
 * x86 it must differ between the two JVMs (else neither JVM ran what it was meant to). Run at every vector width
 * (the JVM's own width flags are passed on).
 */
@Tag("vector-widths")
class KernelJitStateTest {

    @Test
    void interpretedAndC2CompiledKernelsGiveTheSameBits() throws Exception {
        List<String> interpreted = probe(List.of("-Xint"), 1);
        List<String> compiled = probe(List.of("-XX:-TieredCompilation", "-Xbatch", "-XX:CompileThreshold=50",
                "-XX:+UnlockDiagnosticVMOptions", "-XX:-BackgroundCompilation"), 300);
        assertEquals(interpreted.size(), compiled.size(), () -> interpreted + "\n" + compiled);
        assertTrue(interpreted.size() > KernelBitsProbe.TYPES.length, interpreted::toString);
        for (int i = 0; i < interpreted.size() - 1; i++) {
            assertEquals(interpreted.get(i), compiled.get(i), "interpreted (first) against compiled by C2 (second)");
        }
        String control = interpreted.getLast();
        assertTrue(control.startsWith(KernelBitsProbe.CONTROL), control);
        if (System.getProperty("os.arch").matches("amd64|x86_64")) {
            assertNotEquals(control, compiled.getLast(), "reduceLanes gave the same bits interpreted and compiled: "
                    + "the probe JVMs did not run what they should, and a kernel summing with it would not be seen");
        }
    }

    private static List<String> probe(List<String> mode, int runs) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"));
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (arg.startsWith("-XX:MaxVectorSize=") || arg.startsWith("-XX:UseAVX=") || arg.equals("-XX:+IgnoreUnrecognizedVMOptions")) {
                command.add(arg); // the width this class runs at
            }
        }
        command.addAll(mode);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), KernelBitsProbe.class.getName(), String.valueOf(runs)));
        Path err = Files.createTempFile("kernel-bits", ".err");
        try {
            Process p = new ProcessBuilder(command).redirectError(err.toFile()).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(300, TimeUnit.SECONDS), "probe did not finish");
            assertEquals(0, p.exitValue(), () -> String.join(" ", command) + "\n" + read(err));
            return out.lines().toList();
        } finally {
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
