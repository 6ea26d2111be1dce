package io.github.llama2j.serve;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.chat.ChatTemplate;
import io.github.llama2j.generate.GgufGenerator;
import io.github.llama2j.tokenizer.GgufTokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * GGUF models, as {@code llama2j run MODEL.gguf} runs them ({@link GgufGenerator}): the file's own tokenizer, BOS as
 * the vocabulary asks, the model's end-of-generation tokens ({@code <|im_end|>}, {@code <|eot_id|>}, EOS, ...) ending
 * the answer, and chat rendered with the model's Jinja chat template (special tokens parsed). The sampler does not run
 * at prompt positions, and an end token inside the prompt does not end generation.
 */
public final class GgufFormat implements PromptFormat {
    private final GgufTokenizer tokenizer;
    private final ChatTemplate template; // null: the model has none, chat requests are refused
    private final int seqLen;
    private final int maxTokenBytes; // the longest token text, in UTF-8 bytes (at least the bytes it stands for)

    /** @param template the chat template, or null when the model has none (then only completions work) */
    public GgufFormat(GgufTokenizer tokenizer, ChatTemplate template, int seqLen) {
        this.tokenizer = tokenizer;
        this.template = template;
        this.seqLen = seqLen;
        int max = 1;
        for (int i = 0; i < tokenizer.vocabSize(); i++) {
            max = Math.max(max, tokenizer.tokenText(i).getBytes(StandardCharsets.UTF_8).length);
        }
        this.maxTokenBytes = max;
    }

    @Override
    public Prompt completion(String text) {
        ContextLimit.checkBytes(text.getBytes(StandardCharsets.UTF_8).length, seqLen, maxTokenBytes, "prompt");
        int[] tokens = GgufGenerator.promptTokens(tokenizer, text);
        if (tokens.length == 0) {
            throw ApiException.badRequest("prompt", "the prompt is empty and this model's vocabulary has no BOS token to start from");
        }
        ContextLimit.checkTokens(tokens.length, seqLen, "prompt");
        return prompt(tokens);
    }

    @Override
    public Prompt chat(List<ChatMessage> messages) {
        if (template == null) {
            throw ApiException.badRequest("messages", "this model has no chat template (tokenizer.chat_template);"
                    + " start the server with --chat-template FILE, or use /v1/completions");
        }
        List<io.github.llama2j.chat.ChatMessage> history = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            history.add(new io.github.llama2j.chat.ChatMessage(m.role().name().toLowerCase(Locale.ROOT), m.content()));
        }
        String text;
        try {
            text = template.renderPrompt(history, true, tokenizer.addsBos());
        } catch (Llama2jException e) {
            throw ApiException.badRequest("messages", e.getMessage());
        }
        ContextLimit.checkBytes(text.getBytes(StandardCharsets.UTF_8).length, seqLen, maxTokenBytes, "messages");
        int[] tokens = tokenizer.tokenize(text, true, true);
        if (tokens.length == 0) {
            throw ApiException.badRequest("messages", "the chat template rendered these messages as an empty prompt");
        }
        ContextLimit.checkTokens(tokens.length, seqLen, "messages");
        return prompt(tokens);
    }

    private Prompt prompt(int[] tokens) {
        return new Prompt(tokens, tokenizer::isEndOfGeneration, false, false);
    }

    /** The token's piece as {@code run} prints it ({@code token_to_piece(special = true)}). */
    @Override
    public byte[] piece(int prev, int next) {
        return tokenizer.tokenToPiece(next, true);
    }
}
