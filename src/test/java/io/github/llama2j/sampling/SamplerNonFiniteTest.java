package io.github.llama2j.sampling;

import io.github.llama2j.Llama2jException;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * NaN or infinite logits (a NaN block scale or weight in the file, activations that overflowed) are an error naming
 * the cause, never a token: greedy decoding printed token 0 over and over, sampling the vocabulary's last token.
 * Masked tokens (-infinity) beside finite logits still sample.
 */
class SamplerNonFiniteTest {
    private static final int VOCAB = 50;
    private final long seed = new SplittableRandom().nextLong();
    private final SplittableRandom rnd = new SplittableRandom(seed);

    private float[] finite() {
        float[] l = new float[VOCAB];
        for (int i = 0; i < VOCAB; i++) {
            l[i] = (float) (rnd.nextDouble() * 8 - 4);
        }
        return l;
    }

    private void assertNonFinite(Sampler s, float[] logits, String what) {
        NonFiniteLogitsException e = assertThrows(NonFiniteLogitsException.class, () -> s.sample(logits), what + " (seed " + seed + ")");
        assertEquals(NonFiniteLogitsException.MESSAGE, e.getMessage());
        assertEquals(Llama2jException.BAD_INPUT, e.exitCode());
        assertEquals("m.gguf: " + NonFiniteLogitsException.MESSAGE, e.naming("m.gguf").getMessage());
    }

    @Test
    void greedyRefusesANonFiniteChoice() {
        Sampler greedy = new Sampler(VOCAB, 0f, 0.9f, 1);
        float[] allNaN = new float[VOCAB];
        java.util.Arrays.fill(allNaN, Float.NaN);
        assertNonFinite(greedy, allNaN, "every logit NaN");
        float[] nanFirst = finite();
        nanFirst[0] = Float.NaN; // argmax's strict > never leaves index 0
        assertNonFinite(greedy, nanFirst, "NaN at index 0");
        float[] nanElsewhere = finite();
        nanElsewhere[1 + rnd.nextInt(VOCAB - 1)] = Float.NaN; // passed over by argmax's strict >, found by its scan
        assertNonFinite(greedy, nanElsewhere, "one NaN among finite logits");
        float[] inf = finite();
        inf[rnd.nextInt(VOCAB)] = Float.POSITIVE_INFINITY;
        assertNonFinite(greedy, inf, "+infinity");
        float[] ok = finite();
        int best = Sampler.argmax(ok, VOCAB);
        assertEquals(best, greedy.sample(ok.clone()), "finite logits (seed " + seed + ")");
        float[] masked = finite();
        masked[best] = Float.NEGATIVE_INFINITY; // masked tokens are fine while a finite one is largest
        assertEquals(Sampler.argmax(masked, VOCAB), greedy.sample(masked.clone()));
    }

    @Test
    void samplingRefusesAnyNaNOrPositiveInfinity() {
        for (float temperature : new float[]{0.5f, 1f}) {
            for (float topP : new float[]{0.9f, 1f}) {
                Sampler s = new Sampler(VOCAB, temperature, topP, 7);
                float[] oneNaN = finite();
                oneNaN[1 + rnd.nextInt(VOCAB - 1)] = Float.NaN;
                assertNonFinite(s, oneNaN, "one NaN, t " + temperature + ", top-p " + topP);
                float[] inf = finite();
                inf[rnd.nextInt(VOCAB)] = Float.POSITIVE_INFINITY;
                assertNonFinite(s, inf, "+infinity");
                float[] allMasked = new float[VOCAB];
                java.util.Arrays.fill(allMasked, Float.NEGATIVE_INFINITY);
                assertNonFinite(s, allMasked, "every token masked");
                float[] masked = finite();
                for (int i = 0; i < VOCAB; i += 2) {
                    masked[i] = Float.NEGATIVE_INFINITY;
                }
                int token = s.sample(masked);
                assertEquals(1, token % 2, "a masked token sampled: " + token + " (seed " + seed + ")");
            }
        }
    }

    /**
     * Finite logits that a tiny temperature turns into +infinity are the options' fault: a usage error naming the
     * temperature, not the model's "NaN or infinite" error (which `-t 1e-40` gave before). Masked tokens beside them
     * change nothing; a temperature that does not overflow still samples.
     */
    @Test
    void aTemperatureThatOverflowsTheLogitsIsAUsageError() {
        for (float temperature : new float[]{1e-40f, Float.MIN_VALUE}) {
            Sampler s = new Sampler(VOCAB, temperature, 0.9f, 3);
            for (boolean masked : new boolean[]{false, true}) {
                float[] logits = finite();
                logits[rnd.nextInt(VOCAB)] = 3.5f; // (at least one positive logit, which overflows)
                if (masked) {
                    logits[0] = Float.NEGATIVE_INFINITY;
                }
                Llama2jException e = assertThrows(Llama2jException.class, () -> s.sample(logits), "t " + temperature + " (seed " + seed + ")");
                assertEquals(Llama2jException.class, e.getClass(), e.getMessage());
                assertEquals(Llama2jException.BAD_USAGE, e.exitCode());
                assertEquals("temperature " + temperature + " is too small: the logits divided by it overflow a float; use a"
                        + " larger temperature, or 0 for greedy decoding", e.getMessage());
            }
        }
        float[] nan = finite();
        nan[1] = Float.NaN; // a NaN logit stays the model's error at any temperature
        assertNonFinite(new Sampler(VOCAB, 1e-40f, 0.9f, 3), nan, "NaN at a tiny temperature");
        float[] small = finite(); // |logit| <= 4: 4 / 1e-30 is finite
        int token = new Sampler(VOCAB, 1e-30f, 0.9f, 3).sample(small.clone());
        assertEquals(Sampler.argmax(small, VOCAB), token, "a tiny temperature that does not overflow is greedy in effect");
    }
}
