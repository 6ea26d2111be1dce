package io.github.llama2j.generate;

import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.sampling.Sampler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntPredicate;

/**
 * The loop under {@code llama2j run} (generate mode) and {@code llama2j serve}: feed the prompt from
 * position 0 (as one {@link InferenceEngine#forwardBatch}, unless the prompt positions are sampled), then
 * sample one token per position, reporting every transition
 * {@code prev -> next} to a {@link Listener} before {@code next} is fed. It stops at an end token, at
 * the position or new-token limit, or when the listener says so (a stop string, a client that went away).
 *
 * <p>run.c's generate() is this loop with {@code endTokenInPrompt} set (it checks for BOS at every
 * position); run.c's chat() also samples at prompt positions (the sampler's coin advances there, so the
 * same seed gives the same text only when that is kept).
 */
public final class TokenGenerator {

    /** Why generation ended. */
    public enum Finish {
        /** the next token was an end token (not reported to the listener) */
        END_TOKEN,
        /** the position limit (the context) or the new-token limit was reached */
        LENGTH,
        /** the listener returned false */
        HALTED
    }

    /**
     * What to generate.
     *
     * @param prompt           the prompt tokens (at least one: BOS for an empty prompt), fed from position 0
     * @param maxPositions     positions to run at most, prompt included (at most the model's seq_len)
     * @param maxNewTokens     sampled tokens at most (after the prompt), >= 1
     * @param endToken         tokens that end generation
     * @param endTokenInPrompt whether a prompt token that is an end token also ends it (run.c's generate())
     * @param samplePrompt     whether to sample at prompt positions too, discarding the result (run.c's chat())
     */
    public record Request(int[] prompt, int maxPositions, int maxNewTokens, IntPredicate endToken,
                          boolean endTokenInPrompt, boolean samplePrompt) {
        public Request {
            if (prompt.length == 0) {
                throw new IllegalArgumentException("empty prompt: at least BOS is fed");
            }
            if (maxPositions < 1 || maxNewTokens < 1) {
                throw new IllegalArgumentException("maxPositions " + maxPositions + " and maxNewTokens " + maxNewTokens
                        + " must be >= 1");
            }
        }
    }

    /** Receives each transition before {@code next} is fed. */
    @FunctionalInterface
    public interface Listener {
        /**
         * @param prev    the token just fed
         * @param next    the token that follows it (a prompt token or a sampled one)
         * @param sampled whether {@code next} was sampled (false while the prompt is being fed)
         * @return false to stop here ({@link Finish#HALTED})
         */
        boolean onToken(int prev, int next, boolean sampled);
    }

    /**
     * What a generation did.
     *
     * @param fed       the token fed at each position
     * @param sampled   what the sampler returned, in order (prompt positions included when they are sampled)
     * @param generated sampled tokens after the prompt, the end token included
     */
    public record Outcome(Finish finish, List<Integer> fed, List<Integer> sampled, int promptTokens, int generated,
                          long startNanos, long firstTokenNanos, long endNanos) {
    }

    private final InferenceEngine engine;
    private final Sampler sampler;

    public TokenGenerator(InferenceEngine engine, Sampler sampler) {
        this.engine = engine;
        this.sampler = sampler;
    }

    public Outcome generate(Request request, Listener listener) {
        int[] prompt = request.prompt();
        List<Integer> fed = new ArrayList<>(), sampled = new ArrayList<>();
        long start = System.nanoTime(), first = -1;
        int generated = 0;
        int token = prompt[0];
        int pos = 0;
        // The prompt goes through the engine as one batch (positions [0, batched)), then its transitions are
        // reported as before; only the last position's logits are needed, unless the prompt is sampled.
        int batched = request.samplePrompt() ? 0 : prefillLength(request);
        float[] batchLogits = batched > 0 ? engine.forwardBatch(Arrays.copyOf(prompt, batched), 0) : null;
        Finish finish;
        while (true) {
            if (pos >= request.maxPositions() || generated >= request.maxNewTokens()) {
                finish = Finish.LENGTH;
                break;
            }
            float[] logits = pos < batched ? batchLogits : engine.forward(token, pos);
            fed.add(token);
            boolean fromPrompt = pos < prompt.length - 1;
            int next;
            if (fromPrompt) {
                next = prompt[pos + 1];
                if (request.samplePrompt()) {
                    sampled.add(sampler.sample(logits));
                }
            } else {
                next = sampler.sample(logits);
                sampled.add(next);
                generated++;
                if (first < 0) {
                    first = System.nanoTime();
                }
            }
            pos++;
            if ((!fromPrompt || request.endTokenInPrompt()) && request.endToken().test(next)) {
                finish = Finish.END_TOKEN;
                break;
            }
            if (!listener.onToken(token, next, !fromPrompt)) {
                finish = Finish.HALTED;
                break;
            }
            token = next;
        }
        return new Outcome(finish, fed, sampled, prompt.length, generated, start, first, System.nanoTime());
    }

    /**
     * The positions the loop feeds from the prompt before it samples or stops: the whole prompt, cut at the
     * position limit and, with {@code endTokenInPrompt}, before the position after which an end token comes
     * (the loop stops there). Only the last one's logits are ever read (it is the last prompt position, or the
     * loop stops after it without sampling).
     */
    private static int prefillLength(Request request) {
        int[] prompt = request.prompt();
        int n = Math.min(prompt.length, request.maxPositions());
        if (request.endTokenInPrompt()) {
            for (int i = 1; i < n; i++) {
                if (request.endToken().test(prompt[i])) {
                    return i; // positions 0 .. i-1 are fed; after i-1 the next token is an end token
                }
            }
        }
        return n;
    }
}
