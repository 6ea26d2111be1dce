package io.github.llama2j.hybrid;

import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Weights;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * {@code --split auto}: measures candidate splits on the model's own first layer (and its classifier)
 * and picks, for each kind of step, the device fraction whose step was fastest.
 *
 * <p>The steps of a token are separated by the exchanges, so the time of a token is the sum of its steps'
 * times, and the time of each kind of step depends only on that kind's split: attention, feed-forward and
 * classifier can be chosen independently (a token costs layers × (attention + ffn) + classifier).
 *
 * <p>Each candidate runs for real: both sides at once on a one-layer engine, exchanges included, timed over
 * a few tokens after a warm-up (best of a few rounds, against noise). The candidates are the device
 * fractions 0 (all CPU), 1/16, 2/16, ... up to 1 (all device), or up to the largest fraction whose device
 * share of the WHOLE model fits the device memory: that is how a model larger than the device runs. So that
 * seventeen candidates do not cost seventeen JIT compilations, the device shard is built once, for the
 * largest candidate, and emulates the smaller ones by launching fewer work-groups (the same number of weight
 * bytes streamed as the smaller slice would; see {@link #emulate}); the CPU shard of each
 * candidate is real (views and column copies, nothing to compile).
 *
 * <p>Whole engines compete too: a split pays 2 × layers + 1 exchanges per token, which the CPU engine and the
 * TornadoVM engine (every row on the device, activations kept there for the whole token) do not. Each whole
 * engine the caller offers ({@link WholeCandidate}) is built on the full model and timed over full tokens
 * (warm-up, then the best of a few rounds, as the splits), and {@code auto} runs the fastest of all: the best
 * split's estimate against each whole engine's measured time. The fastest whole engine is kept open in the
 * {@link Result}, so a chosen TornadoVM engine is not compiled twice.
 */
final class Calibrator {
    /** Candidate device fractions: sixteenths. */
    static final int STEPS = 16;
    private static final int WARMUP_TOKENS = 2, ROUNDS = 5, TOKENS_PER_ROUND = 3;

    /** One measured candidate: the device's fraction of each kind and the mean step times (ns). */
    record Point(double attention, double ffn, double classifier, SplitPlan plan, double attentionNanos, double ffnNanos,
                 double classifierNanos) {
        double tokenNanos(int layers) {
            return layers * (attentionNanos + ffnNanos) + classifierNanos;
        }
    }

    /**
     * The outcome: the chosen plan (of the whole model; per kind, the device boundary of the candidate
     * whose step of that kind was fastest), the estimate of a full token for it, and every candidate measured.
     */
    record Result(SplitPlan plan, double estimatedTokenNanos, List<Point> points, long calibrationNanos, List<Whole> wholes,
                  InferenceEngine fastestWhole) {

        Result {
            points = List.copyOf(points);
            wholes = List.copyOf(wholes);
            if (fastestWhole == null && !wholes.isEmpty()) {
                throw new IllegalArgumentException("whole engines timed but none kept");
            }
        }

        /** The fastest whole engine's measurement, or null if none was offered. */
        Whole fastestWholeTime() {
            return wholes.stream().min(java.util.Comparator.comparingDouble(Whole::tokenNanos)).orElse(null);
        }

        /**
         * The whole engine to run instead of the split: the fastest one, if it was faster per token than the
         * split's estimate; null when the split is at least as fast.
         */
        Whole chosenWhole() {
            Whole best = fastestWholeTime();
            return best != null && best.tokenNanos() < estimatedTokenNanos ? best : null;
        }

        /** The time per token of what was chosen: the whole engine's measured time or the split's estimate. */
        double chosenTokenNanos() {
            Whole w = chosenWhole();
            return w != null ? w.tokenNanos() : estimatedTokenNanos;
        }

        /** The estimate of a full token at a uniform fraction that was measured, or NaN. */
        double estimateAt(double fraction, int layers) {
            for (Point p : points) {
                if (p.attention == fraction && p.ffn == fraction && p.classifier == fraction) {
                    return p.tokenNanos(layers);
                }
            }
            return Double.NaN;
        }
    }

    /**
     * A whole engine {@code auto} may run instead of a split.
     *
     * @param label what summaries call it ({@code cpu}, {@code tornado})
     * @param build builds it on the full model (called once, during calibration)
     */
    record WholeCandidate(String label, Supplier<InferenceEngine> build) {
        WholeCandidate {
            if (label == null || label.isBlank() || build == null) {
                throw new IllegalArgumentException("a whole-engine candidate needs a label and a builder");
            }
        }
    }

    /** A whole engine's measured time per full token (ns). */
    record Whole(String label, double tokenNanos) {
    }

    /** Builds the calibration engines: one-layer engines for candidate plans of the one-layer configuration. */
    interface EngineMaker extends AutoCloseable {
        /** Called once before any {@link #make}: the candidate with the largest device share. */
        void prepare(Configuration oneLayer, Weights weights, SplitPlan largest);

        HybridEngine make(Configuration oneLayer, Weights weights, SplitPlan plan);

        /** Frees what {@link #prepare} built. */
        @Override
        void close();
    }

    private Calibrator() {
    }

    /**
     * @param c     the model's configuration
     * @param fits  whether a plan of the FULL model fits on the device
     * @param maker builds the calibration engines
     * @param log   per-candidate lines (verbose), or null
     */
    static Result calibrate(Configuration c, Weights w, Predicate<SplitPlan> fits, EngineMaker maker, PrintStream log) {
        return calibrate(c, w, fits, maker, List.of(), log);
    }

    /**
     * As above, and then each whole engine in {@code wholes} is built and timed over full tokens; the fastest
     * one stays open in {@link Result#fastestWhole()} (the caller runs it, or closes it), the others are closed.
     */
    static Result calibrate(Configuration c, Weights w, Predicate<SplitPlan> fits, EngineMaker maker, List<WholeCandidate> wholes,
                            PrintStream log) {
        long t0 = System.nanoTime();
        Configuration one = firstLayer(c);
        Weights w1 = firstLayer(w);
        int grain = SplitPlan.columnGrain(c, w);   // the whole model's, for the one-layer plans too
        int maxStep = STEPS;
        while (maxStep > 0 && !fits.test(SplitPlan.twoWay(c, grain, fraction(maxStep), fraction(maxStep), fraction(maxStep)))) {
            maxStep--;
        }
        if (log != null && maxStep < STEPS) {
            log.printf(Locale.ROOT, "[hybrid] calibrate: the device holds at most %.4f of every kind of rows%n",
                    fraction(maxStep));
        }
        Map<String, Point> measured = new LinkedHashMap<>();
        try (maker) {
            double fmax = fraction(maxStep);
            maker.prepare(one, w1, SplitPlan.twoWay(one, grain, fmax, fmax, fmax));
            // The all-CPU candidate first, twice: the first pass lets the JIT compile the CPU kernels (until it
            // does, Vector API code runs many times slower and would make every CPU share look expensive).
            measure(c, one, w1, grain, 0, maker, new LinkedHashMap<>(), null);
            for (int step = 0; step <= maxStep; step++) {
                double f = fraction(step);
                measure(c, one, w1, grain, f, maker, measured, log);
            }
        }
        SplitPlan chosen = best(c, measured.values());
        double estimate = estimate(measured.values(), chosen, c.nLayers());
        // The mixed choice must fit as a whole; if it does not, take the fastest candidate, which does.
        if (!fits.test(chosen)) {
            Point p = measured.values().stream().min(java.util.Comparator.comparingDouble(q -> q.tokenNanos(c.nLayers())))
                    .orElseThrow();
            chosen = p.plan();
            estimate = p.tokenNanos(c.nLayers());
        }
        List<Whole> timed = new java.util.ArrayList<>();
        InferenceEngine fastest = null;
        double fastestNanos = Double.MAX_VALUE;
        try {
            for (WholeCandidate candidate : wholes) {
                InferenceEngine e = candidate.build().get();
                double nanos;
                try {
                    nanos = timeWhole(e, c.seqLen());
                } catch (RuntimeException ex) {
                    e.close();
                    throw ex;
                }
                timed.add(new Whole(candidate.label(), nanos));
                if (log != null) {
                    log.printf(Locale.ROOT, "[hybrid] calibrate: whole %s engine (%s, no exchanges): %.3f ms/token measured%n",
                            candidate.label(), e.name(), nanos / 1e6);
                    log.flush();
                }
                if (nanos < fastestNanos) {
                    if (fastest != null) {
                        fastest.close();
                    }
                    fastest = e;
                    fastestNanos = nanos;
                } else {
                    e.close();
                }
            }
        } catch (RuntimeException ex) {
            if (fastest != null) {
                fastest.close();
            }
            throw ex;
        }
        return new Result(chosen, estimate, List.copyOf(measured.values()), System.nanoTime() - t0, timed, fastest);
    }

    /**
     * A whole engine's time per token: a warm-up, then the best of {@link #ROUNDS} rounds' mean, over full
     * tokens from position 0 (as the split candidates, short contexts only); the engine is reset afterwards.
     */
    static double timeWhole(InferenceEngine e, int seqLen) {
        int pos = 0;
        for (int i = 0; i < WARMUP_TOKENS; i++) {
            e.forward(1, pos++ % seqLen);
        }
        double best = Double.MAX_VALUE;
        for (int r = 0; r < ROUNDS; r++) {
            long t = System.nanoTime();
            for (int i = 0; i < TOKENS_PER_ROUND; i++) {
                e.forward(1, pos++ % seqLen);
            }
            best = Math.min(best, (System.nanoTime() - t) / (double) TOKENS_PER_ROUND);
        }
        e.reset();
        return best;
    }

    private static double fraction(int step) {
        return step / (double) STEPS;
    }

    private static void measure(Configuration full, Configuration one, Weights w1, int grain, double f, EngineMaker maker,
                                Map<String, Point> measured, PrintStream log) {
        SplitPlan fullPlan = SplitPlan.twoWay(full, grain, f, f, f);
        String key = fullPlan.describe();
        if (measured.containsKey(key)) {
            return;   // this fraction rounds to a split already measured
        }
        SplitPlan plan = SplitPlan.twoWay(one, grain, f, f, f);
        double att = Double.MAX_VALUE, ffn = Double.MAX_VALUE, cls = Double.MAX_VALUE;
        try (HybridEngine e = maker.make(one, w1, plan)) {
            int pos = 0;
            for (int i = 0; i < WARMUP_TOKENS; i++) {
                e.forward(1, pos++);
            }
            for (int r = 0; r < ROUNDS; r++) {
                e.stats().reset();
                for (int i = 0; i < TOKENS_PER_ROUND; i++) {
                    e.forward(1, pos++ % one.seqLen());
                }
                att = Math.min(att, e.stats().meanStepNanos(SplitPlan.Kind.ATTENTION));
                ffn = Math.min(ffn, e.stats().meanStepNanos(SplitPlan.Kind.FFN));
                cls = Math.min(cls, e.stats().meanStepNanos(SplitPlan.Kind.CLASSIFIER));
            }
        }
        Point p = new Point(f, f, f, fullPlan, att, ffn, cls);
        measured.put(key, p);
        if (log != null) {
            log.printf(Locale.ROOT, "[hybrid] calibrate: device fraction %.4f (%s): attention step %.3f ms, ffn step %.3f ms, "
                            + "classifier %.3f ms -> %.3f ms/token%n", f, fullPlan.describe(), att / 1e6, ffn / 1e6, cls / 1e6,
                    p.tokenNanos(full.nLayers()) / 1e6);
            log.flush();
        }
    }

    /** Per kind, the device's boundary in the candidate whose step of that kind was fastest. */
    private static SplitPlan best(Configuration c, Iterable<Point> points) {
        Point att = null, ffn = null, cls = null;
        for (Point p : points) {
            att = att == null || p.attentionNanos < att.attentionNanos ? p : att;
            ffn = ffn == null || p.ffnNanos < ffn.ffnNanos ? p : ffn;
            cls = cls == null || p.classifierNanos < cls.classifierNanos ? p : cls;
        }
        return new SplitPlan(new int[]{0, att.plan.headEnd(0), c.nHeads()}, new int[]{0, ffn.plan.ffnEnd(0), c.hiddenDim()},
                new int[]{0, cls.plan.vocabEnd(0), c.vocabSize()});
    }

    /** layers × (attention + ffn) + classifier, each kind's time the best measured with that kind's boundary. */
    private static double estimate(Iterable<Point> points, SplitPlan chosen, int layers) {
        double att = Double.MAX_VALUE, ffn = Double.MAX_VALUE, cls = Double.MAX_VALUE;
        for (Point p : points) {
            if (p.plan.headEnd(0) == chosen.headEnd(0)) {
                att = Math.min(att, p.attentionNanos);
            }
            if (p.plan.ffnEnd(0) == chosen.ffnEnd(0)) {
                ffn = Math.min(ffn, p.ffnNanos);
            }
            if (p.plan.vocabEnd(0) == chosen.vocabEnd(0)) {
                cls = Math.min(cls, p.classifierNanos);
            }
        }
        return layers * (att + ffn) + cls;
    }

    /** The same configuration with one layer (every other hyper-parameter, a GGUF model's included, kept). */
    static Configuration firstLayer(Configuration c) {
        return new Configuration(c.dim(), c.hiddenDim(), 1, c.nHeads(), c.nKvHeads(), c.vocabSize(), c.seqLen(),
                c.sharedClassifier(), c.groupSize(), c.headSize(), c.rmsEps(), c.ropeTheta(), c.ropeStyle());
    }

    /** The same weights with only layer 0, its biases and head norms included (the arrays are views; nothing is copied). */
    static Weights firstLayer(Weights w) {
        return new Weights(w.tokenEmbedding(), Arrays.copyOf(w.rmsAtt(), 1), Arrays.copyOf(w.wq(), 1),
                Arrays.copyOf(w.wk(), 1), Arrays.copyOf(w.wv(), 1), Arrays.copyOf(w.wo(), 1), Arrays.copyOf(w.rmsFfn(), 1),
                Arrays.copyOf(w.w1(), 1), Arrays.copyOf(w.w2(), 1), Arrays.copyOf(w.w3(), 1), w.rmsFinal(), w.classifier(),
                first(w.bq()), first(w.bk()), first(w.bv()), first(w.qNorm()), first(w.kNorm()), w.ropeFreqs());
    }

    private static java.lang.foreign.MemorySegment[] first(java.lang.foreign.MemorySegment[] perLayer) {
        return perLayer == null ? null : Arrays.copyOf(perLayer, 1);
    }

    /** One line on what was measured, e.g. for the engine's summary. */
    static String summary(Result r, int layers) {
        double cpu = r.estimateAt(0, layers), dev = r.estimateAt(1, layers);
        StringBuilder wholes = new StringBuilder();
        for (Whole w : r.wholes()) {
            wholes.append(String.format(Locale.ROOT, "; whole %s engine %.2f ms/token measured", w.label(), w.tokenNanos() / 1e6));
        }
        return String.format(Locale.ROOT, "calibrated %d splits on layer 0 in %.1f s: best split est. %.2f ms/token (all-CPU %s, "
                        + "all-device %s)%s", r.points().size(), r.calibrationNanos() / 1e9, r.estimatedTokenNanos() / 1e6,
                Double.isNaN(cpu) ? "n/a" : String.format(Locale.ROOT, "%.2f", cpu / 1e6),
                Double.isNaN(dev) ? "does not fit" : String.format(Locale.ROOT, "%.2f", dev / 1e6), wholes);
    }

    /**
     * The calibration's device shard for one candidate: {@code device}, built for the largest candidate, from
     * now on computes as if it owned {@code plan}'s share for {@code shard} (no more than it was built with):
     * every grid shrinks to that share's work-groups ({@link ShardGraphs#resize}), so each step streams as
     * many weights as that share's own slices would, without building and JIT-compiling a shard per
     * candidate. The results are meaningless (partial sums are handed on as zeros; only the candidate's rows
     * of the logits are), only the time counts. Closing the result leaves {@code device} open.
     */
    static Shard emulate(DeviceShard device, SplitPlan plan, int shard, StepInput input) {
        ShardGraphs.Share share = device.graphs().shareOf(plan, shard);
        if (!share.within(device.graphs().built())) {
            throw new IllegalArgumentException("cannot emulate " + plan + ": more than the shard was built with");
        }
        device.graphs().resize(share);
        return new Emulating(device, share.vocabRows(), input);
    }

    /** The shared calibration device shard, emulating one candidate's share. */
    private static final class Emulating implements Shard {
        private final DeviceShard device;
        private final int vocabRows;
        private final StepInput in;
        private final float[] partial;

        Emulating(DeviceShard device, int vocabRows, StepInput in) {
            this.device = device;
            this.vocabRows = vocabRows;
            this.in = in;
            this.partial = new float[device.partial().length];
        }

        @Override
        public String track() {
            return device.track();
        }

        @Override
        public boolean runsOnHost() {
            return false;
        }

        @Override
        public void run(SplitPlan.Kind kind, int layer) {
            uk.ac.manchester.tornado.api.types.arrays.FloatArray out = device.execute(kind, layer, in);
            long t = System.nanoTime();
            if (kind == SplitPlan.Kind.CLASSIFIER) {
                java.lang.foreign.MemorySegment.copy(out.getSegment(), java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, in.logits,
                        device.vocabStart(), vocabRows);
            } else {
                // Only some rows were computed: copy as the real step does, then keep the residual stream clean.
                java.lang.foreign.MemorySegment.copy(out.getSegment(), java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, partial, 0,
                        partial.length);
                Arrays.fill(partial, 0f);
            }
            device.last().copyOutNanos += System.nanoTime() - t;
        }

        @Override
        public float[] partial() {
            return partial;
        }

        @Override
        public StepTimes last() {
            return device.last();
        }

        @Override
        public long weightBytes(SplitPlan.Kind kind) {
            return device.weightBytes(kind);
        }

        @Override
        public void close() {
        }
    }
}
