package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

/**
 * The matrix-vector products of the forward pass: where nearly all of a token's time goes, and the
 * one place where an engine may trade run.c's exact float summation order for speed. Each call
 * computes output rows {@code [r0, r1)}, so the caller can split rows across threads.
 *
 * <p>{@link #matmul} is the entry point for every tensor type: the caller prepares the input's
 * converted forms once ({@link Activations#prepareFor}) and the workers read them. The engines call it on
 * each matrix's {@link MatrixForm}, resolved once when the engine is built: the file's layout, or the
 * load-time copy ({@link PreparedWeights}) the form itself is; on a bare {@link Matrix} it reads the file's layout.
 *
 * <p>Implementations: {@link ScalarKernels}, the plain reference in run.c's order (and ggml's
 * reference order for GGML types), and {@link VectorKernels}, the Vector API ones. Q8 products are
 * exact in both (integer dot per group, then runq's sequential float accumulation over groups).
 * GGML quantized products are integer dots per block, scaled and accumulated in float as
 * llama.cpp does; the vector kernels accumulate in a different order (a few ulps).
 *
 * <p>The GGML types' methods default to the Vector API kernels ({@link GgmlMatmul}), which both
 * {@link VectorKernels} and {@link ExactVectorKernels} use: there is no exact order to keep for them
 * (llama.cpp itself sums them in different orders in its one-token and batch kernels).
 * {@link ScalarKernels} overrides them with the references.
 */
public interface Kernels {

    /**
     * {@code out[r] = sum_j m[r][j] * x[j]} for r in [r0, r1) on m's form: a copy's kernel, or
     * {@link #matmul(float[], Activations, Matrix, int, int)} on the file's layout. The same results either way (Q4_K and
     * Q6_K: the same integers per sub-block, the float sums in other lanes, a few ulps apart).
     */
    default void matmul(float[] out, Activations x, MatrixForm m, int r0, int r1) {
        switch (m) {
            case MatrixForm.File f -> matmul(out, x, f.source(), r0, r1);
            case MatrixForm.Copy c when c.finiteHalves() -> matmulFiniteF16(out, x, (Matrix.F16) c.copy(), r0, r1);
            case MatrixForm.Copy c -> matmul(out, x, c.copy(), r0, r1);
            case PackedQ8_0 p when p.source() instanceof Matrix.Q8 -> matmulPackedQ8(out, x, p, r0, r1);
            case PackedQ8_0 p -> matmulPackedQ8_0(out, x, p, r0, r1);
            case PackedQ4_0 p -> matmulPackedQ4_0(out, x, p, r0, r1);
            case PackedQ5_1 p -> matmulPackedQ5_1(out, x, p, r0, r1);
            case KQuantPacked.Q2K q -> matmulPackedQ2_K(out, x, q, r0, r1);
            case KQuantPacked.Q3K q -> matmulPackedQ3_K(out, x, q, r0, r1);
            case KQuantPacked.Q4K q -> matmulPackedQ4_K(out, x, q, r0, r1);
            case KQuantPacked.Q5K q -> matmulPackedQ5_K(out, x, q, r0, r1);
            case KQuantPacked.Q6K q -> matmulPackedQ6_K(out, x, q, r0, r1);
        }
    }

    /** {@code out[r] = sum_j m[r][j] * x[j]} for r in [r0, r1), m in the file's layout, x in the form m's type needs (prepared). */
    default void matmul(float[] out, Activations x, Matrix m, int r0, int r1) {
        x.check(m);
        switch (m) {
            case Matrix.F32 f -> matmulF32(out, x.x(), f, r0, r1);
            case Matrix.Q8 q -> matmulQ8(out, x, q, r0, r1);
            case Matrix.F16 h -> matmulF16(out, x, h, r0, r1);
            case Matrix.BF16 h -> matmulBF16(out, x, h, r0, r1);
            case Matrix.Q8_0 q -> matmulQ8_0(out, x, q, r0, r1);
            case Matrix.Q4_0 q -> matmulQ4_0(out, x, q, r0, r1);
            case Matrix.Q5_1 q -> matmulQ5_1(out, x, q, r0, r1);
            case Matrix.Q2_K q -> matmulQ2_K(out, x, q, r0, r1);
            case Matrix.Q3_K q -> matmulQ3_K(out, x, q, r0, r1);
            case Matrix.IQ4_NL q -> matmulIQ4_NL(out, x, q, r0, r1);
            case Matrix.IQ4_XS q -> matmulIQ4_XS(out, x, q, r0, r1);
            case Matrix.Q4_K q -> matmulQ4_K(out, x, q, r0, r1);
            case Matrix.Q5_K q -> matmulQ5_K(out, x, q, r0, r1);
            case Matrix.Q6_K q -> matmulQ6_K(out, x, q, r0, r1);
        }
    }

    /** {@code out[r] = sum_j w[r][j] * x[j]} for r in [r0, r1). */
    void matmulF32(float[] out, float[] x, Matrix.F32 w, int r0, int r1);

    /**
     * runq's Q8_0 product: for each group, an int32 dot of the int8 activations {@code xq} with
     * the int8 weights, then {@code val += ((float) idot * wScale) * xScale}, group after group.
     */
    void matmulQ8(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1);

    /** {@link #matmulQ8(float[], byte[], float[], Matrix.Q8, int, int)} on the prepared activations' runq groups. */
    default void matmulQ8(float[] out, Activations x, Matrix.Q8 w, int r0, int r1) {
        matmulQ8(out, x.q8, x.q8Scales, w, r0, r1);
    }

    /**
     * {@link #matmulQ8} on a runq Q8 matrix repacked at load time ({@link PackedQ8_0}): bit-identical to runq
     * (the same integer dots, scalings and float order per row).
     */
    default void matmulPackedQ8(float[] out, Activations x, PackedQ8_0 w, int r0, int r1) {
        x.check(w.source());
        Matrix.Q8 q = (Matrix.Q8) w.source();
        if (Q8Matmul.handlesPacked(q.groupSize())) {
            Q8Matmul.matmulPacked(out, x.q8Input, w, r0, r1);
        } else { // a group size the packed kernel does not read (never packed by PreparedWeights): the source
            matmulQ8(out, x, q, r0, r1);
        }
    }

    /** F16 weights times the activations rounded to F16 (products exact in float, summed in float). */
    default void matmulF16(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        GgmlMatmul.f16(out, x, w, r0, r1);
    }

    /**
     * {@link #matmulF16} on weights known to hold no inf or NaN half (a copy checked when it was made:
     * {@link MatrixForm.Copy#finiteHalves}); the same results.
     */
    default void matmulFiniteF16(float[] out, Activations x, Matrix.F16 w, int r0, int r1) {
        x.check(w);
        GgmlMatmul.f16(out, x, w, r0, r1, false);
    }

    /** BF16 weights times the activations rounded to BF16. */
    default void matmulBF16(float[] out, Activations x, Matrix.BF16 w, int r0, int r1) {
        GgmlMatmul.bf16(out, x, w, r0, r1);
    }

    /** GGML Q8_0 weights times Q8_0 activations: per block, int dot times (d_w * d_x), summed in float. */
    default void matmulQ8_0(float[] out, Activations x, Matrix.Q8_0 w, int r0, int r1) {
        GgmlMatmul.q8_0(out, x, w, r0, r1);
    }

    /**
     * {@link #matmulQ8_0} on a Q8_0 matrix repacked at load time ({@link PackedQ8_0}): the same products and
     * the same float order per row.
     */
    default void matmulPackedQ8_0(float[] out, Activations x, PackedQ8_0 w, int r0, int r1) {
        x.check(w.source());
        GgmlMatmul.q8_0Packed(out, x, w, r0, r1);
    }

    /** GGML Q4_0 weights times Q8_0 activations: per block, int dot of (nibble - 8) and q times (d_w * d_x). */
    default void matmulQ4_0(float[] out, Activations x, Matrix.Q4_0 w, int r0, int r1) {
        GgmlMatmul.q4_0(out, x, w, r0, r1);
    }

    /**
     * {@link #matmulQ4_0} on a Q4_0 matrix repacked at load time ({@link PackedQ4_0}): the same products and the same
     * float order per row.
     */
    default void matmulPackedQ4_0(float[] out, Activations x, PackedQ4_0 w, int r0, int r1) {
        x.check(w.source());
        GgmlMatmul.q4_0Packed(out, x, w, r0, r1);
    }

    /**
     * GGML Q5_1 weights times Q8_1 activations: per block, {@code (d_w * d_x) * sumi + m_w * s_x} with sumi the exact
     * int dot of the 5-bit values and the int8 activations and s_x the activations' block sum ({@link Activations}),
     * on the file's layout.
     */
    default void matmulQ5_1(float[] out, Activations x, Matrix.Q5_1 w, int r0, int r1) {
        GgmlMatmul.q5_1(out, x, w, r0, r1);
    }

    /** GGML IQ4_NL weights times Q8_0 activations: per block, the int dot of the nibbles' levels and q, times (d_w * d_x). */
    default void matmulIQ4_NL(float[] out, Activations x, Matrix.IQ4_NL w, int r0, int r1) {
        GgmlMatmul.iq4_nl(out, x, w, r0, r1);
    }

    /**
     * GGML IQ4_XS weights times Q8_K activations: per super-block, d_w * d_x * sum_s (ls_s - 32) * dot_s(levels, q8), the
     * sum over the 8 sub-blocks an exact int, on the file's layout (in place, or copied as it is: {@link PreparedWeights}).
     */
    default void matmulIQ4_XS(float[] out, Activations x, Matrix.IQ4_XS w, int r0, int r1) {
        GgmlMatmul.iq4_xs(out, x, w, r0, r1);
    }

    /**
     * GGML Q2_K weights times Q8_K activations: per super-block, d_w * d_x * sum_j sc_j * dot_j(q2, q8) minus
     * dmin_w * d_x * sum_j m_j * (Q8_K's sum of sub-block j), both sums over the 16 sub-blocks exact ints, on the
     * file's layout.
     */
    default void matmulQ2_K(float[] out, Activations x, Matrix.Q2_K w, int r0, int r1) {
        GgmlMatmul.q2_K(out, x, w, r0, r1);
    }

    /** {@link #matmulQ2_K} on a Q2_K matrix repacked at load time ({@link KQuantPacked.Q2K}): the same integers, other float lanes. */
    default void matmulPackedQ2_K(float[] out, Activations x, KQuantPacked.Q2K w, int r0, int r1) {
        x.check(w.source());
        KQuantPacked.q2_K(out, x, w, r0, r1);
    }

    /**
     * GGML Q3_K weights times Q8_K activations: per super-block, d_w * d_x * sum_j (sc_j - 32) * dot_j(q3, q8), the sum
     * over the 16 sub-blocks an exact int, on the file's layout (in place, or at 512 bits copied as it is: {@link PreparedWeights}).
     */
    default void matmulQ3_K(float[] out, Activations x, Matrix.Q3_K w, int r0, int r1) {
        GgmlMatmul.q3_K(out, x, w, r0, r1);
    }

    /** {@link #matmulQ3_K} on a Q3_K matrix repacked at load time ({@link KQuantPacked.Q3K}): the same integers, other float lanes. */
    default void matmulPackedQ3_K(float[] out, Activations x, KQuantPacked.Q3K w, int r0, int r1) {
        x.check(w.source());
        KQuantPacked.q3_K(out, x, w, r0, r1);
    }

    /**
     * {@link #matmulQ5_1} on a Q5_1 matrix repacked at load time ({@link PackedQ5_1}): the same integers per block, each
     * row's float sums in one lane (a few ulps from the file's layout).
     */
    default void matmulPackedQ5_1(float[] out, Activations x, PackedQ5_1 w, int r0, int r1) {
        x.check(w.source());
        GgmlMatmul.q5_1Packed(out, x, w, r0, r1);
    }

    /**
     * GGML Q4_K weights times Q8_K activations: per super-block, d_w * d_x * sum_j sc_j * dot_j
     * minus dmin_w * d_x * sum_j m_j * (sum of sub-block j's q), the integer sums exact (the vector kernel
     * keeps each m_j * sum an exact int and sums the mins' products in float, as llama.cpp's AVX2 kernel does);
     * on the file's layout the copy's integers per sub-block ({@link KQuantPacked}), summed in float in other lanes.
     */
    default void matmulQ4_K(float[] out, Activations x, Matrix.Q4_K w, int r0, int r1) {
        KQuantPacked.q4_K(out, x, w, r0, r1);
    }

    /** {@link #matmulQ4_K} on a Q4_K matrix repacked at load time ({@link KQuantPacked.Q4K}): the same integers, other float lanes. */
    default void matmulPackedQ4_K(float[] out, Activations x, KQuantPacked.Q4K w, int r0, int r1) {
        x.check(w.source());
        KQuantPacked.q4_K(out, x, w, r0, r1);
    }

    /**
     * GGML Q5_K weights times Q8_K activations: per super-block, d_w * d_x * sum_j sc_j * dot_j(q5, q8)
     * - dmin_w * d_x * sum_j m_j * (q8 sum of sub-block j), on the file's layout.
     */
    default void matmulQ5_K(float[] out, Activations x, Matrix.Q5_K w, int r0, int r1) {
        GgmlMatmul.q5_K(out, x, w, r0, r1);
    }

    /** {@link #matmulQ5_K} on a Q5_K matrix repacked at load time ({@link KQuantPacked.Q5K}): the same integers, other float lanes. */
    default void matmulPackedQ5_K(float[] out, Activations x, KQuantPacked.Q5K w, int r0, int r1) {
        x.check(w.source());
        KQuantPacked.q5_K(out, x, w, r0, r1);
    }

    /** GGML Q6_K weights times Q8_K activations: per super-block, d_w * d_x * sum_j sc_j * dot_j(q6 - 32, q8). */
    default void matmulQ6_K(float[] out, Activations x, Matrix.Q6_K w, int r0, int r1) {
        GgmlMatmul.q6_K(out, x, w, r0, r1);
    }

    /** {@link #matmulQ6_K} on a Q6_K matrix repacked at load time ({@link KQuantPacked.Q6K}): the same integers, other float lanes. */
    default void matmulPackedQ6_K(float[] out, Activations x, KQuantPacked.Q6K w, int r0, int r1) {
        x.check(w.source());
        KQuantPacked.q6_K(out, x, w, r0, r1);
    }

    /**
     * Whether these kernels read load-time copies ({@link PreparedWeights}); false for the scalar references,
     * which read every matrix in the file's layout (an engine on them makes no copy).
     */
    default boolean readsCopies() {
        return true;
    }

    /** Name used in stats, e.g. {@code scalar} or {@code vector512}. */
    String name();
}
