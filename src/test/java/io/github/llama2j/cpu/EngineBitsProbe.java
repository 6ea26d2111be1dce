package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;

import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Writes, per model file, the bits of the CPU engine's logits over a short batched prompt and greedy continuation
 * (default kernels and math, two threads): {@link EngineJitStateTest} runs it in a JVM that only interprets and in one
 * whose C2 compiles each method after a few calls (the whole sequence run many times first), and requires the same
 * lines. Arguments: the repetitions of the sequence (the last one's bits are written), the output file, the model
 * files.
 */
public final class EngineBitsProbe {
    static final int PROMPT = 3, GENERATED = 2;

    private EngineBitsProbe() {
    }

    public static void main(String[] args) throws java.io.IOException {
        int reps = Integer.parseInt(args[0]);
        java.util.List<String> lines = new java.util.ArrayList<>();
        for (int rep = 0; rep < reps; rep++) {
            lines.clear();
            for (int i = 2; i < args.length; i++) {
                lines.add(run(Path.of(args[i])));
            }
        }
        java.nio.file.Files.write(Path.of(args[1]), lines);
    }

    private static String run(Path file) {
        try (Model m = file.toString().endsWith(".gguf") ? GgufModelLoader.load(file) : ModelLoader.load(file);
             CpuEngine e = new CpuEngine(m, new VectorKernels(), FloatMath.vectorized(), 2, false)) {
            int[] prompt = new SplittableRandom(3).ints(PROMPT, 0, m.config().vocabSize()).toArray();
            StringBuilder line = new StringBuilder(file.getFileName().toString());
            float[] logits = e.forwardBatch(prompt, 0);
            for (int pos = PROMPT; ; pos++) {
                int next = io.github.llama2j.sampling.Sampler.argmax(logits, logits.length);
                line.append(' ').append(next).append(':').append(Integer.toHexString(bitsHash(logits)));
                if (pos == PROMPT + GENERATED) {
                    return line.toString();
                }
                logits = e.forward(next, pos);
            }
        }
    }

    private static int bitsHash(float[] v) {
        int h = 1;
        for (float f : v) {
            h = 31 * h + Float.floatToRawIntBits(f);
        }
        return h;
    }
}
