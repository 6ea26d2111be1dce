package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Load-time repacks of weight matrices into layouts the CPU kernels read faster than the file's,
 * one prepared form per {@link Matrix} type that has one (today: {@link Matrix.Q4_K}, as
 * {@link KQuantPacked.Q4K}; a Q6_K repack into the same kind of aligned layout measured 0.95–1.0× and
 * was not kept). The mapped file is never written: a prepared form is a copy in private memory, so it
 * costs that matrix's size in RAM (the file's pages it replaces are read once, at load, and stay
 * reclaimable page cache).
 *
 * <p>The engine calls {@link #prepare(Weights)} once, before the first product; the kernels look a
 * matrix up with {@link #q4_K}, which prepares a matrix that was not listed on its first use. Lookups
 * are thread-safe; equal records (the same bytes of the same mapping) share one form.
 */
public final class PreparedWeights {
    private final Map<Matrix, Object> forms = new ConcurrentHashMap<>();

    /** Prepares every matrix of {@code w} whose type has a prepared form (the embedding is read by rows and stays as is). */
    public void prepare(Weights w) {
        for (int l = 0; l < w.wq().length; l++) {
            for (Matrix m : new Matrix[]{w.wq()[l], w.wk()[l], w.wv()[l], w.wo()[l], w.w1()[l], w.w2()[l], w.w3()[l]}) {
                prepare(m);
            }
        }
        prepare(w.classifier());
    }

    /** Prepares one matrix (nothing for a type without a prepared form, or one already prepared). */
    public void prepare(Matrix m) {
        switch (m) {
            case Matrix.Q4_K q -> q4_K(q);
            default -> {
            }
        }
    }

    /** The prepared form of {@code m}, prepared now if it was not (a matrix the engine did not list, a test's). */
    KQuantPacked.Q4K q4_K(Matrix.Q4_K m) {
        return (KQuantPacked.Q4K) forms.computeIfAbsent(m, k -> KQuantPacked.Q4K.of(m));
    }

    /** Native bytes held by the prepared forms. */
    public long byteSize() {
        long total = 0;
        for (Object f : forms.values()) {
            total += switch (f) {
                case KQuantPacked.Q4K q -> q.byteSize();
                default -> 0;
            };
        }
        return total;
    }
}
