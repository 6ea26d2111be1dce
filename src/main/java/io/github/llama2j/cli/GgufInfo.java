package io.github.llama2j.cli;

import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.gguf.GgufTensorInfo;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code llama2j info} for GGUF files: what the file says (architecture, its hyper-parameters, tensor
 * types with counts and sizes, tokenizer kind, chat template), read from the header alone, so it works
 * for architectures llama2j cannot run too.
 */
final class GgufInfo {
    private GgufInfo() {
    }

    /**
     * Every tensor's element count, as llama.cpp's {@code n_params}: biases, q/k norms and {@code rope_freqs} included.
     * The one count of a GGUF model's parameters ({@code info}, and {@code bench} through {@link InfoCommand#parameterCount}).
     */
    static long parameterCount(GgufFile f) {
        long n = 0;
        for (GgufTensorInfo t : f.tensors()) {
            n += t.elementCount();
        }
        return n;
    }

    static Map<String, Object> describe(GgufFile f) {
        Map<String, Object> info = new LinkedHashMap<>();
        String arch = f.optionalString("general.architecture").orElse(null);
        info.put("file", f.path().toString());
        info.put("format", "gguf");
        info.put("gguf_version", f.version());
        info.put("architecture", arch);
        info.put("name", f.optionalString("general.name").orElse(null));
        Map<String, Object> hparams = new LinkedHashMap<>();
        if (arch != null) {
            String prefix = arch + ".";
            for (Map.Entry<String, Object> e : f.metadata().entrySet()) {
                if (e.getKey().startsWith(prefix) && isScalar(e.getValue())) {
                    hparams.put(e.getKey().substring(prefix.length()), e.getValue());
                }
            }
        }
        info.put("hyper_parameters", hparams);
        Map<String, Map<String, Object>> types = new LinkedHashMap<>();
        long tensorBytes = 0;
        for (GgufTensorInfo t : f.tensors()) {
            Map<String, Object> row = types.computeIfAbsent(t.type().displayName(), k -> {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("tensors", 0);
                m.put("parameters", 0L);
                m.put("bytes", 0L);
                return m;
            });
            row.put("tensors", (int) row.get("tensors") + 1);
            row.put("parameters", (long) row.get("parameters") + t.elementCount());
            row.put("bytes", (long) row.get("bytes") + t.byteSize());
            tensorBytes += t.byteSize();
        }
        info.put("tensor_count", f.tensors().size());
        info.put("tensor_types", types);
        info.put("parameters", parameterCount(f));
        info.put("tensor_bytes", tensorBytes);
        info.put("file_bytes", f.byteSize());
        info.put("alignment", f.alignment());
        info.put("metadata_count", f.metadata().size());
        info.put("tokenizer", f.optionalString("tokenizer.ggml.model").orElse(null));
        info.put("tokenizer_pre", f.optionalString("tokenizer.ggml.pre").orElse(null));
        Object tokens = f.metadata().get("tokenizer.ggml.tokens");
        info.put("vocab_size", tokens instanceof String[] a ? a.length : null);
        for (String id : List.of("bos", "eos", "eot", "unknown", "padding")) {
            Object v = f.metadata().get("tokenizer.ggml." + id + "_token_id");
            if (v instanceof Long l) {
                info.put(id + "_token_id", l);
            }
        }
        Object template = f.metadata().get("tokenizer.chat_template");
        info.put("chat_template", template instanceof String s ? s : null);
        info.put("runnable", runnable(f));
        return info;
    }

    /** "yes (cpu engine)", or why llama2j cannot run the file (the model loader's error, without the file name). */
    private static String runnable(GgufFile f) {
        try {
            io.github.llama2j.model.GgufModelLoader.validate(f); // the loader's checks, without widening Q5_0
            io.github.llama2j.tokenizer.GgufTokenizer.load(f); // run needs it: its errors (bad special ids...) are reasons too
            return "yes (cpu engine)";
        } catch (io.github.llama2j.Llama2jException e) {
            String m = e.getMessage();
            return "no: " + (m.startsWith(f.name() + ": ") ? m.substring(f.name().length() + 2) : m);
        }
    }

    private static boolean isScalar(Object v) {
        return v instanceof Number || v instanceof Boolean || v instanceof String;
    }

    @SuppressWarnings("unchecked")
    static void print(PrintWriter o, Map<String, Object> info, boolean showTemplate) {
        row(o, "file", info.get("file"));
        row(o, "format", "GGUF v" + info.get("gguf_version"));
        row(o, "architecture", info.get("architecture") == null ? "- (no general.architecture)" : info.get("architecture"));
        if (info.get("name") != null) {
            row(o, "name", info.get("name"));
        }
        ((Map<String, Object>) info.get("hyper_parameters")).forEach((k, v) -> row(o, k, v));
        row(o, "parameters", String.format(Locale.ROOT, "%,d (%s)", (long) info.get("parameters"),
                InfoCommand.millions((long) info.get("parameters"))));
        row(o, "tensors", info.get("tensor_count"));
        ((Map<String, Map<String, Object>>) info.get("tensor_types")).forEach((type, m) -> row(o, "  " + type,
                String.format(Locale.ROOT, "%d tensors, %,d parameters, %s", (int) m.get("tensors"), (long) m.get("parameters"),
                        InfoCommand.bytes((long) m.get("bytes")))));
        row(o, "file size", InfoCommand.bytes((long) info.get("file_bytes")));
        Object tok = info.get("tokenizer");
        row(o, "tokenizer", tok == null ? "- (no tokenizer.ggml.model)"
                : tok + (info.get("tokenizer_pre") != null ? " (pre: " + info.get("tokenizer_pre") + ")" : "")
                + (info.get("vocab_size") != null ? ", " + info.get("vocab_size") + " tokens" : ""));
        for (String id : List.of("bos", "eos", "eot")) {
            if (info.containsKey(id + "_token_id")) {
                row(o, id + " token", info.get(id + "_token_id"));
            }
        }
        row(o, "runs in llama2j", info.get("runnable"));
        String template = (String) info.get("chat_template");
        row(o, "chat template", template == null ? "none" : "present (" + template.length() + " characters"
                + (showTemplate ? ", below)" : "; --chat-template prints it)"));
        if (showTemplate && template != null) {
            o.println();
            o.println(template);
        }
    }

    private static void row(PrintWriter o, String key, Object value) {
        o.println(String.format(Locale.ROOT, "%-24s %s", key, value));
    }
}
