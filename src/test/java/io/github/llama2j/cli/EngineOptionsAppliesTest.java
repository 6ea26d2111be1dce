package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.util.List;

import static io.github.llama2j.cli.CliTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** An engine option the chosen engine would ignore is a usage error (exit 2), on every command that builds an engine. */
class EngineOptionsAppliesTest {

    private static void options(String... args) {
        WeightCopiesOptionTest.Holder h = new WeightCopiesOptionTest.Holder(); // (a command holding the engine options)
        new CommandLine(h).parseArgs(args);
        h.engine.toOptions(false, 1);
    }

    private static void refused(String message, String... args) {
        Llama2jException e = assertThrows(Llama2jException.class, () -> options(args), String.join(" ", args));
        assertEquals(Llama2jException.BAD_USAGE, e.exitCode());
        assertEquals(message, e.getMessage());
    }

    @Test
    void optionsOfOtherEnginesAreRefused() {
        refused("--split applies to --engine hybrid only, not cpu", "--split", "0.5");
        refused("--split applies to --engine hybrid only, not tornado", "--engine", "tornado", "--split", "0.5");
        refused("--device applies to --engine tornado or hybrid, not cpu", "--device", "0:0");
        refused("--exact applies to the cpu engine (and the hybrid's CPU share); the TornadoVM engine sums in its own order",
                "--engine", "tornado", "--exact");
    }

    @Test
    void optionsOfTheEngineAreAccepted() {
        options("--exact");
        options("--split", "auto");
        options("--engine", "hybrid", "--split", "0.5", "--device", "0:0", "--exact");
        options("--engine", "tornado", "--device", "1:0");
    }

    @Test
    void everyCommandThatBuildsAnEngineSaysSoInOneLine() {
        for (String command : List.of("run", "bench", "profile")) {
            CliTestSupport.Run r = run(command, io.github.llama2j.TestData.model("stories260K.bin").toString(), "--split", "0.5");
            assertEquals(2, r.exitCode(), command + ": " + r.err());
            assertEquals("llama2j: --split applies to --engine hybrid only, not cpu\n", r.err(), command);
        }
    }
}
