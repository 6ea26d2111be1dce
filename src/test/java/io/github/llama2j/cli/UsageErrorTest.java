package io.github.llama2j.cli;

import io.github.llama2j.fuzz.TinyFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static io.github.llama2j.cli.CliTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A usage error is the error in a line or two and a pointer to the command's --help, not the whole usage text. */
class UsageErrorTest {

    @Test
    void aBadValueIsOneLineAndAPointerToHelp() {
        CliTestSupport.Run r = run("run", "model.bin", "-n", "x");
        assertEquals(2, r.exitCode());
        assertEquals("Invalid value for option '--steps': 'x' is not an int\nsee 'llama2j run --help'\n", r.err());
        assertEquals("", r.out());
    }

    @Test
    void everyKindOfUsageErrorIsShortAndNamesItsCommand() {
        List<List<String>> cases = List.of(
                List.of("bench", "--threads", "x"),
                List.of("profile", "m.bin", "--tokens"),
                List.of("run", "m.bin", "--bogus"),
                List.of("run"),
                List.of("synth"),
                List.of("quantize", "a"),
                List.of("info", "--nope"),
                List.of("rnu"),
                List.of("--tempreature"));
        for (List<String> args : cases) {
            CliTestSupport.Run r = run(args.toArray(String[]::new));
            String what = "llama2j " + String.join(" ", args) + ":\n" + r.err();
            assertEquals(2, r.exitCode(), what);
            List<String> lines = r.err().lines().toList();
            assertTrue(lines.size() >= 2 && lines.size() <= 3, what);
            String command = args.get(0).startsWith("-") || args.get(0).equals("rnu") ? "llama2j" : "llama2j " + args.get(0);
            assertEquals("see '" + command + " --help'", lines.getLast(), what);
            assertFalse(r.err().contains("Usage:"), what);
        }
    }

    @Test
    void helpStillPrintsTheUsage() {
        CliTestSupport.Run r = run("run", "--help");
        assertEquals(0, r.exitCode());
        assertTrue(r.out().startsWith("Usage: llama2j run"), r.out());
    }

    /** A tiny random llama2.c model written into {@code dir}: its path. */
    private static String tinyModel(Path dir) throws IOException {
        return Files.write(dir.resolve("tiny.bin"), TinyFiles.v0(TinyFiles.tinyShape(true, 0), new Random(1))).toString();
    }

    /** Its tokenizer written into {@code dir}: its path. */
    private static String tinyTokenizer(Path dir) throws IOException {
        return Files.write(dir.resolve("tok.bin"), TinyFiles.tokenizer()).toString();
    }

    /** profile takes run's model options: -z is accepted, and checked against the model. */
    @Test
    void profileTakesTheModelOptionsOfRun(@TempDir Path dir) throws IOException {
        String model = tinyModel(dir), tok = tinyTokenizer(dir);
        CliTestSupport.Run r = run("profile", model, "-z", tok, "--tokens", "2", "--warmup", "1", "--threads", "1");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("2 tokens profiled"), r.out());

        String wrong = Files.write(dir.resolve("short.bin"), new byte[]{1, 0}).toString();
        r = run("profile", model, "--tokenizer", wrong, "--tokens", "2", "--threads", "1");
        assertEquals(2, r.exitCode(), r.err());
        assertTrue(r.err().startsWith("llama2j: ") && r.err().contains("short.bin"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    /** A temperature so small that the logits divided by it overflow: a usage error naming it, exit 2, one line. */
    @Test
    void aTemperatureThatOverflowsIsAUsageErrorNotTheModels(@TempDir Path dir) throws IOException {
        String model = tinyModel(dir), tok = tinyTokenizer(dir);
        CliTestSupport.Run r = run("run", model, "-z", tok, "-n", "4", "-t", "1e-40", "--threads", "1");
        assertEquals(2, r.exitCode(), r.err());
        assertEquals("llama2j: temperature 1.0E-40 is too small: the logits divided by it overflow a float; use a larger"
                + " temperature, or 0 for greedy decoding\n", r.err());
    }
}
