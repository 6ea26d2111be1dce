package io.github.llama2j.serve;

import java.util.List;
import java.util.function.IntPredicate;

/**
 * How the server turns a request into tokens and tokens back into text, for one model family: the seam
 * where another tokenizer and chat template plug in. {@link Llama2Format} is llama2.c's (run.c's
 * tokenizer and Llama 2 {@code [INST]} template); {@link GgufFormat} is a GGUF model's (its own chat
 * template, ending on its end-of-generation tokens).
 *
 * <p>Implementations are called from many request threads at once and must be thread-safe. Bad input
 * (a conversation the template cannot render, a prompt longer than the context) is an {@link ApiException}.
 */
public interface PromptFormat {

    /**
     * Tokens to feed and where generation ends.
     *
     * @param tokens       the prompt tokens, fed from position 0 (never empty)
     * @param end          tokens that end the answer (not part of it)
     * @param endInPrompt  whether an end token inside the prompt ends generation too (run.c's generate())
     * @param samplePrompt whether the sampler also runs at prompt positions (run.c's chat(): its coin
     *                     advances there, so the same seed gives run's text only with this kept)
     */
    record Prompt(int[] tokens, IntPredicate end, boolean endInPrompt, boolean samplePrompt) {
        public Prompt {
            if (tokens.length == 0) {
                throw new IllegalArgumentException("a prompt has at least one token");
            }
        }
    }

    /** The prompt of {@code POST /v1/completions}: the text as {@code llama2j run -i} would feed it. */
    Prompt completion(String text);

    /** The prompt of {@code POST /v1/chat/completions}: the conversation, up to where the assistant's answer starts. */
    Prompt chat(List<ChatMessage> messages);

    /** The bytes that token {@code next} adds to the answer after token {@code prev} (may be a partial UTF-8 sequence). */
    byte[] piece(int prev, int next);
}
