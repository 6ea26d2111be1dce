package io.github.llama2j.hybrid;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hybrid forward pass against the CPU engine's (run.c-exact mode), position by position, at every
 * split of {@link HybridTestEngines#SPLITS}: same argmax everywhere, logits within float rounding
 * (float32: the partial sums and the device's tree reductions reorder additions; Q8: the same for the
 * per-group float accumulation, the int8 dots and the quantization being exact). Also checks that each
 * side really computed its share (a split that silently ran everything on one side would pass the rest).
 */
@Tag("tornado")
class HybridVsCpuTest {
    static final int POSITIONS = 24;

    @ParameterizedTest
    @FieldSource("io.github.llama2j.hybrid.HybridTestEngines#SPLITS")
    void logitsMatchTheCpuEngine(HybridTestEngines.Split split) {
        Model model = HybridTestEngines.model(split.file());
        HybridEngine hybrid = HybridTestEngines.engine(split);
        hybrid.stats().reset();
        double worstRel;
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, true))) {
            worstRel = HybridTestEngines.worstRelativeLogitDifference(split.toString(), cpu, hybrid, POSITIONS);
        }
        System.out.printf(Locale.ROOT, "%s (%s): max |hybrid - cpu| / max |logit| over %d positions = %.3g%n", split,
                hybrid.plan(), POSITIONS, worstRel);
        double tolerance = model.config().quantized() ? 2e-2 : 1e-4;
        assertTrue(worstRel <= tolerance, split + ": relative logit difference " + worstRel + " above " + tolerance);
        String report = hybrid.stats().report();
        boolean deviceWorks = split.attention() > 0 || split.ffn() > 0 || split.classifier() > 0;
        boolean cpuWorks = split.attention() < 1 || split.ffn() < 1 || split.classifier() < 1;
        assertEquals(deviceWorks, report.contains("opencl:"), () -> "device share in\n" + report);
        assertEquals(cpuWorks, report.contains("cpu "), () -> "cpu share in\n" + report);
    }
}
