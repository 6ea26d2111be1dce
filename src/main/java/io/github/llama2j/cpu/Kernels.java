package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

/**
 * The matrix-vector products of the forward pass: where nearly all of a token's time goes, and the
 * one place where an engine may trade run.c's exact float summation order for speed. Each call
 * computes output rows {@code [r0, r1)}, so the caller can split rows across threads.
 *
 * <p>Implementations: {@link ScalarKernels}, the plain reference in run.c's order, and
 * {@link VectorKernels}, the Vector API ones. Q8 products are exact in both (integer dot per group,
 * then runq's sequential float accumulation over groups).
 */
public interface Kernels {

    /** {@code out[r] = sum_j w[r][j] * x[j]} for r in [r0, r1). */
    void matmulF32(float[] out, float[] x, Matrix.F32 w, int r0, int r1);

    /**
     * runq's Q8_0 product: for each group, an int32 dot of the int8 activations {@code xq} with
     * the int8 weights, then {@code val += ((float) idot * wScale) * xScale}, group after group.
     */
    void matmulQ8(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1);

    /** Name used in stats, e.g. {@code scalar} or {@code vector512}. */
    String name();
}
