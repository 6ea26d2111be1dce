package io.github.llama2j.tornado;

import io.github.llama2j.model.Configuration;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The CPU reference for the kernel tests: every call goes to {@link ScalarKernels} (run.c's and
 * runq.c's exact operation order); this class only adapts arrays to the segments it reads.
 */
final class Reference {
    private static final ScalarKernels SCALAR = new ScalarKernels();

    private Reference() {
    }

    static MemorySegment floats(float[] a) {
        MemorySegment s = Arena.ofAuto().allocate((long) a.length * Float.BYTES, 4);
        for (int i = 0; i < a.length; i++) {
            s.set(ScalarKernels.FLOAT, (long) i * Float.BYTES, a[i]);
        }
        return s;
    }

    static MemorySegment bytes(byte[] a) {
        MemorySegment s = Arena.ofAuto().allocate(a.length);
        MemorySegment.copy(a, 0, s, ValueLayout.JAVA_BYTE, 0, a.length);
        return s;
    }

    static float[] matmulF32(float[] w, int rows, int cols, float[] x) {
        float[] out = new float[rows];
        SCALAR.matmulF32(out, x, new Matrix.F32(floats(w), rows, cols), 0, rows);
        return out;
    }

    static float[] matmulQ8(byte[] values, float[] scales, int rows, int cols, int groupSize, byte[] xq, float[] xs) {
        float[] out = new float[rows];
        SCALAR.matmulQ8(out, xq, xs, new Matrix.Q8(bytes(values), floats(scales), rows, cols, groupSize), 0, rows);
        return out;
    }

    static float[] rmsnorm(float[] x, float[] weight) {
        float[] out = new float[x.length];
        ScalarKernels.rmsnorm(out, x, floats(weight), x.length);
        return out;
    }

    /** RoPE on q (all of it) and k (kvDim) in place, theta 10000. */
    static void rope(float[] q, float[] k, int pos, int headSize) {
        ScalarKernels.rope(q, k, pos, q.length, k.length, headSize, ScalarKernels.ropeFrequencies(headSize, Configuration.LLAMA2C_ROPE_THETA, FloatMath.JAVA), FloatMath.JAVA);
    }

    static void attentionHead(float[] out, float[] q, float[] keyCache, float[] valueCache, int h, int pos, int headSize,
                              int kvDim, int kvMul, int seqLen) {
        float[] att = new float[seqLen];
        ScalarKernels.attentionHead(out, q, keyCache, valueCache, att, 0, h, pos, headSize, kvDim, kvMul, FloatMath.JAVA);
    }

    static void swiglu(float[] hb, float[] hb2) {
        ScalarKernels.swiglu(hb, hb2, hb.length, FloatMath.JAVA);
    }

    static void quantize(float[] x, int groupSize, byte[] q, float[] s) {
        ScalarKernels.quantize(x, x.length, groupSize, q, s);
    }
}
