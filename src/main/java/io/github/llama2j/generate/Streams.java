package io.github.llama2j.generate;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;

/** The console I/O both generators share: flushed writes and line reads. */
final class Streams {
    private Streams() {
    }

    /**
     * Writes and flushes (pieces appear as they come). Output that can no longer be written (a reader that went away,
     * {@code | head}; a closed stdout) ends the run with one line and exit 4, not a stack trace.
     */
    static void write(OutputStream out, byte[] bytes) {
        if (bytes.length == 0) {
            return;
        }
        try {
            out.write(bytes);
            out.flush();
        } catch (IOException e) {
            throw new io.github.llama2j.Llama2jException("cannot write the output (" + e.getMessage() + ")",
                    io.github.llama2j.Llama2jException.IO_FAILURE, e);
        }
    }

    /** One line without its newline; null at the end of input (nothing read). */
    static byte[] readLine(InputStream in) {
        try {
            ByteArrayOutputStream line = new ByteArrayOutputStream();
            int b;
            boolean any = false;
            while ((b = in.read()) != -1) {
                any = true;
                if (b == '\n') {
                    break;
                }
                line.write(b);
            }
            return any ? line.toByteArray() : null;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
