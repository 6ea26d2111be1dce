package io.github.llama2j.cli;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * The byte streams a command reads and writes. Generated text is written as raw bytes (run.c prints
 * token pieces byte by byte, not always whole UTF-8 characters), so commands get byte streams
 * rather than picocli's character writers; tests pass their own to capture the exact bytes.
 */
public record Io(OutputStream stdout, InputStream stdin) {
    public static Io system() {
        return new Io(new FileOutputStream(FileDescriptor.out), new FileInputStream(FileDescriptor.in));
    }
}
