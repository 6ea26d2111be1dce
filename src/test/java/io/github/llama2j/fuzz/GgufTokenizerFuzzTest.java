package io.github.llama2j.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.tokenizer.GgufTokenizer;
import io.github.llama2j.tokenizer.HandMadeVocab;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;

/**
 * Fuzzes the GGUF tokenizers on arbitrary text (UTF-8 decoded, invalid bytes replaced), with and without special
 * tokens parsed. Byte-level BPE is lossless: the pieces of the ids concatenate to the text's UTF-8 bytes. SentencePiece
 * adds spaces (its prefix, and after special tokens): the pieces equal the text once spaces and {@code ▁} are removed
 * from both. Every id is in the vocabulary. The vocabularies are Llama 3's and Qwen2's from $LLAMA2J_TEST_GGUF's
 * vocab/ when set, else hand-made ones of the same kinds.
 */
class GgufTokenizerFuzzTest {
    static final int MAX_TEXT = 2048;

    private static final class Vocabularies {
        static final GgufTokenizer SPM = HandMadeVocab.spm("\u2581", "a", "b", "\u2581a", "ab", "\u2581ab");
        static final GgufTokenizer LLAMA3 = shared("ggml-vocab-llama-bpe.gguf", "llama-bpe");
        static final GgufTokenizer QWEN2 = shared("ggml-vocab-qwen2.gguf", "qwen2");

        private static GgufTokenizer shared(String file, String pre) {
            String dir = System.getenv("LLAMA2J_TEST_GGUF");
            if (dir != null && Files.isRegularFile(Path.of(dir, "vocab", file))) {
                try (GgufFile f = GgufFile.open(Path.of(dir, "vocab", file))) {
                    return GgufTokenizer.load(f);
                }
            }
            return HandMadeVocab.bpe(pre, "h i", "\u0120 h", "\u0120h i", "i i", "\u0120 \u0120", "1 2");
        }
    }

    @MethodSource("textSeeds")
    @FuzzTest(maxDuration = "10m")
    void bpeLlama3(byte[] text) {
        bpeRoundTrip(Vocabularies.LLAMA3, text);
    }

    @MethodSource("textSeeds")
    @FuzzTest(maxDuration = "10m")
    void bpeQwen2(byte[] text) {
        bpeRoundTrip(Vocabularies.QWEN2, text);
    }

    @MethodSource("textSeeds")
    @FuzzTest(maxDuration = "10m")
    void sentencePiece(byte[] text) {
        String s = text(text);
        for (boolean special : new boolean[]{false, true}) {
            String got = new String(pieces(Vocabularies.SPM, Vocabularies.SPM.tokenize(s, false, special)), StandardCharsets.UTF_8);
            String want = s.replace(" ", "").replace("\u2581", "");
            FuzzProperties.check(got.replace(" ", "").equals(want),
                    "SentencePiece pieces of " + quote(s) + " (special " + special + ") are " + quote(got));
        }
    }

    static Stream<Arguments> textSeeds() {
        return Stream.of("", " ", "\n\n\t", "Hello world", "  Hello\n    Hello", "3333333 3.3 ...!!! I've 'RE",
                        "Пример 这是 日本語 🦙😶\u200d🌫️ កាន់", "<|im_start|>user\nhi<|im_end|>", "<|begin_of_text|>[PAD151650]<user>",
                        "\u00a0\u2028\u3000 x", "\ud800 lone surrogate")
                .map(s -> Arguments.of((Object) s.getBytes(StandardCharsets.UTF_8)));
    }

    private static void bpeRoundTrip(GgufTokenizer tok, byte[] input) {
        String s = text(input);
        byte[] want = s.getBytes(StandardCharsets.UTF_8);
        for (boolean special : new boolean[]{false, true}) {
            int[] ids = tok.tokenize(s, false, special);
            byte[] got = pieces(tok, ids);
            FuzzProperties.check(Arrays.equals(got, want), "BPE pieces of " + quote(s) + " (special " + special + ") are "
                    + quote(new String(got, StandardCharsets.UTF_8)));
        }
    }

    private static String text(byte[] input) {
        return new String(input, 0, Math.min(input.length, MAX_TEXT), StandardCharsets.UTF_8);
    }

    private static byte[] pieces(GgufTokenizer tok, int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int id : ids) {
            FuzzProperties.check(id >= 0 && id < tok.vocabSize(), "id " + id + " outside the vocabulary");
            out.writeBytes(tok.tokenToPiece(id, true));
        }
        return out.toByteArray();
    }

    private static String quote(String s) {
        return "'" + s.replace("\n", "\\n") + "'";
    }
}
