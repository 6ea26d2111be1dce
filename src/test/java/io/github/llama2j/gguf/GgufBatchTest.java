package io.github.llama2j.gguf;

import io.github.llama2j.TestData;
import io.github.llama2j.cpu.BatchForwardTest;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * Batched prefill on GGUF models against the same engine fed one token at a time: the architecture steps
 * (qwen2's biases, qwen3's q/k norms and wider q, Llama 3's rope factors, NORM and NEOX RoPE, GQA) on tiny
 * random F32 models, and every stored quantized model (Q8_0, Q4_0, Q4_K with Q6_K). Prompts longer than a
 * chunk (64) and not a multiple of it, then generation token by token (every cached position is read).
 * Quantized weights other than Q8_0 and Q4_0: bit-identical once the kernels are compiled (each token's activations
 * converted as the one-token path does, the same kernels); Q8_0 and Q4_0: within {@link #Q8_ACTIVATIONS_TOLERANCE}; F32 weights: within
 * {@link BatchForwardTest#F32_TOLERANCE} of max|logit| (another summation order).
 */
class GgufBatchTest {
    /**
     * |batched - one by one| / max|logit| allowed where a model has Q8_0 or Q4_0 matrices: the batched kernel adds each
     * block's (dot · d_w) · d_x in runq's order, as the one-token Q8_0 kernel on the load-time copy does, but Q4_0 and
     * the Q8_0 matrices without a copy take the file layout's kernels (partial integer sums per lane); a difference of
     * one rounding in a layer's output can move one of the next layer's Q8_0 activations by a step, so this is the
     * golden tests' drift bound ({@link GgufGoldenTest#DRIFT_TOLERANCE}). Measured (2026-12-04): 0 on llama3-tiny-q8_0,
     * 9.8e-3 on qwen2-tiny-q8_0, 9.0e-3 on qwen3-tiny-q8_0, 1.44e-2 on llama2-tiny-q4_0.
     */
    static final double Q8_ACTIVATIONS_TOLERANCE = GgufGoldenTest.DRIFT_TOLERANCE;

    @ParameterizedTest
    @ValueSource(strings = {"llama", "qwen2", "qwen3"})
    void tinyArchitectures(String arch) {
        TinyGguf t = switch (arch) {
            case "llama" -> TinyGguf.llama();
            case "qwen2" -> TinyGguf.qwen2();
            default -> TinyGguf.qwen3();
        };
        TinyGguf longer = new TinyGguf(t.arch(), t.dim(), t.hidden(), t.layers(), t.heads(), t.kvHeads(), t.headSize(),
                t.vocab(), 160, t.tied(), t.bias(), t.qkNorm(), t.ropeFreqs());
        byte[] bytes = longer.build(5);
        check(arch, () -> GgufModelLoader.load(GgufFileTest.parse(bytes), 0), 140, 3);
    }

    @TestFactory
    Stream<DynamicTest> storedQuantizedModels() throws IOException {
        Path dir = TestData.gguf().resolve("models");
        List<Path> models;
        try (Stream<Path> s = Files.list(dir)) {
            models = s.filter(p -> p.toString().endsWith(".gguf")).sorted().toList();
        }
        assertFalse(models.isEmpty(), "no .gguf model in " + dir);
        return models.stream().map(p -> DynamicTest.dynamicTest(p.getFileName().toString(),
                () -> check(p.getFileName().toString(), () -> GgufModelLoader.load(p), 100, 4)));
    }

    private static void check(String name, Supplier<Model> load, int promptLength, int generated) {
        try (Model m = load.get();
             InferenceEngine one = Engines.create(m, EngineOptions.cpu(2, false));
             InferenceEngine batched = Engines.create(m, EngineOptions.cpu(2, false))) {
            int n = Math.min(promptLength + generated, m.config().seqLen());
            int[] tokens = new SplittableRandom(n).ints(n, 0, m.config().vocabSize()).toArray();
            int prompt = n - generated;
            boolean f32 = hasF32Matrix(m.weights()), q80 = hasTransposedQuantMatrix(m.weights());
            boolean exact = !f32 && !q80;
            double tolerance = q80 ? Q8_ACTIVATIONS_TOLERANCE : BatchForwardTest.F32_TOLERANCE;
            // a first pass gets every kernel compiled: the Vector API's reduceLanes (GGML kernels) adds in another
            // order before C2 compiles it, so only results of one compilation state agree bit for bit
            for (int pos = 0; pos < n; pos++) {
                one.forward(tokens[pos], pos);
            }
            batched.forwardBatch(Arrays.copyOf(tokens, prompt), 0);
            one.reset();
            batched.reset();
            float[] expected = null;
            for (int pos = 0; pos < prompt; pos++) {
                expected = one.forward(tokens[pos], pos).clone();
            }
            double worst = compare(expected, batched.forwardBatch(Arrays.copyOf(tokens, prompt), 0).clone(), exact, tolerance,
                    name + " prompt");
            for (int pos = prompt; pos < n; pos++) {
                worst = Math.max(worst, compare(one.forward(tokens[pos], pos).clone(), batched.forward(tokens[pos], pos), exact,
                        tolerance, name + " pos " + pos));
            }
            System.out.printf("GgufBatchTest %s: batched vs one token, worst %.3g of max|logit|%n", name, worst);
        }
    }

    private static double compare(float[] expected, float[] actual, boolean exact, double tolerance, String where) {
        if (exact) {
            BatchForwardTest.compare(expected, actual, true, where);
            return 0;
        }
        return BatchForwardTest.compare(expected, actual, tolerance, where);
    }

    /** Whether a matrix takes the batched kernels' own float order (Q8_0, Q4_0, Q4_K, Q6_K: {@link #Q8_ACTIVATIONS_TOLERANCE}). */
    private static boolean hasTransposedQuantMatrix(Weights w) {
        return Stream.of(w.wq(), w.wk(), w.wv(), w.wo(), w.w1(), w.w2(), w.w3(), new Matrix[]{w.classifier()})
                .flatMap(Arrays::stream).anyMatch(x -> x instanceof Matrix.Q8_0 || x instanceof Matrix.Q4_0
                        || x instanceof Matrix.Q4_K || x instanceof Matrix.Q6_K);
    }

    private static boolean hasF32Matrix(Weights w) {
        return Stream.of(w.wq(), w.wk(), w.wv(), w.wo(), w.w1(), w.w2(), w.w3(), new Matrix[]{w.classifier()})
                .flatMap(Arrays::stream).anyMatch(x -> x instanceof Matrix.F32);
    }
}
