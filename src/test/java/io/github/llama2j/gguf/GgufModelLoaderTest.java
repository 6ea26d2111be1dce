package io.github.llama2j.gguf;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Architecture;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.RopeStyle;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GgufModelLoaderTest {

    static Model load(byte[] bytes, int context) {
        GgufFile f = GgufFileTest.parse(bytes);
        try {
            return GgufModelLoader.load(f, context);
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
    }

    static String error(byte[] bytes) {
        Llama2jException e = assertThrows(Llama2jException.class, () -> load(bytes, 0).close());
        assertTrue(e.getMessage().startsWith("x.gguf: "), e.getMessage());
        return e.getMessage();
    }

    @Test
    void hyperParametersAndTensorsFromTheMetadata() {
        try (Model m = load(TinyGguf.qwen3().build(1), 0)) {
            Configuration c = m.config();
            assertEquals(ModelFormat.GGUF, m.format());
            assertEquals(Architecture.QWEN3, m.architecture().orElseThrow());
            assertEquals(16, c.dim());
            assertEquals(24, c.hiddenDim());
            assertEquals(2, c.nLayers());
            assertEquals(4, c.nHeads());
            assertEquals(2, c.nKvHeads());
            assertEquals(8, c.headSize());
            assertEquals(32, c.qDim());
            assertEquals(16, c.kvDim());
            assertEquals(11, c.vocabSize());
            assertEquals(32, c.seqLen());
            assertEquals(1e-5f, c.rmsEps());
            assertEquals(RopeStyle.NEOX, c.ropeStyle());
            assertTrue(c.sharedClassifier());
            assertSame(m.weights().tokenEmbedding(), m.weights().classifier());
            assertEquals(32, m.weights().wq()[0].rows());
            assertEquals(32, m.weights().wo()[0].cols());
            assertNotNull(m.weights().qNorm());
            assertNull(m.weights().bq());
            assertTrue(m.gguf().isPresent());
        }
        try (Model m = load(TinyGguf.llama().build(1), 8)) {
            assertEquals(RopeStyle.NORM, m.config().ropeStyle());
            assertEquals(8, m.config().seqLen());
            assertFalse(m.config().sharedClassifier());
            assertEquals(2, m.weights().ropeFreqs().byteSize() / 4);
            assertNull(m.weights().qNorm());
        }
        try (Model m = load(TinyGguf.qwen2().build(1), 0)) {
            assertNotNull(m.weights().bk());
        }
    }

    @Test
    void clearErrors() {
        TinyGguf llama = TinyGguf.llama();
        assertEquals("x.gguf: architecture 'phi3' is not supported (supported: llama, qwen2, qwen3)",
                error(new GgufWriter().str("general.architecture", "phi3").toBytes()));
        assertEquals("x.gguf: metadata key 'general.architecture' is missing", error(new GgufWriter().toBytes()));
        assertEquals("x.gguf: metadata key 'llama.embedding_length' is missing",
                error(new GgufWriter().str("general.architecture", "llama").toBytes()));
        TinyGguf noBias = new TinyGguf("qwen2", 16, 24, 1, 4, 2, 4, 11, 32, true, false, false, false);
        assertEquals("x.gguf: tensor 'blk.0.attn_q.bias' is missing", error(noBias.build(1)));
        TinyGguf normsInLlama = new TinyGguf("llama", 16, 24, 1, 4, 2, 4, 11, 32, true, false, true, false);
        assertEquals("x.gguf: tensor 'blk.0.attn_q_norm.weight' is not part of llama2j's llama model (a feature it does not support)",
                error(normsInLlama.build(1)));
        assertEquals("x.gguf: tensor 'blk.0.ffn_up.weight' has type iq2_xxs (ggml type 16), which llama2j does not support"
                + " (supported: f32, f16, bf16, q8_0, q4_0, q5_0, q5_1, iq4_nl, iq4_xs, q2_K, q3_K, q4_K, q5_K, q6_K)", error(replaceUp(llama)));
        assertEquals("x.gguf: context 64 is larger than the model's context_length 32",
                assertThrows(Llama2jException.class, () -> load(llama.build(1), 64)).getMessage());
        byte[] perLayer = llama.builder(1).ints("llama.attention.head_count_x", 1).toBytes();
        load(perLayer, 0).close(); // unknown keys are ignored
        assertTrue(error(new GgufWriter().str("general.architecture", "llama").u32("llama.embedding_length", 16)
                .u32("llama.block_count", 1).ints("llama.feed_forward_length", 24).toBytes())
                .contains("'llama.feed_forward_length' differs per layer: not supported"));
    }

    /** The llama model with blk.0.ffn_up.weight as an IQ2_XXS tensor (a type llama2j does not read) of the right shape. */
    private static byte[] replaceUp(TinyGguf t) {
        TinyGguf small = new TinyGguf("llama", 256, 24, 1, 4, 2, 64, 11, 32, true, false, false, false);
        GgufWriter b = new GgufWriter().str("general.architecture", "llama")
                .u32("llama.context_length", 32).u32("llama.embedding_length", 256).u32("llama.block_count", 1)
                .u32("llama.feed_forward_length", 24).u32("llama.attention.head_count", 4)
                .u32("llama.attention.head_count_kv", 2).f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        float[] z = new float[256 * 256];
        b.f32Tensor("token_embd.weight", java.util.Arrays.copyOf(z, 256 * 11), 256, 11);
        b.f32Tensor("blk.0.attn_norm.weight", java.util.Arrays.copyOf(z, 256), 256);
        b.f32Tensor("blk.0.attn_q.weight", z, 256, 256);
        b.f32Tensor("blk.0.attn_k.weight", java.util.Arrays.copyOf(z, 256 * 128), 256, 128);
        b.f32Tensor("blk.0.attn_v.weight", java.util.Arrays.copyOf(z, 256 * 128), 256, 128);
        b.f32Tensor("blk.0.attn_output.weight", z, 256, 256);
        b.f32Tensor("blk.0.ffn_norm.weight", java.util.Arrays.copyOf(z, 256), 256);
        b.f32Tensor("blk.0.ffn_gate.weight", java.util.Arrays.copyOf(z, 256 * 24), 256, 24);
        b.tensor("blk.0.ffn_up.weight", GgmlType.IQ2_XXS, new byte[66 * 24], 256, 24);
        return b.toBytes();
    }

    /** Every architecture's forward pass against the double-precision reference, on shapes the golden models lack. */
    @Test
    void forwardMatchesTheReference() {
        for (TinyGguf t : List.of(TinyGguf.llama(), TinyGguf.qwen2(), TinyGguf.qwen3())) {
            byte[] bytes = t.build(7);
            try (Model m = load(bytes, 0); GgufFile f = GgufFileTest.parse(bytes);
                 InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, false))) {
                GgufReference ref = new GgufReference(f, t.context());
                int[] tokens = {1, 5, 10, 3, 3, 7, 0, 2};
                for (int pos = 0; pos < tokens.length; pos++) {
                    float[] ours = e.forward(tokens[pos], pos);
                    double[] expected = ref.forward(tokens[pos], pos);
                    double max = 0, diff = 0;
                    for (int i = 0; i < ours.length; i++) {
                        max = Math.max(max, Math.abs(expected[i]));
                        diff = Math.max(diff, Math.abs(ours[i] - expected[i]));
                    }
                    assertTrue(diff <= 1e-5 * max, t.arch() + " pos " + pos + ": |diff| " + diff + ", max |logit| " + max);
                }
            }
        }
    }
}
