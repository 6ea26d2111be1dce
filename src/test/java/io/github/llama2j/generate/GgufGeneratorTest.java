package io.github.llama2j.generate;

import io.github.llama2j.chat.ChatTemplate;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.GgufTokenizer;
import io.github.llama2j.tokenizer.HandMadeVocab;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The GGUF generation and chat loops over a scripted engine: what is fed where, what is printed, where it stops. */
class GgufGeneratorTest {
    // hand-made SentencePiece ids: 259 ▁, 260 a, 261 b, 262 ▁a, 263 ab, 264 ▁ab, 265 <|im_start|>, 266 <|im_end|>, 267 <user>
    private final GgufTokenizer tok = HandMadeVocab.spm("\u2581", "a", "b", "\u2581a", "ab", "\u2581ab");

    /** Answers each fed token with the one {@code next} maps it to (greedy sampling picks it). */
    private static class ScriptedEngine implements InferenceEngine {
        final List<int[]> fed = new ArrayList<>(); // (token, pos)
        private final Map<Integer, Integer> next;
        private final Configuration config;

        ScriptedEngine(int vocab, int seqLen, Map<Integer, Integer> next) {
            this.next = next;
            this.config = new Configuration(8, 8, 1, 1, 1, vocab, seqLen, true, 0);
        }

        @Override
        public String name() {
            return "scripted";
        }

        @Override
        public Configuration config() {
            return config;
        }

        @Override
        public float[] forward(int token, int pos) {
            if (pos < 0 || pos >= config.seqLen()) {
                throw new IllegalArgumentException("position " + pos + " outside the context " + config.seqLen());
            }
            fed.add(new int[]{token, pos});
            float[] logits = new float[config.vocabSize()];
            logits[next.getOrDefault(token, 261)] = 1; // default: b
            return logits;
        }
    }

    private Sampler greedy() {
        return new Sampler(tok.vocabSize(), 0f, 0.9f, 1);
    }

    @Test
    void generateStopsAtEndOfGenerationWithoutPrintingIt() {
        // prompt "ab" = BOS ▁ab; then ▁a, b, </s>
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 64, Map.of(264, 262, 262, 261, 261, 2));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Generator.Result r = new GgufGenerator(engine, tok, greedy(), out).generate("ab", 0);
        assertEquals("ab ab\n", out.toString(StandardCharsets.UTF_8));
        assertEquals(List.of(1, 264, 262, 261), r.fed());
        assertEquals(List.of(262, 261, 2), r.sampled());
        for (int p = 0; p < engine.fed.size(); p++) {
            assertEquals(p, engine.fed.get(p)[1], "positions in order");
        }
    }

    @Test
    void generateStopsAtSteps() {
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 64, Map.of());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Generator.Result r = new GgufGenerator(engine, tok, greedy(), out).generate("ab", 4); // 2 prompt positions + 2
        assertEquals(4, r.fed().size());
        assertEquals(3, r.sampled().size(), "a token is sampled after each of positions 1, 2, 3");
        assertEquals("abbbb\n", out.toString(StandardCharsets.UTF_8));
    }

    @Test
    void chatKeepsHistoryAndReusesUnchangedPositions() {
        String chatml = "{% for m in messages %}<|im_start|>{{ m.role }}{{ m.content }}<|im_end|>{% endfor %}"
                + "{% if add_generation_prompt %}<|im_start|>assistant{% endif %}";
        ChatTemplate template = new ChatTemplate("test", chatml, "<s>", "</s>");
        // After the assistant header the model says "ab" (▁ab) and ends with <|im_end|>.
        int[] header = tok.tokenize("<|im_start|>assistant", false, true);
        int assistant = header[header.length - 1]; // the last token of the header (the byte token of 't')
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 256, Map.of(assistant, 264, 264, 266));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayInputStream in = new ByteArrayInputStream("b\n".getBytes(StandardCharsets.UTF_8));
        new GgufGenerator(engine, tok, greedy(), out).chat(template, true, "a", "", 0, in);
        assertEquals("Assistant:  ab\nUser: Assistant:  ab\nUser: \n", out.toString(StandardCharsets.UTF_8));

        String turn1 = template.renderPrompt(List.of(new io.github.llama2j.chat.ChatMessage("user", "a")), true, true);
        int[] t1 = tok.tokenize(turn1, true, true);
        // Turn 2 starts after everything turn 1 fed and generated that the new prompt still has:
        // the reply " ab" re-tokenizes with a space prefix after <|im_start|>assistant, so positions are reused up to there.
        int[] t2 = tok.tokenize(template.renderPrompt(List.of(new io.github.llama2j.chat.ChatMessage("user", "a"),
                new io.github.llama2j.chat.ChatMessage("assistant", " ab"),
                new io.github.llama2j.chat.ChatMessage("user", "b")), true, true), true, true);
        int firstOfTurn2 = t1.length + 1; // turn 1: its prompt, then the reply token ▁ab fed once
        int common = 0;
        List<Integer> cache = new ArrayList<>();
        for (int[] f : engine.fed.subList(0, firstOfTurn2)) {
            cache.add(f[0]);
        }
        while (common < cache.size() && cache.get(common) == t2[common]) {
            common++;
        }
        assertEquals(common, engine.fed.get(firstOfTurn2)[1], "turn 2 resumes at the first changed position");
        assertEquals(t2.length - common + 1, engine.fed.size() - firstOfTurn2, "then feeds the rest of turn 2 and the reply");
    }

    private static final String CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}{{ m.content }}<|im_end|>{% endfor %}"
            + "{% if add_generation_prompt %}<|im_start|>assistant{% endif %}";

    /** The token at each position after everything {@code engine} was fed (a later feed overwrites a position). */
    private static List<Integer> positions(ScriptedEngine engine) {
        List<Integer> cache = new ArrayList<>();
        for (int[] f : engine.fed) {
            cache.subList(f[1], cache.size()).clear();
            cache.add(f[0]);
        }
        return cache;
    }

    private static List<Integer> list(int[] tokens) {
        List<Integer> l = new ArrayList<>();
        for (int t : tokens) {
            l.add(t);
        }
        return l;
    }

    @Test
    void chatOverTheWholeContextDropsItsOldestTurnsAndGoesOn() {
        ChatTemplate template = new ChatTemplate("test", CHATML, "<s>", "</s>");
        int[] header = tok.tokenize("<|im_start|>assistant", false, true);
        int assistant = header[header.length - 1];
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 96, Map.of(assistant, 264, 264, 266));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        List<String> notes = new ArrayList<>();
        String turns = "b a b\nab ab\na\nb b\nab\nb a a\nb\n";
        Generator.Result r = new GgufGenerator(engine, tok, greedy(), out).chat(template, true, "a b a", "sys", 0,
                new ByteArrayInputStream(turns.getBytes(StandardCharsets.UTF_8)), notes::add);
        // every turn is answered: the user's eight turns, eight replies, and the prompt for a ninth turn
        assertEquals("Assistant:  ab\n" + "User: Assistant:  ab\n".repeat(7) + "User: \n", out.toString(StandardCharsets.UTF_8));
        assertEquals(8, r.sampled().stream().filter(t -> t == 266).count(), "each reply ends at <|im_end|>");
        assertFalse(notes.isEmpty(), "the context filled up");
        for (String note : notes) {
            assertTrue(note.startsWith("the conversation no longer fits the model's context 96: its ") && note.contains("oldest turn"), note);
        }
        // after the last turn the positions hold the conversation that was kept: the system turn, the newest turns, the
        // reply; it starts with the system turn, and its user turns are the newest ones, in order
        List<Integer> cache = positions(engine);
        assertTrue(cache.size() < 96);
        int[] system = tok.tokenize(template.renderPrompt(List.of(new io.github.llama2j.chat.ChatMessage("system", "sys")), false, true), true, true);
        assertEquals(list(system), cache.subList(0, system.length), "the system turn stays");
        int[] last = tok.tokenize("<|im_start|>userb<|im_end|><|im_start|>assistant", false, true);
        assertEquals(list(last), cache.subList(cache.size() - 1 - last.length, cache.size() - 1), "the newest turn, then its reply token");
        int[] oldest = tok.tokenize("<|im_start|>usera b a<|im_end|>", false, true);
        assertFalse(java.util.Collections.indexOfSubList(cache, list(oldest)) >= 0, "the first turn was dropped");
    }

    @Test
    void aReplyThatFillsTheContextMovesTheConversationThenIsCut() {
        ChatTemplate template = new ChatTemplate("test", CHATML, "<s>", "</s>");
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 48, Map.of()); // every reply: b, b, b, ... never ending
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        List<String> notes = new ArrayList<>();
        Generator.Result r = new GgufGenerator(engine, tok, greedy(), out).chat(template, true, "a", "", 0,
                new ByteArrayInputStream("a b\n".getBytes(StandardCharsets.UTF_8)), notes::add);
        String text = out.toString(StandardCharsets.UTF_8);
        assertTrue(text.startsWith("Assistant: b") && text.endsWith("\nUser: \n"), text);
        assertEquals(2, text.split("Assistant: ", -1).length - 1, "both turns answered");
        assertTrue(notes.contains("the reply filled the model's context 48: it is cut here"), notes.toString());
        assertTrue(notes.stream().anyMatch(n -> n.contains("2 oldest turns are dropped")), "turn 2's reply moved turn 1 out: " + notes);
        assertTrue(r.sampled().size() > 48, "the second reply went on past the first's positions");
    }

    /**
     * Notes made while a reply is under way go out after the reply's line has ended (in a terminal stderr and stdout
     * share the screen); a note made at a user turn follows the line the user typed.
     */
    @Test
    void notesComeAfterTheReplysLine() {
        ChatTemplate template = new ChatTemplate("test", CHATML, "<s>", "</s>");
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 48, Map.of()); // never-ending replies
        ByteArrayOutputStream screen = new ByteArrayOutputStream();
        new GgufGenerator(engine, tok, greedy(), screen).chat(template, true, "a", "", 0,
                new ByteArrayInputStream("a b\n".getBytes(StandardCharsets.UTF_8)),
                n -> screen.writeBytes(("NOTE " + n + "\n").getBytes(StandardCharsets.UTF_8)));
        String text = screen.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("NOTE the reply filled"), text);
        for (int at = text.indexOf("NOTE the reply"); at >= 0; at = text.indexOf("NOTE the reply", at + 1)) {
            assertEquals('\n', text.charAt(at - 1), "a note starts a line: " + text);
        }
    }

    /** An InputStream whose lines arrive after a pause, as a user types them. */
    private static final class SlowInput extends java.io.InputStream {
        private final byte[] bytes;
        private final long pauseMillis;
        private int at;

        SlowInput(String text, long pauseMillis) {
            this.bytes = text.getBytes(StandardCharsets.UTF_8);
            this.pauseMillis = pauseMillis;
        }

        @Override
        public int read() {
            if (at >= bytes.length) {
                return -1;
            }
            if (at == 0 || bytes[at - 1] == '\n') {
                try {
                    Thread.sleep(pauseMillis);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }
            return bytes[at++];
        }
    }

    /** The time the user takes to type is not the engine's: it counts neither in time to first token nor after it. */
    @Test
    void waitingForInputIsNotTimed() {
        ChatTemplate template = new ChatTemplate("test", CHATML, "<s>", "</s>");
        int[] header = tok.tokenize("<|im_start|>assistant", false, true);
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 256, Map.of(header[header.length - 1], 264, 264, 266));
        Generator.Result r = new GgufGenerator(engine, tok, greedy(), new ByteArrayOutputStream()).chat(template, true, null, "",
                0, new SlowInput("a\nb\nab\n", 400), n -> { });
        assertEquals(3, r.sampled().stream().filter(t -> t == 266).count(), "three turns answered");
        // 1.2 s of typing in all (plus end of input); the scripted engine's own work takes milliseconds
        assertTrue(r.timeToFirstTokenMillis() < 300, "time to first token " + r.timeToFirstTokenMillis() + " ms");
        assertTrue((r.endNanos() - r.firstTokenNanos()) / 1e6 < 300, "after the first token " + (r.endNanos() - r.firstTokenNanos()) / 1e6 + " ms");
    }

    /**
     * A reply under way that would still take over half the context after dropping the turns before it is cut, and
     * those turns stay: the next turn's note counts them (nothing is dropped without a note).
     */
    @Test
    void aReplyCutWhereItIsKeepsTheTurnsBeforeIt() {
        ChatTemplate template = new ChatTemplate("test", CHATML, "<s>", "</s>");
        int[] header = tok.tokenize("<|im_start|>assistant", false, true);
        int assistant = header[header.length - 1];
        // replies of 3 tokens (b), then one that never ends, then 3 again: a reply starts after the assistant header
        int[] lengths = {3, Integer.MAX_VALUE, 3};
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 64, Map.of()) {
            int replies, left;

            @Override
            public float[] forwardBatch(int[] tokens, int startPos) { // a prompt ending in the header: a reply starts
                float[] logits = super.forwardBatch(tokens, startPos);
                if (tokens[tokens.length - 1] == assistant) {
                    left = lengths[replies++];
                }
                return next(logits);
            }

            @Override
            public float[] forward(int token, int pos) { // a reply's token
                return next(super.forward(token, pos));
            }

            private float[] next(float[] logits) {
                java.util.Arrays.fill(logits, 0);
                logits[left > 0 ? 261 : 266] = 1;
                left--;
                return logits;
            }
        };
        List<String> notes = new ArrayList<>();
        new GgufGenerator(engine, tok, greedy(), new ByteArrayOutputStream()).chat(template, true, "a", "", 0,
                new ByteArrayInputStream("b\na\n".getBytes(StandardCharsets.UTF_8)), notes::add);
        assertEquals(2, notes.size(), notes.toString());
        assertEquals("the reply filled the model's context 64: it is cut here", notes.get(0));
        assertTrue(notes.get(1).startsWith("the conversation no longer fits the model's context 64: its 4 oldest turns are dropped"), notes.get(1));
    }

    @Test
    void chatWithFewerStepsThanTheContextEndsWhenTheyAreUsedUp() {
        ChatTemplate template = new ChatTemplate("test", CHATML, "<s>", "</s>");
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 96, Map.of());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        List<String> notes = new ArrayList<>();
        new GgufGenerator(engine, tok, greedy(), out).chat(template, true, "a", "", 40,
                new ByteArrayInputStream("b\n".getBytes(StandardCharsets.UTF_8)), notes::add);
        assertFalse(out.toString(StandardCharsets.UTF_8).contains("User: "), "the run ends with the first reply");
        assertEquals(40, engine.fed.size());
        assertEquals(List.of(), notes);
    }

    @Test
    void aLastTurnThatDoesNotFitAloneIsAnError() {
        ChatTemplate template = new ChatTemplate("test", CHATML, "<s>", "</s>");
        int[] header = tok.tokenize("<|im_start|>assistant", false, true);
        ScriptedEngine engine = new ScriptedEngine(tok.vocabSize(), 48, Map.of(header[header.length - 1], 266));
        String longTurn = "a ".repeat(40);
        io.github.llama2j.Llama2jException e = org.junit.jupiter.api.Assertions.assertThrows(io.github.llama2j.Llama2jException.class,
                () -> new GgufGenerator(engine, tok, greedy(), new ByteArrayOutputStream()).chat(template, true, "a", "", 0,
                        new ByteArrayInputStream((longTurn + "\n").getBytes(StandardCharsets.UTF_8)), n -> { }));
        assertTrue(e.getMessage().matches("the conversation is \\d+ tokens with only its last turn kept, it needs fewer than the model's context 48"),
                e.getMessage());
    }
}
