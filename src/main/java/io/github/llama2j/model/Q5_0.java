package io.github.llama2j.model;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.stream.IntStream;

/**
 * GGML Q5_0, read by widening it into Q8_0 when the model loads: blocks of 32 values, {@code f16 d, u8 qh[4],
 * u8 qs[16]} (22 bytes); value k &lt; 16 is the low nibble of qs[k] with bit k of the little-endian word qh as its
 * fifth bit, value k + 16 the high nibble of qs[k] with bit k + 16; x = d * (q - 16), q in [0, 31].
 *
 * <p>Why widened, not a type of its own: llama.cpp's Q5_0 dot product ({@code ggml_vec_dot_q5_0_q8_0}, every
 * variant) is its Q8_0 one on the values {@code q - 16} as int8: per block the exact integer sum against the Q8_0
 * activations times the block's two scales. So a Q8_0 block with the same F16 d and the int8 values {@code q - 16}
 * (in [-16, 15]) is the same matrix under the same arithmetic, and every engine (the CPU engine, the TornadoVM
 * engine, the hybrid) runs it with the kernels it has for Q8_0. The price: the widened matrix lives in memory, 34
 * bytes per 32 values instead of the file's 22 mapped ones, and a token reads those 34 (1.55× the bytes of a Q5_0
 * kernel of its own, not written). llama-quantize writes Q5_0 where a Q4_K_M file's matrix has rows that are not a
 * multiple of 256 (Qwen2.5-0.5B's 896, SmolLM2's 576 and 960), so those files run.
 */
public final class Q5_0 {
    public static final int BLOCK = 32, BLOCK_BYTES = 22;

    private Q5_0() {
    }

    /** Bytes of one row of {@code cols} values. */
    public static long rowBytes(int cols) {
        return (long) cols / BLOCK * BLOCK_BYTES;
    }

    /**
     * The rows × cols Q5_0 matrix in {@code data} as a Q8_0 matrix of the same values in new memory (released when it
     * is no longer reachable), widened on the common pool's threads: {@code data} must be readable from any thread
     * (a mapped GGUF file's segments are: {@code Arena.ofShared}).
     *
     * @throws IllegalArgumentException when {@code data} is not rows × cols of Q5_0 blocks
     */
    public static Matrix.Q8_0 toQ8_0(MemorySegment data, int rows, int cols) {
        if (rows < 0 || cols <= 0 || cols % BLOCK != 0 || data.byteSize() != rows * rowBytes(cols)) {
            throw new IllegalArgumentException("Q5_0 matrix " + rows + " x " + cols + ": " + data.byteSize()
                    + " bytes, cols must be a positive multiple of " + BLOCK + " and the bytes " + rows * rowBytes(cols));
        }
        long blocksPerRow = cols / BLOCK;
        MemorySegment wide = Arena.ofAuto().allocate(rows * Matrix.Q8_0.rowBytes(cols), 64);
        IntStream.range(0, rows).parallel().forEach(r -> {
            for (long b = r * blocksPerRow, end = b + blocksPerRow; b < end; b++) {
                widenBlock(data, b * BLOCK_BYTES, wide, b * Matrix.Q8_0.BLOCK_BYTES);
            }
        });
        return new Matrix.Q8_0(wide, rows, cols);
    }

    /** The Q5_0 block at byte {@code from} of {@code in} as a Q8_0 block at byte {@code to} of {@code out}: d, then q - 16. */
    static void widenBlock(MemorySegment in, long from, MemorySegment out, long to) {
        out.set(Matrix.SHORT, to, in.get(Matrix.SHORT, from));
        int qh = in.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), from + 2);
        for (int k = 0; k < 16; k++) {
            int q = in.get(ValueLayout.JAVA_BYTE, from + 6 + k) & 0xFF;
            out.set(ValueLayout.JAVA_BYTE, to + 2 + k, (byte) ((q & 0x0F | (qh >>> k & 1) << 4) - 16));
            out.set(ValueLayout.JAVA_BYTE, to + 18 + k, (byte) ((q >>> 4 | (qh >>> (k + 16) & 1) << 4) - 16));
        }
    }
}
