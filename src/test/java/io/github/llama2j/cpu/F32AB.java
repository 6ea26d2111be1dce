package io.github.llama2j.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Locale;

/** Throwaway A/B: f32 matvec 4 rows per pass vs one row with 4 chains; thread CPU time. Args: rows cols mats segs. */
public final class F32AB {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int FL = F.length();
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    static void rows4(float[] out, float[] x, MemorySegment data, int r0, int r1, int n) {
        long rowBytes = (long) n * 4;
        for (int r = r0; r + 4 <= r1; r += 4) {
            long b0 = r * rowBytes, b1 = b0 + rowBytes, b2 = b1 + rowBytes, b3 = b2 + rowBytes;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < n; j += FL) {
                FloatVector xv = FloatVector.fromArray(F, x, j);
                long o = (long) j * 4;
                a0 = FloatVector.fromMemorySegment(F, data, b0 + o, LE).fma(xv, a0);
                a1 = FloatVector.fromMemorySegment(F, data, b1 + o, LE).fma(xv, a1);
                a2 = FloatVector.fromMemorySegment(F, data, b2 + o, LE).fma(xv, a2);
                a3 = FloatVector.fromMemorySegment(F, data, b3 + o, LE).fma(xv, a3);
            }
            out[r] = a0.reduceLanes(VectorOperators.ADD);
            out[r + 1] = a1.reduceLanes(VectorOperators.ADD);
            out[r + 2] = a2.reduceLanes(VectorOperators.ADD);
            out[r + 3] = a3.reduceLanes(VectorOperators.ADD);
        }
    }

    static void row1(float[] out, float[] x, MemorySegment data, int r0, int r1, int n) {
        long rowBytes = (long) n * 4;
        for (int r = r0; r + 8 <= r1; r += 8) {
            long b0 = r * rowBytes, b1 = b0 + rowBytes, b2 = b1 + rowBytes, b3 = b2 + rowBytes;
            long b4 = b3 + rowBytes, b5 = b4 + rowBytes, b6 = b5 + rowBytes, b7 = b6 + rowBytes;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int j = 0; j < n; j += FL) {
                FloatVector xv = FloatVector.fromArray(F, x, j);
                long o = (long) j * 4;
                a0 = FloatVector.fromMemorySegment(F, data, b0 + o, LE).fma(xv, a0);
                a1 = FloatVector.fromMemorySegment(F, data, b1 + o, LE).fma(xv, a1);
                a2 = FloatVector.fromMemorySegment(F, data, b2 + o, LE).fma(xv, a2);
                a3 = FloatVector.fromMemorySegment(F, data, b3 + o, LE).fma(xv, a3);
                a4 = FloatVector.fromMemorySegment(F, data, b4 + o, LE).fma(xv, a4);
                a5 = FloatVector.fromMemorySegment(F, data, b5 + o, LE).fma(xv, a5);
                a6 = FloatVector.fromMemorySegment(F, data, b6 + o, LE).fma(xv, a6);
                a7 = FloatVector.fromMemorySegment(F, data, b7 + o, LE).fma(xv, a7);
            }
            out[r] = a0.reduceLanes(VectorOperators.ADD);
            out[r + 1] = a1.reduceLanes(VectorOperators.ADD);
            out[r + 2] = a2.reduceLanes(VectorOperators.ADD);
            out[r + 3] = a3.reduceLanes(VectorOperators.ADD);
            out[r + 4] = a4.reduceLanes(VectorOperators.ADD);
            out[r + 5] = a5.reduceLanes(VectorOperators.ADD);
            out[r + 6] = a6.reduceLanes(VectorOperators.ADD);
            out[r + 7] = a7.reduceLanes(VectorOperators.ADD);
        }
    }

    public static void main(String[] args) {
        int rows = Integer.parseInt(args[0]), cols = Integer.parseInt(args[1]), mats = Integer.parseInt(args[2]), segs = Integer.parseInt(args[3]);
        Arena arena = Arena.ofShared();
        MemorySegment[] ms = new MemorySegment[mats];
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(2);
        for (int m = 0; m < mats; m++) {
            ms[m] = arena.allocate((long) rows * cols * 4, 64);
            for (long i = 0; i < (long) rows * cols; i++) ms[m].setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rnd.nextGaussian());
        }
        float[] x = new float[cols], out = new float[rows];
        for (int i = 0; i < cols; i++) x[i] = (float) rnd.nextGaussian();
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        long bytes = (long) rows * cols * 4;
        int calls = (int) Math.max(mats, 400_000_000L / bytes);
        double[][] r = new double[2][segs];
        for (int s = 0; s < segs; s++) {
            for (int v = 0; v < 2; v++) {
                int variant = (s % 2 == 0) ? v : 1 - v;
                long t0 = cpu.getCurrentThreadCpuTime();
                for (int c = 0; c < calls; c++) {
                    if (variant == 0) rows4(out, x, ms[c % mats], 0, rows, cols);
                    else row1(out, x, ms[c % mats], 0, rows, cols);
                }
                r[variant][s] = (double) bytes * calls / (cpu.getCurrentThreadCpuTime() - t0);
            }
        }
        for (int v = 0; v < 2; v++) {
            double[] q = Arrays.copyOfRange(r[v], segs / 3, segs);
            Arrays.sort(q);
            System.out.printf(Locale.ROOT, "%s %dx%d mats%d: median %.2f best %.2f GB/s%n", v == 0 ? "rows4" : "rows8",
                    rows, cols, mats, q[q.length / 2], q[q.length - 1]);
        }
    }
}
