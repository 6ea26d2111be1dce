package io.github.llama2j.tokenizer;

import io.github.llama2j.Llama2jException;

import java.util.Arrays;
import java.util.Optional;
import java.util.function.Function;

/**
 * A vocabulary as a GGUF file stores it under {@code tokenizer.ggml.*}, before llama.cpp's load-time rules are
 * applied (those are in {@link GgufTokenizer}).
 *
 * @param source         file name, for error messages
 * @param model          {@code tokenizer.ggml.model}: {@code llama} (SentencePiece) or {@code gpt2} (byte-level BPE)
 * @param pre            {@code tokenizer.ggml.pre}, or null when absent
 * @param tokens         {@code tokenizer.ggml.tokens}
 * @param scores         {@code tokenizer.ggml.scores}, or null (all 0)
 * @param tokenTypes     {@code tokenizer.ggml.token_type}, or null (all normal)
 * @param merges         {@code tokenizer.ggml.merges} ("left right", by rank), or null
 * @param bosId          {@code tokenizer.ggml.bos_token_id}, or null; likewise the other ids
 * @param addBos         {@code tokenizer.ggml.add_bos_token}, or null for the tokenizer's default
 * @param addEos         {@code tokenizer.ggml.add_eos_token}, or null
 * @param addSpacePrefix {@code tokenizer.ggml.add_space_prefix}, or null
 * @param modelName      {@code general.name}, or null (llama.cpp sets token attributes for some names)
 */
public record VocabData(String source, String model, String pre, String[] tokens, float[] scores, int[] tokenTypes,
                        String[] merges, Long bosId, Long eosId, Long eotId, Long eomId, Long unkId, Long padId,
                        Boolean addBos, Boolean addEos, Boolean addSpacePrefix, String modelName) {

    /** Token types of {@code tokenizer.ggml.token_type}. */
    public static final int TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4, TYPE_UNUSED = 5,
            TYPE_BYTE = 6;

    public VocabData {
        if (model == null) {
            throw new Llama2jException(source + ": no tokenizer.ggml.model (the file holds no vocabulary)");
        }
        if (tokens == null || tokens.length == 0) {
            throw new Llama2jException(source + ": tokenizer.ggml.tokens is missing or empty");
        }
        if (scores != null && scores.length < tokens.length) {
            throw new Llama2jException(source + ": tokenizer.ggml.scores has " + scores.length + " values for "
                    + tokens.length + " tokens");
        }
        if (tokenTypes != null && tokenTypes.length < tokens.length) {
            throw new Llama2jException(source + ": tokenizer.ggml.token_type has " + tokenTypes.length + " values for "
                    + tokens.length + " tokens");
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] == null) {
                throw new Llama2jException(source + ": tokenizer.ggml.tokens[" + i + "] is null");
            }
        }
        // The special ids llama2j uses. llama.cpp warns and falls back to a default id, which silently puts another
        // token in BOS's place; refused here, as any out-of-range header field is. unknown/padding ids are not used.
        checkId(source, "tokenizer.ggml.bos_token_id", bosId, tokens.length);
        checkId(source, "tokenizer.ggml.eos_token_id", eosId, tokens.length);
        checkId(source, "tokenizer.ggml.eot_token_id", eotId, tokens.length);
        checkId(source, "tokenizer.ggml.eom_token_id", eomId, tokens.length);
    }

    private static void checkId(String source, String key, Long id, int vocabSize) {
        if (id != null && (id < 0 || id >= vocabSize)) {
            throw new Llama2jException(source + ": " + key + " is " + id + ", not a token id (the vocabulary has " + vocabSize
                    + " tokens, ids 0 to " + (vocabSize - 1) + ")");
        }
    }

    /**
     * Reads the {@code tokenizer.*} keys through {@code get} (for example {@code GgufFile::get}). Integer values may
     * come as any integral boxed type; integer arrays as {@code int[]} or {@code long[]}.
     */
    public static VocabData fromMetadata(String source, Function<String, Optional<Object>> get) {
        return new VocabData(source,
                string(source, get, "tokenizer.ggml.model"),
                string(source, get, "tokenizer.ggml.pre"),
                get.apply("tokenizer.ggml.tokens").map(v -> cast(source, "tokenizer.ggml.tokens", v, String[].class)).orElse(null),
                get.apply("tokenizer.ggml.scores").map(v -> floats(source, v)).orElse(null),
                get.apply("tokenizer.ggml.token_type").map(v -> ints(source, "tokenizer.ggml.token_type", v)).orElse(null),
                get.apply("tokenizer.ggml.merges").map(v -> cast(source, "tokenizer.ggml.merges", v, String[].class)).orElse(null),
                id(source, get, "tokenizer.ggml.bos_token_id"),
                id(source, get, "tokenizer.ggml.eos_token_id"),
                id(source, get, "tokenizer.ggml.eot_token_id"),
                id(source, get, "tokenizer.ggml.eom_token_id"),
                id(source, get, "tokenizer.ggml.unknown_token_id"),
                id(source, get, "tokenizer.ggml.padding_token_id"),
                bool(source, get, "tokenizer.ggml.add_bos_token"),
                bool(source, get, "tokenizer.ggml.add_eos_token"),
                bool(source, get, "tokenizer.ggml.add_space_prefix"),
                string(source, get, "general.name"));
    }

    private static String string(String source, Function<String, Optional<Object>> get, String key) {
        return get.apply(key).map(v -> cast(source, key, v, String.class)).orElse(null);
    }

    private static Boolean bool(String source, Function<String, Optional<Object>> get, String key) {
        return get.apply(key).map(v -> cast(source, key, v, Boolean.class)).orElse(null);
    }

    private static Long id(String source, Function<String, Optional<Object>> get, String key) {
        return get.apply(key).map(v -> {
            if (v instanceof Number n && !(v instanceof Float) && !(v instanceof Double)) {
                return n.longValue();
            }
            throw new Llama2jException(source + ": " + key + " is a " + v.getClass().getSimpleName() + ", expected an integer");
        }).orElse(null);
    }

    private static <T> T cast(String source, String key, Object v, Class<T> type) {
        if (!type.isInstance(v)) {
            throw new Llama2jException(source + ": " + key + " is a " + v.getClass().getSimpleName() + ", expected "
                    + type.getSimpleName());
        }
        return type.cast(v);
    }

    private static float[] floats(String source, Object v) {
        if (v instanceof float[] f) {
            return f;
        }
        if (v instanceof int[] ints) { // llama.cpp also accepts int32 scores
            float[] f = new float[ints.length];
            for (int i = 0; i < ints.length; i++) {
                f[i] = ints[i];
            }
            return f;
        }
        throw new Llama2jException(source + ": tokenizer.ggml.scores is a " + v.getClass().getSimpleName()
                + ", expected float32 or int32 values");
    }

    private static int[] ints(String source, String key, Object v) {
        if (v instanceof int[] i) {
            return i;
        }
        if (v instanceof long[] l) {
            return Arrays.stream(l).mapToInt(x -> (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, x))).toArray();
        }
        throw new Llama2jException(source + ": " + key + " is a " + v.getClass().getSimpleName() + ", expected integers");
    }
}
