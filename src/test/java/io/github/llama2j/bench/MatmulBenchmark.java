package io.github.llama2j.bench;

import io.github.llama2j.cpu.Activations;
import io.github.llama2j.cpu.ExactVectorKernels;
import io.github.llama2j.cpu.Kernels;
import io.github.llama2j.cpu.Parallel;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.cpu.VectorKernels;
import io.github.llama2j.model.Matrix;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The matmul kernels at stories110M's shapes, reported as weight bytes streamed per second (the
 * {@code gbPerSecond} counter; matmuls are memory-bound, so GB/s is the figure to compare with the
 * machine's bandwidth). Each invocation multiplies the next of enough matrices to overflow the
 * caches (about 200 MB), so the weights come from DRAM as in a real forward pass. The weights sit
 * 28 bytes into their buffer, the alignment of a legacy v0 checkpoint's tensors.
 *
 * <p>Run (after {@code ./mvnw -q -o test-compile}):
 * <pre>
 * ./mvnw -q -o dependency:build-classpath -Dmdep.outputFile=target/test-cp.txt -Dmdep.includeScope=test
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes:$(cat target/test-cp.txt) \
 *      org.openjdk.jmh.Main MatmulBenchmark
 * </pre>
 * Add e.g. {@code -p kernel=q8 -p threads=2 -p shape=2048x768} to pick parameters; the defaults
 * run every combination of the llama2.c kernels (about four minutes). GGML's types (f16, bf16, q8_0,
 * q4_0, q4_k, q6_k: {@link VectorKernels}, the activations prepared as the engine does, included in
 * the time) are picked with {@code -p kernel=q4_k -p shape=4096x4096}. Compare {@code gbPerSecond} at 2 threads with the
 * machine's memory bandwidth; at {@code -p poolMb=8} the weights stay in cache and the figure is
 * the kernel's compute speed instead.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class MatmulBenchmark {

    /** Rows × cols: w1/w3 (hidden × dim), w2 (dim × hidden), the classifier (vocab × dim). */
    @Param({"2048x768", "768x2048", "32000x768"})
    public String shape;

    /**
     * f32: {@link VectorKernels} on float32 weights (default mode); f32-exact: {@link ExactVectorKernels}
     * (--exact); q8: the Q8_0 kernel (group size 64, the same in both modes); f32-scalar and
     * q8-scalar: the {@link ScalarKernels} reference.
     */
    @Param({"f32", "f32-exact", "q8"})
    public String kernel;

    private static final java.util.Map<String, String> GGML = java.util.Map.of("f16", "F16", "bf16", "BF16", "q8_0", "Q8_0",
            "q4_0", "Q4_0", "q4_k", "Q4_K", "q6_k", "Q6_K");

    @Param({"1", "2"})
    public int threads;

    /** MB of distinct matrices cycled through: 200 overflows the caches (DRAM-bound); 8 stays in cache (compute-bound). */
    @Param({"200"})
    public int poolMb;

    private Arena arena;
    private Matrix[] pool;
    private int next;
    private Kernels kernels;
    private Parallel parallel;
    private float[] x, out;
    private Activations in;

    /** Bytes streamed, reported per second by JMH; divide by 1e9 for GB/s. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Bytes {
        public double gbPerSecond;
    }

    @Setup(Level.Trial)
    public void setUp() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]), cols = Integer.parseInt(rc[1]);
        kernels = switch (kernel) {
            case "f32", "q8", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k" -> new VectorKernels();
            case "f32-exact" -> new ExactVectorKernels();
            case "f32-scalar", "q8-scalar" -> new ScalarKernels();
            default -> throw new IllegalArgumentException(kernel);
        };
        boolean f32 = kernel.startsWith("f32");
        parallel = new Parallel(threads);
        arena = Arena.ofShared();
        SplittableRandom rnd = new SplittableRandom(42);
        pool = GGML.containsKey(kernel) ? BenchMatrices.ggmlPool(GGML.get(kernel), rows, cols, poolMb, 2, arena, rnd)
                : BenchMatrices.pool(f32, rows, cols, poolMb, 2, arena, rnd);
        x = BenchMatrices.gaussian(cols, rnd);
        in = new Activations(cols);
        out = new float[rows];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        parallel.close();
        arena.close();
    }

    @Benchmark
    public float matmul(Bytes bytes) {
        Matrix m = pool[next];
        next = next + 1 == pool.length ? 0 : next + 1;
        switch (m) {
            case Matrix.F32 f -> parallel.forRange(f.rows(), 16, (r0, r1) -> kernels.matmulF32(out, x, f, r0, r1));
            case Matrix.Q8 q -> {
                in.input(x, x.length); // quantized and prepared once per input, as in the engine
                in.prepareFor(q);
                parallel.forRange(q.rows(), 16, (r0, r1) -> kernels.matmul(out, in, q, r0, r1));
            }
            case Matrix.Ggml g -> {
                in.input(x, x.length);
                in.prepareFor(g);
                parallel.forRange(g.rows(), 16, (r0, r1) -> kernels.matmul(out, in, g, r0, r1));
            }
        }
        bytes.gbPerSecond += m.byteSize() / 1e9;
        return out[0];
    }
}
