package io.github.llama2j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link LaneSums#sum} adds by halves: for n lanes, lane i and i + n/2, then those sums at distance n/4, ..., so
 * that its result is the same float whatever compiles it (C2's {@code reduceLanes} order on x86).
 */
class LaneSumsTest {
    @Test
    void addsByHalvesAtEveryWidth() {
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        for (VectorSpecies<Float> s : List.of(FloatVector.SPECIES_64, FloatVector.SPECIES_128, FloatVector.SPECIES_256,
                FloatVector.SPECIES_512)) {
            float[] a = new float[s.length()];
            for (int trial = 0; trial < 20_000; trial++) {
                for (int i = 0; i < a.length; i++) { // magnitudes 1e-3 to 1e4: the order shows in the rounding
                    a[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-3, 5)));
                }
                float expected = byHalves(a.clone(), a.length);
                float sum = LaneSums.sum(FloatVector.fromArray(s, a, 0));
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(sum),
                        s + ": " + java.util.Arrays.toString(a) + " summed to " + sum + ", by halves " + expected);
            }
        }
    }

    @Test
    void infinitiesAndNaNAsFloatAddition() {
        float[] a = {1, Float.POSITIVE_INFINITY, 3, 4, 5, 6, 7, 8};
        assertEquals(Float.POSITIVE_INFINITY, LaneSums.sum(FloatVector.fromArray(FloatVector.SPECIES_256, a, 0)));
        a[5] = Float.NEGATIVE_INFINITY;
        assertEquals(Float.NaN, LaneSums.sum(FloatVector.fromArray(FloatVector.SPECIES_256, a, 0)));
    }

    /** The reference: a[i] += a[i + h] for h = n/2, n/4, ..., 1, then a[0]. */
    private static float byHalves(float[] a, int n) {
        for (int h = n / 2; h >= 1; h /= 2) {
            for (int i = 0; i < h; i++) {
                a[i] += a[i + h];
            }
        }
        return a[0];
    }
}
