package io.github.llama2j.gguf;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * stories260K.gguf (llama.cpp's conversion) and stories260K.bin (llama2.c's checkpoint) are the same
 * model: greedy decoding from every golden prompt gives the same ids, though the GGUF model runs with
 * llama.cpp's arithmetic and the checkpoint with run.c's (their logits differ by float rounding only:
 * checked here to 1e-4 of the largest logit at every step).
 */
class Stories260KTwinsTest {
    static final int STEPS = 64;

    @Test
    @SuppressWarnings("unchecked")
    void sameGreedyIds() {
        Map<String, Object> g = Json.read(TestData.gguf().resolve("golden/stories260K.json"));
        try (Model gguf = GgufModelLoader.load(TestData.model("stories260K.gguf"));
             Model bin = ModelLoader.load(TestData.model("stories260K.bin"));
             InferenceEngine a = Engines.create(gguf, EngineOptions.cpu(1, false));
             InferenceEngine b = Engines.create(bin, EngineOptions.cpu(1, false))) {
            assertEquals(bin.config().dim(), gguf.config().dim());
            assertEquals(bin.config().vocabSize(), gguf.config().vocabSize());
            double worst = 0;
            for (Map<String, Object> c : (List<Map<String, Object>>) g.get("cases")) {
                int[] prompt = Json.ints(c.get("prompt_tokens"));
                int[] idsA = greedy(a, prompt), idsB = greedy(b, prompt);
                assertArrayEquals(idsB, idsA, c.get("id") + ": stories260K.gguf and stories260K.bin decode differently");
                worst = Math.max(worst, maxLogitDiff(a, b, prompt, idsA));
            }
            System.out.printf("stories260K .gguf vs .bin: identical greedy ids; max |logit diff| %.3g%n", worst);
        }
    }

    /** Feeds the prompt, then STEPS greedy ids (ties to the lowest id); returns the generated ids. */
    static int[] greedy(InferenceEngine e, int[] prompt) {
        e.reset();
        int[] out = new int[STEPS];
        int token = prompt[0];
        for (int pos = 0; pos < prompt.length - 1 + STEPS; pos++) {
            float[] logits = e.forward(token, pos);
            int next = GgufGoldenTest.argmax(logits);
            if (pos + 1 < prompt.length) {
                token = prompt[pos + 1];
            } else {
                out[pos + 1 - prompt.length] = next;
                token = next;
            }
        }
        return out;
    }

    /** Largest |logit difference| over the run, checked below 1e-4 of the largest |logit| at each step. */
    static double maxLogitDiff(InferenceEngine a, InferenceEngine b, int[] prompt, int[] generated) {
        int[] tokens = GgufGoldenTest.concat(prompt, generated);
        a.reset();
        b.reset();
        double worst = 0;
        for (int pos = 0; pos < tokens.length; pos++) {
            float[] la = a.forward(tokens[pos], pos), lb = b.forward(tokens[pos], pos);
            double max = 0, diff = 0;
            for (int i = 0; i < la.length; i++) {
                max = Math.max(max, Math.abs(lb[i]));
                diff = Math.max(diff, Math.abs(la[i] - lb[i]));
            }
            if (diff > 1e-4 * max) {
                throw new AssertionError("position " + pos + ": logits differ by " + diff + " (max |logit| " + max + ") "
                        + Arrays.toString(Arrays.copyOf(la, 4)) + " vs " + Arrays.toString(Arrays.copyOf(lb, 4)));
            }
            worst = Math.max(worst, diff);
        }
        return worst;
    }
}
