package io.github.llama2j.cpu;

import io.github.llama2j.engine.WeightCopies;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SegmentAllocator;
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
 * registry of them, owned by the engine that made them ({@link CpuEngine}; the hybrid engine's CPU share), which
 * resolves each of its matrices to its form once, when it is built ({@link #resolve}): its products then read
 * the form ({@link MatrixForm}) and never look a copy up. With {@link WeightCopies#OFF} ({@code --weight-copies=off})
 * it makes none and every product reads the file's layout, with the same results (Q2_K to Q6_K: the same integers
 * per sub-block, the float sums in other lanes, a few ulps apart per product; an activation at a Q8_K rounding boundary
 * may round the other way then and move later logits by more: docs/measurements/2026-12-06-q5-k-copy.md). With {@link WeightCopies#AUTO}:
 * <ul>
 *   <li>{@link Matrix.Q2_K} as {@link KQuantPacked.Q2K}, {@link Matrix.Q3_K} as {@link KQuantPacked.Q3K} (below 512
 *       bits: {@link KQuantPacked#Q3K_COPY}), {@link Matrix.Q4_K} as {@link KQuantPacked.Q4K}, {@link Matrix.Q5_K} as
 *       {@link KQuantPacked.Q5K} and {@link Matrix.Q6_K} as {@link KQuantPacked.Q6K}: always (about the file's bytes
 *       again: 84-88, 114-118, 148-156, 180-188 and 210 bytes per 256 values against 84, 110, 144, 176 and 210), their
 *       values ordered for the kernels' int lanes. A matrix not listed by {@link #prepare} is copied when it is resolved
 *       (a hybrid shard's row slice).</li>
 *   <li>{@link Matrix.Q8_0} as {@link PackedQ8_0}: only by {@link #prepare}, for all of a model's Q8_0 matrices
 *       at once and only when their copies take at most half of the memory the system reports available
 *       ({@code MemAvailable}) and the allocations succeed (about 1.06 times the Q8_0 bytes: 1.3 GiB for a
 *       Llama-3.2-1B Q8_0 file, about 7.9 GiB for a Llama-3.1-8B one); otherwise every Q8_0 product reads the
 *       file's layout, with the same results.</li>
 *   <li>llama2.c's {@link Matrix.Q8} (runq) as {@link PackedQ8_0} too, under the same rule (counted together with
 *       the Q8_0 matrices; the copy is the source's size: 0.11 GiB for stories110M), for the group sizes
 *       {@link Q8Matmul#matmulPacked} reads ({@link Q8Matmul#handlesPacked}: multiples of 16 at 512 bits, of 8 at
 *       256 and 128 bits); the results are bit-identical to the file's layout (runq's).</li>
 *   <li>{@link Matrix.Q4_0} as {@link PackedQ4_0} (one row per int lane), under the same rule, counted with them (the
 *       copy is the file's size: 0.73 GiB for a Llama-3.2-1B Q4_0 file); the same integers per block, each row's float
 *       sum in one lane (a few ulps from the file's layout). A two-thread Llama-3.2-1B Q4_0 token ran at 20–23 tok/s
 *       on the file's layout copied and 38–42 on this one (docs/measurements/2026-12-05-q4-0-rows-in-lanes.md).</li>
 *   <li>{@link Matrix.Q5_1} as {@link PackedQ5_1} (one row per int lane, the 5-bit values in pairs), under the same rule,
 *       counted with them (4/3 of the file's bytes: 240 MB for a Qwen2.5-0.5B Q5_K_M file's Q5_1 matrices); the same
 *       integers per block, each row's float sums in one lane (docs/measurements/2026-12-06-q5-1-copy.md).</li>
 *   <li>{@link Matrix.F32}, {@link Matrix.F16}, {@link Matrix.BF16}, {@link Matrix.IQ4_NL}, {@link Matrix.IQ4_XS} and
 *       at 512 bits {@link Matrix.Q3_K}, the types whose kernels read the file's layout, as a
 *       {@link MatrixForm.Copy}: the same bytes in private memory (huge pages where granted), only by {@link #prepare}
 *       and under the same rule, counted together apart from the Q8 ones (0.41 GiB for stories110M in float32, 2.3 GiB
 *       for a Llama-3.2-1B F16 file); the same kernels read it, so the same results. A two-thread token of stories110M
 *       read the file's page cache at 72–92 tok/s and the copy at 98–113
 *       (docs/measurements/2026-12-05-two-thread-ceiling.md); a Llama-3.2-1B F16 one 3.9–6.7 and 12.2–13.4
 *       (docs/measurements/2026-12-05-f16-copy.md); a Llama-3.2-1B IQ4_XS one 1.05–1.12 times as fast
 *       (docs/measurements/2026-12-07-iq4-kernel.md).</li>
 * </ul>
 * The mapped file is never written: a prepared form is a copy in private memory, so it costs that matrix's
 * size in RAM (the file's pages it replaces are read once, at load, and stay reclaimable page cache; the
 * embedding rows and the batched prefill's runq Q8, Q8_0 and Q4_0 kernels still read the file, its F32 kernels read the copy, and so do the F16, BF16,
 * IQ4 and (at 512 bits) Q3_K ones and the one-token kernels it runs per token in short batches; on Q2_K and Q3_K's repacks short batches run the
 * repacks' one-token kernels).
 *
 * <p>{@link #resolve} is thread-safe; equal records (the same bytes of the same mapping) share one form. The Q8_0
 * and file-layout copies live in an arena that {@link #close} frees (the engine that prepared them closes them, after which its
 * forms must not be read); the Q4_K forms are unmapped when no longer reachable.
 */
public final class PreparedWeights implements AutoCloseable {
    private final WeightCopies copies;
    private final Map<Matrix, MatrixForm> forms = new ConcurrentHashMap<>();
    /** The Q8_0 and file-layout copies' memory, made by the first {@link #prepare} that copies one; null before and after {@link #close}. */
    private Arena arena;
    /** Why {@link #prepare} left the Q8_0, Q4_0 and runq Q8 matrices in the file's layout (for {@link #summary}), or null. */
    private volatile String packedSkipped;
    /** Why {@link #prepare} left the matrices read in the file's layout in its page cache (for {@link #summary}), or null. */
    private volatile String fileLayoutSkipped;

    /** A registry that makes the copies {@code copies} asks for. */
    public PreparedWeights(WeightCopies copies) {
        this.copies = java.util.Objects.requireNonNull(copies, "copies");
    }

    /** The matrices of a model's products in the forms the CPU engine reads: (n_layers) each, and the classifier. */
    record Forms(MatrixForm[] wq, MatrixForm[] wk, MatrixForm[] wv, MatrixForm[] wo, MatrixForm[] w1, MatrixForm[] w2,
                 MatrixForm[] w3, MatrixForm classifier) {
    }

    /** The forms of {@code w}'s matrices ({@link #resolve} of each), once per engine. */
    Forms resolve(Weights w) {
        return new Forms(resolve(w.wq()), resolve(w.wk()), resolve(w.wv()), resolve(w.wo()), resolve(w.w1()),
                resolve(w.w2()), resolve(w.w3()), resolve(w.classifier()));
    }

    private MatrixForm[] resolve(Matrix[] ms) {
        MatrixForm[] f = new MatrixForm[ms.length];
        for (int i = 0; i < ms.length; i++) {
            f[i] = resolve(ms[i]);
        }
        return f;
    }

    /**
     * The form products of {@code m} read: its copy ({@link #prepare}'s; a K-quant matrix's made now if it has none,
     * as a hybrid shard's row slice), else the file's layout. For an engine being built, not for each product.
     */
    public MatrixForm resolve(Matrix m) {
        if (copies == WeightCopies.OFF) {
            return new MatrixForm.File(m);
        }
        if (m instanceof Matrix.Q2_K q) {
            return forms.computeIfAbsent(m, k -> KQuantPacked.Q2K.of(q));
        }
        if (m instanceof Matrix.Q3_K q && KQuantPacked.Q3K_COPY) {
            return forms.computeIfAbsent(m, k -> KQuantPacked.Q3K.of(q));
        }
        if (m instanceof Matrix.Q4_K q) {
            return forms.computeIfAbsent(m, k -> KQuantPacked.Q4K.of(q));
        }
        if (m instanceof Matrix.Q5_K q) {
            return forms.computeIfAbsent(m, k -> KQuantPacked.Q5K.of(q));
        }
        if (m instanceof Matrix.Q6_K q) {
            return forms.computeIfAbsent(m, k -> KQuantPacked.Q6K.of(q));
        }
        MatrixForm f = forms.get(m);
        return f != null ? f : new MatrixForm.File(m);
    }

    /**
     * Prepares every matrix of {@code w} whose type has a prepared form (the embedding is read by rows and
     * stays as is), the copies made on {@code parallel}'s threads; nothing for a matrix already prepared, nothing
     * at all with {@link WeightCopies#OFF}.
     */
    public synchronized void prepare(Weights w, Parallel parallel) {
        if (copies == WeightCopies.OFF) {
            return;
        }
        long t0 = System.nanoTime();
        try {
            prepareCopies(w, parallel);
        } finally {
            prepareNanos += System.nanoTime() - t0;
        }
    }

    /** Time spent in {@link #prepare} (for {@link #summary}). */
    private volatile long prepareNanos;

    private void prepareCopies(Weights w, Parallel parallel) {
        List<Matrix> all = matrices(w);
        // all of the model's Q2_K copies in one region (huge pages where granted: PageMemory), its Q3_K, Q4_K, Q5_K and Q6_K
        // ones in others, each freed when the last of its copies is no longer reachable
        copyKQuants(all, Matrix.Q2_K.class, KQuantPacked.Q2K::allocationBytes, (q, region) -> KQuantPacked.Q2K.of(q, region, parallel));
        if (KQuantPacked.Q3K_COPY) {
            copyKQuants(all, Matrix.Q3_K.class, KQuantPacked.Q3K::allocationBytes, (q, region) -> KQuantPacked.Q3K.of(q, region, parallel));
        }
        copyKQuants(all, Matrix.Q4_K.class, KQuantPacked.Q4K::allocationBytes, (q, region) -> KQuantPacked.Q4K.of(q, region, parallel));
        copyKQuants(all, Matrix.Q5_K.class, KQuantPacked.Q5K::allocationBytes, (q, region) -> KQuantPacked.Q5K.of(q, region, parallel));
        copyKQuants(all, Matrix.Q6_K.class, KQuantPacked.Q6K::allocationBytes, (q, region) -> KQuantPacked.Q6K.of(q, region, parallel));
        Map<Matrix, BlockCopy> blocks = new java.util.LinkedHashMap<>(); // Q8_0, Q4_0, Q5_1 and runq's Q8
        long bytes = 0, values = 0; // values: one region for all of them (huge pages where granted: PageMemory), sliced
        for (Matrix m : all) {
            BlockCopy copy = blockCopy(m);
            if (copy != null && !forms.containsKey(m)) {
                blocks.put(m, copy);
                bytes += copy.bytes(m);
                values += copy.allocationBytes(m);
            }
        }
        if (!blocks.isEmpty()) {
            packedSkipped = copyInto(blocks.size() + " Q8_0, Q4_0, Q5_1 or runq Q8 matrices left in the file's layout", bytes, values, memory -> {
                SegmentAllocator region = SegmentAllocator.slicingAllocator(memory);
                Map<Matrix, MatrixForm> made = new java.util.HashMap<>();
                blocks.forEach((m, copy) -> made.put(m, copy.of(m, region, parallel))); // (the scales on the heap: may run short too)
                return made;
            });
        }
        // after the repacks, which gain more where memory is short (a Q4_0 token about twice as fast on its repack, the
        // file-layout copies of Q3_K and IQ4 1.0-1.13x: docs/measurements/2026-12-05-q4-0-rows-in-lanes.md,
        // 2026-12-07-iq4-kernel.md); a Q2_K or Q3_K file holds Q4_0 where rows are not a multiple of 256
        copyFileLayouts(all, parallel);
    }

    /** A load-time copy of a matrix of blocks ({@link PackedQ8_0}, {@link PackedQ4_0}, {@link PackedQ5_1}): its size and its making. */
    private enum BlockCopy {
        Q8_0, Q4_0, Q5_1;

        /** Bytes of the copy of {@code m}. */
        long bytes(Matrix m) {
            return switch (this) {
                case Q8_0 -> PackedQ8_0.bytes(m);
                case Q4_0 -> PackedQ4_0.bytes((Matrix.Q4_0) m);
                case Q5_1 -> PackedQ5_1.bytes((Matrix.Q5_1) m);
            };
        }

        /** Bytes its making takes from a slicing allocator, alignment included. */
        long allocationBytes(Matrix m) {
            return switch (this) {
                case Q8_0 -> PackedQ8_0.allocationBytes(m);
                case Q4_0 -> PackedQ4_0.allocationBytes((Matrix.Q4_0) m);
                case Q5_1 -> PackedQ5_1.allocationBytes((Matrix.Q5_1) m);
            };
        }

        MatrixForm of(Matrix m, SegmentAllocator region, Parallel parallel) {
            return switch (this) {
                case Q8_0 -> PackedQ8_0.of(m, region, parallel);
                case Q4_0 -> PackedQ4_0.of((Matrix.Q4_0) m, region, parallel);
                case Q5_1 -> PackedQ5_1.of((Matrix.Q5_1) m, region, parallel);
            };
        }
    }

    /**
     * Which block copy {@code m} gets, or null for none: every type named, so that a new one is a decision here (the
     * K-quants have copies of their own, {@link #copyKQuants}; the half and float types are copied as they are,
     * {@link #copyFileLayouts}, and so are IQ4_NL, IQ4_XS and, at 512 bits, Q3_K).
     */
    private static BlockCopy blockCopy(Matrix m) {
        return switch (m) {
            case Matrix.Q8_0 _ -> BlockCopy.Q8_0;
            case Matrix.Q8 q -> Q8Matmul.handlesPacked(q.groupSize()) ? BlockCopy.Q8_0 : null;
            case Matrix.Q4_0 _ -> BlockCopy.Q4_0;
            case Matrix.Q5_1 _ -> BlockCopy.Q5_1;
            case Matrix.F32 _, Matrix.F16 _, Matrix.BF16 _, Matrix.IQ4_NL _, Matrix.IQ4_XS _, Matrix.Q2_K _, Matrix.Q3_K _, Matrix.Q4_K _, Matrix.Q5_K _,
                 Matrix.Q6_K _ -> null;
        };
    }

    /**
     * Copies every matrix of {@code all} that the kernels read in the file's layout ({@link #readInFileLayout}) and
     * has no form yet into one region of {@link #arena} (made here if there is none), row ranges over
     * {@code parallel}'s threads, unless they would take more than half of the memory available.
     */
    private void copyFileLayouts(List<Matrix> all, Parallel parallel) {
        List<Matrix> todo = new ArrayList<>();
        long bytes = 0;
        for (Matrix m : all) {
            if (readInFileLayout(m) && !forms.containsKey(m)) {
                todo.add(m);
                bytes += alignedSize(m);
            }
        }
        if (todo.isEmpty()) {
            return;
        }
        fileLayoutSkipped = copyInto(todo.size() + " float32, F16, BF16, Q3_K or IQ4 matrices left in the file's page cache", bytes, bytes, region -> {
            Map<Matrix, MatrixForm> made = new java.util.HashMap<>();
            long at = 0;
            for (Matrix m : todo) {
                java.lang.foreign.MemorySegment copy = region.asSlice(at, m.byteSize());
                boolean finite = copyFileLayout(m, copy, parallel);
                made.put(m, new MatrixForm.Copy(m, over(m, copy), finite));
                at += alignedSize(m);
            }
            return made;
        });
    }

    /** Bytes copied at a time by {@link #copyFileLayout}: an F16 chunk is checked while it is still in the core's cache. */
    private static final long COPY_CHUNK = 256 * 1024;

    /**
     * Copies m's bytes into {@code copy}, rows over {@code parallel}'s threads, a chunk at a time; an F16 matrix's
     * chunks are checked for inf and NaN halves as they are copied.
     *
     * @return whether m is an F16 matrix that holds none ({@link MatrixForm.Copy#finiteHalves})
     */
    static boolean copyFileLayout(Matrix m, java.lang.foreign.MemorySegment copy, Parallel parallel) {
        java.lang.foreign.MemorySegment file = data(m);
        long rowBytes = m.byteSize() / m.rows(), chunkRows = Math.max(1, COPY_CHUNK / rowBytes);
        boolean f16 = m instanceof Matrix.F16;
        java.util.concurrent.atomic.AtomicBoolean special = new java.util.concurrent.atomic.AtomicBoolean();
        parallel.forRange(m.rows(), (r0, r1) -> {
            for (long r = r0; r < r1; r += chunkRows) {
                long from = r * rowBytes, bytes = (Math.min(r1, r + chunkRows) - r) * rowBytes;
                java.lang.foreign.MemorySegment.copy(file, from, copy, from, bytes);
                if (f16 && GgmlMatmul.holdsSpecialHalves(copy, from, (int) (bytes / 2))) {
                    special.set(true);
                }
            }
        });
        return f16 && !special.get();
    }

    /** Whether {@code m}'s kernels read the file's layout, so that a copy is the same bytes ({@link MatrixForm.Copy}). */
    private static boolean readInFileLayout(Matrix m) {
        return switch (m) {
            case Matrix.F32 _, Matrix.F16 _, Matrix.BF16 _, Matrix.IQ4_NL _, Matrix.IQ4_XS _ -> true;
            case Matrix.Q3_K _ -> !KQuantPacked.Q3K_COPY; // (repacked below 512 bits)
            case Matrix.Q8 _, Matrix.Q8_0 _, Matrix.Q4_0 _, Matrix.Q5_1 _, Matrix.Q2_K _, Matrix.Q4_K _, Matrix.Q5_K _, Matrix.Q6_K _ -> false; // repacked
        };
    }

    /** The bytes of a matrix in the file's layout (what {@link #readInFileLayout} lets through). */
    private static java.lang.foreign.MemorySegment data(Matrix m) {
        return switch (m) {
            case Matrix.F32 f -> f.data();
            case Matrix.Ggml g -> g.data();
            case Matrix.Q8 q -> throw new IllegalArgumentException("no copy in the file's layout for " + m.typeName());
        };
    }

    /** {@code m}'s matrix over {@code copy} (the same bytes elsewhere). */
    private static Matrix over(Matrix m, java.lang.foreign.MemorySegment copy) {
        return switch (m) {
            case Matrix.F32 f -> new Matrix.F32(copy, f.rows(), f.cols());
            case Matrix.F16 f -> new Matrix.F16(copy, f.rows(), f.cols());
            case Matrix.BF16 f -> new Matrix.BF16(copy, f.rows(), f.cols());
            case Matrix.IQ4_NL q -> new Matrix.IQ4_NL(copy, q.rows(), q.cols());
            case Matrix.IQ4_XS q -> new Matrix.IQ4_XS(copy, q.rows(), q.cols());
            case Matrix.Q2_K q -> new Matrix.Q2_K(copy, q.rows(), q.cols());
            case Matrix.Q3_K q -> new Matrix.Q3_K(copy, q.rows(), q.cols());
            case Matrix.Q8 _, Matrix.Q8_0 _, Matrix.Q4_0 _, Matrix.Q5_1 _, Matrix.Q4_K _, Matrix.Q5_K _, Matrix.Q6_K _ ->
                    throw new IllegalArgumentException("no copy in the file's layout for " + m.typeName()); // repacked instead
        };
    }

    /**
     * The Q8 and file-layout copies' common part: unless {@code bytes} of copies would take more than half of the memory
     * available, a region of {@code regionBytes} in {@link #arena} (made here if there is none, and closed again if
     * nothing came of it), which {@code fill} turns into the copies' forms; they are kept only if all were made.
     *
     * @param what which matrices, and where they stay without copies (the start of the message)
     * @return null when copied, else why not (for {@link #summary})
     */
    private String copyInto(String what, long bytes, long regionBytes,
                            java.util.function.Function<java.lang.foreign.MemorySegment, Map<Matrix, MatrixForm>> fill) {
        String tooBig = overHalfOfAvailable(what, bytes);
        if (tooBig != null) {
            return tooBig;
        }
        Arena a = arena != null ? arena : Arena.ofShared();
        Map<Matrix, MatrixForm> made;
        try {
            made = fill.apply(PageMemory.allocate(a, regionBytes));
        } catch (OutOfMemoryError e) { // the native memory, or the heap, was short after all: none of them is copied
            if (arena == null) {
                a.close();
            }
            return what + ": their copies did not fit after all (" + e.getMessage() + ")";
        }
        arena = a;
        forms.putAll(made);
        return null;
    }

    /**
     * The copies' rule: null when {@code bytes} of copies take at most half of the memory available, else why
     * {@code skipped} (the matrices, and where they stay) are not copied.
     */
    private static String overHalfOfAvailable(String skipped, long bytes) {
        long available = availableMemory();
        return bytes <= available / 2 ? null : String.format(java.util.Locale.ROOT,
                "%s: their copies (%d MiB) would take more than half of the %d MiB available", skipped, bytes >> 20, available >> 20);
    }

    /** A copy's bytes rounded up to a cache line: each copy starts on one (the region does: PageMemory). */
    private static long alignedSize(Matrix m) {
        return (m.byteSize() + 63) & -64L;
    }

    /** Copies every matrix of {@code type} in {@code all} that has no form yet, in one region for all of them. */
    private <M extends Matrix> void copyKQuants(List<Matrix> all, Class<M> type, java.util.function.ToLongFunction<M> bytes,
                                                java.util.function.BiFunction<M, SegmentAllocator, MatrixForm> copy) {
        List<M> todo = new ArrayList<>();
        long total = 0;
        for (Matrix m : all) {
            if (type.isInstance(m) && !forms.containsKey(m)) {
                M q = type.cast(m);
                todo.add(q);
                total += bytes.applyAsLong(q);
            }
        }
        if (!todo.isEmpty()) {
            SegmentAllocator region = SegmentAllocator.slicingAllocator(KQuantPacked.allocate(total));
            for (M q : todo) {
                forms.put(q, copy.apply(q, region));
            }
        }
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

    /** How many matrices have a prepared form. */
    int size() {
        return forms.size();
    }

    /** Bytes held by the prepared forms. */
    public long byteSize() {
        long total = 0;
        for (MatrixForm f : forms.values()) {
            total += copyBytes(f);
        }
        return total;
    }

    private static long copyBytes(MatrixForm f) {
        return switch (f) {
            case KQuantPacked.Q2K q -> q.copyBytes();
            case KQuantPacked.Q3K q -> q.copyBytes();
            case KQuantPacked.Q4K q -> q.copyBytes();
            case KQuantPacked.Q5K q -> q.copyBytes();
            case KQuantPacked.Q6K q -> q.copyBytes();
            case PackedQ8_0 p -> p.quants().byteSize() + (long) p.scales().length * Float.BYTES;
            case PackedQ4_0 p -> p.nibbles().byteSize() + (long) p.scales().length * Float.BYTES;
            case PackedQ5_1 p -> p.values().byteSize() + 2L * p.scales().length * Float.BYTES;
            case MatrixForm.Copy c -> c.copy().byteSize();
            case MatrixForm.File file -> 0;
        };
    }

    /** What was copied, for {@code --verbose}: e.g. {@code weight copies (auto): 112 matrices, 1310 MiB (Q8_0 112)}. */
    public String summary() {
        Map<String, Integer> byType = new java.util.TreeMap<>();
        for (MatrixForm f : forms.values()) {
            byType.merge(f.source().typeName(), 1, Integer::sum);
        }
        StringBuilder s = new StringBuilder("weight copies (" + copies + "): ");
        if (forms.isEmpty()) {
            s.append(copies == WeightCopies.OFF ? "none, every product reads the file's layout" : "none");
        } else {
            s.append(forms.size()).append(" matrices, ").append(byteSize() >> 20).append(" MiB ").append(byType)
                    .append(String.format(java.util.Locale.ROOT, " made in %.2f s", prepareNanos / 1e9));
        }
        for (String skipped : new String[] {fileLayoutSkipped, packedSkipped}) {
            if (skipped != null) {
                s.append("; ").append(skipped);
            }
        }
        return s.toString();
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

    /** Drops every form and frees the Q8_0 and file-layout copies (a later product reads the file's layout or prepares Q4_K again). */
    @Override
    public synchronized void close() {
        forms.clear();
        if (arena != null) {
            arena.close();
            arena = null;
        }
    }
}
