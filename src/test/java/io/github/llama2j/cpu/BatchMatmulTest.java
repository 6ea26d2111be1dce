package io.github.llama2j.cpu;

import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * The batched matmuls ({@link BatchMatmul}) on fresh random inputs: F32 bit-identical to its scalar reference
 * ({@link BatchMatmul#f32Reference}) and within float rounding of the one-token kernels; runq's Q8
 * bit-identical to runq token by token; every GGML type the one-token kernel's result. Token counts that are not multiples of the
 * vector width or of a panel of four vectors (whole panels and one-vector ones in one batch), row ranges that do
 * not start or end on a tile, row counts that leave 2- and 1-row passes after the 4-row ones.
 * Tagged {@code vector-widths}: the build runs it at 512, 256 and 128 bits.
 */
@Tag("vector-widths")
class BatchMatmulTest {
    private final Arena arena = Arena.ofConfined();
    private final SplittableRandom rnd = new SplittableRandom();

    @AfterEach
    void close() {
        arena.close();
    }

    /** tokens, rows, cols, r0, r1 (r1 = -1: rows). */
    private static final String SHAPES = """
            1, 1, 1, 0, -1
            2, 3, 5, 0, -1
            5, 16, 16, 0, -1
            17, 17, 33, 0, -1
            64, 40, 100, 3, 37
            33, 64, 768, 0, -1
            64, 33, 130, 1, 33
            70, 19, 64, 0, -1
            66, 150, 96, 5, 147
            """;

    private float[][] tokens(int b, int n) {
        float[][] x = new float[b][];
        for (int i = 0; i < b; i++) {
            x[i] = RandomMatrices.floats(rnd, n);
        }
        return x;
    }

    private static BatchActivations prepared(float[][] x, int cols, Matrix m) {
        BatchActivations in = new BatchActivations(x.length, cols);
        in.input(x, x.length, cols);
        in.prepareFor(m);
        return in;
    }

    @ParameterizedTest
    @CsvSource(textBlock = SHAPES)
    void f32IsBitIdenticalToItsReference(int b, int rows, int cols, int r0, int r1) {
        int end = r1 < 0 ? rows : r1;
        Matrix.F32 w = RandomMatrices.f32(arena, rnd, rows, cols, 28);
        float[][] x = tokens(b, cols);
        float[][] expected = new float[b][rows], actual = new float[b][rows];
        BatchMatmul.f32Reference(expected, x, b, w, r0, end);
        BatchMatmul.matmul(actual, prepared(x, cols, w), new MatrixForm.File(w), r0, end, new VectorKernels());
        for (int t = 0; t < b; t++) {
            assertArrayEquals(expected[t], actual[t], "token " + t); // rows outside [r0, end) stay 0 in both
        }
    }

    @ParameterizedTest
    @CsvSource(textBlock = SHAPES)
    void f32IsCloseToTheOneTokenKernel(int b, int rows, int cols, int r0, int r1) {
        int end = r1 < 0 ? rows : r1;
        Matrix.F32 w = RandomMatrices.f32(arena, rnd, rows, cols, 0);
        float[][] x = tokens(b, cols);
        float[][] actual = new float[b][rows];
        BatchMatmul.matmul(actual, prepared(x, cols, w), new MatrixForm.File(w), r0, end, new VectorKernels());
        ScalarKernels scalar = new ScalarKernels();
        for (int t = 0; t < b; t++) {
            float[] expected = new float[rows];
            scalar.matmulF32(expected, x[t], w, r0, end);
            for (int r = r0; r < end; r++) {
                double absSum = 0;
                for (int j = 0; j < cols; j++) {
                    absSum += Math.abs(w.data().getAtIndex(ScalarKernels.FLOAT, (long) r * cols + j) * x[t][j]);
                }
                // two orders of a float sum differ by at most a few roundings of the running sum each
                double tolerance = 2 * cols * Math.ulp((float) absSum) + Float.MIN_NORMAL;
                assertEquals(expected[r], actual[t][r], tolerance, "token " + t + " row " + r);
            }
        }
    }

    /** The bit-identity test above would be void if the inputs hid a change of order: a plain sequential sum differs. */
    @Test
    void f32InputsAreOrderSensitive() {
        Matrix.F32 w = RandomMatrices.f32(arena, rnd, 32, 768, 0);
        float[][] x = tokens(8, 768);
        float[][] batched = new float[8][32];
        BatchMatmul.matmul(batched, prepared(x, 768, w), new MatrixForm.File(w), 0, 32, new VectorKernels());
        boolean differs = false;
        for (int t = 0; t < 8; t++) {
            float[] sequential = new float[32];
            new ScalarKernels().matmulF32(sequential, x[t], w, 0, 32);
            differs |= !Arrays.equals(sequential, batched[t]);
        }
        assertFalse(!differs, "another summation order should differ somewhere in 8 x 32 outputs");
    }

    /**
     * The transposed forms prepared over a pool (column blocks split between workers) equal those prepared on one
     * thread, for F32, runq's Q8, Q8_K (the K-quants', groupSize -1) and Q8_0 times its scales (-2), token counts with and
     * without whole panels and padding lanes.
     */
    @ParameterizedTest
    @CsvSource({"1, 64, 8", "17, 130, 0", "64, 768, 32", "70, 256, 64", "33, 2048, 64", "5, 96, 4",
            "48, 256, -1", "65, 512, -1", "70, 768, -1", "33, 96, -2", "70, 256, -2"})
    void preparationOverAPoolEqualsOneThread(int b, int cols, int groupSize) {
        Matrix m = groupSize == 0 ? RandomMatrices.f32(arena, rnd, 3, cols, 0)
                : groupSize < 0 ? GgmlQuantize.quantize(groupSize == -1 ? "Q4_K" : "Q8_0", RandomMatrices.floats(rnd, 3 * cols), 3, cols, arena)
                : RandomMatrices.q8(arena, rnd, 3, cols, groupSize);
        float[][] x = tokens(b, cols);
        BatchActivations serial = prepared(x, cols, m);
        BatchActivations pooled = new BatchActivations(b, cols);
        int size = cols * serial.stride();
        try (Parallel pool = new Parallel(3)) {
            pooled.input(x, b, cols);
            // every lane must be written
            Arrays.fill(pooled.xF = new float[size], Float.NaN);
            Arrays.fill(pooled.xT = new float[size], Float.NaN);
            Arrays.fill(pooled.xD = new float[size], Float.NaN);
            Arrays.fill(pooled.xK = new float[size], Float.NaN);
            Arrays.fill(pooled.sK = new float[cols / 256 * serial.stride()], Float.NaN);
            Arrays.fill(pooled.mK = new float[cols / 32 * serial.stride()], Float.NaN);
            pooled.prepareFor(m, pool);
        }
        if (groupSize == 0) {
            assertArrayEquals(Arrays.copyOf(serial.xF, size), Arrays.copyOf(pooled.xF, size), "xF");
        } else if (groupSize > 0) {
            assertArrayEquals(Arrays.copyOf(serial.xT, size), Arrays.copyOf(pooled.xT, size), "xT");
            int s = cols / groupSize * serial.stride();
            assertArrayEquals(Arrays.copyOf(serial.sT, s), Arrays.copyOf(pooled.sT, s), "sT");
        } else if (groupSize == -2) {
            assertArrayEquals(Arrays.copyOf(serial.xD, size), Arrays.copyOf(pooled.xD, size), "xD");
        } else {
            assertArrayEquals(Arrays.copyOf(serial.xK, size), Arrays.copyOf(pooled.xK, size), "xK");
            int s = cols / 256 * serial.stride(), sums = cols / 32 * serial.stride();
            assertArrayEquals(Arrays.copyOf(serial.sK, s), Arrays.copyOf(pooled.sK, s), "sK");
            assertArrayEquals(Arrays.copyOf(serial.mK, sums), Arrays.copyOf(pooled.mK, sums), "mK");
        }
    }

    /**
     * One input serves products of several types prepared together (as a Q4_K_M layer's Q4_K and Q6_K, or a GGUF
     * file's F32 and Q8_0 matrices, or F16 and BF16 ones, are): every form has its own arrays, so preparing one does not
     * change another's.
     */
    @Test
    void formsOfOneInputKeepApart() {
        int cols = 512, b = BatchMatmul.TRANSPOSED_FROM_TOKENS + 3, rows = 9;
        float[][] x = tokens(b, cols);
        Matrix[] ms = {RandomMatrices.f32(arena, rnd, rows, cols, 0),
                GgmlQuantize.quantize("Q8_0", RandomMatrices.floats(rnd, rows * cols), rows, cols, arena),
                GgmlQuantize.quantize("Q5_1", RandomMatrices.floats(rnd, rows * cols), rows, cols, arena), // (its xT and sT beside Q8_0's xD)
                GgmlQuantize.quantize("Q4_K", RandomMatrices.floats(rnd, rows * cols), rows, cols, arena),
                GgmlQuantize.quantize("Q5_K", RandomMatrices.floats(rnd, rows * cols), rows, cols, arena),
                GgmlQuantize.quantize("Q6_K", RandomMatrices.floats(rnd, rows * cols), rows, cols, arena),
                GgmlQuantize.quantize("F16", RandomMatrices.floats(rnd, rows * cols), rows, cols, arena),
                GgmlQuantize.quantize("BF16", RandomMatrices.floats(rnd, rows * cols), rows, cols, arena)};
        BatchActivations together = new BatchActivations(b, cols);
        together.input(x, b, cols);
        for (Matrix m : ms) {
            together.prepareFor(m);
        }
        for (Matrix m : ms) {
            float[][] alone = new float[b][rows], shared = new float[b][rows];
            BatchMatmul.matmul(alone, prepared(x, cols, m), new MatrixForm.File(m), 0, rows, new VectorKernels());
            BatchMatmul.matmul(shared, together, new MatrixForm.File(m), 0, rows, new VectorKernels());
            for (int t = 0; t < b; t++) {
                assertArrayEquals(alone[t], shared[t], m.typeName() + " token " + t);
            }
        }
    }

    /**
     * runq's Q8: each token's row quantized as the one-token path does, then {@link ScalarKernels#matmulQ8}:
     * bit-identical. Group sizes 4 to 128, and 2048 (over {@link BatchMatmul#MAX_EXACT_GROUP}: the one-token
     * kernels per tile).
     */
    @ParameterizedTest
    @CsvSource({
            "4, 5, 20, 64", "8, 17, 17, 96", "32, 33, 33, 96", "48, 64, 21, 96", "64, 70, 35, 768",
            "64, 3, 16, 2048", "128, 40, 18, 256", "2048, 9, 7, 2048", "64, 66, 100, 128"})
    void q8IsBitIdenticalToRunqPerToken(int groupSize, int b, int rows, int cols) {
        Matrix.Q8 w = RandomMatrices.q8(arena, rnd, rows, cols, groupSize);
        float[][] x = tokens(b, cols);
        int r0 = rows > 2 ? 1 : 0, r1 = rows;
        float[][] actual = new float[b][rows];
        BatchMatmul.matmul(actual, prepared(x, cols, w), new MatrixForm.File(w), r0, r1, new VectorKernels());
        byte[] xq = new byte[cols];
        float[] xs = new float[cols / groupSize];
        for (int t = 0; t < b; t++) {
            float[] expected = new float[rows];
            ScalarKernels.quantize(x[t], cols, groupSize, xq, xs);
            new ScalarKernels().matmulQ8(expected, xq, xs, w, r0, r1);
            assertArrayEquals(expected, actual[t], "token " + t + " gs " + groupSize);
        }
    }

    /**
     * One thread, shapes one after the other whose tile scratch differs in weights and in scales: a wide group with
     * few blocks first (the weights' part large enough for what follows, the scales' part not), then narrow groups
     * with many blocks, then F32 (a block count the group sizes did not have). The products run on a fresh thread, whose
     * scratch starts empty whatever earlier tests left in this one's; each must still be runq's (F32: its reference).
     */
    @Test
    void scratchServesShapesOneAfterAnother() throws InterruptedException {
        int cols = 768, b = 9, rows = 40;
        int[] groupSizes = {256, 32, 768, 4, 64};
        try (Arena shared = Arena.ofShared()) {
            int n = groupSizes.length;
            Matrix[] ms = new Matrix[n + 1];
            BatchActivations[] ins = new BatchActivations[n + 1];
            float[][][] expected = new float[n + 1][][], actual = new float[n + 1][][];
            for (int m = 0; m < n; m++) {
                Matrix.Q8 w = RandomMatrices.q8(shared, rnd, rows, cols, groupSizes[m]);
                float[][] x = tokens(b, cols);
                ms[m] = w;
                ins[m] = prepared(x, cols, w);
                expected[m] = new float[b][rows];
                byte[] xq = new byte[cols];
                float[] xs = new float[cols / groupSizes[m]];
                for (int t = 0; t < b; t++) {
                    ScalarKernels.quantize(x[t], cols, groupSizes[m], xq, xs);
                    new ScalarKernels().matmulQ8(expected[m][t], xq, xs, w, 0, rows);
                }
            }
            Matrix.F32 f = RandomMatrices.f32(shared, rnd, 33, 1376, 0);
            float[][] xf = tokens(5, 1376);
            ms[n] = f;
            ins[n] = prepared(xf, 1376, f);
            expected[n] = new float[5][33];
            BatchMatmul.f32Reference(expected[n], xf, 5, f, 0, 33);
            Throwable[] failure = new Throwable[1];
            Thread fresh = new Thread(() -> {
                try {
                    for (int m = 0; m <= n; m++) {
                        actual[m] = new float[expected[m].length][ms[m].rows()];
                        BatchMatmul.matmul(actual[m], ins[m], new MatrixForm.File(ms[m]), 0, ms[m].rows(), new VectorKernels());
                    }
                } catch (Throwable t) {
                    failure[0] = t;
                }
            });
            fresh.start();
            fresh.join();
            if (failure[0] != null) {
                throw new AssertionError("a product failed on the fresh thread", failure[0]);
            }
            for (int m = 0; m <= n; m++) {
                for (int t = 0; t < expected[m].length; t++) {
                    assertArrayEquals(expected[m][t], actual[m][t], "shape " + m + ", token " + t);
                }
            }
        }
    }

    /**
     * Every GGML type: the batched kernel against the one-token kernel. Both form the same exact integers (the quantized
     * types but Q8_0, Q4_0 and IQ4_NL, whose batched kernel folds the scales in: exact factors, each FMA rounding once) or the
     * same exact products (F16, BF16) and differ in the order of their float sums, so the test allows a
     * few ulps of the largest
     * magnitude a partial sum can reach: the row's sum of |w·x|, and for Q4_K and Q5_K, whose weights d·sc·q - dmin·m are
     * summed as two parts that may cancel, of (|d·sc·q| + |dmin·m|)·|x| (with |w·x| alone a run failed at 6e-4 of a
     * -155 output; with a few ulps of the output, a CI run failed at 40 ulps of a -112 output).
     */
    @ParameterizedTest
    @CsvSource({"F16, 256, 19", "BF16, 96, 19", "Q8_0, 256, 19", "Q4_0, 64, 19", "Q4_K, 256, 19", "Q6_K, 512, 19",
            "F16, 256, 70", "BF16, 96, 48", "Q8_0, 256, 40", "Q4_0, 64, 32", "Q4_K, 256, 70", "Q6_K, 512, 48",
            "Q4_0, 64, 9", "Q5_K, 256, 15", "Q5_K, 512, 16", "Q5_K, 256, 19", "Q5_K, 512, 47", "Q5_K, 768, 70",
            "Q5_K, 512, 129", "Q5_1, 96, 15", "Q5_1, 96, 16", "Q5_1, 896, 19", "Q5_1, 4864, 40", "Q5_1, 64, 129",
            "Q3_K, 256, 19", "Q3_K, 512, 70", "Q3_K, 768, 48", "Q2_K, 256, 19", "Q2_K, 512, 70", "Q2_K, 768, 48",
            "IQ4_NL, 64, 15", "IQ4_NL, 96, 16", "IQ4_NL, 256, 40", "IQ4_XS, 256, 15", "IQ4_XS, 256, 19", "IQ4_XS, 512, 70",
            "IQ4_XS, 768, 48"})
    // (Q4_0, Q5_K, Q5_1 and IQ4 take the transposed kernel from 16 tokens: 9 and 15 are under it, 16, 19 and 32 over; Q2_K and Q3_K
    // from 64 below 512 bits and 48 at 512; the others from 48)
    void ggmlTypesMatchTheOneTokenKernel(String type, int cols, int b) {
        int rows = 37;
        float[] values = RandomMatrices.floats(rnd, rows * cols);
        Matrix w = GgmlQuantize.quantize(type, values, rows, cols, arena);
        float[][] x = tokens(b, cols);
        float[][] actual = new float[b][rows];
        VectorKernels kernels = new VectorKernels();
        BatchMatmul.matmul(actual, prepared(x, cols, w), new MatrixForm.File(w), 3, rows, kernels);
        Activations one = new Activations(cols);
        for (int t = 0; t < b; t++) {
            float[] expected = new float[rows];
            one.input(x[t], cols);
            one.prepareFor(w);
            kernels.matmul(expected, one, w, 3, rows);
            float[] row = new float[cols];
            for (int r = 0; r < rows; r++) {
                w.dequantizeRow(r, row, 0);
                float[] mins = w instanceof Matrix.Q4_K || w instanceof Matrix.Q5_K ? q45KMinsOf((Matrix.Ggml) w, r)
                        : w instanceof Matrix.Q2_K q ? q2KMinsOf(q, r) : w instanceof Matrix.Q5_1 q ? q51OffsetsOf(q, r) : new float[cols];
                float magnitude = 0;
                for (int j = 0; j < cols; j++) {
                    magnitude += (Math.abs(row[j] + mins[j]) + Math.abs(mins[j])) * Math.abs(x[t][j]);
                }
                assertEquals(expected[r], actual[t][r], 16 * Math.ulp(magnitude), type + " token " + t + " row " + r);
            }
        }
    }

    /** -m of each of row r's values: what Q5_1's dequantization adds to d · q, negated. */
    private static float[] q51OffsetsOf(Matrix.Q5_1 w, int r) {
        float[] offsets = new float[w.cols()];
        for (int j = 0; j < w.cols(); j++) {
            long b = r * Matrix.Q5_1.rowBytes(w.cols()) + (long) (j / 32) * Matrix.Q5_1.BLOCK_BYTES;
            offsets[j] = -Float.float16ToFloat(w.data().get(Matrix.SHORT, b + Matrix.Q5_1.M));
        }
        return offsets;
    }

    /** dmin · m_j of each of row r's values: what Q2_K's dequantization subtracts from d · sc_j · q (sub-blocks of 16). */
    private static float[] q2KMinsOf(Matrix.Q2_K w, int r) {
        float[] mins = new float[w.cols()];
        for (int blk = 0; blk < w.cols() / 256; blk++) {
            long b = r * Matrix.Q2_K.rowBytes(w.cols()) + (long) blk * Matrix.Q2_K.BLOCK_BYTES;
            float dmin = Float.float16ToFloat(w.data().get(Matrix.SHORT, b + Matrix.Q2_K.DMIN));
            for (int j = 0; j < 256; j++) {
                mins[blk * 256 + j] = dmin * Matrix.Q2_K.min(w.data(), b, j / 16);
            }
        }
        return mins;
    }

    /** dmin · m_j of each of row r's values: what Q4_K's and Q5_K's dequantization subtracts from d · sc_j · q. */
    private static float[] q45KMinsOf(Matrix.Ggml w, int r) {
        float[] mins = new float[w.cols()];
        int blockBytes = w instanceof Matrix.Q5_K ? Matrix.Q5_K.BLOCK_BYTES : Matrix.Q4_K.BLOCK_BYTES;
        for (int blk = 0; blk < w.cols() / 256; blk++) {
            long b = (long) r * (w.cols() / 256) * blockBytes + (long) blk * blockBytes;
            float dmin = Float.float16ToFloat(w.data().get(Matrix.SHORT, b + 2));
            for (int j = 0; j < 256; j++) {
                mins[blk * 256 + j] = dmin * Matrix.Q4_K.min(w.data(), b + 4, j / 32);
            }
        }
        return mins;
    }

    /**
     * GGML Q8_0 and Q4_0 (nibbles minus 8) through the transposed kernel: each token's activations quantized as the
     * one-token path does (llama.cpp's Q8_0), both sides' values times their block's scale (exact floats), then per row, column
     * block of {@link BatchMatmul#Q8_0_COLUMN_BLOCK} after column block, an FMA chain from 0 in column order, {@code sum += chain}:
     * bit-identical to that scalar order ({@link #foldedReference}).
     */
    @ParameterizedTest
    @CsvSource({"Q8_0, 32, 20, 64", "Q8_0, 33, 17, 96", "Q8_0, 64, 35, 192", "Q8_0, 70, 33, 256", "Q8_0, 40, 16, 2048",
            "Q4_0, 32, 20, 64", "Q4_0, 70, 33, 256", "Q4_0, 49, 16, 2048", "Q8_0, 65, 81, 96", "Q4_0, 40, 70, 64",
            "Q4_0, 33, 17, 192"})
    void q8_0AndQ4_0AreBitIdenticalToTheirScalarOrder(String type, int b, int rows, int cols) {
        checkAgainstScalarOrder(type, b, rows, cols, BatchMatmulTest::q8_0Reference);
    }

    /**
     * GGML IQ4_NL and IQ4_XS through the transposed kernel: each token's activations quantized as the one-token path does
     * (IQ4_NL: Q8_0; IQ4_XS: Q8_K). IQ4_NL: the nibbles' levels times their block's d, in Q8_0's order ({@link
     * #foldedReference}). IQ4_XS: per row, half a
     * super-block after half a super-block, an FMA chain from 0 over its 128 values {@code (ls - 32) · level} times the
     * activations (the exact integer while it stays within 2^24), then {@code sum += (chain · d) · d_x}, d_x the
     * super-block's. Bit-identical to that scalar order, written here from llama.cpp's layouts (the levels and the 6-bit
     * scales unpacked here, not by Matrix.IQ4_NL or Matrix.IQ4_XS).
     */
    @ParameterizedTest
    @CsvSource({"IQ4_NL, 16, 20, 64", "IQ4_NL, 33, 17, 96", "IQ4_NL, 70, 33, 256", "IQ4_NL, 40, 16, 2048", "IQ4_NL, 65, 81, 96", "IQ4_NL, 33, 17, 224",
            "IQ4_XS, 16, 20, 256", "IQ4_XS, 33, 17, 512", "IQ4_XS, 70, 33, 768", "IQ4_XS, 40, 16, 2048", "IQ4_XS, 49, 75, 256"})
    void iq4IsBitIdenticalToItsScalarOrder(String type, int b, int rows, int cols) {
        checkAgainstScalarOrder(type, b, rows, cols, BatchMatmulTest::iq4Reference);
    }

    private static float iq4Reference(Matrix.Ggml w, int r, Activations x) {
        return w instanceof Matrix.IQ4_XS xs ? iq4XsReference(xs, r, x) : iq4NlReference((Matrix.IQ4_NL) w, r, x);
    }

    /** IQ4_NL: each value the level of its nibble (low nibbles values 0..15, high 16..31) times its block's d, in Q8_0's order. */
    private static float iq4NlReference(Matrix.IQ4_NL w, int r, Activations x) {
        int blocks = w.cols() / 32;
        float[] values = new float[w.cols()];
        for (int j = 0; j < w.cols(); j++) {
            long b = ((long) r * blocks + j / 32) * 18;
            int l = j % 32;
            values[j] = GgmlKernelsTest.KVALUES_IQ4NL[u8(w.data(), b + 2 + l % 16) >> (l < 16 ? 0 : 4) & 0x0F]
                    * Float.float16ToFloat(w.data().get(Matrix.SHORT, b));
        }
        return foldedReference(values, x);
    }

    /** IQ4_XS: per half super-block, an FMA chain from 0 over its 128 values {@code (ls - 32) · level} times the activations. */
    private static float iq4XsReference(Matrix.IQ4_XS w, int r, Activations x) {
        int blocks = w.cols() / 256;
        short[] q = x.q8KValues();
        float sum = 0;
        for (int blk = 0; blk < blocks; blk++) {
            long b = ((long) r * blocks + blk) * 136;
            float d = Float.float16ToFloat(w.data().get(Matrix.SHORT, b));
            int scalesH = u8(w.data(), b + 2) | u8(w.data(), b + 3) << 8;
            for (int half = 0; half < 2; half++) {
                float chain = 0;
                for (int v = 128 * half; v < 128 * half + 128; v++) { // sub-block s: 16 bytes at 8 + 16 s
                    int s = v / 32, l = v % 32;
                    // ls: 4 low bits in nibble s % 2 of scales_l[s / 2] (bytes 4..7), 2 high bits at 2s of scales_h (bytes 2..3)
                    int scale = ((u8(w.data(), b + 4 + s / 2) >> (4 * (s % 2)) & 0x0F) | (scalesH >> (2 * s) & 3) << 4) - 32;
                    int level = GgmlKernelsTest.KVALUES_IQ4NL[u8(w.data(), b + 8 + 16L * s + l % 16) >> (l < 16 ? 0 : 4) & 0x0F];
                    chain = Math.fma((float) (scale * level), (float) q[blk * 256 + v], chain);
                }
                sum += (chain * d) * x.q8KScales[blk];
            }
        }
        return sum;
    }

    /**
     * IQ4_XS at its extremes: d 1, every nibble 0 (level -127) in rows 0 and 1 and random in the others; every 6-bit
     * scale 0 (ls - 32 = -32) but in row 1, whose scales are 1 (-31); tokens whose Q8_K values are all -127 (Q8_K's
     * values of an input of ones) or ±127 at random. Row 0's FMA chain climbs past 2^24 to 128 · 32 · 127 · 127 =
     * 66,064,384 in steps of 516,128 = 2^5 · 16,129, so stays exact; row 1's steps, 499,999, are odd, so past 2^24 its
     * chain rounds (a chain over 32 values would not: the column block shows). Bit-identical to the scalar order, and
     * row 0 to the exact integer.
     */
    @Test
    void iq4XsAtTheExtremes() {
        int rows = 19, cols = 512, b = BatchMatmul.IQ4_TRANSPOSED_FROM_TOKENS + 5, blocks = cols / 256;
        java.lang.foreign.MemorySegment data = arena.allocate((long) rows * blocks * Matrix.IQ4_XS.BLOCK_BYTES, 64);
        for (int r = 0; r < rows; r++) {
            for (int blk = 0; blk < blocks; blk++) {
                long at = ((long) r * blocks + blk) * Matrix.IQ4_XS.BLOCK_BYTES; // scales_h stays 0
                data.set(Matrix.SHORT, at, Float.floatToFloat16(1.0f));
                for (int j = Matrix.IQ4_XS.SCALES_L; j < Matrix.IQ4_XS.QS; j++) { // ls = 1 in row 1, else 0
                    data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at + j, (byte) (r == 1 ? 0x11 : 0));
                }
                for (int j = Matrix.IQ4_XS.QS; j < Matrix.IQ4_XS.BLOCK_BYTES; j++) {
                    data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at + j, (byte) (r <= 1 ? 0 : rnd.nextInt(256)));
                }
            }
        }
        Matrix.IQ4_XS w = new Matrix.IQ4_XS(data, rows, cols);
        float[][] x = new float[b][cols];
        for (int t = 0; t < b; t++) {
            for (int j = 0; j < cols; j++) {
                x[t][j] = t % 2 == 0 ? 1.0f : rnd.nextBoolean() ? 1.0f : -1.0f;
            }
        }
        float[][] actual = matchesTheScalarOrder(w, x, 0, BatchMatmulTest::iq4Reference);
        Activations one = new Activations(cols);
        for (int t = 0; t < b; t += 2) { // every activation -127: each half's chain the exact -66,064,384, times d = 1 and d_x
            one.input(x[t], cols);
            one.prepareFor(w);
            float chain = -66_064_384f, row0 = 0;
            for (int half = 0; half < 2 * blocks; half++) {
                row0 += (chain * 1.0f) * one.q8KScales[half / 2];
            }
            assertEquals(row0, actual[t][0], 0, "row 0, token " + t);
        }
    }

    /**
     * GGML Q5_1 through the transposed kernel: each token's activations quantized to Q8_1 as the one-token path does; per
     * row and block, in block order, {@code sum += (dot · d_w) · d_x} with the block's exact integer dot of the 5-bit values
     * (0..31, fifth bits from the word qh), then {@code sum += M}, M an FMA chain from 0 over the blocks of {@code m_g ·
     * s_g} (the offsets times the tokens' Q8_1 block sums). Bit-identical to that scalar order, written here from the
     * file's bytes.
     */
    @ParameterizedTest
    @CsvSource({"16, 20, 32", "17, 33, 96", "48, 35, 896", "70, 17, 256", "129, 40, 64", "40, 16, 4864"})
    void q5_1IsBitIdenticalToItsScalarOrder(int b, int rows, int cols) {
        checkAgainstScalarOrder("Q5_1", b, rows, cols, BatchMatmulTest::q5_1Reference);
    }

    /**
     * Q5_1 at the extremes: every 5-bit value 31 (or 0 and 31 alternating), d 1, offsets m of ±65504 (the largest F16)
     * and 0, against tokens of ±127 (d_x = 1, so a block's dot reaches 32 · 31 · 127, exact in float): bit-identical to
     * {@link #q5_1Reference}.
     */
    @Test
    void q5_1AtTheExtremesIsItsScalarOrder() {
        int rows = 19, cols = 256, blocks = cols / 32, b = 33;
        java.lang.foreign.MemorySegment data = arena.allocate((long) rows * blocks * Matrix.Q5_1.BLOCK_BYTES, 64);
        for (int r = 0; r < rows; r++) {
            for (int blk = 0; blk < blocks; blk++) {
                long at = ((long) r * blocks + blk) * Matrix.Q5_1.BLOCK_BYTES;
                data.set(Matrix.SHORT, at, Float.floatToFloat16(1.0f));
                data.set(Matrix.SHORT, at + 2, Float.floatToFloat16(new float[]{65504f, -65504f, 0f}[r % 3]));
                boolean alternate = r % 2 == 1;
                data.set(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), at + 4,
                        alternate ? 0xAAAAAAAA : -1);
                for (int k = 0; k < 16; k++) {
                    data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at + 8 + k, (byte) (alternate && k % 2 == 0 ? 0 : 0xFF));
                }
            }
        }
        Matrix.Q5_1 w = new Matrix.Q5_1(data, rows, cols);
        float[][] x = new float[b][cols];
        for (int t = 0; t < b; t++) {
            for (int j = 0; j < cols; j++) {
                x[t][j] = j == 0 || t % 3 == 0 ? 127f : t % 3 == 1 ? -127f : rnd.nextBoolean() ? 127f : -127f;
            }
        }
        float[][] actual = new float[b][rows];
        BatchMatmul.matmul(actual, prepared(x, cols, w), new MatrixForm.File(w), 0, rows, new VectorKernels());
        Activations one = new Activations(cols);
        for (int t = 0; t < b; t++) {
            one.input(x[t], cols);
            one.prepareFor(w);
            assertEquals(1.0f, one.q8_0Scales()[0], "d_x");
            float[] expected = new float[rows];
            for (int r = 0; r < rows; r++) {
                expected[r] = q5_1Reference(w, r, one);
            }
            assertArrayEquals(expected, actual[t], "token " + t);
        }
    }

    private static float q5_1Reference(Matrix.Ggml w, int r, Activations x) {
        int cols = w.cols();
        short[] q = x.q8_0Values();
        float[] dx = x.q8_0Scales();
        float sum = 0, offsets = 0;
        for (int g = 0; g < cols / 32; g++) {
            long at = r * Matrix.Q5_1.rowBytes(cols) + (long) g * Matrix.Q5_1.BLOCK_BYTES;
            int qh = w.data().get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), at + 4);
            int dot = 0;
            for (int j = 0; j < 32; j++) {
                int v = (u8(w.data(), at + 8 + j % 16) >> (j < 16 ? 0 : 4) & 0x0F) | ((qh >>> j) & 1) << 4;
                dot += v * q[g * 32 + j];
            }
            float dw = Float.float16ToFloat(w.data().get(Matrix.SHORT, at));
            sum += (dot * dw) * dx[g];
            float m = Float.float16ToFloat(w.data().get(Matrix.SHORT, at + 2));
            offsets = g == 0 ? x.q81Sums[0] * m : Math.fma(x.q81Sums[g], m, offsets);
        }
        return sum + offsets;
    }

    /** A row's product in a batched kernel's scalar order; {@code x} is prepared for {@code w} as the one-token path prepares it. */
    private interface RowReference {
        float row(Matrix.Ggml w, int r, Activations x);
    }

    /**
     * The batched kernel on a fresh random matrix of {@code type} and b fresh random tokens, rows from 1 (a range that
     * does not start on a tile), against {@code reference} for every row and token, bit for bit.
     */
    private void checkAgainstScalarOrder(String type, int b, int rows, int cols, RowReference reference) {
        Matrix.Ggml w = (Matrix.Ggml) GgmlQuantize.quantize(type, RandomMatrices.floats(rnd, rows * cols), rows, cols, arena);
        float[][] x = tokens(b, cols);
        matchesTheScalarOrder(w, x, rows > 2 ? 1 : 0, reference);
    }

    private static float q8_0Reference(Matrix.Ggml w, int r, Activations x) {
        boolean q4 = w instanceof Matrix.Q4_0;
        int cols = w.cols();
        long rowBytes = q4 ? Matrix.Q4_0.rowBytes(cols) : Matrix.Q8_0.rowBytes(cols);
        int blockBytes = q4 ? Matrix.Q4_0.BLOCK_BYTES : Matrix.Q8_0.BLOCK_BYTES;
        float[] values = new float[cols];
        for (int j = 0; j < cols; j++) {
            long at = r * rowBytes + (long) (j / 32) * blockBytes;
            int l = j % 32;
            int v = q4 ? (u8(w.data(), at + 2 + l % 16) >> (l < 16 ? 0 : 4) & 0x0F) - 8
                    : w.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, at + 2 + l);
            values[j] = v * Float.float16ToFloat(w.data().get(Matrix.SHORT, at));
        }
        return foldedReference(values, x);
    }

    /**
     * The folded layouts' order (Q8_0, Q4_0, IQ4_NL): the row's values (each times its block's scale) against the token's
     * Q8_0 values times theirs, an FMA chain from 0 per column block of {@link BatchMatmul#Q8_0_COLUMN_BLOCK}, the chains
     * added in block order.
     */
    private static float foldedReference(float[] values, Activations x) {
        short[] q = x.q8_0Values();
        float[] dx = x.q8_0Scales();
        float sum = 0;
        for (int k0 = 0; k0 < values.length; k0 += BatchMatmul.Q8_0_COLUMN_BLOCK) {
            float chain = 0;
            for (int j = k0; j < Math.min(k0 + BatchMatmul.Q8_0_COLUMN_BLOCK, values.length); j++) {
                chain = Math.fma(values[j], q[j] * dx[j / 32], chain);
            }
            sum += chain;
        }
        return sum;
    }

    /**
     * GGML Q2_K to Q6_K through the transposed kernel: each token's activations quantized to Q8_K as the one-token
     * path does; per row, column block after column block (Q4_K, Q3_K, Q2_K: half a super-block, 128 values; Q5_K: a
     * quarter, 64; Q6_K: 32), {@code sum += (dot · d) · d_x} with the block's exact integer {@code sum_j sc_j · dot_j}; then, for Q4_K,
     * Q5_K and Q2_K, super-block after super-block, {@code sum -= (M · dmin) · d_x} with the exact {@code M = sum_j m_j · (sum
     * of sub-block j's activations)}. Bit-identical to that scalar order, written here from the file's bytes through
     * {@link Matrix.Q4_K#scale}, {@link Matrix.Q4_K#min}, {@link Matrix.Q5_K}'s fifth bits and llama.cpp's Q6_K layout.
     * (The quantizer's Q5_K values cover 0..31, so their fifth bits vary within each sub-block.)
     */
    @ParameterizedTest
    @CsvSource({"Q4_K, 48, 20, 256", "Q4_K, 49, 17, 512", "Q4_K, 64, 35, 768", "Q4_K, 70, 33, 256", "Q4_K, 100, 16, 2048",
            "Q6_K, 48, 20, 256", "Q6_K, 81, 17, 512", "Q6_K, 70, 33, 768", "Q6_K, 64, 16, 2048", "Q4_K, 66, 90, 256",
            "Q6_K, 49, 75, 256", "Q5_K, 16, 20, 256", "Q5_K, 17, 33, 512", "Q5_K, 48, 20, 256", "Q5_K, 49, 17, 512", "Q5_K, 64, 35, 768", "Q5_K, 70, 33, 256",
            "Q5_K, 100, 16, 2048", "Q5_K, 129, 40, 512", "Q5_K, 66, 90, 256",
            "Q3_K, 64, 20, 256", "Q3_K, 81, 17, 512", "Q3_K, 70, 33, 768", "Q3_K, 64, 16, 2048", "Q3_K, 65, 75, 256",
            "Q2_K, 64, 20, 256", "Q2_K, 81, 17, 512", "Q2_K, 70, 33, 768", "Q2_K, 64, 16, 2048", "Q2_K, 65, 75, 256"})
    // (Q2_K and Q3_K take the transposed kernel from 64 tokens below 512 bits, 48 at 512)
    void kQuantsAreBitIdenticalToTheirScalarOrder(String type, int b, int rows, int cols) {
        checkAgainstScalarOrder(type, b, rows, cols, (w, r, x) -> switch (w) {
            case Matrix.Q6_K q -> q6KReference(q, r, x);
            case Matrix.Q3_K q -> q3KReference(q, r, x);
            case Matrix.Q2_K q -> q2KReference(q, r, x);
            default -> q45KReference(w, r, x);
        });
    }

    /**
     * Q5_K at the bound of {@link BatchMatmul#Q5_K_COLUMN_BLOCK}: every 6-bit scale and min 63, d and dmin 1, values 31
     * (row 0), 0 (row 1) or either at random (the rest, nibble and fifth bit alike), two super-blocks per row, and
     * tokens whose Q8_K values are all -127 (inputs of one value) or ±127 at random: row 0's FMA chain climbs to
     * 64 · 63 · 31 · 127 = 15,873,984, just under 2^24, where a longer block (Q4_K's 128 columns) would round its odd
     * partial sums. Bit-identical to the scalar order, whose integers are exact.
     */
    @Test
    void q5KAtTheExtremesSumsExactly() {
        int rows = 19, cols = 512, b = BatchMatmul.TRANSPOSED_FROM_TOKENS + 5, blocks = cols / 256;
        java.lang.foreign.MemorySegment data = arena.allocate((long) rows * blocks * Matrix.Q5_K.BLOCK_BYTES, 64);
        for (int r = 0; r < rows; r++) {
            for (int blk = 0; blk < blocks; blk++) {
                long at = ((long) r * blocks + blk) * Matrix.Q5_K.BLOCK_BYTES;
                data.set(Matrix.SHORT, at, Float.floatToFloat16(1.0f));
                data.set(Matrix.SHORT, at + 2, Float.floatToFloat16(1.0f));
                for (int j = 0; j < 12; j++) {
                    data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at + 4 + j, (byte) 0xFF);
                }
                for (int j = Matrix.Q5_K.QH; j < Matrix.Q5_K.BLOCK_BYTES; j++) { // qh, then qs
                    int v = r == 0 ? 0xFF : r == 1 ? 0 : rnd.nextInt(256);
                    data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at + j, (byte) v);
                }
            }
        }
        Matrix.Q5_K w = new Matrix.Q5_K(data, rows, cols);
        float[][] x = new float[b][cols];
        for (int t = 0; t < b; t++) {
            for (int j = 0; j < cols; j++) {
                x[t][j] = t % 3 == 0 ? 1.0f : t % 3 == 1 ? -1.0f : rnd.nextBoolean() ? 1.0f : -1.0f;
            }
        }
        matchesTheScalarOrder(w, x, 0, BatchMatmulTest::q45KReference);
    }

    /** The batched kernel on rows [r0, rows) of w and the tokens x, bit for bit against reference; returns its outputs. */
    private static float[][] matchesTheScalarOrder(Matrix.Ggml w, float[][] x, int r0, RowReference reference) {
        int cols = w.cols(), rows = w.rows();
        float[][] actual = new float[x.length][rows];
        BatchMatmul.matmul(actual, prepared(x, cols, w), new MatrixForm.File(w), r0, rows, new VectorKernels());
        Activations one = new Activations(cols);
        for (int t = 0; t < x.length; t++) {
            one.input(x[t], cols);
            one.prepareFor(w);
            float[] expected = new float[rows];
            for (int r = r0; r < rows; r++) {
                expected[r] = reference.row(w, r, one);
            }
            assertArrayEquals(expected, actual[t], w.typeName() + " token " + t);
        }
        return actual;
    }

    private static int u8(java.lang.foreign.MemorySegment m, long at) {
        return m.get(java.lang.foreign.ValueLayout.JAVA_BYTE, at) & 0xFF;
    }

    /** Q4_K (nibbles at 16) or Q5_K (nibbles at 48, fifth bits at 16), column blocks of the kernel's width. */
    private static float q45KReference(Matrix.Ggml w, int r, Activations x) {
        boolean q5 = w instanceof Matrix.Q5_K;
        int nb = w.cols() / 256, blockBytes = q5 ? Matrix.Q5_K.BLOCK_BYTES : Matrix.Q4_K.BLOCK_BYTES;
        int subs = (q5 ? BatchMatmul.Q5_K_COLUMN_BLOCK : BatchMatmul.Q4_K_COLUMN_BLOCK) / 32; // sub-blocks per column block
        short[] q = x.q8KValues();
        float sum = 0;
        float[] minsPart = new float[nb]; // subtracted after every block's scales' part
        for (int blk = 0; blk < nb; blk++) {
            long b = (long) r * nb * blockBytes + (long) blk * blockBytes;
            float d = Float.float16ToFloat(w.data().get(Matrix.SHORT, b));
            for (int part = 0; part < 8 / subs; part++) {
                int dot = 0;
                for (int sub = subs * part; sub < subs * part + subs; sub++) {
                    int sd = 0;
                    for (int l = 0; l < 32; l++) {
                        int nibble = u8(w.data(), b + (q5 ? Matrix.Q5_K.QS : 16) + 32L * (sub / 2) + l) >> (4 * (sub % 2)) & 0x0F;
                        int fifth = q5 ? u8(w.data(), b + Matrix.Q5_K.QH + l) >> sub & 1 : 0;
                        sd += (nibble + 16 * fifth) * q[blk * 256 + sub * 32 + l];
                    }
                    dot += Matrix.Q4_K.scale(w.data(), b + 4, sub) * sd;
                }
                sum += (dot * d) * x.q8KScales[blk];
            }
            int m = 0;
            for (int sub = 0; sub < 8; sub++) {
                m += Matrix.Q4_K.min(w.data(), b + 4, sub) * x.q8KSums32[blk * 8 + sub];
            }
            minsPart[blk] = (m * Float.float16ToFloat(w.data().get(Matrix.SHORT, b + 2))) * x.q8KScales[blk];
        }
        for (float part : minsPart) {
            sum -= part;
        }
        return sum;
    }

    /**
     * Q2_K in the transposed kernel's order (column blocks of 128 values, an exact integer dot each, then the mins'
     * part of each super-block subtracted after every block's), written from llama.cpp's Q2_K layout.
     */
    private static float q2KReference(Matrix.Q2_K w, int r, Activations x) {
        int nb = w.cols() / 256;
        short[] q = x.q8KValues();
        float sum = 0;
        float[] minsPart = new float[nb];
        for (int blk = 0; blk < nb; blk++) {
            long b = r * Matrix.Q2_K.rowBytes(w.cols()) + (long) blk * Matrix.Q2_K.BLOCK_BYTES;
            float d = Float.float16ToFloat(w.data().get(Matrix.SHORT, b + 80));
            for (int half = 0; half < 2; half++) {
                int dot = 0;
                for (int v = 0; v < 128; v++) {
                    int i = v / 32, l = v % 32, j = 8 * half + 2 * i + l / 16; // value l + 32 i of the half, sub-block j
                    int value = u8(w.data(), b + 16 + 32L * half + l) >> (2 * i) & 3;
                    dot += (u8(w.data(), b + j) & 0x0F) * value * q[blk * 256 + 128 * half + v];
                }
                sum += (dot * d) * x.q8KScales[blk];
            }
            int m = 0;
            for (int j = 0; j < 16; j++) {
                m += (u8(w.data(), b + j) >> 4) * x.q8KSums[blk * 16 + j];
            }
            minsPart[blk] = (m * Float.float16ToFloat(w.data().get(Matrix.SHORT, b + 82))) * x.q8KScales[blk];
        }
        for (float part : minsPart) {
            sum -= part;
        }
        return sum;
    }

    /**
     * Q3_K in the transposed kernel's order (column blocks of 128 values, an exact integer dot each), written from
     * llama.cpp's Q3_K layout (the scales unpacked here, not by Matrix.Q3_K).
     */
    private static float q3KReference(Matrix.Q3_K w, int r, Activations x) {
        int nb = w.cols() / 256;
        short[] q = x.q8KValues();
        float sum = 0;
        for (int blk = 0; blk < nb; blk++) {
            long b = r * Matrix.Q3_K.rowBytes(w.cols()) + (long) blk * Matrix.Q3_K.BLOCK_BYTES;
            float d = Float.float16ToFloat(w.data().get(Matrix.SHORT, b + 108));
            for (int half = 0; half < 2; half++) { // a column block: values 128 half .. 128 half + 127
                int dot = 0;
                for (int v = 0; v < 128; v++) {
                    int i = v / 32, l = v % 32, j = 8 * half + 2 * i + l / 16; // value l + 32 i of the half, sub-block j
                    int low = u8(w.data(), b + 32 + 32L * half + l) >> (2 * i) & 3;
                    int high = u8(w.data(), b + l) >> (4 * half + i) & 1;
                    // sub-block j's scale: low 4 bits in a nibble of scales[j % 8], high 2 at bits 2 (j / 4) of scales[8 + j % 4]
                    int sc = (u8(w.data(), b + 96 + j % 8) >> (4 * (j / 8)) & 0x0F) | (u8(w.data(), b + 104 + j % 4) >> (2 * (j / 4)) & 3) << 4;
                    dot += (sc - 32) * ((low | high << 2) - 4) * q[blk * 256 + 128 * half + v];
                }
                sum += (dot * d) * x.q8KScales[blk];
            }
        }
        return sum;
    }

    private static float q6KReference(Matrix.Q6_K w, int r, Activations x) {
        int nb = w.cols() / 256;
        short[] q = x.q8KValues();
        float sum = 0;
        for (int blk = 0; blk < nb; blk++) {
            long b = r * Matrix.Q6_K.rowBytes(w.cols()) + (long) blk * Matrix.Q6_K.BLOCK_BYTES;
            float d = Float.float16ToFloat(w.data().get(Matrix.SHORT, b + 208));
            for (int part = 0; part < 8; part++) { // 32 values: two sub-blocks of 16
                int half = part / 4, i = part % 4, dot = 0;
                for (int l = 0; l < 32; l++) {
                    int low = u8(w.data(), b + 64L * half + 32L * (i % 2) + l) >> (4 * (i / 2)) & 0x0F;
                    int high = u8(w.data(), b + 128 + 32L * half + l) >> (2 * i) & 3;
                    int scale = w.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, b + 192 + 8L * half + 2L * i + l / 16);
                    dot += scale * ((low | high << 4) - 32) * q[blk * 256 + part * 32 + l];
                }
                sum += (dot * d) * x.q8KScales[blk];
            }
        }
        return sum;
    }

    /**
     * The bit-identity above would be void if the order hid in the inputs' noise: a K-quant product's float part summed
     * another way (the whole super-block's integers scaled once) differs in some output.
     */
    @ParameterizedTest
    @CsvSource({"Q4_K", "Q5_K"})
    void kQuantOrderIsVisible(String type) {
        int rows = 33, cols = 2048, b = BatchMatmul.TRANSPOSED_FROM_TOKENS + 1;
        Matrix w = GgmlQuantize.quantize(type, RandomMatrices.floats(rnd, rows * cols), rows, cols, arena);
        float[][] x = tokens(b, cols);
        float[][] actual = new float[b][rows];
        BatchMatmul.matmul(actual, prepared(x, cols, w), new MatrixForm.File(w), 0, rows, new VectorKernels());
        Activations one = new Activations(cols);
        boolean differs = false;
        for (int t = 0; t < b && !differs; t++) {
            one.input(x[t], cols);
            one.prepareFor(w);
            float[] other = new float[rows];
            new ScalarKernels().matmul(other, one, w, 0, rows);
            for (int r = 0; r < rows; r++) {
                differs |= Float.floatToRawIntBits(other[r]) != Float.floatToRawIntBits(actual[t][r]);
            }
        }
        org.junit.jupiter.api.Assertions.assertTrue(differs, "the scalar kernel's order gave the same bits everywhere");
    }

    /**
     * GGML F16 and BF16 through the transposed kernel: each token's input rounded to the type as the one-token path
     * does, the weights widened (exact), then F32's order: per block of {@link BatchMatmul#F32_BLOCK} columns an FMA
     * chain from 0, the block sums added in order. Bit-identical to that scalar order.
     */
    @ParameterizedTest
    @CsvSource({"F16, 48, 20, 64", "F16, 49, 17, 100", "F16, 70, 33, 768", "BF16, 48, 20, 64", "BF16, 64, 35, 130",
            "BF16, 100, 16, 2048", "F16, 48, 70, 64"})
    void halvesAreBitIdenticalToTheirScalarOrder(String type, int b, int rows, int cols) {
        checkAgainstScalarOrder(type, b, rows, cols, BatchMatmulTest::halvesReference);
    }

    private static float halvesReference(Matrix.Ggml w, int r, Activations x) {
        boolean f16 = w instanceof Matrix.F16;
        int cols = w.cols();
        float[] xr = f16 ? x.f16Values() : x.bf16Values();
        float sum = 0;
        for (int k0 = 0; k0 < cols; k0 += BatchMatmul.F32_BLOCK) {
            float block = 0;
            for (int k = k0; k < Math.min(k0 + BatchMatmul.F32_BLOCK, cols); k++) {
                short h = w.data().get(Matrix.SHORT, 2L * ((long) r * cols + k));
                block = Math.fma(f16 ? Float.float16ToFloat(h) : Float.intBitsToFloat(h << 16), xr[k], block);
            }
            sum += block;
        }
        return sum;
    }

    /**
     * The vector widening of halves gives every one of the 65,536 F16 and BF16 values exactly (infinities, zeros,
     * subnormals); a NaN stays a NaN (its payload may differ: {@code Float.float16ToFloat} quiets a signalling one).
     */
    @ParameterizedTest
    @CsvSource({"true", "false"})
    void halvesWidenExactly(boolean f16) {
        java.lang.foreign.MemorySegment all = arena.allocate(2 * 65536);
        for (int h = 0; h < 65536; h++) {
            all.set(Matrix.SHORT, 2L * h, (short) h);
        }
        float[] wide = new float[65536 + 3];
        BatchMatmul.widenHalves(all, 0, wide, 3, 65536, f16);
        for (int h = 0; h < 65536; h++) {
            float expected = f16 ? Float.float16ToFloat((short) h) : Float.intBitsToFloat(h << 16);
            if (Float.isNaN(expected)) {
                org.junit.jupiter.api.Assertions.assertTrue(Float.isNaN(wide[3 + h]), "half 0x" + Integer.toHexString(h));
                continue;
            }
            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(wide[3 + h]), "half 0x" + Integer.toHexString(h));
        }
    }

    /**
     * The GGML types take the transposed kernel from {@link BatchMatmul#TRANSPOSED_FROM_TOKENS} tokens (Q8_0 from
     * {@link BatchMatmul#Q8_0_TRANSPOSED_FROM_TOKENS}, Q4_0 from {@link BatchMatmul#Q4_0_TRANSPOSED_FROM_TOKENS}, Q5_K from
     * {@link BatchMatmul#Q5_K_TRANSPOSED_FROM_TOKENS}, Q2_K and Q3_K from {@link BatchMatmul#Q2_Q3_K_TRANSPOSED_FROM_TOKENS}, IQ4_NL and
     * IQ4_XS from {@link BatchMatmul#IQ4_TRANSPOSED_FROM_TOKENS}), the
     * one-token kernels below
     * ({@link #ggmlTypesMatchTheOneTokenKernel} checks both sides' results); F32 and runq's Q8 always, but for runq
     * groups over {@link BatchMatmul#MAX_EXACT_GROUP}.
     */
    @Test
    void shortBatchesOfGgmlTypesTakeTheOneTokenKernels() {
        for (String type : new String[]{"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "Q8_0", "Q4_0", "Q5_1", "IQ4_NL", "IQ4_XS"}) {
            Matrix w = GgmlQuantize.quantize(type, RandomMatrices.floats(rnd, 2 * 256), 2, 256, arena);
            int from = switch (type) {
                case "IQ4_NL", "IQ4_XS" -> BatchMatmul.IQ4_TRANSPOSED_FROM_TOKENS;
                case "Q2_K", "Q3_K" -> BatchMatmul.Q2_Q3_K_TRANSPOSED_FROM_TOKENS;
                case "Q8_0" -> BatchMatmul.Q8_0_TRANSPOSED_FROM_TOKENS;
                case "Q4_0" -> BatchMatmul.Q4_0_TRANSPOSED_FROM_TOKENS;
                case "Q5_1" -> BatchMatmul.Q5_1_TRANSPOSED_FROM_TOKENS;
                case "Q5_K" -> BatchMatmul.Q5_K_TRANSPOSED_FROM_TOKENS;
                default -> BatchMatmul.TRANSPOSED_FROM_TOKENS;
            };
            assertFalse(BatchMatmul.readsTransposed(w, from - 1), type);
            org.junit.jupiter.api.Assertions.assertTrue(BatchMatmul.readsTransposed(w, from), type);
        }
        org.junit.jupiter.api.Assertions.assertTrue(BatchMatmul.readsTransposed(RandomMatrices.f32(arena, rnd, 2, 64, 0), 1));
        org.junit.jupiter.api.Assertions.assertTrue(BatchMatmul.readsTransposed(RandomMatrices.q8(arena, rnd, 2, 1024, 1024), 1));
        assertFalse(BatchMatmul.readsTransposed(RandomMatrices.q8(arena, rnd, 2, 2048, 2048), 100));
    }

    /**
     * A Q4_0 copy ({@link PackedQ4_0}) takes its one-token kernel under {@link BatchMatmul#PACKED_Q4_0_TRANSPOSED_FROM_TOKENS}
     * tokens (every batch but at 256 bits), and from there the transposed kernel on the file's layout: the file form's bits.
     */
    @Test
    void q4_0CopyTakesTheTransposedKernelFromItsThreshold() {
        int from = BatchMatmul.PACKED_Q4_0_TRANSPOSED_FROM_TOKENS, rows = 37, cols = 96;
        try (Parallel pool = new Parallel(2); Arena shared = Arena.ofShared()) {
            Matrix.Q4_0 w = (Matrix.Q4_0) GgmlQuantize.quantize("Q4_0", RandomMatrices.floats(rnd, rows * cols), rows, cols, shared);
            PackedQ4_0 copy = PackedQ4_0.of(w, java.lang.foreign.SegmentAllocator.slicingAllocator(
                    PageMemory.allocate(shared, PackedQ4_0.allocationBytes(w))), pool);
            assertEquals(BatchMatmul.F.vectorBitSize() == 256, BatchMatmul.transposed(copy));
            if (from == Integer.MAX_VALUE) {
                assertFalse(BatchMatmul.readsTransposed(copy, 512));
                return;
            }
            assertFalse(BatchMatmul.readsTransposed(copy, from - 1));
            org.junit.jupiter.api.Assertions.assertTrue(BatchMatmul.readsTransposed(copy, from));
            float[][] x = tokens(from + 3, cols);
            BatchActivations in = new BatchActivations(x.length, cols);
            in.input(x, x.length, cols);
            in.prepareFor(copy, null);
            float[][] viaCopy = new float[x.length][rows], viaFile = new float[x.length][rows];
            VectorKernels kernels = new VectorKernels();
            BatchMatmul.matmul(viaCopy, in, copy, 1, rows, kernels);
            BatchMatmul.matmul(viaFile, prepared(x, cols, w), new MatrixForm.File(w), 1, rows, kernels);
            for (int t = 0; t < x.length; t++) {
                assertArrayEquals(viaFile[t], viaCopy[t], "token " + t);
            }
        }
    }

    @Test
    void unpreparedInputIsRefused() {
        Matrix.F32 w = RandomMatrices.f32(arena, rnd, 4, 8, 0);
        BatchActivations in = new BatchActivations(2, 8);
        in.input(tokens(2, 8), 2, 8);
        float[][] out = new float[2][4];
        org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                () -> BatchMatmul.matmul(out, in, new MatrixForm.File(w), 0, 4, new VectorKernels()));
    }
}
