package io.github.llama2j.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static io.github.llama2j.cli.CliTestSupport.run;
import static io.github.llama2j.cli.CliTestSupport.sharedModel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class InfoCommandTest {
    @TempDir
    Path tmp;

    @Test
    void tableForAFloatModel() {
        CliTestSupport.Run r = run("info", sharedModel("tiny.bin").toString());
        assertEquals(0, r.exitCode(), r.err());
        String out = r.out();
        assertLine(out, "format", "v0 (legacy float32)");
        assertLine(out, "dim", "64");
        assertLine(out, "hidden_dim", "172");
        assertLine(out, "n_layers", "5");
        assertLine(out, "n_kv_heads", "4 (grouped-query: 2 query heads per kv head)");
        assertLine(out, "head_size", "8");
        assertLine(out, "kv_dim", "32");
        assertLine(out, "classifier", "shared with the token embedding");
        assertLine(out, "group_size", "- (float32)");
        // 512*64 + 5*(2*64 + 2*64*64 + 2*64*32 + 3*64*172) + 64
        assertLine(out, "parameters", "260,032 (0.26 M)");
        assertLine(out, "file size", "1,056,540 bytes (1.01 MiB)");
        // 2 * 5 layers * 512 positions * 32 * 4 bytes
        assertLine(out, "kv cache", "655,360 bytes (640.00 KiB)  (float32 keys and values at seq_len 512)");
    }

    @Test
    void jsonForAQuantizedUnsharedModel() {
        CliTestSupport.Run r = run("info", sharedModel("tiny_unshared_q80.bin").toString(), "--json");
        assertEquals(0, r.exitCode(), r.err());
        String json = r.out();
        assertTrue(json.startsWith("{\n") && json.strip().endsWith("}"), json);
        for (String field : new String[]{"\"format\": \"v2\"", "\"dim\": 96", "\"hidden_dim\": 256", "\"n_layers\": 3",
                "\"n_heads\": 6", "\"n_kv_heads\": 6", "\"vocab_size\": 512", "\"seq_len\": 256", "\"head_size\": 16",
                "\"kv_dim\": 96", "\"shared_classifier\": false", "\"group_size\": 32", "\"file_bytes\": 486784",
                "\"kv_cache_bytes\": " + (2L * 3 * 256 * 96 * 4)}) {
            assertTrue(json.contains(field), field + " missing in\n" + json);
        }
        // every matrix once (Q8: values + scales), all norms, one Q8 embedding row
        long q8 = 96 * 96 * 2 + 96 * 96 * 2 + 96 * 256 * 3;
        long perLayer = q8 + q8 / 32 * 4 + 2 * 96 * 4;
        long expected = 3 * perLayer + 96 * 4 + (512 * 96 + 512 * 96 / 32 * 4) + (96 + 96 / 32 * 4);
        assertTrue(json.contains("\"bytes_per_token\": " + expected), json);
    }

    @Test
    void badFileExitsWithTwoAndOneLine() throws IOException {
        Path junk = tmp.resolve("junk.bin");
        Files.write(junk, new byte[100]);
        CliTestSupport.Run r = run("info", junk.toString());
        assertEquals(2, r.exitCode());
        assertEquals("llama2j: junk.bin: header field dim is 0, must be positive", r.errLines());
    }

    @Test
    void ggufTable() {
        Path model = io.github.llama2j.TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf");
        CliTestSupport.Run r = run("info", model.toString());
        assertEquals(0, r.exitCode(), r.err());
        String out = r.out();
        assertGguf(out, "format", "GGUF v3");
        assertGguf(out, "architecture", "llama");
        assertGguf(out, "embedding_length", "64");
        assertGguf(out, "block_count", "2");
        assertGguf(out, "attention.head_count_kv", "2");
        assertGguf(out, "rope.freq_base", "500000.0");
        assertGguf(out, "tensors", "21");
        // output_norm 64, rope_freqs 8, 2 layers x 2 norms x 64
        assertGguf(out, "  f32", "6 tensors, 328 parameters, 1,312 bytes (1.28 KiB)");
        // token_embd 64 x 128256 + 2 layers x (2 x 64x64 + 2 x 64x32 + 3 x 64x192); 34 bytes per 32 values
        assertGguf(out, "  q8_0", "15 tensors, 8,306,688 parameters, 8,825,856 bytes (8.42 MiB)");
        assertGguf(out, "tokenizer", "gpt2 (pre: llama-bpe), 128256 tokens");
        assertGguf(out, "runs in llama2j", "yes (cpu engine)");
        assertTrue(out.contains(String.format("%-24s present (", "chat template")), out);
        assertTrue(!out.contains("{% set loop_messages"), out);
        CliTestSupport.Run withTemplate = run("info", model.toString(), "--chat-template");
        assertTrue(withTemplate.out().contains("{% set loop_messages = messages %}"), withTemplate.out() + withTemplate.err());
    }

    @Test
    void ggufJson() {
        Path model = io.github.llama2j.TestData.gguf().resolve("models/qwen3-tiny-q8_0.gguf");
        CliTestSupport.Run r = run("info", model.toString(), "--json");
        assertEquals(0, r.exitCode(), r.err());
        for (String field : new String[]{"\"format\": \"gguf\"", "\"architecture\": \"qwen3\"", "\"attention.key_length\": 16",
                "\"attention.layer_norm_rms_epsilon\": 1e-06", "\"tokenizer\": \"gpt2\"", "\"tokenizer_pre\": \"qwen2\"",
                "\"vocab_size\": 151936", "\"chat_template\": \"{% for message in messages %}"}) {
            assertTrue(r.out().contains(field), field + " missing in\n" + r.out());
        }
    }

    @Test
    void ggufOfAnotherArchitectureIsDescribedAndMarkedNotRunnable() {
        Path vocab = io.github.llama2j.TestData.gguf().resolve("vocab/ggml-vocab-phi-3.gguf");
        CliTestSupport.Run r = run("info", vocab.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertGguf(r.out(), "architecture", "phi3");
        assertGguf(r.out(), "runs in llama2j", "no: architecture 'phi3' is not supported (supported: llama, qwen2, qwen3)");
    }

    @Test
    void brokenGgufExitsWithTwoAndOneLine() throws IOException {
        Path bad = tmp.resolve("bad.gguf");
        Files.write(bad, new byte[]{'G', 'G', 'U', 'F', 1, 0, 0, 0});
        CliTestSupport.Run r = run("info", bad.toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.errLines().startsWith("llama2j: bad.gguf: header field version is 1, supported versions are 2 and 3"), r.errLines());
    }

    private static void assertGguf(String out, String key, String value) {
        assertTrue(out.lines().anyMatch(l -> l.equals(String.format("%-24s %s", key, value))),
                "no line '" + key + " " + value + "' in\n" + out);
    }

    private static void assertLine(String out, String key, String value) {
        assertTrue(out.lines().anyMatch(l -> l.equals(String.format("%-17s %s", key, value))),
                "no line '" + key + " " + value + "' in\n" + out);
    }
}
