package io.github.llama2j.gguf;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * The hybrid engine against llama.cpp's outputs, as {@link TornadoGgufGoldenTest} checks the TornadoVM engine:
 * {@link GgufGoldenTest#against} (logits at positions 0-2, the teacher-forced greedy ids of every case with the
 * near-tie and drift rules) on every golden model whose tensors are all F32, F16 or Q8_0, the device (PoCL here)
 * and the CPU each owning about half of the heads, of the hidden rows and of the classifier rows
 * ({@code --split 0.5}), so every step adds two partial sums and the CPU side's and the device's arithmetic both
 * reach the logits. The others (BF16, Q4_0, and Q4_K_M, which the TornadoVM engine runs but the hybrid's K-quant
 * slices are not built) are refused before a device is touched, naming a tensor and its type (exit 3).
 *
 * <p>Logits at positions 0-2 within {@link TornadoGgufGoldenTest#LOGIT_TOLERANCE} of max|logit|, or within
 * {@link GgufGoldenTest#DRIFT_TOLERANCE} on the models where an activation rounds the other way there
 * ({@link #FLIP_AT_POSITIONS_0_2}; measured, see the test's output).
 */
@Tag("tornado")
class HybridGgufGoldenTest {
    /** The device's share of every kind of rows. */
    static final double SPLIT = 0.5;
    /** As {@link TornadoGgufGoldenTest#FLIP_AT_POSITIONS_0_2}: llama.cpp's own flips and llama3-tiny-f16's F16 rounding. */
    static final Set<String> FLIP_AT_POSITIONS_0_2 = TornadoGgufGoldenTest.FLIP_AT_POSITIONS_0_2;

    static EngineOptions hybrid() {
        return new EngineOptions("hybrid", 1, false, null, SPLIT, false, false);
    }

    @TestFactory
    Stream<DynamicTest> everyGoldenModel() throws IOException {
        return TornadoGgufGoldenTest.goldenModels(TornadoGgufGoldenTest.HYBRID_TYPES, 3, HybridGgufGoldenTest::check,
                HybridGgufGoldenTest::refused);
    }

    static void check(Map<String, Object> g, String name, Supplier<Model> load, Path golden) throws IOException {
        try (Model model = load.get(); InferenceEngine engine = Engines.create(model, hybrid())) {
            assertTrue(engine.name().startsWith("hybrid:"), engine.name());
            GgufGoldenTest.Result r = GgufGoldenTest.against(g, name, engine, golden);
            System.out.printf(Locale.ROOT, "%s on %s, split %s: logits pos 0-2 max |diff| %s%n", name, engine.name(), SPLIT, r);
            assertTrue(r.failures().isEmpty(), name + ": " + r.failures());
            double tolerance = FLIP_AT_POSITIONS_0_2.contains(name) ? GgufGoldenTest.DRIFT_TOLERANCE
                    : TornadoGgufGoldenTest.LOGIT_TOLERANCE;
            assertTrue(r.worstRel() <= tolerance, name + ": logits at positions 0-2 differ by " + r.worstRel() + " of max|logit|");
        }
    }

    /** A model with a BF16 or K-quant tensor: refused up front (exit 3), naming the type, on a device that does not exist. */
    static void refused(String name, Supplier<Model> load, Set<String> types) {
        try (Model model = load.get()) {
            EngineOptions noSuchDevice = new EngineOptions("hybrid", 1, false, "99:99", SPLIT, false, false);
            Llama2jException e = assertThrows(Llama2jException.class, () -> Engines.create(model, noSuchDevice).close());
            assertEquals(Llama2jException.UNAVAILABLE, e.exitCode(), e.getMessage());
            assertTrue(types.stream().anyMatch(t -> !TornadoGgufGoldenTest.HYBRID_TYPES.contains(t)
                    && e.getMessage().contains(t.toUpperCase(Locale.ROOT))), name + ": " + e.getMessage());
            assertTrue(e.getMessage().contains("(tensor "), e.getMessage());
            assertFalse(e.getMessage().contains("99:99"), "the device was looked up first: " + e.getMessage());
        }
    }

    /** stories260K.gguf (llama.cpp's arithmetic) and stories260K.bin (run.c's) decode the same greedy ids on the hybrid. */
    @Test
    void stories260KGgufDecodesAsTheCheckpoint() {
        TornadoGgufGoldenTest.decodesAsTheCheckpoint(hybrid());
    }
}
