package io.github.llama2j.bench;

import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * The random weights and inputs of the matmul benchmarks ({@link MatmulBenchmark}, {@code cpu.BatchMatmulBenchmark}):
 * a pool of distinct matrices of one shape, as many as fill {@code poolMb} MB (at least {@code minCount}), so that
 * cycling through them keeps the weights in cache (8 MB) or streams them from DRAM (200 MB). Only their bytes
 * matter for the speed; the values are drawn from the caller's generator, in its order.
 */
public final class BenchMatrices {
    /** The group size of the Q8 (runq) pools. */
    public static final int GROUP_SIZE = 64;

    private BenchMatrices() {
    }

    /**
     * A pool of rows × cols matrices: float32 (Gaussian × 0.02, 28 bytes into their buffer, the alignment of a
     * legacy v0 checkpoint's tensors) when {@code f32}, else Q8 with groups of {@link #GROUP_SIZE} (int8 values
     * in [-127, 127], scales in [0, 0.001)).
     */
    public static Matrix[] pool(boolean f32, int rows, int cols, int poolMb, int minCount, Arena arena, SplittableRandom rnd) {
        long n = (long) rows * cols;
        long bytes = f32 ? n * 4 : n + n / GROUP_SIZE * 4;
        Matrix[] pool = new Matrix[(int) Math.max(minCount, ((long) poolMb << 20) / bytes)];
        for (int m = 0; m < pool.length; m++) {
            if (f32) {
                MemorySegment s = arena.allocate(n * 4 + 64, 64).asSlice(28, n * 4);
                for (long i = 0; i < n; i++) {
                    s.setAtIndex(ScalarKernels.FLOAT, i, (float) rnd.nextGaussian() * 0.02f);
                }
                pool[m] = new Matrix.F32(s, rows, cols);
            } else {
                MemorySegment v = arena.allocate(n, 64);
                MemorySegment sc = arena.allocate(n / GROUP_SIZE * 4, 64);
                for (long i = 0; i < n; i++) {
                    v.set(ValueLayout.JAVA_BYTE, i, (byte) (rnd.nextInt(255) - 127));
                }
                for (long g = 0; g < n / GROUP_SIZE; g++) {
                    sc.setAtIndex(ScalarKernels.FLOAT, g, (float) rnd.nextDouble() * 0.001f);
                }
                pool[m] = new Matrix.Q8(v, sc, rows, cols, GROUP_SIZE);
            }
        }
        return pool;
    }

    /** A pool of copies of one random rows × cols matrix of GGML {@code type} (Gaussian × 0.02, quantized). */
    public static Matrix[] ggmlPool(String type, int rows, int cols, int poolMb, int minCount, Arena arena, SplittableRandom rnd) {
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) rnd.nextGaussian() * 0.02f;
        }
        Matrix first = GgmlQuantize.quantize(type, values, rows, cols, arena);
        Matrix[] pool = new Matrix[(int) Math.max(minCount, ((long) poolMb << 20) / first.byteSize())];
        for (int m = 0; m < pool.length; m++) {
            MemorySegment s = arena.allocate(first.byteSize(), 64);
            s.copyFrom(((Matrix.Ggml) first).data());
            pool[m] = GgmlQuantize.wrap(type, s, rows, cols);
        }
        return pool;
    }

    /** n standard Gaussian values (an input vector). */
    public static float[] gaussian(int n, SplittableRandom rnd) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        return x;
    }
}
