package io.github.llama2j.bench;

import io.github.llama2j.cpu.CpuEngine;
import io.github.llama2j.cpu.ExactVectorKernels;
import io.github.llama2j.cpu.Kernels;
import io.github.llama2j.cpu.VectorKernels;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * Tokens per second of the CPU engine: greedy decoding from BOS, {@code steps} positions per run,
 * the first run as warm-up (JIT), then {@code runs} measured runs; prints each run and the median.
 * Sampling is a plain argmax, so this measures the forward pass only.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes \
 *      io.github.llama2j.bench.EngineBench MODEL.bin [threads=2] [exact=false] [steps=256] [runs=3]
 * </pre>
 */
public final class EngineBench {
    private EngineBench() {
    }

    public static void main(String[] args) {
        Path path = Path.of(args[0]);
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        boolean exact = args.length > 2 && Boolean.parseBoolean(args[2]);
        int steps = args.length > 3 ? Integer.parseInt(args[3]) : 256;
        int runs = args.length > 4 ? Integer.parseInt(args[4]) : 3;
        Kernels kernels = exact ? new ExactVectorKernels() : new VectorKernels();
        try (Model model = ModelLoader.load(path); CpuEngine engine = new CpuEngine(model, kernels, io.github.llama2j.math.FloatMath.standard(), threads)) {
            steps = Math.min(steps, model.config().seqLen());
            double[] rates = new double[runs];
            for (int run = -1; run < runs; run++) {
                long t0 = System.nanoTime();
                int token = 1;
                for (int pos = 0; pos < steps; pos++) {
                    token = argmax(engine.forward(token, pos));
                }
                double rate = steps * 1e9 / (System.nanoTime() - t0);
                System.out.printf(Locale.ROOT, "%s %s run %d: %.2f tok/s%n", path.getFileName(), engine.name(),
                        run, rate);
                if (run >= 0) {
                    rates[run] = rate;
                }
            }
            Arrays.sort(rates);
            System.out.printf(Locale.ROOT, "%s %s median %.2f tok/s over %d runs of %d positions%n",
                    path.getFileName(), engine.name(), rates[runs / 2], runs, steps);
        }
    }

    private static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }
}
