package io.github.llama2j.model;

import java.util.Arrays;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The GGUF architectures llama2j runs, as data: which RoPE style and which optional tensors each
 * has. Every one is the llama2.c transformer (RMSNorm, GQA attention, SwiGLU feed-forward) plus
 * these tensors; one forward pass serves them all.
 *
 * @param ggufName        {@code general.architecture}
 * @param ropeStyle       NORM (adjacent pairs) or NEOX (halves)
 * @param qkvBias         whether {@code attn_q/k/v.bias} are required, optional or absent
 * @param qkNorm          whether {@code attn_q_norm}/{@code attn_k_norm} (RMSNorm of each head before RoPE) are
 * @param ropeFreqs       whether {@code rope_freqs.weight} (Llama 3.1 style RoPE scaling) may be present
 */
public enum Architecture {
    /** Llama 2, Llama 3/3.1/3.2, Mistral, TinyLlama, SmolLM (llama.cpp's {@code llama}). */
    LLAMA("llama", RopeStyle.NORM, Presence.OPTIONAL, Presence.ABSENT, Presence.OPTIONAL),
    /** Qwen 2 / 2.5: q, k and v biases. */
    QWEN2("qwen2", RopeStyle.NEOX, Presence.REQUIRED, Presence.ABSENT, Presence.ABSENT),
    /** Qwen 3 (dense): per-head RMSNorm of q and k before RoPE, no biases. */
    QWEN3("qwen3", RopeStyle.NEOX, Presence.ABSENT, Presence.REQUIRED, Presence.ABSENT);

    /** Whether an architecture has a group of tensors. */
    public enum Presence { REQUIRED, OPTIONAL, ABSENT }

    private final String ggufName;
    private final RopeStyle ropeStyle;
    private final Presence qkvBias, qkNorm, ropeFreqs;

    Architecture(String ggufName, RopeStyle ropeStyle, Presence qkvBias, Presence qkNorm, Presence ropeFreqs) {
        this.ggufName = ggufName;
        this.ropeStyle = ropeStyle;
        this.qkvBias = qkvBias;
        this.qkNorm = qkNorm;
        this.ropeFreqs = ropeFreqs;
    }

    public String ggufName() {
        return ggufName;
    }

    public RopeStyle ropeStyle() {
        return ropeStyle;
    }

    public Presence qkvBias() {
        return qkvBias;
    }

    public Presence qkNorm() {
        return qkNorm;
    }

    public Presence ropeFreqs() {
        return ropeFreqs;
    }

    public static Optional<Architecture> byGgufName(String name) {
        return Arrays.stream(values()).filter(a -> a.ggufName.equals(name)).findFirst();
    }

    /** "llama, qwen2, qwen3": for messages. */
    public static String supported() {
        return Arrays.stream(values()).map(Architecture::ggufName).collect(Collectors.joining(", "));
    }
}
