package io.github.llama2j.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * Byte-level BPE as llama.cpp's {@code llm_tokenizer_bpe_session}: the text is split by the {@link PreTokenizer};
 * each piece is written in GPT-2's byte-to-unicode alphabet, starts as one symbol per byte, and the adjacent pair
 * with the lowest merge rank is merged (ties: the leftmost) until no pair has a rank.
 */
final class BpeEncoder {
    private final GgufTokenizer vocab;
    private final PreTokenizer pre;
    private final Map<String, Integer> ranks; // "left right" -> rank

    BpeEncoder(GgufTokenizer vocab, PreTokenizer pre, String[] merges) {
        this.vocab = vocab;
        this.pre = pre;
        this.ranks = new HashMap<>(merges.length * 2);
        for (int i = 0; i < merges.length; i++) {
            String m = merges[i];
            int space = m.indexOf(' ', 1);
            // llama.cpp splits at the first space after the first character; a line without one is the pair ("", "").
            String key = space < 0 ? " " : m;
            ranks.putIfAbsent(key, i);
        }
    }

    private record Bigram(int left, int right, String text, int rank) {
    }

    void encode(String text, IntList out) {
        for (String word : pre.split(text)) {
            encodeWord(ByteUnicode.encode(word.getBytes(StandardCharsets.UTF_8)), out);
        }
    }

    private void encodeWord(String word, IntList out) {
        if (pre.ignoreMerges) {
            int id = vocab.textToToken(word);
            if (id >= 0) {
                out.add(id);
                return;
            }
        }
        int n = word.length(); // one char per byte: the byte alphabet is all in the BMP
        int[] len = new int[n], prev = new int[n], next = new int[n];
        for (int i = 0; i < n; i++) {
            len[i] = 1;
            prev[i] = i - 1;
            next[i] = i == n - 1 ? -1 : i + 1;
        }
        // start of symbol i is i itself: symbols only ever absorb their right neighbours
        PriorityQueue<Bigram> queue = new PriorityQueue<>((a, b) -> a.rank != b.rank ? Integer.compare(a.rank, b.rank)
                : Integer.compare(a.left, b.left));
        for (int i = 1; i < n; i++) {
            tryAdd(word, len, i - 1, i, queue);
        }
        while (!queue.isEmpty()) {
            Bigram b = queue.poll();
            // Symbols only grow rightwards, so the pair still reads b.text exactly when both sides are alive
            // and their lengths add up to it (llama.cpp compares the strings).
            if (len[b.left] == 0 || len[b.right] == 0 || len[b.left] + len[b.right] != b.text.length()) {
                continue; // outdated
            }
            len[b.left] += len[b.right];
            len[b.right] = 0;
            next[b.left] = next[b.right];
            if (next[b.right] >= 0) {
                prev[next[b.right]] = b.left;
            }
            tryAdd(word, len, prev[b.left], b.left, queue);
            tryAdd(word, len, b.left, next[b.left], queue);
        }
        for (int i = 0; i != -1 && n > 0; i = next[i]) {
            String symbol = word.substring(i, i + len[i]);
            int id = vocab.textToToken(symbol);
            if (id >= 0) {
                out.add(id);
                continue;
            }
            // llama.cpp looks each byte of the symbol's text up as a one-byte token; only ASCII can match.
            for (byte c : symbol.getBytes(StandardCharsets.UTF_8)) {
                if (c >= 0) {
                    int single = vocab.textToToken(String.valueOf((char) c));
                    if (single >= 0) {
                        out.add(single);
                    }
                }
            }
        }
    }

    private void tryAdd(String word, int[] len, int left, int right, PriorityQueue<Bigram> queue) {
        if (left < 0 || right < 0) {
            return;
        }
        String l = word.substring(left, left + len[left]);
        String r = word.substring(right, right + len[right]);
        Integer rank = ranks.get(l + " " + r);
        if (rank != null) {
            queue.add(new Bigram(left, right, l + r, rank));
        }
    }
}
