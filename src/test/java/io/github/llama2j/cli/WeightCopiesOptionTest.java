package io.github.llama2j.cli;

import io.github.llama2j.TestData;
import io.github.llama2j.engine.WeightCopies;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static io.github.llama2j.cli.CliTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --weight-copies=auto|off} on every command that builds an engine (run, bench, profile, serve). */
class WeightCopiesOptionTest {

    @CommandLine.Command(name = "t")
    static final class Holder {
        @CommandLine.Mixin
        EngineMixin engine;
    }

    private static WeightCopies parsed(String... args) {
        Holder h = new Holder();
        new CommandLine(h).parseArgs(args);
        return h.engine.toOptions(false, 1).weightCopies();
    }

    @Test
    void theValuesParseAndAutoIsTheDefault() {
        assertEquals(WeightCopies.AUTO, parsed());
        assertEquals(WeightCopies.AUTO, parsed("--weight-copies=auto"));
        assertEquals(WeightCopies.OFF, parsed("--weight-copies=off"));
        assertEquals(WeightCopies.OFF, parsed("--weight-copies", "OFF"));
    }

    @Test
    void aBadValueIsAUsageErrorOnEveryCommandThatBuildsAnEngine() {
        for (String command : List.of("run", "bench", "profile", "serve")) {
            CliTestSupport.Run r = run(command, "model.bin", "--weight-copies=none");
            assertEquals(2, r.exitCode(), command + ": " + r.err());
            assertEquals("Invalid value for option '--weight-copies': 'none' is not auto or off\nsee 'llama2j " + command
                    + " --help'\n", r.err(), command);
            assertEquals("", r.out(), command);
        }
    }

    /** off: the same text as auto, and --verbose says which copies the engine made (none with off). */
    @Test
    void offGeneratesAutosTextAndVerboseSaysWhatWasCopied() {
        String file = TestData.gguf().resolve("models/llama2-tiny-q4_k_m.gguf").toString();
        String[] auto = runCapturingStderr("run", file, "-t", "0", "-n", "24", "-i", "Once upon", "--no-stats", "--verbose", "--threads", "1");
        String[] off = runCapturingStderr("run", file, "-t", "0", "-n", "24", "-i", "Once upon", "--no-stats", "--verbose", "--threads", "1",
                "--weight-copies=off");
        assertEquals(auto[0], off[0], "the generated text");
        assertTrue(auto[1].matches("(?s).*\\[cpu] weight copies \\(auto\\): \\d+ matrices, \\d+ MiB \\{Q4_K=\\d+, Q6_K=\\d+} made in \\d+\\.\\d\\d s\n.*"), auto[1]);
        assertTrue(off[1].contains("[cpu] weight copies (off): none, every product reads the file's layout"), off[1]);
    }

    /** --verbose also says how long the CPU engine's warm-up took and what it ran, or that it was off. */
    @Test
    void verboseReportsTheWarmUp() {
        String file = TestData.gguf().resolve("models/llama2-tiny-q4_k_m.gguf").toString();
        String[] on = runCapturingStderr("run", file, "-t", "0", "-n", "8", "-i", "Once", "--no-stats", "--verbose", "--threads", "1");
        String[] off = runCapturingStderr("run", file, "-t", "0", "-n", "8", "-i", "Once", "--no-stats", "--verbose", "--threads", "1",
                "--no-warmup");
        assertTrue(on[1].matches("(?s).*\\[cpu] warm-up: kernels \\d+\\.\\d\\d s \\(\\d+ kinds of product, \\d+ warmed up now"
                + "(, \\d+ skipped: out of time)?\\), forward \\d+\\.\\d\\d s \\(("
                + "\\d+ one-token passes in \\d+\\.\\d\\d s( \\(stopped: too slow to reach \\d+ in \\d+ s, so no prompts\\))?, "
                + "\\d+ prompts of \\d+ tokens in \\d+\\.\\d\\d s, batched attention \\d+\\.\\d\\d s"
                + "|done earlier in this JVM)\\).*"), on[1]);
        assertTrue(off[1].contains("[cpu] warm-up: off\n"), off[1]);
        assertEquals(on[0], off[0], "the generated text");
    }

    /** stdout and everything written to stderr (the engines' --verbose lines go to System.err). */
    private static String[] runCapturingStderr(String... args) {
        PrintStream saved = System.err;
        ByteArrayOutputStream engineErr = new ByteArrayOutputStream();
        CliTestSupport.Run r;
        try {
            System.setErr(new PrintStream(engineErr, true, StandardCharsets.UTF_8));
            r = run(args);
        } finally {
            System.setErr(saved);
        }
        assertEquals(0, r.exitCode(), r.err());
        return new String[]{r.out(), r.err() + engineErr.toString(StandardCharsets.UTF_8)};
    }
}
