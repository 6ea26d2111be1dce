package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/** Q8_0 candidate kernels (repacked layouts) timed by {@link GgufStreamSpeed}. */
final class GgufQ8Variants {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED;
    static final VectorSpecies<Byte> BS = ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(F.vectorBitSize() / 2)).check(byte.class);
    static final int CH = S.length();
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    /** Row-major repack: quants rows x n bytes (64-aligned), scales as floats rows x nb. */
    record R1(MemorySegment qs, float[] ds, int rows, int cols) {
    }

    /** 4 rows interleaved per block: [group][block][row 0..3][32 bytes]; scales [group][block][row]. */
    record R4(MemorySegment qs, float[] ds, int rows, int cols) {
    }

    private static final Map<Matrix, R1> R1S = new IdentityHashMap<>();
    private static final Map<Matrix, R4> R4S = new IdentityHashMap<>();
    private static final Map<Matrix, R4> R8S = new IdentityHashMap<>();

    /** 8 rows interleaved per block (same record, groups of 8). */
    static R4 r8(Matrix.Q8_0 w) {
        return R8S.computeIfAbsent(w, m -> {
            int rows = w.rows(), n = w.cols(), nb = n / 32;
            if (rows % 8 != 0) throw new IllegalArgumentException("rows % 8");
            MemorySegment qs = Arena.global().allocate((long) rows * n, 64);
            float[] ds = new float[rows * nb];
            MemorySegment d = w.data();
            for (int r = 0; r < rows; r++) {
                int g = r / 8, i = r % 8;
                for (int blk = 0; blk < nb; blk++) {
                    long b = (long) r * nb * 34 + blk * 34L;
                    int at = (g * nb + blk) * 8 + i;
                    ds[at] = Float.float16ToFloat(d.get(SHORT, b));
                    MemorySegment.copy(d, b + 2, qs, (long) at * 32, 32);
                }
            }
            return new R4(qs, ds, rows, n);
        });
    }

    static R1 r1(Matrix.Q8_0 w) {
        return R1S.computeIfAbsent(w, m -> {
            int rows = w.rows(), n = w.cols(), nb = n / 32;
            MemorySegment qs = Arena.global().allocate((long) rows * n, 64);
            float[] ds = new float[rows * nb];
            MemorySegment d = w.data();
            for (int r = 0; r < rows; r++) {
                for (int blk = 0; blk < nb; blk++) {
                    long b = (long) r * nb * 34 + blk * 34L;
                    ds[r * nb + blk] = Float.float16ToFloat(d.get(SHORT, b));
                    MemorySegment.copy(d, b + 2, qs, (long) r * n + blk * 32L, 32);
                }
            }
            return new R1(qs, ds, rows, n);
        });
    }

    static R4 r4(Matrix.Q8_0 w) {
        return R4S.computeIfAbsent(w, m -> {
            int rows = w.rows(), n = w.cols(), nb = n / 32;
            if (rows % 4 != 0) throw new IllegalArgumentException("rows % 4");
            MemorySegment qs = Arena.global().allocate((long) rows * n, 64);
            float[] ds = new float[rows * nb];
            MemorySegment d = w.data();
            for (int r = 0; r < rows; r++) {
                int g = r / 4, i = r % 4;
                for (int blk = 0; blk < nb; blk++) {
                    long b = (long) r * nb * 34 + blk * 34L;
                    int at = (g * nb + blk) * 4 + i;
                    ds[at] = Float.float16ToFloat(d.get(SHORT, b));
                    MemorySegment.copy(d, b + 2, qs, (long) at * 32, 32);
                }
            }
            return new R4(qs, ds, rows, n);
        });
    }

    private static final Map<Matrix, PackedQ8_0> PACKED = new IdentityHashMap<>();

    static void add(List<GgufStreamSpeed.Variant> vs) {
        VectorKernels vk = new VectorKernels();
        vs.add(new GgufStreamSpeed.Variant("packed", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) vk.matmulPackedQ8_0(o, a, PACKED.get(q), 0, m.rows()); else vk.matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("rp1", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) rp1(o, a, r1(q), 0, m.rows()); else vk.matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("rp1s", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) rp1s(o, a, r1(q), 0, m.rows()); else vk.matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("rp8", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) rp8(o, a, r8(q), 0, m.rows()); else vk.matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("rp4", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) rp4(o, a, r4(q), 0, m.rows()); else vk.matmul(o, a, m, 0, m.rows());
        }));
    }

    /** Prepared in the harness before timing (the repack is load time). */
    static void prepare(List<Matrix> ms) {
        for (Matrix m : ms) {
            if (m instanceof Matrix.Q8_0 q) {
                try (Parallel pool = new Parallel(1)) {
                    PACKED.computeIfAbsent(q, k -> PackedQ8_0.of(q, Arena.global(), pool));
                }
                if (System.getProperty("variants", "").contains("rp1")) r1(q);
                r4(q);
                if (System.getProperty("variants", "").contains("rp8")) r8(q);
            }
        }
    }

    static void rp1(float[] out, Activations x, R1 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales, ds = w.ds();
        MemorySegment qs = w.qs();
        for (int r = r0; r < r1; r++) {
            long b = (long) r * n;
            int sb = r * nb;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 32) {
                int j = blk * 32;
                IntVector p = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b, LE).convertShape(VectorOperators.B2S, S, 0))
                        .mul(ShortVector.fromArray(S, xq, j)).reinterpretAsInts();
                IntVector isum = p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    p = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + k, LE).convertShape(VectorOperators.B2S, S, 0))
                            .mul(ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    isum = isum.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + blk] * xd[blk]), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

    private static final ThreadLocal<float[]> TMP = ThreadLocal.withInitial(() -> new float[1 << 12]);

    static void rp1s(float[] out, Activations x, R1 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales, ds = w.ds();
        float[] s = TMP.get();
        MemorySegment qs = w.qs();
        int nbv = nb - nb % L;
        for (int r = r0; r < r1; r++) {
            long b = (long) r * n;
            int sb = r * nb;
            int t = 0;
            for (; t < nbv; t += L) {
                FloatVector.fromArray(F, ds, sb + t).mul(FloatVector.fromArray(F, xd, t)).intoArray(s, t);
            }
            for (; t < nb; t++) {
                s[t] = ds[sb + t] * xd[t];
            }
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 32) {
                int j = blk * 32;
                IntVector p = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b, LE).convertShape(VectorOperators.B2S, S, 0))
                        .mul(ShortVector.fromArray(S, xq, j)).reinterpretAsInts();
                IntVector isum = p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    p = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + k, LE).convertShape(VectorOperators.B2S, S, 0))
                            .mul(ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    isum = isum.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, s[blk]), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

    static void rp4(float[] out, Activations x, R4 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales, ds = w.ds();
        MemorySegment qs = w.qs();
        for (int g = r0 / 4; g < r1 / 4; g++) {
            long b = (long) g * 4 * n;
            int sb = g * nb * 4;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int blk = 0; blk < nb; blk++, b += 128, sb += 4) {
                int j = blk * 32;
                float dx = xd[blk];
                ShortVector xv = ShortVector.fromArray(S, xq, j);
                IntVector i0 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i1 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i2 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i3 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                i0 = i0.add(i0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i1 = i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i2 = i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i3 = i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    xv = ShortVector.fromArray(S, xq, j + k);
                    IntVector p0 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p1 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p2 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p3 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    i0 = i0.add(p0.add(p0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i1 = i1.add(p1.add(p1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i2 = i2.add(p2.add(p2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i3 = i3.add(p3.add(p3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                a0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb] * dx), a0);
                a1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 1] * dx), a1);
                a2 = ((FloatVector) i2.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 2] * dx), a2);
                a3 = ((FloatVector) i3.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 3] * dx), a3);
            }
            out[4 * g] = a0.reduceLanes(VectorOperators.ADD);
            out[4 * g + 1] = a1.reduceLanes(VectorOperators.ADD);
            out[4 * g + 2] = a2.reduceLanes(VectorOperators.ADD);
            out[4 * g + 3] = a3.reduceLanes(VectorOperators.ADD);
        }
    }

    static void rp8(float[] out, Activations x, R4 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales, ds = w.ds();
        MemorySegment qs = w.qs();
        for (int g = r0 / 8; g < r1 / 8; g++) {
            long b = (long) g * 8 * n;
            int sb = g * nb * 8;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int blk = 0; blk < nb; blk++, b += 256, sb += 8) {
                int j = blk * 32;
                float dx = xd[blk];
                ShortVector xv = ShortVector.fromArray(S, xq, j);
                IntVector i0 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i1 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i2 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i3 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i4 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 128, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i5 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 160, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i6 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 192, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                IntVector i7 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 224, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                i0 = i0.add(i0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i1 = i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i2 = i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i3 = i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i4 = i4.add(i4.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i5 = i5.add(i5.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i6 = i6.add(i6.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                i7 = i7.add(i7.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    xv = ShortVector.fromArray(S, xq, j + k);
                    IntVector p0 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p1 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 32 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p2 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 64 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p3 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 96 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p4 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 128 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p5 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 160 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p6 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 192 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    IntVector p7 = ((ShortVector) ByteVector.fromMemorySegment(BS, qs, b + 224 + k, LE).convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    i0 = i0.add(p0.add(p0.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i1 = i1.add(p1.add(p1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i2 = i2.add(p2.add(p2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i3 = i3.add(p3.add(p3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i4 = i4.add(p4.add(p4.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i5 = i5.add(p5.add(p5.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i6 = i6.add(p6.add(p6.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                    i7 = i7.add(p7.add(p7.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                a0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb] * dx), a0);
                a1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 1] * dx), a1);
                a2 = ((FloatVector) i2.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 2] * dx), a2);
                a3 = ((FloatVector) i3.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 3] * dx), a3);
                a4 = ((FloatVector) i4.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 4] * dx), a4);
                a5 = ((FloatVector) i5.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 5] * dx), a5);
                a6 = ((FloatVector) i6.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 6] * dx), a6);
                a7 = ((FloatVector) i7.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, ds[sb + 7] * dx), a7);
            }
            out[8 * g + 0] = a0.reduceLanes(VectorOperators.ADD);
            out[8 * g + 1] = a1.reduceLanes(VectorOperators.ADD);
            out[8 * g + 2] = a2.reduceLanes(VectorOperators.ADD);
            out[8 * g + 3] = a3.reduceLanes(VectorOperators.ADD);
            out[8 * g + 4] = a4.reduceLanes(VectorOperators.ADD);
            out[8 * g + 5] = a5.reduceLanes(VectorOperators.ADD);
            out[8 * g + 6] = a6.reduceLanes(VectorOperators.ADD);
            out[8 * g + 7] = a7.reduceLanes(VectorOperators.ADD);
        }
    }
}
