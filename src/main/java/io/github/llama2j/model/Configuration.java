package io.github.llama2j.model;

/**
 * The transformer's hyper-parameters, as stored in a llama2.c checkpoint header.
 *
 * @param groupSize Q8_0 group size for version-2 files, 0 for float32 files
 */
public record Configuration(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads,
                            int vocabSize, int seqLen, boolean sharedClassifier, int groupSize) {

    public int headSize() {
        return dim / nHeads;
    }

    /** Width of one position's K (or V) row: the key/value heads only. */
    public int kvDim() {
        return (dim / nHeads) * nKvHeads;
    }

    /** How many query heads share one key/value head (grouped-query attention). */
    public int kvMul() {
        return nHeads / nKvHeads;
    }

    public boolean quantized() {
        return groupSize > 0;
    }

    /** Number of weight parameters, classifier included once if shared. */
    public long parameterCount() {
        long d = dim, h = hiddenDim, kv = kvDim(), l = nLayers, v = vocabSize;
        long perLayer = 2 * d + d * d + 2 * d * kv + d * d + 3 * d * h;
        return v * d + l * perLayer + d + (sharedClassifier ? 0 : v * d);
    }
}
