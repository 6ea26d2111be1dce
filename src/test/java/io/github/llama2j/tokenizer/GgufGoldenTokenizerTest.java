package io.github.llama2j.tokenizer;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import io.github.llama2j.chat.ChatMessage;
import io.github.llama2j.chat.ChatTemplate;
import io.github.llama2j.gguf.GgufFile;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * llama.cpp's golden tokenization for every model of {@code shared/gguf/golden}: the vocabulary facts (BOS, EOS, EOT,
 * add_bos, the end-of-generation set), every prompt's {@code prompt_tokens}, every generated token's piece
 * ({@code generated_pieces_base64}, {@code special = true}), and every chat case: the prompt rendered by the model's
 * Jinja template equals llama.cpp's {@code rendered_prompt} (one documented difference, asserted as such) and its
 * token ids equal {@code prompt_tokens}.
 *
 * <p>Golden files of models that are not stored (F32/F16/BF16 twins) are checked with the stored twin of the same
 * base model: the twins carry the same {@code tokenizer.*} metadata.
 */
class GgufGoldenTokenizerTest {
    /** The system turn Qwen2's Jinja template adds when there is none; llama.cpp's chatml formatter does not. */
    private static final String QWEN_DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n";
    private static final Map<Path, Loaded> CACHE = new HashMap<>();

    private record Loaded(GgufTokenizer tokenizer, String chatTemplate) {
    }

    static Stream<String> goldenFiles() throws IOException {
        try (Stream<Path> s = Files.list(TestData.gguf().resolve("golden"))) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".json")).sorted().toList().stream();
        }
    }

    /** The model file of a golden file: its own when stored, else the stored twin with the same base name. */
    static Path modelFor(Path goldenFile, Map<String, Object> golden) throws IOException {
        Object rel = golden.get("model_path");
        if (rel != null) {
            return goldenFile.getParent().resolve((String) rel).normalize();
        }
        String file = (String) golden.get("model_file");
        String base = file.substring(0, file.lastIndexOf('-')); // llama3-tiny-f32.gguf -> llama3-tiny
        try (Stream<Path> s = Files.list(TestData.gguf().resolve("models"))) {
            return s.filter(p -> p.getFileName().toString().startsWith(base + "-")).sorted().findFirst()
                    .orElseThrow(() -> new AssertionError("no stored twin of " + file));
        }
    }

    static synchronized Loaded load(Path model) {
        return CACHE.computeIfAbsent(model, m -> {
            try (GgufFile f = GgufFile.open(m)) {
                return new Loaded(GgufTokenizer.load(f), f.optionalString("tokenizer.chat_template").orElse(null));
            }
        });
    }

    @SuppressWarnings("unchecked")
    @ParameterizedTest
    @MethodSource("goldenFiles")
    void goldenTokenization(String name) throws IOException {
        Path goldenFile = TestData.gguf().resolve("golden").resolve(name);
        Map<String, Object> golden = Json.read(goldenFile);
        Loaded loaded = load(modelFor(goldenFile, golden));
        GgufTokenizer tok = loaded.tokenizer();

        Map<String, Object> vocab = (Map<String, Object>) golden.get("vocab");
        assertEquals(((Number) vocab.get("n_tokens")).intValue(), tok.vocabSize(), "n_tokens");
        assertEquals(vocab.get("type"), tok.kind() == GgufTokenizer.Kind.SPM ? "spm" : "bpe", "type");
        assertEquals(((Number) vocab.get("bos")).intValue(), tok.bos(), "bos");
        assertEquals(((Number) vocab.get("eos")).intValue(), tok.eos(), "eos");
        assertEquals(((Number) vocab.get("eot")).intValue(), tok.eot(), "eot");
        assertEquals(vocab.get("add_bos"), tok.addsBos(), "add_bos");
        assertArrayEquals(Json.ints(vocab.get("eog_tokens")), tok.endOfGenerationTokens(), "eog_tokens");
        assertEquals(vocab.get("has_chat_template"), loaded.chatTemplate() != null, "has_chat_template");

        for (Map<String, Object> c : (List<Map<String, Object>>) golden.get("cases")) {
            String id = name + " " + c.get("id");
            String prompt = new String(Base64.getDecoder().decode((String) c.get("prompt_base64")), StandardCharsets.UTF_8);
            int[] want = Json.ints(c.get("prompt_tokens"));
            int[] got = tok.tokenize(prompt, true, false);
            if (got.length == 0) { // Qwen: no BOS added, so "" has no tokens; the golden run fed BOS alone
                assertTrue(((String) c.get("prompt_note")).contains("BOS token was fed alone"), id);
                got = new int[]{tok.bos()};
            }
            assertArrayEquals(want, got, id + ": prompt_tokens");
            checkPieces(tok, c, id);
        }

        List<Map<String, Object>> chats = (List<Map<String, Object>>) golden.get("chat_cases");
        if (chats == null || chats.isEmpty()) {
            assertEquals(null, loaded.chatTemplate(), name + ": a model with a template has chat cases");
            return;
        }
        ChatTemplate template = new ChatTemplate(name, loaded.chatTemplate(), tok.tokenText(tok.bos()), tok.tokenText(tok.eos()));
        for (Map<String, Object> c : chats) {
            String id = name + " " + c.get("id");
            List<ChatMessage> messages = new ArrayList<>();
            for (Map<String, Object> m : (List<Map<String, Object>>) c.get("messages")) {
                messages.add(new ChatMessage((String) m.get("role"), (String) m.get("content")));
            }
            String llamaCpp = new String(Base64.getDecoder().decode((String) c.get("rendered_prompt_base64")), StandardCharsets.UTF_8);
            int[] want = Json.ints(c.get("prompt_tokens"));
            assertArrayEquals(want, tok.tokenize(llamaCpp, true, true), id + ": tokens of llama.cpp's rendered prompt");

            String ours = template.renderPrompt(messages, (Boolean) c.get("add_assistant"), tok.addsBos());
            boolean qwenWithoutSystem = loaded.chatTemplate().contains("You are a helpful assistant")
                    && !messages.getFirst().role().equals("system");
            if (qwenWithoutSystem) { // the one documented difference: Jinja adds Qwen's default system turn
                assertEquals(QWEN_DEFAULT_SYSTEM + llamaCpp, ours, id + ": rendered prompt (Qwen default system turn)");
                int[] prefix = tok.tokenize(QWEN_DEFAULT_SYSTEM, false, true);
                int[] expected = new int[prefix.length + want.length];
                System.arraycopy(prefix, 0, expected, 0, prefix.length);
                System.arraycopy(want, 0, expected, prefix.length, want.length);
                assertArrayEquals(expected, tok.tokenize(ours, true, true), id + ": tokens");
            } else {
                assertEquals(llamaCpp, ours, id + ": rendered prompt");
                assertArrayEquals(want, tok.tokenize(ours, true, true), id + ": tokens");
            }
            checkPieces(tok, c, id);
        }
    }

    @SuppressWarnings("unchecked")
    private static void checkPieces(GgufTokenizer tok, Map<String, Object> c, String id) {
        int[] generated = Json.ints(c.get("generated_tokens"));
        List<Object> pieces = (List<Object>) c.get("generated_pieces_base64");
        assertEquals(generated.length, pieces.size(), id);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (int i = 0; i < generated.length; i++) {
            byte[] piece = tok.tokenToPiece(generated[i], true);
            assertArrayEquals(Base64.getDecoder().decode((String) pieces.get(i)), piece, id + ": piece of token " + generated[i]);
            text.writeBytes(piece);
        }
        assertArrayEquals(Base64.getDecoder().decode((String) c.get("generated_text_base64")), text.toByteArray(), id + ": text");
    }
}
