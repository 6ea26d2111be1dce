package io.github.llama2j.model;

/**
 * Supplies a checkpoint's float32 weights row by row, so that a writer can stream a model of any
 * size to disk without holding a whole tensor. Implementations must allow concurrent calls.
 */
public interface WeightSource {

    /** The shape of the model (its group size and format are the writer's business). */
    Configuration config();

    /**
     * Copies rows [{@code firstRow}, {@code firstRow + rowCount}) of {@code tensor} (of {@code layer}
     * for per-layer kinds, 0 otherwise) into {@code dst[offset ..]}, {@code rowCount * cols} floats.
     */
    void rows(Tensor tensor, int layer, int firstRow, int rowCount, float[] dst, int offset);

    /** The float32 weights of a loaded v0 or v1 checkpoint. */
    static WeightSource of(Model model) {
        return new ModelWeightSource(model);
    }
}
