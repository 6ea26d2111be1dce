package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.MemorySegment;

/**
 * A GGML {@link Matrix.Q4_0} matrix copied at load time into the layout {@link GgmlMatmul#q4_0Packed} reads: one row
 * per int lane. The rows go in groups of {@link #ROWS} (the int lanes of the kernel's vectors: 16 at 512 bits, 8 at
 * 256, 4 at 128; the last group padded with zero rows), and for each group and block of 32 columns, four runs of
 * {@code 4 · ROWS} bytes: run q holds bytes 4q .. 4q + 3 of the block's 16 nibble bytes of every row of the group, row
 * after row (each row's bytes in the file's order: byte k holds value k in its low nibble and value 16 + k in its high
 * one). One load is then one run, lane i being row i's four bytes, and a group's products are its rows' products
 * lane by lane: no sum across lanes. The block scales are floats (F16 widened once) in an array of their own,
 * {@code scales[(group · blocks + block) · ROWS + i]} for row {@code ROWS · group + i}: one vector per block. The copy
 * is the file's size (16 bytes of nibbles and a 4-byte scale per 32 values, against 18 bytes), read as one aligned
 * stream.
 *
 * @param source  the matrix as the file stores it (the embedding rows and the batched prefill still read it)
 * @param nibbles ({@code groups · blocks · 16 · ROWS}) bytes, 64-byte aligned
 * @param scales  ({@code groups · blocks · ROWS}) the block scales as floats
 */
record PackedQ4_0(Matrix.Q4_0 source, MemorySegment nibbles, float[] scales) implements MatrixForm {
    /** Rows per group: the kernel's int lanes. */
    static final int ROWS = GgmlMatmul.Q4_0_ROWS;
    /** Nibble bytes per block of one row. */
    static final int BLOCK_NIBBLE_BYTES = Matrix.Q4_0.BLOCK / 2;

    PackedQ4_0 {
        long groups = PackedQ8_0.groups(source.rows(), ROWS), blocks = source.cols() / Matrix.Q4_0.BLOCK;
        if (nibbles.byteSize() != groups * blocks * ROWS * BLOCK_NIBBLE_BYTES || scales.length != groups * blocks * ROWS
                || nibbles.address() % 64 != 0) {
            throw new IllegalArgumentException("packed Q4_0 of " + source.rows() + "x" + source.cols() + ": " + nibbles.byteSize()
                    + " bytes of nibbles at " + nibbles.address() + " and " + scales.length + " scales do not match");
        }
    }

    /** Bytes of memory and heap {@link #of} takes for {@code m} (the nibbles and the scales). */
    static long bytes(Matrix.Q4_0 m) {
        long padded = (long) PackedQ8_0.groups(m.rows(), ROWS) * ROWS, blocks = m.cols() / Matrix.Q4_0.BLOCK;
        return padded * blocks * (BLOCK_NIBBLE_BYTES + Float.BYTES);
    }

    /** Bytes {@link #of} takes from its allocator for {@code m}'s nibbles, alignment included (the scales are on the heap). */
    static long allocationBytes(Matrix.Q4_0 m) {
        return (long) PackedQ8_0.groups(m.rows(), ROWS) * ROWS * (m.cols() / Matrix.Q4_0.BLOCK) * BLOCK_NIBBLE_BYTES + 64;
    }

    /**
     * m repacked into memory from {@code memory} (which must give zeroed memory and outlive the result: an arena,
     * or a slicing allocator over one {@link PageMemory} region), its groups split over {@code parallel}.
     */
    static PackedQ4_0 of(Matrix.Q4_0 m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
        int blocks = m.cols() / Matrix.Q4_0.BLOCK, groups = PackedQ8_0.groups(m.rows(), ROWS);
        long padded = (long) groups * ROWS;
        if (padded * blocks > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("Q4_0 matrix of " + m.rows() + "x" + m.cols() + " has too many blocks to pack");
        }
        MemorySegment nibbles = memory.allocate(padded * blocks * BLOCK_NIBBLE_BYTES, 64); // zeroed: padding rows are 0
        float[] scales = new float[(int) (padded * blocks)];
        long rowBytes = Matrix.Q4_0.rowBytes(m.cols());
        parallel.forRange(groups, (g0, g1) -> {
            for (int r = g0 * ROWS; r < Math.min(g1 * ROWS, m.rows()); r++) {
                int i = r % ROWS;
                for (int blk = 0; blk < blocks; blk++) {
                    long b = r * rowBytes + (long) blk * Matrix.Q4_0.BLOCK_BYTES;
                    long tile = ((long) (r / ROWS) * blocks + blk) * ROWS; // the group's block, in rows
                    scales[(int) tile + i] = Float.float16ToFloat(m.data().get(Matrix.SHORT, b));
                    for (int q = 0; q < BLOCK_NIBBLE_BYTES / 4; q++) {
                        MemorySegment.copy(m.data(), b + Short.BYTES + 4L * q, nibbles, tile * BLOCK_NIBBLE_BYTES + 4L * (q * ROWS + i), 4);
                    }
                }
            }
        });
        return new PackedQ4_0(m, nibbles, scales);
    }
}
