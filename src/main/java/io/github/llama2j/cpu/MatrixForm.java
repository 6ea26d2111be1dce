package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

/**
 * A weight matrix in the layout the CPU kernels read: the file's ({@link File}) or a load-time copy
 * ({@link PackedQ8_0}, {@link KQuantPacked.Q4K}, {@link KQuantPacked.Q6K}; see {@link PreparedWeights}). An engine resolves each of its
 * matrices to its form once, when it is built ({@link PreparedWeights#resolve}), and its products dispatch on
 * the form ({@link Kernels#matmul(float[], Activations, MatrixForm, int, int)}): no product looks a copy up.
 */
public sealed interface MatrixForm permits MatrixForm.File, PackedQ8_0, KQuantPacked.Q4K, KQuantPacked.Q6K {

    /** The matrix as the file stores it: its type and shape, and what the embedding and the batched prefill read. */
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
}
