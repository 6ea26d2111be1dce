package io.github.llama2j.cpu;

import io.github.llama2j.bench.BenchMatrices;
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
 * The batched prefill products ({@link BatchMatmul}) at stories110M's shapes for a chunk of 64 tokens, reported
 * as multiply-adds per second (the {@code gmacPerSecond} counter, in G). {@code poolMb=8} keeps the weights in
 * cache (the kernel's compute speed); 200 cycles through enough matrices to overflow the caches, as in a
 * forward pass. The activations are prepared once (as the engine prepares them once per chunk and matrix).
 * In the cpu package because the kernels are package-private.
 *
 * <p>Run (after {@code ./mvnw -q -o test-compile}; the classpath is the test classpath, JMH included):
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes:JMH_JARS \
 *      org.openjdk.jmh.Main BatchMatmulBenchmark -p kernel=q8 -p threads=1
 * </pre>
 * Add {@code -jvmArgsAppend "-XX:UseAVX=2 -XX:MaxVectorSize=32"} for 256 bits, {@code -XX:MaxVectorSize=16} for 128.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class BatchMatmulBenchmark {

    /** Rows × cols: w1/w3 (hidden × dim), w2 (dim × hidden). */
    @Param({"2048x768", "768x2048"})
    public String shape;

    /** f32 or q8 (runq, group size 64). */
    @Param({"f32", "q8"})
    public String kernel;

    @Param({"1"})
    public int threads;

    @Param({"64"})
    public int tokens;

    /** MB of distinct matrices cycled through: 8 stays in cache, 200 does not. */
    @Param({"8"})
    public int poolMb;

    private Arena arena;
    private Matrix[] pool;
    private int next;
    private Parallel parallel;
    private BatchActivations in;
    private float[][] out;
    private final VectorKernels kernels = new VectorKernels();

    /** Multiply-adds done, reported per second by JMH, in G. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Macs {
        public double gmacPerSecond;
    }

    @Setup(Level.Trial)
    public void setUp() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]), cols = Integer.parseInt(rc[1]);
        parallel = new Parallel(threads);
        arena = Arena.ofShared();
        SplittableRandom rnd = new SplittableRandom(42);
        pool = BenchMatrices.pool(kernel.equals("f32"), rows, cols, poolMb, 1, arena, rnd);
        float[][] x = new float[tokens][];
        for (int t = 0; t < tokens; t++) {
            x[t] = BenchMatrices.gaussian(cols, rnd);
        }
        in = new BatchActivations(tokens, cols);
        in.input(x, tokens, cols);
        in.prepareFor(pool[0]);
        out = new float[tokens][rows];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        parallel.close();
        arena.close();
    }

    @Benchmark
    public float matmul(Macs macs) {
        Matrix m = pool[next];
        next = next + 1 == pool.length ? 0 : next + 1;
        int stride = in.stride(), b = in.tokens();
        switch (m) {
            case Matrix.F32 f -> parallel.forRange(f.rows(), CpuLayer.ROW_GRAIN,
                    (r0, r1) -> BatchMatmul.f32(out, in.xF, stride, b, f, r0, r1));
            case Matrix.Q8 q -> parallel.forRange(q.rows(), CpuLayer.ROW_GRAIN,
                    (r0, r1) -> BatchMatmul.q8(out, in.xT, in.sT, stride, b, q, r0, r1));
            case Matrix.Ggml g -> throw new IllegalStateException();
        }
        macs.gmacPerSecond += (double) m.rows() * m.cols() * b / 1e9;
        return out[0][0];
    }
}
