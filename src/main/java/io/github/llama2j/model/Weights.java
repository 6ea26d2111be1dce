package io.github.llama2j.model;

import java.lang.foreign.MemorySegment;

/**
 * Every tensor of the transformer, as views into the mapped checkpoint (nothing is copied).
 * Per-layer arrays are indexed by layer. The rms-norm weights are float32 vectors of {@code dim}.
 */
public record Weights(Matrix tokenEmbedding,
                      MemorySegment[] rmsAtt,
                      Matrix[] wq, Matrix[] wk, Matrix[] wv, Matrix[] wo,
                      MemorySegment[] rmsFfn,
                      Matrix[] w1, Matrix[] w2, Matrix[] w3,
                      MemorySegment rmsFinal,
                      Matrix classifier) {

    /** Bytes of weights one token's forward pass reads: every matrix once, the embedding row, the norms. */
    public long bytesPerToken() {
        long total = 0;
        for (int l = 0; l < wq.length; l++) {
            total += rmsAtt[l].byteSize() + rmsFfn[l].byteSize();
            total += wq[l].byteSize() + wk[l].byteSize() + wv[l].byteSize() + wo[l].byteSize();
            total += w1[l].byteSize() + w2[l].byteSize() + w3[l].byteSize();
        }
        total += rmsFinal.byteSize() + classifier.byteSize();
        total += tokenEmbedding.byteSize() / tokenEmbedding.rows();
        return total;
    }
}
