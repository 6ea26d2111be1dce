package io.github.llama2j.model;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.gguf.GgmlType;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.gguf.GgufTensorInfo;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;

/**
 * Builds a {@link Model} from a GGUF file: the {@link Architecture} from {@code general.architecture},
 * every hyper-parameter from {@code <arch>.*} metadata, and every tensor under llama.cpp's name, its
 * shape checked against the hyper-parameters. GGUF matrices are stored {@code ne = [n_in, n_out]},
 * row-major over n_in: our [rows = n_out x cols = n_in]. Nothing is permuted: Q and K are in the layout
 * llama.cpp's RoPE of the architecture expects, and so does ours.
 *
 * <p>Every tensor of the file must be used: a tensor the architecture does not know (a feature
 * llama2j lacks) is an error, never silently ignored.
 */
public final class GgufModelLoader {
    /** Context used when the file's {@code context_length} is larger and none is asked for (like llama.cpp's default n_ctx). */
    public static final int DEFAULT_MAX_CONTEXT = 4096;
    /** The most layers (block_count) a GGUF model may have here; {@code synth --format gguf} writes no more. */
    public static final int MAX_LAYERS = 4096;
    /** Largest dimension accepted (Java arrays and int indices). */
    private static final int MAX_DIM = 1 << 24;

    private GgufModelLoader() {
    }

    /** Opens {@code path} and builds its model with context {@code min(context_length, DEFAULT_MAX_CONTEXT)}. */
    public static Model load(Path path) {
        GgufFile f = GgufFile.open(path);
        try {
            return load(f, 0);
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
    }

    /** The file's {@code <arch>.context_length}: the context the model allows (llama2j runs with at most {@link #DEFAULT_MAX_CONTEXT} by default). */
    public static int trainedContext(GgufFile f) {
        return f.getInt(f.getString("general.architecture") + ".context_length", 1, Integer.MAX_VALUE);
    }

    /**
     * Builds the model of an open file; closing the model closes the file.
     *
     * @param contextLength the context (KV cache positions) to run with; 0: the file's context_length,
     *                      at most {@link #DEFAULT_MAX_CONTEXT}. Larger than context_length is an error.
     */
    public static Model load(GgufFile f, int contextLength) {
        return build(f, contextLength, true);
    }

    /**
     * Every check {@link #load} makes (exit 2 naming the file and the field or tensor), without its work: for
     * {@code info}, which says whether a file runs. Q5_0 matrices are not widened (seconds and the widened bytes of
     * memory for a Qwen2.5-0.5B Q4_K_M file); the file stays open.
     */
    public static void validate(GgufFile f) {
        build(f, 1, false);
    }

    /** The model of {@code f}; with {@code widen} false its Q5_0 matrices are stand-ins of their shape (validate). */
    private static Model build(GgufFile f, int contextLength, boolean widen) {
        String name = f.name();
        String archName = f.getString("general.architecture");
        Architecture arch = Architecture.byGgufName(archName).orElseThrow(() -> new Llama2jException(
                name + ": architecture " + GgufFile.quote(archName) + " is not supported (supported: " + Architecture.supported() + ")"));
        String p = archName + ".";
        int dim = f.getInt(p + "embedding_length", 1, MAX_DIM);
        int layers = f.getInt(p + "block_count", 1, MAX_LAYERS);
        int hidden = scalarInt(f, p + "feed_forward_length");
        int heads = scalarInt(f, p + "attention.head_count");
        int kvHeads = f.has(p + "attention.head_count_kv") ? scalarInt(f, p + "attention.head_count_kv") : heads;
        if (kvHeads > heads || heads % kvHeads != 0) {
            throw new Llama2jException(name + ": metadata key '" + p + "attention.head_count_kv' is " + kvHeads
                    + ", does not divide attention.head_count " + heads);
        }
        int headSize;
        if (f.has(p + "attention.key_length")) {
            headSize = f.getInt(p + "attention.key_length", 2, MAX_DIM);
        } else {
            if (dim % heads != 0) {
                throw new Llama2jException(name + ": metadata key '" + p + "attention.head_count' is " + heads
                        + ", does not divide embedding_length " + dim + " (and no attention.key_length)");
            }
            headSize = dim / heads;
        }
        if (headSize % 2 != 0) {
            throw new Llama2jException(name + ": head size " + headSize + " is odd, RoPE needs it even");
        }
        if (f.has(p + "attention.value_length") && f.getInt(p + "attention.value_length", 1, MAX_DIM) != headSize) {
            throw new Llama2jException(name + ": metadata key '" + p + "attention.value_length' is "
                    + f.getLong(p + "attention.value_length") + ", different from key_length " + headSize + ": not supported");
        }
        if (f.has(p + "rope.dimension_count") && f.getLong(p + "rope.dimension_count") != headSize) {
            throw new Llama2jException(name + ": metadata key '" + p + "rope.dimension_count' is "
                    + f.getLong(p + "rope.dimension_count") + ", RoPE on part of a head (head size " + headSize + ") is not supported");
        }
        checkNoRopeScaling(f, p);
        float eps = f.getFloat(p + "attention.layer_norm_rms_epsilon");
        if (!(eps > 0) || eps > 1) {
            throw new Llama2jException(name + ": metadata key '" + p + "attention.layer_norm_rms_epsilon' is " + eps + ", must be in (0, 1]");
        }
        float theta = f.has(p + "rope.freq_base") ? f.getFloat(p + "rope.freq_base") : 10000f;
        if (!(theta > 1) || Float.isInfinite(theta)) {
            throw new Llama2jException(name + ": metadata key '" + p + "rope.freq_base' is " + theta + ", must be above 1");
        }
        int trained = trainedContext(f);
        int seqLen;
        if (contextLength > 0) {
            if (contextLength > trained) {
                throw new Llama2jException(name + ": context " + contextLength + " is larger than the model's context_length " + trained,
                        Llama2jException.BAD_USAGE);
            }
            seqLen = contextLength;
        } else {
            seqLen = Math.min(trained, DEFAULT_MAX_CONTEXT);
        }
        if ((long) headSize * heads > MAX_DIM) {
            throw new Llama2jException(name + ": head_count x key_length = " + (long) headSize * heads + " is too large");
        }

        Tensors t = new Tensors(f, widen);
        GgufTensorInfo embInfo = t.info("token_embd.weight");
        if (embInfo.nDims() != 2 || embInfo.ne(0) != dim || embInfo.ne(1) < 1 || embInfo.ne(1) > MAX_DIM) {
            throw new Llama2jException(name + ": tensor 'token_embd.weight' has shape " + embInfo.shape() + ", expected [" + dim + ", n_vocab]");
        }
        int vocab = (int) embInfo.ne(1);
        Object tokens = f.metadata().get("tokenizer.ggml.tokens");
        if (tokens instanceof String[] a && a.length != vocab) {
            throw new Llama2jException(name + ": tokenizer.ggml.tokens has " + a.length + " tokens, token_embd.weight has " + vocab + " rows");
        }
        int qDim = headSize * heads, kvDim = headSize * kvHeads;
        Matrix emb = t.matrix("token_embd.weight", vocab, dim);
        MemorySegment[] rmsAtt = new MemorySegment[layers], rmsFfn = new MemorySegment[layers];
        Matrix[] wq = new Matrix[layers], wk = new Matrix[layers], wv = new Matrix[layers], wo = new Matrix[layers];
        Matrix[] w1 = new Matrix[layers], w2 = new Matrix[layers], w3 = new Matrix[layers];
        boolean bias = arch.qkvBias() == Architecture.Presence.REQUIRED
                || arch.qkvBias() == Architecture.Presence.OPTIONAL && f.tensor("blk.0.attn_q.bias").isPresent();
        boolean qkNorm = arch.qkNorm() == Architecture.Presence.REQUIRED;
        MemorySegment[] bq = bias ? new MemorySegment[layers] : null, bk = bias ? new MemorySegment[layers] : null;
        MemorySegment[] bv = bias ? new MemorySegment[layers] : null;
        MemorySegment[] qNorm = qkNorm ? new MemorySegment[layers] : null, kNorm = qkNorm ? new MemorySegment[layers] : null;
        for (int l = 0; l < layers; l++) {
            String b = "blk." + l + ".";
            rmsAtt[l] = t.vector(b + "attn_norm.weight", dim);
            wq[l] = t.matrix(b + "attn_q.weight", qDim, dim);
            wk[l] = t.matrix(b + "attn_k.weight", kvDim, dim);
            wv[l] = t.matrix(b + "attn_v.weight", kvDim, dim);
            wo[l] = t.matrix(b + "attn_output.weight", dim, qDim);
            if (bias) {
                bq[l] = t.vector(b + "attn_q.bias", qDim);
                bk[l] = t.vector(b + "attn_k.bias", kvDim);
                bv[l] = t.vector(b + "attn_v.bias", kvDim);
            }
            if (qkNorm) {
                qNorm[l] = t.vector(b + "attn_q_norm.weight", headSize);
                kNorm[l] = t.vector(b + "attn_k_norm.weight", headSize);
            }
            rmsFfn[l] = t.vector(b + "ffn_norm.weight", dim);
            w1[l] = t.matrix(b + "ffn_gate.weight", hidden, dim);
            w3[l] = t.matrix(b + "ffn_up.weight", hidden, dim);
            w2[l] = t.matrix(b + "ffn_down.weight", dim, hidden);
        }
        MemorySegment rmsFinal = t.vector("output_norm.weight", dim);
        boolean tied = f.tensor("output.weight").isEmpty();
        Matrix cls = tied ? emb : t.matrix("output.weight", vocab, dim);
        MemorySegment ropeFreqs = null;
        if (arch.ropeFreqs() != Architecture.Presence.ABSENT && f.tensor("rope_freqs.weight").isPresent()) {
            ropeFreqs = t.vector("rope_freqs.weight", headSize / 2);
        }
        t.checkAllUsed(archName);

        Configuration c = new Configuration(dim, hidden, layers, heads, kvHeads, vocab, seqLen, tied, 0,
                headSize, eps, theta, arch.ropeStyle());
        Weights w = new Weights(emb, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, cls, bq, bk, bv, qNorm, kNorm, ropeFreqs);
        return new Model(f, arch, c, w);
    }

    /** A positive int; per-layer arrays (models whose layers differ) are refused by name. */
    private static int scalarInt(GgufFile f, String key) {
        Optional<Object> v = f.get(key);
        if (v.isPresent() && (v.get() instanceof int[] || v.get() instanceof long[])) {
            throw new Llama2jException(f.name() + ": metadata key '" + key + "' differs per layer: not supported");
        }
        return f.getInt(key, 1, MAX_DIM);
    }

    /** Linear and YaRN context scaling change RoPE's angles: refused rather than ignored. */
    private static void checkNoRopeScaling(GgufFile f, String p) {
        String type = f.optionalString(p + "rope.scaling.type").orElse("none");
        float factor = f.has(p + "rope.scaling.factor") ? f.getFloat(p + "rope.scaling.factor") : 1f;
        if (!type.equals("none") && factor != 1f && factor != 0f) {
            throw new Llama2jException(f.name() + ": metadata key '" + p + "rope.scaling.type' is " + GgufFile.quote(type)
                    + " with factor " + factor + ": RoPE context scaling is not supported");
        }
    }

    /** Looks tensors up by name, checks their shapes and types, remembers which were used. */
    private static final class Tensors {
        private final GgufFile f;
        private final Set<String> used = new HashSet<>();
        private final boolean widen;

        Tensors(GgufFile f, boolean widen) {
            this.f = f;
            this.widen = widen;
        }

        GgufTensorInfo info(String tensor) {
            GgufTensorInfo info = f.tensor(tensor).orElseThrow(() -> new Llama2jException(f.name() + ": tensor '" + tensor + "' is missing"));
            used.add(tensor);
            return info;
        }

        /** A float32 vector of n values. */
        MemorySegment vector(String tensor, int n) {
            GgufTensorInfo info = info(tensor);
            if (info.elementCount() != n || info.ne(0) != n) {
                throw new Llama2jException(f.name() + ": tensor '" + tensor + "' has shape " + info.shape() + ", expected [" + n + "]");
            }
            if (info.type() != GgmlType.F32) {
                throw new Llama2jException(f.name() + ": tensor '" + tensor + "' has type " + info.type().displayName()
                        + ", llama2j reads norms, biases and rope factors as f32 only");
            }
            return f.data(info);
        }

        /** A matrix [rows x cols] stored as ne = [cols, rows]. */
        Matrix matrix(String tensor, int rows, int cols) {
            GgufTensorInfo info = info(tensor);
            if (info.nDims() != 2 || info.ne(0) != cols || info.ne(1) != rows) {
                throw new Llama2jException(f.name() + ": tensor '" + tensor + "' has shape " + info.shape()
                        + ", expected [" + cols + ", " + rows + "]");
            }
            MemorySegment data = f.data(info);
            return switch (info.type()) {
                case F32 -> new Matrix.F32(data, rows, cols);
                case F16 -> new Matrix.F16(data, rows, cols);
                case BF16 -> new Matrix.BF16(data, rows, cols);
                case Q8_0 -> new Matrix.Q8_0(data, rows, cols);
                case Q4_0 -> new Matrix.Q4_0(data, rows, cols);
                case Q5_0 -> widen ? Q5_0.toQ8_0(data, rows, cols) // widened: llama.cpp's Q5_0 arithmetic is Q8_0's (Q5_0's comment)
                        : new Matrix.Q4_0(data.asSlice(0, rows * Matrix.Q4_0.rowBytes(cols)), rows, cols); // validate: a stand-in of the shape, never run
                case Q5_1 -> new Matrix.Q5_1(data, rows, cols);
                case Q2_K -> new Matrix.Q2_K(data, rows, cols);
                case IQ4_NL -> new Matrix.IQ4_NL(data, rows, cols);
                case IQ4_XS -> new Matrix.IQ4_XS(data, rows, cols);
                case Q3_K -> new Matrix.Q3_K(data, rows, cols);
                case Q4_K -> new Matrix.Q4_K(data, rows, cols);
                case Q5_K -> new Matrix.Q5_K(data, rows, cols);
                case Q6_K -> new Matrix.Q6_K(data, rows, cols);
                default -> throw new Llama2jException(f.name() + ": tensor '" + tensor + "' has type " + info.type().displayName()
                        + " (ggml type " + info.type().id() + "), which llama2j does not support (supported: f32, f16, bf16, q8_0,"
                        + " q4_0, q5_0, q5_1, iq4_nl, iq4_xs, q2_K, q3_K, q4_K, q5_K, q6_K)");
            };
        }

        void checkAllUsed(String arch) {
            for (GgufTensorInfo info : f.tensors()) {
                if (!used.contains(info.name())) {
                    throw new Llama2jException(f.name() + ": tensor " + GgufFile.quote(info.name()) + " is not part of llama2j's "
                            + arch + " model (a feature it does not support)");
                }
            }
        }
    }
}
