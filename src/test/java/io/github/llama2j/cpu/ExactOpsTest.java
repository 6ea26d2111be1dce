package io.github.llama2j.cpu;

import io.github.llama2j.model.Configuration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The vectorized non-matmul steps ({@link Attention}, {@link VectorOps}) are bit-identical to the
 * {@link ScalarKernels} reference on fresh random inputs, at sizes that are not multiples of the
 * vector width.
 */
@Tag("vector-widths")
class ExactOpsTest {
    private final SplittableRandom rnd = new SplittableRandom();

    /** dim, heads, kv heads, seq_len: head sizes 8, 12, 16, 48, 64 and 2 query heads per kv head; 140 positions: passes of four key blocks at every width. */
    @ParameterizedTest
    @CsvSource({"64, 8, 4, 40", "96, 8, 8, 33", "96, 6, 6, 20", "288, 6, 6, 50", "768, 12, 12, 35", "128, 2, 1, 17", "256, 4, 2, 140"})
    void attentionMatchesScalar(int dim, int heads, int kvHeads, int seqLen) {
        Configuration c = new Configuration(dim, 4 * dim, 2, heads, kvHeads, 100, seqLen, true, 0);
        int kvDim = c.kvDim(), hs = c.headSize();
        Attention attention = new Attention(c, io.github.llama2j.math.FloatMath.JAVA);
        float[][] keys = new float[2][seqLen * kvDim], values = new float[2][seqLen * kvDim];
        float[] att = new float[heads * attention.scoreStride()], refAtt = new float[heads * seqLen];
        for (int pos = 0; pos < seqLen; pos++) {
            for (int layer = 0; layer < 2; layer++) {
                float[] k = RandomMatrices.floats(rnd, kvDim), v = RandomMatrices.floats(rnd, kvDim);
                attention.store(layer, pos, k, v);
                System.arraycopy(k, 0, keys[layer], pos * kvDim, kvDim);
                System.arraycopy(v, 0, values[layer], pos * kvDim, kvDim);
                float[] q = RandomMatrices.floats(rnd, dim);
                float[] expected = new float[dim], actual = new float[dim];
                for (int h = 0; h < heads; h++) {
                    ScalarKernels.attentionHead(expected, q, keys[layer], values[layer], refAtt, h * seqLen, h, pos, hs, kvDim, c.kvMul(), io.github.llama2j.math.FloatMath.JAVA);
                    attention.head(layer, h, pos, q, actual, att, h * attention.scoreStride());
                }
                assertArrayEquals(expected, actual, "layer " + layer + " pos " + pos);
            }
        }
    }

    /**
     * {@link Attention#heads4} (four consecutive tokens at once, the batched prefill's case) against the scalar
     * reference for each token: the whole cache filled first (as the prefill stores a chunk's keys and values
     * before its attention), then every start position 0 .. seqLen - 4.
     */
    @ParameterizedTest
    @CsvSource({"64, 8, 4, 40", "96, 8, 8, 33", "96, 6, 6, 20", "288, 6, 6, 50", "768, 12, 12, 35", "128, 2, 1, 17", "256, 4, 2, 140"})
    void fourTokensAtOnceMatchScalar(int dim, int heads, int kvHeads, int seqLen) {
        Configuration c = new Configuration(dim, 4 * dim, 1, heads, kvHeads, 100, seqLen, true, 0);
        int kvDim = c.kvDim(), hs = c.headSize();
        Attention attention = new Attention(c, io.github.llama2j.math.FloatMath.JAVA);
        float[] keys = new float[seqLen * kvDim], values = new float[seqLen * kvDim];
        for (int pos = 0; pos < seqLen; pos++) {
            float[] k = RandomMatrices.floats(rnd, kvDim), v = RandomMatrices.floats(rnd, kvDim);
            attention.store(0, pos, k, v);
            System.arraycopy(k, 0, keys, pos * kvDim, kvDim);
            System.arraycopy(v, 0, values, pos * kvDim, kvDim);
        }
        float[] refAtt = new float[seqLen];
        for (int pos0 = 0; pos0 + Attention.QUERIES <= seqLen; pos0++) {
            int stride = Attention.scoreLength(pos0 + Attention.QUERIES) + rnd.nextInt(3) * 16;
            float[][] q = new float[Attention.QUERIES + 1][], actual = new float[Attention.QUERIES + 1][dim];
            for (int b = 0; b < q.length; b++) {
                q[b] = RandomMatrices.floats(rnd, dim);
            }
            float[] att = new float[Attention.QUERIES * stride];
            int b0 = rnd.nextInt(2); // the four tokens need not start the batch
            for (int h = 0; h < heads; h++) {
                attention.heads4(0, h, pos0, q, b0, actual, att, stride);
            }
            for (int j = 0; j < Attention.QUERIES; j++) {
                float[] expected = new float[dim];
                for (int h = 0; h < heads; h++) {
                    ScalarKernels.attentionHead(expected, q[b0 + j], keys, values, refAtt, 0, h, pos0 + j, hs, kvDim, c.kvMul(), io.github.llama2j.math.FloatMath.JAVA);
                }
                assertArrayEquals(expected, actual[b0 + j], "token " + j + " at position " + (pos0 + j));
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 7, 64, 100, 288, 771})
    void rmsnormAndAddMatchScalar(int size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment weight = RandomMatrices.f32(arena, rnd, 1, size, 28).data();
            float[] x = RandomMatrices.floats(rnd, size);
            float[] expected = new float[size], actual = new float[size];
            ScalarKernels.rmsnorm(expected, x, weight, size);
            VectorOps.rmsnorm(actual, x, weight, size);
            assertArrayEquals(expected, actual, "rmsnorm");
            float[] inPlace = x.clone();
            VectorOps.rmsnorm(inPlace, inPlace, weight, size);
            assertArrayEquals(expected, inPlace, "rmsnorm in place");

            float[] y = RandomMatrices.floats(rnd, size);
            float[] sumExpected = x.clone(), sumActual = x.clone();
            ScalarKernels.add(sumExpected, y, size);
            VectorOps.add(sumActual, y, size);
            assertArrayEquals(sumExpected, sumActual, "add");
        }
    }

    /** dim, kvDim, head size; positions up to 1000 so the angles are large. */
    @ParameterizedTest
    @CsvSource({"64, 32, 8", "288, 288, 48", "768, 768, 64", "96, 96, 16"})
    void ropeMatchesScalar(int dim, int kvDim, int headSize) {
        float[] freq = ScalarKernels.ropeFrequencies(headSize, Configuration.LLAMA2C_ROPE_THETA, io.github.llama2j.math.FloatMath.JAVA);
        float[] cos = new float[freq.length], sin = new float[freq.length];
        for (int pos : new int[]{0, 1, 2, 17, 255, 1000}) {
            float[] q = RandomMatrices.floats(rnd, dim), k = RandomMatrices.floats(rnd, kvDim);
            float[] q2 = q.clone(), k2 = k.clone();
            ScalarKernels.rope(q, k, pos, dim, kvDim, headSize, freq, io.github.llama2j.math.FloatMath.JAVA);
            VectorOps.ropeAngles(pos, freq, cos, sin, io.github.llama2j.math.FloatMath.JAVA);
            VectorOps.rope(q2, k2, dim, kvDim, headSize, cos, sin);
            assertArrayEquals(q, q2, "q at pos " + pos);
            assertArrayEquals(k, k2, "k at pos " + pos);
        }
    }

    /** Random activations, plus ones that land exactly on halves (the rounding's ties), zeros and a NaN group. */
    @ParameterizedTest
    @ValueSource(ints = {4, 16, 32, 64, 128})
    void quantizeMatchesScalar(int groupSize) {
        int n = 40 * groupSize;
        float[] x = RandomMatrices.floats(rnd, n);
        for (int i = 0; i < groupSize; i++) { // group 1: max 127 so x / scale is x; ties at k + 0.5, both signs
            x[groupSize + i] = i == 0 ? 127f : (rnd.nextInt(-126, 126) + 0.5f);
        }
        for (int i = 0; i < groupSize; i++) { // group 2: zeros (scale 0, 0 / 0 = NaN), group 3: a NaN
            x[2 * groupSize + i] = i % 2 == 0 ? 0.0f : -0.0f;
            x[3 * groupSize + i] = i == 1 ? Float.NaN : 1.0f;
        }
        byte[] expectedQ = new byte[n], actualQ = new byte[n];
        float[] expectedS = new float[n / groupSize], actualS = new float[n / groupSize];
        ScalarKernels.quantize(x, n, groupSize, expectedQ, expectedS);
        VectorOps.quantize(x, n, groupSize, actualQ, actualS);
        assertArrayEquals(expectedS, actualS, "scales");
        assertArrayEquals(expectedQ, actualQ, "values");
    }

    /**
     * {@link VectorOps#quantizeTokenLanes} (the batched prefill's: a group of a vector of tokens at once, in a
     * transposed panel, tokens along the lanes) gives each token's {@link ScalarKernels#quantizeGroups} values and
     * scale: token rows of random values, ties, zeros and a NaN, in a panel of width w at an offset.
     */
    @ParameterizedTest
    @ValueSource(ints = {4, 16, 32, 64, 128})
    void quantizeTokenLanesMatchesScalarPerToken(int groupSize) {
        int lanes = BatchMatmul.FL, w = 2 * lanes, at = 3;
        float[][] rows = new float[lanes][];
        for (int t = 0; t < lanes; t++) {
            rows[t] = RandomMatrices.floats(rnd, groupSize);
            for (int j = 0; j < groupSize; j++) {
                switch (t % 4) {
                    case 1 -> rows[t][j] = j == 0 ? 127f : (rnd.nextInt(-126, 126) + 0.5f); // ties, both signs
                    case 2 -> rows[t][j] = j % 2 == 0 ? 0.0f : -0.0f;                      // zeros: scale 0
                    case 3 -> rows[t][j] = j == 1 ? Float.NaN : rows[t][j];                 // a NaN skipped by the max
                    default -> { }
                }
            }
        }
        float[] panel = new float[at + groupSize * w], scales = new float[lanes + 1];
        for (int t = 0; t < lanes; t++) {
            for (int j = 0; j < groupSize; j++) {
                panel[at + j * w + t] = rows[t][j];
            }
        }
        VectorOps.quantizeTokenLanes(panel, at, w, groupSize, scales, 1);
        for (int t = 0; t < lanes; t++) {
            byte[] q = new byte[groupSize];
            float[] s = new float[1];
            ScalarKernels.quantizeGroups(rows[t], 0, 1, groupSize, q, s);
            float[] expected = new float[groupSize], actual = new float[groupSize];
            for (int j = 0; j < groupSize; j++) {
                expected[j] = q[j];
                actual[j] = panel[at + j * w + t];
            }
            assertArrayEquals(expected, actual, "values of token " + t);
            assertArrayEquals(s, new float[] {scales[1 + t]}, "scale of token " + t);
        }
    }

    @Test
    void swigluOnRangesMatchesScalar() {
        int size = 1376;
        float[] hb = RandomMatrices.floats(rnd, size), hb2 = RandomMatrices.floats(rnd, size);
        float[] expected = hb.clone(), actual = hb.clone();
        ScalarKernels.swiglu(expected, hb2, size, io.github.llama2j.math.FloatMath.JAVA);
        VectorOps.swiglu(actual, hb2, 0, 500, io.github.llama2j.math.FloatMath.JAVA);
        VectorOps.swiglu(actual, hb2, 500, size, io.github.llama2j.math.FloatMath.JAVA);
        assertArrayEquals(expected, actual);
    }

    /**
     * GGML's activation quantizers a vector at a time ({@link VectorOps#quantizeQ8_0}, {@link VectorOps#quantizeQ8K})
     * give the scalar references' values, scales and sums bit for bit ({@link Activations#quantizeQ8_0},
     * {@link Activations#quantizeQ8K}): blocks of random values, of ties (a largest magnitude of 127 makes the scale
     * 1: every x.5 a tie), of zeros, with the largest magnitude twice with both signs, with a NaN, with an infinity,
     * with tiny subnormal values.
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 3, 4, 5, 6, 7})
    void ggmlQuantizersMatchTheScalarReferences(int kind) {
        int n = 4 * Activations.Q8_K_BLOCK;
        float[] x = RandomMatrices.floats(rnd, n);
        for (int i = 0; i < n; i++) {
            int inBlock = i % Activations.Q8_0_BLOCK;
            switch (kind) {
                case 1 -> x[i] = inBlock == 3 ? (i % 64 < 32 ? 127f : -127f) : rnd.nextInt(-126, 126) + 0.5f; // ties
                case 2 -> x[i] = i % 2 == 0 ? 0.0f : -0.0f;                                                     // zeros
                case 3 -> x[i] = inBlock == 5 ? 4.0f : inBlock == 9 ? -4.0f : x[i];                             // max twice
                case 4 -> x[i] = i % 97 == 0 ? Float.NaN : x[i];                                                // a NaN
                case 5 -> x[i] = i % 300 == 7 ? Float.NEGATIVE_INFINITY : x[i];                                 // an infinity
                case 6 -> x[i] = x[i] * 0x1p-140f;                                                              // subnormals
                case 7 -> x[i] = i < n / 2 ? 0.0f : x[i] * 1e30f;                                               // zero half, huge half
                default -> { }
            }
        }
        short[] q = new short[n], qRef = new short[n];
        float[] s = new float[n / Activations.Q8_0_BLOCK], sRef = new float[s.length];
        VectorOps.quantizeQ8_0(x, n, q, s);
        Activations.quantizeQ8_0(x, n, qRef, sRef);
        assertArrayEquals(qRef, q, "Q8_0 values, kind " + kind);
        assertArrayEquals(sRef, s, "Q8_0 scales, kind " + kind);
        int[] sums = new int[n / Activations.Q8_K_SUM], sumsRef = new int[sums.length];
        float[] k = new float[n / Activations.Q8_K_BLOCK], kRef = new float[k.length];
        java.util.Arrays.fill(q, (short) 99);
        VectorOps.quantizeQ8K(x, n, q, k, sums);
        Activations.quantizeQ8K(x, n, qRef, kRef, sumsRef);
        assertArrayEquals(qRef, q, "Q8_K values, kind " + kind);
        assertArrayEquals(kRef, k, "Q8_K scales, kind " + kind);
        assertArrayEquals(sumsRef, sums, "Q8_K sums of 16, kind " + kind);
    }
}
