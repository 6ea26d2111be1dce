package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.tornado.TensorTypes;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.ShortArray;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.LongFunction;

/**
 * The slices of the model's matrices that one shard owns, for every type the device engines run: llama2.c's
 * float32 and Q8, GGUF's F32, F16, Q8_0, Q4_0 (widened to Q8_0 on the device), Q4_K and Q6_K.
 *
 * <ul>
 *   <li>A range of rows of a row-major matrix is contiguous in the mapped file (a Q8_0 or K-quant row is whole blocks),
 *       so the CPU reads it in place through a {@link #rows} view: nothing is copied.</li>
 *   <li>A range of columns is not (each row contributes a short run), so the CPU shard copies its column
 *       slice of wo and w2 once, compactly, into memory of its own ({@link #columns}); the pages of the
 *       mapped matrix it does not own are then never touched again. A shard that owns every column
 *       keeps the mapped matrix itself. (The copies go to a file mapping too: see {@link MappedScratch}.)
 *       Q8 and Q8_0 column slices keep whole groups or blocks: their bounds must be multiples of the group
 *       size (32 for Q8_0, see {@link SplitPlan#columnGrain(io.github.llama2j.model.Configuration)}); Q4_K and Q6_K
 *       column slices keep whole super-blocks of 256 ({@link SplitPlan#columnGrain(io.github.llama2j.model.Configuration,
 *       io.github.llama2j.model.Weights)}).</li>
 *   <li>A device shard copies its slices once into TornadoVM arrays ({@link #toDevice}), which TornadoVM
 *       then transfers to the device and keeps there: float32 as is, F16 as its 16-bit values (the kernels
 *       decode them), and Q8_0 repacked as the TornadoVM engine repacks it, into int8 values and float32
 *       block scales (the F16 scale converted exactly), a {@link Q8Slice} of group 32; Q4_K and Q6_K as the file's
 *       super-blocks, byte for byte, as the TornadoVM engine keeps them ({@link KQuantSlice}, decoded by
 *       {@link io.github.llama2j.tornado.KQuantKernels}).</li>
 * </ul>
 */
final class WeightSlices {
    private WeightSlices() {
    }

    /** Rows [r0, r1) of {@code m}, as a view of the same memory (Q8, Q8_0, K-quants: whole blocks, which never straddle rows). */
    static Matrix rows(Matrix m, int r0, int r1) {
        int n = r1 - r0;
        return switch (m) {
            case Matrix.F32 f -> new Matrix.F32(f.data().asSlice((long) r0 * f.cols() * Float.BYTES,
                    (long) n * f.cols() * Float.BYTES), n, f.cols());
            case Matrix.Q8 q -> {
                long groupsPerRow = q.cols() / q.groupSize();
                yield new Matrix.Q8(q.values().asSlice((long) r0 * q.cols(), (long) n * q.cols()),
                        q.scales().asSlice(r0 * groupsPerRow * Float.BYTES, n * groupsPerRow * Float.BYTES),
                        n, q.cols(), q.groupSize());
            }
            case Matrix.F16 h -> new Matrix.F16(h.data().asSlice((long) r0 * h.cols() * Short.BYTES,
                    (long) n * h.cols() * Short.BYTES), n, h.cols());
            case Matrix.Q8_0 q -> {
                long rowBytes = Matrix.Q8_0.rowBytes(q.cols());
                yield new Matrix.Q8_0(q.data().asSlice(r0 * rowBytes, n * rowBytes), n, q.cols());
            }
            case Matrix.Q4_0 q -> {
                long rowBytes = Matrix.Q4_0.rowBytes(q.cols());
                yield new Matrix.Q4_0(q.data().asSlice(r0 * rowBytes, n * rowBytes), n, q.cols());
            }
            case Matrix.Q4_K q -> {
                long rowBytes = Matrix.Q4_K.rowBytes(q.cols());
                yield new Matrix.Q4_K(q.data().asSlice(r0 * rowBytes, n * rowBytes), n, q.cols());
            }
            case Matrix.Q6_K q -> {
                long rowBytes = Matrix.Q6_K.rowBytes(q.cols());
                yield new Matrix.Q6_K(q.data().asSlice(r0 * rowBytes, n * rowBytes), n, q.cols());
            }
            default -> throw TensorTypes.unsupportedByHybrid(m, "a sliced matrix");
        };
    }

    /**
     * Columns [c0, c1) of {@code m}, every row, copied compactly into memory from {@code allocate} (bytes →
     * segment), or {@code m} itself when that is all of it. Q8: c0 and c1 must be multiples of the group
     * size; Q8_0: of its block (32); Q4_K and Q6_K: of their super-block (256).
     */
    static Matrix columns(Matrix m, int c0, int c1, LongFunction<MemorySegment> allocate) {
        if (c0 == 0 && c1 == m.cols()) {
            return m;
        }
        int n = c1 - c0, rows = m.rows();
        return switch (m) {
            case Matrix.F32 f -> new Matrix.F32(copyColumns(f.data(), rows, f.cols(), c0, c1, Float.BYTES,
                    allocate.apply((long) rows * n * Float.BYTES)), rows, n);
            case Matrix.Q8 q -> {
                int gs = q.groupSize();
                checkBlocks(q, c0, c1, gs);
                MemorySegment values = copyColumns(q.values(), rows, q.cols(), c0, c1, 1, allocate.apply((long) rows * n));
                // the scales of a row are its groups, one float each: the groups of [c0, c1) are columns too
                MemorySegment scales = copyColumns(q.scales(), rows, q.cols() / gs, c0 / gs, c1 / gs, Float.BYTES,
                        allocate.apply((long) rows * (n / gs) * Float.BYTES));
                yield new Matrix.Q8(values, scales, rows, n, gs);
            }
            case Matrix.F16 h -> new Matrix.F16(copyColumns(h.data(), rows, h.cols(), c0, c1, Short.BYTES,
                    allocate.apply((long) rows * n * Short.BYTES)), rows, n);
            case Matrix.Q8_0 q -> {
                int b = Matrix.Q8_0.BLOCK;
                checkBlocks(q, c0, c1, b);
                // a row is cols / 32 blocks of 34 bytes: the blocks of [c0, c1) are columns of blocks
                yield new Matrix.Q8_0(copyColumns(q.data(), rows, q.cols() / b, c0 / b, c1 / b, Matrix.Q8_0.BLOCK_BYTES,
                        allocate.apply(rows * Matrix.Q8_0.rowBytes(n))), rows, n);
            }
            case Matrix.Q4_0 q -> {
                int b = Matrix.Q4_0.BLOCK;
                checkBlocks(q, c0, c1, b);
                yield new Matrix.Q4_0(copyColumns(q.data(), rows, q.cols() / b, c0 / b, c1 / b, Matrix.Q4_0.BLOCK_BYTES,
                        allocate.apply(rows * Matrix.Q4_0.rowBytes(n))), rows, n);
            }
            case Matrix.Q4_K q -> {
                int b = Matrix.Q4_K.BLOCK;
                checkBlocks(q, c0, c1, b);
                // a row is cols / 256 super-blocks of 144 bytes: the super-blocks of [c0, c1) are columns of blocks
                yield new Matrix.Q4_K(copyColumns(q.data(), rows, q.cols() / b, c0 / b, c1 / b, Matrix.Q4_K.BLOCK_BYTES,
                        allocate.apply(rows * Matrix.Q4_K.rowBytes(n))), rows, n);
            }
            case Matrix.Q6_K q -> {
                int b = Matrix.Q6_K.BLOCK;
                checkBlocks(q, c0, c1, b);
                yield new Matrix.Q6_K(copyColumns(q.data(), rows, q.cols() / b, c0 / b, c1 / b, Matrix.Q6_K.BLOCK_BYTES,
                        allocate.apply(rows * Matrix.Q6_K.rowBytes(n))), rows, n);
            }
            default -> throw TensorTypes.unsupportedByHybrid(m, "a sliced matrix");
        };
    }

    /** The sizes of the segments {@link #columns} allocates for this slice (none when it is all columns). */
    static long[] columnBytes(Matrix m, int c0, int c1) {
        if (c0 == 0 && c1 == m.cols()) {
            return new long[0];
        }
        long n = c1 - c0, rows = m.rows();
        return switch (m) {
            case Matrix.F32 f -> new long[]{rows * n * Float.BYTES};
            case Matrix.Q8 q -> new long[]{rows * n, rows * (n / q.groupSize()) * Float.BYTES};
            case Matrix.F16 h -> new long[]{rows * n * Short.BYTES};
            case Matrix.Q8_0 q -> new long[]{rows * Matrix.Q8_0.rowBytes((int) n)};
            case Matrix.Q4_0 q -> new long[]{rows * Matrix.Q4_0.rowBytes((int) n)};
            case Matrix.Q4_K q -> new long[]{rows * Matrix.Q4_K.rowBytes((int) n)};
            case Matrix.Q6_K q -> new long[]{rows * Matrix.Q6_K.rowBytes((int) n)};
            default -> throw TensorTypes.unsupportedByHybrid(m, "a sliced matrix");
        };
    }

    private static void checkBlocks(Matrix m, int c0, int c1, int block) {
        if (c0 % block != 0 || c1 % block != 0) {
            throw new IllegalArgumentException(m.typeName() + " column slice [" + c0 + ", " + c1 + ") not on group boundaries of "
                    + block);
        }
    }

    /**
     * Elements [c0, c1) of every row of a row-major table of {@code rows} × {@code cols} elements of
     * {@code bytes} bytes each, copied compactly to {@code out}; returns out.
     */
    private static MemorySegment copyColumns(MemorySegment in, int rows, int cols, int c0, int c1, int bytes, MemorySegment out) {
        long n = (long) (c1 - c0) * bytes;
        for (int r = 0; r < rows; r++) {
            MemorySegment.copy(in, ((long) r * cols + c0) * bytes, out, r * n, n);
        }
        return out;
    }

    /**
     * A matrix in TornadoVM arrays: float32 data, F16 bits, int8 values with float32 group scales (Q8, Q8_0), or
     * K-quant super-blocks.
     */
    sealed interface DeviceSlice permits F32Slice, F16Slice, Q8Slice, KQuantSlice {
        int rows();

        int cols();

        long bytes();

        /** The type's name in task ids ({@code f32}, {@code f16}, {@code q8}, {@code kq}), as the TornadoVM engine names its tasks. */
        String kind();
    }

    record F32Slice(FloatArray data, int rows, int cols) implements DeviceSlice {
        @Override
        public long bytes() {
            return (long) rows * cols * Float.BYTES;
        }

        @Override
        public String kind() {
            return "f32";
        }
    }

    /** IEEE half values as their 16 bits (GGUF F16), decoded by the kernels. */
    record F16Slice(ShortArray data, int rows, int cols) implements DeviceSlice {
        @Override
        public long bytes() {
            return (long) rows * cols * Short.BYTES;
        }

        @Override
        public String kind() {
            return "f16";
        }
    }

    /** llama2.c's Q8 (its group size) or GGUF's Q8_0 repacked or Q4_0 widened (group 32): int8 values, then one float scale per group. */
    record Q8Slice(Int8Array values, FloatArray scales, int rows, int cols, int groupSize) implements DeviceSlice {
        @Override
        public long bytes() {
            return (long) rows * cols + (long) rows * (cols / groupSize) * Float.BYTES;
        }

        @Override
        public String kind() {
            return "q8";
        }
    }

    /**
     * GGUF Q4_K ({@code type} 0) or Q6_K (1) rows: the file's super-blocks, byte for byte (144 or 210 bytes per 256
     * values), as {@link io.github.llama2j.tornado.KQuantKernels#productKQuant} reads them. One type per slice (the
     * TornadoVM engine stacks Q4_K with Q6_K; the hybrid runs one product per type instead).
     */
    record KQuantSlice(Int8Array blocks, int rows, int cols, int type) implements DeviceSlice {
        @Override
        public long bytes() {
            return blocks.getSize();
        }

        @Override
        public String kind() {
            return "kq";
        }
    }

    /**
     * Row slices of several matrices of one type with the same columns, stacked into one device array (wq over
     * wk over wv; w1 over w3).
     */
    static DeviceSlice toDevice(String name, Matrix... parts) {
        int cols = parts[0].cols();
        long rows = 0;
        for (Matrix m : parts) {
            if (m.cols() != cols || m.getClass() != parts[0].getClass()) {
                throw new IllegalArgumentException(name + ": cannot stack matrices of different shapes or types");
            }
            rows += m.rows();
        }
        checkSize(name, rows * cols);
        switch (parts[0]) {
            case Matrix.F32 first -> {
                FloatArray a = new FloatArray((int) (rows * cols));
                long off = 0;
                for (Matrix m : parts) {
                    off = append(((Matrix.F32) m).data(), a.getSegment(), off);
                }
                return new F32Slice(a, (int) rows, cols);
            }
            case Matrix.Q8 first -> {
                int gs = first.groupSize();
                Int8Array v = new Int8Array((int) (rows * cols));
                FloatArray s = new FloatArray((int) (rows * (cols / gs)));
                long vo = 0, so = 0;
                for (Matrix m : parts) {
                    Matrix.Q8 q = (Matrix.Q8) m;
                    if (q.groupSize() != gs) {
                        throw new IllegalArgumentException(name + ": cannot stack matrices of different group sizes");
                    }
                    vo = append(q.values(), v.getSegment(), vo);
                    so = append(q.scales(), s.getSegment(), so);
                }
                return new Q8Slice(v, s, (int) rows, cols, gs);
            }
            case Matrix.F16 first -> {
                ShortArray a = new ShortArray((int) (rows * cols));
                long off = 0;
                for (Matrix m : parts) {
                    off = append(((Matrix.F16) m).data(), a.getSegment(), off);
                }
                return new F16Slice(a, (int) rows, cols);
            }
            case Matrix.Q8_0 first -> {
                int b = Matrix.Q8_0.BLOCK;
                Int8Array v = new Int8Array((int) (rows * cols));
                FloatArray s = new FloatArray((int) (rows * cols / b));
                long block = 0;
                for (Matrix m : parts) {
                    MemorySegment data = ((Matrix.Q8_0) m).data();
                    for (long at = 0; at < data.byteSize(); at += Matrix.Q8_0.BLOCK_BYTES, block++) {
                        s.set((int) block, Float.float16ToFloat(data.get(Matrix.SHORT, at)));
                        MemorySegment.copy(data, at + 2, v.getSegment(), block * b, b);
                    }
                }
                return new Q8Slice(v, s, (int) rows, cols, b);
            }
            case Matrix.Q4_0 first -> { // widened to the Q8_0 slice's layout, as the TornadoVM engine does (DeviceMatrix)
                int b = Matrix.Q4_0.BLOCK;
                Int8Array v = new Int8Array((int) (rows * cols));
                FloatArray s = new FloatArray((int) (rows * cols / b));
                long block = 0;
                for (Matrix m : parts) {
                    Matrix.Q4_0 q = (Matrix.Q4_0) m;
                    for (long k = 0; k < q.data().byteSize() / Matrix.Q4_0.BLOCK_BYTES; k++, block++) {
                        s.set((int) block, q.scale(k));
                        q.widenBlock(k, v.getSegment(), block * b);
                    }
                }
                return new Q8Slice(v, s, (int) rows, cols, b);
            }
            case Matrix.Q4_K first -> {
                return new KQuantSlice(blocks(parts), (int) rows, cols, 0);
            }
            case Matrix.Q6_K first -> {
                return new KQuantSlice(blocks(parts), (int) rows, cols, 1);
            }
            default -> throw TensorTypes.unsupportedByHybrid(parts[0], name);
        }
    }

    /** The GGML blocks of matrices of one type, concatenated as they are into one int8 array. */
    private static Int8Array blocks(Matrix... parts) {
        long total = 0;
        for (Matrix m : parts) {
            total += m.byteSize();
        }
        checkSize("K-quant slice", total);
        Int8Array a = new Int8Array((int) total);
        long off = 0;
        for (Matrix m : parts) {
            off = append(((Matrix.Ggml) m).data(), a.getSegment(), off);
        }
        return a;
    }

    /** Copies all of {@code from} to {@code to} at byte {@code off}; returns the offset after it. */
    private static long append(MemorySegment from, MemorySegment to, long off) {
        MemorySegment.copy(from, 0, to, off, from.byteSize());
        return off + from.byteSize();
    }

    /** Columns [c0, c1) of every row of {@code m}, compact, in device arrays (through a temporary {@link #columns} copy). */
    static DeviceSlice columnsToDevice(String name, Matrix m, int c0, int c1) {
        try (Arena arena = Arena.ofConfined()) {
            return toDevice(name, columns(m, c0, c1, arena::allocate));
        }
    }

    /** TornadoVM arrays and the kernels' index arithmetic are int. */
    private static void checkSize(String name, long elements) {
        if (elements > Integer.MAX_VALUE - 64) {
            throw new Llama2jException(name + ": the device's slice holds " + elements
                    + " elements, more than a TornadoVM array can index; give the device a smaller --split",
                    Llama2jException.UNAVAILABLE);
        }
    }
}
