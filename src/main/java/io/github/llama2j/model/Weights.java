package io.github.llama2j.model;

import java.lang.foreign.MemorySegment;

/**
 * Every tensor of the transformer, as views into the mapped file (nothing is copied).
 * Per-layer arrays are indexed by layer. Norm weights, biases and rope factors are float32 vectors.
 * The optional tensors are null when the architecture has none (always, for llama2.c checkpoints):
 *
 * @param bq        (n_layers) of (qDim) q bias, {@code qwen2}; else null; bk, bv likewise with (kvDim)
 * @param qNorm     (n_layers) of (head_size) RMSNorm weight applied to each query head before RoPE, {@code qwen3}; kNorm likewise
 * @param ropeFreqs (head_size / 2) RoPE frequency divisors ({@code rope_freqs.weight}, Llama 3.1 scaling), or null
 */
public record Weights(Matrix tokenEmbedding,
                      MemorySegment[] rmsAtt,
                      Matrix[] wq, Matrix[] wk, Matrix[] wv, Matrix[] wo,
                      MemorySegment[] rmsFfn,
                      Matrix[] w1, Matrix[] w2, Matrix[] w3,
                      MemorySegment rmsFinal,
                      Matrix classifier,
                      MemorySegment[] bq, MemorySegment[] bk, MemorySegment[] bv,
                      MemorySegment[] qNorm, MemorySegment[] kNorm,
                      MemorySegment ropeFreqs) {

    /** A llama2.c checkpoint's weights: no biases, no q/k norms, no rope factors. */
    public Weights(Matrix tokenEmbedding, MemorySegment[] rmsAtt, Matrix[] wq, Matrix[] wk, Matrix[] wv, Matrix[] wo,
                   MemorySegment[] rmsFfn, Matrix[] w1, Matrix[] w2, Matrix[] w3, MemorySegment rmsFinal, Matrix classifier) {
        this(tokenEmbedding, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, classifier, null, null, null, null, null, null);
    }

    /** True when the model has only llama2.c's tensors (what every engine supports). */
    public boolean llama2cTensorsOnly() {
        return bq == null && bk == null && bv == null && qNorm == null && kNorm == null && ropeFreqs == null;
    }

    /** Bytes of weights one token's forward pass reads: every matrix once, the embedding row, the norms, biases and factors. */
    public long bytesPerToken() {
        long total = 0;
        for (int l = 0; l < wq.length; l++) {
            total += rmsAtt[l].byteSize() + rmsFfn[l].byteSize();
            total += wq[l].byteSize() + wk[l].byteSize() + wv[l].byteSize() + wo[l].byteSize();
            total += w1[l].byteSize() + w2[l].byteSize() + w3[l].byteSize();
            for (MemorySegment[] optional : new MemorySegment[][]{bq, bk, bv, qNorm, kNorm}) {
                total += optional == null ? 0 : optional[l].byteSize();
            }
        }
        total += rmsFinal.byteSize() + classifier.byteSize();
        total += ropeFreqs == null ? 0 : ropeFreqs.byteSize();
        total += tokenEmbedding.byteSize() / tokenEmbedding.rows();
        return total;
    }
}
