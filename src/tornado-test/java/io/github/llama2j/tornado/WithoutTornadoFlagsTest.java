package io.github.llama2j.tornado;

import io.github.llama2j.TestData;
import io.github.llama2j.cli.Main;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A build with the TornadoVM engines started without TornadoVM's JVM flags (plain {@code java -jar}, as
 * docs/tools.md shows): every entry point that needs TornadoVM says so in one line, exit 3, no stack trace. The
 * child JVM gets this JVM's class path (the project's classes and dependencies) but not TornadoVM's module path.
 */
@Tag("tornado")
class WithoutTornadoFlagsTest {

    @ParameterizedTest
    @ValueSource(strings = {"run MODEL --engine tornado -n 2", "run MODEL --engine hybrid -n 2", "run MODEL --engine hybrid --split 0.5 -n 2",
            "bench MODEL --engine hybrid --gen-tokens 2 --prompt-tokens 0", "devices"})
    void saysSoInOneLineWithExitThree(String args) throws IOException, InterruptedException {
        String model = TestData.model("stories260K.bin").toString();
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        Arrays.stream(args.split(" ")).map(a -> a.equals("MODEL") ? model : a).forEach(command::add);
        Process p = new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), args + ": still running");
        List<String> lines = err.lines().filter(l -> !l.startsWith("WARNING:")).toList();
        assertEquals(3, p.exitValue(), args + ": " + err);
        assertEquals(1, lines.size(), args + ": " + err);
        assertTrue(lines.getFirst().contains("TornadoVM runtime not available"), args + ": " + err);
        assertFalse(err.contains("Exception") || err.contains("\tat "), args + ": " + err);
    }
}
