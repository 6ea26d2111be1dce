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
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Load-time repacks of weight matrices into layouts the CPU kernels read faster than the file's: the one
 * registry of them, held by a {@link Kernels} instance (one per engine) and read by its matmuls.
 * <ul>
 *   <li>{@link Matrix.Q4_K} as {@link KQuantPacked.Q4K}: always (about the file's bytes again; a Q6_K repack
 *       into the same kind of aligned layout measured 0.95–1.0× and was not kept). A matrix not listed by
 *       {@link #prepare} is prepared on its first product (a test's, a hybrid shard's row slice).</li>
 *   <li>{@link Matrix.Q8_0} as {@link PackedQ8_0}: only by {@link #prepare}, for all of a model's Q8_0 matrices
 *       at once and only when their copies take at most half of the memory the system reports available
 *       ({@code MemAvailable}) and the allocations succeed (about 1.06 times the Q8_0 bytes: 1.3 GiB for a
 *       Llama-3.2-1B Q8_0 file, about 7.9 GiB for a Llama-3.1-8B one); otherwise every Q8_0 product reads the
 *       file's layout, with the same results.</li>
 *   <li>llama2.c's {@link Matrix.Q8} (runq) as {@link PackedQ8_0} too, under the same rule (counted together with
 *       the Q8_0 matrices; the copy is the source's size: 0.11 GiB for stories110M), for the group sizes
 *       {@link Q8Matmul#matmulPacked} reads ({@link Q8Matmul#handlesPacked}: multiples of 16 at 512 bits, of 8 at
 *       256 and 128 bits); the results are bit-identical to the file's layout (runq's).</li>
 * </ul>
 * The mapped file is never written: a prepared form is a copy in private memory, so it costs that matrix's
 * size in RAM (the file's pages it replaces are read once, at load, and stay reclaimable page cache; the
 * embedding rows and the batched prefill still read the file).
 *
 * <p>Lookups are thread-safe; equal records (the same bytes of the same mapping) share one form. The Q8_0
 * copies live in an arena that {@link #close} frees (the engine that prepared them closes them); the Q4_K
 * forms are unmapped when no longer reachable.
 */
public final class PreparedWeights implements AutoCloseable {
    private final Map<Matrix, Object> forms = new ConcurrentHashMap<>();
    /** The Q8_0 copies' memory, made by the first {@link #prepare} that packs; null before and after {@link #close}. */
    private Arena arena;

    /**
     * Prepares every matrix of {@code w} whose type has a prepared form (the embedding is read by rows and
     * stays as is), the copies made on {@code parallel}'s threads; nothing for a matrix already prepared.
     */
    public synchronized void prepare(Weights w, Parallel parallel) {
        List<Matrix> all = matrices(w);
        for (Matrix m : all) {
            if (m instanceof Matrix.Q4_K q) {
                q4_K(q);
            }
        }
        List<Matrix> q8 = new ArrayList<>(); // Q8_0 and runq's Q8
        long bytes = 0;
        for (Matrix m : all) {
            boolean packs = m instanceof Matrix.Q8_0 || m instanceof Matrix.Q8 q && Q8Matmul.handlesPacked(q.groupSize());
            if (packs && !forms.containsKey(m)) {
                q8.add(m);
                bytes += PackedQ8_0.bytes(m);
            }
        }
        if (q8.isEmpty() || bytes > availableMemory() / 2) {
            return;
        }
        Arena a = arena != null ? arena : Arena.ofShared();
        Map<Matrix, PackedQ8_0> made = new java.util.HashMap<>();
        try {
            for (Matrix m : q8) {
                made.put(m, PackedQ8_0.of(m, a, parallel));
            }
        } catch (OutOfMemoryError e) { // the heap (the scales) or the native memory (the values) was short after all
            if (arena == null) {
                a.close();
            }
            return; // none of these is packed: all of them read the file's layout
        }
        arena = a;
        forms.putAll(made);
    }

    /** The matrices of {@code w} a product reads (each once: a tied classifier is the embedding, listed once). */
    static List<Matrix> matrices(Weights w) {
        Set<Matrix> all = new LinkedHashSet<>();
        for (Matrix[] ms : List.of(w.wq(), w.wk(), w.wv(), w.wo(), w.w1(), w.w2(), w.w3())) {
            Collections.addAll(all, ms);
        }
        all.add(w.classifier());
        return List.copyOf(all);
    }

    /** The prepared form of {@code m}, prepared now if it was not (a matrix the engine did not list, a test's). */
    KQuantPacked.Q4K q4_K(Matrix.Q4_K m) {
        return (KQuantPacked.Q4K) forms.computeIfAbsent(m, k -> KQuantPacked.Q4K.of(m));
    }

    /** The packed copy of {@code m}, or null when {@link #prepare} did not pack it (the file's layout is read). */
    PackedQ8_0 q8_0(Matrix.Q8_0 m) {
        return (PackedQ8_0) forms.get(m);
    }

    /** The packed copy of runq's {@code m}, or null when {@link #prepare} did not pack it (the file's layout is read). */
    PackedQ8_0 q8(Matrix.Q8 m) {
        return (PackedQ8_0) forms.get(m);
    }

    /** How many matrices have a prepared form. */
    int size() {
        return forms.size();
    }

    /** Bytes held by the prepared forms. */
    public long byteSize() {
        long total = 0;
        for (Object f : forms.values()) {
            total += switch (f) {
                case KQuantPacked.Q4K q -> q.byteSize();
                case PackedQ8_0 p -> p.quants().byteSize() + (long) p.scales().length * Float.BYTES;
                default -> 0;
            };
        }
        return total;
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

    /** Drops every form and frees the Q8_0 copies (a later product reads the file's layout or prepares Q4_K again). */
    @Override
    public synchronized void close() {
        forms.clear();
        if (arena != null) {
            arena.close();
            arena = null;
        }
    }
}
