package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.generate.Generator;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.profile.ProfileRecorder;
import io.github.llama2j.profile.ProfileReport;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code llama2j run}: llama2.c's {@code run}, with its short flags as aliases. */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = "Generate text or chat, exactly like llama2.c's run (same tokens for the same seed).",
        footer = {"",
                "Examples:",
                "  llama2j run stories15M -i \"Once upon a time\" -n 256",
                "  llama2j run stories260K.bin -z tok512.bin -t 0 -n 200",
                "  llama2j run llama2_7b_chat.bin -m chat -y \"You are a helpful assistant.\"",
                "  llama2j run stories110M --engine tornado --device 0:0",
                "",
                "The text goes to stdout; a stats line (tokens, tok/s, time to first token) goes to stderr."})
public final class RunCommand implements Callable<Integer> {

    @Mixin
    ModelMixin model;

    @Option(names = {"-t", "--temperature"}, defaultValue = "1.0", description = "Temperature, >= 0; 0 = greedy (default ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = {"-p", "--top-p"}, defaultValue = "0.9", description = "Top-p (nucleus) in [0, 1]; 0 or 1 = plain multinomial (default ${DEFAULT-VALUE}).")
    float topp;

    @Option(names = {"-s", "--seed"}, defaultValue = "0", description = "RNG seed; <= 0 means the current time, as llama2.c.")
    long seed;

    @Option(names = {"-n", "--steps"}, defaultValue = "256", description = "Positions to run, prompt included; 0 = seq_len (default ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = {"-i", "--prompt"}, description = "Prompt (generate) or first user prompt (chat).")
    String prompt;

    @Option(names = {"-m", "--mode"}, defaultValue = "generate", paramLabel = "generate|chat", description = "generate (default) or chat.")
    String mode;

    @Option(names = {"-y", "--system"}, description = "System prompt (chat mode).")
    String systemPrompt;

    @Option(names = "--no-stats", description = "Do not print the stats line on stderr.")
    boolean noStats;

    @Option(names = "--profile", description = "Profile the run and print the per-task table on stderr at the end.")
    boolean profile;

    @Mixin
    EngineMixin engine;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private final Io io;

    public RunCommand(Io io) {
        this.io = io;
    }

    public RunCommand() {
        this(Io.system());
    }

    @Override
    public Integer call() {
        if (!mode.equals("generate") && !mode.equals("chat")) {
            throw new Llama2jException("mode is '" + mode + "', must be generate or chat", Llama2jException.BAD_USAGE);
        }
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new Llama2jException("temperature (-t) is " + temperature + ", must be a finite number >= 0", Llama2jException.BAD_USAGE);
        }
        if (!(topp >= 0 && topp <= 1)) {
            throw new Llama2jException("top-p (-p) is " + topp + ", must be in [0, 1]", Llama2jException.BAD_USAGE);
        }
        if (steps < 0) {
            throw new Llama2jException("steps (-n) is " + steps + ", must be >= 0 (0 means the model's seq_len)", Llama2jException.BAD_USAGE);
        }
        long rngSeed = seed <= 0 ? System.currentTimeMillis() / 1000 : seed;
        try (Model m = ModelLoader.load(model.resolve(spec.commandLine().getErr()))) {
            Tokenizer tokenizer = model.tokenizer(m);
            EngineOptions options = engine.toOptions(profile);
            Sampler sampler = new Sampler(m.config().vocabSize(), temperature, topp, rngSeed);
            OutputStream stdout = io.stdout();
            try (InferenceEngine e = Engines.create(m, options)) {
                ProfileRecorder recorder = null;
                if (profile) {
                    recorder = new ProfileRecorder();
                    e.setProfiler(recorder);
                }
                Generator g = new Generator(e, tokenizer, sampler, stdout);
                byte[] promptBytes = prompt == null ? null : prompt.getBytes(StandardCharsets.UTF_8);
                Generator.Result r = mode.equals("chat")
                        ? g.chat(promptBytes, systemPrompt == null ? null : systemPrompt.getBytes(StandardCharsets.UTF_8), steps, io.stdin())
                        : g.generate(promptBytes, steps);
                if (recorder != null) {
                    // Every position counts as a token here (no warm-up): the first ones include JIT warm-up.
                    for (int i = 0; i < r.fed().size(); i++) {
                        recorder.tokenDone(r.startNanos(), i == 0 ? r.endNanos() - r.startNanos() : 0);
                    }
                    PrintWriter err = spec.commandLine().getErr();
                    err.println(new ProfileReport(e.name(), recorder, e.launchesPerToken()).toTable());
                    err.flush();
                }
                if (!noStats) {
                    PrintWriter err = spec.commandLine().getErr();
                    err.println(String.format(Locale.ROOT,
                            "[%s] %d positions (%d prompt, %d sampled), %.2f tok/s, time to first token %.1f ms",
                            e.name(), r.fed().size(), r.fed().size() - r.generatedTokens(), r.generatedTokens(),
                            r.tokensPerSecond(), r.timeToFirstTokenMillis()));
                    err.flush();
                }
            }
        }
        return 0;
    }
}
