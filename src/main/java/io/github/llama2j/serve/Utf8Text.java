package io.github.llama2j.serve;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Token pieces to text as they come: a piece may end inside a UTF-8 sequence (byte tokens), so
 * incomplete bytes wait for the next piece. Malformed bytes become U+FFFD, so the text is the same as
 * decoding all the bytes at once ({@code new String(bytes, UTF_8)}).
 */
final class Utf8Text {
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPLACE)
            .onUnmappableCharacter(CodingErrorAction.REPLACE);
    private byte[] pending = new byte[0]; // the start of an incomplete sequence, at most 3 bytes

    /** The text that {@code bytes} complete. */
    String push(byte[] bytes) {
        if (bytes.length == 0) {
            return "";
        }
        ByteBuffer in = ByteBuffer.allocate(pending.length + bytes.length).put(pending).put(bytes).flip();
        CharBuffer out = CharBuffer.allocate(in.remaining() + 1);
        decoder.decode(in, out, false);
        pending = new byte[in.remaining()];
        in.get(pending);
        return out.flip().toString();
    }

    /** The rest at the end: an incomplete sequence becomes U+FFFD. */
    String finish() {
        ByteBuffer in = ByteBuffer.wrap(pending);
        CharBuffer out = CharBuffer.allocate(pending.length + 2);
        decoder.decode(in, out, true);
        decoder.flush(out);
        pending = new byte[0];
        decoder.reset();
        return out.flip().toString();
    }
}
