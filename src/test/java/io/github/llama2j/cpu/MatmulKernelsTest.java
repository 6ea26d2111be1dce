package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fast matmul kernels against {@link ScalarKernels} (run.c's and runq.c's order) on fresh
 * random inputs, with sizes that are not multiples of the vector width and row ranges that do not
 * start or end on a tile.
 */
@Tag("vector-widths")
class MatmulKernelsTest {
    private final Arena arena = Arena.ofConfined();
    private final SplittableRandom rnd = new SplittableRandom();
    private final ScalarKernels scalar = new ScalarKernels();

    @AfterEach
    void close() {
        arena.close();
    }

    /** rows, cols, r0, r1 (r1 = -1: rows). */
    private static final String SHAPES = """
            1, 1, 0, -1
            3, 5, 0, -1
            16, 16, 0, -1
            17, 33, 0, -1
            40, 100, 3, 37
            64, 768, 0, -1
            100, 288, 13, 91
            33, 1376, 1, 33
            """;

    @ParameterizedTest
    @CsvSource(textBlock = SHAPES)
    void vectorF32IsCloseToScalar(int rows, int cols, int r0, int r1) {
        int end = r1 < 0 ? rows : r1;
        Matrix.F32 w = RandomMatrices.f32(arena, rnd, rows, cols, 28);
        float[] x = RandomMatrices.floats(rnd, cols);
        float[] expected = new float[rows], actual = new float[rows];
        scalar.matmulF32(expected, x, w, r0, end);
        new VectorKernels().matmulF32(actual, x, w, r0, end);
        for (int r = 0; r < rows; r++) {
            if (r < r0 || r >= end) {
                assertEquals(0.0f, actual[r], "row " + r + " is outside the range and must not be written");
                continue;
            }
            // A reordered float sum differs by a few roundings of the running sum: bound it by
            // n * ulp-scale of the sum of |terms|, which is what reassociation can move.
            double absSum = 0;
            for (int j = 0; j < cols; j++) {
                absSum += Math.abs(w.data().getAtIndex(ScalarKernels.FLOAT, (long) r * cols + j) * x[j]);
            }
            double tolerance = 2 * cols * Math.ulp((float) absSum) + Float.MIN_NORMAL;
            assertEquals(expected[r], actual[r], tolerance, "row " + r);
        }
    }

    @ParameterizedTest
    @CsvSource(textBlock = SHAPES)
    void exactF32IsBitIdenticalToScalar(int rows, int cols, int r0, int r1) {
        int end = r1 < 0 ? rows : r1;
        Matrix.F32 w = RandomMatrices.f32(arena, rnd, rows, cols, 28);
        float[] x = RandomMatrices.floats(rnd, cols);
        float[] expected = new float[rows], actual = new float[rows];
        scalar.matmulF32(expected, x, w, r0, end);
        new ExactVectorKernels().matmulF32(actual, x, w, r0, end);
        assertArrayEquals(expected, actual);
    }

    /** The exact test above would be void if these inputs did not expose a change of order: check they do. */
    @Test
    void inputsAreOrderSensitive() {
        Matrix.F32 w = RandomMatrices.f32(arena, rnd, 64, 768, 0);
        float[] x = RandomMatrices.floats(rnd, 768);
        float[] expected = new float[64], reordered = new float[64];
        scalar.matmulF32(expected, x, w, 0, 64);
        new VectorKernels().matmulF32(reordered, x, w, 0, 64);
        assertTrue(!Arrays.equals(expected, reordered), "a reordered sum should differ somewhere in 64 rows");
    }

    /** group sizes: 4 (scalar path), 8 (half-width path), 16 and 48 (32-bit lanes), 32, 64, 96, 128 (16-bit lanes). */
    @ParameterizedTest
    @CsvSource({
            "4, 20, 64", "8, 17, 96", "16, 40, 48", "32, 33, 96", "48, 21, 96",
            "64, 35, 768", "64, 16, 2048", "96, 19, 192", "128, 18, 256", "32, 64, 1376"})
    void q8IsBitIdenticalToScalar(int groupSize, int rows, int cols) {
        Matrix.Q8 w = RandomMatrices.q8(arena, rnd, rows, cols, groupSize);
        byte[] xq = RandomMatrices.activations(rnd, cols);
        float[] xs = RandomMatrices.floats(rnd, cols / groupSize);
        for (Kernels k : new Kernels[]{new VectorKernels(), new ExactVectorKernels()}) {
            for (int[] range : new int[][]{{0, rows}, {1, rows}, {3, rows - 2}, {0, 1}}) {
                float[] expected = new float[rows], actual = new float[rows];
                scalar.matmulQ8(expected, xq, xs, w, range[0], range[1]);
                k.matmulQ8(actual, xq, xs, w, range[0], range[1]);
                assertArrayEquals(expected, actual, k.name() + " rows " + Arrays.toString(range) + " gs " + groupSize);
            }
        }
    }

    /**
     * The engine's path: activations quantized and widened once ({@link Activations#prepareFor}), then
     * {@link Kernels#matmul} on row ranges, twice with one Activations (the second input must replace
     * the first's prepared forms, also when the group size changes).
     */
    @ParameterizedTest
    @CsvSource({"64, 35, 768", "32, 40, 1376", "16, 19, 48", "8, 17, 96", "128, 18, 256"})
    void q8ThroughActivationsIsBitIdenticalToScalar(int groupSize, int rows, int cols) {
        Activations in = new Activations(16);
        for (int gs : new int[]{groupSize, 2 * groupSize}) {
            if (cols % gs != 0) {
                continue;
            }
            Matrix.Q8 w = RandomMatrices.q8(arena, rnd, rows, cols, gs);
            float[] x = RandomMatrices.floats(rnd, cols);
            in.input(x, cols);
            in.prepareFor(w);
            for (Kernels k : new Kernels[]{new VectorKernels(), new ExactVectorKernels()}) {
                for (int[] range : new int[][]{{0, rows}, {16, rows}, {3, rows - 2}}) {
                    float[] expected = new float[rows], actual = new float[rows];
                    scalar.matmulQ8(expected, in.q8, in.q8Scales, w, range[0], range[1]);
                    k.matmul(actual, in, w, range[0], range[1]);
                    assertArrayEquals(expected, actual, k.name() + " rows " + Arrays.toString(range) + " gs " + gs);
                }
            }
        }
    }

    /**
     * The load-time packed copy of runq's Q8 ({@link PackedQ8_0}, read by {@link Q8Matmul#matmulPacked}) against the
     * scalar reference: rows not a multiple of the four packed together, row ranges starting and ending inside a packed
     * group, group counts per row that are not a multiple of a step's groups (e.g. 9 of 32), group sizes the packed
     * kernel reads at every width (multiples of 32) and others (16, 48, 8: packed at some widths, else the source is read).
     */
    @ParameterizedTest
    @CsvSource({
            "32, 35, 288", "64, 35, 768", "64, 13, 2048", "32, 9, 1376", "96, 19, 192", "128, 18, 256",
            "16, 21, 48", "48, 21, 96", "8, 17, 96", "64, 4, 64"})
    void q8PackedIsBitIdenticalToScalar(int groupSize, int rows, int cols) {
        try (Parallel pool = new Parallel(2); Arena shared = Arena.ofShared()) { // the pool's threads read the source
            Matrix.Q8 w = RandomMatrices.q8(shared, rnd, rows, cols, groupSize);
            Activations in = new Activations(cols);
            in.input(RandomMatrices.floats(rnd, cols), cols);
            in.prepareFor(w);
            PackedQ8_0 p = PackedQ8_0.of(w, shared, pool);
            for (Kernels k : new Kernels[]{new VectorKernels(), new ExactVectorKernels()}) {
                for (int[] range : new int[][]{{0, rows}, {1, rows}, {3, rows - 2}, {0, 1}, {rows - 1, rows}, {2, 3}, {4, rows}}) {
                    if (range[0] >= range[1]) {
                        continue;
                    }
                    float[] expected = new float[rows], actual = new float[rows];
                    scalar.matmulQ8(expected, in.q8, in.q8Scales, w, range[0], range[1]);
                    k.matmulPackedQ8(actual, in, p, range[0], range[1]);
                    assertArrayEquals(expected, actual, k.name() + " packed, rows " + Arrays.toString(range) + " gs " + groupSize);
                }
            }
        }
    }

    /** The packed kernel with activations holding -128 (it reads the source then: its 16-bit pair sums could overflow). */
    @ParameterizedTest
    @ValueSource(ints = {32, 64})
    void q8PackedWithMinus128Activations(int groupSize) {
        int rows = 37, cols = 4 * groupSize;
        try (Parallel pool = new Parallel(1); Arena shared = Arena.ofShared()) {
            Matrix.Q8 w = RandomMatrices.q8(shared, rnd, rows, cols, groupSize);
            byte[] xq = RandomMatrices.activations(rnd, cols);
            xq[rnd.nextInt(cols)] = Byte.MIN_VALUE;
            float[] xs = RandomMatrices.floats(rnd, cols / groupSize);
            Q8Matmul.Input in = new Q8Matmul.Input();
            in.prepare(xq, xs, cols, groupSize);
            float[] expected = new float[rows], actual = new float[rows];
            scalar.matmulQ8(expected, xq, xs, w, 0, rows);
            Q8Matmul.matmulPacked(actual, in, PackedQ8_0.of(w, shared, pool), 0, rows);
            assertArrayEquals(expected, actual);
        }
    }

    /** runq's activations never hold -128, but the kernel must still be right if they do (the 16-bit path would overflow). */
    @ParameterizedTest
    @ValueSource(ints = {32, 64})
    void q8WithMinus128Activations(int groupSize) {
        int rows = 37, cols = 4 * groupSize;
        Matrix.Q8 w = RandomMatrices.q8(arena, rnd, rows, cols, groupSize);
        byte[] xq = new byte[cols];
        Arrays.fill(xq, Byte.MIN_VALUE);
        float[] xs = RandomMatrices.floats(rnd, cols / groupSize);
        float[] expected = new float[rows], actual = new float[rows];
        scalar.matmulQ8(expected, xq, xs, w, 0, rows);
        new VectorKernels().matmulQ8(actual, xq, xs, w, 0, rows);
        assertArrayEquals(expected, actual);
    }
}
