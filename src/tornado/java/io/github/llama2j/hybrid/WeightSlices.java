package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.tornado.TensorTypes;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.lang.foreign.MemorySegment;
import java.util.function.LongFunction;

/**
 * The slices of the checkpoint's matrices that one shard owns.
 *
 * <ul>
 *   <li>A range of rows of a row-major matrix is contiguous in the mapped file, so the CPU reads it in
 *       place through a {@link #rows} view: nothing is copied.</li>
 *   <li>A range of columns is not (each row contributes a short run), so the CPU shard copies its column
 *       slice of wo and w2 once, compactly, into memory of its own ({@link #columns}); the pages of the
 *       mapped matrix it does not own are then never touched again. A shard that owns every column
 *       keeps the mapped matrix itself. (The copies go to a file mapping too: see {@link MappedScratch}.)</li>
 *   <li>A device shard copies its slices once into TornadoVM arrays ({@link #toDevice}), which TornadoVM
 *       then transfers to the device and keeps there.</li>
 * </ul>
 */
final class WeightSlices {
    private WeightSlices() {
    }

    /** Rows [r0, r1) of {@code m}, as a view of the same memory (Q8: whole groups, since groups never straddle rows). */
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
            default -> throw TensorTypes.unsupported(m, "a sliced matrix");
        };
    }

    /**
     * Columns [c0, c1) of {@code m}, every row, copied compactly into memory from {@code allocate} (bytes →
     * segment), or {@code m} itself when that is all of it. Q8: c0 and c1 must be multiples of the group size.
     */
    static Matrix columns(Matrix m, int c0, int c1, LongFunction<MemorySegment> allocate) {
        if (c0 == 0 && c1 == m.cols()) {
            return m;
        }
        int n = c1 - c0, rows = m.rows();
        return switch (m) {
            case Matrix.F32 f -> {
                MemorySegment out = allocate.apply((long) rows * n * Float.BYTES);
                for (int r = 0; r < rows; r++) {
                    MemorySegment.copy(f.data(), ((long) r * f.cols() + c0) * Float.BYTES, out,
                            (long) r * n * Float.BYTES, (long) n * Float.BYTES);
                }
                yield new Matrix.F32(out, rows, n);
            }
            case Matrix.Q8 q -> {
                int gs = q.groupSize();
                checkGroups(q, c0, c1);
                MemorySegment values = allocate.apply((long) rows * n);
                MemorySegment scales = allocate.apply((long) rows * (n / gs) * Float.BYTES);
                copyQ8Columns(q, c0, c1, values, scales, 0);
                yield new Matrix.Q8(values, scales, rows, n, gs);
            }
            default -> throw TensorTypes.unsupported(m, "a sliced matrix");
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
            default -> throw TensorTypes.unsupported(m, "a sliced matrix");
        };
    }

    private static void checkGroups(Matrix.Q8 q, int c0, int c1) {
        if (c0 % q.groupSize() != 0 || c1 % q.groupSize() != 0) {
            throw new IllegalArgumentException("Q8 column slice [" + c0 + ", " + c1 + ") not on group boundaries of "
                    + q.groupSize());
        }
    }

    /** Copies columns [c0, c1) of every row of q to {@code values}/{@code scales}, starting at output row {@code rowOff}. */
    private static void copyQ8Columns(Matrix.Q8 q, int c0, int c1, MemorySegment values, MemorySegment scales, long rowOff) {
        int n = c1 - c0, gs = q.groupSize(), groupsPerRow = q.cols() / gs, groups = n / gs;
        for (int r = 0; r < q.rows(); r++) {
            long outRow = rowOff + r;
            MemorySegment.copy(q.values(), (long) r * q.cols() + c0, values, outRow * n, n);
            MemorySegment.copy(q.scales(), ((long) r * groupsPerRow + c0 / gs) * Float.BYTES, scales,
                    outRow * groups * Float.BYTES, (long) groups * Float.BYTES);
        }
    }

    /** A matrix in TornadoVM arrays: float32 data, or Q8_0 values and scales. */
    sealed interface DeviceSlice permits F32Slice, Q8Slice {
        int rows();

        int cols();

        long bytes();
    }

    record F32Slice(FloatArray data, int rows, int cols) implements DeviceSlice {
        @Override
        public long bytes() {
            return (long) rows * cols * Float.BYTES;
        }
    }

    record Q8Slice(Int8Array values, FloatArray scales, int rows, int cols, int groupSize) implements DeviceSlice {
        @Override
        public long bytes() {
            return (long) rows * cols + (long) rows * (cols / groupSize) * Float.BYTES;
        }
    }

    /** Row slices of several matrices with the same columns, stacked into one device array (wq over wk over wv). */
    static DeviceSlice toDevice(String name, Matrix... parts) {
        int cols = parts[0].cols();
        long rows = 0;
        for (Matrix m : parts) {
            rows += m.rows();
        }
        checkSize(name, rows * cols);
        switch (parts[0]) {
            case Matrix.F32 first -> {
                FloatArray a = new FloatArray((int) (rows * cols));
                long off = 0;
                for (Matrix m : parts) {
                    MemorySegment d = ((Matrix.F32) m).data();
                    MemorySegment.copy(d, 0, a.getSegment(), off, d.byteSize());
                    off += d.byteSize();
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
                    MemorySegment.copy(q.values(), 0, v.getSegment(), vo, q.values().byteSize());
                    MemorySegment.copy(q.scales(), 0, s.getSegment(), so, q.scales().byteSize());
                    vo += q.values().byteSize();
                    so += q.scales().byteSize();
                }
                return new Q8Slice(v, s, (int) rows, cols, gs);
            }
            default -> throw TensorTypes.unsupported(parts[0], name);
        }
    }

    /** Columns [c0, c1) of every row of {@code m}, compact, in device arrays. */
    static DeviceSlice columnsToDevice(String name, Matrix m, int c0, int c1) {
        int n = c1 - c0, rows = m.rows();
        checkSize(name, (long) rows * n);
        switch (m) {
            case Matrix.F32 f -> {
                FloatArray a = new FloatArray(rows * n);
                for (int r = 0; r < rows; r++) {
                    MemorySegment.copy(f.data(), ((long) r * f.cols() + c0) * Float.BYTES, a.getSegment(),
                            (long) r * n * Float.BYTES, (long) n * Float.BYTES);
                }
                return new F32Slice(a, rows, n);
            }
            case Matrix.Q8 q -> {
                checkGroups(q, c0, c1);
                Int8Array v = new Int8Array(rows * n);
                FloatArray s = new FloatArray(rows * (n / q.groupSize()));
                copyQ8Columns(q, c0, c1, v.getSegment(), s.getSegment(), 0);
                return new Q8Slice(v, s, rows, n, q.groupSize());
            }
            default -> throw TensorTypes.unsupported(m, name);
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
