package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Matrix;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.ShortArray;

import java.lang.foreign.MemorySegment;

/**
 * A weight matrix in TornadoVM arrays, ready to be transferred once to the device. Several checkpoint
 * matrices with the same column count can be stacked row-wise into one (wq over wk over wv; w1 over
 * w3), so one kernel reads them through a single argument.
 *
 * <p>TornadoVM's arrays keep a small header in front of the data and the checkpoint is mapped
 * read-only, so an array cannot wrap the mapped file in place ({@code fromSegmentShallow} writes that
 * header): each tensor is copied once, off-heap, from the mapped segment into the array's own segment
 * (never through a Java heap array). That copy is what TornadoVM then transfers to the device.
 *
 * <p>GGUF types: F32 as is; F16 as its 16-bit values ({@link F16}, decoded by the kernels: no device needs
 * fp16 support); GGML Q8_0 blocks ({@code f16 d, int8 qs[32]}) repacked into the {@link Q8} layout with group
 * size 32, the scale converted to float32 (exact), so the kernels read aligned int8 values and float scales;
 * GGML Q4_0 blocks ({@code f16 d, u8 qs[16]}) widened into that same layout ({@code nibble - 8} as int8: twice the
 * file's bytes on the device, and Q8_0's kernels, whose integer sums and scales are llama.cpp's Q4_0 dot product's);
 * Q4_K and Q6_K as the file's blocks, byte for byte ({@link KQuant}: 144 and 210 bytes per 256 values, decoded by
 * {@link KQuantKernels}); the two K-quants stack together (a Q4_K_M file's wv or w3 may be Q6_K where wq/wk or w1
 * are Q4_K), each part keeping its type.
 */
sealed interface DeviceMatrix permits DeviceMatrix.F32, DeviceMatrix.Q8, DeviceMatrix.F16, DeviceMatrix.KQuant {

    int rows();

    int cols();

    /** Bytes of payload the device holds for this matrix. */
    long bytes();

    /** Float32 rows × cols. */
    record F32(FloatArray data, int rows, int cols) implements DeviceMatrix {
        @Override
        public long bytes() {
            return (long) rows * cols * Float.BYTES;
        }
    }

    /**
     * Q8_0: rows × cols int8 values and rows × cols / groupSize float scales, row after row. The values are packed
     * four to an int, byte for byte (value i is byte i % 4 of int i / 4), so the kernels read four at a time
     * ({@link KernelHelpers#dot4}); hence a group size that is a multiple of 4 ({@link ForwardGraph#checkUniform}).
     */
    record Q8(IntArray values, FloatArray scales, int rows, int cols, int groupSize) implements DeviceMatrix {
        public Q8 {
            if (groupSize % 4 != 0 || values.getSize() * 4L != (long) rows * cols) {
                throw new IllegalArgumentException("Q8 " + rows + " × " + cols + " in groups of " + groupSize + ", " + values.getSize()
                        + " packed ints");
            }
        }

        @Override
        public long bytes() {
            return (long) rows * cols + (long) rows * cols / groupSize * Float.BYTES;
        }
    }

    /** IEEE half rows × cols, as their 16 bits (GGUF F16). */
    record F16(ShortArray data, int rows, int cols) implements DeviceMatrix {
        @Override
        public long bytes() {
            return (long) rows * cols * Short.BYTES;
        }
    }

    /**
     * GGML Q4_K and Q6_K rows: the file's super-blocks (Q4_K 144 bytes, Q6_K 210 bytes per 256 values), row after
     * row, in {@code parts} stacked parts (1 to 3) of their own types: bit p of {@code types} is set where part p is
     * Q6_K (see {@link KQuantKernels#rowBase}); {@code bytes} in all.
     */
    record KQuant(Int8Array blocks, int rows, int cols, int parts, int types, long bytes) implements DeviceMatrix {
        public KQuant {
            if (parts < 1 || parts > 3 || types < 0 || types >= 1 << parts) {
                throw new IllegalArgumentException("K-quant parts " + parts + ", types " + types);
            }
        }

        /** The type of part 0 (0: Q4_K, 1: Q6_K): a single matrix's type. */
        int firstType() {
            return types & 1;
        }
    }

    /** The type's name, for task ids and messages ({@code f32}, {@code f16}, {@code q8}, {@code q4k}, {@code q6k}). */
    static String kind(DeviceMatrix m) {
        return switch (m) {
            case F32 f -> "f32";
            case F16 f -> "f16";
            case Q8 q -> "q8";
            case KQuant k -> "kq";
        };
    }

    /** Device bytes of a checkpoint matrix once copied ({@link #stack}): Q8_0's 34-byte and Q4_0's 18-byte blocks become 36 bytes. */
    static long deviceBytes(Matrix m) {
        return switch (m) {
            case Matrix.Q8_0 q -> (long) q.rows() * q.cols() / Matrix.Q8_0.BLOCK * (Matrix.Q8_0.BLOCK + Float.BYTES);
            case Matrix.Q4_0 q -> (long) q.rows() * q.cols() / Matrix.Q4_0.BLOCK * (Matrix.Q4_0.BLOCK + Float.BYTES); // widened
            default -> m.byteSize();
        };
    }

    /** Whether m is a K-quant (Q4_K or Q6_K): those stack together. */
    static boolean kQuant(Matrix m) {
        return m instanceof Matrix.Q4_K || m instanceof Matrix.Q6_K;
    }

    /**
     * Copies {@code parts} (all of one type, or all K-quants, at most 3 of them; same column count) into one stacked
     * device matrix.
     */
    static DeviceMatrix stack(String name, Matrix... parts) {
        int cols = parts[0].cols();
        long rows = 0;
        for (Matrix m : parts) {
            boolean sameType = m.getClass() == parts[0].getClass() || (kQuant(m) && kQuant(parts[0]) && parts.length <= 3);
            if (m.cols() != cols || !sameType) {
                throw new Llama2jException(name + ": cannot stack matrices of different shapes or types", Llama2jException.BAD_INPUT);
            }
            rows += m.rows();
        }
        checkSize(name, rows * cols);
        switch (parts[0]) {
            case Matrix.F32 first -> {
                MemorySegment[] data = new MemorySegment[parts.length];
                for (int i = 0; i < parts.length; i++) {
                    data[i] = ((Matrix.F32) parts[i]).data();
                }
                return new F32(floats(name, data), (int) rows, cols);
            }
            case Matrix.Q8 first -> {
                MemorySegment[] values = new MemorySegment[parts.length];
                MemorySegment[] scales = new MemorySegment[parts.length];
                for (int i = 0; i < parts.length; i++) {
                    Matrix.Q8 q = (Matrix.Q8) parts[i];
                    if (q.groupSize() != first.groupSize()) {
                        throw new Llama2jException(name + ": cannot stack matrices of different group sizes", Llama2jException.BAD_INPUT);
                    }
                    values[i] = q.values();
                    scales[i] = q.scales();
                }
                return new Q8(packedBytes(name, values), floats(name, scales), (int) rows, cols, first.groupSize());
            }
            case Matrix.F16 first -> {
                MemorySegment[] data = new MemorySegment[parts.length];
                for (int i = 0; i < parts.length; i++) {
                    data[i] = ((Matrix.F16) parts[i]).data();
                }
                return new F16(shorts(name, data), (int) rows, cols);
            }
            case Matrix.Q8_0 first -> {
                IntArray values = new IntArray((int) (rows * cols / 4));
                FloatArray scales = new FloatArray((int) (rows * cols / Matrix.Q8_0.BLOCK));
                long block = 0;
                for (Matrix part : parts) {
                    MemorySegment data = ((Matrix.Q8_0) part).data();
                    long blocks = data.byteSize() / Matrix.Q8_0.BLOCK_BYTES;
                    for (long b = 0; b < blocks; b++, block++) {
                        long at = b * Matrix.Q8_0.BLOCK_BYTES;
                        scales.set((int) block, Float.float16ToFloat(data.get(Matrix.SHORT, at)));
                        MemorySegment.copy(data, at + 2, values.getSegment(), block * Matrix.Q8_0.BLOCK, Matrix.Q8_0.BLOCK);
                    }
                }
                return new Q8(values, scales, (int) rows, cols, Matrix.Q8_0.BLOCK);
            }
            case Matrix.Q4_0 first -> { // widened to Q8_0's layout: nibble - 8 as int8, the same scale
                IntArray values = new IntArray((int) (rows * cols / 4));
                FloatArray scales = new FloatArray((int) (rows * cols / Matrix.Q4_0.BLOCK));
                long block = 0;
                for (Matrix part : parts) {
                    Matrix.Q4_0 q = (Matrix.Q4_0) part;
                    long blocks = q.data().byteSize() / Matrix.Q4_0.BLOCK_BYTES;
                    for (long b = 0; b < blocks; b++, block++) {
                        scales.set((int) block, q.scale(b));
                        q.widenBlock(b, values.getSegment(), block * Matrix.Q4_0.BLOCK);
                    }
                }
                return new Q8(values, scales, (int) rows, cols, Matrix.Q4_0.BLOCK);
            }
            case Matrix.Q4_K first -> {
                return kQuants(name, (int) rows, cols, parts);
            }
            case Matrix.Q6_K first -> {
                return kQuants(name, (int) rows, cols, parts);
            }
            default -> throw TensorTypes.unsupported(parts[0], name);
        }
    }

    private static KQuant kQuants(String name, int rows, int cols, Matrix... parts) {
        MemorySegment[] data = new MemorySegment[parts.length];
        int types = 0;
        long bytes = 0;
        for (int i = 0; i < parts.length; i++) {
            Matrix.Ggml m = (Matrix.Ggml) parts[i];
            data[i] = m.data();
            bytes += m.byteSize();
            types |= (parts[i] instanceof Matrix.Q6_K ? 1 : 0) << i;
        }
        return new KQuant(bytes(name, data), rows, cols, parts.length, types, bytes);
    }

    /** One float32 vector (rmsnorm weights) or several concatenated, copied into a FloatArray. */
    static FloatArray floats(String name, MemorySegment... segments) {
        long total = totalBytes(segments);
        checkSize(name, total / Float.BYTES);
        FloatArray a = new FloatArray((int) (total / Float.BYTES));
        concat(segments, a.getSegment());
        return a;
    }

    private static ShortArray shorts(String name, MemorySegment... segments) {
        long total = totalBytes(segments);
        checkSize(name, total / Short.BYTES);
        ShortArray a = new ShortArray((int) (total / Short.BYTES));
        concat(segments, a.getSegment());
        return a;
    }

    /** int8 values (a multiple of 4 of them) packed four to an int, byte for byte ({@link Q8}). */
    private static IntArray packedBytes(String name, MemorySegment... segments) {
        long total = totalBytes(segments);
        checkSize(name, total);
        IntArray a = new IntArray((int) (total / 4));
        concat(segments, a.getSegment());
        return a;
    }

    private static Int8Array bytes(String name, MemorySegment... segments) {
        long total = totalBytes(segments);
        checkSize(name, total);
        Int8Array a = new Int8Array((int) total);
        concat(segments, a.getSegment());
        return a;
    }

    private static long totalBytes(MemorySegment... segments) {
        long total = 0;
        for (MemorySegment s : segments) {
            total += s.byteSize();
        }
        return total;
    }

    /** Copies the segments one after another into {@code into}'s data. */
    private static void concat(MemorySegment[] segments, MemorySegment into) {
        long off = 0;
        for (MemorySegment s : segments) {
            MemorySegment.copy(s, 0, into, off, s.byteSize());
            off += s.byteSize();
        }
    }

    /** TornadoVM arrays are indexed by int; the kernels index rows × cols with int arithmetic too. */
    private static void checkSize(String name, long elements) {
        if (elements > Integer.MAX_VALUE - 64) {
            throw new Llama2jException(name + " holds " + elements + " elements, more than a TornadoVM array can index ("
                    + Integer.MAX_VALUE + ")", Llama2jException.UNAVAILABLE);
        }
    }
}
