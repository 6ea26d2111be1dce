package io.github.llama2j.model;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Q5_0}: the Q8_0 matrix a Q5_0 tensor is read as, and {@link GgmlQuantize#q5_0}, llama.cpp's reference quantizer. */
class Q5_0Test {
    private static final ValueLayout.OfInt WORD = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Value k of a Q5_0 block as ggml-common.h lays it out, written from the format, not from {@link Q5_0}. */
    private static float dequantized(MemorySegment data, long block, int k) {
        long b = block * 22;
        float d = Float.float16ToFloat(data.get(Matrix.SHORT, b));
        int qh = data.get(WORD, b + 2);
        int byteOf = data.get(ValueLayout.JAVA_BYTE, b + 6 + k % 16) & 0xFF;
        int low = k < 16 ? byteOf & 0xF : byteOf >> 4;
        int high = (qh >> k) & 1; // bit k: value k's fifth bit (k < 16 from the low nibbles, k >= 16 from the high ones)
        return (low + 16 * high - 16) * d;
    }

    /** Widened, every value is the format's value, and an int8 in [-16, 15], on fresh random blocks. */
    @Test
    void widenedMatrixHoldsTheSameValues() {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        int rows = 5, cols = 96, blocks = rows * cols / 32;
        try (Arena arena = Arena.ofShared()) { // (shared, as a mapped file's: the rows are widened on several threads)
            MemorySegment data = arena.allocate((long) blocks * 22);
            for (long i = 0; i < data.byteSize(); i++) {
                data.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt());
            }
            for (int b = 0; b < blocks; b++) { // finite scales of either sign (random bits could be NaN or inf)
                data.set(Matrix.SHORT, (long) b * 22, Float.floatToFloat16((float) r.nextGaussian() * 0.01f));
            }
            Matrix.Q8_0 m = Q5_0.toQ8_0(data, rows, cols);
            assertEquals(rows, m.rows());
            assertEquals(cols, m.cols());
            float[] row = new float[cols];
            for (int i = 0; i < rows; i++) {
                m.dequantizeRow(i, row, 0);
                for (int j = 0; j < cols; j++) {
                    long block = (i * cols + j) / 32;
                    assertEquals(dequantized(data, block, j % 32), row[j], 0.0f, "row " + i + " col " + j + " (seed " + seed + ")");
                    byte q = m.data().get(ValueLayout.JAVA_BYTE, block * 34 + 2 + j % 32);
                    assertTrue(q >= -16 && q <= 15, "value " + q + " (seed " + seed + ")");
                }
            }
        }
    }

    @Test
    void wrongSizesAreRefused() {
        try (Arena arena = Arena.ofConfined()) {
            assertThrows(IllegalArgumentException.class, () -> Q5_0.toQ8_0(arena.allocate(22 * 3), 1, 64));
            assertThrows(IllegalArgumentException.class, () -> Q5_0.toQ8_0(arena.allocate(22), 1, 16));
        }
    }

    /**
     * quantize_row_q5_0_ref worked by hand on x_j = j - 16: the value of largest magnitude is -16 (the first), d = 1,
     * q_j = (int) (x_j + 16.5) = j: qs[j] = j | j << 4 for j < 16, the fifth bits all 0 for j < 16 and 1 after.
     */
    @Test
    void quantizerGivesLlamaCppsBytes() {
        float[] x = new float[32];
        for (int j = 0; j < 32; j++) {
            x[j] = j - 16;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(22);
            GgmlQuantize.q5_0(x, 0, 32, out, 0);
            assertEquals((short) 0x3C00, out.get(Matrix.SHORT, 0), "d = 1.0");
            assertEquals(0xFFFF0000, out.get(WORD, 2));
            for (int j = 0; j < 16; j++) {
                assertEquals((byte) (j | j << 4), out.get(ValueLayout.JAVA_BYTE, 6 + j), "qs[" + j + "]");
            }
            for (int j = 0; j < 32; j++) {
                assertEquals(x[j], dequantized(out, 0, j), 0.0f);
            }
        }
    }

    /** On random rows: every value within half a step of its input (plus d's rounding to F16), one step where code 31 clamps it. */
    @Test
    void quantizerErrorIsHalfAStep() {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[256];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(8 * 22);
            GgmlQuantize.q5_0(x, 0, 256, out, 0);
            for (int b = 0; b < 8; b++) {
                float d = Float.float16ToFloat(out.get(Matrix.SHORT, b * 22L)); // max / -16, rounded to F16 (d/1024 at most)
                for (int k = 0; k < 32; k++) {
                    float v = x[32 * b + k], err = Math.abs(dequantized(out, b, k) - v);
                    boolean clamped = v / d > 15.5f; // on the other side of the largest magnitude: code 31 at most
                    float bound = (clamped ? 1.0f : 0.5f) * Math.abs(d) + 16 * Math.abs(d) / 1024;
                    assertTrue(err <= bound, "block " + b + " value " + k + ": " + err + " > " + bound + " (seed " + seed + ")");
                }
            }
        }
    }
}
