package io.github.llama2j.tornado;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;

/**
 * Time to first token of a prompt on the TornadoVM engine, token by token ({@link TornadoEngine#forward} at
 * positions 0 .. N-1, the engine's former prefill) against the batched prefill ({@link TornadoEngine#forwardBatch}),
 * on one engine, in alternating rounds (the order flips every round), after one unmeasured run of each (the first
 * batched run compiles the prefill graphs; its time is printed apart). Wall-clock: the device (PoCL's threads or a
 * GPU) does the work, so a loaded machine's figures are only good as the ratio of the two in the same sitting.
 * A benchmark harness, not a test: run with the TornadoVM JVM flags, the jar and the test classes on the class path
 * (docs/tornadovm.md#batched-prefill gives the command).
 *
 * <p>Arguments: model file, prompt lengths (comma-separated, each at most seq_len), rounds (default 3).
 */
public final class PrefillSpeed {
    private PrefillSpeed() {
    }

    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: PrefillSpeed MODEL N[,N...] [ROUNDS]");
            System.exit(2);
        }
        int[] lengths = Arrays.stream(args[1].split(",")).mapToInt(Integer::parseInt).toArray();
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        try (Model model = ModelLoader.load(Path.of(args[0]))) {
            EngineOptions options = new EngineOptions("tornado", 1, false, null, Double.NaN, false, false);
            try (TornadoEngine e = new TornadoEngine(DeviceSession.open(null), model, options, null, PrefillGraph.CHUNK)) {
                Random rnd = new Random(42);
                int vocab = model.config().vocabSize();
                for (int n : lengths) {
                    int[] prompt = new int[n];
                    prompt[0] = 1;
                    for (int i = 1; i < n; i++) {
                        prompt[i] = rnd.nextInt(vocab);
                    }
                    long compile = timeBatch(e, prompt);
                    timeTokens(e, prompt);
                    long[] tokens = new long[rounds], batch = new long[rounds];
                    for (int r = 0; r < rounds; r++) {
                        if (r % 2 == 0) {
                            tokens[r] = timeTokens(e, prompt);
                            batch[r] = timeBatch(e, prompt);
                        } else {
                            batch[r] = timeBatch(e, prompt);
                            tokens[r] = timeTokens(e, prompt);
                        }
                    }
                    double t = median(tokens) / 1e6, b = median(batch) / 1e6;
                    System.out.printf(Locale.ROOT, "%s prompt %d (chunk %d): token by token %.1f ms, batched %.1f ms, ratio %.2fx "
                                    + "(medians of %d; rounds token %s ms, batched %s ms; first batched run %.1f ms)%n",
                            Path.of(args[0]).getFileName(), n, e.prefillChunk(), t, b, t / b, rounds, ms(tokens), ms(batch),
                            compile / 1e6);
                }
            }
        }
    }

    private static long timeTokens(TornadoEngine e, int[] prompt) {
        long t0 = System.nanoTime();
        for (int i = 0; i < prompt.length; i++) {
            e.forward(prompt[i], i);
        }
        return System.nanoTime() - t0;
    }

    private static long timeBatch(TornadoEngine e, int[] prompt) {
        long t0 = System.nanoTime();
        e.forwardBatch(prompt, 0);
        return System.nanoTime() - t0;
    }

    private static double median(long[] a) {
        long[] s = a.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
    }

    private static String ms(long[] a) {
        StringBuilder sb = new StringBuilder();
        for (long v : a) {
            sb.append(sb.isEmpty() ? "" : "/").append(String.format(Locale.ROOT, "%.0f", v / 1e6));
        }
        return sb.toString();
    }
}
