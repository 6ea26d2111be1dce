package io.github.llama2j.generate;

import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.sampling.Sampler;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link TokenGenerator}'s limits and stops on an engine whose greedy next token is {@code token + 1}
 * (mod the vocabulary), so every position's token is known.
 */
class TokenGeneratorTest {
    static final int VOCAB = 32;
    static final int SEQ_LEN = 20;

    /** Logits peaking at token + 1; checks that positions come in order from 0. */
    static final class Successor implements InferenceEngine {
        int nextPos;
        final Configuration config = new Configuration(8, 16, 1, 2, 2, VOCAB, SEQ_LEN, true, 0);

        @Override
        public String name() {
            return "successor";
        }

        @Override
        public Configuration config() {
            return config;
        }

        @Override
        public float[] forward(int token, int pos) {
            assertEquals(nextPos++, pos, "positions in order from 0");
            float[] logits = new float[VOCAB];
            logits[(token + 1) % VOCAB] = 1;
            return logits;
        }
    }

    record Step(int prev, int next, boolean sampled) {
    }

    /** Runs {@code r} greedily, recording each reported step; the listener halts after {@code haltAfter} steps. */
    static TokenGenerator.Outcome run(TokenGenerator.Request r, List<Step> steps, int haltAfter) {
        return new TokenGenerator(new Successor(), new Sampler(VOCAB, 0f, 0.9f, 1)).generate(r, (prev, next, sampled) -> {
            steps.add(new Step(prev, next, sampled));
            return steps.size() < haltAfter;
        });
    }

    @Test
    void newTokenLimitCountsSampledTokensOnly() {
        List<Step> steps = new ArrayList<>();
        TokenGenerator.Outcome o = run(new TokenGenerator.Request(new int[]{1, 10, 11}, SEQ_LEN, 4, t -> false, false, false),
                steps, Integer.MAX_VALUE);
        assertEquals(TokenGenerator.Finish.LENGTH, o.finish());
        assertEquals(4, o.generated());
        assertEquals(List.of(12, 13, 14, 15), o.sampled());
        assertEquals(List.of(1, 10, 11, 12, 13, 14), o.fed()); // the last sampled token is reported, not fed
        assertEquals(List.of(new Step(1, 10, false), new Step(10, 11, false), new Step(11, 12, true), new Step(12, 13, true),
                new Step(13, 14, true), new Step(14, 15, true)), steps);
    }

    @Test
    void positionLimitIsTheContext() {
        List<Step> steps = new ArrayList<>();
        TokenGenerator.Outcome o = run(new TokenGenerator.Request(new int[]{1}, 5, 1000, t -> false, false, false),
                steps, Integer.MAX_VALUE);
        assertEquals(TokenGenerator.Finish.LENGTH, o.finish());
        assertEquals(5, o.fed().size());
        assertEquals(5, o.generated()); // positions 0..4 each sample one
    }

    @Test
    void endTokenIsNotReported() {
        List<Step> steps = new ArrayList<>();
        TokenGenerator.Outcome o = run(new TokenGenerator.Request(new int[]{3}, SEQ_LEN, 100, t -> t == 6, false, false),
                steps, Integer.MAX_VALUE);
        assertEquals(TokenGenerator.Finish.END_TOKEN, o.finish());
        assertEquals(List.of(4, 5, 6), o.sampled());
        assertEquals(3, o.generated());
        assertEquals(List.of(new Step(3, 4, true), new Step(4, 5, true)), steps);
    }

    @Test
    void endTokenInThePromptEndsOnlyWhenAsked() {
        int[] prompt = {1, 9, 2, 5};
        TokenGenerator.Outcome o = run(new TokenGenerator.Request(prompt, SEQ_LEN, 3, t -> t == 2, true, false),
                new ArrayList<>(), Integer.MAX_VALUE);
        assertEquals(TokenGenerator.Finish.END_TOKEN, o.finish());
        assertEquals(List.of(1, 9), o.fed());
        assertEquals(0, o.generated());
        TokenGenerator.Outcome p = run(new TokenGenerator.Request(prompt, SEQ_LEN, 3, t -> t == 2, false, false),
                new ArrayList<>(), Integer.MAX_VALUE);
        assertEquals(TokenGenerator.Finish.LENGTH, p.finish());
        assertEquals(List.of(6, 7, 8), p.sampled());
    }

    @Test
    void samplingAtPromptPositionsAndHalting() {
        List<Step> steps = new ArrayList<>();
        TokenGenerator.Outcome o = run(new TokenGenerator.Request(new int[]{1, 7, 20}, SEQ_LEN, 100, t -> false, false, true),
                steps, 4);
        assertEquals(TokenGenerator.Finish.HALTED, o.finish());
        assertEquals(List.of(2, 8, 21, 22), o.sampled()); // prompt positions are sampled too, then the answer
        assertEquals(2, o.generated());
        assertEquals(4, steps.size());
    }

    /** Successor that records its batches (start position and tokens). */
    static final class Batching implements InferenceEngine {
        final Successor one = new Successor();
        final List<List<Integer>> batches = new ArrayList<>();

        @Override
        public String name() {
            return "batching";
        }

        @Override
        public Configuration config() {
            return one.config();
        }

        @Override
        public float[] forward(int token, int pos) {
            return one.forward(token, pos);
        }

        @Override
        public float[] forwardBatch(int[] tokens, int startPos) {
            List<Integer> b = new ArrayList<>(List.of(startPos));
            for (int t : tokens) {
                b.add(t);
            }
            batches.add(b);
            return InferenceEngine.super.forwardBatch(tokens, startPos);
        }
    }

    /** The prompt goes in one batch from position 0, cut where the loop stops; not at all when it is sampled. */
    @Test
    void thePromptIsFedAsOneBatch() {
        int[] prompt = {1, 9, 2, 5};
        Object[][] cases = {
                // request, expected batches, expected fed
                {new TokenGenerator.Request(prompt, SEQ_LEN, 2, t -> false, false, false), List.of(List.of(0, 1, 9, 2, 5)), List.of(1, 9, 2, 5, 6)},
                {new TokenGenerator.Request(prompt, SEQ_LEN, 2, t -> t == 2, true, false), List.of(List.of(0, 1, 9)), List.of(1, 9)},
                {new TokenGenerator.Request(prompt, 3, 2, t -> false, false, false), List.of(List.of(0, 1, 9, 2)), List.of(1, 9, 2)},
                {new TokenGenerator.Request(prompt, SEQ_LEN, 2, t -> false, false, true), List.of(), List.of(1, 9, 2, 5, 6)},
        };
        for (Object[] c : cases) {
            Batching e = new Batching();
            TokenGenerator.Outcome o = new TokenGenerator(e, new Sampler(VOCAB, 0f, 0.9f, 1))
                    .generate((TokenGenerator.Request) c[0], (prev, next, sampled) -> true);
            assertEquals(c[1], e.batches);
            assertEquals(c[2], o.fed());
        }
    }
}
