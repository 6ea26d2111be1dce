package io.github.llama2j.cpu;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every one-token CPU kernel gives the same bits whatever the JIT has made of it: {@link KernelBitsProbe} in a JVM that
 * only interprets ({@code -Xint}, the Vector API's Java fallback) and in one whose C2 compiles every kernel before its
 * results are printed ({@code -XX:-TieredCompilation -Xbatch}, a low compile threshold) must print the same lines.
 * A kernel that ended a row with {@code reduceLanes(ADD)} would fail: the probe's control line sums that way, and on
 * x86 it must differ between the two JVMs (else neither JVM ran what it was meant to), and every method that ends
 * rows with a lane sum must show in the compiling JVM's {@code -XX:+PrintCompilation} output. Run at every vector
 * width (the JVM's own width flags are passed on).
 */
@Tag("vector-widths")
class KernelJitStateTest {

    /**
     * The methods that end rows with a sum across float lanes: the compiling JVM must have compiled each (with
     * {@code -XX:+PrintCompilation}); one that C2 inlined into a caller instead, or gave up on, fails the test rather
     * than being compared uncompiled.
     */
    static final List<String> ROW_SUM_METHODS = List.of("GgmlMatmul::q8_0", "GgmlMatmul::q8_0Packed", "GgmlMatmul::q4_0",
            "GgmlMatmul::q5_1", "GgmlMatmul::q2_K", "GgmlMatmul::iq4", "GgmlMatmul::q3_K", "GgmlMatmul::q5_K",
            "GgmlMatmul::q6_K", "GgmlMatmul::f16Rows4", "GgmlMatmul::f16Rows", "GgmlMatmul::f16RowSpecial",
            "GgmlMatmul::bf16", "KQuantPacked::q4_K", "KQuantPacked::q5_K", "KQuantPacked::q6_K", "VectorKernels::rows4",
            "VectorKernels::row");

    @Test
    void interpretedAndC2CompiledKernelsGiveTheSameBits() throws Exception {
        Path interpretedLines = Files.createTempFile("kernel-bits", ".txt"), compiledLines = Files.createTempFile("kernel-bits", ".txt");
        List<String> compiledOut, interpreted, compiled;
        try {
            probe(List.of("-Xint"), 1, interpretedLines);
            compiledOut = probe(List.of("-XX:-TieredCompilation", "-Xbatch", "-XX:CompileThreshold=50", "-XX:+PrintCompilation"),
                    300, compiledLines);
            interpreted = Files.readAllLines(interpretedLines);
            compiled = Files.readAllLines(compiledLines);
        } finally {
            Files.deleteIfExists(interpretedLines);
            Files.deleteIfExists(compiledLines);
        }
        for (String method : ROW_SUM_METHODS) {
            String name = "io.github.llama2j.cpu." + method + " ";
            assertTrue(compiledOut.stream().anyMatch(l -> l.contains(name) && !l.contains("COMPILE SKIPPED")),
                    method + " was not compiled on its own by C2 in the compiling JVM (inlined, or given up on): its bits"
                            + " were not compared compiled; see -XX:+PrintCompilation's output");
        }
        assertTrue(compiledOut.stream().noneMatch(l -> l.contains("COMPILE SKIPPED") && l.contains("io.github.llama2j")),
                () -> compiledOut.stream().filter(l -> l.contains("COMPILE SKIPPED")).toList().toString());
        assertEquals(interpreted.size(), compiled.size(), () -> interpreted + "\n" + compiled);
        assertTrue(interpreted.size() > 2 * KernelBitsProbe.TYPES.length, interpreted::toString);
        for (int i = 0; i < interpreted.size() - 1; i++) {
            assertEquals(interpreted.get(i), compiled.get(i), "interpreted (first) against compiled by C2 (second)");
        }
        String control = interpreted.getLast();
        assertTrue(control.startsWith(KernelBitsProbe.CONTROL), control);
        if (System.getProperty("os.arch").matches("amd64|x86_64")) {
            assertNotEquals(control, compiled.getLast(), "reduceLanes gave the same bits interpreted and compiled: the"
                    + " probe JVMs did not run what they should (or this JDK's C2 now adds the lanes in the Java"
                    + " fallback's order), and a kernel summing with it would not be seen");
        }
    }

    /** Runs the probe in a JVM of the given mode, its lines written to {@code lines}; returns the JVM's stdout. */
    private static List<String> probe(List<String> mode, int runs, Path lines) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"));
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (arg.startsWith("-XX:MaxVectorSize=") || arg.startsWith("-XX:UseAVX=") || arg.equals("-XX:+IgnoreUnrecognizedVMOptions")) {
                command.add(arg); // the width this class runs at
            }
        }
        command.addAll(mode);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), KernelBitsProbe.class.getName(), String.valueOf(runs),
                lines.toString()));
        return Probes.run(command, "kernel-bits", 300);
    }
}
