package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.chat.ChatTemplate;
import io.github.llama2j.generate.Generator;
import io.github.llama2j.generate.GgufGenerator;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.tokenizer.GgufTokenizer;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.profile.ProfileRecorder;
import io.github.llama2j.profile.ProfileReport;
import io.github.llama2j.sampling.NonFiniteLogitsException;
import io.github.llama2j.sampling.Sampler;
import io.github.llama2j.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
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
                "  llama2j run Llama-3.2-1B-Instruct-Q4_K_M.gguf -m chat --top-k 40 --min-p 0.05",
                "",
                "The text goes to stdout; a stats line goes to stderr: positions, tok/s after the first token (as llama2.c,"
                        + " which leaves out its first position; the prompt excluded), time to first token from the start of"
                        + " generation and from the JVM's start (start-up, model and the engine's warm-up included)."})
public final class RunCommand implements Callable<Integer> {

    @Mixin
    ModelMixin model;

    @Option(names = {"-t", "--temperature"}, defaultValue = "1.0", description = "Temperature, >= 0; 0 = greedy (default ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = {"-p", "--top-p"}, defaultValue = "0.9", description = "Top-p (nucleus) in [0, 1]; 0 or 1 = plain multinomial (default ${DEFAULT-VALUE}).")
    float topp;

    @Option(names = "--top-k", defaultValue = "0", description = "Keep only the k likeliest tokens; 0 = off (default ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--min-p", defaultValue = "0", description = "Keep tokens with at least this fraction of the top probability; 0 = off (default ${DEFAULT-VALUE}).")
    float minP;

    @Option(names = "--chat-template", paramLabel = "FILE", description = "Jinja chat template for a GGUF model, instead of its tokenizer.chat_template.")
    Path chatTemplatePath;

    @Option(names = {"-s", "--seed"}, defaultValue = "0", description = "RNG seed; <= 0 means the current time, as llama2.c.")
    long seed;

    @Option(names = {"-n", "--steps"}, description = "Positions to run, prompt included; 0 = seq_len (default 256;"
            + " a GGUF chat: 0, and its oldest turns make room when the context is full).")
    Integer steps;

    /** -n when not given (llama2.c's), except in a GGUF chat, which runs over the whole context. */
    static final int DEFAULT_STEPS = 256;

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
        if (steps != null && steps < 0) {
            throw new Llama2jException("steps (-n) is " + steps + ", must be >= 0 (0 means the model's seq_len)", Llama2jException.BAD_USAGE);
        }
        if (topK < 0) {
            throw new Llama2jException("top-k (--top-k) is " + topK + ", must be >= 0 (0 = off)", Llama2jException.BAD_USAGE);
        }
        if (!(minP >= 0 && minP <= 1)) {
            throw new Llama2jException("min-p (--min-p) is " + minP + ", must be in [0, 1] (0 = off)", Llama2jException.BAD_USAGE);
        }
        long rngSeed = seed <= 0 ? System.currentTimeMillis() / 1000 : seed;
        Path modelPath = model.resolve(spec.commandLine().getErr());
        if (GgufFile.isGguf(modelPath)) {
            return runGguf(modelPath, rngSeed);
        }
        if (chatTemplatePath != null) {
            throw new Llama2jException("--chat-template is for GGUF models; llama2.c checkpoints chat with run.c's Llama 2 [INST] format",
                    Llama2jException.BAD_USAGE);
        }
        try (Model m = ModelLoader.load(modelPath)) {
            Tokenizer tokenizer = model.tokenizer(m);
            EngineOptions options = engine.toOptions(profile);
            Sampler sampler = new Sampler(m.config().vocabSize(), temperature, topp, topK, minP, rngSeed, FloatMath.vectorized());
            OutputStream stdout = io.stdout();
            try (InferenceEngine e = Engines.create(m, options)) {
                ProfileRecorder recorder = null;
                if (profile) {
                    recorder = new ProfileRecorder();
                    e.setProfiler(recorder);
                }
                Generator g = new Generator(e, tokenizer, sampler, stdout);
                byte[] promptBytes = prompt == null ? null : prompt.getBytes(StandardCharsets.UTF_8);
                int positions = steps == null ? DEFAULT_STEPS : steps;
                Generator.Result r;
                try {
                    r = mode.equals("chat")
                            ? g.chat(promptBytes, systemPrompt == null ? null : systemPrompt.getBytes(StandardCharsets.UTF_8), positions, io.stdin())
                            : g.generate(promptBytes, positions);
                } catch (NonFiniteLogitsException ex) {
                    throw ex.naming(fileName(modelPath));
                }
                report(e, recorder, r);
            }
        }
        return 0;
    }

    /**
     * A GGUF model: its own tokenizer and chat template, llama.cpp's way of generating (BOS as the vocabulary asks,
     * stop at end-of-generation tokens) and chat (the template over the whole history).
     */
    private int runGguf(Path modelPath, long rngSeed) {
        model.checkNoTokenizerForGguf();
        try (Model m = GgufModelLoader.load(modelPath)) {
            GgufFile file = m.gguf().orElseThrow();
            GgufTokenizer tokenizer = ggufTokenizer(m);
            ChatTemplate template = mode.equals("chat") ? ChatTemplate.forGguf(file, tokenizer, chatTemplatePath)
                    .orElseThrow(() -> new Llama2jException(file.name() + ": no tokenizer.chat_template; give one with"
                            + " --chat-template FILE", Llama2jException.BAD_USAGE)) : null;
            if (template != null) {
                template.requireParses(); // before the engine is built: a broken template is one line, at once
            }
            Sampler sampler = new Sampler(m.config().vocabSize(), temperature, topp, topK, minP, rngSeed, FloatMath.vectorized());
            try (InferenceEngine e = Engines.create(m, engine.toOptions(profile))) {
                ProfileRecorder recorder = null;
                if (profile) {
                    recorder = new ProfileRecorder();
                    e.setProfiler(recorder);
                }
                GgufGenerator g = new GgufGenerator(e, tokenizer, sampler, io.stdout(),
                        GgufModelLoader.trainedContext(file));
                PrintWriter err = spec.commandLine().getErr();
                Generator.Result r;
                try {
                    r = mode.equals("chat")
                            ? g.chat(template, tokenizer.addsBos(), prompt, systemPrompt, steps == null ? 0 : steps, io.stdin(),
                                    note -> { err.println("llama2j: " + note); err.flush(); })
                            : g.generate(prompt, steps == null ? DEFAULT_STEPS : steps);
                } catch (NonFiniteLogitsException ex) {
                    throw ex.naming(fileName(modelPath));
                }
                report(e, recorder, r);
            }
        }
        return 0;
    }

    /** The file's name, for messages (the path when it has none). */
    private static String fileName(Path p) {
        Path name = p.getFileName();
        return (name == null ? p : name).toString();
    }

    /** A GGUF model's tokenizer, checked against the model's output rows. */
    static GgufTokenizer ggufTokenizer(Model m) {
        GgufFile file = m.gguf().orElseThrow();
        GgufTokenizer tokenizer = GgufTokenizer.load(file);
        if (m.config().vocabSize() != tokenizer.vocabSize()) {
            throw new Llama2jException(file.name() + ": the model has " + m.config().vocabSize()
                    + " output rows but the vocabulary " + tokenizer.vocabSize() + " tokens");
        }
        return tokenizer;
    }

    /** The profile table and the stats line, on stderr. */
    private void report(InferenceEngine e, ProfileRecorder recorder, Generator.Result r) {
        PrintWriter err = spec.commandLine().getErr();
        if (recorder != null) {
            // Every position counts as a token here (no warm-up): the first ones include JIT warm-up.
            for (int i = 0; i < r.fed().size(); i++) {
                recorder.tokenDone(r.startNanos(), i == 0 ? r.endNanos() - r.startNanos() : 0);
            }
            err.println(new ProfileReport(e.name(), recorder, e.launchesPerToken(), e.graphsPerToken(), e.selection()).toTable());
            err.flush();
        }
        if (!noStats) {
            // the first token counted from the JVM's start too: start-up, model mapping and the engine's warm-up included
            String head = String.format(Locale.ROOT, "[%s] %d positions (%d prompt, %d sampled), ", e.name(), r.fed().size(),
                    Math.min(r.promptTokens(), r.fed().size()), r.generatedTokens());
            if (r.firstTokenNanos() < 0) { // the prompt filled the positions asked for: nothing was sampled, nothing to time
                err.println(head + (r.fed().isEmpty() ? "no token sampled" : "no token sampled (-n counts the prompt's positions too)"));
            } else {
                double sinceJvmStart = java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime()
                        - (System.nanoTime() - r.firstTokenNanos()) / 1e6;
                err.println(head + String.format(Locale.ROOT,
                        "%.2f tok/s after the first token, time to first token %.1f ms (%.0f ms after the JVM started)",
                        r.tokensPerSecond(), r.timeToFirstTokenMillis(), sinceJvmStart));
            }
            err.flush();
        }
    }
}
