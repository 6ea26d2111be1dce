package io.github.llama2j.model;

import java.util.Objects;

/**
 * The transformer's hyper-parameters: those of a llama2.c checkpoint header, plus what GGUF files
 * state and llama2.c hard-codes (head size, RMSNorm epsilon, RoPE base and style).
 *
 * @param groupSize Q8_0 group size for llama2.c version-2 files, 0 for float32 and GGUF files (GGUF
 *                  tensors carry their own types)
 * @param headSize  width of one attention head ({@code <arch>.attention.key_length}); llama2.c: dim / n_heads
 * @param rmsEps    RMSNorm epsilon added to the mean square; llama2.c: 1e-5
 * @param ropeTheta RoPE base; llama2.c: 10000
 * @param ropeStyle which pairs RoPE rotates, and with which arithmetic
 */
public record Configuration(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads,
                            int vocabSize, int seqLen, boolean sharedClassifier, int groupSize,
                            int headSize, float rmsEps, float ropeTheta, RopeStyle ropeStyle) {
    /** llama2.c's RMSNorm epsilon (run.c: {@code ss += 1e-5f}). */
    public static final float LLAMA2C_RMS_EPS = 1e-5f;
    /** llama2.c's RoPE base. */
    public static final float LLAMA2C_ROPE_THETA = 10000.0f;

    public Configuration {
        Objects.requireNonNull(ropeStyle, "ropeStyle");
    }

    /** A llama2.c checkpoint's configuration: head size dim / n_heads, epsilon 1e-5, RoPE base 10000 as run.c. */
    public Configuration(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads,
                         int vocabSize, int seqLen, boolean sharedClassifier, int groupSize) {
        this(dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier, groupSize,
                nHeads == 0 ? 0 : dim / nHeads, LLAMA2C_RMS_EPS, LLAMA2C_ROPE_THETA, RopeStyle.LLAMA2C);
    }

    /** Width of all query heads together (= dim in llama2.c checkpoints; wq is [qDim x dim], wo [dim x qDim]). */
    public int qDim() {
        return headSize * nHeads;
    }

    /** Width of one position's K (or V) row: the key/value heads only. */
    public int kvDim() {
        return headSize * nKvHeads;
    }

    /** How many query heads share one key/value head (grouped-query attention). */
    public int kvMul() {
        return nHeads / nKvHeads;
    }

    public boolean quantized() {
        return groupSize > 0;
    }

    /** Number of weight parameters, classifier included once if shared (norms, biases and rope factors excluded beyond the llama2.c set). */
    public long parameterCount() {
        long d = dim, h = hiddenDim, q = qDim(), kv = kvDim(), l = nLayers, v = vocabSize;
        long perLayer = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * h;
        return v * d + l * perLayer + d + (sharedClassifier ? 0 : v * d);
    }
}
