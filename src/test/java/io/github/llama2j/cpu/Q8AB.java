package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/** Throwaway A/B: old vs new Q8 kernel, interleaved, thread CPU time. Args: rows cols gs poolMats segments. */
public final class Q8AB {
    public static void main(String[] args) {
        int rows = Integer.parseInt(args[0]), cols = Integer.parseInt(args[1]), gs = Integer.parseInt(args[2]);
        int mats = Integer.parseInt(args[3]), segs = Integer.parseInt(args[4]);
        SplittableRandom rnd = new SplittableRandom(1);
        Arena arena = Arena.ofShared();
        long n = (long) rows * cols;
        Matrix.Q8[] ws = new Matrix.Q8[mats];
        for (int m = 0; m < mats; m++) {
            MemorySegment values = arena.allocate(n, 64), scales = arena.allocate(n / gs * Float.BYTES, 64);
            for (long i = 0; i < n; i++) values.set(ValueLayout.JAVA_BYTE, i, (byte) (rnd.nextInt(255) - 127));
            for (long g = 0; g < n / gs; g++) scales.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, g, (float) rnd.nextDouble() * 0.001f);
            ws[m] = new Matrix.Q8(values, scales, rows, cols, gs);
        }
        byte[] xq = new byte[cols];
        float[] xs = new float[cols / gs];
        for (int i = 0; i < cols; i++) xq[i] = (byte) (rnd.nextInt(255) - 127);
        for (int i = 0; i < xs.length; i++) xs[i] = (float) rnd.nextDouble();
        Q8Matmul.Input inNew = new Q8Matmul.Input();
        inNew.prepare(xq, xs, cols, gs);
        Q8MatmulOld.Input inOld = new Q8MatmulOld.Input();
        inOld.prepare(xq, xs, cols, gs);
        float[] a = new float[rows], b = new float[rows], ref = new float[rows];
        new ScalarKernels().matmulQ8(ref, xq, xs, ws[0], 0, rows);
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        int calls = (int) Math.max(1, 400_000_000L / n / 2);
        double[][] r = new double[2][segs];
        for (int s = 0; s < segs; s++) {
            for (int v = 0; v < 2; v++) {
                int variant = (s % 2 == 0) ? v : 1 - v;
                long t0 = cpu.getCurrentThreadCpuTime();
                for (int c = 0; c < calls; c++) {
                    Matrix.Q8 w = ws[c % mats];
                    if (variant == 0) Q8MatmulOld.matmul(a, inOld, w, 0, rows);
                    else Q8Matmul.matmul(b, inNew, w, 0, rows);
                }
                r[variant][s] = (double) n * calls / (cpu.getCurrentThreadCpuTime() - t0);
            }
        }
        Q8MatmulOld.matmul(a, inOld, ws[0], 0, rows);
        Q8Matmul.matmul(b, inNew, ws[0], 0, rows);
        if (!Arrays.equals(a, ref) || !Arrays.equals(b, ref)) throw new AssertionError("mismatch");
        for (int v = 0; v < 2; v++) {
            double[] x = Arrays.copyOfRange(r[v], segs / 3, segs);
            Arrays.sort(x);
            System.out.printf(Locale.ROOT, "%s %dx%d gs%d mats%d: median %.2f best %.2f GB/s%n", v == 0 ? "old" : "new",
                    rows, cols, gs, mats, x[x.length / 2], x[x.length - 1]);
        }
    }
}
