package io.github.llama2j.serve;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Utf8Text} and {@link StopStrings} against one-shot references on random inputs. */
class TextPiecesTest {

    @Test
    void utf8PiecesDecodeLikeTheWholeBytes() {
        Random rnd = new Random(1);
        String[] alphabet = {"a", " ", "é", "€", "😀", "\n"};
        for (int trial = 0; trial < 2000; trial++) {
            // valid text with some raw bytes mixed in (lone continuation bytes, truncated sequences)
            java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
            int parts = rnd.nextInt(12);
            for (int i = 0; i < parts; i++) {
                if (rnd.nextInt(5) == 0) {
                    all.write(0x80 + rnd.nextInt(0x80));
                } else {
                    all.writeBytes(alphabet[rnd.nextInt(alphabet.length)].getBytes(StandardCharsets.UTF_8));
                }
            }
            byte[] bytes = all.toByteArray();
            Utf8Text text = new Utf8Text();
            StringBuilder out = new StringBuilder();
            int at = 0;
            while (at < bytes.length) {
                int n = Math.min(bytes.length - at, 1 + rnd.nextInt(4));
                out.append(text.push(java.util.Arrays.copyOfRange(bytes, at, at + n)));
                at += n;
            }
            out.append(text.finish());
            assertEquals(new String(bytes, StandardCharsets.UTF_8), out.toString(), () -> java.util.Arrays.toString(bytes));
        }
    }

    /** The reference: the text cut before the first occurrence of any stop string, or null if none occurs. */
    static String cut(String text, List<String> stops) {
        int first = -1;
        for (String s : stops) {
            int i = text.indexOf(s);
            if (i >= 0 && (first < 0 || i < first)) {
                first = i;
            }
        }
        return first < 0 ? null : text.substring(0, first);
    }

    /**
     * Generation stops at the first piece after which the text so far holds a stop string; the answer is
     * that text cut before the earliest occurrence. Text arriving in pieces must give exactly that.
     */
    @Test
    void stopStringsCutWhereTheTextSoFarWouldBeCut() {
        Random rnd = new Random(2);
        for (int trial = 0; trial < 5000; trial++) {
            String text = randomString(rnd, rnd.nextInt(30));
            List<String> stops = new ArrayList<>();
            int n = 1 + rnd.nextInt(3);
            for (int i = 0; i < n; i++) {
                stops.add(randomString(rnd, 1 + rnd.nextInt(3)));
            }
            StopStrings s = new StopStrings(stops);
            StringBuilder out = new StringBuilder();
            String expected = null;
            int at = 0;
            while (at < text.length() && !s.stopped()) {
                int k = Math.min(text.length() - at, 1 + rnd.nextInt(4));
                out.append(s.push(text.substring(at, at + k)));
                at += k;
                if (expected == null) {
                    expected = cut(text.substring(0, at), stops);
                    assertEquals(expected != null, s.stopped(), "stopped? '" + text.substring(0, at) + "' " + stops);
                }
            }
            out.append(s.finish());
            assertEquals(expected == null ? text : expected, out.toString(), "text '" + text + "' stops " + stops);
        }
    }

    @Test
    void stopStringsHoldOnlyPossibleBeginnings() {
        StopStrings s = new StopStrings(List.of("END"));
        assertEquals("The ", s.push("The E"));   // "E" may begin END: held
        assertEquals("En", s.push("n"));          // "En" is not END's beginning (case): passed on
        assertEquals("d. ", s.push("d. EN"));
        assertEquals("", s.push("D and more"));
        assertTrue(s.stopped());
        assertEquals("", s.finish());
        StopStrings t = new StopStrings(List.of("xyz"));
        assertEquals("", t.push("xy"));
        assertEquals("xy", t.finish());
        assertFalse(t.stopped());
        assertThrows(IllegalArgumentException.class, () -> new StopStrings(List.of("")));
    }

    private static String randomString(Random rnd, int length) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < length; i++) {
            b.append("ab€😀".codePoints().mapToObj(Character::toString).toList().get(rnd.nextInt(4)));
        }
        return b.toString();
    }
}
