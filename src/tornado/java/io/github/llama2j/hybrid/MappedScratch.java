package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Memory for the CPU shard's compact column copies, mapped from a deleted temporary file (in /dev/shm,
 * i.e. RAM, where there is one) rather than allocated by an {@link Arena}.
 *
 * <p>Why: C2 compiles the Vector API kernels for the class of memory segment they have seen. The checkpoint
 * is a file mapping; if the same kernel also streamed arena memory, its code would become polymorphic and,
 * measured here, twice as slow for the whole run (the CPU engine warms its kernel up on the model's own
 * weights for the same reason). A file mapping keeps every segment the kernels see of one class.
 */
final class MappedScratch implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment memory;
    private long used;

    MappedScratch(long bytes) {
        if (bytes == 0) {
            memory = MemorySegment.NULL;
            return;
        }
        Path dir = Files.isDirectory(Path.of("/dev/shm")) && Files.isWritable(Path.of("/dev/shm"))
                ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));
        Path file = null;
        try {
            file = Files.createTempFile(dir, "llama2j-hybrid-", ".tmp");
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                memory = ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes, arena);
            }
        } catch (IOException e) {
            arena.close();
            throw new Llama2jException("cannot map " + bytes + " bytes of scratch memory in " + dir + ": " + e.getMessage(),
                    Llama2jException.IO_FAILURE, e);
        } finally {
            if (file != null) {
                try {
                    Files.deleteIfExists(file);   // the mapping stays valid; the memory goes with it
                } catch (IOException ignored) {
                    // a leftover temporary file: harmless
                }
            }
        }
    }

    /** The next {@code bytes} bytes, 64-byte aligned. */
    MemorySegment allocate(long bytes) {
        long start = (used + 63) & ~63L;
        used = start + bytes;
        return memory.asSlice(start, bytes);
    }

    /** Bytes {@link #allocate} needs for these sizes (with alignment). */
    static long sizeOf(long... sizes) {
        long total = 0;
        for (long s : sizes) {
            total = ((total + 63) & ~63L) + s;
        }
        return total;
    }

    @Override
    public void close() {
        arena.close();
    }
}
