package io.github.llama2j.cli;

import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;

import static io.github.llama2j.cli.CliTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** run's stats line on stderr. */
class RunStatsLineTest {

    private static String model() {
        return TestData.gguf().resolve("models/llama2-tiny-q4_k_m.gguf").toString();
    }

    @Test
    void givesSpeedAndTimeToFirstToken() {
        CliTestSupport.Run r = run("run", model(), "-t", "0", "-n", "8", "-i", "Once", "--threads", "1", "--no-warmup");
        assertEquals(0, r.exitCode(), r.err());
        // "Once" is BOS and ▁Once: 2 prompt positions, then a token sampled after each of positions 1 to 7 (the last not fed)
        assertTrue(r.err().matches("(?s).*\\] 8 positions \\(2 prompt, 7 sampled\\), \\d+\\.\\d\\d tok/s after the first token,"
                + " time to first token \\d+\\.\\d ms \\(\\d+ ms after the JVM started\\).*"), r.err());
    }

    /** A prompt that fills every position asked for samples nothing: the line says so, with no negative times. */
    @Test
    void saysSoWhenNothingWasSampled() {
        CliTestSupport.Run r = run("run", model(), "-t", "0", "-n", "2", "-i", "Once upon a time", "--threads", "1", "--no-warmup");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.err().contains("2 positions (2 prompt, 0 sampled), no token sampled (-n counts the prompt's positions too)"), r.err());
        assertFalse(r.err().matches("(?s).*-\\d+(\\.\\d+)? ms.*"), r.err());
    }
}
