package io.github.llama2j.tornado;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.Locale;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The TornadoVM engine's batched prefill ({@link TornadoEngine#forwardBatch}, {@link PrefillGraph}) against its own
 * token-by-token path ({@link TornadoEngine#forward}) on one engine, built with chunks of {@value #B} tokens: prompts
 * shorter than a chunk, of exactly one chunk, and of two chunks and a tail; a prompt fed as two batches (the second
 * starting at a later position, as a chat's next turn does); the logits of the last prompt token and then
 * {@value #CONTINUATION} greedy tokens generated after each must agree, so the prefill wrote every key/value cache row
 * the token path reads.
 *
 * <p>Tolerance, relative to the largest |logit|: {@value #TOLERANCE}. Per token the prefill kernels do the one-token
 * kernels' operations in the same order (same helpers, strides and reduction trees, same work-group sizes), so the
 * logits agree to float rounding; PoCL's compiler may still contract a multiply-add differently in the two kernels,
 * which moves a logit by an ulp or so (observed maximum printed by the test). For Q8_0 (runq) the same holds as long
 * as no activation lands on the other side of an int8 rounding boundary (docs/correctness.md); with identical
 * per-token arithmetic none did in these runs, so Q8 is held to the same bound and to identical greedy tokens.
 */
@Tag("tornado")
class PrefillVsTokenTest {
    static final int B = 8, CONTINUATION = 12;
    static final double TOLERANCE = 1e-5;

    @ParameterizedTest
    @ValueSource(strings = {"stories260K.bin", "tiny_q80.bin", "tiny_unshared_q80.bin", "tiny_unshared.bin"})
    void batchedPrefillMatchesTokenByToken(String file) {
        Model model = TestEngines.model(file);
        Random rnd = new Random(file.hashCode());
        int vocab = model.config().vocabSize();
        EngineOptions options = new EngineOptions("tornado", 1, false, null, Double.NaN, false, false);
        try (TornadoEngine e = new TornadoEngine(DeviceSession.open(null), model, options, null, B)) {
            assertEquals(B, e.prefillChunk(), "chunk");
            assertEquals(5 * model.config().nLayers() + 2, e.launchesPerChunk(), "launches per chunk: 5 per layer + embed + classifier");
            double worst = 0;
            for (int len : new int[]{5, B, 2 * B + 5}) {
                int[] prompt = prompt(rnd, len, vocab);
                float[] expected = null;
                for (int i = 0; i < len; i++) {
                    expected = e.forward(prompt[i], i).clone();
                }
                int[] tokenPath = greedy(e, expected, len);
                float[] actual = e.forwardBatch(prompt, 0).clone();
                worst = Math.max(worst, check(file + " prompt of " + len, expected, actual));
                assertArrayEquals(tokenPath, greedy(e, actual, len), file + " prompt of " + len + ": greedy continuation");
            }
            // a prompt in two batches, the second from position 6 (a chat's next turn), against the same tokens one by one
            int[] prompt = prompt(rnd, 6 + B + 3, vocab);
            float[] expected = null;
            for (int i = 0; i < prompt.length; i++) {
                expected = e.forward(prompt[i], i).clone();
            }
            int[] tokenPath = greedy(e, expected, prompt.length);
            e.forwardBatch(Arrays.copyOfRange(prompt, 0, 6), 0);
            float[] actual = e.forwardBatch(Arrays.copyOfRange(prompt, 6, prompt.length), 6).clone();
            worst = Math.max(worst, check(file + " prompt in two batches", expected, actual));
            assertArrayEquals(tokenPath, greedy(e, actual, prompt.length), file + " prompt in two batches: greedy continuation");
            System.out.printf(Locale.ROOT, "%s: batched prefill vs token by token, largest relative logit difference %.3g%n", file, worst);
        }
    }

    /** BOS, then random tokens. */
    static int[] prompt(Random rnd, int len, int vocab) {
        int[] p = new int[len];
        p[0] = 1;
        for (int i = 1; i < len; i++) {
            p[i] = rnd.nextInt(vocab);
        }
        return p;
    }

    static double check(String what, float[] expected, float[] actual) {
        double rel = ForwardVsCpuTest.relativeDiff(expected, actual);
        assertTrue(rel <= TOLERANCE, what + ": relative logit difference " + rel);
        return rel;
    }

    /** {@value #CONTINUATION} greedy tokens after a prompt of {@code len} whose last logits are {@code logits}. */
    static int[] greedy(TornadoEngine e, float[] logits, int len) {
        int[] out = new int[CONTINUATION];
        float[] l = logits;
        for (int i = 0; i < CONTINUATION; i++) {
            out[i] = argmax(l);
            l = e.forward(out[i], len + i);
        }
        return out;
    }

    static int argmax(float[] a) {
        int best = 0;
        for (int i = 1; i < a.length; i++) {
            if (a[i] > a[best]) {
                best = i;
            }
        }
        return best;
    }
}
