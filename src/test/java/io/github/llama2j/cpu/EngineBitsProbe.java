package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;

import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Prints, per model file, the bits of the CPU engine's logits over a short batched prompt and greedy continuation
 * (default kernels, two threads): {@link EngineJitStateTest} runs it in a JVM that only interprets and in one that
 * runs the engine's warm-up first (every kernel and step compiled), and requires the same lines. Arguments:
 * {@code warm} or {@code cold}, then the model files.
 */
public final class EngineBitsProbe {
    static final int PROMPT = 3, GENERATED = 2;

    private EngineBitsProbe() {
    }

    public static void main(String[] args) {
        boolean warm = args[0].equals("warm");
        for (int i = 1; i < args.length; i++) {
            Path file = Path.of(args[i]);
            try (Model m = file.toString().endsWith(".gguf") ? GgufModelLoader.load(file) : ModelLoader.load(file);
                 CpuEngine e = new CpuEngine(m, new VectorKernels(), FloatMath.standard(), 2, false)) {
                if (warm) {
                    e.throwawayPasses(m);
                }
                int[] prompt = new SplittableRandom(3).ints(PROMPT, 0, m.config().vocabSize()).toArray();
                StringBuilder line = new StringBuilder(file.getFileName().toString());
                float[] logits = e.forwardBatch(prompt, 0);
                for (int pos = PROMPT; ; pos++) {
                    int next = argmax(logits);
                    line.append(' ').append(next).append(':').append(Integer.toHexString(bitsHash(logits)));
                    if (pos == PROMPT + GENERATED) {
                        break;
                    }
                    logits = e.forward(next, pos);
                }
                System.out.println(line);
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

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }
}
