package io.github.llama2j.model;

import io.github.llama2j.Llama2jException;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Writes a file so that it appears complete or not at all: the content goes to a temporary file
 * beside the target, which is renamed over the target only once it is whole. On any failure, and if
 * the JVM is stopped (Ctrl-C) mid-way, the temporary file is deleted.
 */
public final class AtomicFile {
    private AtomicFile() {
    }

    /** Writes {@code target} through {@code temp} (same directory), renaming it when {@code body} succeeds. */
    public static <T> T write(Path target, Path temp, Body<T> body) {
        Thread cleanup = new Thread(() -> deleteOnExit(temp), "llama2j-delete-" + temp.getFileName());
        boolean hooked = addHook(cleanup);
        boolean done = false;
        try {
            T result = body.write(temp);
            move(temp, target);
            done = true;
            return result;
        } catch (IOException e) {
            throw new Llama2jException(target.getFileName() + ": cannot write (" + e + ")", Llama2jException.IO_FAILURE, e);
        } finally {
            if (!done) {
                deleteQuietly(temp);
            }
            if (hooked) {
                try {
                    Runtime.getRuntime().removeShutdownHook(cleanup);
                } catch (IllegalStateException shuttingDown) {
                    // the hook is running or about to: it deletes the temp file itself
                }
            }
        }
    }

    /** The default temporary name: {@code target.tmp}. */
    public static <T> T write(Path target, Body<T> body) {
        return write(target, target.resolveSibling(target.getFileName() + ".tmp"), body);
    }

    /** Renames atomically where the file system can, else plainly (same directory, so still one rename). */
    public static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Refuses (exit code 4) to start writing {@code size} bytes to {@code out} when its file system has less free. */
    public static void checkFreeSpace(String name, Path out, long size) {
        try {
            Path dir = out.toAbsolutePath().getParent();
            long free = Files.getFileStore(dir).getUsableSpace();
            if (free < size) {
                throw new Llama2jException(String.format("%s: needs %,d bytes, only %,d free in %s", name, size, free, dir),
                        Llama2jException.IO_FAILURE);
            }
        } catch (IOException e) {
            throw new Llama2jException(name + ": cannot write there (" + e + ")", Llama2jException.IO_FAILURE, e);
        }
    }

    /**
     * The shutdown hook's part: the JVM is exiting (Ctrl-C) while {@code temp} is being written: delete it and say so on
     * a line of its own (a progress bar may be mid-line).
     */
    private static void deleteOnExit(Path temp) {
        try {
            if (Files.deleteIfExists(temp)) {
                System.err.println(System.lineSeparator() + "llama2j: interrupted: " + temp.getFileName() + " deleted");
            }
        } catch (IOException ignored) {
            // exiting anyway
        }
    }

    /**
     * Refuses (exit code 4), before any long work, a target {@link #write} could not write: a directory, a folder that
     * does not exist or in which no file can be created. Checked by creating and deleting an empty file beside it.
     */
    public static void checkWritable(Path target) {
        if (Files.isDirectory(target)) {
            throw new Llama2jException(target + ": is a directory, cannot write a file there", Llama2jException.IO_FAILURE);
        }
        Path dir = target.toAbsolutePath().getParent();
        try {
            Path probe = Files.createTempFile(dir, "." + target.getFileName(), ".tmp");
            Files.delete(probe);
        } catch (NoSuchFileException e) {
            throw new Llama2jException(target + ": cannot write (no folder " + dir + ")", Llama2jException.IO_FAILURE, e);
        } catch (AccessDeniedException e) {
            throw new Llama2jException(target + ": cannot write (permission denied in " + dir + ")", Llama2jException.IO_FAILURE, e);
        } catch (IOException | SecurityException e) {
            throw new Llama2jException(target + ": cannot write (" + e.getMessage() + ")", Llama2jException.IO_FAILURE, e);
        }
    }

    public static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // nothing more can be done; the caller is already failing
        }
    }

    private static boolean addHook(Thread hook) {
        try {
            Runtime.getRuntime().addShutdownHook(hook);
            return true;
        } catch (IllegalStateException shuttingDown) {
            return false;
        }
    }

    /** Writes the whole content into the temporary file. */
    @FunctionalInterface
    public interface Body<T> {
        T write(Path temp) throws IOException;
    }
}
