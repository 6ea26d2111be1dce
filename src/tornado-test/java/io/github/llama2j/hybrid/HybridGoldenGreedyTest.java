package io.github.llama2j.hybrid;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import io.github.llama2j.generate.Generator;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicNode;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestFactory;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * llama2.c's greedy generations replayed on the hybrid engine: for every greedy generate case of
 * {@code golden/generate/<model>.json} that every llama2.c build agrees on, the tokens fed at each
 * position and the tokens sampled must be exactly llama2.c's, on each model's mixed split of
 * {@link HybridTestEngines#SPLITS} and on its all-CPU split. Cases with the same prompt share one run
 * (greedy: a run of n steps is a prefix of a run of more), so the longest, the whole seq_len, also
 * exercises every slot of both sides' key/value caches.
 */
@Tag("tornado")
class HybridGoldenGreedyTest {

    @TestFactory
    List<DynamicNode> greedyCasesGiveLlama2cTokens() {
        List<DynamicNode> nodes = new ArrayList<>();
        for (HybridTestEngines.Split mixed : HybridTestEngines.SPLITS) {
            String model = mixed.file().replace(".bin", "");
            Map<String, Object> json = Json.read(TestData.golden().resolve("generate").resolve(model + ".json"));
            List<Map<String, Object>> cases = new ArrayList<>();
            Map<String, Integer> longest = new HashMap<>();
            for (Object o : (List<?>) json.get("cases")) {
                @SuppressWarnings("unchecked")
                Map<String, Object> c = (Map<String, Object>) o;
                Map<?, ?> eff = (Map<?, ?>) c.get("effective");
                if (!"generate".equals(eff.get("mode")) || ((Number) eff.get("temperature")).floatValue() != 0f
                        || !Boolean.TRUE.equals(c.get("all_builds_agree"))) {
                    continue;
                }
                cases.add(c);
                longest.merge(prompt(c), ((Number) eff.get("steps")).intValue(), Math::max);
            }
            for (HybridTestEngines.Split split : List.of(mixed, HybridTestEngines.allCpu(mixed.file()))) {
                Map<String, Generator.Result> runs = new LinkedHashMap<>();
                List<DynamicTest> tests = new ArrayList<>();
                for (Map<String, Object> c : cases) {
                    int steps = ((Number) ((Map<?, ?>) c.get("effective")).get("steps")).intValue();
                    tests.add(DynamicTest.dynamicTest((String) c.get("id"), () -> {
                        Generator.Result r = runs.computeIfAbsent(prompt(c), k -> run(split, c, longest.get(k)));
                        check(c, r, steps);
                    }));
                }
                nodes.add(DynamicContainer.dynamicContainer(split.toString(), tests));
            }
        }
        return nodes;
    }

    private static String prompt(Map<String, Object> c) {
        return Objects.toString(((Map<?, ?>) c.get("args")).get("prompt"), "\u0000none");
    }

    private static Generator.Result run(HybridTestEngines.Split split, Map<String, Object> c, int steps) {
        List<?> argv = (List<?>) c.get("argv");
        String tokenizerFile = (String) argv.get(argv.indexOf("-z") + 1);
        HybridEngine engine = HybridTestEngines.engine(split);
        int vocab = engine.config().vocabSize();
        Tokenizer tok = Tokenizer.load(TestData.model(tokenizerFile), vocab);
        Generator g = new Generator(engine, tok, new Sampler(vocab, 0f, 0.9f, 1), new ByteArrayOutputStream());
        String p = (String) ((Map<?, ?>) c.get("args")).get("prompt");
        return g.generate(p == null ? null : p.getBytes(StandardCharsets.UTF_8), steps);
    }

    private static void check(Map<String, Object> c, Generator.Result r, int steps) {
        int[] tokens = Json.ints(c.get("tokens"));
        int forwarded = ((Number) c.get("positions_forwarded")).intValue();
        int[] generated = Json.ints(c.get("generated_tokens"));
        assertTrue(r.fed().size() >= forwarded, () -> "run forwarded " + r.fed().size() + " positions, case " + forwarded);
        assertArrayEquals(Arrays.copyOf(tokens, forwarded),
                r.fed().subList(0, forwarded).stream().mapToInt(Integer::intValue).toArray(),
                "tokens fed at each position (" + steps + " steps)");
        assertTrue(r.sampled().size() >= generated.length, "sampled fewer tokens than llama2.c");
        assertArrayEquals(generated, r.sampled().subList(0, generated.length).stream().mapToInt(Integer::intValue).toArray(),
                "tokens sampled");
    }
}
