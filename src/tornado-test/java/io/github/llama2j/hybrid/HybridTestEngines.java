package io.github.llama2j.hybrid;

import io.github.llama2j.TestData;
import io.github.llama2j.cpu.PreparedWeights;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.engine.WeightCopies;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.sampling.Sampler;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Test models and hybrid engines shared by every test class of the test JVM: building a hybrid engine
 * JIT-compiles its device kernels (PoCL: about half a second each), so each (model, split) is built once.
 * The device is TornadoVM's default (PoCL's CPU device here); the host side uses 1 thread.
 *
 * <p>{@link #SPLITS}: for each test model, the device's fraction of attention heads, FFN rows and classifier
 * rows. Together they cover every kind of split on float32 and Q8_0, grouped-query and multi-head models:
 * all-CPU (0), small, half, large, all-device (1), and fractions that round to no nice boundary (0.37,
 * 0.61, 0.13, 0.29, 0.83, ...), plus the Q8 model whose group (32) spans two heads (16).
 */
final class HybridTestEngines {
    /** A model and the device's fraction of each kind of rows. */
    record Split(String file, double attention, double ffn, double classifier) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%s device fractions att %.2f ffn %.2f cls %.2f", file, attention, ffn, classifier);
        }
    }

    static final List<Split> SPLITS = List.of(
            new Split("tiny.bin", 0.25, 0.61, 1),               // f32, GQA (kvMul 2): small heads, odd rows, classifier all device
            new Split("tiny_q80.bin", 0.75, 0.37, 0.13),        // Q8 (group 4), GQA: large heads, odd rows on groups, odd vocab
            new Split("tiny_unshared.bin", 1, 0.43, 0),         // f32, multi-head, unshared classifier: heads all device, classifier all CPU
            new Split("stories260K.bin", 0.5, 0.83, 0.29),      // f32, GQA, real weights: half the heads, odd rows
            new Split("tiny_unshared_q80.bin", 0.37, 1, 1));    // Q8 group 32 over heads of 16: heads in pairs; ffn, classifier all device

    private static final Map<String, Model> MODELS = new LinkedHashMap<>();
    private static final Map<String, HybridEngine> ENGINES = new LinkedHashMap<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(HybridTestEngines::closeAll));
    }

    private HybridTestEngines() {
    }

    static synchronized Model model(String file) {
        return MODELS.computeIfAbsent(file, f -> ModelLoader.load(TestData.model(f)));
    }

    static EngineOptions options(double split, boolean exact) {
        return new EngineOptions("hybrid", 1, exact, null, split, false, false);
    }

    /** The shared engine for a split (default, non-exact CPU kernels on the host side). */
    static synchronized HybridEngine engine(Split s) {
        String key = s.toString();
        HybridEngine e = ENGINES.get(key);
        if (e == null) {
            e = HybridEngineProvider.create(model(s.file()), options(Double.NaN, false), null, null, s.attention(), s.ffn(),
                    s.classifier());
            ENGINES.put(key, e);
        }
        e.reset();
        return e;
    }

    /** The all-CPU engine of a model (no device work; the device is still opened). */
    static Split allCpu(String file) {
        return new Split(file, 0, 0, 0);
    }

    /**
     * Three CPU shards (the CPU engine's run.c-exact kernels, 1 thread each): the first and the last on worker
     * threads, the second on the calling thread.
     */
    static List<HybridEngine.ShardFactory> threeCpuShards() {
        return List.of(
                (cc, w, p, i, in) -> new CpuShard("cpu-a", cc, w, p, i, Engines.cpuKernels(true), new PreparedWeights(WeightCopies.AUTO), 1, FloatMath.standard(), in, false),
                (cc, w, p, i, in) -> new CpuShard("cpu-b", cc, w, p, i, Engines.cpuKernels(true), new PreparedWeights(WeightCopies.AUTO), 1, FloatMath.standard(), in, true),
                (cc, w, p, i, in) -> new CpuShard("cpu-c", cc, w, p, i, Engines.cpuKernels(true), new PreparedWeights(WeightCopies.AUTO), 1, FloatMath.standard(), in, false));
    }

    /** Runs both engines greedily from token 1 for {@code positions} positions and asserts the same logits, bit for bit. */
    static void assertSameLogits(String what, InferenceEngine expectedEngine, InferenceEngine actualEngine, int positions) {
        int token = 1;
        for (int pos = 0; pos < positions; pos++) {
            float[] expected = expectedEngine.forward(token, pos).clone();
            assertArrayEquals(expected, actualEngine.forward(token, pos), what + ": logits at position " + pos);
            token = Sampler.argmax(expected, expected.length);
        }
    }

    /**
     * Runs both engines greedily from token 1 for {@code positions} positions (the expected engine's argmax is
     * the next token), asserts the same argmax at every position, and returns the worst
     * max|expected - actual| / max|expected| over the positions.
     */
    static double worstRelativeLogitDifference(String what, InferenceEngine expectedEngine, InferenceEngine actualEngine,
                                               int positions) {
        int token = 1;
        double worst = 0;
        for (int pos = 0; pos < positions; pos++) {
            float[] expected = expectedEngine.forward(token, pos).clone();
            float[] actual = actualEngine.forward(token, pos);
            double maxAbs = 0, diff = 0;
            for (int i = 0; i < expected.length; i++) {
                maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
                diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
            }
            worst = Math.max(worst, diff / maxAbs);
            assertEquals(Sampler.argmax(expected, expected.length), Sampler.argmax(actual, actual.length),
                    what + ": argmax at position " + pos);
            token = Sampler.argmax(expected, expected.length);
        }
        return worst;
    }

    private static synchronized void closeAll() {
        ENGINES.values().forEach(HybridEngine::close);
        MODELS.values().forEach(Model::close);
    }
}
