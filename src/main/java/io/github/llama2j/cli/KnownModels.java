package io.github.llama2j.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The models that MODEL may name instead of a path: Karpathy's TinyStories checkpoints (the
 * "tinyllamas" files on Hugging Face) and the tokenizer each needs beside it.
 *
 * <p>Pinned checksums exist only where we could compute them from a copy known to be identical
 * (stories260K.bin and tok512.bin, and llama2.c's tokenizer.bin). The other checkpoints have no
 * pinned hash: their sizes are fixed by their shapes (v0 layout, shared classifier), and their SHA-256
 * is recorded on first download and checked on every later use (trust on first use).
 */
final class KnownModels {
    /** Where tinyllamas' files live; {@code LLAMA2J_MODEL_BASE_URL} replaces it (and {@link #GITHUB_BASE}). */
    static final String HUGGING_FACE_BASE = "https://huggingface.co/karpathy/tinyllamas/resolve/main";
    /** Where llama2.c's tokenizer.bin lives. */
    static final String GITHUB_BASE = "https://raw.githubusercontent.com/karpathy/llama2.c/master";

    /**
     * One downloadable file.
     *
     * @param path   path below the base URL; its last component is the local file name
     * @param github whether it comes from llama2.c's GitHub repository rather than Hugging Face
     * @param size   exact size in bytes, or -1 if not pinned
     * @param sha256 lower-case hex SHA-256, or null if not pinned (trust on first use)
     */
    record RemoteFile(String path, boolean github, long size, String sha256) {
        String fileName() {
            return path.substring(path.lastIndexOf('/') + 1);
        }

        String url(String overrideBase) {
            String base = overrideBase != null ? overrideBase : github ? GITHUB_BASE : HUGGING_FACE_BASE;
            return (base.endsWith("/") ? base.substring(0, base.length() - 1) : base) + "/" + path;
        }
    }

    record KnownModel(String name, RemoteFile weights, RemoteFile tokenizer) {
    }

    /** llama2.c's tokenizer.bin (Llama 2's 32,000 tokens), as of llama2.c commit 350e04f. */
    static final RemoteFile LLAMA2_TOKENIZER = new RemoteFile("tokenizer.bin", true, 433_869,
            "50a52ef822ee9e83de5ce9d0be0a025a773d019437f58b5ff9dcafb063ece361");

    private static final Map<String, KnownModel> MODELS = new LinkedHashMap<>();

    static {
        add(new KnownModel("stories260K",
                new RemoteFile("stories260K/stories260K.bin", false, 1_056_540,
                        "9ff58ba3dece3aba57cf0d540d3d59e2aebaff86b7d20469b795217c826dd355"),
                new RemoteFile("stories260K/tok512.bin", false, 6_227,
                        "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312")));
        // Sizes follow from the shapes in ModelShapes and the v0 layout (KnownModelsTest checks this).
        add(new KnownModel("stories15M", new RemoteFile("stories15M.bin", false, 60_816_028, null), LLAMA2_TOKENIZER));
        add(new KnownModel("stories42M", new RemoteFile("stories42M.bin", false, 167_020_572, null), LLAMA2_TOKENIZER));
        add(new KnownModel("stories110M", new RemoteFile("stories110M.bin", false, 438_381_596, null), LLAMA2_TOKENIZER));
    }

    private KnownModels() {
    }

    private static void add(KnownModel m) {
        MODELS.put(m.name(), m);
    }

    /** The model called {@code name}, also accepting the file name ({@code stories15M.bin}). */
    static Optional<KnownModel> byName(String name) {
        String n = name.endsWith(".bin") ? name.substring(0, name.length() - 4) : name;
        return Optional.ofNullable(MODELS.get(n));
    }

    static Iterable<String> names() {
        return MODELS.keySet();
    }
}
