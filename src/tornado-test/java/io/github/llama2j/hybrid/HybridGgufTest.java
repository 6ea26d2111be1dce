package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.TestData;
import io.github.llama2j.cpu.CpuEngine;
import io.github.llama2j.cpu.PreparedWeights;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.cpu.VectorKernels;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.engine.WeightCopies;
import io.github.llama2j.gguf.GgufWriter;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.GgufSynth;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hybrid engine on GGUF models (llama.cpp's arithmetic), against the CPU engine, on random-weight models
 * written by {@link GgufSynth} at shapes the golden models lack: qwen3 with q_dim (128) ≠ dim (64), qwen2's
 * biases, llama with Llama 3's rope_freqs, each as F32, F16 and Q8_0 (llama and qwen2 also as Q4_0, which the device
 * runs widened to Q8_0; qwen2 as Q4_K_M, which at this width is Q5_0 and Q8_0, Q5_0 widened at load), plus a file
 * that mixes the three.
 * <ul>
 *   <li>One CPU shard owning everything computes exactly what the CPU engine computes, bit for bit (scalar
 *       kernels on both): the host's ggml rmsnorm and activation forms, the CPU shard's biases, head norms and
 *       RoPE are the CPU engine's.</li>
 *   <li>Mixed splits (both sides own heads, hidden rows and classifier rows), the device owning everything
 *       (still the hybrid engine), and three CPU shards give the CPU engine's greedy ids, with logits within
 *       float rounding ({@link #F32_TOLERANCE}), or within the effect of one activation rounding the other
 *       way at an F16 or Q8_0 boundary (the device and the partial sums add in other orders).</li>
 *   <li>Q4_K_M files (Q4_K with Q6_K wv, w2 and classifier in the last layer) at a shape whose wo and w2 split on
 *       256-value super-blocks: the same, both sides owning part of every kind ({@link #kQuantSplitsGiveTheCpuEnginesIds}).</li>
 *   <li>Types the TornadoVM engine lacks (BF16) are refused with the tensor and type named, exit 3, before a
 *       device is opened.</li>
 * </ul>
 */
@Tag("tornado")
class HybridGgufTest {
    static final int POSITIONS = 24;
    /** |hybrid - cpu| / max|logit| on F32 models (measured on PoCL: at most 1.3e-6). */
    static final double F32_TOLERANCE = 1e-5;
    /**
     * The same with F16 matrices, where an activation may round to the other F16 neighbour in another summation
     * order (measured on PoCL: at most 5.2e-4, on llama-f16; the TornadoVM engine's 3.3e-4 on llama3-tiny-f16):
     * room for two such flips.
     */
    static final double F16_TOLERANCE = 2e-3;
    /**
     * With Q8_0 matrices, where one activation may round to the other int8 neighbour: about 1% of max|logit|
     * (llama.cpp's own flip on llama2-tiny-q8_0 is 0.96%), {@code GgufGoldenTest.DRIFT_TOLERANCE}. Measured here: at
     * most 2.0e-7 (no flip on these models).
     */
    static final double ROUNDED_TOLERANCE = 2e-2;

    static Path dir;
    static final Map<String, Model> MODELS = new LinkedHashMap<>();

    @BeforeAll
    static void writeModels() throws IOException {
        dir = Files.createTempDirectory("hybrid-gguf");
    }

    @AfterAll
    static void closeModels() throws IOException {
        MODELS.values().forEach(Model::close);
        try (var s = Files.list(dir)) {
            for (Path p : s.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    /**
     * {@code arch-type}: qwen3 (head size 32, q_dim 128 ≠ dim 64), qwen2 (biases), llama (Llama 3 rope_freqs);
     * 4 heads over 2 kv heads, hidden 96, vocab 40, 2 layers; type f32, f16, q8_0, or mixed (qkv Q8_0 but wv F16,
     * w1 F32, the rest as in a Q8_0 file).
     */
    static synchronized Model model(String name) {
        return MODELS.computeIfAbsent(name, n -> {
            String[] p = n.split("-");
            String arch = p[0];
            GgufSynth.Llama3Rope rope = arch.equals("llama") ? new GgufSynth.Llama3Rope(32, 1, 4, 8192) : null;
            GgufSynth.Shape shape = new GgufSynth.Shape(arch, 64, 96, 2, 4, 2, arch.equals("qwen3") ? 32 : 16, 40, 64,
                    arch.equals("llama") ? 500000f : 1000000f, 1e-6f, !arch.equals("llama"), rope);
            boolean mixed = p[1].equals("mixed");
            GgufSynth.FileType type = mixed ? GgufSynth.FileType.Q8_0 : GgufSynth.FileType.byName(p[1]).orElseThrow();
            GgufWriter w = new GgufWriter();
            GgufSynth synth = new GgufSynth(shape, type, 7, 0.25);   // weights large enough that attention is far from uniform
            synth.writeMetadata(w, n, null);
            if (mixed) {
                addMixed(w, synth, shape);
            } else {
                synth.addTensors(w);
            }
            Path file = dir.resolve(n + ".gguf");
            w.write(file, b -> {
            });
            return GgufModelLoader.load(file);
        });
    }

    /** A Q8_0 file whose wv is F16 and w1 F32: products of one input that cannot all be stacked. */
    private static void addMixed(GgufWriter w, GgufSynth synth, GgufSynth.Shape shape) {
        for (GgufSynth.TensorSpec t : GgufSynth.tensors(shape)) {
            io.github.llama2j.gguf.GgmlType type = t.name().endsWith("attn_v.weight") ? io.github.llama2j.gguf.GgmlType.F16
                    : t.name().endsWith("ffn_gate.weight") ? io.github.llama2j.gguf.GgmlType.F32
                    : GgufSynth.tensorType(GgufSynth.FileType.Q8_0, shape, t);
            float[] x = new float[t.rows() * t.cols()];
            for (int r = 0; r < t.rows(); r++) {
                synth.rowValues(t, r, x, r * t.cols());
            }
            byte[] bytes = new byte[(int) GgufWriter.byteSize(type, t.ne())];
            java.lang.foreign.MemorySegment seg = java.lang.foreign.MemorySegment.ofArray(bytes);
            long rowBytes = bytes.length / t.rows();
            for (int r = 0; r < t.rows(); r++) {
                GgufSynth.convert(type, x, r * t.cols(), t.cols(), seg, r * rowBytes);
            }
            w.tensor(t.name(), type, bytes, t.ne());
        }
    }

    static EngineOptions hybrid(double split, boolean exact) {
        return new EngineOptions("hybrid", 1, exact, null, split, false, false);
    }

    /**
     * One CPU shard owning everything computes what the CPU engine computes, bit for bit, with the scalar
     * reference kernels on both (chosen when the vector kernels of GGML's types summed lanes in an order that changed
     * when the JIT compiled them; since LaneSums they do not, but the scalar kernels remain the stricter reference).
     */
    @ParameterizedTest
    @ValueSource(strings = {"qwen3-q8_0", "qwen2-f16", "llama-f32", "llama-mixed", "llama-q4_0"})
    void oneCpuShardIsTheCpuEngineBitForBit(String name) {
        assertSameAsCpuEngine(name, model(name), POSITIONS);
    }

    /**
     * The same with the SIMD kernels and the vectorized exp on both sides, no load-time copies: their row sums are in
     * one order whatever the JIT has compiled (LaneSums), so the two engines in one JVM agree bit for bit.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qwen3-q8_0", "qwen2-f16", "llama-f32", "llama-mixed", "llama-q4_0"})
    void oneCpuShardIsTheCpuEngineBitForBitWithTheVectorKernels(String name) {
        Model model = model(name);
        Configuration c = model.config();
        SplitPlan all = SplitPlan.of(c, new double[]{1}, new double[]{1}, new double[]{1});
        try (InferenceEngine cpu = new CpuEngine(model, new VectorKernels(), FloatMath.vectorized(), 1, false, WeightCopies.OFF);
             HybridEngine hybrid = new HybridEngine(c, model.weights(), all, List.of((cc, w, p, i, in) ->
                     new CpuShard("cpu", cc, w, p, i, new VectorKernels(), new PreparedWeights(WeightCopies.OFF), 1, FloatMath.vectorized(), in, true)), null)) {
            HybridTestEngines.assertSameLogits(name + " (vector kernels)", cpu, hybrid, POSITIONS);
        }
    }

    static void assertSameAsCpuEngine(String name, Model model, int positions) {
        Configuration c = model.config();
        SplitPlan all = SplitPlan.of(c, new double[]{1}, new double[]{1}, new double[]{1});
        try (InferenceEngine cpu = new CpuEngine(model, new ScalarKernels(), FloatMath.standard(), 1);
             HybridEngine hybrid = new HybridEngine(c, model.weights(), all, List.of((cc, w, p, i, in) ->
                     new CpuShard("cpu", cc, w, p, i, new ScalarKernels(), new PreparedWeights(WeightCopies.OFF), 1, FloatMath.standard(), in, true)), null)) {
            HybridTestEngines.assertSameLogits(name, cpu, hybrid, positions);
        }
    }

    /** Through the engine registry, --split 0: the hybrid engine runs GGUF models (all on the CPU side here). */
    @Test
    void theRegistryBuildsTheHybridEngineForGgufModels() {
        Model model = model("qwen3-q8_0");
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, true));
             InferenceEngine hybrid = Engines.create(model, hybrid(0.0, true))) {
            assertInstanceOf(HybridEngine.class, hybrid, "--engine hybrid runs GGUF models");
            compare("qwen3-q8_0 split 0", cpu, hybrid, ROUNDED_TOLERANCE);
        }
    }

    /**
     * A Q4_K_M file where both sides can own part of every kind with K-quant column slices: dim 256, 8 heads of 64
     * over 4 kv heads (wo's 512 columns: two super-blocks, so heads split in fours), hidden 512 (two super-blocks);
     * layer 1's wv and w2 and the classifier are Q6_K (llama.cpp's rule, {@link GgufSynth#tensorType}), so layer 1's
     * q/k/v products are one per type.
     */
    static synchronized Model kQuantModel() {
        return MODELS.computeIfAbsent("llama-q4_k_m-256", n -> {
            GgufSynth.Shape shape = new GgufSynth.Shape("llama", 256, 512, 2, 8, 4, 64, 40, 64, 10000f, 1e-5f, false, null);
            GgufWriter w = new GgufSynth(shape, GgufSynth.FileType.Q4_K_M, 5, 0.25).writer(n);
            Path file = dir.resolve(n + ".gguf");
            w.write(file, b -> {
            });
            return GgufModelLoader.load(file);
        });
    }

    /**
     * The Q4_K_M model ({@link #kQuantModel}): one CPU shard is the CPU engine bit for bit; split 0.5 (both sides own
     * half the heads, one of the two super-blocks of hidden rows, half the classifier rows; also with no load-time
     * copy), the device all of it, and three CPU shards give the CPU engine's ids, logits within the effect of a Q8_K activation rounding the
     * other way ({@link #ROUNDED_TOLERANCE}).
     */
    @Test
    void kQuantSplitsGiveTheCpuEnginesIds() {
        Model model = kQuantModel();
        Configuration c = model.config();
        var w = model.weights();
        assertInstanceOf(io.github.llama2j.model.Matrix.Q4_K.class, w.wq()[1]);
        assertInstanceOf(io.github.llama2j.model.Matrix.Q6_K.class, w.wv()[1]);
        assertInstanceOf(io.github.llama2j.model.Matrix.Q6_K.class, w.w2()[1]);
        assertSameAsCpuEngine("q4_k_m", model, POSITIONS);
        // split 0.5 also with --weight-copies=off: the CPU shard's Q4_K slices then read the file's layout
        for (double split : new double[]{0.5, 1.0, -0.5}) {
            EngineOptions options = hybrid(Math.abs(split), false).withWeightCopies(split < 0 ? WeightCopies.OFF : WeightCopies.AUTO);
            split = Math.abs(split);
            try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, false));
                 HybridEngine hybrid = HybridEngineProvider.create(model, options, null, null)) {
                if (split < 1) {
                    assertArrayEqualsInts(new int[]{0, 4, 8}, hybrid.plan().heads());
                    assertArrayEqualsInts(new int[]{0, 256, 512}, hybrid.plan().ffn());
                }
                compare("q4_k_m split " + split + " " + options.weightCopies() + " " + hybrid.plan(), cpu, hybrid, ROUNDED_TOLERANCE);
            }
        }
        int grain = SplitPlan.columnGrain(c, w);
        assertEquals(256, grain);
        SplitPlan three = SplitPlan.of(c, grain, new double[]{0.5, 0.5, 0}, new double[]{0.3, 0.3, 0.4},
                new double[]{0.13, 0.6, 0.27});
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, true));
             HybridEngine hybrid = new HybridEngine(c, w, three, HybridTestEngines.threeCpuShards(), null)) {
            compare("q4_k_m three shards " + three, cpu, hybrid, ROUNDED_TOLERANCE);
        }
    }

    private static void assertArrayEqualsInts(int[] expected, int[] actual) {
        org.junit.jupiter.api.Assertions.assertArrayEquals(expected, actual, java.util.Arrays.toString(actual));
    }

    /** Both sides own part of every kind (and then the device all of it), against the CPU engine. */
    @ParameterizedTest
    @ValueSource(strings = {"qwen3-f32", "qwen3-f16", "qwen3-q8_0", "qwen2-f32", "qwen2-f16", "qwen2-q8_0", "llama-f32",
            "llama-f16", "llama-q8_0", "llama-mixed", "llama-q4_0", "qwen2-q4_0", "qwen2-q4_k_m"}) // (64 wide: Q5_0 and Q8_0)
    void splitsGiveTheCpuEnginesIds(String name) {
        Model model = model(name);
        Configuration c = model.config();
        // split 0.5 also with --weight-copies=off: the CPU shard's Q4_K slices then read the file's layout
        for (double split : new double[]{0.5, 1.0, -0.5}) {
            EngineOptions options = hybrid(Math.abs(split), false).withWeightCopies(split < 0 ? WeightCopies.OFF : WeightCopies.AUTO);
            split = Math.abs(split);
            try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, false));
                 HybridEngine hybrid = HybridEngineProvider.create(model, options, null, null)) {
                if (split < 1) {
                    for (SplitPlan.Kind k : SplitPlan.Kind.values()) {
                        assertTrue(hybrid.plan().owns(0, k) && hybrid.plan().owns(1, k), name + ": both own " + k + ": " + hybrid.plan());
                    }
                }
                compare(name + " split " + split, cpu, hybrid, name.endsWith("f32") ? F32_TOLERANCE
                        : name.endsWith("f16") ? F16_TOLERANCE : ROUNDED_TOLERANCE);
            }
        }
        if (name.startsWith("qwen3")) {
            assertNotEquals(c.dim(), c.qDim(), "qwen3's shape: q_dim is not dim");
        }
    }

    /**
     * {@code --split auto} on a GGUF model (the splits only: calibration on the first layer, the device shard built
     * once and emulating smaller shares): it chooses a plan and runs it with the CPU engine's ids.
     */
    @Test
    void autoCalibratesGgufModels() {
        Model model = model("qwen2-q8_0");
        java.io.ByteArrayOutputStream summary = new java.io.ByteArrayOutputStream();
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, false));
             HybridEngine hybrid = HybridEngineProvider.create(model, hybrid(Double.NaN, false), null,
                     new java.io.PrintStream(summary, true, java.nio.charset.StandardCharsets.UTF_8))) {
            String line = summary.toString(java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(line.contains("auto: best split") && line.contains("calibrated"), line);
            compare("qwen2-q8_0 auto " + hybrid.plan(), cpu, hybrid, ROUNDED_TOLERANCE);
        }
    }

    /**
     * The device memory a share needs ({@link DeviceBudget}, checked before anything is copied): its weights part is
     * exactly what the shard's device slices hold ({@link WeightSlices}: F16 2 bytes a value, Q8_0 repacked and Q4_0
     * widened 1 + 4/32),
     * for every row and for about half of them, and the whole budget covers it.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qwen3-q8_0", "qwen2-f16", "llama-mixed", "llama-q4_k_m-256", "llama-q4_0"})
    void deviceBudgetHoldsTheSlicesAtTheirDeviceSizes(String name) {
        Model model = name.equals("llama-q4_k_m-256") ? kQuantModel() : model(name);
        Configuration c = model.config();
        var w = model.weights();
        for (double f : new double[]{1, 0.5}) {
            SplitPlan plan = SplitPlan.twoWay(c, SplitPlan.columnGrain(c, w), f, f, f);
            int hs = c.headSize(), h1 = plan.headEnd(0), kv1 = h1 / c.kvMul(), r1 = plan.ffnEnd(0);
            long slices = WeightSlices.toDevice("cls", WeightSlices.rows(w.classifier(), 0, plan.vocabEnd(0))).bytes();
            for (int l = 0; l < c.nLayers(); l++) {
                slices += WeightSlices.toDevice("q", WeightSlices.rows(w.wq()[l], 0, h1 * hs)).bytes()
                        + WeightSlices.toDevice("k", WeightSlices.rows(w.wk()[l], 0, kv1 * hs)).bytes()
                        + WeightSlices.toDevice("v", WeightSlices.rows(w.wv()[l], 0, kv1 * hs)).bytes()
                        + WeightSlices.columnsToDevice("o", w.wo()[l], 0, h1 * hs).bytes()
                        + WeightSlices.toDevice("w1", WeightSlices.rows(w.w1()[l], 0, r1)).bytes()
                        + WeightSlices.toDevice("w3", WeightSlices.rows(w.w3()[l], 0, r1)).bytes()
                        + WeightSlices.columnsToDevice("w2", w.w2()[l], 0, r1).bytes();
            }
            assertEquals(slices, DeviceBudget.ggufWeightBytes(c, w, plan, 0), name + " " + plan);
            assertTrue(DeviceBudget.bytes(c, w, plan, 0) > slices, name + " " + plan);
        }
    }

    /** Three CPU shards, two on worker threads, split every kind (biases and head norms by rows of heads). */
    @ParameterizedTest
    @ValueSource(strings = {"qwen2-q8_0", "qwen3-f16"})
    void threeShardsGiveTheCpuEnginesIds(String name) {
        Model model = model(name);
        Configuration c = model.config();
        SplitPlan plan = SplitPlan.of(c, new double[]{0.25, 0.5, 0.25}, new double[]{0.3, 0.3, 0.4},
                new double[]{0.13, 0.6, 0.27});
        try (InferenceEngine cpu = Engines.create(model, EngineOptions.cpu(1, true));
             HybridEngine hybrid = new HybridEngine(c, model.weights(), plan, HybridTestEngines.threeCpuShards(), null)) {
            compare(name + " three shards " + plan, cpu, hybrid, ROUNDED_TOLERANCE);
        }
    }

    private static void compare(String what, InferenceEngine cpu, InferenceEngine hybrid, double tolerance) {
        double worst = HybridTestEngines.worstRelativeLogitDifference(what, cpu, hybrid, POSITIONS);
        System.out.printf(Locale.ROOT, "%s: max |hybrid - cpu| / max|logit| %.3g%n", what, worst);
        assertTrue(worst <= tolerance, what + ": relative logit difference " + worst);
    }

    /**
     * BF16, Q5_K_M, Q3_K_M, Q2_K, IQ4_NL and IQ4_XS files (types the TornadoVM engine lacks too; a Q5_K_M file's first matrix, the embedding,
     * is Q5_K, a Q3_K_M file's Q3_K, a Q2_K file's Q2_K, an IQ4_NL (IQ4_XS) file's IQ4_NL (IQ4_XS); a 96-wide Q5_K_M one's are Q5_1): exit 3 naming a tensor and its type, before any device is opened, pointing at the
     * CPU engine only.
     */
    @ParameterizedTest
    @ValueSource(strings = {"bf16", "q5_k_m", "q5_k_m 96 wide", "q3_k_m", "q2_k", "iq4_nl", "iq4_xs"})
    void typesTheDeviceLacksAreRefusedBeforeADeviceIsOpened(String what) throws IOException {
        // 96 wide: rows that are no K-quant rows, so Q5_1 (its embedding Q8_0, which the devices run: the first refused
        // tensor is blk.0.attn_q.weight)
        boolean narrow = what.endsWith("96 wide");
        String type = what.split(" ")[0];
        GgufSynth.Shape shape = narrow ? new GgufSynth.Shape("qwen2", 96, 160, 1, 4, 2, 24, 40, 64, 10000f, 1e-6f, true, null)
                : new GgufSynth.Shape("llama", 256, 256, 1, 4, 2, 64, 40, 64, 10000f, 1e-5f, false, null);
        GgufWriter w = new GgufSynth(shape, GgufSynth.FileType.byName(type).orElseThrow(), 3, 0.05).writer(type);
        Path file = dir.resolve("refused-" + what.replace(' ', '-') + ".gguf");
        w.write(file, b -> {
        });
        try (Model model = GgufModelLoader.load(file)) {
            // a device that does not exist: opening it would fail with another message
            EngineOptions options = new EngineOptions("hybrid", 1, false, "99:99", 0.5, false, false);
            Llama2jException e = assertThrows(Llama2jException.class, () -> Engines.create(model, options).close());
            assertEquals(Llama2jException.UNAVAILABLE, e.exitCode(), e.getMessage());
            String ggml = narrow ? "Q5_1" : type.equals("q5_k_m") ? "Q5_K" : type.equals("q3_k_m") ? "Q3_K" : type.equals("q2_k") ? "Q2_K" : type.toUpperCase(Locale.ROOT);
            assertTrue(e.getMessage().contains("tensor type " + ggml + " (tensor "), e.getMessage());
            if (narrow) {
                assertTrue(e.getMessage().contains("(tensor blk.0.attn_q.weight;"), e.getMessage());
            }
            assertTrue(e.getMessage().startsWith("the hybrid engine does not support"), e.getMessage());
            assertTrue(e.getMessage().contains("Q4_0, Q5_0, Q4_K and Q6_K") && e.getMessage().contains("--engine cpu")
                    && !e.getMessage().contains("--engine tornado"), e.getMessage());
            assertTrue(e.getMessage().contains("(tensor "), e.getMessage());
        }
    }

    /** The stored qwen golden models (biases; head norms): one CPU shard is the CPU engine there too. */
    @ParameterizedTest
    @ValueSource(strings = {"qwen3-tiny-q8_0.gguf", "qwen2-tiny-q8_0.gguf"})
    void storedGoldenModelsOneCpuShardIsTheCpuEngine(String file) {
        try (Model model = GgufModelLoader.load(TestData.gguf().resolve("models").resolve(file))) {
            assertSameAsCpuEngine(file, model, 6);
        }
    }
}
