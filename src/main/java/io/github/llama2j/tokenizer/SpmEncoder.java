package io.github.llama2j.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.PriorityQueue;

/**
 * SentencePiece-style BPE on scores, as llama.cpp's {@code llm_tokenizer_spm_session}: the text (spaces already
 * replaced by {@code ▁}) starts as one symbol per character; the adjacent pair whose concatenation is the
 * highest-scoring token is merged (ties: the leftmost), until no pair is a token. A symbol that is not a token falls
 * back to its UTF-8 bytes as {@code <0xXX>} tokens.
 */
final class SpmEncoder {
    private final GgufTokenizer vocab;

    SpmEncoder(GgufTokenizer vocab) {
        this.vocab = vocab;
    }

    private record Bigram(int left, int right, float score, int size) {
    }

    void encode(String text, IntList out) {
        int n = text.codePointCount(0, text.length());
        if (n == 0) {
            return;
        }
        int[] start = new int[n], len = new int[n], prev = new int[n], next = new int[n];
        for (int i = 0, off = 0; i < n; i++) {
            int cl = Character.charCount(text.codePointAt(off));
            start[i] = off;
            len[i] = cl;
            off += cl;
            prev[i] = i - 1;
            next[i] = i == n - 1 ? -1 : i + 1;
        }
        // Highest score first; equal scores: leftmost first.
        PriorityQueue<Bigram> queue = new PriorityQueue<>((a, b) -> a.score != b.score ? Float.compare(b.score, a.score)
                : Integer.compare(a.left, b.left));
        for (int i = 1; i < n; i++) {
            tryAdd(text, start, len, i - 1, i, queue);
        }
        while (!queue.isEmpty()) {
            Bigram b = queue.poll();
            if (len[b.left] == 0 || len[b.right] == 0 || len[b.left] + len[b.right] != b.size) {
                continue; // one side was merged since: stale
            }
            len[b.left] += len[b.right];
            len[b.right] = 0;
            next[b.left] = next[b.right];
            if (next[b.right] >= 0) {
                prev[next[b.right]] = b.left;
            }
            tryAdd(text, start, len, prev[b.left], b.left, queue);
            tryAdd(text, start, len, b.left, next[b.left], queue);
        }
        for (int i = 0; i != -1; i = next[i]) {
            String symbol = text.substring(start[i], start[i] + len[i]);
            int id = vocab.textToToken(symbol);
            if (id >= 0) {
                out.add(id);
            } else {
                for (byte b : symbol.getBytes(StandardCharsets.UTF_8)) {
                    out.add(vocab.byteToToken(b & 0xFF));
                }
            }
        }
    }

    private void tryAdd(String text, int[] start, int[] len, int left, int right, PriorityQueue<Bigram> queue) {
        if (left < 0 || right < 0) {
            return;
        }
        int size = len[left] + len[right];
        int id = vocab.textToToken(text.substring(start[left], start[left] + size));
        if (id >= 0) {
            queue.add(new Bigram(left, right, vocab.score(id), size));
        }
    }
}
