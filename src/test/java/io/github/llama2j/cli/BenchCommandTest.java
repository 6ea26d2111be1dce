package io.github.llama2j.cli;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.github.llama2j.cli.CliTestSupport.run;
import static io.github.llama2j.cli.CliTestSupport.sharedModel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BenchCommandTest {

    @Test
    void tableHasOneRowPerThreadCountAndTest() {
        CliTestSupport.Run r = run("bench", sharedModel("tiny.bin").toString(), "--threads", "1,2", "--prompt-tokens", "8",
                "--gen-tokens", "6", "--reps", "2", "--warmup", "0");
        assertEquals(0, r.exitCode(), r.err());
        List<String> rows = r.out().lines().filter(l -> l.startsWith("| cpu-")).toList();
        assertEquals(4, rows.size(), r.out());
        Pattern row = Pattern.compile("\\| (cpu-\\S+) +\\| +(\\d) \\| (pp8|tg6) +\\| +([0-9.]+) ± ([0-9.]+) \\| +([0-9.]+) \\|");
        String[] expected = {"1 pp8", "1 tg6", "2 pp8", "2 tg6"};
        for (int i = 0; i < 4; i++) {
            Matcher m = row.matcher(rows.get(i));
            assertTrue(m.matches(), rows.get(i));
            assertEquals(expected[i], m.group(2) + " " + m.group(3));
            assertTrue(m.group(1).endsWith("-" + m.group(2) + "t"), "engine name carries the thread count: " + rows.get(i));
            assertTrue(Double.parseDouble(m.group(4)) > 0);
        }
    }

    @Test
    void anEmptyThreadListIsAUsageError() {
        // "--threads ," split into no value: bench printed an empty table and exited 0
        for (String threads : new String[]{",", ",,"}) {
            CliTestSupport.Run r = run("bench", sharedModel("stories260K.bin").toString(), "--reps", "1", "--warmup", "0",
                    "--threads", threads);
            assertEquals(2, r.exitCode(), r.out() + r.err());
            assertEquals("llama2j: --threads lists no thread count, give one or more numbers (e.g. 1,2,4)", r.errLines());
            assertEquals("", r.out());
        }
        CliTestSupport.Run r = run("run", sharedModel("stories260K.bin").toString(), "-n", "2", "--threads", ",");
        assertEquals(2, r.exitCode(), r.err());
        assertEquals("llama2j: --threads lists no thread count, give one or more numbers (e.g. 1,2,4)", r.errLines());
    }

    @Test
    void parametersAreInfosCountAndLlamaCppsForGgufModelsWithExtraTensors() throws java.io.IOException {
        // bench counted the llama2.c layout's weights only: qwen2's q/k/v biases, qwen3's q/k norms, llama3's rope_freqs were missing
        java.nio.file.Path dir = io.github.llama2j.TestData.gguf();
        for (String model : new String[]{"qwen2-tiny-q8_0", "qwen3-tiny-q8_0", "llama3-tiny-q8_0"}) {
            String file = dir.resolve("models/" + model + ".gguf").toString();
            java.util.Map<?, ?> hparams = (java.util.Map<?, ?>) io.github.llama2j.Json.read(dir.resolve("golden/" + model + ".json"))
                    .get("hparams");
            long nParams = ((Number) hparams.get("n_params")).longValue(); // llama.cpp's count
            CliTestSupport.Run info = run("info", file, "--json");
            assertEquals(0, info.exitCode(), info.err());
            assertEquals(nParams, ((Number) ((java.util.Map<?, ?>) io.github.llama2j.Json.parse(info.out())).get("parameters")).longValue(), model + " info");
            CliTestSupport.Run bench = run("bench", file, "--json", "--prompt-tokens", "0", "--gen-tokens", "1", "--reps", "1",
                    "--warmup", "0", "--threads", "1");
            assertEquals(0, bench.exitCode(), bench.err());
            java.util.Map<?, ?> m = (java.util.Map<?, ?>) ((java.util.Map<?, ?>) io.github.llama2j.Json.parse(bench.out())).get("model");
            assertEquals(nParams, ((Number) m.get("parameters")).longValue(), model + " bench --json");
        }
    }

    @Test
    void jsonHasSamplesAndBandwidth() {
        CliTestSupport.Run r = run("bench", sharedModel("tiny_q80.bin").toString(), "--threads", "1", "--prompt-tokens", "4",
                "--gen-tokens", "4", "--reps", "3", "--warmup", "1", "--json", "-z", sharedModel("tok512.bin").toString());
        assertEquals(0, r.exitCode(), r.err());
        String json = r.out();
        assertTrue(json.contains("\"test\": \"pp4\"") && json.contains("\"test\": \"tg4\""), json);
        assertTrue(json.contains("\"group_size\": 4"), json);
        assertTrue(json.contains("\"bytes_per_token\": 521600"), json);
        Matcher samples = Pattern.compile("\"tokens_per_second_samples\": \\[\\s*([0-9.e+-]+),\\s*([0-9.e+-]+),\\s*([0-9.e+-]+)\\s*]")
                .matcher(json);
        assertTrue(samples.find(), json);
        assertTrue(samples.find(), "two tests, three samples each:\n" + json);
        assertEquals(2, json.split("\"gigabytes_per_second\"").length - 1);
    }

    @Test
    void generationIsRunCsGreedyDecoding() throws java.io.IOException {
        String golden = System.getenv("LLAMA2J_TEST_GOLDEN");
        org.junit.jupiter.api.Assumptions.assumeTrue(golden != null && !golden.isBlank(), "LLAMA2J_TEST_GOLDEN is not set");
        String json = java.nio.file.Files.readString(java.nio.file.Path.of(golden, "generate", "tiny.json"));
        int at = json.indexOf("\"tokens\": [", json.indexOf("\"tiny/greedy_noprompt_n64\""));
        String list = json.substring(json.indexOf('[', at) + 1, json.indexOf(']', at));
        int[] stream = java.util.Arrays.stream(list.split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
        int n = 24;
        int[] expected = java.util.Arrays.copyOfRange(stream, 1, n + 1); // stream[0] is the BOS fed at position 0
        try (var m = io.github.llama2j.model.ModelLoader.load(sharedModel("tiny.bin"));
             var e = io.github.llama2j.engine.Engines.create(m, io.github.llama2j.engine.EngineOptions.cpu(1, true))) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected, BenchCommand.generate(e, n));
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected, BenchCommand.generate(e, n), "after reset");
        }
    }

    @Test
    void badOptionsExitWithTwoAndOneLine() {
        String model = sharedModel("tiny.bin").toString();
        assertError(run("bench", model, "--gen-tokens", "513"), "llama2j: tiny.bin: --gen-tokens 513 exceeds seq_len 512");
        assertError(run("bench", model, "--prompt-tokens", "600"), "llama2j: tiny.bin: --prompt-tokens 600 exceeds seq_len 512");
        assertError(run("bench", model, "--reps", "0"), "llama2j: --reps is 0, must be >= 1");
        assertError(run("bench", model, "--prompt-tokens", "0", "--gen-tokens", "0"),
                "llama2j: --prompt-tokens and --gen-tokens are both 0: nothing to measure");
        assertError(run("bench", model, "--engine", "gpu", "--reps", "1", "--prompt-tokens", "1", "--gen-tokens", "0"),
                "llama2j: unknown engine 'gpu': choose cpu, tornado or hybrid");
        // a tokenizer that does not fit the model's vocabulary
        assertEquals(2, run("bench", sharedModel("vocab32k.bin").toString(), "-z", sharedModel("tok512.bin").toString(),
                "--reps", "1").exitCode());
    }

    @Test
    void runStillTakesASingleThreadCount() {
        CliTestSupport.Run r = run("run", sharedModel("tiny.bin").toString(), "-z", sharedModel("tok512.bin").toString(),
                "--threads", "1,2", "-n", "2");
        assertEquals(2, r.exitCode());
        assertEquals("llama2j: --threads takes one number here, got 2", r.errLines());
    }

    private static void assertError(CliTestSupport.Run r, String message) {
        assertEquals(2, r.exitCode(), r.err());
        assertEquals(message, r.errLines());
    }
}
