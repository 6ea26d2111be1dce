package io.github.llama2j.cpu;

import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Benchmark (not a test): the GGML kernels' variants measured for docs/measurements/2026-12-02-gguf-kernels.md,
 * timed in one sitting, in GB/s of weights per second of the thread's own CPU time. "before" is the
 * previous {@link GgmlMatmul} ({@link GgmlMatmulBefore}), "current" the one the engine runs; the others are
 * the alternatives tried (float lanes, two accumulators, two rows per pass, ...), kept so that the
 * comparison can be repeated on a quiet machine. Each round runs every variant for SECONDS of CPU time
 * in a rotated order; the ratio to "before" is taken per round, so that a change of load between
 * rounds cancels out. Run with -Xbatch (the warm-up waits for C2).
 * <pre>
 * java --add-modules jdk.incubator.vector -Xbatch [-XX:UseAVX=2 -XX:MaxVectorSize=32] \
 *      -cp target/test-classes:target/classes io.github.llama2j.cpu.GgmlVariantSpeed ROWS COLS TYPE [SECONDS ROUNDS]
 *   e.g. 512 1024 Q8_0 0.15 11   (in cache; 65536 2048 for a matrix from DRAM)
 *   -Dvariants=current,float1acc  runs only these (and "before")
 * </pre>
 */
public final class GgmlVariantSpeed {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final VectorSpecies<Byte> BF = ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(Math.max(64, L * 8))).check(byte.class);
    static final int BPARTS = BF.length() / L;
    static final java.lang.foreign.ValueLayout.OfInt INT = java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);

    interface K {
        void run(float[] out, Activations x, float[] xf, Matrix m, int r0, int r1);
    }

    // ---- Q8_0 float lanes, 1 acc
    static void q8f1(float[] out, Activations x, float[] xq, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
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

    // ---- Q8_0 float lanes, 2 acc (blocks even/odd)
    static void q8f2(float[] out, Activations x, float[] xq, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            int blk = 0;
            for (; blk + 1 < nb; blk += 2, b += 68) {
                int j = blk * 32;
                FloatVector s0 = FloatVector.zero(F), s1 = FloatVector.zero(F);
                for (int k = 0; k < 32; k += BF.length()) {
                    ByteVector q0 = ByteVector.fromMemorySegment(BF, data, b + 2 + k, LE);
                    ByteVector q1 = ByteVector.fromMemorySegment(BF, data, b + 36 + k, LE);
                    for (int p = 0; p < BPARTS; p++) {
                        s0 = ((FloatVector) q0.convertShape(VectorOperators.B2F, F, p)).fma(FloatVector.fromArray(F, xq, j + k + p * L), s0);
                        s1 = ((FloatVector) q1.convertShape(VectorOperators.B2F, F, p)).fma(FloatVector.fromArray(F, xq, j + 32 + k + p * L), s1);
                    }
                }
                acc0 = s0.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
                acc1 = s1.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 34)) * xd[blk + 1]), acc1);
            }
            for (; blk < nb; blk++, b += 34) {
                int j = blk * 32;
                FloatVector s = FloatVector.zero(F);
                for (int k = 0; k < 32; k += BF.length()) {
                    ByteVector q = ByteVector.fromMemorySegment(BF, data, b + 2 + k, LE);
                    for (int p = 0; p < BPARTS; p++) {
                        s = ((FloatVector) q.convertShape(VectorOperators.B2F, F, p)).fma(FloatVector.fromArray(F, xq, j + k + p * L), s);
                    }
                }
                acc0 = s.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
            }
            out[r] = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
        }
    }

    // ---- Q8_0 float lanes, two rows per pass, 1 acc each
    static void q8f2r(float[] out, Activations x, float[] xq, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        int r = r0;
        for (; r + 1 < r1; r += 2) {
            long b = r * rowBytes, c = b + rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 34, c += 34) {
                int j = blk * 32;
                FloatVector s0 = FloatVector.zero(F), s1 = FloatVector.zero(F);
                for (int k = 0; k < 32; k += BF.length()) {
                    ByteVector q0 = ByteVector.fromMemorySegment(BF, data, b + 2 + k, LE);
                    ByteVector q1 = ByteVector.fromMemorySegment(BF, data, c + 2 + k, LE);
                    for (int p = 0; p < BPARTS; p++) {
                        FloatVector xv = FloatVector.fromArray(F, xq, j + k + p * L);
                        s0 = ((FloatVector) q0.convertShape(VectorOperators.B2F, F, p)).fma(xv, s0);
                        s1 = ((FloatVector) q1.convertShape(VectorOperators.B2F, F, p)).fma(xv, s1);
                    }
                }
                float xs = xd[blk];
                acc0 = s0.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xs), acc0);
                acc1 = s1.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, c)) * xs), acc1);
            }
            out[r] = acc0.reduceLanes(VectorOperators.ADD);
            out[r + 1] = acc1.reduceLanes(VectorOperators.ADD);
        }
        if (r < r1) {
            q8f1(out, x, xq, w, r, r1);
        }
    }


    /** int path (current), one block's dot as an int vector */
    static void q8i4(float[] out, Activations x, float[] xf, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32, nb4 = nb & ~3;
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long row = r * rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F), acc2 = FloatVector.zero(F), acc3 = FloatVector.zero(F);
            for (int blk = 0; blk < nb4; blk += 4) {
                long b = row + 34L * blk;
                int j = blk * 32;
                acc0 = q8iBlock(data, b, xq, j).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
                acc1 = q8iBlock(data, b + 34, xq, j + 32).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 34)) * xd[blk + 1]), acc1);
                acc2 = q8iBlock(data, b + 68, xq, j + 64).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 68)) * xd[blk + 2]), acc2);
                acc3 = q8iBlock(data, b + 102, xq, j + 96).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 102)) * xd[blk + 3]), acc3);
            }
            for (int blk = nb4; blk < nb; blk++) {
                long b = row + 34L * blk;
                acc0 = q8iBlock(data, b, xq, blk * 32).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
            }
            out[r] = acc0.add(acc1).add(acc2.add(acc3)).reduceLanes(VectorOperators.ADD);
        }
    }

    static final VectorSpecies<Short> S = jdk.incubator.vector.ShortVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = jdk.incubator.vector.IntVector.SPECIES_PREFERRED;
    static final VectorSpecies<Byte> BS = ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(F.vectorBitSize() / 2)).check(byte.class);
    static final int CH = S.length();

    static FloatVector q8iBlock(MemorySegment data, long b, short[] xq, int j) {
        jdk.incubator.vector.IntVector isum = jdk.incubator.vector.IntVector.zero(I);
        for (int k = 0; k < 32; k += CH) {
            jdk.incubator.vector.ShortVector wv = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE)
                    .convertShape(VectorOperators.B2S, S, 0);
            jdk.incubator.vector.IntVector p = wv.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
            isum = isum.add(p.lanewise(VectorOperators.ASHR, 16)).add(p.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
        }
        return (FloatVector) isum.convert(VectorOperators.I2F, 0);
    }

    static FloatVector q8fBlock(MemorySegment data, long b, float[] xq, int j) {
        FloatVector s = FloatVector.zero(F);
        for (int k = 0; k < 32; k += BF.length()) {
            ByteVector q = ByteVector.fromMemorySegment(BF, data, b + 2 + k, LE);
            for (int p = 0; p < BPARTS; p++) {
                s = ((FloatVector) q.convertShape(VectorOperators.B2F, F, p)).fma(FloatVector.fromArray(F, xq, j + k + p * L), s);
            }
        }
        return s;
    }

    /** float path, 4 accumulators */
    static void q8f4(float[] out, Activations x, float[] xq, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32, nb4 = nb & ~3;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long row = r * rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F), acc2 = FloatVector.zero(F), acc3 = FloatVector.zero(F);
            for (int blk = 0; blk < nb4; blk += 4) {
                long b = row + 34L * blk;
                int j = blk * 32;
                acc0 = q8fBlock(data, b, xq, j).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
                acc1 = q8fBlock(data, b + 34, xq, j + 32).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 34)) * xd[blk + 1]), acc1);
                acc2 = q8fBlock(data, b + 68, xq, j + 64).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 68)) * xd[blk + 2]), acc2);
                acc3 = q8fBlock(data, b + 102, xq, j + 96).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 102)) * xd[blk + 3]), acc3);
            }
            for (int blk = nb4; blk < nb; blk++) {
                long b = row + 34L * blk;
                acc0 = q8fBlock(data, b, xq, blk * 32).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
            }
            out[r] = acc0.add(acc1).add(acc2.add(acc3)).reduceLanes(VectorOperators.ADD);
        }
    }

    /** float path, 2 accumulators, unrolled by 2 */
    static void q8f2b(float[] out, Activations x, float[] xq, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32, nb2 = nb & ~1;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long row = r * rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            for (int blk = 0; blk < nb2; blk += 2) {
                long b = row + 34L * blk;
                int j = blk * 32;
                acc0 = q8fBlock(data, b, xq, j).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
                acc1 = q8fBlock(data, b + 34, xq, j + 32).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 34)) * xd[blk + 1]), acc1);
            }
            for (int blk = nb2; blk < nb; blk++) {
                long b = row + 34L * blk;
                acc0 = q8fBlock(data, b, xq, blk * 32).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
            }
            out[r] = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
        }
    }

    /** float path, mul then add (no fma chain): acc += s * scale */
    static void q8fma(float[] out, Activations x, float[] xq, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 34) {
                acc = acc.add(q8fBlock(data, b, xq, blk * 32).mul(Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]));
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }


    /** int path, 2 accumulators, 2 blocks per pass */
    static void q8i2u(float[] out, Activations x, float[] xf, Matrix.Q8_0 w, int r0, int r1) {
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
                jdk.incubator.vector.IntVector i0 = jdk.incubator.vector.IntVector.zero(I);
                for (int k = 0; k < 32; k += CH) {
                    jdk.incubator.vector.IntVector p = ((jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE)
                            .convertShape(VectorOperators.B2S, S, 0)).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    i0 = i0.add(p.lanewise(VectorOperators.ASHR, 16)).add(p.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
                }
                jdk.incubator.vector.IntVector i1 = jdk.incubator.vector.IntVector.zero(I);
                for (int k = 0; k < 32; k += CH) {
                    jdk.incubator.vector.IntVector p = ((jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, b + 34 + 2 + k, LE)
                            .convertShape(VectorOperators.B2S, S, 0)).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, j + 32 + k)).reinterpretAsInts();
                    i1 = i1.add(p.lanewise(VectorOperators.ASHR, 16)).add(p.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
                }
                acc0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
                acc1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 34)) * xd[blk + 1]), acc1);
            }
            for (; blk < nb; blk++, b += 34) {
                int j = blk * 32;
                jdk.incubator.vector.IntVector i0 = jdk.incubator.vector.IntVector.zero(I);
                for (int k = 0; k < 32; k += CH) {
                    jdk.incubator.vector.IntVector p = ((jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE)
                            .convertShape(VectorOperators.B2S, S, 0)).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    i0 = i0.add(p.lanewise(VectorOperators.ASHR, 16)).add(p.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
                }
                acc0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
            }
            out[r] = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
        }
    }

    /** float path, 2 accumulators, 2 blocks per pass */
    static void q8f2u(float[] out, Activations x, float[] xf, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            int blk = 0;
            for (; blk < (nb & ~1); blk += 2, b += 68) {
                int j = blk * 32;
                FloatVector s0 = FloatVector.zero(F);
                for (int k = 0; k < 32; k += BF.length()) {
                    ByteVector q = ByteVector.fromMemorySegment(BF, data, b + 2 + k, LE);
                    for (int p = 0; p < BPARTS; p++) {
                        s0 = ((FloatVector) q.convertShape(VectorOperators.B2F, F, p)).fma(FloatVector.fromArray(F, xf, j + k + p * L), s0);
                    }
                }
                FloatVector s1 = FloatVector.zero(F);
                for (int k = 0; k < 32; k += BF.length()) {
                    ByteVector q = ByteVector.fromMemorySegment(BF, data, b + 34 + 2 + k, LE);
                    for (int p = 0; p < BPARTS; p++) {
                        s1 = ((FloatVector) q.convertShape(VectorOperators.B2F, F, p)).fma(FloatVector.fromArray(F, xf, j + 32 + k + p * L), s1);
                    }
                }
                acc0 = s0.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
                acc1 = s1.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b + 34)) * xd[blk + 1]), acc1);
            }
            for (; blk < nb; blk++, b += 34) {
                int j = blk * 32;
                FloatVector s0 = FloatVector.zero(F);
                for (int k = 0; k < 32; k += BF.length()) {
                    ByteVector q = ByteVector.fromMemorySegment(BF, data, b + 2 + k, LE);
                    for (int p = 0; p < BPARTS; p++) {
                        s0 = ((FloatVector) q.convertShape(VectorOperators.B2F, F, p)).fma(FloatVector.fromArray(F, xf, j + k + p * L), s0);
                    }
                }
                acc0 = s0.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk]), acc0);
            }
            out[r] = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
        }
    }

    /** int path, two rows per pass */
    static void q8i2r(float[] out, Activations x, float[] xf, Matrix.Q8_0 w, int r0, int r1) {
        int n = w.cols(), nb = n / 32;
        short[] xq = x.q80;
        float[] xd = x.q80Scales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q8_0.rowBytes(n);
        int r = r0;
        for (; r + 1 < r1; r += 2) {
            long b = r * rowBytes, c = b + rowBytes;
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 34, c += 34) {
                int j = blk * 32;
                jdk.incubator.vector.IntVector i0 = jdk.incubator.vector.IntVector.zero(I), i1 = i0;
                for (int k = 0; k < 32; k += CH) {
                    jdk.incubator.vector.ShortVector xv = jdk.incubator.vector.ShortVector.fromArray(S, xq, j + k);
                    jdk.incubator.vector.IntVector p = ((jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE)
                            .convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    jdk.incubator.vector.IntVector p1 = ((jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, c + 2 + k, LE)
                            .convertShape(VectorOperators.B2S, S, 0)).mul(xv).reinterpretAsInts();
                    i0 = i0.add(p.lanewise(VectorOperators.ASHR, 16)).add(p.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
                    i1 = i1.add(p1.lanewise(VectorOperators.ASHR, 16)).add(p1.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
                }
                float xs = xd[blk];
                acc0 = ((FloatVector) i0.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xs), acc0);
                acc1 = ((FloatVector) i1.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, c)) * xs), acc1);
            }
            out[r] = acc0.reduceLanes(VectorOperators.ADD);
            out[r + 1] = acc1.reduceLanes(VectorOperators.ADD);
        }
        if (r < r1) {
            GgmlMatmul.q8_0(out, x, w, r, r1);
        }
    }


    /** Q4_K in float lanes: nibbles split in bytes, B2F, FMA with the activations as floats; exact per lane. */
    static void q4kf(float[] out, Activations x, float[] xf, Matrix.Q4_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q4_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            float mins = 0.0f;
            for (int blk = 0; blk < nb; blk++, b += 144) {
                int j = blk * 256;
                int u0 = data.get(INT, b + 4), u1 = data.get(INT, b + 8), u2 = data.get(INT, b + 12);
                int sc03 = u0 & 0x3f3f3f3f;
                int sc47 = (u2 & 0x0f0f0f0f) | (((u0 >>> 6) & 0x03030303) << 4);
                int m03 = u1 & 0x3f3f3f3f;
                int m47 = ((u2 >>> 4) & 0x0f0f0f0f) | (((u1 >>> 6) & 0x03030303) << 4);
                FloatVector fsum = FloatVector.zero(F);
                for (int g = 0; g < 4; g++) {
                    long qs = b + 16 + 32L * g;
                    int xo = j + 64 * g;
                    FloatVector slo = FloatVector.zero(F), shi = FloatVector.zero(F);
                    for (int k = 0; k < 32; k += BF.length()) {
                        ByteVector q = ByteVector.fromMemorySegment(BF, data, qs + k, LE);
                        for (int p = 0; p < BPARTS; p++) {
                            jdk.incubator.vector.IntVector qi = (jdk.incubator.vector.IntVector) q.convertShape(VectorOperators.B2I, I, p);
                            slo = ((FloatVector) qi.and(0x0F).convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, xf, xo + k + p * L), slo);
                            shi = ((FloatVector) qi.lanewise(VectorOperators.ASHR, 4).and(0x0F).convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, xf, xo + 32 + k + p * L), shi);
                        }
                    }
                    int scWord = g < 2 ? sc03 : sc47, shift = 16 * (g & 1);
                    fsum = slo.fma(FloatVector.broadcast(F, (float) ((scWord >>> shift) & 0xFF)), fsum);
                    fsum = shi.fma(FloatVector.broadcast(F, (float) ((scWord >>> (shift + 8)) & 0xFF)), fsum);
                }
                int s = blk * 8;
                int summ = (m03 & 0xFF) * xs32[s] + ((m03 >>> 8) & 0xFF) * xs32[s + 1] + ((m03 >>> 16) & 0xFF) * xs32[s + 2]
                        + (m03 >>> 24) * xs32[s + 3] + (m47 & 0xFF) * xs32[s + 4] + ((m47 >>> 8) & 0xFF) * xs32[s + 5]
                        + ((m47 >>> 16) & 0xFF) * xs32[s + 6] + (m47 >>> 24) * xs32[s + 7];
                float xdb = xd[blk];
                acc = fsum.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xdb), acc);
                mins += Float.float16ToFloat(data.get(Matrix.SHORT, b + 2)) * xdb * summ;
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD) - mins;
        }
    }

    /** Q6_K in float lanes: 6-bit values rebuilt in bytes, B2F, times the sub-block scale, FMA; each half exact, added as ints. */
    static void q6kf(float[] out, Activations x, float[] xf, Matrix.Q6_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        float[] xd = x.q8KScales;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q6_K.rowBytes(n);
        int step = BF.length();
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 210) {
                jdk.incubator.vector.IntVector isum = jdk.incubator.vector.IntVector.zero(I);
                for (int half = 0; half < 2; half++) {
                    long ql = b + 64L * half, qh = b + 128 + 32L * half, sc = b + 192 + 8L * half;
                    int xo = blk * 256 + 128 * half;
                    FloatVector fs = FloatVector.zero(F);
                    for (int k = 0; k < 32; k += step) {
                        ByteVector a = ByteVector.fromMemorySegment(BF, data, ql + k, LE);
                        ByteVector c = ByteVector.fromMemorySegment(BF, data, ql + 32 + k, LE);
                        ByteVector h = ByteVector.fromMemorySegment(BF, data, qh + k, LE);
                        ByteVector q1 = a.and((byte) 0x0F).or(h.and((byte) 3).lanewise(VectorOperators.LSHL, 4)).sub((byte) 32);
                        ByteVector q2 = c.and((byte) 0x0F).or(h.and((byte) 0x0C).lanewise(VectorOperators.LSHL, 2)).sub((byte) 32);
                        ByteVector q3 = a.lanewise(VectorOperators.LSHR, 4).or(h.and((byte) 0x30)).sub((byte) 32);
                        ByteVector q4 = c.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 2).and((byte) 0x30)).sub((byte) 32);
                        for (int p = 0; p < BPARTS; p++) {
                            int l = k + p * L;
                            long s = sc + l / 16;
                            fs = ((FloatVector) q1.convertShape(VectorOperators.B2F, F, p)).mul(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s))
                                    .fma(FloatVector.fromArray(F, xf, xo + l), fs);
                            fs = ((FloatVector) q2.convertShape(VectorOperators.B2F, F, p)).mul(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 2))
                                    .fma(FloatVector.fromArray(F, xf, xo + 32 + l), fs);
                            fs = ((FloatVector) q3.convertShape(VectorOperators.B2F, F, p)).mul(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 4))
                                    .fma(FloatVector.fromArray(F, xf, xo + 64 + l), fs);
                            fs = ((FloatVector) q4.convertShape(VectorOperators.B2F, F, p)).mul(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 6))
                                    .fma(FloatVector.fromArray(F, xf, xo + 96 + l), fs);
                        }
                    }
                    isum = isum.add((jdk.incubator.vector.IntVector) fs.convert(VectorOperators.F2I, 0));
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b + 208)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }


    static final jdk.incubator.vector.VectorMask<Integer> LANE0 = jdk.incubator.vector.VectorMask.fromLong(I, 1L);
    static final VectorSpecies<Short> SV = jdk.incubator.vector.ShortVector.SPECIES_PREFERRED;
    static final jdk.incubator.vector.VectorMask<Integer> UPPER = jdk.incubator.vector.VectorMask.fromLong(I, CH == 32 ? 0xFF00L : 0L);

    /** Q8_0 int, 3-op fold (p + (p << 16)) >> 16 (exact: |pair sum| <= 2 * 128 * 127 < 2^15), no add to a zero vector. */
    static void q8n(float[] out, Activations x, float[] xf, Matrix.Q8_0 w, int r0, int r1) {
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
                jdk.incubator.vector.IntVector p = ((jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2, LE)
                        .convertShape(VectorOperators.B2S, S, 0)).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, j)).reinterpretAsInts();
                jdk.incubator.vector.IntVector isum = p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16);
                for (int k = CH; k < 32; k += CH) {
                    p = ((jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, b + 2 + k, LE)
                            .convertShape(VectorOperators.B2S, S, 0)).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, j + k)).reinterpretAsInts();
                    isum = isum.add(p.add(p.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16));
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

    /** Q4_K int: zero-extended nibble bytes, 3-op fold, no zero adds. */
    static void q4kn(float[] out, Activations x, float[] xf, Matrix.Q4_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q4_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            float mins = 0.0f;
            for (int blk = 0; blk < nb; blk++, b += 144) {
                int j = blk * 256;
                int u0 = data.get(INT, b + 4), u1 = data.get(INT, b + 8), u2 = data.get(INT, b + 12);
                int sc03 = u0 & 0x3f3f3f3f;
                int sc47 = (u2 & 0x0f0f0f0f) | (((u0 >>> 6) & 0x03030303) << 4);
                int m03 = u1 & 0x3f3f3f3f;
                int m47 = ((u2 >>> 4) & 0x0f0f0f0f) | (((u1 >>> 6) & 0x03030303) << 4);
                jdk.incubator.vector.IntVector isum = jdk.incubator.vector.IntVector.zero(I);
                for (int g = 0; g < 4; g++) {
                    long qs = b + 16 + 32L * g;
                    int xo = j + 64 * g;
                    jdk.incubator.vector.ShortVector q = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, qs, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                    jdk.incubator.vector.ShortVector plo = q.and((short) 0x0F).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo));
                    jdk.incubator.vector.ShortVector phi = q.lanewise(VectorOperators.LSHR, 4).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 32));
                    for (int k = CH; k < 32; k += CH) {
                        q = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, qs + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        plo = plo.add(q.and((short) 0x0F).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + k)));
                        phi = phi.add(q.lanewise(VectorOperators.LSHR, 4).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 32 + k)));
                    }
                    int scWord = g < 2 ? sc03 : sc47, shift = 16 * (g & 1);
                    int scLo = (scWord >>> shift) & 0xFF, scHi = (scWord >>> (shift + 8)) & 0xFF;
                    jdk.incubator.vector.IntVector ilo = plo.reinterpretAsInts(), ihi = phi.reinterpretAsInts();
                    jdk.incubator.vector.IntVector t = ilo.add(ilo.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scLo)
                            .add(ihi.add(ihi.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scHi));
                    isum = isum.add(t);
                }
                int s = blk * 8;
                int summ = (m03 & 0xFF) * xs32[s] + ((m03 >>> 8) & 0xFF) * xs32[s + 1] + ((m03 >>> 16) & 0xFF) * xs32[s + 2]
                        + (m03 >>> 24) * xs32[s + 3] + (m47 & 0xFF) * xs32[s + 4] + ((m47 >>> 8) & 0xFF) * xs32[s + 5]
                        + ((m47 >>> 16) & 0xFF) * xs32[s + 6] + (m47 >>> 24) * xs32[s + 7];
                float xdb = xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xdb), acc);
                mins += Float.float16ToFloat(data.get(Matrix.SHORT, b + 2)) * xdb * summ;
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD) - mins;
        }
    }

    /** Q4_K int: zero-extended nibble bytes, 3-op fold, no zero adds. */
    static void q4kna(float[] out, Activations x, float[] xf, Matrix.Q4_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q4_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            float mins = 0.0f;
            for (int blk = 0; blk < nb; blk++, b += 144) {
                int j = blk * 256;
                int u0 = data.get(INT, b + 4), u1 = data.get(INT, b + 8), u2 = data.get(INT, b + 12);
                int sc03 = u0 & 0x3f3f3f3f;
                int sc47 = (u2 & 0x0f0f0f0f) | (((u0 >>> 6) & 0x03030303) << 4);
                int m03 = u1 & 0x3f3f3f3f;
                int m47 = ((u2 >>> 4) & 0x0f0f0f0f) | (((u1 >>> 6) & 0x03030303) << 4);
                jdk.incubator.vector.IntVector isum = jdk.incubator.vector.IntVector.zero(I);
                for (int g = 0; g < 4; g++) {
                    long qs = b + 16 + 32L * g;
                    int xo = j + 64 * g;
                    jdk.incubator.vector.ShortVector plo = jdk.incubator.vector.ShortVector.zero(S), phi = jdk.incubator.vector.ShortVector.zero(S);
                    for (int k = 0; k < 32; k += CH) {
                        jdk.incubator.vector.ShortVector q = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, qs + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        plo = plo.add(q.and((short) 0x0F).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + k)));
                        phi = phi.add(q.lanewise(VectorOperators.LSHR, 4).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 32 + k)));
                    }
                    int scWord = g < 2 ? sc03 : sc47, shift = 16 * (g & 1);
                    int scLo = (scWord >>> shift) & 0xFF, scHi = (scWord >>> (shift + 8)) & 0xFF;
                    jdk.incubator.vector.IntVector ilo = plo.reinterpretAsInts(), ihi = phi.reinterpretAsInts();
                    jdk.incubator.vector.IntVector t = ilo.add(ilo.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scLo)
                            .add(ihi.add(ihi.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scHi));
                    isum = isum.add(t);
                }
                int s = blk * 8;
                int summ = (m03 & 0xFF) * xs32[s] + ((m03 >>> 8) & 0xFF) * xs32[s + 1] + ((m03 >>> 16) & 0xFF) * xs32[s + 2]
                        + (m03 >>> 24) * xs32[s + 3] + (m47 & 0xFF) * xs32[s + 4] + ((m47 >>> 8) & 0xFF) * xs32[s + 5]
                        + ((m47 >>> 16) & 0xFF) * xs32[s + 6] + (m47 >>> 24) * xs32[s + 7];
                float xdb = xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xdb), acc);
                mins += Float.float16ToFloat(data.get(Matrix.SHORT, b + 2)) * xdb * summ;
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD) - mins;
        }
    }

    /** Q4_K int: zero-extended nibble bytes, 3-op fold, no zero adds. */
    static void q4knb(float[] out, Activations x, float[] xf, Matrix.Q4_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs32 = x.q8KSums32;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q4_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            float mins = 0.0f;
            for (int blk = 0; blk < nb; blk++, b += 144) {
                int j = blk * 256;
                int u0 = data.get(INT, b + 4), u1 = data.get(INT, b + 8), u2 = data.get(INT, b + 12);
                int sc03 = u0 & 0x3f3f3f3f;
                int sc47 = (u2 & 0x0f0f0f0f) | (((u0 >>> 6) & 0x03030303) << 4);
                int m03 = u1 & 0x3f3f3f3f;
                int m47 = ((u2 >>> 4) & 0x0f0f0f0f) | (((u1 >>> 6) & 0x03030303) << 4);
                jdk.incubator.vector.IntVector isum = jdk.incubator.vector.IntVector.zero(I);
                for (int g = 0; g < 4; g++) {
                    long qs = b + 16 + 32L * g;
                    int xo = j + 64 * g;
                    jdk.incubator.vector.ShortVector q = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, qs, LE)
                            .convertShape(VectorOperators.B2S, S, 0);
                    jdk.incubator.vector.ShortVector plo = q.and((short) 0x0F).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo));
                    jdk.incubator.vector.ShortVector phi = q.lanewise(VectorOperators.ASHR, 4).and((short) 0x0F).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 32));
                    for (int k = CH; k < 32; k += CH) {
                        q = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, qs + k, LE)
                                .convertShape(VectorOperators.B2S, S, 0);
                        plo = plo.add(q.and((short) 0x0F).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + k)));
                        phi = phi.add(q.lanewise(VectorOperators.ASHR, 4).and((short) 0x0F).mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 32 + k)));
                    }
                    int scWord = g < 2 ? sc03 : sc47, shift = 16 * (g & 1);
                    int scLo = (scWord >>> shift) & 0xFF, scHi = (scWord >>> (shift + 8)) & 0xFF;
                    jdk.incubator.vector.IntVector ilo = plo.reinterpretAsInts(), ihi = phi.reinterpretAsInts();
                    jdk.incubator.vector.IntVector t = ilo.add(ilo.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scLo)
                            .add(ihi.add(ihi.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(scHi));
                    isum = isum.add(t);
                }
                int s = blk * 8;
                int summ = (m03 & 0xFF) * xs32[s] + ((m03 >>> 8) & 0xFF) * xs32[s + 1] + ((m03 >>> 16) & 0xFF) * xs32[s + 2]
                        + (m03 >>> 24) * xs32[s + 3] + (m47 & 0xFF) * xs32[s + 4] + ((m47 >>> 8) & 0xFF) * xs32[s + 5]
                        + ((m47 >>> 16) & 0xFF) * xs32[s + 6] + (m47 >>> 24) * xs32[s + 7];
                float xdb = xd[blk];
                acc = ((FloatVector) isum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(Matrix.SHORT, b)) * xdb), acc);
                mins += Float.float16ToFloat(data.get(Matrix.SHORT, b + 2)) * xdb * summ;
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD) - mins;
        }
    }

    /** Q6_K int: q in 0..63 (the -32 taken out as 32 * sum_j sc_j * (sum of sub-block j's q8), scalar), zero-extended loads, 3-op fold. */
    static void q6kn(float[] out, Activations x, float[] xf, Matrix.Q6_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs16 = x.q8KSums;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q6_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 210) {
                jdk.incubator.vector.IntVector isum = jdk.incubator.vector.IntVector.zero(I);
                for (int half = 0; half < 2; half++) {
                    long ql = b + 64L * half, qh = b + 128 + 32L * half, sc = b + 192 + 8L * half;
                    int xo = blk * 256 + 128 * half;
                    for (int k = 0; k < 32; k += CH) {
                        jdk.incubator.vector.ShortVector a = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, ql + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        jdk.incubator.vector.ShortVector c = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, ql + 32 + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        jdk.incubator.vector.ShortVector h = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, qh + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        jdk.incubator.vector.ShortVector q1 = a.and((short) 0x0F).or(h.and((short) 3).lanewise(VectorOperators.LSHL, 4));
                        jdk.incubator.vector.ShortVector q2 = c.and((short) 0x0F).or(h.and((short) 0x0C).lanewise(VectorOperators.LSHL, 2));
                        jdk.incubator.vector.ShortVector q3 = a.lanewise(VectorOperators.LSHR, 4).or(h.and((short) 0x30));
                        jdk.incubator.vector.ShortVector q4 = c.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 2).and((short) 0x30));
                        jdk.incubator.vector.IntVector i1 = q1.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + k)).reinterpretAsInts();
                        jdk.incubator.vector.IntVector i2 = q2.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 32 + k)).reinterpretAsInts();
                        jdk.incubator.vector.IntVector i3 = q3.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 64 + k)).reinterpretAsInts();
                        jdk.incubator.vector.IntVector i4 = q4.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 96 + k)).reinterpretAsInts();
                        long s = sc + k / 16;
                        jdk.incubator.vector.IntVector c1 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s));
                        jdk.incubator.vector.IntVector c2 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 2));
                        jdk.incubator.vector.IntVector c3 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 4));
                        jdk.incubator.vector.IntVector c4 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 6));
                        if (CH == 32) {
                            c1 = c1.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 1), UPPER);
                            c2 = c2.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 3), UPPER);
                            c3 = c3.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 5), UPPER);
                            c4 = c4.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 7), UPPER);
                        }
                        isum = isum.add(i1.add(i1.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c1))
                                .add(i2.add(i2.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c2))
                                .add(i3.add(i3.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c3))
                                .add(i4.add(i4.lanewise(VectorOperators.LSHL, 16)).lanewise(VectorOperators.ASHR, 16).mul(c4));
                    }
                }
                // the -32 of every value: 32 * sum over the 16 sub-blocks of scale_j * (sum of sub-block j's q8)
                long sc = b + 192;
                int x16 = blk * 16, corr = 0;
                for (int t = 0; t < 16; t++) {
                    corr += data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, sc + t) * xs16[x16 + t];
                }
                float scale = Float.float16ToFloat(data.get(Matrix.SHORT, b + 208)) * xd[blk];
                acc = ((FloatVector) isum.lanewise(VectorOperators.SUB, 32 * corr, LANE0).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, scale), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

    /** Q6_K int: q in 0..63 (the -32 taken out as 32 * sum_j sc_j * (sum of sub-block j's q8), scalar), zero-extended loads, 3-op fold. */
    static void q6kn2(float[] out, Activations x, float[] xf, Matrix.Q6_K w, int r0, int r1) {
        int n = w.cols(), nb = n / 256;
        short[] xq = x.q8K;
        float[] xd = x.q8KScales;
        int[] xs16 = x.q8KSums;
        MemorySegment data = w.data();
        long rowBytes = Matrix.Q6_K.rowBytes(n);
        for (int r = r0; r < r1; r++) {
            long b = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int blk = 0; blk < nb; blk++, b += 210) {
                jdk.incubator.vector.IntVector isum = jdk.incubator.vector.IntVector.zero(I);
                for (int half = 0; half < 2; half++) {
                    long ql = b + 64L * half, qh = b + 128 + 32L * half, sc = b + 192 + 8L * half;
                    int xo = blk * 256 + 128 * half;
                    for (int k = 0; k < 32; k += CH) {
                        jdk.incubator.vector.ShortVector a = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, ql + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        jdk.incubator.vector.ShortVector c = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, ql + 32 + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        jdk.incubator.vector.ShortVector h = (jdk.incubator.vector.ShortVector) ByteVector.fromMemorySegment(BS, data, qh + k, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2S, S, 0);
                        jdk.incubator.vector.ShortVector q1 = a.and((short) 0x0F).or(h.and((short) 3).lanewise(VectorOperators.LSHL, 4)).sub((short) 32);
                        jdk.incubator.vector.ShortVector q2 = c.and((short) 0x0F).or(h.and((short) 0x0C).lanewise(VectorOperators.LSHL, 2)).sub((short) 32);
                        jdk.incubator.vector.ShortVector q3 = a.lanewise(VectorOperators.LSHR, 4).or(h.and((short) 0x30)).sub((short) 32);
                        jdk.incubator.vector.ShortVector q4 = c.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 2).and((short) 0x30)).sub((short) 32);
                        jdk.incubator.vector.IntVector i1 = q1.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + k)).reinterpretAsInts();
                        jdk.incubator.vector.IntVector i2 = q2.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 32 + k)).reinterpretAsInts();
                        jdk.incubator.vector.IntVector i3 = q3.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 64 + k)).reinterpretAsInts();
                        jdk.incubator.vector.IntVector i4 = q4.mul(jdk.incubator.vector.ShortVector.fromArray(S, xq, xo + 96 + k)).reinterpretAsInts();
                        long s = sc + k / 16;
                        jdk.incubator.vector.IntVector c1 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s));
                        jdk.incubator.vector.IntVector c2 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 2));
                        jdk.incubator.vector.IntVector c3 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 4));
                        jdk.incubator.vector.IntVector c4 = jdk.incubator.vector.IntVector.broadcast(I, data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 6));
                        if (CH == 32) {
                            c1 = c1.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 1), UPPER);
                            c2 = c2.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 3), UPPER);
                            c3 = c3.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 5), UPPER);
                            c4 = c4.blend(data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, s + 7), UPPER);
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


    /** F16 through a float buffer: the halves converted by a scalar loop of Float.float16ToFloat (C2 may vectorize it to vcvtph2ps), then FMA. */
    static void f16buf(float[] out, Activations x, float[] xf, Matrix.F16 w, int r0, int r1) {
        int n = w.cols();
        float[] xh = x.f16;
        MemorySegment data = w.data();
        float[] buf = new float[n];
        int upper = n - n % (2 * L);
        for (int r = r0; r < r1; r++) {
            long base = (long) r * n * 2;
            for (int j = 0; j < n; j++) {
                buf[j] = Float.float16ToFloat(data.get(Matrix.SHORT, base + 2L * j));
            }
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            int j = 0;
            for (; j < upper; j += 2 * L) {
                a0 = FloatVector.fromArray(F, buf, j).fma(FloatVector.fromArray(F, xh, j), a0);
                a1 = FloatVector.fromArray(F, buf, j + L).fma(FloatVector.fromArray(F, xh, j + L), a1);
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; j < n; j++) {
                sum += buf[j] * xh[j];
            }
            out[r] = sum;
        }
    }

    // ------------------------------------------------------------------ harness

    record Variant(String name, K k) {
    }

    public static void main(String[] args) {
        int rows = Integer.parseInt(args[0]), cols = Integer.parseInt(args[1]);
        String type = args[2];
        double seconds = args.length > 3 ? Double.parseDouble(args[3]) : 0.3;
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 7;
        SplittableRandom rnd = new SplittableRandom(1);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (rnd.nextGaussian() * 0.02);
        }
        float[] xin = new float[cols];
        for (int i = 0; i < cols; i++) {
            xin[i] = (float) rnd.nextGaussian();
        }
        Arena arena = Arena.ofShared();
        Matrix m = GgmlQuantize.quantize(type, values, rows, cols, arena);
        Activations in = new Activations(cols);
        in.input(xin, cols);
        in.prepareFor(m);
        float[] xf = new float[cols];
        switch (type) {
            case "Q8_0", "Q4_0" -> {
                for (int i = 0; i < cols; i++) xf[i] = in.q80[i];
            }
            case "Q4_K", "Q6_K" -> {
                for (int i = 0; i < cols; i++) xf[i] = in.q8K[i];
            }
            case "F16" -> System.arraycopy(in.f16, 0, xf, 0, cols);
            default -> {
            }
        }
        List<Variant> vs = new ArrayList<>();
        vs.add(new Variant("before", (o, a, f, mm, r0, r1) -> before(o, a, mm, r0, r1)));
        vs.add(new Variant("current", (o, a, f, mm, r0, r1) -> new VectorKernels().matmul(o, a, mm, r0, r1)));
        switch (type) {
            case "Q8_0" -> {
                vs.add(new Variant("int-new", (o, a, f, mm, r0, r1) -> q8n(o, a, f, (Matrix.Q8_0) mm, r0, r1)));
                vs.add(new Variant("float1acc", (o, a, f, mm, r0, r1) -> q8f1(o, a, f, (Matrix.Q8_0) mm, r0, r1)));
                vs.add(new Variant("int2accU", (o, a, f, mm, r0, r1) -> q8i2u(o, a, f, (Matrix.Q8_0) mm, r0, r1)));
                vs.add(new Variant("float2accU", (o, a, f, mm, r0, r1) -> q8f2u(o, a, f, (Matrix.Q8_0) mm, r0, r1)));
                vs.add(new Variant("int2rows", (o, a, f, mm, r0, r1) -> q8i2r(o, a, f, (Matrix.Q8_0) mm, r0, r1)));
                vs.add(new Variant("floatMulAdd", (o, a, f, mm, r0, r1) -> q8fma(o, a, f, (Matrix.Q8_0) mm, r0, r1)));
                vs.add(new Variant("float2rows", (o, a, f, mm, r0, r1) -> q8f2r(o, a, f, (Matrix.Q8_0) mm, r0, r1)));
            }
            case "F16" -> vs.add(new Variant("f16buf", (o, a, f, mm, r0, r1) -> f16buf(o, a, f, (Matrix.F16) mm, r0, r1)));
            case "Q4_K" -> {
                vs.add(new Variant("float", (o, a, f, mm, r0, r1) -> q4kf(o, a, f, (Matrix.Q4_K) mm, r0, r1)));
                vs.add(new Variant("int-new", (o, a, f, mm, r0, r1) -> q4kn(o, a, f, (Matrix.Q4_K) mm, r0, r1)));
                vs.add(new Variant("zeroinit", (o, a, f, mm, r0, r1) -> q4kna(o, a, f, (Matrix.Q4_K) mm, r0, r1)));
                vs.add(new Variant("signext", (o, a, f, mm, r0, r1) -> q4knb(o, a, f, (Matrix.Q4_K) mm, r0, r1)));
            }
            case "Q6_K" -> {
                vs.add(new Variant("float", (o, a, f, mm, r0, r1) -> q6kf(o, a, f, (Matrix.Q6_K) mm, r0, r1)));
                vs.add(new Variant("int-new", (o, a, f, mm, r0, r1) -> q6kn(o, a, f, (Matrix.Q6_K) mm, r0, r1)));
                vs.add(new Variant("int-new2", (o, a, f, mm, r0, r1) -> q6kn2(o, a, f, (Matrix.Q6_K) mm, r0, r1)));
            }
            default -> {
            }
        }
        float[] ref = new float[rows], out = new float[rows];
        new ScalarKernels().matmul(ref, in, m, 0, rows);
        for (Variant v : vs) {
            java.util.Arrays.fill(out, Float.NaN);
            v.k.run(out, in, xf, m, 0, rows);
            double maxRel = 0;
            for (int r = 0; r < rows; r++) {
                maxRel = Math.max(maxRel, Math.abs(out[r] - ref[r]) / (Math.abs(ref[r]) + 1e-3));
            }
            System.out.printf(Locale.ROOT, "check %-12s max rel diff vs scalar %.2e%n", v.name, maxRel);
        }
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        String only = System.getProperty("variants");
        if (only != null) {
            List<String> keep = List.of(only.split(","));
            vs.removeIf(v -> !v.name.equals("before") && !keep.contains(v.name));
        }
        int nv = vs.size();
        double[][] gbs = new double[nv][rounds];
        for (Variant v : vs) { // warm-up: C2 compiles the kernel (run with -Xbatch so that it waits for it)
            long t0 = cpu.getCurrentThreadCpuTime();
            while (cpu.getCurrentThreadCpuTime() - t0 < 1_500_000_000L) {
                v.k.run(out, in, xf, m, 0, Math.min(rows, 64));
            }
        }
        String load0 = loadavg();
        for (int round = 0; round < rounds + 2; round++) {
            for (int t = 0; t < nv; t++) {
                int vi = (t + round) % nv; // rotate the order each round
                Variant v = vs.get(vi);
                long t0 = cpu.getCurrentThreadCpuTime(), bytes = 0;
                while (cpu.getCurrentThreadCpuTime() - t0 < (long) (seconds * 1e9)) {
                    for (int c = 0; c < (m.byteSize() > (64 << 20) ? 1 : 8); c++) {
                        v.k.run(out, in, xf, m, 0, rows);
                        bytes += m.byteSize();
                    }
                }
                if (round >= 2) {
                    gbs[vi][round - 2] = bytes / (double) (cpu.getCurrentThreadCpuTime() - t0);
                }
            }
        }
        System.out.printf(Locale.ROOT, "%s %dx%d (%d KB), %d-bit, %d rounds x %.2f s, load before %s, after %s%n", type, rows, cols,
                m.byteSize() >> 10, F.vectorBitSize(), rounds, seconds, load0, loadavg());
        for (int vi = 0; vi < nv; vi++) {
            double[] g = gbs[vi].clone(), ratio = new double[rounds];
            for (int i = 0; i < rounds; i++) {
                ratio[i] = gbs[vi][i] / gbs[0][i];
            }
            java.util.Arrays.sort(g);
            java.util.Arrays.sort(ratio);
            System.out.printf(Locale.ROOT, "  %-12s median %6.2f  best %6.2f GB/s per core (CPU time); / before per round: median %.2f (quartiles %.2f-%.2f)%n",
                    vs.get(vi).name, g[g.length / 2], g[g.length - 1], ratio[rounds / 2], ratio[rounds / 4], ratio[(3 * rounds) / 4]);
        }
    }

    static void before(float[] out, Activations x, Matrix m, int r0, int r1) {
        switch (m) {
            case Matrix.F16 h -> GgmlMatmulBefore.f16(out, x, h, r0, r1);
            case Matrix.Q8_0 q -> GgmlMatmulBefore.q8_0(out, x, q, r0, r1);
            case Matrix.Q4_0 q -> GgmlMatmulBefore.q4_0(out, x, q, r0, r1);
            case Matrix.Q4_K q -> GgmlMatmulBefore.q4_K(out, x, q, r0, r1);
            case Matrix.Q6_K q -> GgmlMatmulBefore.q6_K(out, x, q, r0, r1);
            default -> throw new IllegalArgumentException(m.typeName());
        }
    }

    static String loadavg() {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim();
        } catch (java.io.IOException e) {
            return "?";
        }
    }
}
