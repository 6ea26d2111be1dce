package io.github.llama2j.hybrid;

import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.tornado.KQuantKernels;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static io.github.llama2j.cpu.ScalarKernels.FLOAT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Row views and column copies read the same elements as the whole matrix, for llama2.c's float32 and Q8 and
 * GGUF's F16, Q8_0, Q4_K and Q6_K (on random matrices); the device copies hold the same values, Q8_0 repacked into
 * int8 values and float32 block scales as the TornadoVM engine repacks it, K-quants as the file's super-blocks.
 */
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

    @Test
    void f16RowsAndColumnsAndTheirDeviceCopies() {
        int rows = 9, cols = 40;
        try (Arena arena = Arena.ofConfined()) {
            Random rnd = new Random(SEED);
            MemorySegment data = arena.allocate((long) rows * cols * 2);
            for (int i = 0; i < rows * cols; i++) {
                data.set(Matrix.SHORT, i * 2L, Float.floatToFloat16((float) rnd.nextGaussian()));
            }
            Matrix.F16 m = new Matrix.F16(data, rows, cols);
            Matrix.F16 r = (Matrix.F16) WeightSlices.rows(m, 2, 7);
            Matrix.F16 c = (Matrix.F16) WeightSlices.columns(m, 3, 29, b -> arena.allocate(b, 64));
            WeightSlices.F16Slice stacked = (WeightSlices.F16Slice) WeightSlices.toDevice("test", r, WeightSlices.rows(m, 0, 1));
            WeightSlices.F16Slice dc = (WeightSlices.F16Slice) WeightSlices.columnsToDevice("test", m, 3, 29);
            assertEquals(6, stacked.rows());
            assertEquals(26, dc.cols());
            assertEquals((long) rows * 26 * 2, dc.bytes());
            float[] row = new float[cols], part = new float[cols];
            for (int i = 0; i < rows; i++) {
                m.dequantizeRow(i, row, 0);
                if (i >= 2 && i < 7) {
                    r.dequantizeRow(i - 2, part, 0);
                    assertArrayEquals(row, part, "row " + i + ", seed " + SEED);
                    for (int j = 0; j < cols; j++) {
                        assertEquals(row[j], Float.float16ToFloat(stacked.data().get((i - 2) * cols + j)), "seed " + SEED);
                    }
                }
                c.dequantizeRow(i, part, 0);
                for (int j = 3; j < 29; j++) {
                    assertEquals(row[j], part[j - 3], "column " + j + ", seed " + SEED);
                    assertEquals(row[j], Float.float16ToFloat(dc.data().get(i * 26 + j - 3)), "seed " + SEED);
                }
            }
            m.dequantizeRow(0, row, 0);
            for (int j = 0; j < cols; j++) {
                assertEquals(row[j], Float.float16ToFloat(stacked.data().get(5 * cols + j)), "the second part's row, seed " + SEED);
            }
        }
    }

    @Test
    void q8_0RowsAndColumnsOnBlockBoundariesAndTheirRepackedDeviceCopies() {
        int rows = 7, cols = 128, b = Matrix.Q8_0.BLOCK;
        try (Arena arena = Arena.ofConfined()) {
            Random rnd = new Random(SEED);
            MemorySegment data = arena.allocate(rows * Matrix.Q8_0.rowBytes(cols));
            for (long at = 0; at < data.byteSize(); at += Matrix.Q8_0.BLOCK_BYTES) {
                data.set(Matrix.SHORT, at, Float.floatToFloat16(rnd.nextFloat() / 64));
                for (int k = 0; k < b; k++) {
                    data.set(ValueLayout.JAVA_BYTE, at + 2 + k, (byte) (rnd.nextInt(255) - 127));
                }
            }
            Matrix.Q8_0 m = new Matrix.Q8_0(data, rows, cols);
            Matrix.Q8_0 r = (Matrix.Q8_0) WeightSlices.rows(m, 1, 5);
            Matrix.Q8_0 c = (Matrix.Q8_0) WeightSlices.columns(m, 32, 96, x -> arena.allocate(x, 64));
            WeightSlices.Q8Slice stacked = (WeightSlices.Q8Slice) WeightSlices.toDevice("test", r, WeightSlices.rows(m, 6, 7));
            WeightSlices.Q8Slice dc = (WeightSlices.Q8Slice) WeightSlices.columnsToDevice("test", m, 64, 128);
            assertEquals(5, stacked.rows());
            assertEquals(b, stacked.groupSize());
            assertEquals(64, dc.cols());
            assertEquals((long) rows * 64 + (long) rows * 2 * 4, dc.bytes(), "int8 values and a float scale per block");
            float[] row = new float[cols], part = new float[cols];
            for (int i = 0; i < rows; i++) {
                m.dequantizeRow(i, row, 0);
                if (i >= 1 && i < 5) {
                    r.dequantizeRow(i - 1, part, 0);
                    assertArrayEquals(row, part, "row " + i + ", seed " + SEED);
                    for (int j = 0; j < cols; j++) {
                        assertEquals(row[j], device(stacked, i - 1, j), "row " + i + ", seed " + SEED);
                    }
                }
                c.dequantizeRow(i, part, 0);
                for (int j = 0; j < cols; j++) {
                    if (j >= 32 && j < 96) {
                        assertEquals(row[j], part[j - 32], "column " + j + ", seed " + SEED);
                    }
                    if (j >= 64) {
                        assertEquals(row[j], device(dc, i, j - 64), "column " + j + ", seed " + SEED);
                    }
                }
            }
            m.dequantizeRow(6, row, 0);
            for (int j = 0; j < cols; j++) {
                assertEquals(row[j], device(stacked, 4, j), "the second part's row, seed " + SEED);
            }
            assertThrows(IllegalArgumentException.class, () -> WeightSlices.columns(m, 16, 96, x -> arena.allocate(x, 64)),
                    "off a block boundary");
        }
    }

    /**
     * Q4_K and Q6_K (random values quantized as llama.cpp does): a row view is the same memory (no copy), a column
     * slice on super-block boundaries (multiples of 256) dequantizes to the same values, the device copy holds the
     * file's blocks byte for byte with the type the product kernel reads (0: Q4_K, 1: Q6_K), and a column slice off
     * a super-block boundary (a Q8_0 block's 32) is refused.
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 1})
    void kQuantRowsAndColumnsOnSuperBlockBoundariesAndTheirDeviceCopies(int type) {
        int rows = 5, cols = 4 * KQuantKernels.QK_K;
        long rowBytes = type == 0 ? Matrix.Q4_K.rowBytes(cols) : Matrix.Q6_K.rowBytes(cols);
        try (Arena arena = Arena.ofConfined()) {
            Random rnd = new Random(SEED);
            MemorySegment data = arena.allocate(rows * rowBytes);
            float[] x = new float[cols];
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < cols; j++) {
                    x[j] = (float) rnd.nextGaussian() / 8;
                }
                if (type == 0) {
                    GgmlQuantize.q4_K(x, 0, cols, data, r * rowBytes);
                } else {
                    GgmlQuantize.q6_K(x, 0, cols, data, r * rowBytes);
                }
            }
            Matrix m = type == 0 ? new Matrix.Q4_K(data, rows, cols) : new Matrix.Q6_K(data, rows, cols);
            Matrix.Ggml r = (Matrix.Ggml) WeightSlices.rows(m, 1, 4);
            assertEquals(m.getClass(), r.getClass());
            assertEquals(data.address() + rowBytes, r.data().address(), "a row view reads the mapped memory in place");
            assertEquals(3 * rowBytes, r.data().byteSize());
            Matrix c = WeightSlices.columns(m, 256, 768, b -> arena.allocate(b, 64));
            assertEquals(m.getClass(), c.getClass());
            assertEquals(512, c.cols());
            WeightSlices.KQuantSlice stacked = (WeightSlices.KQuantSlice) WeightSlices.toDevice("test", r, WeightSlices.rows(m, 0, 1));
            WeightSlices.KQuantSlice dc = (WeightSlices.KQuantSlice) WeightSlices.columnsToDevice("test", m, 512, 1024);
            assertEquals(type, stacked.type(), "the product kernel's type argument");
            assertEquals(4, stacked.rows());
            assertEquals(4 * rowBytes, stacked.bytes());
            assertEquals(rows * rowBytes / 2, dc.bytes(), "half the super-blocks of every row");
            for (int i = 0; i < 3 * rowBytes; i++) {
                assertEquals(data.get(ValueLayout.JAVA_BYTE, rowBytes + i), stacked.blocks().get(i), "byte " + i + ", seed " + SEED);
            }
            for (int i = 0; i < rowBytes; i++) {
                assertEquals(data.get(ValueLayout.JAVA_BYTE, i), stacked.blocks().get((int) (3 * rowBytes + i)),
                        "the second part's byte " + i + ", seed " + SEED);
            }
            float[] row = new float[cols], part = new float[cols];
            Matrix.Ggml dm = (Matrix.Ggml) (type == 0 ? new Matrix.Q4_K(dc.blocks().getSegment(), rows, 512)
                    : new Matrix.Q6_K(dc.blocks().getSegment(), rows, 512));
            for (int i = 0; i < rows; i++) {
                ((Matrix.Ggml) m).dequantizeRow(i, row, 0);
                if (i >= 1 && i < 4) {
                    r.dequantizeRow(i - 1, part, 0);
                    assertArrayEquals(row, part, "row " + i + ", seed " + SEED);
                }
                ((Matrix.Ggml) c).dequantizeRow(i, part, 0);
                for (int j = 256; j < 768; j++) {
                    assertEquals(row[j], part[j - 256], "column " + j + ", seed " + SEED);
                }
                dm.dequantizeRow(i, part, 0);
                for (int j = 512; j < 1024; j++) {
                    assertEquals(row[j], part[j - 512], "device column " + j + ", seed " + SEED);
                }
            }
            assertArrayEquals(new long[]{rows * rowBytes / 2}, WeightSlices.columnBytes(m, 256, 768));
            assertThrows(IllegalArgumentException.class, () -> WeightSlices.columns(m, 32, 768, b -> arena.allocate(b, 64)),
                    "off a super-block boundary");
        }
    }

    /** A value of a device Q8 slice: int8 times its group's float scale (what the kernels compute with). */
    private static float device(WeightSlices.Q8Slice q, int r, int j) {
        int i = r * q.cols() + j;
        return q.values().get(i) * q.scales().get(i / q.groupSize());
    }

    private static float dequant(Matrix.Q8 m, int r, int j) {
        long i = (long) r * m.cols() + j;
        return m.values().get(ValueLayout.JAVA_BYTE, i) * m.scales().get(FLOAT, i / m.groupSize() * 4);
    }
}
