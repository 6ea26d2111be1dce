package io.github.llama2j.math;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link VectorExpf} against the C library's expf through the foreign function API ({@link CLibraryMath}), bit for
 * bit, on fresh random inputs each run: uniform over the vector range and beyond it, random bit patterns (every
 * magnitude, NaN, infinities), softmax's shifted scores and SwiGLU's pre-activations, at offsets and lengths that
 * leave a scalar tail. (The exhaustive proof over every finite float is {@link ExpfSweep}, run once.)
 * Tagged {@code vector-widths}: the build runs it at 512, 256 and 128 bits.
 */
@Tag("vector-widths")
class VectorExpfTest {
    private static CLibraryMath libm;
    private final long seed = new SplittableRandom().nextLong();
    private final SplittableRandom rnd = new SplittableRandom(seed);

    @BeforeAll
    static void linkLibm() {
        libm = CLibraryMath.instance().orElse(null);
        assumeTrue(libm != null, "no C library to compare with");
    }

    private float[] inputs(int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = switch (i % 4) {
                case 0 -> (float) rnd.nextDouble(VectorExpf.LOW, VectorExpf.HIGH);
                case 1 -> (float) rnd.nextDouble(-120.0, 100.0);
                case 2 -> Float.intBitsToFloat(rnd.nextInt());
                default -> (float) rnd.nextDouble(-1.0, 1.0) * (float) Math.pow(2, -rnd.nextInt(30));
            };
        }
        return x;
    }

    private void assertBits(float expected, float actual, String what) {
        assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual),
                () -> what + ": expected " + expected + ", got " + actual + " (seed " + seed + ")");
    }

    @Test
    void expShiftedEqualsTheCLibraryOnRandomInputs() {
        int n = 1 << 18;
        float[] x = inputs(n + 7);
        for (float shift : new float[] {0.0f, 3.5f, (float) rnd.nextDouble(-30, 30)}) {
            int off = rnd.nextInt(5), len = n + rnd.nextInt(3);
            float[] actual = x.clone();
            VectorExpf.expShifted(actual, off, len, shift, libm);
            for (int i = 0; i < x.length; i++) {
                float expected = i >= off && i < off + len ? libm.exp(x[i] - shift) : x[i];
                if (Float.isNaN(expected)) {
                    assertTrue(Float.isNaN(actual[i]), "NaN at " + i + " (seed " + seed + ")");
                } else {
                    assertBits(expected, actual[i], "exp(" + x[i] + " - " + shift + ")");
                }
            }
        }
    }

    @Test
    void softmaxScoresEqualTheCLibrary() {
        // attention's case: scores - max, so every input <= 0, most within a few tens of 0
        for (int round = 0; round < 200; round++) {
            int n = 1 + rnd.nextInt(600);
            float[] s = new float[n];
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                s[i] = (float) (rnd.nextGaussian() * (1 + round % 20));
                max = Math.max(max, s[i]);
            }
            float[] actual = s.clone();
            VectorExpf.expShifted(actual, 0, n, max, libm);
            for (int i = 0; i < n; i++) {
                assertBits(libm.exp(s[i] - max), actual[i], "exp(" + s[i] + " - " + max + ")");
            }
        }
    }

    @Test
    void softmaxOfWidelySpreadScoresEqualsTheCLibrary() {
        // a long context's scores spread over hundreds: most inputs below ZERO_BELOW (exp rounds to +0), some in
        // the subnormal band between it and LOW, a few near 0
        int below = 0, band = 0;
        // 100 rounds, more until the band has been hit often enough (its share of the random inputs varies: 97 hits
        // in 100 rounds once, in CI)
        for (int round = 0; round < 100 || ((below <= 1000 || band <= 100) && round < 1000); round++) {
            int n = 1 + rnd.nextInt(1000);
            float[] s = new float[n];
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                s[i] = (float) (rnd.nextGaussian() * 150);
                max = Math.max(max, s[i]);
            }
            float[] actual = s.clone();
            VectorExpf.expShifted(actual, 0, n, max, libm);
            for (int i = 0; i < n; i++) {
                float in = s[i] - max;
                below += in < VectorExpf.ZERO_BELOW ? 1 : 0;
                band += in >= VectorExpf.ZERO_BELOW && in < VectorExpf.LOW ? 1 : 0;
                assertBits(libm.exp(in), actual[i], "exp(" + s[i] + " - " + max + ")");
            }
        }
        assertTrue(below > 1000 && band > 100, below + " inputs below " + VectorExpf.ZERO_BELOW + ", " + band + " in the band");
    }

    @Test
    void swigluEqualsTheCLibraryScalarLoop() {
        int n = 100_000;
        float[] hb = new float[n], hb2 = new float[n];
        for (int i = 0; i < n; i++) {
            hb[i] = i % 5 == 4 ? Float.intBitsToFloat(rnd.nextInt()) : (float) (rnd.nextGaussian() * (i % 3 == 0 ? 4 : 40));
            hb2[i] = (float) rnd.nextGaussian();
        }
        float[] expected = hb.clone(), actual = hb.clone();
        int from = rnd.nextInt(9), to = n - rnd.nextInt(9);
        libm.swiglu(expected, hb2, from, to); // FloatMath's scalar default: one expf call per element
        VectorExpf.swiglu(actual, hb2, from, to, libm);
        for (int i = 0; i < n; i++) {
            if (Float.isNaN(expected[i])) {
                assertTrue(Float.isNaN(actual[i]), "NaN at " + i + " (seed " + seed + ")");
            } else {
                assertBits(expected[i], actual[i], "swiglu(" + hb[i] + ", " + hb2[i] + ")");
            }
        }
    }

    @Test
    void selfCheckAgreesWithTheCLibraryAndCatchesAnotherOne() {
        assertTrue(VectorExpf.selfCheck(libm, 4096, seed), "seed " + seed);
        // a library one ulp off on an eighth of its inputs is not the one swept: the self-check must say so
        FloatMath offByOne = new FloatMath() { // only exp is called
            @Override
            public float exp(float x) {
                float e = libm.exp(x);
                return (Float.floatToRawIntBits(x) & 7) == 3 && Float.isFinite(e) && e > 0 ? Math.nextUp(e) : e;
            }

            @Override public float sin(float x) { throw new UnsupportedOperationException(); }
            @Override public float cos(float x) { throw new UnsupportedOperationException(); }
            @Override public float pow(float x, float y) { throw new UnsupportedOperationException(); }
            @Override public String name() { return "off by one ulp"; }
        };
        assertFalse(VectorExpf.selfCheck(offByOne, 4096, seed), "seed " + seed);
    }

    @Test
    void theEngineMathIsTheVectorizedOneWhereTheCLibraryLinks() {
        FloatMath m = FloatMath.vectorized();
        assertSame(VectorExpMath.INSTANCE, m);
        assertTrue(m.name().startsWith(libm.name()), m.name());
        for (float x : inputs(1000)) {
            assertBits(libm.exp(x), m.exp(x), "exp(" + x + ")");
        }
    }
}
