package io.github.llama2j.tornado;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import io.github.llama2j.sampling.Sampler;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The TornadoVM forward pass against the CPU engine's (run.c-exact mode), position by position. */
@Tag("tornado")
class ForwardVsCpuTest {

    @ParameterizedTest
    @ValueSource(strings = {"tiny.bin", "tiny_q80.bin", "stories260K.bin", "tiny_unshared.bin", "tiny_unshared_q80.bin", "vocab32k.bin"})
    void logitsMatchTheCpuEngine(String file) {
        Model model = TestEngines.model(file);
        TornadoEngine gpu = TestEngines.engine(file);
        int positions = 24;
        double worst = 0, worstRel = 0;
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, true))) {
            int token = 1;
            for (int pos = 0; pos < positions; pos++) {
                float[] expected = cpu.forward(token, pos).clone();
                float[] actual = gpu.forward(token, pos);
                double maxAbs = 0, diff = 0;
                for (int i = 0; i < expected.length; i++) {
                    maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
                    diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
                }
                worst = Math.max(worst, diff);
                worstRel = Math.max(worstRel, diff / maxAbs);
                assertEquals(Sampler.argmax(expected, expected.length), Sampler.argmax(actual, actual.length),
                        "argmax at position " + pos);
                token = Sampler.argmax(expected, expected.length);
            }
        }
        System.out.printf(Locale.ROOT, "%s: max |tornado - cpu| over %d positions = %.3g (%.3g of max |logit|)%n",
                file, positions, worst, worstRel);
        double tolerance = model.config().quantized() ? 2e-2 : 1e-4;
        assertTrue(worstRel <= tolerance, file + ": relative logit difference " + worstRel + " above " + tolerance);
    }
}
