package io.github.llama2j.model;

import io.github.llama2j.Llama2jException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Reads the weights of a float32 (v0 or v1) checkpoint, straight from its mapped file. */
final class ModelWeightSource implements WeightSource {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Model model;

    ModelWeightSource(Model model) {
        if (model.config().quantized()) {
            throw new Llama2jException(model.path().getFileName() + ": is " + model.format().description()
                    + ", already quantized: need a float32 (v0 or v1) checkpoint", Llama2jException.BAD_INPUT);
        }
        this.model = model;
    }

    @Override
    public Configuration config() {
        return model.config();
    }

    @Override
    public void rows(Tensor tensor, int layer, int firstRow, int rowCount, float[] dst, int offset) {
        Weights w = model.weights();
        MemorySegment data = switch (tensor) {
            case TOKEN_EMBEDDING -> f32(w.tokenEmbedding());
            case CLASSIFIER -> f32(w.classifier());
            case RMS_ATT -> w.rmsAtt()[layer];
            case RMS_FFN -> w.rmsFfn()[layer];
            case RMS_FINAL -> w.rmsFinal();
            case WQ -> f32(w.wq()[layer]);
            case WK -> f32(w.wk()[layer]);
            case WV -> f32(w.wv()[layer]);
            case WO -> f32(w.wo()[layer]);
            case W1 -> f32(w.w1()[layer]);
            case W2 -> f32(w.w2()[layer]);
            case W3 -> f32(w.w3()[layer]);
        };
        int cols = tensor.cols(model.config());
        MemorySegment.copy(data, FLOAT, (long) firstRow * cols * Float.BYTES, dst, offset, rowCount * cols);
    }

    private static MemorySegment f32(Matrix m) {
        return ((Matrix.F32) m).data();
    }
}
