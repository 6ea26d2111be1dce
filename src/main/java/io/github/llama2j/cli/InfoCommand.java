package io.github.llama2j.cli;

import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code llama2j info}: what a checkpoint holds and what running it costs. */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = {"Describe a checkpoint: format, configuration, parameter count, file size, weight bytes read per"
                + " token (what bounds generation speed on memory bandwidth) and the key/value cache size at seq_len.",
                "For a GGUF file: architecture, hyper-parameters, tensor types with counts and sizes, tokenizer kind"
                        + " and chat template."},
        footer = {"",
                "Examples:",
                "  llama2j info stories15M",
                "  llama2j info model_q80.bin --json",
                "  llama2j info Llama-3.2-1B-Instruct-Q4_K_M.gguf --chat-template",
                ModelResolver.NAMES_HELP})
public final class InfoCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "MODEL", description = "Checkpoint path, or a name (stories260K, stories15M, stories42M, stories110M).")
    String model;

    @Option(names = "--json", description = "Print one JSON object instead of the table.")
    boolean json;

    @Option(names = "--chat-template", description = "GGUF files: print the chat template's text after the table"
            + " (--json always includes it).")
    boolean chatTemplate;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        Path path = ModelResolver.resolve(model, spec.commandLine().getErr());
        if (GgufFile.isGguf(path)) {
            try (GgufFile f = GgufFile.open(path)) {
                Map<String, Object> info = GgufInfo.describe(f);
                PrintWriter o = spec.commandLine().getOut();
                if (json) {
                    o.println(Json.write(info));
                } else {
                    GgufInfo.print(o, info, chatTemplate);
                }
                o.flush();
            }
            return 0;
        }
        try (Model m = ModelLoader.load(path)) {
            Map<String, Object> info = describe(m, path);
            PrintWriter o = spec.commandLine().getOut();
            if (json) {
                o.println(Json.write(info));
            } else {
                Configuration c = m.config();
                row(o, "file", path);
                row(o, "format", m.format().description());
                row(o, "dim", c.dim());
                row(o, "hidden_dim", c.hiddenDim());
                row(o, "n_layers", c.nLayers());
                row(o, "n_heads", c.nHeads());
                row(o, "n_kv_heads", c.nKvHeads() + (c.kvMul() > 1 ? " (grouped-query: " + c.kvMul() + " query heads per kv head)" : ""));
                row(o, "vocab_size", c.vocabSize());
                row(o, "seq_len", c.seqLen());
                row(o, "head_size", c.headSize());
                row(o, "kv_dim", c.kvDim());
                row(o, "classifier", c.sharedClassifier() ? "shared with the token embedding" : "separate (unshared)");
                row(o, "group_size", c.quantized() ? String.valueOf(c.groupSize()) : "- (float32)");
                row(o, "parameters", String.format(Locale.ROOT, "%,d (%s)", parameterCount(m), millions(parameterCount(m))));
                row(o, "file size", bytes((long) info.get("file_bytes")));
                row(o, "bytes per token", bytes((long) info.get("bytes_per_token")) + "  (weights read by one forward pass)");
                row(o, "kv cache", bytes((long) info.get("kv_cache_bytes")) + "  (float32 keys and values at seq_len " + c.seqLen() + ")");
            }
            o.flush();
        }
        return 0;
    }

    static Map<String, Object> describe(Model m, Path path) {
        Configuration c = m.config();
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("file", path.toString());
        info.put("format", switch (m.format()) {
            case LEGACY_V0 -> "v0";
            case V1_F32 -> "v1";
            case V2_Q8 -> "v2";
            case GGUF -> "gguf";
        });
        info.put("format_description", m.format().description());
        info.put("dim", c.dim());
        info.put("hidden_dim", c.hiddenDim());
        info.put("n_layers", c.nLayers());
        info.put("n_heads", c.nHeads());
        info.put("n_kv_heads", c.nKvHeads());
        info.put("vocab_size", c.vocabSize());
        info.put("seq_len", c.seqLen());
        info.put("head_size", c.headSize());
        info.put("kv_dim", c.kvDim());
        info.put("shared_classifier", c.sharedClassifier());
        info.put("group_size", c.quantized() ? c.groupSize() : null);
        info.put("parameters", parameterCount(m));
        info.put("file_bytes", m.path().toFile().length());
        info.put("bytes_per_token", m.weights().bytesPerToken());
        info.put("kv_cache_bytes", kvCacheBytes(c));
        return info;
    }

    /**
     * The parameter count llama2j reports for a loaded model: a GGUF file's every tensor ({@link GgufInfo#parameterCount},
     * as {@code info FILE.gguf} shows), a llama2.c checkpoint's weights ({@link Configuration#parameterCount}).
     */
    static long parameterCount(Model m) {
        return m.gguf().map(GgufInfo::parameterCount).orElseGet(() -> m.config().parameterCount());
    }

    /** The engines keep float32 keys and values for every layer and position. */
    static long kvCacheBytes(Configuration c) {
        return 2L * c.nLayers() * c.seqLen() * c.kvDim() * Float.BYTES;
    }

    private static void row(PrintWriter o, String key, Object value) {
        o.println(String.format(Locale.ROOT, "%-17s %s", key, value));
    }

    static String bytes(long b) {
        String unit;
        double v;
        if (b >= 1L << 30) {
            unit = "GiB";
            v = b / (double) (1L << 30);
        } else if (b >= 1L << 20) {
            unit = "MiB";
            v = b / (double) (1L << 20);
        } else {
            unit = "KiB";
            v = b / 1024.0;
        }
        return String.format(Locale.ROOT, "%,d bytes (%.2f %s)", b, v, unit);
    }

    static String millions(long n) {
        return n >= 1_000_000_000L ? String.format(Locale.ROOT, "%.2f B", n / 1e9) : String.format(Locale.ROOT, "%.2f M", n / 1e6);
    }
}
