package io.github.llama2j.cli;

import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static io.github.llama2j.cli.CliTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A prompt longer than the context names the limit that applies: llama2j's default cap, or the model's own context. */
class GgufContextMessageTest {
    @TempDir
    Path tmp;

    private Path synth(String name, int context) {
        Path out = tmp.resolve(name);
        CliTestSupport.Run r = run("synth", out.toString(), "--format", "gguf", "--dim", "32", "--hidden-dim", "64", "--layers", "1",
                "--heads", "2", "--type", "f32", "--seq-len", String.valueOf(context),
                "--vocab", TestData.gguf().resolve("vocab/ggml-vocab-llama-spm.gguf").toString());
        assertEquals(0, r.exitCode(), r.err());
        return out;
    }

    @Test
    void theCapIsNamedAsLlama2jsWithWhatTheModelAllows() {
        String prompt = " a".repeat(5000); // far more than 4096 tokens
        CliTestSupport.Run r = run("run", synth("long.gguf", 131072).toString(), "-i", prompt, "-n", "10", "--threads", "1");
        assertEquals(2, r.exitCode(), r.err());
        assertTrue(r.errLines().matches("llama2j: prompt is \\d+ tokens, longer than llama2j's context limit 4096"
                + " \\(the model allows 131072\\)"), r.errLines());
        r = run("run", synth("short.gguf", 64).toString(), "-i", prompt, "-n", "10", "--threads", "1");
        assertEquals(2, r.exitCode(), r.err());
        assertTrue(r.errLines().matches("llama2j: prompt is \\d+ tokens, longer than the model's context 64"), r.errLines());
    }
}
