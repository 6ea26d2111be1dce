package io.github.llama2j.tornado;

import io.github.llama2j.generate.Generator;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicNode;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * llama2.c's greedy generations, replayed on the TornadoVM engine: for every greedy generate case of
 * {@code golden/generate/<model>.json} that every llama2.c build agrees on, the tokens fed at each
 * position and the tokens sampled must be exactly llama2.c's. Cases with the same prompt share one run
 * (a greedy stream of n steps is a prefix of the stream of more steps), so the longest case, the model's
 * whole seq_len for {@code edge_steps0_means_seq_len}, also exercises every slot of the on-device
 * key/value cache.
 */
@Tag("tornado")
class GoldenGreedyTornadoTest {
    static final List<String> MODELS = List.of("tiny", "tiny_q80", "stories260K", "tiny_unshared", "tiny_unshared_q80", "vocab32k");

    /** The models also replayed with the one-token attention split ({@link TestEngines#splitEngine}). */
    static final List<String> SPLIT_MODELS = List.of("tiny", "tiny_q80", "stories260K");

    @TestFactory
    List<DynamicNode> greedyCasesGiveLlama2cTokens() throws IOException {
        return cases(MODELS, TestEngines::engine, "");
    }

    /**
     * The same cases with the attention split over up to 4 work-groups per head (chunks of at least 8 positions):
     * every position from 8 on combines partial softmax sums in wo, and the tokens must still be llama2.c's.
     */
    @TestFactory
    List<DynamicNode> greedyCasesGiveLlama2cTokensWithSplitAttention() throws IOException {
        return cases(SPLIT_MODELS, TestEngines::splitEngine, ", attention split");
    }

    private static List<DynamicNode> cases(List<String> models, java.util.function.Function<String, TornadoEngine> engines,
                                           String what) throws IOException {
        List<DynamicNode> nodes = new ArrayList<>();
        for (String name : models) {
            @SuppressWarnings("unchecked")
            Map<String, Object> json = (Map<String, Object>) io.github.llama2j.Json.parse(
                    Files.readString(TestEngines.golden().resolve("generate").resolve(name + ".json"), StandardCharsets.UTF_8));
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
            Map<String, Generator.Result> runs = new LinkedHashMap<>();
            List<DynamicTest> tests = new ArrayList<>();
            for (Map<String, Object> c : cases) {
                String id = (String) c.get("id");
                int steps = ((Number) ((Map<?, ?>) c.get("effective")).get("steps")).intValue();
                String label = id + (id.endsWith("edge_steps0_means_seq_len") ? " (whole seq_len: every KV-cache slot)" : "");
                tests.add(DynamicTest.dynamicTest(label, () -> {
                    String key = prompt(c);
                    Generator.Result r = runs.computeIfAbsent(key, k -> run(engines.apply(name + ".bin"), c, longest.get(k)));
                    check(c, r, steps);
                }));
            }
            nodes.add(DynamicContainer.dynamicContainer(name + ".bin on TornadoVM" + what, tests));
        }
        return nodes;
    }

    private static String prompt(Map<String, Object> c) {
        return Objects.toString(((Map<?, ?>) c.get("args")).get("prompt"), "\u0000none");
    }

    private static Generator.Result run(TornadoEngine engine, Map<String, Object> c, int steps) {
        List<?> argv = (List<?>) c.get("argv");
        String tokenizerFile = (String) argv.get(argv.indexOf("-z") + 1);
        int vocab = engine.config().vocabSize();
        Tokenizer tok = Tokenizer.load(TestEngines.models().resolve(tokenizerFile), vocab);
        Generator g = new Generator(engine, tok, new Sampler(vocab, 0f, 0.9f, 1), new ByteArrayOutputStream());
        String p = (String) ((Map<?, ?>) c.get("args")).get("prompt");
        return g.generate(p == null ? null : p.getBytes(StandardCharsets.UTF_8), steps);
    }

    private static void check(Map<String, Object> c, Generator.Result r, int steps) {
        int[] tokens = io.github.llama2j.Json.ints(c.get("tokens"));
        int forwarded = ((Number) c.get("positions_forwarded")).intValue();
        int[] generated = io.github.llama2j.Json.ints(c.get("generated_tokens"));
        assertTrue(r.fed().size() >= forwarded, () -> "run forwarded " + r.fed().size() + " positions, case " + forwarded);
        assertArrayEquals(Arrays.copyOf(tokens, forwarded), r.fed().subList(0, forwarded).stream().mapToInt(Integer::intValue).toArray(),
                "tokens fed at each position (" + steps + " steps)");
        assertTrue(r.sampled().size() >= generated.length, "sampled fewer tokens than llama2.c");
        assertArrayEquals(generated, r.sampled().subList(0, generated.length).stream().mapToInt(Integer::intValue).toArray(),
                "tokens sampled");
    }

    static Path modelPath(String name) {
        return TestEngines.models().resolve(name + ".bin");
    }
}
