package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.List;

/** The candidate kernels timed by {@link GgufStreamSpeed}. */
final class GgufStreamVariants {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED;
    static final VectorSpecies<Byte> BS = ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(F.vectorBitSize() / 2)).check(byte.class);
    static final int CH = S.length();
    static final VectorSpecies<Byte> BF = ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(Math.max(64, L * 8))).check(byte.class);
    static final int BPARTS = BF.length() / L;

    static void add(List<GgufStreamSpeed.Variant> vs) {
        vs.add(new GgufStreamSpeed.Variant("f16old", (o, a, m) -> {
            if (m instanceof Matrix.F16 h) f16old(o, a, h, 0, m.rows()); else new VectorKernels().matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("f16buf", (o, a, m) -> {
            if (m instanceof Matrix.F16 h) f16buf(o, a, h, 0, m.rows()); else new VectorKernels().matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("f16nosp", (o, a, m) -> {
            if (m instanceof Matrix.F16 h) f16nosp(o, a, h, 0, m.rows()); else new VectorKernels().matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("q8mf", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) q8mf(o, a, q, 0, m.rows()); else new VectorKernels().matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("q6old", (o, a, m) -> {
            if (m instanceof Matrix.Q6_K q) q6old(o, a, q, 0, m.rows()); else new VectorKernels().matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("q8i2u", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) q8i2u(o, a, q, 0, m.rows()); else new VectorKernels().matmul(o, a, m, 0, m.rows());
        }));
        vs.add(new GgufStreamSpeed.Variant("q8f1", (o, a, m) -> {
            if (m instanceof Matrix.Q8_0 q) q8f1(o, a, q, 0, m.rows()); else new VectorKernels().matmul(o, a, m, 0, m.rows());
        }));
    }

    private static final java.util.Map<Activations, float[]> Q80F = new java.util.IdentityHashMap<>();

    /** The Q8_0 activations' values as floats (prepared once per Activations: the harness never changes them). */
    static float[] q80f(Activations x) {
        return Q80F.computeIfAbsent(x, a -> {
            float[] f = new float[a.size()];
            for (int i = 0; i < f.length; i++) f[i] = a.q80[i];
            return f;
        });
    }

    // ---- Q8_0 float lanes, 1 acc
    static void q8f1(float[] out, Activations x, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        float[] xq = q80f(x);
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 34) {
                int j = blk * 32;
                FloatVector s = FloatVector.zero(F);
                for (int k = 0; k < 32; k += BF.length()) {
                    ByteVector q = ByteVector.fromMemorySegment(BF, data, b + 2 + k, LE);
                    for (int p = 0; p < BPARTS; p++) {
                        FloatVector wv = (FloatVector) q.convertShape(VectorOperators.B2F, F, p);
                        s = wv.fma(FloatVector.fromArray(F, xq, j + k + p * L), s);
                    }
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk];
                acc = s.fma(FloatVector.broadcast(F, scale), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

    static final VectorSpecies<Short> SH = ShortVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(L * Short.SIZE)).check(short.class);
    static final int CHUNK = 1024;

    /** F16: a chunk of the row converted by a scalar Float.float16ToFloat loop (SuperWord: vcvtph2ps), then FMA. */
    static void f16buf(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        int n = w.cols();
        float[] xh = x.f16;
        MemorySegment data = w.data();
        float[] buf = new float[CHUNK];
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            float tail = 0;
            for (int c = 0; c < n; c += CHUNK) {
                int len = Math.min(CHUNK, n - c);
                long cb = base + 2L * c;
                for (int j = 0; j < len; j++) {
                    buf[j] = Float.float16ToFloat(data.get(Matrix.SHORT, cb + 2L * j));
                }
                int upper = len - len % (2 * L), j = 0;
                for (; j < upper; j += 2 * L) {
                    a0 = FloatVector.fromArray(F, buf, j).fma(FloatVector.fromArray(F, xh, c + j), a0);
                    a1 = FloatVector.fromArray(F, buf, j + L).fma(FloatVector.fromArray(F, xh, c + j + L), a1);
                }
                for (; j < len; j++) {
                    tail += buf[j] * xh[c + j];
                }
            }
            out[r] = a0.add(a1).reduceLanes(VectorOperators.ADD) + tail;
        }
    }

    /** F16 bit widening without the inf/NaN check (wrong for inf/NaN weights: the cost of the check). */
    static void f16nosp(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        int n = w.cols();
        float[] xh = x.f16;
        MemorySegment data = w.data();
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            int j = 0;
            for (; j < upper; j += 2 * L) {
                IntVector h0 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * j, LE).convertShape(VectorOperators.S2I, I, 0);
                IntVector h1 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * (j + L), LE).convertShape(VectorOperators.S2I, I, 0);
                FloatVector w0 = h0.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats().mul(0x1p112f);
                FloatVector w1 = h1.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats().mul(0x1p112f);
                a0 = w0.fma(FloatVector.fromArray(F, xh, j), a0);
                a1 = w1.fma(FloatVector.fromArray(F, xh, j + L), a1);
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; j < n; j++) {
                sum += Float.float16ToFloat(data.get(Matrix.SHORT, base + 2L * j)) * xh[j];
            }
            out[r] = sum;
        }
    }

    /** Q8_0 int path, two blocks per pass into two accumulators. */
    static void q8i2u(float[] out, Activations x, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            int blk = 0;
            for (; blk < (nb & ~1); blk += 2, b += 68) {
                int j = blk * 32;
                IntVector p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2, LE).convertShape(VectorOperators.B2S, S, 0))
                        .mul(ShortVector.fromArray(S, xq, j)).reinterpretAsInts();
                IntVector i0 = p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE).convertShape(VectorOperators.B2S, S, 0))
                            .mul(ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    i0 = i0.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 36, LE).convertShape(VectorOperators.B2S, S, 0))
                        .mul(ShortVector.fromArray(S, xq, j + 32)).reinterpretAsInts();
                IntVector i1 = p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 36 + k, LE).convertShape(VectorOperators.B2S, S, 0))
                            .mul(ShortVector.fromArray(S, xq, j + 32 + k)).reinterpretAsInts();
                    i1 = i1.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                acc0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
                acc1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 34)) * xd[blk + 1]), acc1);
            }
            for (; blk < nb; blk++, b += 34) {
                int j = blk * 32;
                IntVector i0 = IntVector.zero(I);
                for (int k = 0; k < 32; k += CH) {
                    IntVector p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE).convertShape(VectorOperators.B2S, S, 0))
                            .mul(ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    i0 = i0.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                acc0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
            }
            out[r] = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
        }
    }

    /** The F16 kernel before the row-level check (commit 926c3e5): every vector checked for inf/NaN. */
    static void f16old(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        int n = w.cols();
        float[] xh = x.f16;
        MemorySegment data = w.data();
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            int j = 0;
            for (; j < upper; j += 2 * L) {
                IntVector h0 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * j, LE).convertShape(VectorOperators.S2I, I, 0);
                IntVector h1 = (IntVector) ShortVector.fromMemorySegment(SH, data, base + 2L * (j + L), LE).convertShape(VectorOperators.S2I, I, 0);
                FloatVector w0 = h0.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats().mul(0x1p112f);
                FloatVector w1 = h1.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).reinterpretAsFloats().mul(0x1p112f);
                jdk.incubator.vector.VectorMask<Integer> special0 = h0.and(0x7C00).compare(VectorOperators.EQ, 0x7C00);
                jdk.incubator.vector.VectorMask<Integer> special1 = h1.and(0x7C00).compare(VectorOperators.EQ, 0x7C00);
                if (special0.or(special1).anyTrue()) {
                    w0 = ((IntVector) w0.reinterpretAsInts()).lanewise(VectorOperators.OR, 0x7F800000, special0).reinterpretAsFloats();
                    w1 = ((IntVector) w1.reinterpretAsInts()).lanewise(VectorOperators.OR, 0x7F800000, special1).reinterpretAsFloats();
                }
                a0 = w0.fma(FloatVector.fromArray(F, xh, j), a0);
                a1 = w1.fma(FloatVector.fromArray(F, xh, j + L), a1);
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; j < n; j++) {
                sum += Float.float16ToFloat(data.get(Matrix.SHORT, base + 2L * j)) * xh[j];
            }
            out[r] = sum;
        }
    }

    /** Q8_0 int path with the pair fold as one multiply by 0x10001 and a shift (p + (p << 16) = p * 0x10001 mod 2^32). */
    static void q8mf(float[] out, Activations x, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 34) {
                int j = blk * 32;
                IntVector p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2, LE).convertShape(VectorOperators.B2S, S, 0))
                        .mul(ShortVector.fromArray(S, xq, j)).reinterpretAsInts();
                IntVector isum = p.mul(0x10001).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    p = ((ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE).convertShape(VectorOperators.B2S, S, 0))
                            .mul(ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    isum = isum.add(p.mul(0x10001).lanewise(VectorOperators.ASHR, 16));
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

    static final jdk.incubator.vector.VectorMask<Integer> UPPER = jdk.incubator.vector.VectorMask.fromLong(I, CH == 32 ? 0xFF00L : 0L);

    /** GgmlMatmul.q6_K before the scale vectors were permuted from one load (commit b8dd683). */
    static void q6old(float[] out, Activations x, Matrix.Q6_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q6_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 210) {
                IntVector isum = IntVector.zero(I);
                for (int half = 0; half < 2; half++) {
                    long ql = b + 64L * half, qh = b + 128 + 32L * half, sc = b + 192 + 8L * half;
                    int xo = blk * 256 + 128 * half;
                    for (int k = 0; k < 32; k += CH) {
                        ShortVector a = (ShortVector) ByteVector.fromMemorySegment(BS, data, ql + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector c = (ShortVector) ByteVector.fromMemorySegment(BS, data, ql + 32 + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector h = (ShortVector) ByteVector.fromMemorySegment(BS, data, qh + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        ShortVector q1 = a.and((short) 0x0F).or(h.and((short) 3).lanewise(VectorOperators.LSHL, 4)).sub((short) 32);
                        ShortVector q2 = c.and((short) 0x0F).or(h.and((short) 0x0C).lanewise(VectorOperators.LSHL, 2)).sub((short) 32);
                        ShortVector q3 = a.lanewise(VectorOperators.LSHR, 4).or(h.and((short) 0x30)).sub((short) 32);
                        ShortVector q4 = c.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 2).and((short) 0x30)).sub((short) 32);
                        IntVector i1 = q1.mul(ShortVector.fromArray(S, xq, xo + k)).reinterpretAsInts();
                        IntVector i2 = q2.mul(ShortVector.fromArray(S, xq, xo + 32 + k)).reinterpretAsInts();
                        IntVector i3 = q3.mul(ShortVector.fromArray(S, xq, xo + 64 + k)).reinterpretAsInts();
                        IntVector i4 = q4.mul(ShortVector.fromArray(S, xq, xo + 96 + k)).reinterpretAsInts();
                        // As ints, lane t holds l = k + 2t and k + 2t + 1, in sub-block (k + 2t) / 16: one
                        // sub-block per chunk below 512 bits; at 512 (32 l) the upper 8 lanes are the next one.
                        long s = sc + k / 16;
                        IntVector c1 = IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s)), c2 = IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 2));
                        IntVector c3 = IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 4)), c4 = IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 6));
                        if (CH == 32) {
                            c1 = c1.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 1), GgufStreamVariants.UPPER);
                            c2 = c2.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 3), GgufStreamVariants.UPPER);
                            c3 = c3.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 5), GgufStreamVariants.UPPER);
                            c4 = c4.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 7), GgufStreamVariants.UPPER);
                        }
                        isum = isum.add(i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c1))
                                .add(i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c2))
                                .add(i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c3))
                                .add(i4.add(i4.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c4));
                    }
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b + 208)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

}
