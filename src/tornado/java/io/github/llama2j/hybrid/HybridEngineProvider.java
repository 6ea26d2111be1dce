package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cpu.Kernels;
import io.github.llama2j.cpu.PreparedWeights;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.EngineProvider;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;
import io.github.llama2j.tornado.TensorTypes;
import io.github.llama2j.tornado.TornadoRuntimeCheck;
import io.github.llama2j.tornado.DeviceSession;
import io.github.llama2j.tornado.TornadoEngine;
import io.github.llama2j.tornado.TornadoSettings;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Registers {@code --engine hybrid} (META-INF/services): the TornadoVM device of {@code --device} plus the
 * host CPU ({@code --threads}, {@code --exact} as for the CPU engine), split by {@code --split F} (the
 * device's fraction of every kind of rows) or calibrated ({@code --split auto}). Prints one summary line
 * on stderr (what each side owns, and for auto what was measured); {@code --verbose} adds the device
 * set-up, every calibration candidate, and at close the per-token breakdown of time and bytes. A split that
 * gives the device every row runs the TornadoVM engine instead (same work, one launch per token). With
 * {@code --split auto} the whole CPU engine and the whole TornadoVM engine (if the model fits the device)
 * are timed too, and the fastest of all runs ({@link Calibrator}); the engine returned then says why
 * ({@link InferenceEngine#selection()}).
 */
public final class HybridEngineProvider implements EngineProvider {
    /** The whole engines' labels in calibration summaries. */
    static final String CPU = "cpu", TORNADO = "tornado";

    @Override
    public String kind() {
        return "hybrid";
    }

    /**
     * GGUF models of the types the TornadoVM engine runs (F32, F16, Q8_0, Q4_0, Q4_K, Q6_K), with llama.cpp's arithmetic on both
     * sides; other types are refused naming the tensor before a device is touched ({@link TensorTypes}).
     */
    @Override
    public boolean runsGguf() {
        return true;
    }

    /**
     * The hybrid engine; or, when the split gives the device every row of every kind, the TornadoVM engine
     * itself: the same work with the activations on the device for the whole token instead of 2 × layers + 1
     * round trips to the host. With {@code --split auto}: the fastest of the best split, the CPU engine and the
     * TornadoVM engine, measured, with its {@link InferenceEngine#selection() selection} saying why.
     */
    @Override
    public InferenceEngine create(Model model, EngineOptions options) {
        double split = options.split();
        return build(model, options, null, System.err, split, split, split, true);
    }

    /**
     * As {@link #create(Model, EngineOptions)} (the whole engines compete with the splits under {@code --split auto})
     * with the given settings and summary stream.
     */
    static InferenceEngine createAny(Model model, EngineOptions options, TornadoSettings settings, PrintStream summary) {
        double split = options.split();
        return build(model, options, settings, summary, split, split, split, true);
    }

    /**
     * Always the hybrid engine (also when the device gets everything).
     *
     * @param settings work-group sizes and memory limit, or null to read them for the device's type
     * @param summary  where the one-line summary goes (stderr), or null for none
     */
    public static HybridEngine create(Model model, EngineOptions options, TornadoSettings settings, PrintStream summary) {
        double split = options.split();
        return (HybridEngine) build(model, options, settings, summary, split, split, split, false);
    }

    /**
     * As {@link #create(Model, EngineOptions, TornadoSettings, PrintStream)} with the device's fraction of
     * each kind of rows given separately (NaN: calibrate all of them).
     */
    static HybridEngine create(Model model, EngineOptions options, TornadoSettings settings, PrintStream summary,
                               double attention, double ffn, double classifier) {
        return (HybridEngine) build(model, options, settings, summary, attention, ffn, classifier, false);
    }

    private static InferenceEngine build(Model model, EngineOptions options, TornadoSettings settings, PrintStream summary,
                                         double attention, double ffn, double classifier, boolean wholeEngines) {
        if (model.config().ropeStyle() == RopeStyle.LLAMA2C) {
            TensorTypes.requireSupported(model.config(), model.weights());
        } else {
            TensorTypes.requireSupportedGgufHybrid(model.config(), model.weights());
        }
        TornadoRuntimeCheck.require(); // before DeviceSession (and the shards) link against TornadoVM
        DeviceSession session = DeviceSession.open(options.device());
        TornadoSettings s = session.settings(settings);
        long available = session.memoryAvailable(s);
        PrintStream log = options.verbose() ? System.err : null;
        FloatMath math = FloatMath.standard();
        Kernels kernels = Engines.cpuKernels(options.exact());
        // the CPU shards' load-time copies (Q4_K slices; none with --weight-copies=off), shared by the calibration's shards
        PreparedWeights copies = new PreparedWeights(options.weightCopies());
        Configuration c = model.config();
        Weights w = model.weights();
        // A calibration engine logs its device set-up only when verbose; the final one too.
        List<HybridEngine.ShardFactory> shards = List.of(
                (cc, ww, plan, i, in) -> new DeviceShard(session, cc, ww, plan, i, s, in, math, options.profile(), available, log),
                (cc, ww, plan, i, in) -> new CpuShard("cpu", cc, ww, plan, i, kernels, copies, options.threads(), math, in, true));
        String how;
        SplitPlan plan;
        Calibrator.Result calibrated = null;
        if (Double.isNaN(attention) || Double.isNaN(ffn) || Double.isNaN(classifier)) {
            List<Calibrator.WholeCandidate> wholes = new ArrayList<>();
            if (wholeEngines) {
                wholes.add(new Calibrator.WholeCandidate(CPU, () -> Engines.create(model, EngineOptions.cpu(options.threads(),
                        options.exact()).withWeightCopies(options.weightCopies()))));
                if (session.holdsWholeModel(c, w, s)) {
                    wholes.add(new Calibrator.WholeCandidate(TORNADO, () -> new TornadoEngine(session, model, options, s)));
                } else if (log != null) {
                    log.printf(Locale.ROOT, "[hybrid] calibrate: the whole model does not fit the device: the TornadoVM engine "
                            + "is not a candidate%n");
                }
            }
            calibrated = Calibrator.calibrate(c, w, p -> DeviceBudget.bytes(c, w, p, 0) <= available,
                    new DeviceCalibration(shards), wholes, log);
            plan = calibrated.plan();
            how = String.format(Locale.ROOT, "auto: best split: device fractions attention %.3f, ffn %.3f, classifier %.3f; %s",
                    plan.fraction(0, SplitPlan.Kind.ATTENTION), plan.fraction(0, SplitPlan.Kind.FFN),
                    plan.fraction(0, SplitPlan.Kind.CLASSIFIER), Calibrator.summary(calibrated, c.nLayers()));
            InferenceEngine whole = wholeEngine(calibrated, plan, how, summary);
            if (whole != null) {
                return whole;
            }
        } else {
            for (double f : new double[]{attention, ffn, classifier}) {
                if (!(f >= 0 && f <= 1)) {
                    throw new Llama2jException("--split is " + f + ", must be in [0, 1]", Llama2jException.BAD_USAGE);
                }
            }
            plan = SplitPlan.twoWay(c, SplitPlan.columnGrain(c, w), attention, ffn, classifier);
            how = attention == ffn && ffn == classifier ? "--split " + attention
                    : String.format(Locale.ROOT, "device fractions attention %s, ffn %s, classifier %s", attention, ffn, classifier);
        }
        if (wholeEngines && allOnShard0(plan)) {
            TornadoEngine engine = new TornadoEngine(session, model, options, s);
            if (summary != null) {
                summary.printf(Locale.ROOT, "[hybrid] every row on %s: running the TornadoVM engine, no host round trips [%s]%n",
                        engine.deviceDescription(), how);
                summary.flush();
            }
            return calibrated == null ? engine : new SelectedEngine(engine, "hybrid auto: every row on the device, the "
                    + "TornadoVM engine [" + how + "]", calibrated);
        }
        HybridEngine engine = new HybridEngine(c, w, plan, shards, log);
        if (log != null) {
            log.printf(Locale.ROOT, "[hybrid] per token: %d device kernel launches%n", engine.launchesPerToken());
            log.flush();
        }
        if (summary != null) {
            summary.printf(Locale.ROOT, "[hybrid] %s (%s) + cpu (%d threads, %s): %s [%s]%n", engine.shard(0).track(),
                    ((DeviceShard) engine.shard(0)).deviceName(), options.threads(), kernels.name(), plan.describe(), how);
            summary.flush();
        }
        return calibrated == null || !wholeEngines ? engine
                : new SelectedEngine(engine, String.format(Locale.ROOT, "hybrid auto: the split %s, est. %.2f ms/token [%s]",
                plan.describe(), calibrated.estimatedTokenNanos() / 1e6, how), calibrated);
    }

    /**
     * After calibration: the whole engine to run, if one was faster than the best split (with a summary line
     * saying so); or the whole TornadoVM engine already built, if the best split gives the device every row.
     * Otherwise closes the whole engine kept by the calibration and returns null (the split runs).
     */
    static InferenceEngine wholeEngine(Calibrator.Result r, SplitPlan plan, String how, PrintStream summary) {
        InferenceEngine fastest = r.fastestWhole();
        if (fastest == null) {
            return null;
        }
        Calibrator.Whole chosen = r.chosenWhole();
        String reason = "the fastest candidate";
        if (chosen == null && allOnShard0(plan) && r.fastestWholeTime().label().equals(TORNADO)) {
            chosen = r.fastestWholeTime();   // the split's engine for "every row on the device" is this one
            reason = "the best split gives the device every row";
        }
        if (chosen == null) {
            fastest.close();
            return null;
        }
        String why = String.format(Locale.ROOT, "hybrid auto: the whole %s engine (%s), %s: %.2f ms/token measured [%s]",
                chosen.label(), fastest.name(), reason, chosen.tokenNanos() / 1e6, how);
        if (summary != null) {
            summary.printf(Locale.ROOT, "[hybrid] running the %s engine (%s), %s: %.2f ms/token [%s]%n",
                    chosen.label().equals(CPU) ? "CPU" : "TornadoVM", fastest.name(), reason, chosen.tokenNanos() / 1e6, how);
            summary.flush();
        }
        return new SelectedEngine(fastest, why, r);
    }

    static boolean allOnShard0(SplitPlan plan) {
        for (SplitPlan.Kind k : SplitPlan.Kind.values()) {
            if (plan.fraction(0, k) < 1) {
                return false;
            }
        }
        return true;
    }

    /**
     * Calibration engines: the device shard is built once, for the largest candidate, and each candidate
     * uses it through {@link Calibrator#emulate}; each candidate's CPU shard is built for real.
     */
    private static final class DeviceCalibration implements Calibrator.EngineMaker {
        private final List<HybridEngine.ShardFactory> shards;
        private Shard device;

        DeviceCalibration(List<HybridEngine.ShardFactory> shards) {
            this.shards = shards;
        }

        @Override
        public void prepare(Configuration one, Weights w1, SplitPlan largest) {
            device = shards.get(0).create(one, w1, largest, 0, new StepInput(one.dim(), one.vocabSize()));
        }

        @Override
        public HybridEngine make(Configuration one, Weights w1, SplitPlan plan) {
            return new HybridEngine(one, w1, plan, List.of(
                    (cc, ww, p, i, in) -> Calibrator.emulate((DeviceShard) device, p, i, in), shards.get(1)), null);
        }

        @Override
        public void close() {
            if (device != null) {
                device.close();
            }
        }
    }
}
