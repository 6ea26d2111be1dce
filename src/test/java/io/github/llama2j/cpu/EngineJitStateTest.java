package io.github.llama2j.cpu;

import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole CPU forward pass, not only its matmul kernels ({@link KernelJitStateTest}), gives the same bits whatever
 * the JIT has compiled: {@link EngineBitsProbe} (a batched prompt, then greedy tokens) on a llama2.c float32 model and
 * GGUF Q4_K_M and Q4_0 files writes the same logits' bits in a JVM that only interprets ({@code -Xint}) and in one
 * whose C2 compiles each method after 50 calls, synchronously, with the sequence run 30 times first (the kernels and
 * the engine's steps must show in its {@code -XX:+PrintCompilation} output). Norms, RoPE, attention, softmax and the activations'
 * quantization are in it, so an order of float sums that a compiler may change anywhere on the path would show.
 */
class EngineJitStateTest {

    @Test
    void interpretedAndCompiledEnginesGiveTheSameLogits() throws Exception {
        List<String> files = List.of(TestData.model("stories260K.bin").toString(),
                TestData.gguf().resolve("models/llama2-tiny-q4_k_m.gguf").toString(),
                TestData.gguf().resolve("models/llama2-tiny-q4_0.gguf").toString());
        Path interpretedLines = Files.createTempFile("engine-bits", ".txt"), compiledLines = Files.createTempFile("engine-bits", ".txt");
        try {
            probe(List.of("-Xint"), 1, interpretedLines, files);
            List<String> compiledOut = probe(List.of("-XX:-TieredCompilation", "-Xbatch", "-XX:CompileThreshold=50",
                    "-XX:+PrintCompilation"), 30, compiledLines, files);
            for (String method : List.of("VectorKernels::rows4", "KQuantPacked::q4_K", "KQuantPacked::q6_K", "CpuEngine::forward ",
                    "CpuEngine::forwardChunk", "CpuLayer::attention", "Attention::head")) {
                assertTrue(compiledOut.stream().anyMatch(l -> l.contains("io.github.llama2j.cpu." + method)),
                        method + " was not compiled in the compiling JVM: see -XX:+PrintCompilation's output");
            }
            List<String> interpreted = Files.readAllLines(interpretedLines);
            assertEquals(files.size(), interpreted.size(), interpreted::toString);
            assertEquals(interpreted, Files.readAllLines(compiledLines), "interpreted (first) against compiled (second)");
        } finally {
            Files.deleteIfExists(interpretedLines);
            Files.deleteIfExists(compiledLines);
        }
    }

    /** Runs the probe in a JVM of the given mode, its lines written to {@code lines}; returns the JVM's stdout. */
    private static List<String> probe(List<String> mode, int reps, Path lines, List<String> files) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"));
        command.addAll(mode);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), EngineBitsProbe.class.getName(),
                String.valueOf(reps), lines.toString()));
        command.addAll(files);
        return Probes.run(command, "engine-bits", 600);
    }
}
