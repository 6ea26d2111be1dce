package io.github.llama2j.gguf;

import java.util.Random;

/**
 * Tiny random GGUF models of the supported architectures, every tensor float32, for loader tests,
 * the reference forward pass and fuzz seeds.
 */
public record TinyGguf(String arch, int dim, int hidden, int layers, int heads, int kvHeads, int headSize, int vocab,
                       int context, boolean tied, boolean bias, boolean qkNorm, boolean ropeFreqs) {

    public static TinyGguf llama() {
        return new TinyGguf("llama", 16, 24, 2, 4, 2, 4, 11, 32, false, false, false, true);
    }

    public static TinyGguf qwen2() {
        return new TinyGguf("qwen2", 16, 24, 2, 4, 2, 4, 11, 32, true, true, false, false);
    }

    /** head size 8 with 4 heads: q is 32 wide while dim is 16 (as Qwen3 0.6B's 2048 vs 1024). */
    public static TinyGguf qwen3() {
        return new TinyGguf("qwen3", 16, 24, 2, 4, 2, 8, 11, 32, true, false, true, false);
    }

    public GgufWriter builder(long seed) {
        Random rnd = new Random(seed);
        int qDim = heads * headSize, kvDim = kvHeads * headSize;
        GgufWriter b = new GgufWriter()
                .str("general.architecture", arch).str("general.name", arch + "-tiny")
                .u32(arch + ".context_length", context).u32(arch + ".embedding_length", dim)
                .u32(arch + ".block_count", layers).u32(arch + ".feed_forward_length", hidden)
                .u32(arch + ".attention.head_count", heads).u32(arch + ".attention.head_count_kv", kvHeads)
                .f32(arch + ".rope.freq_base", 10000f).f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
        if (headSize != dim / heads) {
            b.u32(arch + ".attention.key_length", headSize).u32(arch + ".attention.value_length", headSize);
        }
        String[] tokens = new String[vocab];
        for (int i = 0; i < vocab; i++) {
            tokens[i] = "t" + i;
        }
        b.str("tokenizer.ggml.model", "llama").strings("tokenizer.ggml.tokens", tokens);
        b.f32Tensor("token_embd.weight", random(rnd, vocab * dim, 0.5f), dim, vocab);
        if (ropeFreqs) {
            float[] f = new float[headSize / 2];
            for (int i = 0; i < f.length; i++) {
                f[i] = 1 + i * 3.5f;
            }
            b.f32Tensor("rope_freqs.weight", f, f.length);
        }
        for (int l = 0; l < layers; l++) {
            String p = "blk." + l + ".";
            b.f32Tensor(p + "attn_norm.weight", norm(rnd, dim), dim);
            b.f32Tensor(p + "attn_q.weight", random(rnd, qDim * dim, 0.3f), dim, qDim);
            b.f32Tensor(p + "attn_k.weight", random(rnd, kvDim * dim, 0.3f), dim, kvDim);
            b.f32Tensor(p + "attn_v.weight", random(rnd, kvDim * dim, 0.3f), dim, kvDim);
            if (bias) {
                b.f32Tensor(p + "attn_q.bias", random(rnd, qDim, 0.2f), qDim);
                b.f32Tensor(p + "attn_k.bias", random(rnd, kvDim, 0.2f), kvDim);
                b.f32Tensor(p + "attn_v.bias", random(rnd, kvDim, 0.2f), kvDim);
            }
            if (qkNorm) {
                b.f32Tensor(p + "attn_q_norm.weight", norm(rnd, headSize), headSize);
                b.f32Tensor(p + "attn_k_norm.weight", norm(rnd, headSize), headSize);
            }
            b.f32Tensor(p + "attn_output.weight", random(rnd, dim * qDim, 0.3f), qDim, dim);
            b.f32Tensor(p + "ffn_norm.weight", norm(rnd, dim), dim);
            b.f32Tensor(p + "ffn_gate.weight", random(rnd, hidden * dim, 0.3f), dim, hidden);
            b.f32Tensor(p + "ffn_up.weight", random(rnd, hidden * dim, 0.3f), dim, hidden);
            b.f32Tensor(p + "ffn_down.weight", random(rnd, dim * hidden, 0.3f), hidden, dim);
        }
        b.f32Tensor("output_norm.weight", norm(rnd, dim), dim);
        if (!tied) {
            b.f32Tensor("output.weight", random(rnd, vocab * dim, 0.3f), dim, vocab);
        }
        return b;
    }

    public byte[] build(long seed) {
        return builder(seed).toBytes();
    }

    private static float[] random(Random rnd, int n, float std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian() * std;
        }
        return v;
    }

    private static float[] norm(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = 1 + (float) rnd.nextGaussian() * 0.1f;
        }
        return v;
    }
}
