package io.github.llama2j.golden;

import io.github.llama2j.TestData;
import io.github.llama2j.cli.Io;
import io.github.llama2j.cli.Main;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.generate.Generator;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicNode;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every generation and chat case llama2.c recorded in shared/golden, replayed through the CLI with
 * the recorded argv and stdin, on every model file (v0 and its v1 twin), in the default and the
 * exact arithmetic mode. Expected stdout:
 * <ul>
 *   <li>byte for byte, for cases where every llama2.c build agrees, and for every case in --exact
 *       mode (run.c's operation order and the C library's expf/sinf/cosf/powf);</li>
 *   <li>up to {@code first_differing_stdout_byte} for the order-sensitive cases in the default
 *       mode, where llama2.c's own -Ofast build also prints something else from there on.</li>
 * </ul>
 * The token ids fed and sampled are checked against the recorded ones wherever full stdout is expected.
 */
class GoldenGenerateTest {

    /**
     * Order-sensitive cases where the default (SIMD) mode's float32 matmul order diverges from run.c
     * earlier than llama2.c's own -Ofast build did, with the byte where it does. Only a case whose
     * recorded sampling margin is exactly 0 may be here (the coin lands on a cdf boundary, so any
     * summation order other than run.c's decides the token by chance); --exact mode still reproduces
     * it byte for byte.
     */
    private static final Map<String, Integer> DEFAULT_MODE_DIVERGES_AT = Map.of(
            "vocab32k/chat_sampled_s42", 61);

    @TestFactory
    List<DynamicNode> llama2cGoldenCases() {
        Path models = TestData.models();
        List<DynamicNode> nodes = new ArrayList<>();
        for (String model : GoldenCases.MODELS) {
            GoldenCases g = GoldenCases.load(model);
            for (String file : g.modelFiles()) {
                for (boolean exact : new boolean[]{false, true}) {
                    List<DynamicTest> tests = new ArrayList<>();
                    for (GoldenCases.Case c : g.cases()) {
                        boolean full = exact || c.allBuildsAgree();
                        tests.add(DynamicTest.dynamicTest(c.id() + " stdout", () -> checkStdout(models, file, c, exact, full)));
                        if (full) {
                            tests.add(DynamicTest.dynamicTest(c.id() + " tokens", () -> checkTokens(models, file, c, exact)));
                        }
                    }
                    nodes.add(DynamicContainer.dynamicContainer(file + (exact ? " --exact" : " default"), tests));
                }
            }
        }
        return nodes;
    }

    private static void checkStdout(Path models, String file, GoldenCases.Case c, boolean exact, boolean full) {
        List<String> args = new ArrayList<>();
        args.add("run");
        args.addAll(c.argv(models, file));
        args.add("--no-stats");
        if (exact) {
            args.add("--exact");
        }
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        Io io = new Io(stdout, new ByteArrayInputStream(c.stdin().getBytes(StandardCharsets.UTF_8)));
        int code = Main.execute(io, new PrintWriter(new StringWriter()), new PrintWriter(err), args.toArray(String[]::new));
        assertEquals(0, code, () -> "exit code; stderr: " + err);
        byte[] expected = c.stdout();
        byte[] actual = stdout.toByteArray();
        if (full) {
            assertEquals(new String(expected, StandardCharsets.UTF_8), new String(actual, StandardCharsets.UTF_8));
            assertArrayEquals(expected, actual);
        } else {
            int n = c.firstDifferingByte();
            assertTrue(n >= 0, "order-sensitive case without first_differing_stdout_byte");
            Integer earlier = DEFAULT_MODE_DIVERGES_AT.get(c.id());
            if (earlier != null) {
                Object margin = ((Map<?, ?>) c.json().get("robustness")).get("min_cdf_margin");
                assertEquals(0.0, ((Number) margin).doubleValue(), "only zero-margin cases may diverge early");
                n = earlier;
            }
            final int agreed = n;
            assertTrue(actual.length >= agreed, () -> "stdout shorter (" + actual.length + ") than the agreed prefix " + agreed);
            assertArrayEquals(Arrays.copyOf(expected, agreed), Arrays.copyOf(actual, agreed),
                    () -> "first " + agreed + " bytes differ:\nexpected " + new String(expected, StandardCharsets.UTF_8)
                            + "\nactual   " + new String(actual, StandardCharsets.UTF_8));
        }
    }

    private static void checkTokens(Path models, String file, GoldenCases.Case c, boolean exact) {
        Map<String, Object> eff = c.effective();
        List<String> argv = c.argv(models, file);
        Path tokenizerPath = Path.of(argv.get(argv.indexOf("-z") + 1));
        try (Model model = ModelLoader.load(models.resolve(file));
             InferenceEngine engine = Engines.create(model, EngineOptions.cpu(2, exact))) {
            Tokenizer tok = Tokenizer.load(tokenizerPath, model.config().vocabSize());
            float temperature = ((Number) eff.get("temperature")).floatValue();
            float topp = ((Number) eff.get("topp")).floatValue();
            Object seedValue = eff.get("seed");
            long seed = seedValue == null ? 1 : ((Number) seedValue).longValue();
            int steps = ((Number) eff.get("steps")).intValue();
            Sampler sampler = new Sampler(model.config().vocabSize(), temperature, topp, seed);
            Generator gen = new Generator(engine, tok, sampler, new ByteArrayOutputStream());
            Map<String, Object> raw = c.args();
            String prompt = (String) raw.get("prompt");
            byte[] promptBytes = prompt == null ? null : prompt.getBytes(StandardCharsets.UTF_8);
            if (c.chat()) {
                String sys = (String) raw.get("system_prompt");
                Generator.Result r = gen.chat(promptBytes, sys == null ? null : sys.getBytes(StandardCharsets.UTF_8), steps,
                        new ByteArrayInputStream(c.stdin().getBytes(StandardCharsets.UTF_8)));
                assertEquals(ints(c.json().get("fed_tokens")), r.fed(), "fed tokens");
                assertEquals(ints(c.json().get("sampled_tokens")), r.sampled(), "sampled tokens");
            } else {
                Generator.Result r = gen.generate(promptBytes, steps);
                List<Integer> tokens = ints(c.json().get("tokens"));
                int forwarded = ((Number) c.json().get("positions_forwarded")).intValue();
                assertEquals(tokens.subList(0, forwarded), r.fed(), "tokens fed at each position");
                assertEquals(ints(c.json().get("generated_tokens")), r.sampled(), "sampled tokens");
            }
        }
    }

    private static List<Integer> ints(Object list) {
        return Arrays.stream(io.github.llama2j.Json.ints(list)).boxed().toList();
    }
}
