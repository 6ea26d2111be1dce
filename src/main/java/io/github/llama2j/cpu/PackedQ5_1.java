package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A GGML {@link Matrix.Q5_1} matrix copied at load time into the layout {@link GgmlMatmul#q5_1Packed} reads: one row
 * per int lane, as {@link PackedQ4_0}, with each row's 32 five-bit values of a block in {@link #INTS} = 6 ints whose
 * 16-bit halves hold them in pairs. The rows go in groups of {@link #ROWS} (the kernel's int lanes: 16 at 512 bits,
 * 8 at 256, 4 at 128; the last group padded with zero rows), and for each group and block of 32 columns, six runs of
 * {@code 4 · ROWS} bytes: run i holds int i of every row of the group, row after row. Int i &lt; 5 holds the pairs
 * t = 3i, 3i + 1, 3i + 2 at the bit offsets {@code 5f} (f = t - 3i): value {@code t + 16} at bits {@code 5f ..
 * 5f + 4}, value t at bits {@code 16 + 5f .. 20 + 5f}; int 5 holds pair t = 15 at offset 0 (its other bits are 0). So
 * {@code (v >>> 5f) & 0x001F001F} is a lane {@code q_(t+16) + 2^16 q_t}, ready for the kernel's multiply by the
 * activations' pair {@code a_t + 2^16 a_(t+16)} ({@link Activations#q51Pairs}), with no fifth bit to put in: two
 * operations per pair vector of a row group, one for f = 0. The scales d and the offsets m are floats (F16 widened
 * once) in arrays of their own, {@code scales[(group · blocks + block) · ROWS + i]} for row {@code ROWS · group + i}
 * (the same index in {@code mins}): one vector each per block.
 *
 * <p>Memory: 24 bytes of values and 8 of d and m per 32 values and row, against the file's 24 (4/3 of the file's
 * size), read as one aligned stream and two of floats.
 *
 * @param source the matrix as the file stores it (the embedding rows and the batched prefill still read it)
 * @param values ({@code groups · blocks · INTS · ROWS}) ints, 64-byte aligned
 * @param scales ({@code groups · blocks · ROWS}) the block scales d as floats
 * @param mins   ({@code groups · blocks · ROWS}) the block offsets m as floats
 */
record PackedQ5_1(Matrix.Q5_1 source, MemorySegment values, float[] scales, float[] mins) implements MatrixForm {
    /** Rows per group: the kernel's int lanes (as {@link PackedQ4_0}). */
    static final int ROWS = GgmlMatmul.Q4_0_ROWS;
    /** Ints per block of one row: five of three pairs and one of the last pair. */
    static final int INTS = 6;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    PackedQ5_1 {
        long groups = PackedQ8_0.groups(source.rows(), ROWS), blocks = source.cols() / Matrix.Q5_1.BLOCK;
        if (values.byteSize() != groups * blocks * ROWS * INTS * Integer.BYTES || scales.length != groups * blocks * ROWS
                || mins.length != scales.length || values.address() % 64 != 0) {
            throw new IllegalArgumentException("packed Q5_1 of " + source.rows() + "x" + source.cols() + ": " + values.byteSize()
                    + " bytes of values at " + values.address() + ", " + scales.length + " scales and " + mins.length
                    + " offsets do not match");
        }
    }

    /** Bytes of memory and heap {@link #of} takes for {@code m} (the values, the scales and the offsets). */
    static long bytes(Matrix.Q5_1 m) {
        long padded = (long) PackedQ8_0.groups(m.rows(), ROWS) * ROWS, blocks = m.cols() / Matrix.Q5_1.BLOCK;
        return padded * blocks * (INTS * Integer.BYTES + 2 * Float.BYTES);
    }

    /** Bytes {@link #of} takes from its allocator for {@code m}'s values, alignment included (d and m are on the heap). */
    static long allocationBytes(Matrix.Q5_1 m) {
        return (long) PackedQ8_0.groups(m.rows(), ROWS) * ROWS * (m.cols() / Matrix.Q5_1.BLOCK) * INTS * Integer.BYTES + 64;
    }

    /**
     * Int i (0..5) of one row's block in this layout, from the block's 32 values {@code q[0..31]} (each 0..31): the
     * pairs of int i at their offsets (see the class comment).
     */
    static int packedInt(int[] q, int i) {
        int v = 0;
        for (int t = 3 * i, f = 0; t < Math.min(3 * i + 3, 16); t++, f++) {
            v |= q[t + 16] << (5 * f) | q[t] << (16 + 5 * f);
        }
        return v;
    }

    /**
     * m repacked into memory from {@code memory} (which must give zeroed memory and outlive the result: an arena,
     * or a slicing allocator over one {@link PageMemory} region), its groups split over {@code parallel}.
     */
    static PackedQ5_1 of(Matrix.Q5_1 m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
        int blocks = m.cols() / Matrix.Q5_1.BLOCK, groups = PackedQ8_0.groups(m.rows(), ROWS);
        long padded = (long) groups * ROWS;
        if (padded * blocks > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("Q5_1 matrix of " + m.rows() + "x" + m.cols() + " has too many blocks to pack");
        }
        MemorySegment values = memory.allocate(padded * blocks * INTS * Integer.BYTES, 64); // zeroed: padding rows are 0
        float[] scales = new float[(int) (padded * blocks)], mins = new float[scales.length];
        long rowBytes = Matrix.Q5_1.rowBytes(m.cols());
        MemorySegment data = m.data();
        parallel.forRange(groups, (g0, g1) -> {
            int[] q = new int[Matrix.Q5_1.BLOCK]; // (32) one block's values
            for (int r = g0 * ROWS; r < Math.min(g1 * ROWS, m.rows()); r++) {
                int lane = r % ROWS;
                for (int blk = 0; blk < blocks; blk++) {
                    long b = r * rowBytes + (long) blk * Matrix.Q5_1.BLOCK_BYTES;
                    long tile = ((long) (r / ROWS) * blocks + blk) * ROWS; // the group's block, in rows
                    scales[(int) tile + lane] = Float.float16ToFloat(data.get(Matrix.SHORT, b));
                    mins[(int) tile + lane] = Float.float16ToFloat(data.get(Matrix.SHORT, b + Matrix.Q5_1.M));
                    int qh = data.get(INT, b + Matrix.Q5_1.QH);
                    for (int k = 0; k < 16; k++) {
                        int nibbles = data.get(ValueLayout.JAVA_BYTE, b + Matrix.Q5_1.QS + k) & 0xFF;
                        q[k] = nibbles & 0x0F | ((qh >>> k) & 1) << 4;
                        q[k + 16] = nibbles >>> 4 | ((qh >>> (k + 16)) & 1) << 4;
                    }
                    for (int i = 0; i < INTS; i++) {
                        values.set(INT, (tile * INTS + (long) i * ROWS + lane) * Integer.BYTES, packedInt(q, i));
                    }
                }
            }
        });
        return new PackedQ5_1(m, values, scales, mins);
    }
}
