package io.github.llama2j.hybrid;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the hybrid engine guarantees bit for bit: with the whole model on the CPU side it computes exactly
 * what the CPU engine computes, in --exact mode and in the default mode (same kernels, same operation order, the
 * norms and residuals on the host), float32 and Q8. And the N-way design: three shards (here
 * all CPU, two of them on worker threads) split every kind of rows and still give the CPU engine's tokens.
 */
@Tag("tornado")
class HybridExactnessTest {
    static final int POSITIONS = 32;

    /**
     * Both modes: --exact (run.c's order) and the default mode, whose SIMD kernels sum each row's lanes in one fixed
     * order whatever the JIT has compiled (LaneSums), so two engines in one JVM agree to the last bit there too.
     */
    @ParameterizedTest
    @ValueSource(strings = {"tiny.bin", "tiny_q80.bin", "tiny_unshared.bin", "tiny_unshared_q80.bin", "stories260K.bin"})
    void allCpuSplitIsTheCpuEngineBitForBit(String file) {
        Model model = HybridTestEngines.model(file);
        for (boolean exact : new boolean[] {true, false}) {
            EngineOptions hybridOptions = new EngineOptions("hybrid", 1, exact, null, 0.0, false, false);
            try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, exact));
                 InferenceEngine hybrid = Engines.create(model, hybridOptions)) {
                assertInstanceOf(HybridEngine.class, hybrid, "--engine hybrid through the ServiceLoader");
                HybridTestEngines.assertSameLogits(file + (exact ? " --exact" : " default mode"), cpu, hybrid, POSITIONS);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny.bin", "tiny_q80.bin"})
    void threeShardsGiveTheCpuEnginesTokens(String file) {
        Model model = HybridTestEngines.model(file);
        var c = model.config();
        // Shard 0 on a worker, shard 1 on the calling thread, shard 2 on another worker; uneven, odd shares.
        SplitPlan plan = SplitPlan.of(c, new double[]{0.25, 0.5, 0.25}, new double[]{0.3, 0.3, 0.4},
                new double[]{0.13, 0.6, 0.27});
        for (int i = 0; i < 3; i++) {
            for (SplitPlan.Kind k : SplitPlan.Kind.values()) {
                assertTrue(plan.owns(i, k), "shard " + i + " owns some " + k + ": " + plan);
            }
        }
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, true));
             HybridEngine hybrid = new HybridEngine(c, model.weights(), plan, HybridTestEngines.threeCpuShards(), null)) {
            assertEquals("hybrid:cpu-a+cpu-b+cpu-c", hybrid.name());
            double worst = HybridTestEngines.worstRelativeLogitDifference(file, cpu, hybrid, POSITIONS);
            // Q8: a last-bit change in a partial sum can flip one activation's int8 rounding downstream.
            double tolerance = c.quantized() ? 2e-2 : 1e-4;
            assertTrue(worst <= tolerance, file + ": relative logit difference " + worst + " above " + tolerance);
        }
    }

    @Test
    void splitOutsideZeroToOneIsAUsageError() {
        Model model = HybridTestEngines.model("tiny.bin");
        var e = org.junit.jupiter.api.Assertions.assertThrows(io.github.llama2j.Llama2jException.class,
                () -> HybridEngineProvider.create(model, HybridTestEngines.options(1.5, false), null, null));
        assertEquals(io.github.llama2j.Llama2jException.BAD_USAGE, e.exitCode());
    }
}
