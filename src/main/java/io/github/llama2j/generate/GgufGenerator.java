package io.github.llama2j.generate;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.chat.ChatMessage;
import io.github.llama2j.chat.ChatTemplate;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.TextTokenizer;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * Generation and chat for models with a modern tokenizer (GGUF files), as llama.cpp runs them: the prompt is
 * tokenized with BOS as the vocabulary asks, generation stops at the model's end-of-generation tokens
 * ({@code <|eot_id|>}, {@code <|im_end|>}, EOS, ...), each generated token's piece is printed as it comes
 * ({@code token_to_piece(special = true)}, the text of llama.cpp's golden outputs), and chat renders the whole
 * conversation with the model's chat template every turn, reusing the positions whose tokens did not change.
 * llama2.c checkpoints keep run.c's loops in {@link Generator}.
 */
public final class GgufGenerator {
    private static final byte[] NEWLINE = {'\n'};

    private final InferenceEngine engine;
    private final TextTokenizer tokenizer;
    private final Sampler sampler;
    private final OutputStream out;
    private final int modelContext;

    public GgufGenerator(InferenceEngine engine, TextTokenizer tokenizer, Sampler sampler, OutputStream out) {
        this(engine, tokenizer, sampler, out, 0);
    }

    /**
     * @param modelContext the file's context_length, for errors when the engine runs with less (llama2j's default cap);
     *                     0: the engine's seq_len is the model's context
     */
    public GgufGenerator(InferenceEngine engine, TextTokenizer tokenizer, Sampler sampler, OutputStream out, int modelContext) {
        this.engine = engine;
        this.tokenizer = tokenizer;
        this.sampler = sampler;
        this.out = out;
        this.modelContext = modelContext;
    }

    /** "the model's context 4096", or "llama2j's context limit 4096 (the model allows 131072)" when the cap is lower. */
    String contextLimit(int seqLen) {
        return modelContext > seqLen
                ? "llama2j's context limit " + seqLen + " (the model allows " + modelContext + ")"
                : "the model's context " + seqLen;
    }

    /**
     * Prints the prompt, then samples until {@code steps} positions (prompt included; 0 = the context length) or an
     * end-of-generation token, which is not printed. An empty prompt that gives no tokens (Qwen adds no BOS) starts
     * from BOS alone, as llama.cpp's golden runs do.
     */
    public Generator.Result generate(String prompt, int steps) {
        int seqLen = engine.config().seqLen();
        steps = Generator.effectiveSteps(steps, seqLen);
        String text = prompt == null ? "" : prompt;
        int[] promptTokens = promptTokens(tokenizer, text);
        if (promptTokens.length == 0) {
            throw new Llama2jException("the prompt is empty and the vocabulary has no BOS token to start from",
                    Llama2jException.BAD_USAGE);
        }
        if (promptTokens.length > seqLen) {
            throw new Llama2jException("prompt is " + promptTokens.length + " tokens, longer than "
                    + contextLimit(seqLen), Llama2jException.BAD_USAGE);
        }
        write(text.getBytes(StandardCharsets.UTF_8));
        Trace trace = new Trace();
        int prefill = Math.min(promptTokens.length, steps); // the prompt positions fed, as one batch
        float[] logits = trace.forwardBatch(Arrays.copyOf(promptTokens, prefill), 0);
        // sample after the last prompt position and every generated one, until steps positions are fed
        for (int pos = prefill - 1; pos >= promptTokens.length - 1; ) {
            int token = trace.sample(logits);
            if (tokenizer.isEndOfGeneration(token)) {
                break;
            }
            write(tokenizer.tokenToPiece(token, true));
            if (++pos >= steps) {
                break;
            }
            logits = trace.forward(token, pos);
        }
        write(NEWLINE);
        return trace.result(prefill);
    }

    /**
     * The tokens {@link #generate} feeds for {@code text}: BOS as the vocabulary asks, and BOS alone for text that
     * gives no tokens (empty when the vocabulary has no BOS either). {@code llama2j serve} feeds the same.
     */
    public static int[] promptTokens(TextTokenizer tokenizer, String text) {
        int[] tokens = tokenizer.tokenize(text, true, false);
        if (tokens.length == 0 && tokenizer.bos() >= 0) {
            return new int[]{tokenizer.bos()};
        }
        return tokens;
    }

    /**
     * A conversation: each user turn (the first from {@code userPrompt} when given, then one line of {@code stdin}
     * each, until its end) is added to the history, the history is rendered with {@code template} and tokenized
     * (special tokens parsed), the positions that still hold the same tokens are kept, the rest is fed, and the
     * reply is sampled until an end-of-generation token. With {@code steps} below the context it ends when they are
     * used up, as run.c's chat. With {@code steps} the whole context (0), it goes on past it: when a turn, or a
     * reply under way, no longer fits, the oldest exchanges (a user turn and its reply; the system turn stays) are
     * dropped until the conversation takes at most half the context, the rest re-rendered and fed again
     * ({@link #makeRoom}), and {@code notes} says so. A user turn that does not fit even alone is an error; a reply
     * that alone fills the context is cut there.
     *
     * @param systemPrompt the system turn; null asks for it on stdin (empty: none)
     * @param notes        where the notes on dropped turns go (stderr)
     */
    public Generator.Result chat(ChatTemplate template, boolean addsBos, String userPrompt, String systemPrompt,
                                 int steps, InputStream stdin, Consumer<String> notes) {
        int seqLen = engine.config().seqLen();
        steps = Generator.effectiveSteps(steps, seqLen);
        boolean slides = steps == seqLen; // the whole context: old turns make room for new ones
        List<ChatMessage> history = new ArrayList<>();
        String system = systemPrompt;
        if (system == null) {
            write("Enter system prompt (optional): ".getBytes(StandardCharsets.US_ASCII));
            system = readLine(stdin);
        }
        if (system != null && !system.isEmpty()) {
            history.add(new ChatMessage("system", system));
        }
        List<Integer> cache = new ArrayList<>(); // the token at each position fed so far
        Trace trace = new Trace();
        int promptTokens = 0;
        String user = userPrompt;
        boolean firstTurn = true;
        while (true) {
            if (!firstTurn || user == null) {
                write("User: ".getBytes(StandardCharsets.US_ASCII));
                user = trace.waits.read(() -> readLine(stdin), trace.first >= 0);
                if (user == null) {
                    write(NEWLINE); // end of input: the prompt's line ends
                    break;
                }
            }
            firstTurn = false;
            history.add(new ChatMessage("user", user));
            int[] tokens = render(template, history, addsBos, List.of());
            String kept = "";
            if (tokens.length >= steps && slides) {
                int[] fits = makeRoom(template, history, addsBos, List.of(), steps, notes);
                if (fits == null) { // the last turn (with the system prompt) does not fit alone
                    List<ChatMessage> last = new ArrayList<>(history.subList(0, system(history) ? 1 : 0));
                    last.add(history.getLast());
                    tokens = render(template, last, addsBos, List.of());
                    kept = last.size() < history.size() ? " with only its " + (last.size() == 2 ? "system prompt and " : "") + "last turn kept" : "";
                } else {
                    tokens = fits;
                }
            }
            if (tokens.length >= steps) { // an error on stderr, as generate's too-long prompt, not text in the reply
                throw new Llama2jException("the conversation is " + tokens.length + " tokens" + kept + ", it needs fewer than "
                        + (steps < seqLen ? "the " + steps + " positions of -n" : contextLimit(seqLen)), Llama2jException.BAD_USAGE);
            }
            write("Assistant: ".getBytes(StandardCharsets.US_ASCII));
            promptTokens += feed(trace, cache, tokens);
            float[] logits = trace.lastLogits;
            List<Integer> replyTokens = new ArrayList<>();
            List<String> replyNotes = new ArrayList<>(); // said after the reply's line, not inside it
            ByteArrayOutputStream reply = new ByteArrayOutputStream();
            while (true) {
                int next = trace.sample(logits);
                if (tokenizer.isEndOfGeneration(next)) {
                    break;
                }
                byte[] piece = tokenizer.tokenToPiece(next, true);
                write(piece);
                reply.writeBytes(piece);
                if (cache.size() >= steps) {
                    int[] moved = slides ? makeRoom(template, history, addsBos, replyTokens, steps, replyNotes::add) : null;
                    if (moved == null) {
                        if (slides) {
                            replyNotes.add("the reply filled " + contextLimit(seqLen) + ": it is cut here");
                        }
                        break; // out of positions: the reply ends here
                    }
                    promptTokens += feed(trace, cache, moved); // (the conversation fed again, its logits unused)
                }
                logits = trace.forward(next, cache.size());
                cache.add(next);
                replyTokens.add(next);
            }
            write(NEWLINE);
            replyNotes.forEach(notes);
            history.add(new ChatMessage("assistant", reply.toString(StandardCharsets.UTF_8)));
            if (cache.size() >= steps && !slides) {
                break;
            }
        }
        return trace.result(promptTokens);
    }

    /** {@link #chat} printing its notes nowhere. */
    public Generator.Result chat(ChatTemplate template, boolean addsBos, String userPrompt, String systemPrompt,
                                 int steps, InputStream stdin) {
        return chat(template, addsBos, userPrompt, systemPrompt, steps, stdin, note -> { });
    }

    /**
     * Drops the oldest exchanges of {@code history} (after the system turn: a user turn and the assistant turn after
     * it, so the roles still alternate as templates ask) until the rendered conversation, with {@code reply} (a reply
     * under way: the last turn is then the user's it answers) after the generation prompt, takes at most half of
     * {@code steps}, or only the last user turn is left; returns its tokens, or null when it still does not fit
     * {@code steps} (less one position for the next token) or, for a reply under way, still takes more than half
     * (feeding it all again would buy few positions before the reply is cut anyway). Says on {@code notes} how many
     * turns went.
     */
    private int[] makeRoom(ChatTemplate template, List<ChatMessage> history, boolean addsBos, List<Integer> reply,
                           int steps, Consumer<String> notes) {
        List<ChatMessage> kept = new ArrayList<>(history); // history changes only when room is made
        int first = system(kept) ? 1 : 0, dropped = 0;
        int[] tokens = render(template, kept, addsBos, reply);
        while (tokens.length > steps / 2 && kept.size() - first > 1) {
            kept.remove(first); // a user turn
            dropped++;
            if (kept.size() - first > 1 && kept.get(first).role().equals("assistant")) {
                kept.remove(first); // and its reply
                dropped++;
            }
            tokens = render(template, kept, addsBos, reply);
        }
        if (tokens.length >= steps || !reply.isEmpty() && tokens.length > steps / 2) {
            return null;
        }
        history.clear();
        history.addAll(kept);
        if (dropped > 0) {
            notes.accept("the conversation no longer fits " + contextLimit(engine.config().seqLen()) + ": its "
                    + dropped + " oldest turn" + (dropped == 1 ? " is" : "s are") + " dropped (" + tokens.length + " tokens kept)");
        }
        return tokens;
    }

    private static boolean system(List<ChatMessage> history) {
        return !history.isEmpty() && history.get(0).role().equals("system");
    }

    /** The tokens of the conversation rendered with its generation prompt, then {@code reply}'s. */
    private int[] render(ChatTemplate template, List<ChatMessage> history, boolean addsBos, List<Integer> reply) {
        int[] prompt = tokenizer.tokenize(template.renderPrompt(history, true, addsBos), true, true);
        if (prompt.length == 0) { // nothing to feed (a template that renders nothing, a vocabulary without BOS)
            throw new Llama2jException(template.source() + ": the chat template rendered an empty prompt", Llama2jException.BAD_INPUT);
        }
        int[] tokens = Arrays.copyOf(prompt, prompt.length + reply.size());
        for (int i = 0; i < reply.size(); i++) {
            tokens[prompt.length + i] = reply.get(i);
        }
        return tokens;
    }

    /**
     * Feeds {@code tokens} from the first position where the cache holds another token (at least the last one, for
     * its logits: {@link Trace#lastLogits}), as one batch; the cache then holds {@code tokens}. Returns how many
     * positions were fed.
     */
    private static int feed(Trace trace, List<Integer> cache, int[] tokens) {
        int keep = commonPrefix(cache, tokens);
        if (keep == tokens.length) {
            keep--; // feed at least the last token, for its logits
        }
        cache.subList(keep, cache.size()).clear();
        trace.lastLogits = trace.forwardBatch(Arrays.copyOfRange(tokens, keep, tokens.length), keep);
        for (int pos = keep; pos < tokens.length; pos++) {
            cache.add(tokens[pos]);
        }
        return tokens.length - keep;
    }

    /** What a run fed and sampled, and when; forwards through the engine and samples through the sampler. */
    private final class Trace {
        final List<Integer> fed = new ArrayList<>(), sampled = new ArrayList<>();
        final long start = System.nanoTime();
        long first = -1;
        int fedAtFirst;
        /** The logits {@link #feed} left. */
        float[] lastLogits;

        float[] forward(int token, int pos) {
            fed.add(token);
            return engine.forward(token, pos);
        }

        /** The tokens at positions startPos.. as one batch; the last one's logits. */
        float[] forwardBatch(int[] tokens, int startPos) {
            for (int t : tokens) {
                fed.add(t);
            }
            return engine.forwardBatch(tokens, startPos);
        }

        int sample(float[] logits) {
            int next = sampler.sample(logits);
            sampled.add(next);
            if (first < 0) {
                first = System.nanoTime();
                fedAtFirst = fed.size();
            }
            return next;
        }

        /** Waiting for the user's lines: not the engine's time. */
        final InputWaits waits = new InputWaits();

        /** The run, its times without the waits for input (time to first token, tok/s after it). */
        Generator.Result result(int promptTokens) {
            return new Generator.Result(fed, sampled, promptTokens, sampled.size(), waits.start(start), first,
                    waits.end(System.nanoTime()), fedAtFirst);
        }
    }

    private static int commonPrefix(List<Integer> cache, int[] tokens) {
        int n = Math.min(cache.size(), tokens.length);
        int i = 0;
        while (i < n && cache.get(i) == tokens[i]) {
            i++;
        }
        return i;
    }

    /** One line of input without its newline (and a carriage return before it); null at the end of input. */
    private static String readLine(InputStream in) {
        byte[] line = Streams.readLine(in);
        if (line == null) {
            return null;
        }
        String s = new String(line, StandardCharsets.UTF_8);
        return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
    }

    private void write(byte[] bytes) {
        Streams.write(out, bytes);
    }
}
