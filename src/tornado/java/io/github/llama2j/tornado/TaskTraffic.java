package io.github.llama2j.tornado;

import io.github.llama2j.model.Configuration;

/**
 * Bytes each task of the forward graph reads from device memory, from the model's shapes: the weights it
 * streams plus the activations it reads, each array counted once (what a kernel must at least move; a
 * work-group re-reading the input vector from cache is not counted again). Divided by TornadoVM's kernel
 * time this gives the achieved bandwidth in the profile table. Kept apart from {@link ForwardGraph} so the
 * graph's structure and this arithmetic can change independently; the cases follow the kernels'
 * arguments in {@link TransformerKernels}.
 */
final class TaskTraffic {
    private static final long F = Float.BYTES;

    private final Configuration c;
    private final java.util.Map<String, Long> ggmlWeights;

    TaskTraffic(Configuration c) {
        this(c, java.util.Map.of());
    }

    /** @param ggmlWeights a GGUF model's task kinds ({@code qkv_q8}, {@code w13_q4k}, ...) → weight bytes per token */
    TaskTraffic(Configuration c, java.util.Map<String, Long> ggmlWeights) {
        this.c = c;
        this.ggmlWeights = ggmlWeights;
    }

    /**
     * @param kind the task's name without graph and layer ({@code qkv}, {@code wo}, ... as in ForwardGraph)
     * @param pos  the token's position (attention reads the cache up to it)
     * @return bytes read, or 0 for a kind this class does not know; a GGUF model's products count their weights
     *         only (the activations they read are a few KiB against MiB of weights)
     */
    long bytesRead(String kind, int pos) {
        long dim = c.dim(), kvDim = c.kvDim(), hidden = c.hiddenDim(), vocab = c.vocabSize();
        long state = 2L * Integer.BYTES;
        if (ForwardGraph.isGgml(c)) {
            return kind.equals("attention") ? attention(pos, state) : ggmlWeights.getOrDefault(kind, 0L);
        }
        // A consumer's fused rmsnorm reads x and the norm weight; Q8 consumers quantize that input themselves.
        long norm = dim * F + dim * F;
        return switch (kind) {
            case "embed" -> state + vectorBytes(dim);
            case "qkv" -> state + c.headSize() * F /* RoPE row at pos */ + norm + matrixBytes(dim + 2 * kvDim, dim);
            case "attention" -> attention(pos, state);
            case "wo" -> dim * F + matrixBytes(dim, dim) + dim * F;
            case "w13" -> norm + matrixBytes(2 * hidden, dim);
            case "w2" -> hidden * F + matrixBytes(dim, hidden) + dim * F;
            case "classifier" -> norm + matrixBytes(vocab, dim);
            default -> 0;
        };
    }

    /** Attention at position pos: q, the keys and values up to pos, the scores. */
    private long attention(int pos, long state) {
        return state + (long) c.qDim() * F + 2L * (pos + 1) * c.kvDim() * F + (long) c.nHeads() * (pos + 1) * F;
    }

    /** A rows × cols weight matrix: float32, or Q8_0 values plus one float scale per group. */
    private long matrixBytes(long rows, long cols) {
        return c.quantized() ? rows * cols + rows * cols / c.groupSize() * F : rows * cols * F;
    }

    /** One embedding row. */
    private long vectorBytes(long n) {
        return c.quantized() ? n + n / c.groupSize() * F : n * F;
    }

}
