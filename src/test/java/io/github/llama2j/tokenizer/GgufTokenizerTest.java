package io.github.llama2j.tokenizer;

import io.github.llama2j.Llama2jException;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The GGUF tokenizers on hand-made vocabularies: every rule with an id one can work out by hand. */
class GgufTokenizerTest {
    // ids: 259 ▁, 260 a, 261 b, 262 ▁a, 263 ab, 264 ▁ab, 265 <|im_start|>, 266 <|im_end|>, 267 <user>
    private final GgufTokenizer spm = HandMadeVocab.spm("\u2581", "a", "b", "\u2581a", "ab", "\u2581ab");

    @Test
    void sentencePieceMergesByScoreWithSpacePrefixAndByteFallback() {
        assertArrayEquals(new int[]{264}, spm.tokenize("ab", false, false), "' ab' merges to ▁ab");
        assertArrayEquals(new int[]{1, 264}, spm.tokenize("ab", true, false), "BOS with add_special");
        assertArrayEquals(new int[]{264, 259, 261}, spm.tokenize("ab b", false, false), "▁b is no token: ▁ + b");
        // 'é' has no token: its two UTF-8 bytes C3 A9 become <0xC3> <0xA9> (ids 3 + byte)
        assertArrayEquals(new int[]{259, 3 + 0xC3, 3 + 0xA9}, spm.tokenize("é", false, false));
        assertArrayEquals(new int[0], spm.tokenize("", false, false));
        assertArrayEquals(new int[]{1}, spm.tokenize("", true, false));
    }

    @Test
    void specialTokensOnlyWithParseSpecialUserDefinedAlways() {
        // parse_special: the control token is matched, and the text after it gets the space prefix again
        assertArrayEquals(new int[]{264, 265, 262}, spm.tokenize("ab<|im_start|>a", false, true));
        int[] plain = spm.tokenize("<|im_start|>", false, false);
        assertFalse(contains(plain, 265), "without parse_special a control token is text");
        assertArrayEquals(new int[]{262, 267, 262}, spm.tokenize("a<user>a", false, false), "user-defined: always matched");
    }

    @Test
    void piecesAndEndOfGeneration() {
        assertArrayEquals(" ab".getBytes(StandardCharsets.UTF_8), spm.tokenToPiece(264, true), "▁ is a space");
        assertArrayEquals(new byte[]{(byte) 0xC3}, spm.tokenToPiece(3 + 0xC3, true), "byte token");
        assertArrayEquals("<|im_end|>".getBytes(StandardCharsets.UTF_8), spm.tokenToPiece(266, true));
        assertArrayEquals(new byte[0], spm.tokenToPiece(266, false), "control hidden without special");
        assertArrayEquals("<user>".getBytes(StandardCharsets.UTF_8), spm.tokenToPiece(267, false), "user-defined shown");
        assertTrue(spm.isEndOfGeneration(2), "EOS");
        assertTrue(spm.isEndOfGeneration(266), "<|im_end|> by name");
        assertFalse(spm.isEndOfGeneration(265));
        assertEquals(266, spm.eot(), "EOT found by name");
    }

    @Test
    void byteLevelBpeMergesByRank() {
        // ids 0..255: the bytes (GPT-2 letters); 256 hi (rank 0), 257 Ġh (rank 1), 258 Ġhi (rank 2), 259 ii (rank 3)
        GgufTokenizer bpe = HandMadeVocab.bpe("qwen2", "h i", "\u0120 h", "\u0120h i", "i i");
        assertArrayEquals(new int[]{256}, bpe.tokenize("hi", false, false));
        // " hi" is Ġ h i: "h i" (rank 0) merges before "Ġ h" (rank 1), and "Ġ hi" is no merge
        assertArrayEquals(new int[]{' ', 256}, bpe.tokenize(" hi", false, false));
        // h i i i: hi first, then of the two "i i" pairs the left one is gone, the right one merges
        assertArrayEquals(new int[]{256, 259}, bpe.tokenize("hiii", false, false));
        assertArrayEquals(new int[]{'i'}, bpe.tokenize("i", false, false));
    }

    @Test
    void preTokenizerSplits() {
        assertEquals(List.of("a", "1", "2", "3", " b"), PreTokenizer.QWEN2.split("a123 b"));
        assertEquals(List.of("a", "123", "4", " b"), PreTokenizer.LLAMA3.split("a1234 b"));
        assertEquals(List.of("I", "'ve", " been", "  ", " x", "\n\n"), PreTokenizer.LLAMA3.split("I've been   x\n\n"));
        assertEquals(List.of("\u00a0", " Привет", "!!", " \uD83E\uDD99"), PreTokenizer.LLAMA3.split("\u00a0 Привет!! \uD83E\uDD99"),
                "Unicode letters, no-break space as whitespace, emoji as one symbol run");
        assertEquals(List.of("1", "2", " a"), PreTokenizer.SMOLLM.split("12 a"));
    }

    @Test
    void bpePiecesUndoTheByteMapping() {
        GgufTokenizer bpe = HandMadeVocab.bpe("llama-bpe", "Ġ h");
        int spaceH = 256;
        assertArrayEquals(" h".getBytes(StandardCharsets.UTF_8), bpe.tokenToPiece(spaceH, true));
        assertArrayEquals(new int[]{spaceH}, bpe.tokenize(" h", false, false));
        assertTrue(bpe.addsBos(), "llama-bpe adds BOS by default");
        assertEquals(bpe.bos(), bpe.tokenize("", true, false)[0]);
        assertTrue(bpe.isEndOfGeneration(bpe.textToToken("<|eot_id|>")));
        assertTrue(bpe.isEndOfGeneration(bpe.textToToken("<|end_of_text|>")));
    }

    @Test
    void unsupportedKindsAreClearErrors() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> HandMadeVocab.bpe("tekken"));
        assertTrue(e.getMessage().contains("tokenizer.ggml.pre 'tekken' is not supported"), e.getMessage());
        assertEquals(Llama2jException.BAD_INPUT, e.exitCode());
        Llama2jException w = assertThrows(Llama2jException.class, () -> new GgufTokenizer(new VocabData("x.gguf", "bert", null,
                new String[]{"a"}, null, null, null, null, null, null, null, null, null, null, null, null, null)));
        assertTrue(w.getMessage().contains("x.gguf: tokenizer.ggml.model 'bert' is not supported"), w.getMessage());
    }

    private static boolean contains(int[] a, int v) {
        for (int x : a) {
            if (x == v) {
                return true;
            }
        }
        return false;
    }
}
