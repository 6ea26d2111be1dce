package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/** Random test inputs for the kernels, with weights in native memory as the loader maps them. */
final class RandomMatrices {
    private RandomMatrices() {
    }

    /**
     * A rows × cols float32 matrix starting {@code misalign} bytes into its buffer (a legacy v0
     * file's tensors start 28 bytes after a 64-byte boundary). Values are normal with magnitudes
     * spread over several binades, so that any change of summation order shows in the last bits.
     */
    static Matrix.F32 f32(Arena arena, SplittableRandom rnd, int rows, int cols, int misalign) {
        long n = (long) rows * cols;
        MemorySegment s = arena.allocate(n * Float.BYTES + misalign, 64).asSlice(misalign, n * Float.BYTES);
        for (long i = 0; i < n; i++) {
            s.setAtIndex(ScalarKernels.FLOAT, i, (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-4, 4))));
        }
        return new Matrix.F32(s, rows, cols);
    }

    /** Q8_0 weights over the full int8 range (-128 included) with random-sign scales. */
    static Matrix.Q8 q8(Arena arena, SplittableRandom rnd, int rows, int cols, int groupSize) {
        long n = (long) rows * cols;
        MemorySegment values = arena.allocate(n + 3, 64).asSlice(3, n); // odd offset, as after a v2 file's scales
        MemorySegment scales = arena.allocate(n / groupSize * Float.BYTES, 64);
        for (long i = 0; i < n; i++) {
            values.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt(-128, 128));
        }
        for (long g = 0; g < n / groupSize; g++) {
            scales.setAtIndex(ScalarKernels.FLOAT, g, (float) (rnd.nextGaussian() * 0.01));
        }
        return new Matrix.Q8(values, scales, rows, cols, groupSize);
    }

    static float[] floats(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-4, 4)));
        }
        return x;
    }

    /** int8 activations as runq's quantizer makes them: in [-127, 127]. */
    static byte[] activations(SplittableRandom rnd, int n) {
        byte[] q = new byte[n];
        for (int i = 0; i < n; i++) {
            q[i] = (byte) rnd.nextInt(-127, 128);
        }
        return q;
    }
}
