package io.github.llama2j.math;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * softmax's expf (scores minus their max, in place) and SwiGLU over n elements: the C library per element
 * ({@link CLibraryMath}, {@code math=libm}) against {@link VectorExpf} ({@code math=vector}); nanoseconds per call
 * of n elements. n = 512 is a 512-position attention row, 2048 a stories110M hidden row.
 *
 * <p>Run (after {@code ./mvnw -q -o test-compile}; the classpath is the test classpath, JMH included):
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes:JMH_JARS org.openjdk.jmh.Main ExpfBenchmark
 * </pre>
 * Add {@code -jvmArgsAppend "-XX:UseAVX=2 -XX:MaxVectorSize=32"} for 256 bits.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class ExpfBenchmark {
    @Param({"libm", "vector"})
    public String math;

    @Param({"512", "2048"})
    public int n;

    private FloatMath m;
    private float[] scores, work, hb, hb2;

    @Setup
    public void setUp() {
        m = math.equals("libm") ? CLibraryMath.instance().orElseThrow() : FloatMath.vectorized();
        if (math.equals("vector") && !(m instanceof VectorExpMath)) {
            throw new IllegalStateException("the vectorized expf is not in use (self-check failed?)");
        }
        SplittableRandom r = new SplittableRandom(1);
        scores = new float[n];
        hb = new float[n];
        hb2 = new float[n];
        for (int i = 0; i < n; i++) {
            scores[i] = (float) (r.nextGaussian() * 3);
            hb[i] = (float) (r.nextGaussian() * 2);
            hb2[i] = (float) r.nextGaussian();
        }
        work = new float[n];
    }

    @Benchmark
    public float[] softmaxExp() {
        System.arraycopy(scores, 0, work, 0, n);
        m.expShifted(work, 0, n, 9.0f);
        return work;
    }

    @Benchmark
    public float[] swiglu() {
        System.arraycopy(hb, 0, work, 0, n);
        m.swiglu(work, hb2, 0, n);
        return work;
    }
}
