package io.github.llama2j.fuzz;

import io.github.llama2j.cli.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --threads 1000000} started a million threads (each CPU worker is a real thread) before
 * anything else could fail. Seen while writing the CLI fuzzer, which lowers thread counts to keep its
 * inputs fast and so cannot hit this limit itself.
 */
class CliFindingsTest {

    @Test
    void absurdThreadCountIsAUsageError(@TempDir Path dir) throws IOException {
        TinyFiles.Shape shape = TinyFiles.tinyShape(true, 0);
        Path model = Files.write(dir.resolve("tiny.bin"), TinyFiles.v0(shape, new Random(1)));
        Path tok = Files.write(dir.resolve("tok.bin"), TinyFiles.tokenizer());
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true),
                "run", model.toString(), "-z", tok.toString(), "-n", "1", "--no-stats", "--threads", "5000");
        assertEquals(2, code, err.toString());
        assertEquals("llama2j: --threads is 5000, must be in [1, 1024]", err.toString().strip());
    }

    /**
     * From the fuzzer: {@code run MODEL -m generate -n @.} exited 1 with picocli's "Could not read argument
     * file @." and a "Caused by" line. picocli expanded any argument starting with '@' into the lines of
     * the file it names. llama2j has no argument files: such an argument is taken as it is.
     */
    @Test
    void atArgumentsAreNotArgumentFiles(@TempDir Path dir) throws IOException {
        TinyFiles.Shape shape = TinyFiles.tinyShape(true, 0);
        String model = Files.write(dir.resolve("tiny.bin"), TinyFiles.v0(shape, new Random(1))).toString();
        String tok = Files.write(dir.resolve("tok.bin"), TinyFiles.tokenizer()).toString();
        Path argFile = Files.writeString(dir.resolve("args.txt"), "--bogus\n");

        StringWriter err = new StringWriter();
        int code = Main.execute(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true),
                "run", model, "-z", tok, "-m", "generate", "-n", "@" + dir);
        assertEquals(2, code, err.toString());
        assertTrue(err.toString().startsWith("Invalid value for option '--steps': '@" + dir + "' is not an int"), err.toString());
        assertFalse(CliFuzzTest.STACK_TRACE.matcher(err.toString()).find(), err.toString());

        // A prompt that starts with '@' is a prompt, even when a file has that name: the (long, absolute)
        // path is tokenized and found longer than the tiny model's seq_len, where the file's "--bogus"
        // would have been the prompt.
        err = new StringWriter();
        code = Main.execute(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true),
                "run", model, "-z", tok, "-n", "3", "-t", "0", "--no-stats", "-i", "@" + argFile);
        assertEquals(2, code, err.toString());
        assertTrue(err.toString().startsWith("llama2j: prompt is "), err.toString());
        assertTrue(err.toString().contains("longer than the model's seq_len 16"), err.toString());
    }

    /**
     * From the fuzzer, a false alarm of the check itself: {@code -n "X...\nException in thread O\n"} is
     * rightly a usage error, but picocli quotes the value back, so a line of stderr started with
     * "Exception in thread". The check now skips text that an argument holds after a line break.
     */
    @Test
    void stackTraceCheckIgnoresArgumentsWithLineBreaks() {
        String arg = "X\u00bf%R?q.h@\nException in thread O\n";
        String err = "Invalid value for option '--steps': '" + arg + "' is not an int\nUsage: llama2j run [-hV]\n";
        String[] args = {"run", "m.bin", "-m", "chat", "-n", arg};
        assertTrue(CliFuzzTest.STACK_TRACE.matcher(err).find(), "the pattern alone matches");
        assertFalse(CliFuzzTest.hasStackTrace(err, args));
        assertFalse(CliFuzzTest.hasStackTrace("x: 'a\r\tat b'", new String[]{"a\r\tat b"}));
        // A real trace is still one, even next to such an argument.
        String trace = "java.lang.IllegalStateException: x\n\tat a.b.C.d(C.java:1)\n";
        assertTrue(CliFuzzTest.hasStackTrace(err + trace, args));
        assertTrue(CliFuzzTest.hasStackTrace(trace, new String[]{"tat a.b.C", "\tat a"}));
    }

    /** The fuzz target scans line starts rather than running STACK_TRACE's find(): the same answer. */
    @Test
    void stackTraceScanAgreesWithThePattern() {
        String[] parts = {"\n", "\r", "\r\n", "\n\r", "\u0085", "\u2028", "\u2029", " ", "\t", "\f", "\u000B", "at ", "at",
                "\tat a.B.c(B.java:1)", "Caused by: ", "Caused by:", "Exception in thread ", "Exception in thread",
                "java.lang.", "java.", "a.", "Foo", "Error", "Exception", "Errors", "$", "$1", ".", "x", "\u00c4", "llama2j: ",
                "Usage: llama2j run [-hV]", "'", ":", "E", "C"};
        Random rnd = new Random(11);
        int traces = 0;
        for (int i = 0; i < 200_000; i++) {
            StringBuilder b = new StringBuilder();
            for (int k = rnd.nextInt(8); k >= 0; k--) {
                b.append(parts[rnd.nextInt(parts.length)]);
            }
            String s = b.toString();
            boolean expected = CliFuzzTest.STACK_TRACE.matcher(s).find();
            assertEquals(expected, CliFuzzTest.hasStackTrace(s, new String[0]), () -> "'" + s.replace("\r", "\\r").replace("\n", "\\n") + "'");
            traces += expected ? 1 : 0;
        }
        assertTrue(traces > 10_000 && traces < 190_000, "both answers are common: " + traces);
    }

    /** The fuzz target's stack-trace check: quoted arguments are not traces, real traces are. */
    @Test
    void stackTraceCheckIgnoresEchoedArguments() {
        assertFalse(CliFuzzTest.STACK_TRACE.matcher("Unmatched arguments from index 0: '2', 'Error:0'\nUsage: llama2j").find());
        assertTrue(CliFuzzTest.STACK_TRACE.matcher("java.lang.IllegalStateException: x\n\tat a.b.C.d(C.java:1)").find());
        assertTrue(CliFuzzTest.STACK_TRACE.matcher("usage\n\tat io.github.llama2j.cli.Main.run(Main.java:3)").find());
    }
}
