package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The CPU engine's repacked copies of a model's Q8_0 matrices ({@link PackedQ8_0}), made once at load
 * time, looked up by the matrix (identity) for each matmul. The model's own matrices (the mapped file)
 * are not touched. The copies live off the Java heap, in an arena closed with this object.
 *
 * <p>The copy costs memory: about 1.06 times the Q8_0 matrices' bytes (1.3 GiB for a Llama-3.2-1B Q8_0
 * file, about 7.9 GiB for a Llama-3.1-8B one), beside the file's pages (which the kernel may drop: once packed,
 * only the embedding rows and a batched prefill read them). So the engine packs only when the copies
 * take at most half of the memory the system reports available ({@code MemAvailable}), and when the
 * allocations succeed (the scales, one ninth of the copy, are on the Java heap); otherwise it computes
 * from the file's layout, as before, with the same results.
 */
final class PackedWeights implements AutoCloseable {
    /** No packed matrix: every matmul reads the file's layout. */
    static final PackedWeights NONE = new PackedWeights(new IdentityHashMap<>(), null);

    private final Map<Matrix, PackedQ8_0> packed;
    private final Arena arena;

    private PackedWeights(Map<Matrix, PackedQ8_0> packed, Arena arena) {
        this.packed = packed;
        this.arena = arena;
    }

    /** The Q8_0 matrices of {@code w} to pack (the classifier once if tied), and the bytes their copies take. */
    static List<Matrix.Q8_0> q8_0Matrices(Weights w) {
        Map<Matrix, Boolean> seen = new IdentityHashMap<>();
        List<Matrix.Q8_0> out = new ArrayList<>();
        List<Matrix> all = new ArrayList<>();
        for (Matrix[] ms : List.of(w.wq(), w.wk(), w.wv(), w.wo(), w.w1(), w.w2(), w.w3())) {
            Collections.addAll(all, ms);
        }
        all.add(w.classifier());
        for (Matrix m : all) {
            if (m instanceof Matrix.Q8_0 q && seen.put(m, Boolean.TRUE) == null) {
                out.add(q);
            }
        }
        return out;
    }

    /**
     * The packed copies of {@code w}'s Q8_0 matrices when {@code kernels} read them ({@link Kernels#packsQ8_0})
     * and they fit the memory rule above; else {@link #NONE}.
     */
    static PackedWeights of(Weights w, Kernels kernels, Parallel parallel) {
        List<Matrix.Q8_0> ms = q8_0Matrices(w);
        if (ms.isEmpty() || !kernels.packsQ8_0()) {
            return NONE;
        }
        long bytes = 0;
        for (Matrix.Q8_0 m : ms) {
            bytes += PackedQ8_0.bytes(m);
        }
        if (bytes > availableMemory() / 2) {
            return NONE;
        }
        try {
            return pack(ms, parallel);
        } catch (OutOfMemoryError e) { // the heap (the scales) or the native memory (the values) was short after all
            return NONE;
        }
    }

    /** Packs every matrix of {@code ms}, whatever the memory, on {@code parallel}'s threads. */
    static PackedWeights pack(List<Matrix.Q8_0> ms, Parallel parallel) {
        Arena arena = Arena.ofShared();
        Map<Matrix, PackedQ8_0> packed = new IdentityHashMap<>();
        try {
            for (Matrix.Q8_0 m : ms) {
                packed.put(m, PackedQ8_0.of(m, arena, parallel));
            }
        } catch (RuntimeException | OutOfMemoryError e) {
            arena.close();
            throw e;
        }
        return new PackedWeights(packed, arena);
    }

    /** The packed copy of m, or null if m is not packed. */
    PackedQ8_0 get(Matrix m) {
        return packed.get(m);
    }

    int size() {
        return packed.size();
    }

    /** Linux's MemAvailable in bytes (free memory plus what the kernel can reclaim), else the JVM's free physical memory. */
    static long availableMemory() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // not Linux: below
        }
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getFreeMemorySize();
    }

    @Override
    public void close() {
        if (arena != null) {
            arena.close();
        }
    }
}
