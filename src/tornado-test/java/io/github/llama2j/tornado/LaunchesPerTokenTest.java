package io.github.llama2j.tornado;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 10's launch budget: at most 5 kernel launches per layer plus 3 per token, for float32 and Q8_0 llama2.c
 * checkpoints and for GGUF models (F32, Q8_0 and Q4_K_M, whose Q4_K and Q6_K matrices mix within a layer, here;
 * every golden GGUF model, F16 included, in
 * {@code TornadoGgufGoldenTest}), read from what the engine reports ({@code launchesPerToken()}, the figure of
 * {@code --verbose}, {@code profile} and {@code bench --json}). The engine builds exactly 5 per layer and 2 per
 * token where a GGUF layer's wq/wk/wv and w1/w3 share a type, as in all of these models; no task normalises or
 * quantizes on its own.
 */
@Tag("tornado")
class LaunchesPerTokenTest {

    @ParameterizedTest
    @ValueSource(strings = {"tiny.bin", "tiny_q80.bin", "stories260K.bin", "stories260K.gguf", "gguf:qwen3-tiny-q8_0.gguf",
            "gguf:llama2-tiny-q4_k_m.gguf"})
    void atMostFivePerLayerAndThreePerToken(String file) {
        String path = file.startsWith("gguf:")
                ? io.github.llama2j.TestData.gguf().resolve("models").resolve(file.substring(5)).toString() : file;
        TornadoEngine e = TestEngines.engine(path);
        int layers = e.config().nLayers();
        int launches = e.launchesPerToken();
        assertTrue(launches <= 5 * layers + 3, file + ": " + launches + " launches per token for " + layers + " layers");
        assertEquals(5 * layers + 2, launches, file + ": qkv, attention, wo, w13, w2 per layer; embed and classifier");
        List<String> ids = e.taskIds();
        assertEquals(launches, ids.size(), file);
        assertTrue(ids.stream().noneMatch(id -> id.contains("norm") || id.contains("quant") || id.contains("prep")),
                file + ": no task only normalises, quantizes or prepares an input: " + ids);
    }

    /** The split attention (partials written by {@code attention}, combined by {@code wo}) keeps the same launches and names. */
    @ParameterizedTest
    @ValueSource(strings = {"tiny_q80.bin", "stories260K.bin"})
    void splitAttentionKeepsFivePerLayer(String file) {
        TornadoEngine split = TestEngines.splitEngine(file);
        assertEquals(4, split.attentionSplits(), file);
        assertEquals(5 * split.config().nLayers() + 2, split.launchesPerToken(), file);
        assertEquals(TestEngines.engine(file).taskIds(), split.taskIds(), file + ": the same task ids as unsplit");
    }
}
