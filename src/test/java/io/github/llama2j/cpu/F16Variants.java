package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A variant of {@link GgmlMatmul#f16} for {@link GgufStreamSpeed} (a benchmark, not the engine's): the weights
 * converted by the hardware's half-to-float instruction ({@code vcvtph2ps}, from C2's vectorized loop of
 * {@code Float.float16ToFloat}) instead of bit operations. Measured slower at 512 and 256 bits
 * (docs/measurements/2026-12-03-f16-convert.md); the old kernel's copy and the variant without the inf/NaN check
 * measured there are in the harness of commit 58531cd.
 */
final class F16Variants {
    private static final VectorSpecies<Float> F = GgmlMatmul.F;
    private static final int L = GgmlMatmul.L;
    /** The halves in the platform's order (little-endian here), the layout with which C2 was seen to vectorize the loop. */
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    private F16Variants() {
    }

    /**
     * Blocks of b halves of a row converted by a scalar loop (C2: vcvtph2ps) into a float scratch, read from the
     * mapping or (copy) first copied to a short[] with MemorySegment.copy; then the kernel's two-accumulator FMA loop
     * over the scratch: the same order, so the same bits (inf/NaN halves convert to inf/NaN directly).
     */
    static void cvt(float[] out, Activations x, Matrix.F16 w, int r0, int r1, int b, boolean copy) {
        int n = w.cols();
        float[] xh = x.f16;
        MemorySegment data = w.data();
        float[] wf = new float[b];
        short[] hs = new short[b];
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            for (int j0 = 0; j0 < upper; j0 += b) {
                int len = Math.min(b, upper - j0);
                long off = base + 2L * j0;
                if (copy) {
                    MemorySegment.copy(data, HALF, off, hs, 0, len);
                    for (int i = 0; i < len; i++) {
                        wf[i] = Float.float16ToFloat(hs[i]);
                    }
                } else {
                    for (int i = 0; i < len; i++) {
                        wf[i] = Float.float16ToFloat(data.get(HALF, off + 2L * i));
                    }
                }
                for (int i = 0; i < len; i += 2 * L) {
                    a0 = FloatVector.fromArray(F, wf, i).fma(FloatVector.fromArray(F, xh, j0 + i), a0);
                    a1 = FloatVector.fromArray(F, wf, i + L).fma(FloatVector.fromArray(F, xh, j0 + i + L), a1);
                }
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (int j = upper; j < n; j++) {
                sum += Float.float16ToFloat(data.get(Matrix.SHORT, base + 2L * j)) * xh[j];
            }
            out[r] = sum;
        }
    }
}
