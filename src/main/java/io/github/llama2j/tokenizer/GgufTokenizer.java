package io.github.llama2j.tokenizer;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.gguf.GgufFile;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.IntStream;

/**
 * The tokenizer of a GGUF file, following llama.cpp's {@code llama_vocab} (load rules, {@code tokenize},
 * {@code token_to_piece}) for the two kinds llama2j supports: SentencePiece-style ({@code tokenizer.ggml.model =
 * llama}) and byte-level BPE ({@code gpt2}, with the {@link PreTokenizer} of {@code tokenizer.ggml.pre}).
 *
 * <p>Special tokens: control, user-defined and unknown tokens are matched in the text first (longest first), control
 * and unknown ones only with {@code parseSpecial}. End of generation: EOS, EOT, EOM and every token named like an
 * end-of-turn marker ({@code <|eot_id|>}, {@code <|im_end|>}, {@code </s>}, ...), as llama.cpp decides it.
 */
public final class GgufTokenizer implements TextTokenizer {
    /** llama.cpp's {@code llama_token_attr} bits. */
    static final int ATTR_UNKNOWN = 1, ATTR_UNUSED = 1 << 1, ATTR_NORMAL = 1 << 2, ATTR_CONTROL = 1 << 3,
            ATTR_USER_DEFINED = 1 << 4, ATTR_BYTE = 1 << 5, ATTR_RSTRIP = 1 << 8;

    /** Token texts llama.cpp treats as end of generation (and forces to control type). */
    private static final Set<String> EOG_NAMES = Set.of("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
            "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]",
            "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
            "<｜end▁of▁sentence｜>", "[e~[");
    /**
     * Texts llama.cpp takes as the EOT token when the file names none. It takes the first it meets in a hash map;
     * we take the first in this order, which gives llama.cpp's choice for Llama 3 and Qwen (golden {@code vocab.eot}).
     */
    private static final List<String> EOT_NAMES = List.of("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
            "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>");
    /** Fill-in-the-middle pad/repo/separator tokens, also end of generation. */
    private static final List<Set<String>> FIM_EOG_NAMES = List.of(
            Set.of("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
            Set.of("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
            Set.of("<|file_sep|>"));

    /** The two tokenizer kinds. */
    public enum Kind { SPM, BPE }

    private final String source;
    private final Kind kind;
    private final String[] texts;
    private final float[] scores;
    private final int[] attrs;
    private final HashMap<String, Integer> ids;
    private final int[] specialTokens; // control/user-defined/unknown, longest text first
    private final int bos, eos, eot;
    private final boolean addBos, addEos, addSpacePrefix;
    private final TreeSet<Integer> eog = new TreeSet<>();
    private final SpmEncoder spm;
    private final BpeEncoder bpe;
    private final byte[][] pieceCache; // token_to_piece(special = true), computed on first use

    public GgufTokenizer(VocabData v) {
        this.source = v.source();
        int n = v.tokens().length;
        this.texts = v.tokens().clone();
        this.scores = v.scores() != null ? Arrays.copyOf(v.scores(), n) : new float[n];
        this.attrs = new int[n];
        this.ids = new HashMap<>(n * 2);
        for (int i = 0; i < n; i++) {
            if (texts[i].isEmpty()) {
                texts[i] = "[EMPTY_" + i + "]"; // as llama.cpp
            }
            if (ids.putIfAbsent(texts[i], i) != null) {
                throw new Llama2jException(source + ": duplicate token in vocabulary: '" + texts[i] + "' has ids "
                        + ids.get(texts[i]) + " and " + i);
            }
            attrs[i] = v.tokenTypes() == null ? ATTR_NORMAL : switch (v.tokenTypes()[i]) {
                case VocabData.TYPE_NORMAL -> ATTR_NORMAL;
                case VocabData.TYPE_UNKNOWN -> ATTR_UNKNOWN;
                case VocabData.TYPE_CONTROL -> ATTR_CONTROL;
                case VocabData.TYPE_USER_DEFINED -> ATTR_USER_DEFINED;
                case VocabData.TYPE_UNUSED -> ATTR_UNUSED;
                case VocabData.TYPE_BYTE -> ATTR_BYTE;
                default -> 0; // undefined
            };
        }
        int defaultBos, defaultEos;
        boolean defaultAddBos;
        switch (v.model()) {
            case "llama" -> {
                kind = Kind.SPM;
                defaultBos = 1;
                defaultEos = 2;
                defaultAddBos = true;
                addSpacePrefix = v.addSpacePrefix() == null || v.addSpacePrefix();
                spm = new SpmEncoder(this);
                bpe = null;
            }
            case "gpt2" -> {
                kind = Kind.BPE;
                if (v.merges() == null) {
                    throw new Llama2jException(source + ": byte-level BPE vocabulary without tokenizer.ggml.merges");
                }
                PreTokenizer pre = PreTokenizer.forName(source, v.pre());
                defaultBos = 11;
                defaultEos = 11;
                defaultAddBos = pre.addBosByDefault;
                addSpacePrefix = v.addSpacePrefix() != null && v.addSpacePrefix();
                if (addSpacePrefix) {
                    throw new Llama2jException(source + ": tokenizer.ggml.add_space_prefix is true for a byte-level BPE "
                            + "vocabulary, which llama2j does not support");
                }
                spm = null;
                bpe = new BpeEncoder(this, pre, v.merges());
            }
            default -> throw new Llama2jException(source + ": tokenizer.ggml.model '" + v.model()
                    + "' is not supported (supported: llama (SentencePiece), gpt2 (byte-level BPE))");
        }
        this.bos = specialId(v.bosId(), defaultBos, n);
        this.eos = specialId(v.eosId(), defaultEos, n);
        this.addBos = v.addBos() != null ? v.addBos() : defaultAddBos;
        this.addEos = v.addEos() != null && v.addEos();
        if (addBos && bos < 0) {
            throw new Llama2jException(source + ": tokenizer.ggml.add_bos_token is true, but there is no valid BOS token");
        }
        if (addEos && eos < 0) {
            throw new Llama2jException(source + ": tokenizer.ggml.add_eos_token is true, but there is no valid EOS token");
        }

        // llama.cpp's load-time rules: find EOT/EOM/FIM tokens by name, mark end-of-generation tokens as control.
        int eotId = specialId(v.eotId(), -1, n);
        int eomId = specialId(v.eomId(), -1, n);
        int[] fim = {-1, -1, -1};
        for (String name : EOT_NAMES) {
            Integer id = ids.get(name);
            if (eotId < 0 && id != null) {
                eotId = id;
                attrs[id] |= ATTR_CONTROL;
            }
        }
        for (int i = 0; i < n; i++) {
            String t = texts[i];
            if (eomId < 0 && t.equals("<|eom_id|>")) {
                eomId = i;
                attrs[i] |= ATTR_CONTROL;
            }
            for (int f = 0; f < fim.length; f++) {
                if (fim[f] < 0 && FIM_EOG_NAMES.get(f).contains(t)) {
                    fim[f] = i;
                    attrs[i] |= ATTR_CONTROL;
                }
            }
        }
        for (int f : fim) {
            if (f >= 0) {
                eog.add(f);
            }
        }
        for (int i = 0; i < n; i++) {
            if (EOG_NAMES.contains(texts[i])) {
                eog.add(i);
                attrs[i] |= ATTR_CONTROL;
            }
        }
        if (eos >= 0) {
            eog.add(eos);
        }
        if (eotId >= 0) {
            eog.add(eotId);
        }
        if (eomId >= 0) {
            eog.add(eomId);
        }
        dropEndIfHarmony();
        this.eot = eotId;

        this.specialTokens = IntStream.range(0, n)
                .filter(i -> (attrs[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) != 0)
                .boxed()
                .sorted(Comparator.comparingInt((Integer i) -> -texts[i].getBytes(StandardCharsets.UTF_8).length))
                .mapToInt(Integer::intValue).toArray();
        String name = v.modelName() == null ? "" : v.modelName().toLowerCase(Locale.ROOT);
        if (name.contains("phi-3") || name.contains("phi3")) { // llama.cpp: phi-3's special tokens eat following spaces
            for (int id : specialTokens) {
                attrs[id] |= ATTR_RSTRIP;
            }
            setRstrip("</s>", true);
            for (String t : List.of("<unk>", "<s>", "<|endoftext|>")) {
                setRstrip(t, false);
            }
        }
        this.pieceCache = new byte[n][]; // filled as tokens are printed
    }

    /** The tokenizer of a GGUF file's {@code tokenizer.ggml.*} metadata. */
    public static GgufTokenizer load(GgufFile file) {
        return new GgufTokenizer(VocabData.fromMetadata(file.name(), file::get));
    }

    /** o200k_harmony / solar-open: with &lt;|return|&gt; and &lt;|call|&gt;, &lt;|end|&gt; is not an end of generation. */
    private void dropEndIfHarmony() {
        boolean hasReturn = false, hasCall = false, hasFlush = false;
        int end = -1;
        for (int id : eog) {
            switch (texts[id]) {
                case "<|return|>" -> hasReturn = true;
                case "<|call|>", "<|calls|>" -> hasCall = true;
                case "<|flush|>" -> hasFlush = true;
                case "<|end|>" -> end = id;
                default -> {
                }
            }
        }
        if (end >= 0 && hasCall && (hasReturn || hasFlush)) {
            eog.remove(end);
            attrs[end] = ATTR_USER_DEFINED;
        }
    }

    private void setRstrip(String text, boolean on) {
        Integer id = ids.get(text);
        if (id != null) {
            attrs[id] = on ? attrs[id] | ATTR_RSTRIP : attrs[id] & ~ATTR_RSTRIP;
        }
    }

    /** A special id from the file, or the default; ids outside the vocabulary are ignored as llama.cpp does. */
    private static int specialId(Long fromFile, int fallback, int n) {
        if (fromFile != null && fromFile >= 0 && fromFile < n) {
            return (int) (long) fromFile;
        }
        return fallback >= 0 && fallback < n ? fallback : -1;
    }

    // ---------------------------------------------------------------- queries

    public Kind kind() {
        return kind;
    }

    @Override
    public int vocabSize() {
        return texts.length;
    }

    @Override
    public int bos() {
        return bos;
    }

    public int eos() {
        return eos;
    }

    /** The end-of-turn token, or -1. */
    public int eot() {
        return eot;
    }

    public boolean addsBos() {
        return addBos;
    }

    /** Every end-of-generation id, ascending. */
    public int[] endOfGenerationTokens() {
        return eog.stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public boolean isEndOfGeneration(int token) {
        return eog.contains(token);
    }

    /** The token's text as stored in the vocabulary. */
    public String tokenText(int id) {
        return texts[id];
    }

    /** The id whose text is exactly {@code text}, or -1. */
    public int textToToken(String text) {
        Integer id = ids.get(text);
        return id == null ? -1 : id;
    }

    float score(int id) {
        return scores[id];
    }

    /** SentencePiece byte fallback: the {@code <0xXX>} token, else the one-character token. */
    int byteToToken(int b) {
        int id = textToToken(String.format(Locale.ROOT, "<0x%02X>", b));
        if (id < 0 && b < 0x80) {
            id = textToToken(String.valueOf((char) b));
        }
        if (id < 0) {
            throw new Llama2jException(String.format(Locale.ROOT, "%s: the vocabulary has no byte token <0x%02X>", source, b));
        }
        return id;
    }

    // ---------------------------------------------------------------- encode

    @Override
    public int[] tokenize(String text, boolean addSpecial, boolean parseSpecial) {
        IntList out = new IntList();
        List<Object> fragments = text.isEmpty() ? List.of() : partition(text, parseSpecial);
        if (addSpecial && addBos) {
            out.add(bos);
        }
        boolean prevSpecial = true; // SentencePiece: a space goes before the first text and after each special token
        for (Object fragment : fragments) {
            if (fragment instanceof String s) {
                if (kind == Kind.SPM) {
                    String t = addSpacePrefix && prevSpecial ? " " + s : s;
                    spm.encode(t.replace(" ", "\u2581"), out);
                } else {
                    bpe.encode(s, out);
                }
                prevSpecial = false;
            } else {
                out.add((Integer) fragment);
                prevSpecial = true;
            }
        }
        if (addSpecial && addEos) {
            out.add(eos);
        }
        return out.toArray();
    }

    /**
     * llama.cpp's {@code tokenizer_st_partition}: for each special token, longest first, every text fragment is cut
     * at each occurrence of its text. Returns Strings (text) and Integers (token ids) in order.
     */
    private List<Object> partition(String text, boolean parseSpecial) {
        List<Object> fragments = new ArrayList<>(List.of(text));
        for (int id : specialTokens) {
            if (!parseSpecial && (attrs[id] & (ATTR_CONTROL | ATTR_UNKNOWN)) != 0) {
                continue; // without parse_special only user-defined tokens are matched
            }
            String st = texts[id];
            List<Object> next = new ArrayList<>(fragments.size());
            for (Object f : fragments) {
                if (!(f instanceof String s) || !s.contains(st)) {
                    next.add(f);
                    continue;
                }
                int base = 0;
                while (base < s.length()) {
                    int m = s.indexOf(st, base);
                    if (m < 0) {
                        next.add(s.substring(base));
                        break;
                    }
                    if (m > base) {
                        next.add(s.substring(base, m)); // no special token of ours has lstrip
                    }
                    next.add(id);
                    base = m + st.length();
                    if ((attrs[id] & ATTR_RSTRIP) != 0) {
                        while (base < s.length() && isCSpace(s.charAt(base))) {
                            base++;
                        }
                    }
                }
            }
            fragments = next;
        }
        return fragments;
    }

    private static boolean isCSpace(char c) {
        return c == ' ' || (c >= '\t' && c <= '\r');
    }

    // ---------------------------------------------------------------- decode

    @Override
    public byte[] tokenToPiece(int token, boolean special) {
        if (!special && (attrs[token] & (ATTR_UNKNOWN | ATTR_CONTROL)) != 0) {
            return new byte[0];
        }
        byte[] piece = pieceCache[token];
        if (piece == null) {
            piece = computePiece(token);
            pieceCache[token] = piece;
        }
        return piece.clone();
    }

    /** llama.cpp's {@code token_to_piece(special = true)}. */
    private byte[] computePiece(int id) {
        String t = texts[id];
        int a = attrs[id];
        if ((a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) != 0) {
            return t.getBytes(StandardCharsets.UTF_8);
        }
        if ((a & ATTR_NORMAL) != 0) {
            return kind == Kind.SPM ? t.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8) : ByteUnicode.decode(t);
        }
        if ((a & ATTR_BYTE) != 0) {
            return new byte[]{(byte) parseHexByte(t)};
        }
        return new byte[0]; // unused, undefined
    }

    /** strtol(text.substr(3, 2), 16) as llama.cpp's token_to_byte. */
    private static int parseHexByte(String t) {
        String hex = t.length() >= 5 ? t.substring(3, 5) : t.length() > 3 ? t.substring(3) : "";
        int v = 0;
        for (int i = 0; i < hex.length(); i++) {
            int d = Character.digit(hex.charAt(i), 16);
            if (d < 0) {
                break;
            }
            v = v * 16 + d;
        }
        return v;
    }
}
