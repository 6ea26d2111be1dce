package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cpu.CpuEngine;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/**
 * {@code llama2j bench}: llama-bench-style throughput. For each thread count it measures prompt
 * processing (forward passes over N given token ids) and generation (N greedy tokens), after warm-up,
 * and reports mean ± standard deviation over repetitions with the weight bandwidth that implies.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Measure throughput, like llama.cpp's llama-bench: for each --threads value, pp<N> is the forward"
                + " pass over N prompt tokens (seeded random ids: no tokenizer needed) and tg<N> is N greedy tokens"
                + " generated from BOS. Each is run --warmup times unmeasured, then --reps times; the table shows"
                + " mean ± sample standard deviation of tokens per second.",
                "GB/s is the weight bandwidth this implies: bytes read per token (see 'llama2j info') × tokens per second."
                        + " It is computed for both tests, but the CPU engine's pp reads each weight once per batch"
                        + " of up to " + CpuEngine.CHUNK + " prompt tokens (batched prefill; not with --exact), so its pp figure is an"
                        + " equivalent, not a measured bandwidth."},
        footer = {"",
                "Examples:",
                "  llama2j bench stories110M --threads 1,2,4",
                "  llama2j bench model_q80.bin --prompt-tokens 64 --gen-tokens 128 --json",
                "  llama2j bench stories15M --exact --threads 1",
                "  llama2j bench stories110M --engine tornado --device 0:0",
                ModelResolver.NAMES_HELP})
public final class BenchCommand implements Callable<Integer> {

    @Mixin
    ModelMixin model;

    @Option(names = "--prompt-tokens", paramLabel = "N", defaultValue = "128", description = "Prompt length for pp (default ${DEFAULT-VALUE}; 0 skips it).")
    int promptTokens;

    @Option(names = "--gen-tokens", paramLabel = "N", defaultValue = "256", description = "Tokens to generate for tg (default ${DEFAULT-VALUE}; 0 skips it).")
    int genTokens;

    @Option(names = "--reps", paramLabel = "N", defaultValue = "3", description = "Measured repetitions (default ${DEFAULT-VALUE}).")
    int reps;

    @Option(names = "--warmup", paramLabel = "N", defaultValue = "1", description = "Unmeasured warm-up runs of each test (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "42", description = "Seed of the random prompt ids (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--profile", description = "After the benchmark, profile --gen-tokens greedy tokens per thread count and print the per-task table on stderr.")
    boolean profile;

    @Option(names = "--json", description = "Print a JSON document instead of the table.")
    boolean json;

    @Mixin
    EngineMixin engine;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    /**
     * One measured test: tok/s per repetition.
     *
     * @param selection why this engine ran, when {@code --engine hybrid --split auto} chose it ({@link InferenceEngine#selection()}), or null
     */
    record Measurement(String test, int threads, String engine, int tokens, double[] tokensPerSecond, int launchesPerToken,
                       int graphsPerToken, String selection) {
        double mean() {
            double s = 0;
            for (double v : tokensPerSecond) {
                s += v;
            }
            return s / tokensPerSecond.length;
        }

        /** Sample standard deviation (n - 1); 0 for a single repetition. */
        double stddev() {
            int n = tokensPerSecond.length;
            if (n < 2) {
                return 0;
            }
            double m = mean(), s = 0;
            for (double v : tokensPerSecond) {
                s += (v - m) * (v - m);
            }
            return Math.sqrt(s / (n - 1));
        }
    }

    @Override
    public Integer call() {
        check(promptTokens >= 0, "--prompt-tokens is " + promptTokens + ", must be >= 0");
        check(genTokens >= 0, "--gen-tokens is " + genTokens + ", must be >= 0");
        check(promptTokens + genTokens > 0, "--prompt-tokens and --gen-tokens are both 0: nothing to measure");
        check(reps >= 1, "--reps is " + reps + ", must be >= 1");
        check(warmup >= 0, "--warmup is " + warmup + ", must be >= 0");
        int[] threadCounts = engine.threadCounts();
        PrintWriter err = spec.commandLine().getErr();
        Path path = model.resolve(err);
        try (Model m = ModelLoader.load(path)) {
            Configuration c = m.config();
            String name = String.valueOf(path.getFileName());
            check(promptTokens <= c.seqLen(), name + ": --prompt-tokens " + promptTokens + " exceeds seq_len " + c.seqLen());
            check(genTokens <= c.seqLen(), name + ": --gen-tokens " + genTokens + " exceeds seq_len " + c.seqLen());
            model.checkTokenizer(m); // fails clearly if it does not fit the model
            int[] prompt = new SplittableRandom(seed).ints(promptTokens, 0, c.vocabSize()).toArray();
            long bytesPerToken = m.weights().bytesPerToken();
            List<Measurement> results = new ArrayList<>();
            for (int t : threadCounts) {
                EngineOptions options = engine.toOptions(false, t);
                try (InferenceEngine e = Engines.create(m, options)) {
                    if (promptTokens > 0) {
                        results.add(measure("pp" + promptTokens, t, e, promptTokens, () -> prompt(e, prompt)));
                    }
                    if (genTokens > 0) {
                        results.add(measure("tg" + genTokens, t, e, genTokens, () -> generate(e, genTokens)));
                    }
                    if (profile) {
                        int n = Math.max(1, Math.min(genTokens, c.seqLen() - 1));
                        var report = new io.github.llama2j.profile.ProfileReport(e.name(), ProfileCommand.profile(e, 1, n), e.launchesPerToken(), e.graphsPerToken(),
                                e.selection());
                        err.println(report.toTable());
                        err.flush();
                    }
                }
            }
            PrintWriter o = spec.commandLine().getOut();
            if (json) {
                o.println(Json.write(toJson(m, path, bytesPerToken, results)));
            } else {
                printTable(o, m, name, bytesPerToken, results);
            }
            o.flush();
        }
        return 0;
    }

    private Measurement measure(String test, int threads, InferenceEngine e, int tokens, Runnable run) {
        for (int i = 0; i < warmup; i++) {
            run.run();
        }
        double[] tps = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            run.run();
            tps[i] = tokens / ((System.nanoTime() - t0) / 1e9);
        }
        return new Measurement(test, threads, e.name(), tokens, tps, e.launchesPerToken(), e.graphsPerToken(), e.selection());
    }

    /**
     * Prompt processing: the tokens through {@link InferenceEngine#forwardBatch} from position 0, as the
     * generators feed a prompt (the CPU engine in batches; exact mode and other engines one at a time).
     */
    static void prompt(InferenceEngine e, int[] tokens) {
        e.reset();
        e.forwardBatch(tokens, 0);
    }

    /**
     * Generation: greedy decoding from BOS (argmax, first index on ties, as run.c), the choice included
     * in the time. Never stops early, so every run does the same work; returns the chosen tokens.
     */
    static int[] generate(InferenceEngine e, int n) {
        e.reset();
        int[] chosen = new int[n];
        int token = Tokenizer.BOS;
        for (int pos = 0; pos < n; pos++) {
            float[] logits = e.forward(token, pos);
            int best = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            token = best;
            chosen[pos] = best;
        }
        return chosen;
    }

    private void printTable(PrintWriter o, Model m, String name, long bytesPerToken, List<Measurement> results) {
        Configuration c = m.config();
        o.println(String.format(Locale.ROOT, "%s: %s, %s parameters, %s read per token",
                name, m.format().description(), InfoCommand.millions(InfoCommand.parameterCount(m)), mib(bytesPerToken)));
        String fmt = "| %-22s | %7s | %-7s | %20s | %8s |%n";
        o.printf(Locale.ROOT, fmt, "engine", "threads", "test", "t/s", "GB/s");
        o.printf(Locale.ROOT, fmt, "-".repeat(22), "-".repeat(7), "-".repeat(7), "-".repeat(20), "-".repeat(8));
        for (Measurement r : results) {
            o.printf(Locale.ROOT, fmt, r.engine(), r.threads(), r.test(),
                    String.format(Locale.ROOT, "%.2f ± %.2f", r.mean(), r.stddev()),
                    String.format(Locale.ROOT, "%.2f", r.mean() * bytesPerToken / 1e9));
        }
        o.println(String.format(Locale.ROOT, "%d warm-up and %d measured runs per test; prompt ids seeded with %d.", warmup, reps, seed));
    }

    private Map<String, Object> toJson(Model m, Path path, long bytesPerToken, List<Measurement> results) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("model", InfoCommand.describe(m, path));
        doc.put("warmup", warmup);
        doc.put("reps", reps);
        doc.put("seed", seed);
        List<Object> rows = new ArrayList<>();
        for (Measurement r : results) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("test", r.test());
            row.put("kind", r.test().startsWith("pp") ? "prompt" : "generation");
            row.put("tokens", r.tokens());
            row.put("engine", r.engine());
            row.put("threads", r.threads());
            row.put("tokens_per_second_mean", r.mean());
            row.put("tokens_per_second_stddev", r.stddev());
            List<Object> samples = new ArrayList<>();
            for (double v : r.tokensPerSecond()) {
                samples.add(v);
            }
            row.put("tokens_per_second_samples", samples);
            row.put("bytes_per_token", bytesPerToken);
            row.put("launches_per_token", r.launchesPerToken());
            if (r.graphsPerToken() > 0) {
                row.put("graphs_per_token", r.graphsPerToken());
            }
            if (r.selection() != null) {
                row.put("engine_selection", r.selection());
            }
            row.put("gigabytes_per_second", r.mean() * bytesPerToken / 1e9);
            rows.add(row);
        }
        doc.put("results", rows);
        return doc;
    }

    private static String mib(long b) {
        return String.format(Locale.ROOT, "%.2f MiB", b / (double) (1L << 20));
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new Llama2jException(message, Llama2jException.BAD_USAGE);
        }
    }
}
