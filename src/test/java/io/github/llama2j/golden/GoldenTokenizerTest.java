package io.github.llama2j.golden;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import io.github.llama2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** run.c's encode(), decode()+safe_printf() and prompt echo, case by case (shared/golden/tokenizer.json). */
class GoldenTokenizerTest {

    private static final Map<String, Integer> VOCAB = Map.of("tokenizer.bin", 32000, "tok512.bin", 512);

    @TestFactory
    @SuppressWarnings("unchecked")
    List<DynamicTest> tokenizerMatchesRunC() {
        Map<String, Object> golden = Json.read(TestData.golden().resolve("tokenizer.json"));
        Map<String, Tokenizer> tokenizers = Map.of(
                "tokenizer.bin", Tokenizer.load(TestData.model("tokenizer.bin"), 32000),
                "tok512.bin", Tokenizer.load(TestData.model("tok512.bin"), 512));
        List<DynamicTest> tests = new ArrayList<>();
        for (Object o : (List<Object>) golden.get("encode_cases")) {
            Map<String, Object> c = (Map<String, Object>) o;
            byte[] text = Base64.getDecoder().decode((String) c.get("text_base64"));
            for (String tok : VOCAB.keySet()) {
                int[] expected = Json.ints(c.get("ids_" + tok));
                tests.add(DynamicTest.dynamicTest("encode " + c.get("name") + " with " + tok,
                        () -> assertArrayEquals(expected, tokenizers.get(tok).encode(text, true, false))));
            }
        }
        for (Object o : (List<Object>) golden.get("decode_cases")) {
            Map<String, Object> c = (Map<String, Object>) o;
            Tokenizer tok = tokenizers.get((String) c.get("tokenizer"));
            int[] ids = Json.ints(c.get("ids"));
            byte[] expected = Base64.getDecoder().decode((String) c.get("printed_base64"));
            tests.add(DynamicTest.dynamicTest("decode " + c.get("name"), () -> assertArrayEquals(expected, tok.decodeStream(ids))));
        }
        // The prompt echo of every encoded string: generate() printing the encoding of encode_cases[name].
        Map<String, Map<String, Object>> encodeByName = new java.util.HashMap<>();
        for (Object o : (List<Object>) golden.get("encode_cases")) {
            Map<String, Object> c = (Map<String, Object>) o;
            encodeByName.put((String) c.get("name"), c);
        }
        Object echoes = golden.get("prompt_echo_cases");
        if (echoes instanceof List<?> list) {
            for (Object o : list) {
                Map<String, Object> c = (Map<String, Object>) o;
                String tokName = (String) c.get("tokenizer");
                Tokenizer tok = tokenizers.get(tokName);
                int[] ids = Json.ints(encodeByName.get((String) c.get("name")).get("ids_" + tokName));
                byte[] expected = Base64.getDecoder().decode((String) c.get("printed_base64"));
                tests.add(DynamicTest.dynamicTest("prompt echo " + c.get("name") + " " + c.get("tokenizer"),
                        () -> assertEquals(new String(expected, java.nio.charset.StandardCharsets.ISO_8859_1),
                                new String(tok.decodeStream(ids), java.nio.charset.StandardCharsets.ISO_8859_1))));
            }
        }
        return tests;
    }
}
