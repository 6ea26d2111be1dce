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
 * The kernels' row sums ({@link LaneSums}) add by halves: for n lanes, lane i and i + n/2, then those sums at
 * distance n/4, ..., C2's {@code reduceLanes} order on x86, the same float whatever runs it. The reference here is
 * each width's tree written out as one expression. (That the kernels' results do not depend on the JIT's state is
 * {@link KernelJitStateTest}'s.)
 */
class LaneSumsTest {
    /** The kernels' form: rotations by n/2, ... down to four lanes, then those four by halves, give the tree's bits. */
    @Test
    void rotationsGiveTheTreesSum() {
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        for (VectorSpecies<Float> species : List.of(FloatVector.SPECIES_128, FloatVector.SPECIES_256, FloatVector.SPECIES_512)) {
            int n = species.length();
            float[] a = new float[n];
            for (int trial = 0; trial < 2_000; trial++) {
                for (int i = 0; i < n; i++) {
                    a[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-3, 5)));
                }
                float sum = rotated(species, a);
                assertEquals(Float.floatToRawIntBits(tree(a)), Float.floatToRawIntBits(sum), species + ": " + Arrays.toString(a));
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
        assertEquals(Float.POSITIVE_INFINITY, rotated(FloatVector.SPECIES_256, a));
        a[5] = Float.NEGATIVE_INFINITY;
        assertEquals(Float.NaN, rotated(FloatVector.SPECIES_256, a));
    }

    /**
     * The kernels' steps on {@code a}: a rotation and an add per step while more than four lanes are left, then the
     * first four lanes by halves as scalars.
     */
    private static float rotated(VectorSpecies<Float> species, float[] a) {
        FloatVector s = FloatVector.fromArray(species, a, 0);
        for (int step = 1; species.length() >> (step - 1) > 4; step++) {
            s = s.add(s.rearrange(LaneSums.rotation(species, step)));
        }
        return (s.lane(0) + s.lane(2)) + (s.lane(1) + s.lane(3));
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
