package io.github.llama2j.cpu;

import org.junit.jupiter.api.Test;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * {@link LaneSums#sum} and the kernels' rotations add by halves: for n lanes, lane i and i + n/2, then those sums at
 * distance n/4, ..., C2's {@code reduceLanes} order on x86, the same float whatever runs it. The reference here is
 * each width's tree written out as one expression. (That the kernels' results do not depend on the JIT's state is
 * {@link KernelJitStateTest}'s.)
 */
class LaneSumsTest {
    @Test
    void addsByHalvesAtEveryWidth() {
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        for (int n : new int[]{2, 4, 8, 16}) {
            float[] a = new float[n];
            for (int trial = 0; trial < 20_000; trial++) {
                for (int i = 0; i < n; i++) { // magnitudes 1e-3 to 1e4: the order shows in the rounding
                    a[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-3, 5)));
                }
                float expected = tree(a);
                float sum = LaneSums.sum(a.clone());
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(sum),
                        n + " lanes: " + Arrays.toString(a) + " summed to " + sum + ", by halves " + expected);
            }
        }
    }

    /** The kernels' form: rotations by n/2, n/4, ... and lanewise adds, at every width, give the tree's bits in lane 0. */
    @Test
    void rotationsGiveTheTreesSum() {
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        for (VectorSpecies<Float> species : List.of(FloatVector.SPECIES_128, FloatVector.SPECIES_256, FloatVector.SPECIES_512)) {
            int n = species.length(), steps = Integer.numberOfTrailingZeros(n);
            float[] a = new float[n];
            for (int trial = 0; trial < 2_000; trial++) {
                for (int i = 0; i < n; i++) {
                    a[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-3, 5)));
                }
                FloatVector s = FloatVector.fromArray(species, a, 0);
                for (int step = 1; step <= steps; step++) {
                    s = s.add(s.rearrange(LaneSums.rotation(species, step)));
                }
                assertEquals(Float.floatToRawIntBits(tree(a)), Float.floatToRawIntBits(s.lane(0)), species + ": " + Arrays.toString(a));
            }
        }
    }

    @Test
    void widthsOutsideTheStepsAreRefused() {
        assertEquals(3, assertThrows(io.github.llama2j.Llama2jException.class, () -> LaneSums.check(32)).exitCode());
        assertEquals(3, assertThrows(io.github.llama2j.Llama2jException.class, () -> LaneSums.check(2)).exitCode());
        LaneSums.check(4);
        LaneSums.check(16);
    }

    @Test
    void infinitiesAndNaNAsFloatAddition() {
        float[] a = {1, Float.POSITIVE_INFINITY, 3, 4, 5, 6, 7, 8};
        assertEquals(Float.POSITIVE_INFINITY, LaneSums.sum(a.clone()));
        a[5] = Float.NEGATIVE_INFINITY;
        assertEquals(Float.NaN, LaneSums.sum(a.clone()));
    }

    /** The halving trees as expressions: after the first step lane i holds a[i] + a[i + n/2], and so on. */
    private static float tree(float[] a) {
        return switch (a.length) {
            case 2 -> a[0] + a[1];
            case 4 -> (a[0] + a[2]) + (a[1] + a[3]);
            case 8 -> ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
            case 16 -> (((a[0] + a[8]) + (a[4] + a[12])) + ((a[2] + a[10]) + (a[6] + a[14])))
                    + (((a[1] + a[9]) + (a[5] + a[13])) + ((a[3] + a[11]) + (a[7] + a[15])));
            default -> throw new IllegalArgumentException("lanes " + a.length);
        };
    }
}
