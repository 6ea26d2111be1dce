package io.github.llama2j.generate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link InputWaits}: a read's time moves the start (before the first token) or the end (after it), and only that. */
class InputWaitsTest {
    private static String slowly() {
        try {
            Thread.sleep(50);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
        return "line";
    }

    @Test
    void readsBeforeTheFirstTokenMoveTheStartAndAfterItTheEnd() {
        InputWaits w = new InputWaits();
        assertEquals(1000, w.start(1000));
        assertEquals(1000, w.end(1000));
        assertEquals("line", w.read(InputWaitsTest::slowly, false));
        long moved = w.start(0);
        assertTrue(moved >= 50_000_000L, "start moved by the wait: " + moved);
        assertEquals(1000, w.end(1000), "the end is untouched by a wait before the first token");
        w.read(InputWaitsTest::slowly, true);
        w.read(InputWaitsTest::slowly, true);
        assertTrue(-w.end(0) >= 100_000_000L, "the end less both waits after the first token: " + w.end(0));
        assertEquals(moved, w.start(0), "the start is untouched by waits after the first token");
    }
}
