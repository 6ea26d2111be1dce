package io.github.llama2j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/** The checks every model reader makes before mapping a file, with the project's one-line errors. */
public final class InputFiles {
    private InputFiles() {
    }

    /** The file's name as errors show it. */
    public static String name(Path path) {
        return path.getFileName() == null ? path.toString() : path.getFileName().toString();
    }

    /**
     * The size of the regular file {@code path}: a missing file or a directory is bad input (exit 2),
     * an unreadable one an I/O failure (exit 4).
     *
     * @param kind what the file should be, for the directory error ("a model file", "a GGUF file")
     */
    public static long size(Path path, String kind) {
        String name = name(path);
        long size;
        try {
            size = Files.size(path);
        } catch (NoSuchFileException e) {
            throw new Llama2jException(name + ": no such file", Llama2jException.BAD_INPUT);
        } catch (IOException e) {
            throw new Llama2jException(name + ": cannot read (" + e.getMessage() + ")", Llama2jException.IO_FAILURE, e);
        }
        if (Files.isDirectory(path)) {
            throw new Llama2jException(name + ": is a directory, not " + kind);
        }
        return size;
    }
}
