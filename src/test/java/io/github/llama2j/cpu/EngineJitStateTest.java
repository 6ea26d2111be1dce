package io.github.llama2j.cpu;

import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole CPU forward pass, not only its matmul kernels ({@link KernelJitStateTest}), gives the same bits whatever
 * the JIT has compiled: {@link EngineBitsProbe} (a batched prompt, then greedy tokens) on a llama2.c float32 model and
 * GGUF Q4_K_M and Q4_0 files prints the same logits' bits in a JVM that only interprets ({@code -Xint}) and in one
 * where the engine's warm-up has compiled everything first. Norms, RoPE, attention, softmax and the activations'
 * quantization are in it, so an order of float sums that a compiler may change anywhere on the path would show.
 */
class EngineJitStateTest {

    @Test
    void interpretedAndCompiledEnginesGiveTheSameLogits() throws Exception {
        List<String> files = List.of(TestData.model("stories260K.bin").toString(),
                TestData.gguf().resolve("models/llama2-tiny-q4_k_m.gguf").toString(),
                TestData.gguf().resolve("models/llama2-tiny-q4_0.gguf").toString());
        List<String> interpreted = probe(List.of("-Xint"), "cold", files);
        List<String> compiled = probe(List.of(), "warm", files);
        assertEquals(files.size(), interpreted.size(), interpreted::toString);
        assertEquals(interpreted, compiled, "interpreted (first) against warmed up (second)");
    }

    private static List<String> probe(List<String> mode, String warm, List<String> files) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"));
        command.addAll(mode);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), EngineBitsProbe.class.getName(), warm));
        command.addAll(files);
        Path err = Files.createTempFile("engine-bits", ".err");
        try {
            Process p = new ProcessBuilder(command).redirectError(err.toFile()).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(600, TimeUnit.SECONDS), "probe did not finish");
            assertEquals(0, p.exitValue(), () -> String.join(" ", command) + "\n" + readQuietly(err));
            return out.lines().toList();
        } finally {
            Files.deleteIfExists(err);
        }
    }

    private static String readQuietly(Path p) {
        try {
            return Files.readString(p);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }
}
