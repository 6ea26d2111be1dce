package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.AtomicFile;
import io.github.llama2j.model.Model;
import io.github.llama2j.profile.ChromeTrace;
import io.github.llama2j.profile.ProfileRecorder;
import io.github.llama2j.profile.ProfileReport;
import io.github.llama2j.sampling.Sampler;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code llama2j profile}: where every microsecond and byte of a token goes. */
@Command(name = "profile", mixinStandardHelpOptions = true,
        description = "Profile an engine: per-task kernel, copy, dispatch and JIT times, as a table, JSON or a Chrome trace.",
        footer = {"",
                "Examples:",
                "  llama2j profile stories15M --tokens 64",
                "  llama2j profile model.bin --engine tornado --trace trace.json --dump-kernels kernels/",
                "  llama2j profile model.bin --json > profile.json",
                "",
                "Greedy tokens are generated from BOS; the warm-up tokens are not counted.",
                "MODEL and -z are as for 'llama2j run' (-z is only checked against the model).",
                "Open the trace in https://ui.perfetto.dev or chrome://tracing."})
public final class ProfileCommand implements Callable<Integer> {

    @Mixin
    ModelMixin model;

    @Option(names = "--tokens", defaultValue = "32", description = "Tokens to profile after warm-up (default ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--warmup", defaultValue = "8", description = "Warm-up tokens, not counted (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--trace", paramLabel = "FILE.json", description = "Write a Chrome trace-event file.")
    Path trace;

    @Option(names = "--dump-kernels", paramLabel = "DIR", description = "Write the generated device code of every task (TornadoVM engine).")
    Path dumpKernels;

    @Option(names = "--json", description = "Print the profile as JSON instead of a table.")
    boolean json;

    @Mixin
    EngineMixin engine;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        if (tokens < 1 || warmup < 0) {
            throw new Llama2jException("--tokens must be >= 1 and --warmup >= 0", Llama2jException.BAD_USAGE);
        }
        if (trace != null) {
            AtomicFile.checkWritable(trace); // before the model is loaded and profiled, not after
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        EngineOptions options = engine.toOptions(true);
        // Generated code can only be captured while the engine compiles it, so the engine is built asking for it.
        boolean dump = dumpKernels != null && Engines.generatesKernels(options.kind());
        if (dump) {
            options = options.withKernelSources();
        }
        if (dumpKernels != null && !dump) {
            // Like other engine-specific options (--device, --split), not an error for an engine it does not apply to.
            err.println("--dump-kernels: engine '" + options.kind() + "' runs no generated device code, nothing to write "
                    + "(the tornado engine writes its OpenCL C)");
        }
        try (Model m = model.loadChecked(err);
             InferenceEngine e = Engines.create(m, options)) {
            if (warmup + tokens > m.config().seqLen()) {
                throw new Llama2jException("--warmup + --tokens = " + (warmup + tokens) + " exceeds the model's seq_len "
                        + m.config().seqLen(), Llama2jException.BAD_USAGE);
            }
            ProfileRecorder recorder = profile(e, warmup, tokens);
            ProfileReport report = new ProfileReport(e.name(), recorder, e.launchesPerToken(), e.graphsPerToken(),
                    e.selection());
            out.println(json ? report.toJson() : report.toTable());
            out.flush();
            if (trace != null) {
                AtomicFile.write(trace, temp -> {
                    ChromeTrace.write(temp, e.name(), recorder);
                    return null;
                });
                err.println("trace written to " + trace);
            }
            if (dump) {
                e.dumpKernels(dumpKernels);
                err.println(e.taskNames().size() + " kernels written to " + dumpKernels);
            }
            err.flush();
        }
        return 0;
    }

    /** Runs warm-up tokens unrecorded (compilation events kept), then {@code tokens} recorded ones, greedily from BOS. */
    public static ProfileRecorder profile(InferenceEngine e, int warmup, int tokens) {
        ProfileRecorder recorder = new ProfileRecorder();
        e.setProfiler(recorder);
        int token = 1;
        int pos = 0;
        recorder.pause();
        for (; pos < warmup; pos++) {
            token = Sampler.argmax(e.forward(token, pos), e.config().vocabSize());
        }
        recorder.clearPerTokenEvents();
        recorder.resume();
        for (int i = 0; i < tokens; i++, pos++) {
            long t0 = System.nanoTime();
            float[] logits = e.forward(token, pos);
            token = Sampler.argmax(logits, e.config().vocabSize());
            recorder.tokenDone(t0, System.nanoTime() - t0);
        }
        e.setProfiler(io.github.llama2j.profile.Profiler.NONE);
        return recorder;
    }
}
