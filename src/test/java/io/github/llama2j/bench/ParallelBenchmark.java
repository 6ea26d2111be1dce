package io.github.llama2j.bench;

import io.github.llama2j.cpu.Parallel;
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
import org.openjdk.jmh.infra.Blackhole;

import java.util.concurrent.TimeUnit;

/**
 * The worker pool's cost per parallel step, the price every matmul of a token pays on top of its
 * arithmetic: {@code forRange} over stories110M's 2048 rows (grain 16, as CpuEngine splits them)
 * with a task that does almost nothing ({@code empty}) or about 2 µs of work per 16 rows
 * ({@code work}, a matmul's share at in-cache speed), or a real tiny matmul ({@code matmul}: 2048 × 64 floats, in
 * cache, about 10 µs of arithmetic on one core, so the split and the wake-ups dominate). Average time per call.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes:$(cat target/test-cp.txt) \
 *      org.openjdk.jmh.Main ParallelBenchmark -p threads=1,2,4,16
 * </pre>
 * With more threads than cores the figure is the overhead of waiting for descheduled workers.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class ParallelBenchmark {

    @Param({"1", "2", "4", "16"})
    public int threads;

    @Param({"empty", "work", "matmul"})
    public String task;

    private Parallel parallel;
    private final double[] sink = new double[2048];
    /** {@code matmul}: a tiny float matrix-vector product, (2048 rows, 64 columns) · (64): about 10 µs on one core. */
    private final float[] weights = new float[2048 * 64];
    private final float[] x = new float[64];
    private final float[] out = new float[2048];

    @Setup(Level.Trial)
    public void setUp() {
        parallel = new Parallel(threads);
        java.util.SplittableRandom r = new java.util.SplittableRandom(1);
        for (int i = 0; i < weights.length; i++) {
            weights[i] = (float) r.nextDouble(-1, 1);
        }
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextDouble(-1, 1);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        parallel.close();
    }

    @Benchmark
    public void forRange(Blackhole bh) {
        if (task.equals("matmul")) {
            parallel.forRange(2048, 16, (s, e) -> {
                for (int r = s; r < e; r++) {
                    float acc = 0;
                    for (int k = 0, base = r * 64; k < 64; k++) {
                        acc += weights[base + k] * x[k];
                    }
                    out[r] = acc;
                }
            });
            bh.consume(out);
            return;
        }
        boolean work = task.equals("work");
        parallel.forRange(2048, 16, (s, e) -> {
            if (work) {
                for (int r = s; r < e; r++) {
                    Blackhole.consumeCPU(12); // roughly 2 µs per 16 rows
                }
            }
            sink[s] = e;
        });
        bh.consume(sink);
    }
}
