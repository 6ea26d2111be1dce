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
 * near-tie and drift rules) on every golden model whose tensors are all F32, F16, Q8_0, Q4_K or Q6_K, the device
 * (PoCL here) and the CPU each owning about half of the heads, of the hidden rows and of the classifier rows
 * ({@code --split 0.5}), so every step adds two partial sums and the CPU side's and the device's arithmetic both
 * reach the logits. llama2-tiny-q4_k_m splits on K-quant super-blocks of 256 (wo's 256 columns are one, so its
 * attention goes to one side whole; its 768 hidden rows split in thirds): it runs at three splits
 * ({@link #q4KMAtSeveralSplits}), so that each side computes attention and every third of the hidden rows in one of
 * them. The other (BF16) is refused before a device is touched, naming a tensor and its type (exit 3).
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
        return TornadoGgufGoldenTest.goldenModels(TornadoGgufGoldenTest.HYBRID_TYPES, 1, HybridGgufGoldenTest::check,
                HybridGgufGoldenTest::refused);
    }

    static void check(Map<String, Object> g, String name, Supplier<Model> load, Path golden) throws IOException {
        check(g, name, load, golden, SPLIT);
    }

    static void check(Map<String, Object> g, String name, Supplier<Model> load, Path golden, double split) throws IOException {
        try (Model model = load.get();
             InferenceEngine engine = Engines.create(model, new EngineOptions("hybrid", 1, false, null, split, false, false))) {
            assertTrue(engine.name().startsWith("hybrid:"), engine.name());
            GgufGoldenTest.Result r = GgufGoldenTest.against(g, name, engine, golden);
            System.out.printf(Locale.ROOT, "%s on %s, split %s: logits pos 0-2 max |diff| %s%n", name, engine.name(), split, r);
            assertTrue(r.failures().isEmpty(), name + ": " + r.failures());
            double tolerance = FLIP_AT_POSITIONS_0_2.contains(name) ? GgufGoldenTest.DRIFT_TOLERANCE
                    : TornadoGgufGoldenTest.LOGIT_TOLERANCE;
            assertTrue(r.worstRel() <= tolerance, name + ": logits at positions 0-2 differ by " + r.worstRel() + " of max|logit|");
        }
    }

    /**
     * llama2-tiny-q4_k_m (Q4_K, with Q6_K in layer 1's wv and w2 and the classifier) at device shares 0.25 and 0.75
     * besides {@link #everyGoldenModel}'s 0.5. On super-blocks of 256 these give the device: 0.25 no heads, the
     * first third of the hidden rows (256 of 768), a quarter of the classifier rows; 0.5 no heads, a third, half;
     * 0.75 every head, two thirds (512: layer 1's Q6_K w2 split by columns), three quarters. So each side runs the
     * attention step and a K-quant column slice of w2 in one of them, and both add partial sums in all of them.
     */
    @TestFactory
    Stream<DynamicTest> q4KMAtSeveralSplits() {
        Path golden = io.github.llama2j.TestData.gguf().resolve("golden");
        Map<String, Object> g = io.github.llama2j.Json.read(golden.resolve("llama2-tiny-q4_k_m.json"));
        Path file = golden.resolve((String) g.get("model_path")).normalize();
        return Stream.of(0.25, 0.75).map(split -> DynamicTest.dynamicTest("llama2-tiny-q4_k_m split " + split,
                () -> check(g, "llama2-tiny-q4_k_m.gguf", () -> io.github.llama2j.model.GgufModelLoader.load(file), golden, split)));
    }

    /** A model with a BF16 tensor: refused up front (exit 3), naming the type, on a device that does not exist. */
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
