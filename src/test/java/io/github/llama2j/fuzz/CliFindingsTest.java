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

    /** The fuzz target's stack-trace check: quoted arguments are not traces, real traces are. */
    @Test
    void stackTraceCheckIgnoresEchoedArguments() {
        assertFalse(CliFuzzTest.STACK_TRACE.matcher("Unmatched arguments from index 0: '2', 'Error:0'\nUsage: llama2j").find());
        assertTrue(CliFuzzTest.STACK_TRACE.matcher("java.lang.IllegalStateException: x\n\tat a.b.C.d(C.java:1)").find());
        assertTrue(CliFuzzTest.STACK_TRACE.matcher("usage\n\tat io.github.llama2j.cli.Main.run(Main.java:3)").find());
    }
}
