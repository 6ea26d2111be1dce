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
}
