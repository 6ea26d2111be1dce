package io.github.llama2j.cpu;

import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The one RoPE every engine uses, the shared embedding lookup and the shared forward() argument checks. */
class RopeTest {
    private final SplittableRandom rnd = new SplittableRandom(14);

    /** Rope's rotation equals run.c's (the scalar reference recomputes every angle per pair), for any theta. */
    @ParameterizedTest
    @CsvSource({"64, 32, 8, 10000", "288, 288, 48, 10000", "768, 256, 64, 500000", "96, 96, 16, 1000000"})
    void rotationMatchesRunC(int dim, int kvDim, int headSize, float theta) {
        FloatMath math = FloatMath.JAVA;
        Rope rope = new Rope(headSize, theta, math);
        assertArrayEquals(ScalarKernels.ropeFrequencies(headSize, theta, math), rope.frequencies());
        float[] cos = new float[rope.pairs()], sin = new float[rope.pairs()];
        for (int pos : new int[]{0, 1, 5, 255, 4095}) {
            float[] q = RandomMatrices.floats(rnd, dim), k = RandomMatrices.floats(rnd, kvDim);
            float[] q2 = q.clone(), k2 = k.clone();
            ScalarKernels.rope(q, k, pos, dim, kvDim, headSize, ScalarKernels.ropeFrequencies(headSize, theta, math), math);
            rope.angles(pos, cos, sin);
            Rope.rotate(q2, dim, k2, kvDim, headSize, cos, sin);
            assertArrayEquals(q, q2, "q at pos " + pos);
            assertArrayEquals(k, k2, "k at pos " + pos);
        }
    }

    /** The device table holds, for each position, exactly the angles the CPU computes at that position. */
    @Test
    void tableHoldsEveryPositionsAngles() {
        Rope rope = new Rope(48, Configuration.LLAMA2C_ROPE_THETA, FloatMath.standard());
        int seqLen = 300, half = rope.pairs();
        float[] t = rope.table(seqLen);
        assertEquals(seqLen * 48, t.length);
        float[] cos = new float[half], sin = new float[half];
        for (int pos = 0; pos < seqLen; pos++) {
            rope.angles(pos, cos, sin);
            for (int p = 0; p < half; p++) {
                assertEquals(Float.floatToRawIntBits(cos[p]), Float.floatToRawIntBits(t[(pos * half + p) * 2]), "cos " + pos + "," + p);
                assertEquals(Float.floatToRawIntBits(sin[p]), Float.floatToRawIntBits(t[(pos * half + p) * 2 + 1]), "sin " + pos + "," + p);
            }
        }
    }

    /** Theta is the model's: a different base gives different frequencies (pair 0 is always 1). */
    @Test
    void thetaIsAParameter() {
        float[] a = new Rope(64, Configuration.LLAMA2C_ROPE_THETA, FloatMath.JAVA).frequencies();
        float[] b = new Rope(64, 500000f, FloatMath.JAVA).frequencies();
        assertEquals(1.0f, a[0]);
        assertEquals(1.0f, b[0]);
        assertNotEquals(a[1], b[1]);
        assertTrue(b[31] < a[31], "a larger base rotates the last pairs more slowly");
    }

    @Test
    void rejectsOddHeadSizesAndBadThetas() {
        assertThrows(IllegalArgumentException.class, () -> new Rope(7, Configuration.LLAMA2C_ROPE_THETA, FloatMath.JAVA));
        assertThrows(IllegalArgumentException.class, () -> new Rope(8, 0f, FloatMath.JAVA));
        assertThrows(IllegalArgumentException.class, () -> new Rope(8, Float.NaN, FloatMath.JAVA));
    }

    /** embed copies a float row and dequantizes a Q8 row (q * its group's scale), for the row asked. */
    @Test
    void embedReadsTheTokensRow() {
        try (Arena arena = Arena.ofConfined()) {
            int vocab = 7, dim = 64;
            Matrix.F32 f = RandomMatrices.f32(arena, rnd, vocab, dim, 28);
            Matrix.Q8 q = RandomMatrices.q8(arena, rnd, vocab, dim, 16);
            float[] out = new float[dim];
            for (int token = 0; token < vocab; token++) {
                f.dequantizeRow(token, out, 0);
                for (int i = 0; i < dim; i++) {
                    assertEquals(f.data().getAtIndex(ScalarKernels.FLOAT, (long) token * dim + i), out[i], "f32 " + token + "," + i);
                }
                q.dequantizeRow(token, out, 0);
                for (int i = 0; i < dim; i++) {
                    long at = (long) token * dim + i;
                    float expected = q.values().get(ValueLayout.JAVA_BYTE, at) * q.scales().getAtIndex(ScalarKernels.FLOAT, at / 16);
                    assertEquals(expected, out[i], "q8 " + token + "," + i);
                }
            }
        }
    }

    @Test
    void forwardArgumentsAreChecked() {
        Configuration c = new Configuration(8, 16, 1, 2, 2, 10, 4, true, 0);
        InferenceEngine.checkForwardArguments(c, 0, 0);
        InferenceEngine.checkForwardArguments(c, 9, 3);
        assertEquals("token 10 outside the vocabulary [0, 10)",
                assertThrows(IllegalArgumentException.class, () -> InferenceEngine.checkForwardArguments(c, 10, 0)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> InferenceEngine.checkForwardArguments(c, -1, 0));
        assertEquals("position 4 outside [0, seq_len 4)",
                assertThrows(IllegalArgumentException.class, () -> InferenceEngine.checkForwardArguments(c, 0, 4)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> InferenceEngine.checkForwardArguments(c, 0, -1));
    }
}
