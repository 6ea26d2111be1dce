package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
            for (int trial = 0; trial < 2_000; trial++) {
                float[] a = gaussians(random, species.length());
                float sum = rotated(species, a);
                assertEquals(Float.floatToRawIntBits(tree(a)), Float.floatToRawIntBits(sum), species + ": " + Arrays.toString(a));
            }
        }
    }

    /** The constants the kernels use (P1, P2, P_STEPS; M1, M2, M_STEPS) in the kernels' form give the tree's bits. */
    @Test
    void kernelConstantsGiveTheTreesSum() {
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        VectorSpecies<Float> preferred = FloatVector.SPECIES_PREFERRED;
        VectorSpecies<Float> mins = preferred.vectorBitSize() <= 256 ? preferred : FloatVector.SPECIES_256;
        for (int trial = 0; trial < 2_000; trial++) {
            float[] a = gaussians(random, preferred.length()), m = gaussians(random, mins.length());
            FloatVector s = FloatVector.fromArray(preferred, a, 0);
            if (LaneSums.P_STEPS > 2) { s = s.add(s.rearrange(LaneSums.P1)); }
            if (LaneSums.P_STEPS > 3) { s = s.add(s.rearrange(LaneSums.P2)); }
            float sum = (s.lane(0) + s.lane(2)) + (s.lane(1) + s.lane(3));
            assertEquals(Float.floatToRawIntBits(tree(a)), Float.floatToRawIntBits(sum), preferred + ": " + Arrays.toString(a));
            FloatVector t = FloatVector.fromArray(mins, m, 0);
            if (LaneSums.M_STEPS > 2) { t = t.add(t.rearrange(LaneSums.M1)); }
            if (LaneSums.M_STEPS > 3) { t = t.add(t.rearrange(LaneSums.M2)); }
            float minSum = (t.lane(0) + t.lane(2)) + (t.lane(1) + t.lane(3));
            assertEquals(Float.floatToRawIntBits(tree(m)), Float.floatToRawIntBits(minSum), mins + ": " + Arrays.toString(m));
        }
    }

    /**
     * A kernel's row ends, not a copy of them: VectorKernels' float32 product of rows one vector long with x = 1
     * (each lane's product is the weight itself, exactly) is each row's tree sum, bit for bit, in the four-row group
     * and in the leftover row.
     */
    @Test
    void float32KernelRowsAreTheTreesSum() {
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        int cols = FloatVector.SPECIES_PREFERRED.length(), rows = 5;
        float[] x = new float[cols];
        Arrays.fill(x, 1.0f);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate((long) rows * cols * Float.BYTES, 64);
            float[][] w = new float[rows][];
            for (int trial = 0; trial < 200; trial++) {
                for (int r = 0; r < rows; r++) {
                    w[r] = gaussians(random, cols);
                    MemorySegment.copy(w[r], 0, data, ValueLayout.JAVA_FLOAT_UNALIGNED, (long) r * cols * Float.BYTES, cols);
                }
                float[] out = new float[rows];
                new VectorKernels().matmulF32(out, x, new Matrix.F32(data, rows, cols), 0, rows);
                for (int r = 0; r < rows; r++) {
                    assertEquals(Float.floatToRawIntBits(tree(w[r])), Float.floatToRawIntBits(out[r]), "row " + r + ": " + Arrays.toString(w[r]));
                }
            }
        }
    }

    /** n values of magnitudes 1e-3 to 1e4, where the order of the additions shows in the rounding. */
    private static float[] gaussians(SplittableRandom random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-3, 5)));
        }
        return a;
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
