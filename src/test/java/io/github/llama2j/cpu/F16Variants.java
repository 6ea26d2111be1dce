package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;

/** Variants of {@link GgmlMatmul#f16} for {@link GgufStreamSpeed} (benchmarks, not the engine's). */
final class F16Variants {
    private static final VectorSpecies<Float> F = GgmlMatmul.F;
    private static final int L = GgmlMatmul.L;

    /**
     * The halves in the platform's order (little-endian here), the layout with which C2 was seen to vectorize the
     * conversion loop (vcvtph2ps); with Matrix.SHORT's explicit order a loop alone once ran at 0.3 Gelem/s (later
     * runs: as fast as this one), not pursued.
     */
    private static final java.lang.foreign.ValueLayout.OfShort HALF = java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

    private F16Variants() {
    }

    /** Blocks of b halves of a row converted by a scalar loop (C2: vcvtph2ps) into a float scratch, then the FMAs. */
    static void cvt(float[] out, Activations x, Matrix.F16 w, int r0, int r1, int b) {
        int n = w.cols();
        float[] xh = x.f16;
        MemorySegment data = w.data();
        float[] wf = new float[b];
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            for (int j0 = 0; j0 < upper; j0 += b) {
                int len = Math.min(b, upper - j0);
                long off = base + 2L * j0;
                for (int i = 0; i < len; i++) {
                    wf[i] = Float.float16ToFloat(data.get(HALF, off + 2L * i));
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

    /** As {@link #cvt}, the halves first copied to a short[] (MemorySegment.copy), converted from the array. */
    static void cvtArr(float[] out, Activations x, Matrix.F16 w, int r0, int r1, int b) {
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
                MemorySegment.copy(data, HALF, base + 2L * j0, hs, 0, len);
                for (int i = 0; i < len; i++) {
                    wf[i] = Float.float16ToFloat(hs[i]);
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

    /**
     * {@link GgmlMatmul#f16} before 2026-12-03: each weight vector multiplied by 2^112, the activations unscaled
     * (rows with inf/NaN halves are not handled: the benchmark's files have none).
     */
    static void previous(float[] out, float[] xh, Matrix.F16 w, int r0, int r1) {
        int n = w.cols();
        MemorySegment data = w.data();
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            ShortVector top = ShortVector.zero(S);
            int j = 0;
            for (; j < upper; j += 2 * L) {
                top = top.max(ShortVector.fromMemorySegment(S, data, base + 2L * j, LE).and((short) 0x7FFF));
                IntVector h0 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * j, LE).convertShape(VectorOperators.S2I, I, 0);
                IntVector h1 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * (j + L), LE).convertShape(VectorOperators.S2I, I, 0);
                FloatVector w0 = h0.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats().mul(0x1p112f);
                FloatVector w1 = h1.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats().mul(0x1p112f);
                a0 = w0.fma(FloatVector.fromArray(F, xh, j), a0);
                a1 = w1.fma(FloatVector.fromArray(F, xh, j + L), a1);
            }
            if (top.reduceLanes(VectorOperators.MAX) >= 0x7C00) {
                throw new IllegalStateException("inf/NaN half: not in the benchmark variant");
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; j < n; j++) {
                sum += Float.float16ToFloat(data.get(Matrix.SHORT, base + 2L * j)) * xh[j];
            }
            out[r] = sum;
        }
    }

    /**
     * {@link GgmlMatmul#f16} (activations scaled by 2^112) without the per-row inf/NaN check: what a per-matrix
     * check made once at load time would leave (wrong on inf/NaN halves; a measurement only).
     */
    static void noCheck(float[] out, float[] xh, float[] xs, Matrix.F16 w, int r0, int r1) {
        int n = w.cols();
        MemorySegment data = w.data();
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            int j = 0;
            for (; j < upper; j += 2 * L) {
                IntVector h0 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * j, LE).convertShape(VectorOperators.S2I, I, 0);
                IntVector h1 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * (j + L), LE).convertShape(VectorOperators.S2I, I, 0);
                FloatVector w0 = h0.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats();
                FloatVector w1 = h1.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats();
                a0 = w0.fma(FloatVector.fromArray(F, xs, j), a0);
                a1 = w1.fma(FloatVector.fromArray(F, xs, j + L), a1);
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; j < n; j++) {
                sum += Float.float16ToFloat(data.get(Matrix.SHORT, base + 2L * j)) * xh[j];
            }
            out[r] = sum;
        }
    }

    private static final java.nio.ByteOrder LE = java.nio.ByteOrder.LITTLE_ENDIAN;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> SH = ShortVector.SPECIES_PREFERRED.withShape(jdk.incubator.vector.VectorShape.forBitSize(L * Short.SIZE)).check(short.class);

}
