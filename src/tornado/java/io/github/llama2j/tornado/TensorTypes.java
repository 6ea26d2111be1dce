package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The tensor types the device engines run. llama2.c checkpoints: float32 and Q8 (the TornadoVM engine and the
 * hybrid). GGUF models: F32, F16, Q8_0, Q4_0 (widened to Q8_0 on the device), Q4_K and Q6_K on the TornadoVM engine
 * ({@link #requireSupportedGguf}; a Q4_K_M file mixes the two K-quants) and on the hybrid
 * ({@link #requireSupportedGgufHybrid}). Any other type (BF16, Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS) is refused up front with the engine, the tensor's
 * name and its type, before a device is touched,
 * never run on a silent fallback.
 */
public final class TensorTypes {
    /** The GGUF types of the device engines (the TornadoVM engine and the hybrid), as the refusals list them. */
    static final String TORNADO_GGUF = "F32, F16, Q8_0, Q4_0, Q5_0, Q4_K and Q6_K"; // (Q5_0 arrives as Q8_0: model.Q5_0)

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

    /** Throws (exit 3) naming the first matrix of a GGUF model that the TornadoVM engine lacks (not F32, F16, Q8_0, Q4_0, Q4_K, Q6_K). */
    public static void requireSupportedGguf(Configuration c, Weights w) {
        ggufMatrices(c, w).forEach((name, m) -> {
            if (!runsGguf(m)) {
                throw unsupported(m, name);
            }
        });
    }

    /** Throws (exit 3) naming the first matrix of a GGUF model that the hybrid lacks (the same types as the TornadoVM engine). */
    public static void requireSupportedGgufHybrid(Configuration c, Weights w) {
        ggufMatrices(c, w).forEach((name, m) -> {
            if (!runsGguf(m)) {
                throw unsupportedByHybrid(m, name);
            }
        });
    }

    /** Whether m is of a GGUF type the device engines run: F32, F16, Q8_0, Q4_0, Q4_K or Q6_K. */
    private static boolean runsGguf(Matrix m) {
        return m instanceof Matrix.F32 || m instanceof Matrix.F16 || m instanceof Matrix.Q8_0 || m instanceof Matrix.Q4_0 || m instanceof Matrix.Q4_K
                || m instanceof Matrix.Q6_K;
    }

    /**
     * Every matrix of a GGUF model by its tensor name in the file ({@code token_embd.weight}, {@code blk.0.attn_q.weight},
     * ...; a tied classifier is the embedding, listed once), as {@code llama2j info} and llama.cpp name them.
     */
    private static Map<String, Matrix> ggufMatrices(Configuration c, Weights w) {
        Map<String, Matrix> all = new LinkedHashMap<>();
        all.put("token_embd.weight", w.tokenEmbedding());
        for (int l = 0; l < c.nLayers(); l++) {
            String b = "blk." + l + ".";
            all.put(b + "attn_q.weight", w.wq()[l]);
            all.put(b + "attn_k.weight", w.wk()[l]);
            all.put(b + "attn_v.weight", w.wv()[l]);
            all.put(b + "attn_output.weight", w.wo()[l]);
            all.put(b + "ffn_gate.weight", w.w1()[l]);
            all.put(b + "ffn_down.weight", w.w2()[l]);
            all.put(b + "ffn_up.weight", w.w3()[l]);
        }
        if (w.classifier() != w.tokenEmbedding()) {
            all.put("output.weight", w.classifier());
        }
        return all;
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

    /** The error for a matrix of a type the TornadoVM engine lacks (exit 3). */
    public static Llama2jException unsupported(Matrix m, String tensor) {
        return new Llama2jException("the TornadoVM engine does not support tensor type " + m.typeName() + " (tensor " + tensor
                + "; it runs GGUF " + TORNADO_GGUF + ", llama2.c float32 and Q8); run this model with --engine cpu",
                Llama2jException.UNAVAILABLE);
    }

    /** The error for a matrix of a type the hybrid lacks (exit 3). */
    public static Llama2jException unsupportedByHybrid(Matrix m, String tensor) {
        return new Llama2jException("the hybrid engine does not support tensor type " + m.typeName() + " (tensor " + tensor
                + "; it runs GGUF " + TORNADO_GGUF + ", llama2.c float32 and Q8); run this model with --engine cpu",
                Llama2jException.UNAVAILABLE);
    }
}
