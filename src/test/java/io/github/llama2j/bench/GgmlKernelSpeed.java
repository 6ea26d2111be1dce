package io.github.llama2j.bench;

import io.github.llama2j.cpu.Activations;
import io.github.llama2j.cpu.Kernels;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.cpu.VectorKernels;
import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * One core's speed of each tensor type's matmul (activations prepared as the engine does, included),
 * in GB/s of weights per second of the thread's own CPU time: on a shared machine wall-clock
 * figures measure the other tenants, CPU time measures the kernel (memory stalls included). With a
 * pool larger than the caches the weights come from DRAM; with a small one, from cache (the
 * kernel's compute speed).
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes \
 *      io.github.llama2j.bench.GgmlKernelSpeed ROWS COLS POOL_MB TYPES [scalar]
 *   e.g. 4096 4096 256 F32,F16,BF16,Q8_0,Q4_0,Q4_K,Q6_K
 * </pre>
 */
public final class GgmlKernelSpeed {
    private GgmlKernelSpeed() {
    }

    public static void main(String[] args) {
        int rows = Integer.parseInt(args[0]), cols = Integer.parseInt(args[1]);
        long poolBytes = Long.parseLong(args[2]) << 20;
        Kernels kernels = args.length > 4 && args[4].equals("scalar") ? new ScalarKernels() : new VectorKernels();
        SplittableRandom rnd = new SplittableRandom(1);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (rnd.nextGaussian() * 0.02);
        }
        float[] x = new float[cols], out = new float[rows];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        Arena arena = Arena.ofShared();
        for (String type : args[3].split(",")) {
            Matrix first = GgmlQuantize.quantize(type, values, rows, cols, arena);
            MemorySegment firstData = first instanceof Matrix.F32 f ? f.data() : ((Matrix.Ggml) first).data();
            Matrix[] pool = new Matrix[(int) Math.max(1, poolBytes / first.byteSize())];
            for (int m = 0; m < pool.length; m++) {
                MemorySegment s = m == 0 ? firstData : arena.allocate(first.byteSize(), 64).copyFrom(firstData);
                pool[m] = GgmlQuantize.wrap(type, s, rows, cols);
            }
            Activations in = new Activations(cols);
            double best = 0;
            for (int round = 0; round < 8; round++) {
                long t0 = cpu.getCurrentThreadCpuTime(), bytes = 0;
                for (int calls = 0; cpu.getCurrentThreadCpuTime() - t0 < 400_000_000L; calls++) {
                    Matrix m = pool[calls % pool.length];
                    in.input(x, cols);
                    in.prepareFor(m);
                    kernels.matmul(out, in, m, 0, rows);
                    bytes += m.byteSize();
                }
                if (round >= 3) {
                    best = Math.max(best, bytes / (double) (cpu.getCurrentThreadCpuTime() - t0));
                }
            }
            System.out.printf(Locale.ROOT, "%-5s %dx%d, pool %d MB, %s: %.2f GB/s per core (CPU time, best of 5 x 0.4 s)%n",
                    type, rows, cols, pool.length * first.byteSize() >> 20, kernels.name(), best);
        }
    }
}
