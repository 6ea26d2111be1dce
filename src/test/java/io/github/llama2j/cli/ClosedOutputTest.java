package io.github.llama2j.cli;

import io.github.llama2j.TestData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Generated text that can no longer be written (a reader gone, {@code | head}): one line, exit 4, no stack trace. */
class ClosedOutputTest {

    /** An stdout whose reader went away after {@code n} bytes. */
    private static OutputStream brokenAfter(int n) {
        return new OutputStream() {
            int written;

            @Override
            public void write(int b) throws IOException {
                if (++written > n) {
                    throw new IOException("Broken pipe");
                }
            }
        };
    }

    @ParameterizedTest
    @ValueSource(strings = {"generate", "chat"})
    void aClosedStdoutEndsTheRunInOneLine(String mode) {
        String model = TestData.model("stories260K.bin").toString();
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new Io(brokenAfter(20), new ByteArrayInputStream(new byte[0])), new PrintWriter(out), new PrintWriter(err),
                "run", model, "-t", "0", "-n", "100", "-m", mode, "-y", "", "-i", "Once upon a time", "--no-stats");
        assertEquals(4, code, err.toString());
        assertEquals("llama2j: cannot write the output (Broken pipe)\n", err.toString());
    }
}
