package io.github.llama2j.fuzz;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Hostile tokenizer files found by fuzzing (TokenizerFuzzTest.anyTokenizerFile); each was a bug. */
class TokenizerFindingsTest {

    /** A third piece, "z", so that BOS (1) and EOS (2) are ids of the vocabulary. */
    private static final String Z = "00000000" + "01000000" + "7a";

    /**
     * A one-token vocabulary (max_token_length 2^25, piece " "): encode(text, bos=true) returned BOS = 1,
     * outside the vocabulary, and decoding or forwarding it failed with an index error. Found by the
     * tokenizer fuzzer after 5,116 inputs.
     */
    @Test
    void vocabularyWithoutBosAndEosIsRejected() {
        for (int size = 1; size <= 2; size++) {
            String hex = "00000002" + "00000000" + "01000000" + "20" + (size == 2 ? Z : "");
            int vocab = size;
            Llama2jException e = assertThrows(Llama2jException.class, () -> parse(hex, vocab));
            assertTrue(e.getMessage().startsWith("fuzz-tok.bin: vocabulary size " + size + " is too small"), e.getMessage());
        }
    }

    /** Pieces "a" and "ab", no " ": encode stored the failed lookup's -1 as the dummy prefix (ArrayIndexOutOfBounds). */
    @Test
    void vocabularyWithoutSpacePieceCannotEncode() {
        Tokenizer tok = parse("02000000" + "0000803f" + "01000000" + "61" + "00000000" + "02000000" + "6162" + Z, 3);
        Llama2jException e = assertThrows(Llama2jException.class, () -> tok.encode(bytes("a"), true, false));
        assertTrue(e.getMessage().contains("no \" \" piece"), e.getMessage());
        assertArrayEquals(new int[]{Tokenizer.BOS}, tok.encode(new byte[0], true, false));
    }

    /** Pieces " ", "a", "z": "b" falls back to byte token 'b' + 3 = 101, outside a 3-token vocabulary. */
    @Test
    void vocabularyWithoutByteTokensCannotEncodeUnknownBytes() {
        Tokenizer tok = parse("01000000" + "00000000" + "01000000" + "20" + "00000000" + "01000000" + "61" + Z, 3);
        assertArrayEquals(new int[]{0, 1}, tok.encode(bytes("a"), false, false));
        Llama2jException e = assertThrows(Llama2jException.class, () -> tok.encode(bytes("ab"), false, false));
        assertTrue(e.getMessage().contains("byte token of 0x62 (id 101)"), e.getMessage());
    }

    /** max_token_length 2^29: encode allocated max_token_length * 2 + 3 bytes (1 GiB) for its code-point buffer. */
    @Test
    void encodeAllocationDoesNotFollowMaxTokenLength() {
        Tokenizer tok = parse("00000020" + "00000000" + "01000000" + "20" + "00000000" + "01000000" + "61" + Z, 3);
        long before = FuzzProperties.allocated();
        tok.encode(bytes("aaaa"), true, true);
        long used = FuzzProperties.allocated() - before;
        assertTrue(used < 1 << 20, "encode allocated " + used + " bytes");
    }

    private static Tokenizer parse(String hex, int vocabSize) {
        return Tokenizer.parse("fuzz-tok.bin", HexFormat.of().parseHex(hex), vocabSize);
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
