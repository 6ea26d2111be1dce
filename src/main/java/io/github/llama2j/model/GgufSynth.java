package io.github.llama2j.model;

import io.github.llama2j.gguf.GgmlType;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.gguf.GgufWriter;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.stream.IntStream;

/**
 * Random-weight GGUF models of the supported architectures at real shapes, for benchmarks: the tensors,
 * names, types and metadata llama.cpp's converter and {@code llama-quantize} write, with seeded random
 * weights and (optionally) the tokenizer of another GGUF file.
 *
 * <p>Weights: matrices and biases N(0, std²), norm weights 1 + std·N(0, 1); each row has its own
 * generator seeded from (seed, tensor name, row) ({@link RandomWeights#normals}), so
 * {@link #rowValues} gives any row without the others and rows are generated in parallel. Large tensors
 * are generated and quantized a chunk of rows at a time while they are written: an 8B-shaped file needs
 * a few MB of heap, not 8B floats.
 */
public final class GgufSynth {
    /** Floats generated per chunk of rows (16 MB). */
    private static final int CHUNK_FLOATS = 1 << 22;

    private final Shape shape;
    private final FileType type;
    private final long seed;
    private final double std;

    public GgufSynth(Shape shape, FileType type, long seed, double std) {
        if (!(std >= 0) || Double.isInfinite(std)) {
            throw new IllegalArgumentException("std " + std);
        }
        this.shape = shape;
        this.type = type;
        this.seed = seed;
        this.std = std;
    }

    public Shape shape() {
        return shape;
    }

    public FileType type() {
        return type;
    }

    /**
     * Llama 3's RoPE scaling (the converter writes it as {@code rope_freqs.weight}): frequencies with a
     * wavelength above {@code originalContext / lowFreqFactor} are divided by {@code factor}, those below
     * {@code originalContext / highFreqFactor} kept, those between interpolated.
     */
    public record Llama3Rope(float factor, float lowFreqFactor, float highFreqFactor, int originalContext) {
        public Llama3Rope {
            if (!(factor >= 1) || !(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor) || originalContext <= 0) {
                throw new IllegalArgumentException("llama3 rope scaling " + factor + ", " + lowFreqFactor + ", "
                        + highFreqFactor + ", " + originalContext);
            }
        }

        /**
         * The factor of each of the {@code headSize / 2} frequencies, as the converter computes them (torch float32
         * arithmetic: every operation rounded to float).
         */
        public float[] factors(float theta, int headSize) {
            float[] f = new float[headSize / 2];
            float lowWavelen = originalContext / lowFreqFactor, highWavelen = originalContext / highFreqFactor;
            for (int i = 0; i < f.length; i++) {
                float freq = 1f / (float) Math.pow(theta, (float) (2 * i) / headSize);
                float wavelen = (float) (2 * Math.PI) / freq;
                if (wavelen < highWavelen) {
                    f[i] = 1;
                } else if (wavelen > lowWavelen) {
                    f[i] = factor;
                } else {
                    float smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                    f[i] = 1f / ((1 - smooth) / factor + smooth);
                }
            }
            return f;
        }
    }

    /**
     * The hyper-parameters of a model.
     *
     * @param arch       {@code general.architecture}: llama, qwen2 or qwen3
     * @param headSize   per-head width ({@code attention.key_length} when it is not dim / heads)
     * @param context    {@code context_length}
     * @param tied       no {@code output.weight}: the token embedding is the classifier
     * @param llama3Rope Llama 3 RoPE scaling, written as {@code rope_freqs.weight} (llama only), or null
     */
    public record Shape(String arch, int dim, int hidden, int layers, int heads, int kvHeads, int headSize, int vocab,
                        int context, float ropeTheta, float rmsEps, boolean tied, Llama3Rope llama3Rope) {
        public Shape {
            Architecture a = Architecture.byGgufName(arch).orElseThrow(() -> new IllegalArgumentException(
                    "architecture '" + arch + "', must be one of " + Architecture.supported()));
            if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || headSize <= 0 || vocab <= 0 || context <= 0) {
                throw new IllegalArgumentException("dimensions must be positive");
            }
            if (heads % kvHeads != 0) {
                throw new IllegalArgumentException("kv heads " + kvHeads + " do not divide heads " + heads);
            }
            if (headSize % 2 != 0) {
                throw new IllegalArgumentException("head size " + headSize + " is odd, RoPE needs it even");
            }
            if (!(ropeTheta > 1) || Float.isInfinite(ropeTheta) || !(rmsEps > 0) || rmsEps > 1) {
                throw new IllegalArgumentException("rope theta " + ropeTheta + ", rms eps " + rmsEps);
            }
            if (llama3Rope != null && a.ropeFreqs() == Architecture.Presence.ABSENT) {
                throw new IllegalArgumentException(arch + " has no rope_freqs");
            }
        }

        public Architecture architecture() {
            return Architecture.byGgufName(arch).orElseThrow();
        }

        public Shape withVocab(int v) {
            return new Shape(arch, dim, hidden, layers, heads, kvHeads, headSize, v, context, ropeTheta, rmsEps, tied, llama3Rope);
        }

        public long parameterCount() {
            long p = 0;
            for (TensorSpec t : tensors(this)) {
                p += t.rows() * t.cols();
            }
            return p;
        }
    }

    private static final Map<String, Shape> PRESETS = new LinkedHashMap<>();

    static {
        // The published models' config.json values (tied: tie_word_embeddings).
        Llama3Rope l32 = new Llama3Rope(32, 1, 4, 8192), l31 = new Llama3Rope(8, 1, 4, 8192);
        //                                       dim  ffn    L   H   KV hs  vocab   ctx     theta  eps   tied
        PRESETS.put("llama-3.2-1b", new Shape("llama", 2048, 8192, 16, 32, 8, 64, 128256, 131072, 500000f, 1e-5f, true, l32));
        PRESETS.put("llama-3.1-8b", new Shape("llama", 4096, 14336, 32, 32, 8, 128, 128256, 131072, 500000f, 1e-5f, false, l31));
        PRESETS.put("qwen2.5-0.5b", new Shape("qwen2", 896, 4864, 24, 14, 2, 64, 151936, 32768, 1000000f, 1e-6f, true, null));
        PRESETS.put("qwen2.5-7b", new Shape("qwen2", 3584, 18944, 28, 28, 4, 128, 152064, 32768, 1000000f, 1e-6f, false, null));
    }

    public static Optional<Shape> preset(String name) {
        return Optional.ofNullable(PRESETS.get(name.toLowerCase(Locale.ROOT)));
    }

    public static List<String> presetNames() {
        return List.copyOf(PRESETS.keySet());
    }

    /**
     * A file type as llama.cpp names it, with its {@code general.file_type} id. Mixed types follow
     * llama-quantize's per-tensor rules, see {@link #tensorType}.
     */
    public enum FileType {
        F32(0, GgmlType.F32), F16(1, GgmlType.F16), BF16(32, GgmlType.BF16), Q8_0(7, GgmlType.Q8_0),
        Q4_0(2, GgmlType.Q4_0), Q4_K_M(15, GgmlType.Q4_K), Q5_K_M(17, GgmlType.Q5_K),
        Q3_K_S(11, GgmlType.Q3_K), Q3_K_M(12, GgmlType.Q3_K), Q3_K_L(13, GgmlType.Q3_K),
        Q2_K(10, GgmlType.Q2_K), Q2_K_S(21, GgmlType.Q2_K), IQ4_NL(25, GgmlType.IQ4_NL), IQ4_XS(30, GgmlType.IQ4_XS);

        private final int ftype;
        private final GgmlType base;

        FileType(int ftype, GgmlType base) {
            this.ftype = ftype;
            this.base = base;
        }

        /** llama.cpp's {@code llama_ftype}. */
        public int ftype() {
            return ftype;
        }

        /** The type of most matrices. */
        public GgmlType base() {
            return base;
        }

        public boolean quantized() {
            return base.quantized();
        }

        public static Optional<FileType> byName(String name) {
            return Arrays.stream(values()).filter(t -> t.name().equalsIgnoreCase(name)).findFirst();
        }

        public String displayName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** What a tensor holds: its values' distribution. */
    public enum Kind { MATRIX, NORM, BIAS, ROPE_FREQS }

    /** One tensor: name, kind, shape [rows x cols] (GGUF ne = [cols, rows], or [cols] for a vector) and layer (-1: none). */
    public record TensorSpec(String name, Kind kind, int rows, int cols, int layer) {
        public long[] ne() {
            return rows == 1 && kind != Kind.MATRIX ? new long[]{cols} : new long[]{cols, rows};
        }
    }

    /** The tensors of a model in llama.cpp's file order. */
    public static List<TensorSpec> tensors(Shape s) {
        Architecture a = s.architecture();
        int q = s.heads * s.headSize, kv = s.kvHeads * s.headSize;
        List<TensorSpec> t = new ArrayList<>();
        t.add(new TensorSpec("token_embd.weight", Kind.MATRIX, s.vocab, s.dim, -1));
        if (s.llama3Rope != null) {
            t.add(new TensorSpec("rope_freqs.weight", Kind.ROPE_FREQS, 1, s.headSize / 2, -1));
        }
        for (int l = 0; l < s.layers; l++) {
            String p = "blk." + l + ".";
            t.add(new TensorSpec(p + "attn_norm.weight", Kind.NORM, 1, s.dim, l));
            t.add(new TensorSpec(p + "attn_q.weight", Kind.MATRIX, q, s.dim, l));
            t.add(new TensorSpec(p + "attn_k.weight", Kind.MATRIX, kv, s.dim, l));
            t.add(new TensorSpec(p + "attn_v.weight", Kind.MATRIX, kv, s.dim, l));
            if (a.qkvBias() == Architecture.Presence.REQUIRED) {
                t.add(new TensorSpec(p + "attn_q.bias", Kind.BIAS, 1, q, l));
                t.add(new TensorSpec(p + "attn_k.bias", Kind.BIAS, 1, kv, l));
                t.add(new TensorSpec(p + "attn_v.bias", Kind.BIAS, 1, kv, l));
            }
            if (a.qkNorm() == Architecture.Presence.REQUIRED) {
                t.add(new TensorSpec(p + "attn_q_norm.weight", Kind.NORM, 1, s.headSize, l));
                t.add(new TensorSpec(p + "attn_k_norm.weight", Kind.NORM, 1, s.headSize, l));
            }
            t.add(new TensorSpec(p + "attn_output.weight", Kind.MATRIX, s.dim, q, l));
            t.add(new TensorSpec(p + "ffn_norm.weight", Kind.NORM, 1, s.dim, l));
            t.add(new TensorSpec(p + "ffn_gate.weight", Kind.MATRIX, s.hidden, s.dim, l));
            t.add(new TensorSpec(p + "ffn_up.weight", Kind.MATRIX, s.hidden, s.dim, l));
            t.add(new TensorSpec(p + "ffn_down.weight", Kind.MATRIX, s.dim, s.hidden, l));
        }
        t.add(new TensorSpec("output_norm.weight", Kind.NORM, 1, s.dim, -1));
        if (!s.tied) {
            t.add(new TensorSpec("output.weight", Kind.MATRIX, s.vocab, s.dim, -1));
        }
        return t;
    }

    /**
     * The ggml type of a tensor in a file of type {@code ft}, following llama-quantize
     * ({@code llama_tensor_get_type}, without an importance matrix) in spirit:
     * <ul>
     *   <li>vectors (norms, biases, rope factors) stay F32; F32/F16/BF16/Q8_0 files use that type for every matrix;</li>
     *   <li>Q4_0, Q4_K_M, Q5_K_M, Q3_K_S/M/L and Q2_K/Q2_K_S: the classifier ({@code output.weight}, or the token embedding when tied) is Q6_K;</li>
     *   <li>Q4_K_M and Q5_K_M: Q4_K (Q5_K), except {@code attn_v} and {@code ffn_down} of the layers where llama.cpp's
     *       {@code use_more_bits(i, n)} holds (the first and last eighth of the layers and every third between),
     *       which are Q6_K;</li>
         *   <li>Q3_K_M: {@code attn_v} Q5_K in the first two layers and Q4_K after, {@code ffn_down} Q5_K in the first
     *       sixteenth of the layers and Q4_K after, {@code attn_output} Q4_K, the rest Q3_K; Q3_K_L: {@code attn_v},
     *       {@code ffn_down} and {@code attn_output} Q5_K, the rest Q3_K; Q3_K_S: Q3_K but the classifier (llama.cpp's
     *       rules for architectures other than Falcon, without experts);</li>
     *   <li>Q2_K: {@code attn_v} Q4_K where a kv head serves four or more query heads and Q3_K otherwise,
     *       {@code ffn_down} and {@code attn_output} Q3_K, the rest (the token embedding too) Q2_K; Q2_K_S: {@code attn_v}
     *       Q4_K where a kv head serves four or more, {@code ffn_down} Q4_K in the first eighth of the layers, the rest
     *       Q2_K (llama-quantize asks an importance matrix for Q2_K_S's Q2_K tensors; synth quantizes them without);</li>
     *   <li>IQ4_NL and IQ4_XS: the classifier Q6_K, {@code attn_v} Q5_K when there are at least four query heads per kv
     *       head, {@code ffn_down} Q5_K in the first eighth of the layers (llama.cpp's rule without an importance
     *       matrix), the rest the file's type;</li>
     *   <li>a K-quant (and IQ4_XS) needs rows that are a multiple of 256: where they are not (Qwen2.5-0.5B's 896), Q6_K
     *       falls back to Q8_0, Q5_K to Q5_1, Q4_K to Q5_0, Q3_K and Q2_K to Q4_0 and IQ4_XS to IQ4_NL, as in llama.cpp.</li>
     * </ul>
     */
    public static GgmlType tensorType(FileType ft, Shape s, TensorSpec t) {
        if (t.kind != Kind.MATRIX) {
            return GgmlType.F32;
        }
        GgmlType type = ft.base;
        boolean q3K = ft == FileType.Q3_K_S || ft == FileType.Q3_K_M || ft == FileType.Q3_K_L;
        boolean q2K = ft == FileType.Q2_K || ft == FileType.Q2_K_S;
        boolean iq4 = ft == FileType.IQ4_NL || ft == FileType.IQ4_XS;
        if (ft == FileType.Q4_0 || ft == FileType.Q4_K_M || ft == FileType.Q5_K_M || q3K || q2K || iq4) {
            boolean classifier = t.name.equals("output.weight") || s.tied && t.name.equals("token_embd.weight");
            if (classifier) {
                type = GgmlType.Q6_K;
            } else if (q2K && t.name.endsWith(".attn_v.weight")) {
                type = s.heads / s.kvHeads >= 4 ? GgmlType.Q4_K : ft == FileType.Q2_K ? GgmlType.Q3_K : GgmlType.Q2_K;
            } else if (ft == FileType.Q2_K && (t.name.endsWith(".ffn_down.weight") || t.name.endsWith(".attn_output.weight"))) {
                type = GgmlType.Q3_K;
            } else if (ft == FileType.Q2_K_S && t.name.endsWith(".ffn_down.weight")) {
                type = t.layer < s.layers / 8 ? GgmlType.Q4_K : GgmlType.Q2_K;
            } else if (ft == FileType.Q3_K_M && t.name.endsWith(".attn_v.weight")) {
                type = t.layer < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
            } else if (ft == FileType.Q3_K_M && t.name.endsWith(".ffn_down.weight")) {
                type = t.layer < s.layers / 16 ? GgmlType.Q5_K : GgmlType.Q4_K;
            } else if (ft == FileType.Q3_K_M && t.name.endsWith(".attn_output.weight")) {
                type = GgmlType.Q4_K;
            } else if (ft == FileType.Q3_K_L && (t.name.endsWith(".attn_v.weight") || t.name.endsWith(".ffn_down.weight")
                    || t.name.endsWith(".attn_output.weight"))) {
                type = GgmlType.Q5_K;
            } else if (iq4 && t.name.endsWith(".attn_v.weight") && s.heads / s.kvHeads >= 4) {
                type = GgmlType.Q5_K;
            } else if (iq4 && t.name.endsWith(".ffn_down.weight") && t.layer < s.layers / 8) {
                type = GgmlType.Q5_K;
            } else if ((ft == FileType.Q4_K_M || ft == FileType.Q5_K_M)
                    && (t.name.endsWith(".attn_v.weight") || t.name.endsWith(".ffn_down.weight"))
                    && useMoreBits(t.layer, s.layers)) {
                type = GgmlType.Q6_K;
            }
        }
        if (t.cols % type.blockSize() != 0) {
            type = switch (type) {
                case Q2_K, Q3_K -> GgmlType.Q4_0;
                case IQ4_XS -> GgmlType.IQ4_NL;
                case Q4_K -> GgmlType.Q5_0;
                case Q5_K -> GgmlType.Q5_1;
                case Q6_K -> GgmlType.Q8_0;
                default -> type;
            };
        }
        return type;
    }

    /** llama.cpp's use_more_bits: the first and last eighth of n, and every third one between. */
    static boolean useMoreBits(int i, int n) {
        return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
    }

    /** Row {@code row} of tensor {@code t} as generated (cols values into dst[at ..]). */
    public void rowValues(TensorSpec t, int row, float[] dst, int at) {
        switch (t.kind) {
            case ROPE_FREQS -> System.arraycopy(shape.llama3Rope.factors(shape.ropeTheta, shape.headSize), 0, dst, at, t.cols);
            case NORM -> RandomWeights.normals(RandomWeights.rowState(seed, nameHash(t.name), 0, row), 1.0, std, dst, at, t.cols);
            default -> RandomWeights.normals(RandomWeights.rowState(seed, nameHash(t.name), 0, row), 0.0, std, dst, at, t.cols);
        }
    }

    /** FNV-1a over the name's UTF-8 bytes: the tensor's part of each row's seed. */
    static long nameHash(String name) {
        long h = 0xcbf29ce484222325L;
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            h = (h ^ (b & 0xff)) * 0x100000001b3L;
        }
        return h;
    }

    /** A writer holding this model's metadata, named {@code name}, with no vocabulary file ({@link #writeMetadata}), and every tensor. */
    public GgufWriter writer(String name) {
        GgufWriter w = new GgufWriter();
        writeMetadata(w, name, null);
        addTensors(w);
        return w;
    }

    /**
     * Adds every tensor to {@code w} (metadata is the caller's: see {@link #writeMetadata}); each tensor's
     * rows are generated, converted and streamed chunk by chunk when the file is written.
     */
    public void addTensors(GgufWriter w) {
        for (TensorSpec t : tensors(shape)) {
            GgmlType gt = tensorType(type, shape, t);
            if (t.cols % gt.blockSize() != 0) {
                throw new IllegalArgumentException("tensor '" + t.name + "': " + t.cols + " columns are not a multiple of the "
                        + gt.displayName() + " block size " + gt.blockSize());
            }
            w.tensor(t.name, gt, t.ne(), out -> {
                int rowsPerChunk = Math.max(1, Math.min(t.rows, CHUNK_FLOATS / t.cols));
                int rowBytes = Math.toIntExact(GgmlQuantize.rowBytes(gt.name(), t.cols));
                float[] x = new float[rowsPerChunk * t.cols];
                byte[] bytes = new byte[rowsPerChunk * rowBytes];
                MemorySegment seg = MemorySegment.ofArray(bytes);
                for (int r0 = 0; r0 < t.rows; r0 += rowsPerChunk) {
                    int n = Math.min(rowsPerChunk, t.rows - r0), first = r0;
                    IntStream.range(0, n).parallel().forEach(r -> {
                        rowValues(t, first + r, x, r * t.cols);
                        convert(gt, x, r * t.cols, t.cols, seg, (long) r * rowBytes);
                    });
                    out.write(bytes, 0, n * rowBytes);
                }
            });
        }
    }

    /** One row converted to {@code type} (GgmlQuantize's conversions). */
    public static void convert(GgmlType type, float[] x, int off, int n, MemorySegment out, long at) {
        switch (type) {
            case F32 -> MemorySegment.copy(x, off, out, Matrix.FLOAT, at, n);
            case F16 -> GgmlQuantize.f16(x, off, n, out, at);
            case BF16 -> GgmlQuantize.bf16(x, off, n, out, at);
            case Q8_0 -> GgmlQuantize.q8_0(x, off, n, out, at);
            case Q4_0 -> GgmlQuantize.q4_0(x, off, n, out, at);
            case Q5_0 -> GgmlQuantize.q5_0(x, off, n, out, at);
            case Q5_1 -> GgmlQuantize.q5_1(x, off, n, out, at);
            case Q2_K -> GgmlQuantize.q2_K(x, off, n, out, at);
            case Q3_K -> GgmlQuantize.q3_K(x, off, n, out, at);
            case IQ4_NL -> GgmlQuantize.iq4_nl(x, off, n, out, at);
            case IQ4_XS -> GgmlQuantize.iq4_xs(x, off, n, out, at);
            case Q4_K -> GgmlQuantize.q4_K(x, off, n, out, at);
            case Q5_K -> GgmlQuantize.q5_K(x, off, n, out, at);
            case Q6_K -> GgmlQuantize.q6_K(x, off, n, out, at);
            default -> throw new IllegalArgumentException("cannot write " + type.displayName());
        }
    }

    /**
     * The model's metadata as llama.cpp's converter writes it, then every {@code tokenizer.*} key of
     * {@code vocab} (null: no tokenizer). When the vocabulary has fewer tokens than the model's vocab size the
     * token list is padded with {@code [PAD<id>]} tokens of type UNUSED (5), as the converter pads.
     */
    public void writeMetadata(GgufWriter w, String name, GgufFile vocab) {
        Shape s = shape;
        String p = s.arch + ".";
        w.str("general.architecture", s.arch).str("general.name", name)
                .u32("general.file_type", type.ftype());
        if (type.quantized()) {
            w.u32("general.quantization_version", 2);
        }
        w.u32(p + "vocab_size", s.vocab).u32(p + "context_length", s.context).u32(p + "embedding_length", s.dim)
                .u32(p + "block_count", s.layers).u32(p + "feed_forward_length", s.hidden)
                .u32(p + "attention.head_count", s.heads).u32(p + "attention.head_count_kv", s.kvHeads)
                .u32(p + "rope.dimension_count", s.headSize)
                .f32(p + "rope.freq_base", s.ropeTheta).f32(p + "attention.layer_norm_rms_epsilon", s.rmsEps);
        if (s.headSize * s.heads != s.dim) {
            w.u32(p + "attention.key_length", s.headSize).u32(p + "attention.value_length", s.headSize);
        }
        if (vocab == null) {
            return;
        }
        String[] tokens = vocab.getStringArray("tokenizer.ggml.tokens");
        int have = tokens.length;
        if (have > s.vocab) {
            throw new IllegalArgumentException(vocab.name() + " has " + have + " tokens, more than the model's vocab size " + s.vocab);
        }
        for (String key : vocab.metadata().keySet()) {
            if (!key.startsWith("tokenizer.")) {
                continue;
            }
            if (have == s.vocab) {
                w.copy(vocab, key);
                continue;
            }
            switch (key) {
                case "tokenizer.ggml.tokens" -> {
                    String[] padded = Arrays.copyOf(tokens, s.vocab);
                    for (int i = have; i < s.vocab; i++) {
                        padded[i] = "[PAD" + i + "]";
                    }
                    w.strings(key, padded);
                }
                case "tokenizer.ggml.token_type" -> {
                    int[] types = Arrays.copyOf(vocab.getIntArray(key), s.vocab);
                    Arrays.fill(types, have, s.vocab, 5);
                    w.ints(key, types);
                }
                case "tokenizer.ggml.scores" -> {
                    float[] scores = Arrays.copyOf(vocab.getFloatArray(key), s.vocab);
                    Arrays.fill(scores, have, s.vocab, -1000f);
                    w.floats(key, scores);
                }
                default -> w.copy(vocab, key);
            }
        }
    }
}
