package io.github.llama2j.fuzz;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/** The CLI fuzzer never runs {@code serve}, which would listen until the process ends. */
class CliFuzzServeTest {
    @Test
    void serveIsContained() {
        assertNotEquals("serve", CliFuzzTest.contain("serve"));
        assertEquals("run", CliFuzzTest.contain("run"));
        // a fuzzed command line "serve <model>" cannot reach the command
        byte[] choices = {2, (byte) 200, 5, 's', 'e', 'r', 'v', 'e', 50};
        CliFuzzTest.Input in = CliFuzzTest.decode(choices);
        assertNotEquals("serve", in.args()[0]);
        CliFuzzTest.execute(in.args(), in.stdin());
    }
}
