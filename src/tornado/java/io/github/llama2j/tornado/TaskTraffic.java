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

    TaskTraffic(Configuration c) {
        this.c = c;
    }

    /**
     * @param kind the task's name without graph and layer ({@code qkv}, {@code wo}, ... as in ForwardGraph)
     * @param pos  the token's position (attention reads the cache up to it)
     * @return bytes read, or 0 for a kind this class does not know (every task of a GGUF model, for now:
     *         its products' traffic depends on each matrix's type)
     */
    long bytesRead(String kind, int pos) {
        if (ForwardGraph.isGgml(c)) {
            return 0;
        }
        long dim = c.dim(), kvDim = c.kvDim(), hidden = c.hiddenDim(), vocab = c.vocabSize();
        long state = 2L * Integer.BYTES;
        // A consumer's fused rmsnorm reads x and the norm weight; Q8 consumers quantize that input themselves.
        long norm = dim * F + dim * F;
        return switch (kind) {
            case "embed" -> state + vectorBytes(dim);
            case "qkv" -> state + c.headSize() * F /* RoPE row at pos */ + norm + matrixBytes(dim + 2 * kvDim, dim);
            case "attention" -> state + dim * F + 2L * (pos + 1) * kvDim * F + (long) c.nHeads() * (pos + 1) * F;
            case "wo" -> dim * F + matrixBytes(dim, dim) + dim * F;
            case "w13" -> norm + matrixBytes(2 * hidden, dim);
            case "w2" -> hidden * F + matrixBytes(dim, hidden) + dim * F;
            case "classifier" -> norm + matrixBytes(vocab, dim);
            default -> 0;
        };
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
