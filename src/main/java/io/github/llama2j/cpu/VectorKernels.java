package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Vector API kernels at the preferred species (AVX-512 here). Float32 rows are reduced with FMA
 * in several independent accumulators (a different summation order than run.c: logits move by
 * about 1e-6 relative). Q8 rows keep runq's exact result: the int8 dot of each group is exact
 * integer arithmetic whatever the order, and groups are accumulated in float one after another.
 */
public final class VectorKernels implements Kernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    /** Bytes that widen to one full int vector. */
    private static final VectorSpecies<Byte> B = ByteVector.SPECIES_PREFERRED.withShape(
            jdk.incubator.vector.VectorShape.forBitSize(I.length() * 8));
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    @Override
    public String name() {
        return "vector" + F.vectorBitSize();
    }

    @Override
    public void matmulF32(float[] out, float[] x, Matrix.F32 w, int r0, int r1) {
        int n = w.cols();
        MemorySegment data = w.data();
        int lanes = F.length();
        int upper4 = n - n % (4 * lanes);
        int upper = F.loopBound(n);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * Float.BYTES;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
            int j = 0;
            for (; j < upper4; j += 4 * lanes) {
                long o = base + (long) j * Float.BYTES;
                a0 = FloatVector.fromMemorySegment(F, data, o, LE).fma(FloatVector.fromArray(F, x, j), a0);
                a1 = FloatVector.fromMemorySegment(F, data, o + lanes * 4L, LE).fma(FloatVector.fromArray(F, x, j + lanes), a1);
                a2 = FloatVector.fromMemorySegment(F, data, o + lanes * 8L, LE).fma(FloatVector.fromArray(F, x, j + 2 * lanes), a2);
                a3 = FloatVector.fromMemorySegment(F, data, o + lanes * 12L, LE).fma(FloatVector.fromArray(F, x, j + 3 * lanes), a3);
            }
            for (; j < upper; j += lanes) {
                a0 = FloatVector.fromMemorySegment(F, data, base + (long) j * Float.BYTES, LE).fma(FloatVector.fromArray(F, x, j), a0);
            }
            float sum = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
            for (; j < n; j++) {
                sum += data.get(ScalarKernels.FLOAT, base + (long) j * Float.BYTES) * x[j];
            }
            out[r] = sum;
        }
    }

    @Override
    public void matmulQ8(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1) {
        int n = w.cols(), gs = w.groupSize();
        int lanes = I.length();
        if (gs % lanes != 0) {
            new ScalarKernels().matmulQ8(out, xq, xs, w, r0, r1);
            return;
        }
        MemorySegment values = w.values(), scales = w.scales();
        for (int r = r0; r < r1; r++) {
            long in = (long) r * n;
            float val = 0.0f;
            for (int j = 0; j < n; j += gs) {
                IntVector acc = IntVector.zero(I);
                for (int k = 0; k < gs; k += lanes) {
                    IntVector wv = (IntVector) ByteVector.fromMemorySegment(B, values, in + j + k, LE)
                            .convertShape(VectorOperators.B2I, I, 0);
                    IntVector xv = (IntVector) ByteVector.fromArray(B, xq, j + k).convertShape(VectorOperators.B2I, I, 0);
                    acc = acc.add(wv.mul(xv));
                }
                int ival = acc.reduceLanes(VectorOperators.ADD);
                val += ((float) ival * scales.get(ScalarKernels.FLOAT, (in + j) / gs * Float.BYTES)) * xs[j / gs];
            }
            out[r] = val;
        }
    }

    static {
        // Keeps the byte species consistent with the int species (one int lane per byte).
        assert B.length() == I.length();
    }

}
