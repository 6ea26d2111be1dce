package io.github.llama2j.sampling;

import io.github.llama2j.math.FloatMath;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The sampler's softmax with its exps in one bulk call ({@link FloatMath#expShifted}, vectorized by
 * {@link FloatMath#vectorized()}, which {@code run} and {@code serve} use) gives run.c's probabilities bit for bit: the
 * same as one C-library expf per element and the same sequential sum; and so the same draws.
 */
class SamplerSoftmaxTest {
    private final long seed = new SplittableRandom().nextLong();
    private final SplittableRandom rnd = new SplittableRandom(seed);

    /** run.c's softmax, one expf call per element, as the sampler computed it before. */
    private static void perElement(float[] x, int size, FloatMath math) {
        float max = x[0];
        for (int i = 1; i < size; i++) {
            if (x[i] > max) {
                max = x[i];
            }
        }
        float sum = 0.0f;
        for (int i = 0; i < size; i++) {
            x[i] = math.exp(x[i] - max);
            sum += x[i];
        }
        for (int i = 0; i < size; i++) {
            x[i] /= sum;
        }
    }

    /** Logits over a wide range: large negative gaps give exps that underflow, round to 0 or are subnormal. */
    private float[] logits(int n) {
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = switch (rnd.nextInt(4)) {
                case 0 -> (float) rnd.nextDouble(-120, 10);
                case 1 -> (float) (rnd.nextGaussian() * 4);
                case 2 -> (float) rnd.nextDouble(-90, -85); // exps near the subnormal boundary below the max
                default -> (float) (rnd.nextGaussian() * 30);
            };
        }
        return l;
    }

    @Test
    void bulkExpsGiveThePerElementProbabilities() {
        for (FloatMath math : new FloatMath[]{FloatMath.vectorized(), FloatMath.standard(), FloatMath.JAVA}) {
            FloatMath reference = math == FloatMath.JAVA ? FloatMath.JAVA : FloatMath.standard();
            for (int n : new int[]{1, 2, 7, 16, 33, 257, 32000, 128256}) {
                float[] a = logits(n), b = a.clone();
                Sampler.softmax(a, n, math);
                perElement(b, n, reference);
                for (int i = 0; i < n; i++) {
                    assertEquals(Float.floatToRawIntBits(b[i]), Float.floatToRawIntBits(a[i]),
                            "seed " + seed + ", " + math.name() + ", n " + n + ", element " + i + ": " + a[i] + " vs " + b[i]);
                }
            }
        }
    }

    @Test
    void vectorizedMathDrawsTheSameTokens() {
        int vocab = 1000;
        for (float topp : new float[]{0.9f, 1f}) {
            Sampler plain = new Sampler(vocab, 1.0f, topp, 0, 0f, 11, FloatMath.standard());
            Sampler fast = new Sampler(vocab, 1.0f, topp, 0, 0f, 11, FloatMath.vectorized());
            for (int step = 0; step < 300; step++) {
                float[] l = logits(vocab);
                assertEquals(plain.sample(l.clone()), fast.sample(l.clone()), "seed " + seed + ", top-p " + topp + ", step " + step);
            }
        }
    }
}
