package io.github.llama2j.tokenizer;

import io.github.llama2j.Llama2jException;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The word split a byte-level BPE vocabulary applies before merging, chosen by {@code tokenizer.ggml.pre}
 * (llama.cpp's {@code llama_vocab_pre_type}). Each kind is a list of regular expressions applied in turn:
 * every piece left by the previous one is split into its matches and the text between them, as llama.cpp's
 * {@code unicode_regex_split} does.
 *
 * <p>The expressions are Hugging Face's (the {@code tokenizer.json} of each model), with {@code (?i:'s|...)} spelled
 * out case by case as llama.cpp does. They run with {@link Pattern#UNICODE_CHARACTER_CLASS}, so {@code \s} is Unicode
 * White_Space as in the Rust regex engines of Hugging Face tokenizers; {@code \p{L}} and {@code \p{N}} are Unicode
 * general categories (Java's tables, Unicode 16 on JDK 25).
 */
enum PreTokenizer {
    /** Llama 3 (tiktoken cl100k-like): digits in runs of up to three. */
    LLAMA3(true, true, "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
            "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"),
    /** Qwen2/2.5/3: as Llama 3 but one digit per piece. */
    QWEN2(false, false, "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
            "qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan"),
    /** GPT-2's own split. */
    GPT2(false, false, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
            "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "mpt", "olmo", "jais"),
    /** SmolLM, StarCoder: single digits first, then GPT-2's split. */
    SMOLLM(false, false, new String[]{"\\p{N}", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"},
            "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b");

    /** A piece that is itself a token is emitted whole, without merging (llama.cpp's {@code ignore_merges}). */
    final boolean ignoreMerges;
    /** llama.cpp's default for {@code add_bos} when the file does not say. */
    final boolean addBosByDefault;
    private final Pattern[] patterns;
    private final String[] names;

    PreTokenizer(boolean ignoreMerges, boolean addBosByDefault, String regex, String... names) {
        this(ignoreMerges, addBosByDefault, new String[]{regex}, names);
    }

    PreTokenizer(boolean ignoreMerges, boolean addBosByDefault, String[] regexes, String... names) {
        this.ignoreMerges = ignoreMerges;
        this.addBosByDefault = addBosByDefault;
        this.patterns = Arrays.stream(regexes).map(r -> Pattern.compile(r, Pattern.UNICODE_CHARACTER_CLASS)).toArray(Pattern[]::new);
        this.names = names;
    }

    /** The kind for a {@code tokenizer.ggml.pre} value; a clear error naming it when unsupported. */
    static PreTokenizer forName(String source, String pre) {
        if (pre == null || pre.isEmpty()) {
            throw new Llama2jException(source + ": byte-level BPE vocabulary without tokenizer.ggml.pre; llama2j needs the "
                    + "pre-tokenizer name (supported: " + supportedNames() + ")");
        }
        for (PreTokenizer p : values()) {
            if (Arrays.asList(p.names).contains(pre)) {
                return p;
            }
        }
        throw new Llama2jException(source + ": tokenizer.ggml.pre '" + pre + "' is not supported (supported: "
                + supportedNames() + ")");
    }

    static String supportedNames() {
        List<String> all = new ArrayList<>();
        for (PreTokenizer p : values()) {
            all.addAll(Arrays.asList(p.names));
        }
        return String.join(", ", all);
    }

    /** Splits {@code text} into the pieces BPE merges separately. */
    List<String> split(String text) {
        List<String> pieces = List.of(text);
        for (Pattern pattern : patterns) {
            List<String> next = new ArrayList<>();
            for (String piece : pieces) {
                Matcher m = pattern.matcher(piece);
                int last = 0;
                while (m.find()) {
                    if (m.start() > last) {
                        next.add(piece.substring(last, m.start()));
                    }
                    if (m.end() > m.start()) {
                        next.add(piece.substring(m.start(), m.end()));
                    }
                    last = m.end();
                }
                if (last < piece.length()) {
                    next.add(piece.substring(last));
                }
            }
            pieces = next;
        }
        return pieces;
    }
}
