package io.github.llama2j.cli;

import io.github.llama2j.fuzz.TinyFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Main#execute} reuses its picocli command lines: every call must still behave as on a fresh
 * command line, whatever the calls before it set.
 */
class CommandLineReuseTest {

    private record Outcome(int code, String out, String err, String stdout) {
    }

    /**
     * A command line built while System.err was another stream (a test capturing the engines' --verbose lines) writes its
     * error messages to the writer it is given, not to that stream: picocli's default strategy object remembered
     * System.err as it was when the command line was built and set it again on every execute, so the messages of every
     * later call on the reused command line went to the test's discarded stream.
     */
    @Test
    void errorsGoToTheGivenWriterWhateverSystemErrWasWhenTheLineWasBuilt() {
        java.io.PrintStream saved = System.err;
        ByteArrayOutputStream elsewhere = new ByteArrayOutputStream();
        CommandLine cl;
        try {
            System.setErr(new java.io.PrintStream(elsewhere, true, StandardCharsets.UTF_8));
            cl = Main.commandLine(new Io(new ByteArrayOutputStream(), new ByteArrayInputStream(new byte[0])));
        } finally {
            System.setErr(saved);
        }
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(new StringWriter(), true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute("run", io.github.llama2j.TestData.model("stories260K.bin").toString(), "--split", "0.5");
        assertEquals(2, code, err.toString());
        assertEquals("llama2j: --split applies to --engine hybrid only, not cpu\n", err.toString());
        assertEquals("", elsewhere.toString(StandardCharsets.UTF_8));
    }

    @Test
    void reusedCommandLinesBehaveLikeFreshOnes(@TempDir Path dir) throws IOException {
        TinyFiles.Shape tiny = TinyFiles.tinyShape(true, 4);
        // 64 positions, not 16: a chat's first turn in the tiny tokenizer's short pieces must fit (a longer one is an error)
        TinyFiles.Shape shape = new TinyFiles.Shape(tiny.dim(), tiny.hidden(), tiny.layers(), tiny.heads(), tiny.kvHeads(), tiny.vocab(), 64,
                tiny.shared(), tiny.groupSize());
        String model = Files.write(dir.resolve("tiny.bin"), TinyFiles.v0(shape, new Random(3))).toString();
        String q80 = Files.write(dir.resolve("tiny_q80.bin"), TinyFiles.v2(shape, new Random(4))).toString();
        String tok = Files.write(dir.resolve("tok.bin"), TinyFiles.tokenizer()).toString();
        // Options set by one line must not leak into the next; errors and help in between.
        List<String[]> lines = List.of(
                new String[]{"run", model, "-z", tok, "-t", "0.8", "-p", "0.5", "-s", "7", "-n", "9", "-i", "ab", "--threads", "2", "--no-stats"},
                new String[]{"run", model, "-z", tok, "-s", "7", "--no-stats"},
                new String[]{"run", q80, "-z", tok, "-t", "0", "-m", "chat", "-y", "sys", "-n", "12", "--exact", "--no-stats"},
                new String[]{"run", q80, "-z", tok, "-t", "0", "-n", "5", "--no-stats"},
                new String[]{"run", model, "--bogus"},
                new String[]{"run", model, "-n"},
                new String[]{"run", model, "-n", "x"},
                new String[]{"run", model, "-z"},
                new String[]{"run", "--steps", "3"},
                new String[]{"run", model, "-z", tok, "--mode", "chat", "--no-stats", "-t", "0"},
                new String[]{"run", model, "-z", tok, "-t", "-1"},
                new String[]{"run", model, "-z", tok, "--threads", "1,2"},
                new String[]{"info", "--nope"},
                new String[]{"bench", "--threads", "x"},
                new String[]{"synth"},
                new String[]{"quantize", "a"},
                new String[]{"--tempreature"},
                new String[]{"rnu"},
                new String[]{"2", "Error:0"},
                new String[]{"help", "run"},
                new String[]{"run", "-h"},
                new String[]{"-V"},
                new String[]{});
        byte[] stdin = "hello\nmore\n".getBytes(StandardCharsets.UTF_8);
        // The usage-error handler of a fresh command line (a short message and a pointer to --help).
        CommandLine.IParameterExceptionHandler freshHandler = Main.commandLine(Io.system()).getParameterExceptionHandler();
        int generated = 0, usages = 0;
        for (int round = 0; round < 3; round++) {
            for (String[] args : lines) {
                Outcome reused = run(null, stdin, args);
                Outcome fresh = run(freshHandler, stdin, args);
                assertEquals(fresh, reused, () -> "llama2j " + String.join(" ", args));
                generated += reused.code() == 0 && !reused.stdout().isEmpty() ? 1 : 0;
                usages += reused.code() == 2 && reused.err().contains(" --help'") ? 1 : 0;
            }
        }
        // Not vacuous: the runs generate text, and the usage errors point to the help.
        assertEquals(3 * 5, generated);
        assertTrue(usages >= 3 * 8, "usage errors: " + usages);
    }

    /** One call: through {@link Main#execute} when {@code handler} is null, else on a new command line with that handler. */
    private static Outcome run(CommandLine.IParameterExceptionHandler handler, byte[] stdin, String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        Io io = new Io(stdout, new ByteArrayInputStream(stdin));
        int code;
        if (handler == null) {
            code = Main.execute(io, new PrintWriter(out, true), new PrintWriter(err, true), args);
        } else {
            CommandLine cl = Main.commandLine(io);
            cl.setParameterExceptionHandler(handler);
            cl.setOut(new PrintWriter(out, true));
            cl.setErr(new PrintWriter(err, true));
            code = cl.execute(args);
        }
        return new Outcome(code, out.toString(), err.toString(), stdout.toString(StandardCharsets.ISO_8859_1));
    }
}
