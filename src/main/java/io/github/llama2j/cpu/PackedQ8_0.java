package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A GGML {@link Matrix.Q8_0} matrix copied at load time into the layout the CPU engine's one-token
 * kernel reads fastest ({@link GgmlMatmul#q8_0Packed}); the source matrix (the mapped file) is left as
 * it is and still serves the embedding lookup and the batched prefill.
 *
 * <p>Layout: the rows in groups of {@link #ROWS} (the last group padded with zero rows). For each group
 * and each block of 32 columns, the four rows' 32 int8 values one after another (128 bytes: two cache
 * lines, the whole segment 64-byte aligned), so that one pass reads one stream, one activation load serves
 * four rows and the four rows' sums are four independent chains. The F16 scales are widened to float once:
 * {@code scales[(group · blocks + block) · 4 + i]} for row {@code 4 · group + i}.
 *
 * <p>Memory: {@code rows · cols} bytes and {@code rows · cols / 8} bytes of scales, about 1.06 times the
 * source's 34 bytes per block, in addition to the mapping (see {@link PreparedWeights} for when the
 * engine packs).
 *
 * @param source  the matrix as the file stores it
 * @param quants  ({@code groups · blocks · 4 · 32}) int8 values, 64-byte aligned
 * @param scales  ({@code groups · blocks · 4}) the weights' block scales as floats
 */
record PackedQ8_0(Matrix.Q8_0 source, MemorySegment quants, float[] scales) {
    /** Rows per group. */
    static final int ROWS = 4;

    PackedQ8_0 {
        long groups = groups(source.rows()), blocks = source.cols() / Matrix.Q8_0.BLOCK;
        if (quants.byteSize() != groups * blocks * ROWS * Matrix.Q8_0.BLOCK || scales.length != groups * blocks * ROWS
                || quants.address() % 64 != 0) {
            throw new IllegalArgumentException("packed Q8_0 of " + source.rows() + "x" + source.cols() + ": " + quants.byteSize()
                    + " bytes of values at " + quants.address() + " and " + scales.length + " scales do not match");
        }
    }

    static int groups(int rows) {
        return (rows + ROWS - 1) / ROWS;
    }

    /** Bytes {@link #of} allocates for {@code m}. */
    static long bytes(Matrix.Q8_0 m) {
        long padded = (long) groups(m.rows()) * ROWS, blocks = m.cols() / Matrix.Q8_0.BLOCK;
        return padded * blocks * (Matrix.Q8_0.BLOCK + Float.BYTES);
    }

    /** m repacked into memory from {@code arena} (which must outlive the result), its groups split over {@code parallel}. */
    static PackedQ8_0 of(Matrix.Q8_0 m, Arena arena, Parallel parallel) {
        int rows = m.rows(), blocks = m.cols() / Matrix.Q8_0.BLOCK, groups = groups(rows);
        long padded = (long) groups * ROWS;
        if (padded * blocks > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("Q8_0 matrix of " + rows + "x" + m.cols() + " has too many blocks to pack");
        }
        MemorySegment quants = arena.allocate(padded * blocks * Matrix.Q8_0.BLOCK, 64); // zeroed: padding rows are 0
        float[] scales = new float[(int) (padded * blocks)];
        MemorySegment data = m.data();
        long rowBytes = Matrix.Q8_0.rowBytes(m.cols());
        parallel.forRange(groups, (g0, g1) -> {
            for (int r = g0 * ROWS; r < Math.min(g1 * ROWS, rows); r++) {
                int at = (r / ROWS) * blocks * ROWS + r % ROWS;
                long b = r * rowBytes;
                for (int blk = 0; blk < blocks; blk++, b += Matrix.Q8_0.BLOCK_BYTES, at += ROWS) {
                    scales[at] = Float.float16ToFloat(data.get(Matrix.SHORT, b));
                    for (int k = 0; k < Matrix.Q8_0.BLOCK; k += Long.BYTES) {
                        quants.set(ValueLayout.JAVA_LONG, (long) at * Matrix.Q8_0.BLOCK + k, data.get(LONG, b + 2 + k));
                    }
                }
            }
        });
        return new PackedQ8_0(m, quants, scales);
    }

    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;
}
