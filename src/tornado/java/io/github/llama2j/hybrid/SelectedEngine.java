package io.github.llama2j.hybrid;

import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.profile.Profiler;

import java.nio.file.Path;
import java.util.List;

/**
 * The engine {@code --engine hybrid --split auto} chose (the CPU engine, the TornadoVM engine or a hybrid
 * split), unchanged, with the reason attached: {@link #selection()} says which candidates were timed and
 * how fast each was. Everything else is the chosen engine's own (its name, launches, profile, kernels).
 *
 * @param engine      the chosen engine; closing this closes it
 * @param selection   one line: what was chosen and every candidate's time per token
 * @param calibration what was measured
 */
record SelectedEngine(InferenceEngine engine, String selection, Calibrator.Result calibration) implements InferenceEngine {
    SelectedEngine {
        if (engine == null || selection == null || selection.isBlank() || calibration == null) {
            throw new IllegalArgumentException("a selected engine needs the engine, the reason and the measurements");
        }
    }

    @Override
    public String name() {
        return engine.name();
    }

    @Override
    public Configuration config() {
        return engine.config();
    }

    @Override
    public float[] forward(int token, int pos) {
        return engine.forward(token, pos);
    }

    @Override
    public float[] forwardBatch(int[] tokens, int startPos) {
        return engine.forwardBatch(tokens, startPos); // the CPU engine's batched prefill when auto chose it
    }

    @Override
    public void setProfiler(Profiler profiler) {
        engine.setProfiler(profiler);
    }

    @Override
    public List<String> taskNames() {
        return engine.taskNames();
    }

    @Override
    public void dumpKernels(Path dir) {
        engine.dumpKernels(dir);
    }

    @Override
    public int launchesPerToken() {
        return engine.launchesPerToken();
    }

    @Override
    public int graphsPerToken() {
        return engine.graphsPerToken();
    }

    @Override
    public void reset() {
        engine.reset();
    }

    @Override
    public void close() {
        engine.close();
    }
}
