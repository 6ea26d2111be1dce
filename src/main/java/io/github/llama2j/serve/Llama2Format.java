package io.github.llama2j.serve;

import io.github.llama2j.generate.Llama2Chat;
import io.github.llama2j.tokenizer.Tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * llama2.c's models: run.c's tokenizer, its generate() for completions (BOS ends the text) and its
 * chat() template for chat (Llama 2's {@code [INST]}, a {@code <<SYS>>} block in the first turn, EOS
 * ending the answer). Earlier turns of a conversation are rendered as Llama 2 does:
 * {@code BOS [INST] user [/INST] answer EOS} per turn.
 */
public final class Llama2Format implements PromptFormat {
    private final Tokenizer tokenizer;
    private final int seqLen;

    public Llama2Format(Tokenizer tokenizer, int seqLen) {
        this.tokenizer = tokenizer;
        this.seqLen = seqLen;
    }

    @Override
    public Prompt completion(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        checkLength(bytes.length, "prompt");
        int[] tokens = tokenizer.encode(bytes, true, false);
        checkTokens(tokens.length, "prompt");
        return new Prompt(tokens, t -> t == Tokenizer.BOS, true, false);
    }

    @Override
    public Prompt chat(List<ChatMessage> messages) {
        int i = 0;
        byte[] system = null;
        if (!messages.isEmpty() && messages.getFirst().role() == ChatMessage.Role.SYSTEM) {
            system = utf8(messages.getFirst().content());
            i = 1;
        }
        long total = 0;
        for (ChatMessage m : messages) {
            total += utf8(m.content()).length;
        }
        checkLength(total, "messages");
        List<int[]> parts = new ArrayList<>(); // the tokens of each turn
        boolean first = true;
        for (; i < messages.size(); i += 2) {
            ChatMessage user = messages.get(i);
            if (user.role() != ChatMessage.Role.USER) {
                throw ApiException.badRequest("messages[" + i + "].role", "messages[" + i + "] is " + aOrAn(user.role())
                        + " message where a user message was expected: after an optional first system message, this model's"
                        + " chat template takes user and assistant messages in turn, ending with a user message");
            }
            byte[] turn = Llama2Chat.userTurn(first ? system : null, utf8(user.content()));
            first = false;
            if (i + 1 == messages.size()) {
                parts.add(tokenizer.encode(turn, true, false));
                break;
            }
            ChatMessage answer = messages.get(i + 1);
            if (answer.role() != ChatMessage.Role.ASSISTANT) {
                throw ApiException.badRequest("messages[" + (i + 1) + "].role", "messages[" + (i + 1) + "] is "
                        + aOrAn(answer.role()) + " message where an assistant message was expected (user and assistant"
                        + " messages take turns, ending with a user message)");
            }
            byte[] withAnswer = concat(turn, utf8(" " + answer.content().strip() + " "));
            parts.add(tokenizer.encode(withAnswer, true, true));
        }
        if (parts.isEmpty()) {
            throw ApiException.badRequest("messages", "messages must hold at least one user message");
        }
        if (messages.getLast().role() != ChatMessage.Role.USER) {
            throw ApiException.badRequest("messages", "the last message must be a user message");
        }
        int n = parts.stream().mapToInt(p -> p.length).sum();
        int[] all = new int[n];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, all, at, p.length);
            at += p.length;
        }
        checkTokens(all.length, "messages");
        return new Prompt(all, t -> t == Tokenizer.EOS, false, true);
    }

    @Override
    public byte[] piece(int prev, int next) {
        return tokenizer.decodePrintable(prev, next);
    }

    private void checkLength(long bytes, String param) {
        ContextLimit.checkBytes(bytes, seqLen, tokenizer.maxTokenLength(), param);
    }

    private void checkTokens(int tokens, String param) {
        ContextLimit.checkTokens(tokens, seqLen, param);
    }

    /** "a user", "a system", "an assistant": the role's name with its article. */
    private static String aOrAn(ChatMessage.Role role) {
        String name = role.name().toLowerCase(Locale.ROOT);
        return ("aeiou".indexOf(name.charAt(0)) >= 0 ? "an " : "a ") + name;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
