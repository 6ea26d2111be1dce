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

    /** Pieces "a" and "ab", no " ": encode stored the failed lookup's -1 as the dummy prefix (ArrayIndexOutOfBounds). */
    @Test
    void vocabularyWithoutSpacePieceCannotEncode() {
        Tokenizer tok = parse("02000000" + "0000803f" + "01000000" + "61" + "00000000" + "02000000" + "6162", 2);
        Llama2jException e = assertThrows(Llama2jException.class, () -> tok.encode(bytes("a"), true, false));
        assertTrue(e.getMessage().contains("no \" \" piece"), e.getMessage());
        assertArrayEquals(new int[]{Tokenizer.BOS}, tok.encode(new byte[0], true, false));
    }

    /** Pieces " " and "a": "b" falls back to byte token 'b' + 3 = 101, outside a 2-token vocabulary. */
    @Test
    void vocabularyWithoutByteTokensCannotEncodeUnknownBytes() {
        Tokenizer tok = parse("01000000" + "00000000" + "01000000" + "20" + "00000000" + "01000000" + "61", 2);
        assertArrayEquals(new int[]{0, 1}, tok.encode(bytes("a"), false, false));
        Llama2jException e = assertThrows(Llama2jException.class, () -> tok.encode(bytes("ab"), false, false));
        assertTrue(e.getMessage().contains("byte token of 0x62 (id 101)"), e.getMessage());
    }

    /** max_token_length 2^29: encode allocated max_token_length * 2 + 3 bytes (1 GiB) for its code-point buffer. */
    @Test
    void encodeAllocationDoesNotFollowMaxTokenLength() {
        Tokenizer tok = parse("00000020" + "00000000" + "01000000" + "20" + "00000000" + "01000000" + "61", 2);
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
