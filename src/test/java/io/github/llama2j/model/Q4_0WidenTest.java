package io.github.llama2j.model;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Matrix.Q4_0#widenBlock} and {@link Matrix.Q4_0#scale}: the Q8_0 form the device engines run Q4_0 as. */
class Q4_0WidenTest {

    /** Widened values times the scale are the dequantized row, value for value, on fresh random blocks. */
    @Test
    void widenedTimesScaleIsTheDequantizedRow() {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        int rows = 3, cols = 128, blocks = rows * cols / Matrix.Q4_0.BLOCK;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate((long) blocks * Matrix.Q4_0.BLOCK_BYTES);
            for (long i = 0; i < data.byteSize(); i++) {
                data.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt());
            }
            for (int b = 0; b < blocks; b++) { // finite scales of either sign (random bits could be NaN or inf)
                data.set(Matrix.SHORT, (long) b * Matrix.Q4_0.BLOCK_BYTES, Float.floatToFloat16((float) r.nextGaussian() * 0.01f));
            }
            Matrix.Q4_0 m = new Matrix.Q4_0(data, rows, cols);
            MemorySegment wide = arena.allocate((long) rows * cols);
            for (int b = 0; b < blocks; b++) {
                m.widenBlock(b, wide, (long) b * Matrix.Q4_0.BLOCK);
            }
            float[] row = new float[cols];
            for (int i = 0; i < rows; i++) {
                m.dequantizeRow(i, row, 0);
                for (int j = 0; j < cols; j++) {
                    int idx = i * cols + j;
                    byte q = wide.get(ValueLayout.JAVA_BYTE, idx);
                    assertTrue(q >= -8 && q <= 7, "value " + q + " (seed " + seed + ")");
                    assertEquals(row[j], q * m.scale(idx / Matrix.Q4_0.BLOCK), 0.0f, "row " + i + " col " + j + " (seed " + seed + ")");
                }
            }
        }
    }
}
