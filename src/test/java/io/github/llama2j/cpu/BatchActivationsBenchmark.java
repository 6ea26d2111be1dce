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
 * The batched prefill's preparation of its inputs ({@link BatchActivations#prepareFor}): a chunk of tokens'
 * activations quantized (runq Q8, GGML Q8_0 or Q8_K) or rounded (F16) and transposed into the panels the batched products
 * read, or transposed alone (f32), on one thread. Reported as G values prepared per second (the
 * {@code gvaluesPerSecond} counter: tokens × columns). In the cpu package because the class is package-private.
 *
 * <p>Run (after {@code ./mvnw -q -o test-compile}; the classpath is the test classpath, JMH included):
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes:JMH_JARS \
 *      org.openjdk.jmh.Main BatchActivationsBenchmark -p kind=q8
 * </pre>
 * Add {@code -jvmArgsAppend "-XX:UseAVX=2 -XX:MaxVectorSize=32"} for 256 bits, {@code -XX:MaxVectorSize=16} for 128.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class BatchActivationsBenchmark {

    /** Columns: dim (the inputs of qkv, wo, w1/w3) or hidden_dim (w2's) of stories110M. */
    @Param({"768", "2048"})
    public int cols;

    /** f32, q8 (runq, group size 64), or a GGML type (Q8_0, Q4_K, F16): the form that type's weights read. */
    @Param({"f32", "q8", "Q8_0", "Q4_K", "F16"})
    public String kind;

    @Param({"128"})
    public int tokens;

    private Arena arena;
    private Matrix matrix;
    private BatchActivations in;
    private float[][] x;

    /** Values prepared, reported per second by JMH, in G. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Values {
        public double gvaluesPerSecond;
    }

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        SplittableRandom rnd = new SplittableRandom(42);
        matrix = switch (kind) {
            case "f32", "q8" -> BenchMatrices.pool(kind.equals("f32"), 16, cols, 1, 1, arena, rnd)[0];
            default -> BenchMatrices.ggmlPool(kind, 16, cols, 1, 1, arena, rnd)[0];
        };
        x = new float[tokens][];
        for (int t = 0; t < tokens; t++) {
            x[t] = BenchMatrices.gaussian(cols, rnd);
        }
        in = new BatchActivations(tokens, cols);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public float prepare(Values values) {
        in.input(x, tokens, cols); // forgets the prepared forms
        in.prepareFor(matrix);
        values.gvaluesPerSecond += (double) tokens * cols / 1e9;
        return in.stride();
    }
}
