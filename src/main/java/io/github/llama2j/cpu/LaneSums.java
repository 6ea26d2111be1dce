package io.github.llama2j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The sum of a float vector's lanes in one fixed order, whatever runs the code: the kernels' row sums, where
 * {@code reduceLanes(ADD)} would give bits that depend on the JIT's state.
 *
 * <p>Why: {@code FloatVector.reduceLanes(VectorOperators.ADD)} adds the lanes one after another in the interpreter and
 * in C1's code (the Vector API's Java fallback), but by halves once C2 has compiled the method (x86: lanes i and
 * i + n/2, then i and i + n/4, ..., then lanes 0 and 1). On 200,000 random 16-lane vectors the two differ in 65% of
 * the sums (a throwaway program on this project's VM, 2026-12-06). So a kernel that ran before C2 compiled it, or
 * after a deoptimization, gave other logits than the same kernel compiled, and a run's tokens could depend on when the
 * JIT finished (likely what a check of Q3_K against llama.cpp saw: 1.3e-2 of max|logit| between two runs of one
 * command under load, an activation rounded to the next Q8_K step).
 *
 * <p>{@link #sum} adds by halves with lanewise operations only (a rotation and an add per step), which every
 * execution mode computes lane by lane in IEEE arithmetic: the same bits as C2's {@code reduceLanes} at 128, 256 and
 * 512 bits (compared on those vectors, in the interpreter, C1 and C2), so compiled kernels keep their results and
 * uncompiled ones now agree with them. Cost, one thread in cache at load 7: about 0.5 ns more per sum than
 * {@code reduceLanes} at 512 bits (3.0–3.5 against 2.5–2.8 ns for a sum after eight vector adds), none measurable
 * at 256 and 128; one sum per row and accumulator.
 */
final class LaneSums {
    private LaneSums() {
    }

    private static final VectorSpecies<Float> F512 = FloatVector.SPECIES_512, F256 = FloatVector.SPECIES_256,
            F128 = FloatVector.SPECIES_128, F64 = FloatVector.SPECIES_64;
    /** Rotations of the lanes by half, a quarter, ... of each width: lane i takes lane (i + k) mod n. */
    private static final VectorShuffle<Float> R512_8 = rotation(F512, 8), R512_4 = rotation(F512, 4),
            R512_2 = rotation(F512, 2), R512_1 = rotation(F512, 1);
    private static final VectorShuffle<Float> R256_4 = rotation(F256, 4), R256_2 = rotation(F256, 2), R256_1 = rotation(F256, 1);
    private static final VectorShuffle<Float> R128_2 = rotation(F128, 2), R128_1 = rotation(F128, 1);
    private static final VectorShuffle<Float> R64_1 = rotation(F64, 1);

    private static VectorShuffle<Float> rotation(VectorSpecies<Float> s, int k) {
        return VectorShuffle.fromOp(s, i -> (i + k) % s.length());
    }

    /** The sum of v's lanes by halves: lane 0 after adding, at each step, the lanes half the remaining width away. */
    static float sum(FloatVector v) {
        return switch (v.length()) { // (a constant where the species is: C2 keeps one case)
            case 16 -> half(half(half(half(v, R512_8), R512_4), R512_2), R512_1).lane(0);
            case 8 -> half(half(half(v, R256_4), R256_2), R256_1).lane(0);
            case 4 -> half(half(v, R128_2), R128_1).lane(0);
            case 2 -> half(v, R64_1).lane(0);
            default -> wide(v);
        };
    }

    private static FloatVector half(FloatVector v, VectorShuffle<Float> rotation) {
        return v.add(v.rearrange(rotation));
    }

    /** Wider than 512 bits (Arm SVE) or a single lane: the same order, its rotations made here. */
    private static float wide(FloatVector v) {
        for (int k = v.length() / 2; k >= 1; k /= 2) {
            v = half(v, rotation(v.species(), k));
        }
        return v.lane(0);
    }
}
