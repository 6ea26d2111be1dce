package io.github.llama2j.generate;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.Tokenizer;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * run.c's generate() and chat() loops over any {@link InferenceEngine}: the same positions, the same
 * sampler calls, the same bytes on stdout (prompt echo, safe printing, chat template, the final newline).
 */
public final class Generator {
    private static final byte[] NEWLINE = {'\n'};

    private final InferenceEngine engine;
    private final Tokenizer tokenizer;
    private final Sampler sampler;
    private final OutputStream out;

    /**
     * What a run did: the tokens fed at each position, what the sampler returned, and timings.
     *
     * @param promptTokens    positions fed with tokens that were not sampled there (the prompt's; in a chat every
     *                        turn's, and a GGUF chat's conversation fed again when old turns were dropped)
     * @param generatedTokens tokens sampled (the last one, or an end token, is not fed)
     * @param fedAtFirstToken positions fed when the first token was sampled (the prompt's, in generate mode)
     */
    public record Result(List<Integer> fed, List<Integer> sampled, int promptTokens, int generatedTokens,
                         long startNanos, long firstTokenNanos, long endNanos, int fedAtFirstToken) {

        /** Milliseconds from the start until the first sampled (not prompt) token; -1 if none. */
        public double timeToFirstTokenMillis() {
            return firstTokenNanos < 0 ? -1 : (firstTokenNanos - startNanos) / 1e6;
        }

        /**
         * Positions forwarded per second after the first sampled token: the positions fed since, over the time since
         * (their forward passes, sampling and printing). As llama2.c's "achieved tok/s", which leaves out its first
         * position, it leaves out what comes before generation proper: here the prompt (a batch) and the wait for the
         * first token; so it compares with {@code bench}'s tg. 0 when no position followed the first token.
         */
        public double tokensPerSecond() {
            long t = endNanos - firstTokenNanos;
            int positions = fed.size() - fedAtFirstToken;
            return firstTokenNanos < 0 || t <= 0 || positions <= 0 ? 0 : positions * 1e9 / t;
        }

        /** Positions forwarded per second over the whole run, the prompt and the first token included. */
        public double overallTokensPerSecond() {
            long t = endNanos - startNanos;
            return t <= 0 ? 0 : fed.size() * 1e9 / t;
        }
    }

    public Generator(InferenceEngine engine, Tokenizer tokenizer, Sampler sampler, OutputStream out) {
        this.engine = engine;
        this.tokenizer = tokenizer;
        this.sampler = sampler;
        this.out = out;
    }

    /** run.c's rule: 0 (or more than seq_len) steps means seq_len. */
    public static int effectiveSteps(int steps, int seqLen) {
        if (steps < 0) {
            throw new Llama2jException("steps is " + steps + ", must be >= 0 (0 means the model's seq_len)",
                    Llama2jException.BAD_USAGE);
        }
        return steps == 0 || steps > seqLen ? seqLen : steps;
    }

    /** run.c's generate(): forward the prompt, then sample until {@code steps} positions or BOS ({@link TokenGenerator}). */
    public Result generate(byte[] prompt, int steps) {
        int seqLen = engine.config().seqLen();
        steps = effectiveSteps(steps, seqLen);
        int[] promptTokens = tokenizer.encode(prompt == null ? new byte[0] : prompt, true, false);
        if (promptTokens.length > seqLen) {
            throw new Llama2jException("prompt is " + promptTokens.length + " tokens, longer than the model's seq_len "
                    + seqLen, Llama2jException.BAD_USAGE);
        }
        TokenGenerator.Outcome o = new TokenGenerator(engine, sampler).generate(
                new TokenGenerator.Request(promptTokens, steps, Integer.MAX_VALUE, t -> t == Tokenizer.BOS, true, false),
                (prev, next, sampled) -> {
                    write(tokenizer.decodePrintable(prev, next));
                    return true;
                });
        write(NEWLINE);
        // TokenGenerator samples its first token after the prompt's last position
        return new Result(o.fed(), o.sampled(), o.promptTokens(), o.generated(), o.startNanos(), o.firstTokenNanos(),
                o.endNanos(), Math.min(o.promptTokens(), o.fed().size()));
    }

    /**
     * run.c's chat(): Llama 2's [INST] template (with a &lt;&lt;SYS&gt;&gt; block on the first turn when a
     * system prompt is given), user turns read from {@code stdin} one line at a time (on end of input
     * the previous prompt is reused, as fgets leaves run.c's buffer untouched), EOS ending a turn.
     *
     * @param userPrompt   first user prompt, or null to read it from stdin
     * @param systemPrompt system prompt, or null to read it from stdin
     */
    public Result chat(byte[] userPrompt, byte[] systemPrompt, int steps, InputStream stdin) {
        int seqLen = engine.config().seqLen();
        steps = effectiveSteps(steps, seqLen);
        List<Integer> fed = new ArrayList<>(), sampled = new ArrayList<>();
        long start = System.nanoTime(), first = -1;
        int generated = 0, fedAtFirst = 0, promptFed = 0;
        InputWaits waits = new InputWaits(); // waiting for the user's lines: not timed
        byte[] system = new byte[0];
        byte[] user = new byte[0];
        int[] promptTokens = new int[0];
        int userIdx = 0;
        boolean userTurn = true;
        int next = 0, token, pos = 0;
        while (pos < steps) {
            if (userTurn) {
                if (pos == 0) {
                    if (systemPrompt == null) {
                        write("Enter system prompt (optional): ".getBytes(StandardCharsets.US_ASCII));
                        byte[] previous = system;
                        system = waits.read(() -> readLine(stdin, previous), false);
                    } else {
                        system = systemPrompt;
                    }
                }
                if (pos == 0 && userPrompt != null) {
                    user = userPrompt;
                } else {
                    write("User: ".getBytes(StandardCharsets.US_ASCII));
                    byte[] previous = user;
                    user = waits.read(() -> readLine(stdin, previous), first >= 0);
                }
                promptTokens = tokenizer.encode(Llama2Chat.userTurn(pos == 0 ? system : null, user), true, false);
                if (pos == 0 && promptTokens.length > seqLen) { // as generate: an error, not a reply that never starts
                    throw new Llama2jException("the first turn is " + promptTokens.length + " tokens, longer than the model's seq_len "
                            + seqLen, Llama2jException.BAD_USAGE);
                }
                userIdx = 0;
                userTurn = false;
                write("Assistant: ".getBytes(StandardCharsets.US_ASCII));
            }
            boolean fromPrompt = userIdx < promptTokens.length;
            token = fromPrompt ? promptTokens[userIdx++] : next;
            if (fromPrompt) {
                promptFed++;
            }
            if (token == Tokenizer.EOS) {
                userTurn = true;
            }
            float[] logits = engine.forward(token, pos);
            fed.add(token);
            next = sampler.sample(logits);
            sampled.add(next);
            pos++;
            if (userIdx >= promptTokens.length && next != Tokenizer.EOS) {
                if (first < 0) {
                    first = System.nanoTime();
                    fedAtFirst = fed.size();
                }
                generated++;
                write(tokenizer.decodePrintable(token, next));
            }
            if (next == Tokenizer.EOS) {
                write(NEWLINE);
            }
        }
        write(NEWLINE);
        return new Result(fed, sampled, promptFed, generated, waits.start(start), first, waits.end(System.nanoTime()), fedAtFirst);
    }

    /** fgets() then strip one trailing newline; at end of input the previous buffer is kept. */
    private static byte[] readLine(InputStream in, byte[] previous) {
        byte[] line = Streams.readLine(in);
        return line == null ? previous : line;
    }

    private void write(byte[] bytes) {
        Streams.write(out, bytes);
    }
}
