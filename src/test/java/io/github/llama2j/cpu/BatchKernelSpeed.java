package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * One core's speed of the batched kernels ({@link BatchMatmul}, with passes of 2 and of 4 rows) against the
 * previous ones ({@link BatchMatmulBaseline}), interleaved in one JVM: segments of calls alternate between the variants and
 * each segment is timed in the thread's own CPU time, so on a shared machine the other tenants enter less
 * than in wall-clock figures (JMH's {@link BatchMatmulBenchmark}). Matrices small enough to stay in cache:
 * the figure is the kernel's compute speed, G multiply-adds per CPU-second; prints the median and the best
 * of the segments after the warm-up ones.
 * <pre>
 * java --add-modules jdk.incubator.vector [-XX:UseAVX=2 -XX:MaxVectorSize=32] \
 *      -cp target/test-classes:target/classes io.github.llama2j.cpu.BatchKernelSpeed [rows cols tokens segments]
 * </pre>
 * Defaults: 2048 768 64 30 (w1's shape in stories110M, a chunk of 64 tokens).
 */
public final class BatchKernelSpeed {
    private BatchKernelSpeed() {
    }

    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        int cols = args.length > 1 ? Integer.parseInt(args[1]) : 768;
        int tokens = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        int segments = args.length > 3 ? Integer.parseInt(args[3]) : 30;
        SplittableRandom rnd = new SplittableRandom(1);
        Arena arena = Arena.ofShared();
        Matrix.F32 f = RandomMatrices.f32(arena, rnd, rows, cols, 28);
        Matrix.Q8 q = RandomMatrices.q8(arena, rnd, rows, cols, 64);
        float[][] x = new float[tokens][];
        for (int b = 0; b < tokens; b++) {
            x[b] = RandomMatrices.floats(rnd, cols);
        }
        BatchActivations fin = new BatchActivations(tokens, cols), qin = new BatchActivations(tokens, cols);
        fin.input(x, tokens, cols);
        fin.prepareFor(f);
        qin.input(x, tokens, cols);
        qin.prepareFor(q);
        float[][] out = new float[tokens][rows];
        int stride = fin.stride();
        float[] fx = BatchMatmulBaseline.rowMajor(fin.xT, cols, stride);
        float[] qx = BatchMatmulBaseline.rowMajor(qin.xT, cols, stride);
        Runnable[] variants = {
                () -> BatchMatmulBaseline.f32(out, fx, stride, tokens, f, 0, rows),
                () -> BatchMatmul.tiles(out, fin.xT, null, stride, tokens, f.data(), null, cols, BatchMatmul.F32_BLOCK, 0, rows, 2),
                () -> BatchMatmul.tiles(out, fin.xT, null, stride, tokens, f.data(), null, cols, BatchMatmul.F32_BLOCK, 0, rows, 4),
                () -> BatchMatmulBaseline.q8(out, qx, qin.sT, stride, tokens, q, 0, rows),
                () -> BatchMatmul.tiles(out, qin.xT, qin.sT, stride, tokens, q.values(), q.scales(), cols, 64, 0, rows, 2),
                () -> BatchMatmul.tiles(out, qin.xT, qin.sT, stride, tokens, q.values(), q.scales(), cols, 64, 0, rows, 4),
        };
        String[] names = {"f32 old", "f32 new, 2-row passes", "f32 new, 4-row passes", "q8 old", "q8 new, 2-row passes", "q8 new, 4-row passes"};
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        double macs = (double) rows * cols * tokens;
        int warmUp = Math.max(3, segments / 3);
        double[][] speed = new double[variants.length][segments - warmUp];
        for (int s = 0; s < segments; s++) {
            for (int v = 0; v < variants.length; v++) {
                int calls = 20;
                long t0 = cpu.getCurrentThreadCpuTime();
                for (int c = 0; c < calls; c++) {
                    variants[v].run();
                }
                double gmacs = macs * calls / (cpu.getCurrentThreadCpuTime() - t0);
                if (s >= warmUp) {
                    speed[v][s - warmUp] = gmacs;
                }
            }
        }
        System.out.printf(Locale.ROOT, "%d-bit vectors, %dx%d, %d tokens, G multiply-adds per CPU-second (median, best of %d segments):%n",
                BatchMatmul.F.vectorBitSize(), rows, cols, tokens, segments - warmUp);
        for (int v = 0; v < variants.length; v++) {
            double[] s = speed[v].clone();
            Arrays.sort(s);
            System.out.printf(Locale.ROOT, "  %-22s %6.2f %6.2f%n", names[v], s[s.length / 2], s[s.length - 1]);
        }
    }
}
