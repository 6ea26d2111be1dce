package io.github.llama2j.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Small vocabularies built by hand, for tests that must not need the shared files. */
public final class HandMadeVocab {
    private HandMadeVocab() {
    }

    /**
     * SentencePiece: 0 {@code <unk>}, 1 {@code <s>}, 2 {@code </s>}, 3..258 the byte tokens, then {@code extra}
     * normal tokens with scores that favour longer ones, then the control tokens {@code <|im_start|>} and
     * {@code <|im_end|>}, and the user-defined token {@code <user>}.
     */
    public static GgufTokenizer spm(String... extra) {
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        List<Integer> types = new ArrayList<>(List.of(VocabData.TYPE_UNKNOWN, VocabData.TYPE_CONTROL, VocabData.TYPE_CONTROL));
        for (int b = 0; b < 256; b++) {
            tokens.add(String.format(Locale.ROOT, "<0x%02X>", b));
            types.add(VocabData.TYPE_BYTE);
        }
        for (String e : extra) {
            tokens.add(e);
            types.add(VocabData.TYPE_NORMAL);
        }
        tokens.addAll(List.of("<|im_start|>", "<|im_end|>", "<user>"));
        types.addAll(List.of(VocabData.TYPE_CONTROL, VocabData.TYPE_CONTROL, VocabData.TYPE_USER_DEFINED));
        float[] scores = new float[tokens.size()];
        for (int i = 0; i < scores.length; i++) {
            scores[i] = tokens.get(i).codePointCount(0, tokens.get(i).length()) - i * 1e-3f; // longer first; then lower id
        }
        return new GgufTokenizer(new VocabData("hand-made-spm", "llama", "default", tokens.toArray(String[]::new), scores,
                types.stream().mapToInt(Integer::intValue).toArray(), null, 1L, 2L, null, null, 0L, null, true, false,
                null, "hand-made"));
    }

    /** Byte-level BPE with GPT-2's byte alphabet (256 tokens), the given merges (their results added as tokens) and control tokens. */
    public static GgufTokenizer bpe(String pre, String... merges) {
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            tokens.add(ByteUnicode.encode(new byte[]{(byte) b}));
        }
        for (String m : merges) {
            tokens.add(m.replace(" ", ""));
        }
        tokens.addAll(List.of("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"));
        int[] types = new int[tokens.size()];
        java.util.Arrays.fill(types, VocabData.TYPE_NORMAL);
        for (int i = types.length - 3; i < types.length; i++) {
            types[i] = VocabData.TYPE_CONTROL;
        }
        int bos = tokens.size() - 3;
        return new GgufTokenizer(new VocabData("hand-made-bpe", "gpt2", pre, tokens.toArray(String[]::new), null, types,
                merges, (long) bos, (long) bos + 1, null, null, null, null, null, null, null, "hand-made"));
    }
}
