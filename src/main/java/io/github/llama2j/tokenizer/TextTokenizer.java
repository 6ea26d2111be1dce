package io.github.llama2j.tokenizer;

/**
 * What a generator needs from a tokenizer, for llama2.c's tokenizer.bin ({@link Tokenizer}) and for the
 * vocabularies of GGUF files ({@link GgufTokenizer}).
 */
public sealed interface TextTokenizer permits Tokenizer, GgufTokenizer {

    int vocabSize();

    /**
     * Token ids of {@code text}.
     *
     * @param addSpecial   add BOS (and EOS) as the vocabulary asks (llama.cpp's {@code add_special})
     * @param parseSpecial match the text of control tokens such as {@code <|im_start|>} (llama.cpp's {@code parse_special});
     *                     without it they are tokenized as plain text
     */
    int[] tokenize(String text, boolean addSpecial, boolean parseSpecial);

    /**
     * The bytes of one token: byte tokens become their byte, byte-level BPE is mapped back to bytes, SentencePiece's
     * {@code ▁} becomes a space. With {@code special} false, control tokens give nothing.
     */
    byte[] tokenToPiece(int token, boolean special);

    /** The beginning-of-sequence id, or -1 when the vocabulary has none. */
    int bos();

    /** True for the tokens that end a generation (EOS, end-of-turn markers). */
    boolean isEndOfGeneration(int token);
}
