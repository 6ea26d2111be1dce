package io.github.llama2j.gguf;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.Weights;
import io.github.llama2j.tornado.ChunkedEngines;
import io.github.llama2j.tornado.TornadoEngine;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The TornadoVM engine's batched prefill on GGUF models ({@code PrefillGraph}, {@code GgmlPrefillKernels}), on an
 * engine built with chunks of {@value #B} tokens so that the golden prompts (1 to 104 tokens) run as one chunk shorter
 * than B and as several chunks with a shorter tail:
 * <ul>
 *   <li>the logits after a prompt of several chunks (the golden file's 44- to 60-token case) and after one shorter than
 *       a chunk (its 10- to 13-token case) equal the token-by-token device path's within {@value #TOLERANCE} of
 *       max|logit| (per token the prefill kernels do the one-token kernels' operations in the same order, through the
 *       same per-row dot helpers: F16, Q8_0 and Q8_K activations round as there; measured on PoCL: printed);</li>
 *   <li>every golden case, its prompt prefilled in chunks, then teacher-forced, gives llama.cpp's greedy ids
 *       ({@link GgufGoldenTest#against}: the near-tie and drift rules of the CPU engine's golden test).</li>
 * </ul>
 * Models: llama (Llama 3 shape: GQA, tied output, rope_freqs) in F32, F16 and Q8_0; Q4_K_M (Q4_K with Q6_K rows); qwen2
 * (q/k/v biases, NEOX RoPE) and qwen3 (q/k head RMSNorm).
 */
@Tag("tornado")
class TornadoGgufPrefillTest {
    static final int B = 16;
    /** |batched - token by token| / max|logit|: the same operations, so float rounding at most (measured: printed). */
    static final double TOLERANCE = 1e-5;

    @ParameterizedTest
    @ValueSource(strings = {"llama3-tiny-q8_0.json", "llama3-tiny-f32.json", "llama3-tiny-f16.json", "llama2-tiny-q4_k_m.json",
            "qwen2-tiny-q8_0.json", "qwen3-tiny-q8_0.json"})
    @SuppressWarnings("unchecked")
    void batchedPrefillMatchesTheTokenPathAndLlamaCpp(String json) throws IOException {
        Path golden = TestData.gguf().resolve("golden");
        Map<String, Object> g = Json.read(golden.resolve(json));
        String name = (String) g.get("model_file");
        try (Model model = load(g, golden); TornadoEngine e = ChunkedEngines.engine(model, B)) {
            Configuration c = model.config();
            assertEquals(B, e.prefillChunk(), name + ": batched prefill graphs (0: token by token)");
            assertEquals(5 * c.nLayers() + 2, e.launchesPerChunk(), name + ": launches per chunk: 5 per layer + embed + classifier");
            long expectedBytes = 4L * B * (c.dim() + 3L * c.qDim() + 2L * c.kvDim() + c.hiddenDim() + (long) c.nHeads() * c.seqLen())
                    + 4L * (2 + B);
            assertEquals(expectedBytes, ChunkedEngines.prefillBudget(c, model.weights(), B), name + ": memory budget of the chunk buffers");
            double worst = 0;
            for (Map<String, Object> k : (List<Map<String, Object>>) g.get("cases")) {
                int[] prompt = Json.ints(k.get("prompt_tokens"));
                if (prompt.length < 10 || prompt.length > 64) {
                    continue;   // one case shorter than B, one of several chunks with a shorter tail
                }
                e.reset();
                float[] expected = null;
                for (int pos = 0; pos < prompt.length; pos++) {
                    expected = e.forward(prompt[pos], pos).clone();
                }
                e.reset();
                float[] actual = e.forwardBatch(prompt, 0).clone();
                double max = 0, diff = 0;
                for (int i = 0; i < expected.length; i++) {
                    max = Math.max(max, Math.abs(expected[i]));
                    diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
                }
                worst = Math.max(worst, diff / max);
                assertTrue(diff / max <= TOLERANCE, name + " " + k.get("id") + " (" + prompt.length + " tokens): batched prefill's logits "
                        + "differ from the token path's by " + diff / max + " of max|logit|");
            }
            GgufGoldenTest.Result r = GgufGoldenTest.against(g, name, e, golden);
            System.out.printf(Locale.ROOT, "%s: batched prefill (B=%d) vs token by token, largest relative logit difference %.3g; "
                    + "against llama.cpp: %s%n", name, B, worst, r);
            assertTrue(r.failures().isEmpty(), name + ": " + r.failures());
        }
    }

    /**
     * A GGUF layer whose w1 and w3 differ in type (F32 and F16: two products, not the prefill's one w13 kernel) keeps
     * the token-by-token prefill, and the memory budget then counts no chunk buffers (Q4_K beside Q6_K does stack: the
     * Q4_K_M model above, whose layer 1 has a Q6_K wv, is prefilled in chunks).
     */
    @Test
    void aLayerWhoseProductsDoNotStackPrefillsTokenByToken() {
        try (Model m = GgufModelLoader.load(GgufFileTest.parse(TinyGguf.llama().build(3)), 0)) {
            Configuration c = m.config();
            Weights w = m.weights();
            assertTrue(ChunkedEngines.supports(c, w), "all F32: batched");
            Matrix[] w3 = w.w3().clone();
            Matrix f32 = w3[c.nLayers() - 1];
            w3[c.nLayers() - 1] = new Matrix.F16(Arena.ofAuto().allocate(2L * f32.rows() * f32.cols()), f32.rows(), f32.cols());
            Weights mixed = new Weights(w.tokenEmbedding(), w.rmsAtt(), w.wq(), w.wk(), w.wv(), w.wo(), w.rmsFfn(), w.w1(), w.w2(), w3,
                    w.rmsFinal(), w.classifier(), w.bq(), w.bk(), w.bv(), w.qNorm(), w.kNorm(), w.ropeFreqs());
            assertFalse(ChunkedEngines.supports(c, mixed), "the last layer's w1 F32, w3 F16: token by token");
            assertEquals(0, ChunkedEngines.prefillBudget(c, mixed, B), "no chunk buffers counted");
            assertTrue(ChunkedEngines.prefillBudget(c, w, B) > 0, "chunk buffers counted");
        }
    }

    static Model load(Map<String, Object> g, Path golden) {
        if (g.get("model_path") != null) {
            return GgufModelLoader.load(golden.resolve((String) g.get("model_path")).normalize());
        }
        return GgufModelLoader.load(GgufFileTest.parse(GoldenTwins.build(g)), 0);
    }
}
