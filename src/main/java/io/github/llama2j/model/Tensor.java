package io.github.llama2j.model;

/**
 * The kinds of tensor in a llama2.c checkpoint, with their shapes. Per-layer kinds exist once per
 * layer; norms are single-row vectors of {@code dim}. Matrices are [rows = out, cols = in].
 */
public enum Tensor {
    TOKEN_EMBEDDING("token_embedding", false),
    RMS_ATT("rms_att", true),
    WQ("wq", true),
    WK("wk", true),
    WV("wv", true),
    WO("wo", true),
    RMS_FFN("rms_ffn", true),
    W1("w1", true),
    W2("w2", true),
    W3("w3", true),
    RMS_FINAL("rms_final", false),
    CLASSIFIER("classifier", false);

    private final String label;
    private final boolean perLayer;

    Tensor(String label, boolean perLayer) {
        this.label = label;
        this.perLayer = perLayer;
    }

    /** Lower-case name used in messages and JSON. */
    public String label() {
        return label;
    }

    public boolean perLayer() {
        return perLayer;
    }

    /** RMSNorm weight vectors: always float32, never quantized. */
    public boolean isNorm() {
        return this == RMS_ATT || this == RMS_FFN || this == RMS_FINAL;
    }

    public int rows(Configuration c) {
        return switch (this) {
            case TOKEN_EMBEDDING, CLASSIFIER -> c.vocabSize();
            case RMS_ATT, RMS_FFN, RMS_FINAL -> 1;
            case WQ -> c.qDim();
            case WO, W2 -> c.dim();
            case WK, WV -> c.kvDim();
            case W1, W3 -> c.hiddenDim();
        };
    }

    public int cols(Configuration c) {
        return switch (this) {
            case W2 -> c.hiddenDim();
            case WO -> c.qDim();
            default -> c.dim();
        };
    }

    public long numel(Configuration c) {
        return (long) rows(c) * cols(c);
    }
}
