package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A matrix of int8 values in blocks with one scale each, copied at load time into the layout the CPU
 * engine's one-token kernels read fastest; the source matrix (the mapped file) is left as it is and still
 * serves the embedding lookup and the batched prefill. One form for both such types:
 * <ul>
 *   <li>GGML {@link Matrix.Q8_0} (blocks of 32, F16 scales interleaved with the values): read by
 *       {@link GgmlMatmul#q8_0Packed};</li>
 *   <li>llama2.c's {@link Matrix.Q8} (runq: blocks of the checkpoint's group size, float scales stored after
 *       all the values): read by {@link Q8Matmul#matmulPacked}.</li>
 * </ul>
 *
 * <p>Layout: the rows in groups of {@link #ROWS} (the last group padded with zero rows). For each group
 * and each block of {@link #block} columns, the four rows' int8 values one after another (for Q8_0, 128
 * bytes: two cache lines, the whole segment 64-byte aligned), so that one pass reads one stream, one
 * activation load serves four rows and the four rows' sums are four independent chains. The scales are
 * floats (F16 widened once): {@code scales[(group · blocks + block) · 4 + i]} for row {@code 4 · group + i}.
 *
 * <p>Memory: {@code rows · cols} bytes and {@code rows · cols / block} floats of scales (for Q8_0 about 1.06
 * times the source's 34 bytes per block; for runq's Q8 the source's size), in addition to the mapping (see
 * {@link PreparedWeights} for when the engine packs).
 *
 * @param source  the matrix as the file stores it ({@link Matrix.Q8_0} or {@link Matrix.Q8})
 * @param block   values per scale: 32 for Q8_0, the group size for Q8
 * @param quants  ({@code groups · blocks · 4 · block}) int8 values, 64-byte aligned
 * @param scales  ({@code groups · blocks · 4}) the weights' block scales as floats
 */
record PackedQ8_0(Matrix source, int block, MemorySegment quants, float[] scales) {
    /** Rows per group. */
    static final int ROWS = 4;

    PackedQ8_0 {
        if (block != block(source)) {
            throw new IllegalArgumentException("packed " + source.typeName() + " with blocks of " + block + ", not " + block(source));
        }
        long groups = groups(source.rows()), blocks = source.cols() / block;
        if (quants.byteSize() != groups * blocks * ROWS * block || scales.length != groups * blocks * ROWS
                || quants.address() % 64 != 0) {
            throw new IllegalArgumentException("packed " + source.typeName() + " of " + source.rows() + "x" + source.cols() + ": "
                    + quants.byteSize() + " bytes of values at " + quants.address() + " and " + scales.length + " scales do not match");
        }
    }

    static int groups(int rows) {
        return (rows + ROWS - 1) / ROWS;
    }

    /** Values per scale in {@code m}: 32 for Q8_0, the group size for runq's Q8. */
    static int block(Matrix m) {
        return switch (m) {
            case Matrix.Q8_0 q -> Matrix.Q8_0.BLOCK;
            case Matrix.Q8 q -> q.groupSize();
            default -> throw new IllegalArgumentException(m.typeName() + " has no packed int8 form");
        };
    }

    /** Bytes {@link #of} allocates for {@code m}. */
    static long bytes(Matrix m) {
        long padded = (long) groups(m.rows()) * ROWS, blocks = m.cols() / block(m);
        return padded * blocks * (block(m) + Float.BYTES);
    }

    /** m (Q8_0 or Q8) repacked into memory from {@code arena} (which must outlive the result), its groups split over {@code parallel}. */
    static PackedQ8_0 of(Matrix m, Arena arena, Parallel parallel) {
        int rows = m.rows(), block = block(m), blocks = m.cols() / block, groups = groups(rows);
        long padded = (long) groups * ROWS;
        if (padded * blocks > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(m.typeName() + " matrix of " + rows + "x" + m.cols() + " has too many blocks to pack");
        }
        MemorySegment quants = arena.allocate(padded * blocks * block, 64); // zeroed: padding rows are 0
        float[] scales = new float[(int) (padded * blocks)];
        parallel.forRange(groups, (g0, g1) -> {
            for (int r = g0 * ROWS; r < Math.min(g1 * ROWS, rows); r++) {
                int at = (r / ROWS) * blocks * ROWS + r % ROWS;
                for (int blk = 0; blk < blocks; blk++, at += ROWS) {
                    switch (m) {
                        case Matrix.Q8_0 q -> {
                            long b = r * Matrix.Q8_0.rowBytes(q.cols()) + (long) blk * Matrix.Q8_0.BLOCK_BYTES;
                            scales[at] = Float.float16ToFloat(q.data().get(Matrix.SHORT, b));
                            MemorySegment.copy(q.data(), b + 2, quants, (long) at * block, block);
                        }
                        case Matrix.Q8 q -> {
                            long v = (long) r * q.cols() + (long) blk * block;
                            scales[at] = q.scales().get(ScalarKernels.FLOAT, v / block * Float.BYTES);
                            MemorySegment.copy(q.values(), v, quants, (long) at * block, block);
                        }
                        default -> throw new IllegalArgumentException(m.typeName() + " has no packed int8 form");
                    }
                }
            }
        });
        return new PackedQ8_0(m, block, quants, scales);
    }
}
