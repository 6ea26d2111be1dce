package io.github.llama2j.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;

/**
 * GPT-2's byte-to-unicode alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * (controls, space, 0x7F-0xA0, 0xAD) for U+0100 onwards in byte order. Byte-level BPE tokens are written in it.
 */
final class ByteUnicode {
    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + extra++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteUnicode() {
    }

    static String encode(byte[] bytes) {
        char[] chars = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            chars[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        }
        return new String(chars);
    }

    /**
     * The bytes a token's text stands for. A character outside the alphabet becomes
     * {@code [UNK_BYTE_0x<its UTF-8 in hex><text>]}, as llama.cpp's {@code llama_decode_text} writes it.
     */
    static byte[] decode(String text) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(text.length());
        text.codePoints().forEach(cp -> {
            if (cp < CHAR_TO_BYTE.length && CHAR_TO_BYTE[cp] >= 0) {
                out.write(CHAR_TO_BYTE[cp]);
            } else {
                byte[] utf8 = Character.toString(cp).getBytes(StandardCharsets.UTF_8);
                out.writeBytes(("[UNK_BYTE_0x" + HexFormat.of().formatHex(utf8) + text + "]").getBytes(StandardCharsets.UTF_8));
            }
        });
        return out.toByteArray();
    }
}
