package io.github.llama2j.sampling;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.math.FloatMath;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Top-k and min-p: off by default (run.c's draws unchanged), and when on they keep exactly the tokens they should. */
class SamplerFilterTest {
    private static final int VOCAB = 64;

    private static float[] randomLogits(Random r) {
        float[] l = new float[VOCAB];
        for (int i = 0; i < VOCAB; i++) {
            l[i] = (float) (r.nextGaussian() * 2);
        }
        return l;
    }

    @Test
    void offMeansRunCsDraws() {
        for (float topp : new float[]{0f, 0.5f, 0.9f, 1f}) {
            Sampler plain = new Sampler(VOCAB, 0.8f, topp, 42);
            Sampler off = new Sampler(VOCAB, 0.8f, topp, 0, 0f, 42, FloatMath.standard());
            Sampler kAll = new Sampler(VOCAB, 0.8f, topp, VOCAB, 0f, 42, FloatMath.standard());
            Random r = new Random(7);
            for (int step = 0; step < 500; step++) {
                float[] l = randomLogits(r);
                int a = plain.sample(l.clone());
                assertEquals(a, off.sample(l.clone()), "top-k 0, min-p 0, top-p " + topp + ", step " + step);
                assertEquals(a, kAll.sample(l.clone()), "top-k = vocabulary, top-p " + topp + ", step " + step);
            }
        }
    }

    @Test
    void topKKeepsTheKLikeliest() {
        Random r = new Random(1);
        for (int k : new int[]{1, 2, 5}) {
            Sampler s = new Sampler(VOCAB, 1f, 0f, k, 0f, 3, FloatMath.standard());
            boolean[] seen = new boolean[VOCAB];
            float[] l = randomLogits(r);
            int[] order = byDescendingLogit(l);
            for (int step = 0; step < 4000; step++) {
                int t = s.sample(l.clone());
                seen[t] = true;
                assertTrue(rank(order, t) < k, "k " + k + ": token " + t + " has rank " + rank(order, t));
            }
            for (int i = 0; i < k; i++) {
                assertTrue(seen[order[i]], "k " + k + ": rank " + i + " never drawn");
            }
        }
    }

    @Test
    void minPKeepsTokensNearTheTop() {
        float[] l = new float[VOCAB];
        java.util.Arrays.fill(l, -10f);
        l[3] = 0f;                      // p_max
        l[9] = (float) Math.log(0.5);   // p = 0.5 p_max: kept with min-p 0.4
        l[20] = (float) Math.log(0.3);  // p = 0.3 p_max: dropped with min-p 0.4
        Sampler s = new Sampler(VOCAB, 1f, 0f, 0, 0.4f, 5, FloatMath.standard());
        int[] counts = new int[VOCAB];
        int n = 6000;
        for (int step = 0; step < n; step++) {
            counts[s.sample(l.clone())]++;
        }
        assertEquals(n, counts[3] + counts[9], "only tokens 3 and 9 survive min-p 0.4");
        // renormalized: 1/1.5 and 0.5/1.5
        assertEquals(2.0 / 3, counts[3] / (double) n, 0.03);
    }

    @Test
    void topPAppliesToWhatIsKept() {
        float[] l = new float[VOCAB];
        java.util.Arrays.fill(l, -30f);
        l[0] = (float) Math.log(0.5);
        l[1] = (float) Math.log(0.3);
        l[2] = (float) Math.log(0.2);
        // top-k 2 keeps 0.5 and 0.3 (renormalized 0.625, 0.375); top-p 0.6 then keeps only token 0.
        Sampler s = new Sampler(VOCAB, 1f, 0.6f, 2, 0f, 9, FloatMath.standard());
        for (int step = 0; step < 500; step++) {
            assertEquals(0, s.sample(l.clone()));
        }
    }

    @Test
    void badValuesAreRejected() {
        assertThrows(Llama2jException.class, () -> new Sampler(VOCAB, 1f, 0.9f, -1, 0f, 1, FloatMath.standard()));
        assertThrows(Llama2jException.class, () -> new Sampler(VOCAB, 1f, 0.9f, 0, 1.5f, 1, FloatMath.standard()));
        assertThrows(Llama2jException.class, () -> new Sampler(VOCAB, 1f, 0.9f, 0, Float.NaN, 1, FloatMath.standard()));
    }

    private static int[] byDescendingLogit(float[] l) {
        return java.util.stream.IntStream.range(0, l.length).boxed()
                .sorted((a, b) -> l[a] != l[b] ? Float.compare(l[b], l[a]) : Integer.compare(a, b))
                .mapToInt(Integer::intValue).toArray();
    }

    private static int rank(int[] order, int token) {
        for (int i = 0; i < order.length; i++) {
            if (order[i] == token) {
                return i;
            }
        }
        return -1;
    }
}
