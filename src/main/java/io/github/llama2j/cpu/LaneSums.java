package io.github.llama2j.cpu;

import io.github.llama2j.Llama2jException;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * How the kernels sum a row's float lanes: in one fixed order, whatever runs the code, where
 * {@code reduceLanes(ADD)} gives bits that depend on the JIT's state.
 *
 * <p>Why: {@code FloatVector.reduceLanes(VectorOperators.ADD)} adds the lanes one after another in the interpreter and
 * in C1's code (the Vector API's Java fallback), but by halves once C2 has compiled the method (x86: lanes i and
 * i + n/2, then i and i + n/4, ..., then lanes 0 and 1); on 200,000 random 16-lane vectors the two differed in 65% of
 * the sums (docs/measurements/2026-12-07-lane-sums.md). So a kernel that ran before C2 compiled it, or after a
 * deoptimization, gave other logits than the same kernel compiled, and a run's tokens could depend on when the JIT
 * finished. {@code KernelJitStateTest} runs every kernel interpreted and compiled and requires the same bits.
 *
 * <p>The order, written out at each kernel's row end with lanewise operations and lane reads only (which every
 * execution mode computes lane by lane, exactly):
 * <pre>
 * FloatVector s = acc;
 * if (P_STEPS &gt; 2) { s = s.add(s.rearrange(P1)); }   // 8 or 16 lanes: lane i plus lane i + n/2
 * if (P_STEPS &gt; 3) { s = s.add(s.rearrange(P2)); }   // 16 lanes: then plus lane i + 4
 * float sum = (s.lane(0) + s.lane(2)) + (s.lane(1) + s.lane(3));
 * </pre>
 * The sum is the halving tree (lane i plus lane i + n/2, then the same on the first half, down to lanes 0 and 1):
 * C2's {@code reduceLanes} order on x86, so compiled kernels there give what they gave before (C2 on other CPUs
 * may have added in another order; from now on they too give one result). The step count is a constant (C2 keeps
 * the steps the width takes). {@link #P1} and {@link #P2} are for the preferred species, {@link #M1} and
 * {@link #M2} for the K-quant kernels' species of the mins (at most 256 bits; the same objects where the species is
 * the preferred one).
 *
 * <p>Why the last two steps read lanes instead of rotating: each rotation's index vector is a loop invariant that C2
 * loads before the kernel's loop and keeps in a register through it. The K-quant copies' loop at 256 bits used all
 * sixteen ymm registers before, so with six index vectors (three steps, products and mins) it stored and reloaded
 * some of them at every super-block: the Llama-3.2-1B Q4_K_M token about a tenth slower at 256 bits. With one index
 * vector at 256 bits (products and mins share it; at 512 bits two for the products and one for the mins' 256-bit
 * species, none at 128) the 256-bit Q4_K loop is back to one spilled value, and the lane reads are
 * {@code vpshufd}-class instructions with immediates (docs/measurements/2026-12-07-lane-sums.md, "Third look").
 *
 * <p>Why at each site and not in a method: the kernels are too large for C2 to inline even a small method into them
 * ("callee is too large", "NodeCountInliningCutoff"). A method taking the vector got each row's accumulator boxed:
 * Llama-3.2-1B Q4_K_M bench tg16 6.5-8.9 against 16.1-16.5 tok/s. A method taking the lanes stored to an array
 * (a scalar halving loop) cost a call per row: tg32 31.2-34.0 against 34.6-42.7 tok/s for {@code reduceLanes}. Written out at
 * each site, the scalar sum of the stored lanes took 94-114 ns per row against {@code reduceLanes}' 88-93 in a
 * float32 kernel in cache, {@code slice} steps cost stories42M-shaped f32 tg128 a third (139-164 against 203-244
 * tok/s), and rotations were within the noise of {@code reduceLanes} at 512 bits (the same page). A
 * {@code -XX:CompileCommand=inline} for a helper would need the flag on every java command line, which
 * {@code java -jar} does not carry.
 */
final class LaneSums {
    /** The most lanes the two rotations and the four lane reads sum: 512 bits of floats; see {@link #check}. */
    static final int MAX_LANES = 16;
    private static final VectorSpecies<Float> PREFERRED = FloatVector.SPECIES_PREFERRED;
    /** The K-quant kernels' species for the mins: the preferred one, at most 256 bits. */
    private static final VectorSpecies<Float> MINS = PREFERRED.vectorBitSize() <= 256 ? PREFERRED : FloatVector.SPECIES_256;

    /** The rotations for the preferred float species (by n/2 and by n/4 lanes), and log2 of its length. */
    static final VectorShuffle<Float> P1 = rotation(PREFERRED, 1), P2 = rotation(PREFERRED, 2);
    static final int P_STEPS = Integer.numberOfTrailingZeros(PREFERRED.length());
    /** The same for a species of at most 256 bits (the preferred one, if narrower: then the same objects). */
    static final VectorShuffle<Float> M1 = MINS == PREFERRED ? P1 : rotation(MINS, 1), M2 = MINS == PREFERRED ? P2 : rotation(MINS, 2);
    static final int M_STEPS = Integer.numberOfTrailingZeros(MINS.length());

    private LaneSums() {
    }

    /** Step i (1 or 2) for species s: lane j takes lane j + n / 2^i (mod n). */
    static VectorShuffle<Float> rotation(VectorSpecies<Float> s, int i) {
        int k = Math.max(1, s.length() >> i);
        return VectorShuffle.fromOp(s, j -> (j + k) % s.length());
    }

    /**
     * Refuses float vectors of more than {@link #MAX_LANES} lanes (wider than 512 bits: no JDK on x86, NEON or the SVE of
     * current Arm servers has them), whose lanes past the 16th the kernels' steps would leave out, of fewer
     * than 4 (no SIMD: the kernels read four lanes always), and lane counts that are not a power of two.
     */
    static void check(int floatLanes) {
        if (floatLanes < 4 || Integer.bitCount(floatLanes) != 1) {
            throw new Llama2jException("float vectors of " + floatLanes + " lanes: the CPU kernels need 128, 256 or 512"
                    + "-bit vectors", Llama2jException.UNAVAILABLE);
        }
        if (floatLanes > MAX_LANES) {
            throw new Llama2jException("float vectors of " + floatLanes + " lanes (" + floatLanes * 32
                    + " bits): the CPU kernels sum at most " + MAX_LANES + " (512 bits); run java with -XX:MaxVectorSize=64",
                    Llama2jException.UNAVAILABLE);
        }
    }
}
