package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

/**
 * A weight matrix in the layout the CPU kernels read: the file's ({@link File}), the file's layout copied into
 * private memory ({@link Copy}) or a load-time repack ({@link PackedQ8_0}, {@link PackedQ4_0}, {@link PackedQ5_1}, {@link KQuantPacked.Q2K},
 * {@link KQuantPacked.Q3K}, {@link KQuantPacked.Q4K}, {@link KQuantPacked.Q5K}, {@link KQuantPacked.Q6K}; see {@link PreparedWeights}). An engine resolves each of its
 * matrices to its form once, when it is built ({@link PreparedWeights#resolve}), and its products dispatch on
 * the form ({@link Kernels#matmul(float[], Activations, MatrixForm, int, int)}): no product looks a copy up.
 */
public sealed interface MatrixForm permits MatrixForm.File, MatrixForm.Copy, PackedQ8_0, PackedQ4_0, PackedQ5_1, KQuantPacked.Q2K, KQuantPacked.Q3K, KQuantPacked.Q4K, KQuantPacked.Q5K,
        KQuantPacked.Q6K {

    /**
     * The matrix as the file stores it: its type and shape, and what the embedding reads (and the batched prefill,
     * except from a {@link Copy}).
     */
    Matrix source();

    /** Bytes of the file's matrix (what the step timers count for a product, whatever layout it reads). */
    default long byteSize() {
        return source().byteSize();
    }

    /** The file's layout, read in place. */
    record File(Matrix source) implements MatrixForm {
        public File {
            java.util.Objects.requireNonNull(source, "source");
        }
    }

    /**
     * The file's layout copied into private memory ({@link PreparedWeights}: float32, F16, BF16, IQ4_NL and IQ4_XS matrices, Q3_K at 512 bits, in huge pages where the
     * system grants them): the same bytes, read by the same kernels as the file's ({@code copy} is {@code source}'s
     * matrix over the copy's memory), so the same results bit for bit. {@code finiteHalves}: an F16 copy found to hold no
     * inf or NaN half when it was made, which its kernel then does not look for ({@link Kernels#matmulFiniteF16});
     * false for the other types.
     */
    record Copy(Matrix source, Matrix copy, boolean finiteHalves) implements MatrixForm {
        public Copy {
            java.util.Objects.requireNonNull(source, "source");
            java.util.Objects.requireNonNull(copy, "copy");
            if (finiteHalves && !(copy instanceof Matrix.F16)) {
                throw new IllegalArgumentException("finiteHalves is for F16 copies, not " + copy.typeName());
            }
            if (source.getClass() != copy.getClass() || source.rows() != copy.rows() || source.cols() != copy.cols()
                    || source.byteSize() != copy.byteSize()) {
                throw new IllegalArgumentException("a copy of a " + source.typeName() + " " + source.rows() + "x" + source.cols()
                        + " matrix is a " + copy.typeName() + " " + copy.rows() + "x" + copy.cols() + " (" + copy.byteSize() + " bytes)");
            }
        }
    }
}
