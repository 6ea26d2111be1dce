package io.github.llama2j.model;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The shapes of the published llama2.c models (tinyllamas' TinyStories models and Llama 2 7B), all
 * with a classifier shared with the token embedding, as their files have.
 */
public final class ModelShapes {
    private static final Map<String, Configuration> SHAPES = new LinkedHashMap<>();

    static {
        //  name                 dim  hidden layers heads kv  vocab  seq_len
        add("stories260K", 64, 172, 5, 8, 4, 512, 512);
        add("stories15M", 288, 768, 6, 6, 6, 32000, 256);
        add("stories42M", 512, 1376, 8, 8, 8, 32000, 1024);
        add("stories110M", 768, 2048, 12, 12, 12, 32000, 1024);
        add("llama2-7b", 4096, 11008, 32, 32, 32, 32000, 2048);
    }

    private ModelShapes() {
    }

    private static void add(String name, int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen) {
        SHAPES.put(name, new Configuration(dim, hidden, layers, heads, kvHeads, vocab, seqLen, true, 0));
    }

    public static Optional<Configuration> byName(String name) {
        return Optional.ofNullable(SHAPES.get(name));
    }

    /** All names, smallest model first. */
    public static Iterable<String> names() {
        return SHAPES.keySet();
    }
}
