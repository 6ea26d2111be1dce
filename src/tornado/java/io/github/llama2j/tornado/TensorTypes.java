package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The tensor types the device engines run. llama2.c checkpoints: float32 and Q8 (the TornadoVM engine and the
 * hybrid). GGUF models: F32, F16 and Q8_0 (the TornadoVM engine and the hybrid). Any other type (BF16, Q4_0, Q4_K,
 * Q6_K) is refused up front with the tensor's name and type, before a device is touched, never run on a
 * silent fallback.
 */
public final class TensorTypes {
    private TensorTypes() {
    }

    /** Throws (exit 3) naming the first matrix that is not llama2.c's float32 or Q8. */
    public static void requireSupported(Configuration c, Weights w) {
        matrices(c, w).forEach((name, m) -> {
            if (!(m instanceof Matrix.F32 || m instanceof Matrix.Q8)) {
                throw unsupported(m, name);
            }
        });
    }

    /** Throws (exit 3) naming the first matrix of a GGUF model that is not F32, F16 or Q8_0. */
    public static void requireSupportedGguf(Configuration c, Weights w) {
        matrices(c, w).forEach((name, m) -> {
            if (!(m instanceof Matrix.F32 || m instanceof Matrix.F16 || m instanceof Matrix.Q8_0)) {
                throw unsupported(m, name);
            }
        });
    }

    /** Every matrix by name, in file-independent order. */
    private static Map<String, Matrix> matrices(Configuration c, Weights w) {
        Map<String, Matrix> all = new LinkedHashMap<>();
        all.put("token_embedding", w.tokenEmbedding());
        for (int l = 0; l < c.nLayers(); l++) {
            all.put("layer " + l + " wq", w.wq()[l]);
            all.put("layer " + l + " wk", w.wk()[l]);
            all.put("layer " + l + " wv", w.wv()[l]);
            all.put("layer " + l + " wo", w.wo()[l]);
            all.put("layer " + l + " w1", w.w1()[l]);
            all.put("layer " + l + " w2", w.w2()[l]);
            all.put("layer " + l + " w3", w.w3()[l]);
        }
        all.put("classifier", w.classifier());
        return all;
    }

    /** The error for a matrix of a type this engine lacks (exit 3). */
    public static Llama2jException unsupported(Matrix m, String tensor) {
        return new Llama2jException("the TornadoVM kernels (engines tornado and hybrid) do not support tensor type "
                + m.typeName() + " (tensor " + tensor + "); run this model with --engine cpu", Llama2jException.UNAVAILABLE);
    }
}
