package io.github.llama2j.bench;

import io.github.llama2j.cpu.Activations;
import io.github.llama2j.cpu.VectorKernels;
import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * One core's speed of runq's Q8 matmul ({@link VectorKernels}, activations prepared once as the engine
 * does) on a matrix small enough to stay in cache, so the figure is the kernel's compute speed: GB/s
 * of int8 weights (the scales not counted) per second of the thread's own CPU time (on a shared machine wall-clock figures measure
 * the other tenants). Prints the best of 10 segments after 10 warm-up ones. For A/B runs of kernel
 * variants at each width:
 * <pre>
 * java --add-modules jdk.incubator.vector -XX:UseAVX=2 -XX:MaxVectorSize=32 \
 *      -cp target/test-classes:target/classes io.github.llama2j.bench.Q8KernelSpeed 256 768 64
 * </pre>
 * Arguments: rows, cols, group size (defaults 256 768 64).
 */
public final class Q8KernelSpeed {
    private Q8KernelSpeed() {
    }

    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 256;
        int cols = args.length > 1 ? Integer.parseInt(args[1]) : 768;
        int gs = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        SplittableRandom rnd = new SplittableRandom(1);
        Arena arena = Arena.ofShared();
        long n = (long) rows * cols;
        MemorySegment values = arena.allocate(n, 64), scales = arena.allocate(n / gs * Float.BYTES, 64);
        for (long i = 0; i < n; i++) {
            values.set(ValueLayout.JAVA_BYTE, i, (byte) (rnd.nextInt(255) - 127));
        }
        for (long g = 0; g < n / gs; g++) {
            scales.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, g, (float) rnd.nextDouble() * 0.001f);
        }
        Matrix.Q8 w = new Matrix.Q8(values, scales, rows, cols, gs);
        float[] x = new float[cols], out = new float[rows];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        Activations in = new Activations(cols);
        in.input(x, cols);
        in.prepareFor(w);
        VectorKernels kernels = new VectorKernels();
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        double best = 0;
        for (int segment = 0; segment < 20; segment++) {
            long t0 = cpu.getCurrentThreadCpuTime();
            int calls = 2000;
            for (int c = 0; c < calls; c++) {
                kernels.matmul(out, in, w, 0, rows);
            }
            double gbPerSecond = (double) n * calls / (cpu.getCurrentThreadCpuTime() - t0);
            if (segment >= 10) {
                best = Math.max(best, gbPerSecond);
            }
        }
        System.out.printf(Locale.ROOT, "%s Q8 %dx%d gs %d: %.2f GB/s (best segment, thread CPU time; out[0] = %s)%n",
                kernels.name(), rows, cols, gs, best, out[0]);
    }
}
