package io.github.llama2j.hybrid;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import io.github.llama2j.sampling.Sampler;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The hybrid forward pass against the CPU engine's (run.c-exact mode), position by position. */
@Tag("tornado")
class HybridVsCpuTest {

    @Test
    void smoke() {
        check("tiny.bin", 0.5, 0.5, 0.5, 16);
        check("tiny.bin", 0.25, 0.6, 0.7, 16);
        check("tiny_q80.bin", 0.75, 0.3, 0.2, 16);
    }

    static void check(String file, double a, double f, double k, int positions) {
        Model model = HybridTestEngines.model(file);
        long t0 = System.nanoTime();
        HybridEngine hybrid = HybridTestEngines.engine(file, a, f, k);
        long t1 = System.nanoTime();
        double worstRel = 0;
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, true))) {
            int token = 1;
            for (int pos = 0; pos < positions; pos++) {
                float[] expected = cpu.forward(token, pos).clone();
                float[] actual = hybrid.forward(token, pos);
                double maxAbs = 0, diff = 0;
                for (int i = 0; i < expected.length; i++) {
                    maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
                    diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
                }
                worstRel = Math.max(worstRel, diff / maxAbs);
                assertEquals(Sampler.argmax(expected, expected.length), Sampler.argmax(actual, actual.length), "argmax at " + pos);
                token = Sampler.argmax(expected, expected.length);
            }
        }
        System.out.printf(Locale.ROOT, "%s %s: build %.1f s, max rel diff %.3g; %s%n", file, hybrid.plan(), (t1 - t0) / 1e9,
                worstRel, hybrid.stats().report());
        assertTrue(worstRel <= (model.config().quantized() ? 2e-2 : 1e-4), "relative difference " + worstRel);
    }
}
