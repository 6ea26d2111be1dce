package io.github.llama2j.hybrid;

import io.github.llama2j.model.Matrix;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static io.github.llama2j.cpu.ScalarKernels.FLOAT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Row views and column copies read the same elements as the whole matrix, for float32 and Q8_0. */
@Tag("tornado")
class WeightSlicesTest {
    static final long SEED = System.nanoTime();
    static final int ROWS = 13, COLS = 24, GS = 4;

    @Test
    void f32RowsAndColumns() {
        try (Arena arena = Arena.ofConfined()) {
            Random rnd = new Random(SEED);
            MemorySegment data = arena.allocate((long) ROWS * COLS * 4);
            for (int i = 0; i < ROWS * COLS; i++) {
                data.set(FLOAT, i * 4L, rnd.nextFloat());
            }
            Matrix.F32 m = new Matrix.F32(data, ROWS, COLS);
            Matrix.F32 rows = (Matrix.F32) WeightSlices.rows(m, 3, 10);
            assertEquals(7, rows.rows());
            Matrix.F32 cols = (Matrix.F32) WeightSlices.columns(m, 5, 17, b -> arena.allocate(b, 64));
            assertEquals(12, cols.cols());
            for (int r = 0; r < ROWS; r++) {
                for (int j = 0; j < COLS; j++) {
                    float v = data.get(FLOAT, ((long) r * COLS + j) * 4);
                    if (r >= 3 && r < 10) {
                        assertEquals(v, rows.data().get(FLOAT, ((long) (r - 3) * COLS + j) * 4), "seed " + SEED);
                    }
                    if (j >= 5 && j < 17) {
                        assertEquals(v, cols.data().get(FLOAT, ((long) r * 12 + j - 5) * 4), "seed " + SEED);
                    }
                }
            }
            assertSame(m, WeightSlices.columns(m, 0, COLS, b -> arena.allocate(b, 64)), "all columns: the matrix itself");
        }
    }

    @Test
    void q8RowsAndColumnsKeepEachValueWithItsGroupScale() {
        try (Arena arena = Arena.ofConfined()) {
            Random rnd = new Random(SEED);
            MemorySegment values = arena.allocate((long) ROWS * COLS);
            MemorySegment scales = arena.allocate((long) ROWS * COLS / GS * 4);
            for (int i = 0; i < ROWS * COLS; i++) {
                values.set(ValueLayout.JAVA_BYTE, i, (byte) (rnd.nextInt(255) - 127));
            }
            for (int g = 0; g < ROWS * COLS / GS; g++) {
                scales.set(FLOAT, g * 4L, rnd.nextFloat());
            }
            Matrix.Q8 m = new Matrix.Q8(values, scales, ROWS, COLS, GS);
            Matrix.Q8 rows = (Matrix.Q8) WeightSlices.rows(m, 2, 11);
            Matrix.Q8 cols = (Matrix.Q8) WeightSlices.columns(m, 8, 20, b -> arena.allocate(b, 64));
            for (int r = 0; r < ROWS; r++) {
                for (int j = 0; j < COLS; j++) {
                    float v = dequant(m, r, j);
                    if (r >= 2 && r < 11) {
                        assertEquals(v, dequant(rows, r - 2, j), "seed " + SEED);
                    }
                    if (j >= 8 && j < 20) {
                        assertEquals(v, dequant(cols, r, j - 8), "seed " + SEED);
                    }
                }
            }
            assertThrows(IllegalArgumentException.class, () -> WeightSlices.columns(m, 6, 20, b -> arena.allocate(b, 64)), "off a group boundary");
        }
    }

    private static float dequant(Matrix.Q8 m, int r, int j) {
        long i = (long) r * m.cols() + j;
        return m.values().get(ValueLayout.JAVA_BYTE, i) * m.scales().get(FLOAT, i / m.groupSize() * 4);
    }
}
