package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.MemorySegment;

/**
 * A matrix of int8 values in blocks with one scale each, copied at load time into the layout the CPU
 * engine's one-token kernels read fastest; the source matrix (the mapped file) is left as it is and still
 * serves the embedding lookup and the batched prefill. One form for both such types, two parameters apart:
 * <ul>
 *   <li>GGML {@link Matrix.Q8_0} (blocks of 32, F16 scales interleaved with the values): groups of
 *       {@link #ROWS} = 4 rows, chunks of a whole block (each row's 32 values together), read by
 *       {@link GgmlMatmul#q8_0Packed};</li>
 *   <li>llama2.c's {@link Matrix.Q8} (runq: blocks of the checkpoint's group size, float scales stored after
 *       all the values): groups of {@link Q8Matmul#PACK_ROWS} rows (one per int lane: 16 at 512 bits, 8 at
 *       256, 4 at 128), chunks of 2 values (each short vector of widened weights holds two columns of every row
 *       of the group), read by {@link Q8Matmul#matmulPacked}.</li>
 * </ul>
 *
 * <p>Layout: the rows in groups of {@link #rows} (the last group padded with zero rows). For each group and
 * each block of {@link #block} columns, a tile of {@code rows · block} bytes, 64-byte aligned as a whole:
 * chunk after chunk of {@link #chunk} columns, in each chunk the group's rows one after another. For Q8_0
 * (chunk = block) that is the four rows' 32 values one after another: one pass reads one stream, one
 * activation load serves four rows and the four rows' sums are four independent chains. The scales are floats
 * (F16 widened once): {@code scales[(group · blocks + block) · rows + i]} for row {@code rows · group + i}.
 *
 * <p>Memory: {@code rows · cols} bytes and {@code rows · cols / block} floats of scales (for Q8_0 about 1.06
 * times the source's 34 bytes per block; for runq's Q8 the source's size), in addition to the mapping (see
 * {@link PreparedWeights} for when the engine packs).
 *
 * @param source  the matrix as the file stores it ({@link Matrix.Q8_0} or {@link Matrix.Q8})
 * @param block   values per scale: 32 for Q8_0, the group size for Q8
 * @param rows    rows per group
 * @param chunk   consecutive values of one row stored together (divides block)
 * @param quants  ({@code groups · blocks · rows · block}) int8 values, 64-byte aligned
 * @param scales  ({@code groups · blocks · rows}) the weights' block scales as floats
 */
record PackedQ8_0(Matrix source, int block, int rows, int chunk, MemorySegment quants, float[] scales) implements MatrixForm {
    /** Rows per group of a Q8_0 matrix. */
    static final int ROWS = 4;

    PackedQ8_0 {
        if (block != block(source) || rows != rows(source) || chunk != chunk(source)) {
            throw new IllegalArgumentException("packed " + source.typeName() + " with blocks of " + block + ", " + rows
                    + " rows and chunks of " + chunk + ", not " + block(source) + ", " + rows(source) + ", " + chunk(source));
        }
        long groups = groups(source.rows(), rows), blocks = source.cols() / block;
        if (quants.byteSize() != groups * blocks * rows * block || scales.length != groups * blocks * rows
                || quants.address() % 64 != 0) {
            throw new IllegalArgumentException("packed " + source.typeName() + " of " + source.rows() + "x" + source.cols() + ": "
                    + quants.byteSize() + " bytes of values at " + quants.address() + " and " + scales.length + " scales do not match");
        }
    }

    static int groups(int rows, int perGroup) {
        return (rows + perGroup - 1) / perGroup;
    }

    /** Values per scale in {@code m}: 32 for Q8_0, the group size for runq's Q8. */
    static int block(Matrix m) {
        return switch (m) {
            case Matrix.Q8_0 q -> Matrix.Q8_0.BLOCK;
            case Matrix.Q8 q -> q.groupSize();
            default -> throw new IllegalArgumentException(m.typeName() + " has no packed int8 form");
        };
    }

    /** Rows per group for {@code m}'s kernel. */
    static int rows(Matrix m) {
        return m instanceof Matrix.Q8 ? Q8Matmul.PACK_ROWS : ROWS;
    }

    /** Values of one row stored together for {@code m}'s kernel. */
    static int chunk(Matrix m) {
        return m instanceof Matrix.Q8 ? Q8Matmul.PACK_CHUNK : block(m);
    }

    /** Bytes {@link #of} allocates for {@code m}. */
    static long bytes(Matrix m) {
        long padded = (long) groups(m.rows(), rows(m)) * rows(m), blocks = m.cols() / block(m);
        return padded * blocks * (block(m) + Float.BYTES);
    }

    /** Bytes {@link #of} takes from its allocator for {@code m}'s values, alignment included (the scales are on the heap). */
    static long allocationBytes(Matrix m) {
        return (long) groups(m.rows(), rows(m)) * rows(m) * (m.cols() / block(m)) * block(m) + 64;
    }

    /**
     * m (Q8_0 or Q8) repacked into memory from {@code memory} (which must give zeroed memory and outlive the
     * result: an arena, or a slicing allocator over one {@link PageMemory} region), its groups split over
     * {@code parallel}.
     */
    static PackedQ8_0 of(Matrix m, java.lang.foreign.SegmentAllocator memory, Parallel parallel) {
        int block = block(m), per = rows(m), chunk = chunk(m), blocks = m.cols() / block, groups = groups(m.rows(), per);
        long padded = (long) groups * per;
        if (padded * blocks > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(m.typeName() + " matrix of " + m.rows() + "x" + m.cols() + " has too many blocks to pack");
        }
        MemorySegment quants = memory.allocate(padded * blocks * block, 64); // zeroed: padding rows are 0
        float[] scales = new float[(int) (padded * blocks)];
        parallel.forRange(groups, (g0, g1) -> {
            for (int r = g0 * per; r < Math.min(g1 * per, m.rows()); r++) {
                int i = r % per, at = (r / per) * blocks * per + i;
                for (int blk = 0; blk < blocks; blk++, at += per) {
                    long tile = (long) (at - i) * block + (long) i * chunk; // the tile's first byte, plus row i's place in a chunk
                    MemorySegment from;
                    long src;
                    switch (m) {
                        case Matrix.Q8_0 q -> {
                            long b = r * Matrix.Q8_0.rowBytes(q.cols()) + (long) blk * Matrix.Q8_0.BLOCK_BYTES;
                            scales[at] = Float.float16ToFloat(q.data().get(Matrix.SHORT, b));
                            from = q.data();
                            src = b + 2;
                        }
                        case Matrix.Q8 q -> {
                            src = (long) r * q.cols() + (long) blk * block;
                            scales[at] = q.scales().get(ScalarKernels.FLOAT, src / block * Float.BYTES);
                            from = q.values();
                        }
                        default -> throw new IllegalArgumentException(m.typeName() + " has no packed int8 form");
                    }
                    for (int c = 0; c < block; c += chunk) {
                        MemorySegment.copy(from, src + c, quants, tile + (long) c * per, chunk);
                    }
                }
            }
        });
        return new PackedQ8_0(m, block, per, chunk, quants, scales);
    }
}
