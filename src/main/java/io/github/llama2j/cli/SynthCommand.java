package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.CheckpointWriter;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.ModelShapes;
import io.github.llama2j.model.RandomWeights;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code llama2j synth}: writes a checkpoint of seeded random weights, of a named or explicit shape. */
@Command(name = "synth", mixinStandardHelpOptions = true,
        description = {"Write a checkpoint of seeded random weights (for tests and benchmarks: no download, any size).",
                "Matrices are N(0, std^2), RMSNorm weights 1 + std*N(0, 1). The same seed gives the same weights in every"
                        + " format, so v0, v1 and v2 files from one seed describe one model. The file is streamed to OUT.tmp"
                        + " and renamed to OUT when complete."},
        footer = {"",
                "Shapes (dim, hidden_dim, layers, heads, kv_heads, vocab, seq_len):",
                "  stories260K  64, 172, 5, 8, 4, 512, 512",
                "  stories15M   288, 768, 6, 6, 6, 32000, 256",
                "  stories42M   512, 1376, 8, 8, 8, 32000, 1024",
                "  stories110M  768, 2048, 12, 12, 12, 32000, 1024",
                "  llama2-7b    4096, 11008, 32, 32, 32, 32000, 2048",
                "Explicit options override the shape's values.",
                "",
                "GGUF shapes (--format gguf; arch, dim, ffn, layers, heads, kv_heads, head size, vocab, context, rope theta,",
                "rms eps, classifier), the published models' values:",
                "  llama-3.2-1b  llama, 2048, 8192, 16, 32, 8, 64, 128256, 131072, 500000, 1e-5, tied, llama3 rope x32",
                "  llama-3.1-8b  llama, 4096, 14336, 32, 32, 8, 128, 128256, 131072, 500000, 1e-5, separate, llama3 rope x8",
                "  qwen2.5-0.5b  qwen2, 896, 4864, 24, 14, 2, 64, 151936, 32768, 1e6, 1e-6, tied",
                "  qwen2.5-7b    qwen2, 3584, 18944, 28, 28, 4, 128, 152064, 32768, 1e6, 1e-6, separate",
                "",
                "Examples:",
                "  llama2j synth s110.bin --shape stories110M --seed 1",
                "  llama2j synth s110_q80.bin --shape stories110M --format v2 --seed 1",
                "  llama2j synth 7b_q80.bin --shape llama2-7b --format v2   (7 GB; v0: 27 GB)",
                "  llama2j synth small.bin --dim 64 --hidden-dim 172 --layers 2 --heads 8 \\",
                "      --kv-heads 4 --vocab 512 --seq-len 128 --unshared",
                "  llama2j synth l1b_q4km.gguf --format gguf --shape llama-3.2-1b --type q4_k_m \\",
                "      --vocab ggml-vocab-llama-bpe.gguf",
                "  llama2j synth q3.gguf --format gguf --arch qwen3 --dim 64 --hidden-dim 128 --layers 2 --heads 4 \\",
                "      --kv-heads 2 --head-size 32 --vocab 256 --seq-len 512 --type q8_0"})
public final class SynthCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "OUT", description = "Checkpoint file to write.")
    Path out;

    @Option(names = "--shape", paramLabel = "NAME", description = "A shape listed below: stories260K, stories15M, stories42M, stories110M, llama2-7b; with --format gguf also llama-3.2-1b, llama-3.1-8b, qwen2.5-0.5b, qwen2.5-7b.")
    String shape;

    @Option(names = "--dim", paramLabel = "D", description = "Model width.")
    Integer dim;

    @Option(names = "--hidden-dim", paramLabel = "H", description = "Feed-forward width.")
    Integer hiddenDim;

    @Option(names = "--layers", paramLabel = "L", description = "Transformer layers.")
    Integer layers;

    @Option(names = "--heads", paramLabel = "N", description = "Query heads.")
    Integer heads;

    @Option(names = "--kv-heads", paramLabel = "K", description = "Key/value heads (default: --heads).")
    Integer kvHeads;

    @Option(names = "--vocab", paramLabel = "V|FILE.gguf",
            description = "Vocabulary size; with --format gguf also a GGUF file whose tokenizer.* keys (vocabulary, merges,"
                    + " special ids, chat template) are copied, its token count the vocabulary size unless --shape gives one.")
    String vocab;

    @Option(names = "--seq-len", paramLabel = "S", description = "Maximum sequence length.")
    Integer seqLen;

    @Option(names = "--unshared", description = "Write a separate classifier instead of sharing the token embedding.")
    boolean unshared;

    @Option(names = "--format", paramLabel = "v0|v1|v2|gguf", defaultValue = "v0",
            description = "v0: run.c's legacy float32 (default); v1: export.py --version 1; v2: Q8_0 as runq.c reads;"
                    + " gguf: a GGUF v3 file as llama.cpp writes it.")
    String format;

    @Option(names = "--arch", paramLabel = "NAME", description = "gguf: llama (default), qwen2 or qwen3.")
    String arch;

    @Option(names = "--type", paramLabel = "T",
            description = "gguf: f32, f16 (default), bf16, q8_0, q4_0, q4_k_m (Q4_K with Q6_K where llama-quantize puts it)"
                    + ", q5_k_m (Q5_K with Q6_K likewise), q3_k_s, q3_k_m or q3_k_l (Q3_K with Q4_K, Q5_K and Q6_K likewise), q2_k (Q2_K with Q3_K, Q4_K and Q6_K likewise), q2_k_s (Q2_K with Q4_K and Q6_K),"
                    + " iq4_nl or iq4_xs (with Q5_K and Q6_K likewise).")
    String type;

    @Option(names = "--head-size", paramLabel = "N", description = "gguf: per-head width (default dim / heads).")
    Integer headSize;

    @Option(names = "--rope-theta", paramLabel = "F", description = "gguf: RoPE base (default 10000).")
    Float ropeTheta;

    @Option(names = "--rms-eps", paramLabel = "F", description = "gguf: RMSNorm epsilon (default 1e-5).")
    Float rmsEps;

    @Option(names = "--group-size", paramLabel = "G",
            description = "v2 only: Q8_0 group size; default the largest of 64, 32, ..., 1 dividing dim and hidden_dim.")
    Integer groupSize;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "1", description = "Random seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--std", paramLabel = "S", defaultValue = "0.02",
            description = "Standard deviation of the weights (default ${DEFAULT-VALUE}).")
    double std;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        String name = String.valueOf(out.getFileName());
        if (format.equalsIgnoreCase("gguf")) {
            return new GgufSynthOptions(this).write(name);
        }
        for (String[] o : new String[][]{{"--arch", arch}, {"--type", type}, {"--head-size", s(headSize)},
                {"--rope-theta", s(ropeTheta)}, {"--rms-eps", s(rmsEps)}}) {
            if (o[1] != null) {
                throw new Llama2jException(name + ": " + o[0] + " applies to --format gguf only", Llama2jException.BAD_USAGE);
            }
        }
        ModelFormat f = parseFormat(format);
        Configuration c = configuration(name);
        int gs = 0;
        if (f == ModelFormat.V2_Q8) {
            gs = groupSize != null ? groupSize : CheckpointWriter.defaultGroupSize(c.dim(), c.hiddenDim());
            CheckpointWriter.checkGroupSize(name, c, gs);
        } else if (groupSize != null) {
            throw new Llama2jException(name + ": --group-size applies to --format v2 only", Llama2jException.BAD_USAGE);
        }
        if (!(std >= 0) || Double.isInfinite(std)) {
            throw new Llama2jException(name + ": --std is " + std + ", must be a finite number >= 0", Llama2jException.BAD_USAGE);
        }
        PrintWriter err = spec.commandLine().getErr();
        long size = CheckpointWriter.fileSize(name, c, f, gs);
        ProgressBar bar = size >= LARGE ? new ProgressBar(err, "writing " + name, size) : null;
        long t0 = System.nanoTime();
        CheckpointWriter.Result r = CheckpointWriter.write(new RandomWeights(c, seed, std), f, gs, out,
                bar == null ? null : bar::update);
        if (bar != null) {
            bar.finish();
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        PrintWriter o = spec.commandLine().getOut();
        o.println(String.format(Locale.ROOT, "wrote %s: %s%s, %s, %,d parameters, %,d bytes in %.2f s (%.0f MB/s)",
                out, f.description(), gs > 0 ? " group size " + gs : "", describe(c), c.parameterCount(), r.bytes(),
                seconds, r.bytes() / 1e6 / seconds));
        o.flush();
        return 0;
    }

    /** Files at least this big get a progress bar on stderr. */
    static final long LARGE = 256L << 20;

    private static String s(Object o) {
        return o == null ? null : o.toString();
    }

    static String describe(Configuration c) {
        return String.format(Locale.ROOT, "dim %d, hidden_dim %d, %d layers, %d heads, %d kv heads, vocab %d, seq_len %d, %s classifier",
                c.dim(), c.hiddenDim(), c.nLayers(), c.nHeads(), c.nKvHeads(), c.vocabSize(), c.seqLen(),
                c.sharedClassifier() ? "shared" : "unshared");
    }

    static ModelFormat parseFormat(String format) {
        return switch (format.toLowerCase(Locale.ROOT)) {
            case "v0" -> ModelFormat.LEGACY_V0;
            case "v1" -> ModelFormat.V1_F32;
            case "v2" -> ModelFormat.V2_Q8;
            default -> throw new Llama2jException("--format is '" + format + "', must be v0, v1, v2 or gguf", Llama2jException.BAD_USAGE);
        };
    }

    private Configuration configuration(String name) {
        Configuration base = null;
        if (shape != null) {
            base = ModelShapes.byName(shape).orElseThrow(() -> new Llama2jException("--shape is '" + shape + "', must be one of "
                    + String.join(", ", ModelShapes.names())
                    + (io.github.llama2j.model.GgufSynth.preset(shape).isPresent() ? " (" + shape + " is a GGUF shape: add --format gguf)" : ""),
                    Llama2jException.BAD_USAGE));
        }
        int d = pick("--dim", dim, base == null ? null : base.dim());
        int h = pick("--hidden-dim", hiddenDim, base == null ? null : base.hiddenDim());
        int l = pick("--layers", layers, base == null ? null : base.nLayers());
        int n = pick("--heads", heads, base == null ? null : base.nHeads());
        // kv heads follow the shape unless --heads overrides it; then, as without a shape, they equal the heads
        int k = pick("--kv-heads", kvHeads, base != null && heads == null ? base.nKvHeads() : n);
        Integer vocabSize = null;
        if (vocab != null) {
            vocabSize = parseInt(vocab).orElseThrow(() -> new Llama2jException(name + ": --vocab is '" + vocab
                    + "', must be a number (a GGUF vocabulary file needs --format gguf)", Llama2jException.BAD_USAGE));
        }
        int v = pick("--vocab", vocabSize, base == null ? null : base.vocabSize());
        int s = pick("--seq-len", seqLen, base == null ? null : base.seqLen());
        String[] fields = {"--dim", "--hidden-dim", "--layers", "--heads", "--kv-heads", "--vocab", "--seq-len"};
        int[] values = {d, h, l, n, k, v, s};
        for (int i = 0; i < fields.length; i++) {
            if (values[i] <= 0) {
                throw new Llama2jException(name + ": " + fields[i] + " is " + values[i] + ", must be positive", Llama2jException.BAD_USAGE);
            }
        }
        if (d % n != 0) {
            throw new Llama2jException(name + ": --heads " + n + " does not divide --dim " + d, Llama2jException.BAD_USAGE);
        }
        if (k > n || n % k != 0) {
            throw new Llama2jException(name + ": --kv-heads " + k + " does not divide --heads " + n, Llama2jException.BAD_USAGE);
        }
        if ((d / n) % 2 != 0) {
            throw new Llama2jException(name + ": head size dim/heads = " + (d / n) + " is odd, RoPE needs it even",
                    Llama2jException.BAD_USAGE);
        }
        return new Configuration(d, h, l, n, k, v, s, !unshared, 0);
    }

    /** A decimal int, or empty when {@code s} is not one (then it may be a file name). */
    static java.util.Optional<Integer> parseInt(String s) {
        if (!s.matches("-?[0-9]{1,10}")) {
            return java.util.Optional.empty();
        }
        try {
            return java.util.Optional.of(Integer.parseInt(s));
        } catch (NumberFormatException e) {
            return java.util.Optional.empty();
        }
    }

    static int pick(String option, Integer given, Integer fallback) {
        if (given != null) {
            return given;
        }
        if (fallback == null) {
            throw new Llama2jException(option + " is required without --shape", Llama2jException.BAD_USAGE);
        }
        return fallback;
    }
}
