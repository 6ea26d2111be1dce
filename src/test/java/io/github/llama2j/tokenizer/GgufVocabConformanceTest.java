package io.github.llama2j.tokenizer;

import io.github.llama2j.TestData;
import io.github.llama2j.gguf.GgufFile;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * llama.cpp's tokenizer conformance cases ({@code shared/gguf/vocab}, read as test-tokenizer-0 reads them): every
 * case of every vocabulary, tokenized with {@code add_special = false, parse_special = false}, must give exactly the
 * expected ids. Nothing is excluded.
 */
class GgufVocabConformanceTest {
    private static final String SEPARATOR = "\n__ggml_vocab_test__\n";

    @ParameterizedTest
    @ValueSource(strings = {"ggml-vocab-llama-spm", "ggml-vocab-phi-3", "ggml-vocab-llama-bpe", "ggml-vocab-qwen2"})
    void everyCasePasses(String vocab) throws IOException {
        Path dir = TestData.gguf().resolve("vocab");
        GgufTokenizer tok;
        try (GgufFile f = GgufFile.open(dir.resolve(vocab + ".gguf"))) {
            tok = GgufTokenizer.load(f);
        }
        String inp = Files.readString(dir.resolve(vocab + ".gguf.inp"), StandardCharsets.UTF_8);
        List<String> tests = new ArrayList<>(Arrays.asList(inp.split(SEPARATOR, -1)));
        assertEquals("", tests.removeLast(), "the .inp file ends with the separator");
        List<String> expected = Files.readAllLines(dir.resolve(vocab + ".gguf.out"), StandardCharsets.UTF_8);
        assertEquals(tests.size(), expected.size(), "as many expected lines as tests");
        assertEquals(46, tests.size());
        List<String> failures = new ArrayList<>();
        for (int i = 0; i < tests.size(); i++) {
            String want = expected.get(i).strip();
            int[] got = tok.tokenize(tests.get(i), false, false);
            String gotText = String.join(" ", Arrays.stream(got).mapToObj(Integer::toString).toList());
            if (!gotText.equals(want)) {
                failures.add("case " + i + " " + tests.get(i).replace("\n", "\\n") + ": want [" + want + "] got [" + gotText + "]");
            }
        }
        System.out.printf("%s: %d/%d conformance cases pass%n", vocab, tests.size() - failures.size(), tests.size());
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }
}
