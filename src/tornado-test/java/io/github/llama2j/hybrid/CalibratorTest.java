package io.github.llama2j.hybrid;

import io.github.llama2j.cpu.PreparedWeights;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.engine.WeightCopies;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.tornado.TornadoSettings;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --split auto}: the calibration's logic (candidates, per-kind choice, the memory limit) on engines
 * whose "device" is a second CPU shard, so nothing is JIT-compiled; then one real calibration against the
 * TornadoVM device with a memory limit that only a small device share fits.
 */
@Tag("tornado")
class CalibratorTest {

    @Test
    void measuresAllCpuAllDeviceAndBetweenThenPicksEachKindsFastest() {
        Model model = HybridTestEngines.model("tiny.bin");
        Configuration c = model.config();
        Calibrator.Result r = Calibrator.calibrate(c, model.weights(), p -> true, new TwoCpuShards(), null);
        assertTrue(r.points().stream().anyMatch(p -> p.attention() == 0 && p.ffn() == 0 && p.classifier() == 0), "all-CPU measured");
        assertTrue(r.points().stream().anyMatch(p -> p.attention() == 1 && p.ffn() == 1 && p.classifier() == 1), "all-device measured");
        // sixteenths, less those that round to the same boundaries (tiny has 8 heads in 4 kv groups)
        assertTrue(r.points().size() >= 9, "candidates: " + r.points());
        Calibrator.Point att = r.points().stream().min(java.util.Comparator.comparingDouble(Calibrator.Point::attentionNanos)).orElseThrow();
        Calibrator.Point ffn = r.points().stream().min(java.util.Comparator.comparingDouble(Calibrator.Point::ffnNanos)).orElseThrow();
        Calibrator.Point cls = r.points().stream().min(java.util.Comparator.comparingDouble(Calibrator.Point::classifierNanos)).orElseThrow();
        assertEquals(att.plan().headEnd(0), r.plan().headEnd(0), "device heads of the fastest attention step");
        assertEquals(ffn.plan().ffnEnd(0), r.plan().ffnEnd(0), "device rows of the fastest ffn step");
        assertEquals(cls.plan().vocabEnd(0), r.plan().vocabEnd(0), "device rows of the fastest classifier step");
        double expected = c.nLayers() * (att.attentionNanos() + ffn.ffnNanos()) + cls.classifierNanos();
        assertEquals(expected, r.estimatedTokenNanos(), 1e-9 * expected);
        assertTrue(Calibrator.summary(r, c.nLayers()).contains("all-CPU"));
    }

    @Test
    void skipsSplitsWhoseDeviceShareDoesNotFit() {
        Model model = HybridTestEngines.model("tiny_q80.bin");
        Configuration c = model.config();
        long limit = DeviceBudget.bytes(c, SplitPlan.twoWay(c, 0.25, 0.25, 0.25), 0);
        TwoCpuShards maker = new TwoCpuShards();
        Calibrator.Result r = Calibrator.calibrate(c, model.weights(), p -> DeviceBudget.bytes(c, p, 0) <= limit, maker, null);
        assertTrue(maker.largest.vocabEnd(0) <= c.vocabSize() / 4, "prepared for " + maker.largest);
        for (Calibrator.Point p : r.points()) {
            assertTrue(DeviceBudget.bytes(c, p.plan(), 0) <= limit, "measured a split that does not fit: " + p);
        }
        assertTrue(DeviceBudget.bytes(c, r.plan(), 0) <= limit, "chosen " + r.plan());
    }

    /** The real thing: the TornadoVM device, with a memory limit that holds at most a quarter of the model. */
    @Test
    void autoOnTheDeviceChoosesASplitThatFits() {
        Model model = HybridTestEngines.model("tiny_unshared.bin");
        Configuration c = model.config();
        long limit = DeviceBudget.bytes(c, SplitPlan.twoWay(c, 0.25, 0.25, 0.25), 0);
        TornadoSettings s = TornadoSettings.load("CPU").withMemoryLimit(limit);
        java.io.ByteArrayOutputStream summary = new java.io.ByteArrayOutputStream();
        try (HybridEngine e = HybridEngineProvider.create(model, HybridTestEngines.options(Double.NaN, false), s,
                new java.io.PrintStream(summary, true, java.nio.charset.StandardCharsets.UTF_8))) {
            assertTrue(DeviceBudget.bytes(c, e.plan(), 0) <= limit, "chosen " + e.plan() + " needs more than " + limit);
            String line = summary.toString(java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(line.startsWith("[hybrid] opencl:") && line.contains("auto: ") && line.contains("calibrated"), line);
            assertEquals(1, line.lines().count(), line);
            e.forward(1, 0);
        }
    }

    /**
     * Calibration emulates smaller device shares on the shard built for the largest by launching fewer
     * work-groups: the classifier rows beyond the emulated share must not be recomputed.
     */
    @Test
    void deviceShardEmulatesASmallerShareWithFewerWorkGroups() {
        Model model = HybridTestEngines.model("tiny.bin");
        Configuration one = new Configuration(64, 172, 1, 8, 4, 512, 512, true, 0);
        io.github.llama2j.model.Weights w1 = Calibrator.firstLayer(model.weights());
        // the classifier only, so one kernel is compiled
        SplitPlan all = SplitPlan.twoWay(one, 0, 0, 1), quarter = SplitPlan.twoWay(one, 0, 0, 0.25);
        StepInput in = new StepInput(one.dim(), one.vocabSize());
        try (DeviceShard d = new DeviceShard(io.github.llama2j.tornado.DeviceSession.of(
                uk.ac.manchester.tornado.api.TornadoExecutionPlan.DEFAULT_DEVICE), one, w1, all, 0,
                TornadoSettings.load("CPU"), in, FloatMath.JAVA, false, Long.MAX_VALUE, null)) {
            java.util.Arrays.fill(in.xb, 1f);
            d.run(SplitPlan.Kind.CLASSIFIER, -1);
            float[] first = d.classifierOutput();
            java.util.Arrays.fill(in.xb, 2f);
            Calibrator.emulate(d, quarter, 0, in).run(SplitPlan.Kind.CLASSIFIER, -1);
            float[] second = d.classifierOutput();
            int rows = quarter.vocabEnd(0);
            for (int r = 0; r < one.vocabSize(); r++) {
                if (r < rows) {
                    assertEquals(2 * first[r], second[r], 1e-4f * Math.max(1, Math.abs(second[r])), "emulated row " + r);
                } else {
                    assertEquals(first[r], second[r], "row " + r + " beyond the emulated share was recomputed");
                }
            }
        }
    }

    /** A whole engine far slower than any split of a tiny model (whose best split costs well under a millisecond). */
    private static final long SLOW_NANOS = 50_000_000;

    @Test
    void runsTheWholeCpuEngineWhenItIsTheFastest() {
        Calibrator.Result r = withWholes(0, SLOW_NANOS);
        assertChoiceIsTheFastest(r);
        assertEquals(HybridEngineProvider.CPU, r.chosenWhole().label(), "chosen: " + r.wholes());
        assertEquals(HybridEngineProvider.CPU, r.fastestWhole().name(), "the fastest engine is the one kept open");
        assertTrue(r.wholes().get(1).tokenNanos() >= SLOW_NANOS, "timed the slow engine at its pace: " + r.wholes());
    }

    @Test
    void runsTheWholeDeviceEngineWhenItIsTheFastest() {
        Calibrator.Result r = withWholes(SLOW_NANOS, 0);
        assertChoiceIsTheFastest(r);
        assertEquals(HybridEngineProvider.TORNADO, r.chosenWhole().label(), "chosen: " + r.wholes());
        assertEquals(HybridEngineProvider.TORNADO, r.fastestWhole().name());
    }

    @Test
    void runsTheSplitWhenItBeatsBothWholeEngines() {
        Calibrator.Result r = withWholes(SLOW_NANOS, 2 * SLOW_NANOS);
        assertChoiceIsTheFastest(r);
        assertNull(r.chosenWhole(), "chosen a whole engine over a split of " + r.estimatedTokenNanos() + " ns: " + r.wholes());
        assertTrue(r.estimatedTokenNanos() < SLOW_NANOS);
        // the faster whole engine is still kept open (the provider closes it, or runs it for an all-device split)
        assertEquals(HybridEngineProvider.CPU, r.fastestWhole().name());
        assertEquals(2, r.wholes().size());
    }

    /** Calibrates tiny.bin on two CPU shards, offering a whole "cpu" and "tornado" engine paced as given. */
    private static Calibrator.Result withWholes(long cpuNanos, long deviceNanos) {
        Model model = HybridTestEngines.model("tiny.bin");
        List<Paced> made = new java.util.ArrayList<>();
        List<Calibrator.WholeCandidate> wholes = List.of(
                new Calibrator.WholeCandidate(HybridEngineProvider.CPU, () -> add(made, new Paced(HybridEngineProvider.CPU,
                        model.config(), cpuNanos))),
                new Calibrator.WholeCandidate(HybridEngineProvider.TORNADO, () -> add(made, new Paced(HybridEngineProvider.TORNADO,
                        model.config(), deviceNanos))));
        Calibrator.Result r = Calibrator.calibrate(model.config(), model.weights(), p -> true, new TwoCpuShards(), wholes, null);
        assertEquals(List.of(HybridEngineProvider.CPU, HybridEngineProvider.TORNADO),
                r.wholes().stream().map(Calibrator.Whole::label).toList(), "both whole engines timed, in order");
        for (Paced p : made) {
            assertEquals(p != r.fastestWhole(), p.closed, p.name + ": only the fastest whole engine stays open");
            assertTrue(p.tokens > 0, p.name + " was not run");
        }
        r.fastestWhole().close();
        return r;
    }

    private static Paced add(List<Paced> made, Paced p) {
        made.add(p);
        return p;
    }

    /** What auto runs is the fastest of the best split's estimate and every whole engine's measured time. */
    private static void assertChoiceIsTheFastest(Calibrator.Result r) {
        double fastest = r.estimatedTokenNanos();
        String what = "split";
        for (Calibrator.Whole w : r.wholes()) {
            if (w.tokenNanos() < fastest) {
                fastest = w.tokenNanos();
                what = w.label();
            }
        }
        assertEquals(fastest, r.chosenTokenNanos(), "split " + r.estimatedTokenNanos() + ", wholes " + r.wholes());
        assertEquals(what, r.chosenWhole() == null ? "split" : r.chosenWhole().label());
    }

    /**
     * The provider's last step: a whole engine chosen is returned with its reason; a split chosen closes the
     * kept engine, unless the split gives the device every row and the kept engine is the TornadoVM engine,
     * which is then run rather than compiled again.
     */
    @Test
    void providerRunsTheChosenWholeEngineOrClosesIt() {
        Configuration c = HybridTestEngines.model("tiny.bin").config();
        SplitPlan half = SplitPlan.twoWay(c, 0.5, 0.5, 0.5), all = SplitPlan.twoWay(c, 1, 1, 1);
        List<Calibrator.Whole> wholes = List.of(new Calibrator.Whole(HybridEngineProvider.CPU, 3e6),
                new Calibrator.Whole(HybridEngineProvider.TORNADO, 2e6));

        Paced device = new Paced(HybridEngineProvider.TORNADO, c, 0);
        InferenceEngine e = HybridEngineProvider.wholeEngine(new Calibrator.Result(half, 2.5e6, List.of(), 0, wholes, device),
                half, "how", null);
        SelectedEngine chosen = assertInstanceOf(SelectedEngine.class, e);
        assertSame(device, chosen.engine());
        assertTrue(chosen.selection().contains("whole tornado engine") && chosen.selection().contains("2.00 ms/token"),
                chosen.selection());

        Paced notChosen = new Paced(HybridEngineProvider.TORNADO, c, 0);
        assertNull(HybridEngineProvider.wholeEngine(new Calibrator.Result(half, 1e6, List.of(), 0, wholes, notChosen), half,
                "how", null));
        assertTrue(notChosen.closed, "a whole engine not chosen is closed");

        Paced reused = new Paced(HybridEngineProvider.TORNADO, c, 0);
        e = HybridEngineProvider.wholeEngine(new Calibrator.Result(all, 1e6, List.of(), 0, wholes, reused), all, "how", null);
        assertSame(reused, assertInstanceOf(SelectedEngine.class, e).engine(), "all-device split: the TornadoVM engine kept");
        assertFalse(reused.closed);

        Paced cpu = new Paced(HybridEngineProvider.CPU, c, 0);
        List<Calibrator.Whole> cpuFastest = List.of(new Calibrator.Whole(HybridEngineProvider.CPU, 2e6),
                new Calibrator.Whole(HybridEngineProvider.TORNADO, 3e6));
        assertNull(HybridEngineProvider.wholeEngine(new Calibrator.Result(all, 1e6, List.of(), 0, cpuFastest, cpu), all, "how",
                null), "an all-device split with the CPU engine kept builds the TornadoVM engine afresh");
        assertTrue(cpu.closed);
    }

    /**
     * The real thing, on the TornadoVM device: auto times the split candidates, the whole CPU engine and the
     * whole TornadoVM engine, runs the fastest (whichever it is on this machine), and says so.
     */
    @Test
    void autoOnTheDeviceRunsTheFastestOfSplitsAndWholeEngines() {
        Model model = HybridTestEngines.model("tiny.bin");
        java.io.ByteArrayOutputStream summary = new java.io.ByteArrayOutputStream();
        try (InferenceEngine e = HybridEngineProvider.createAny(model, HybridTestEngines.options(Double.NaN, false), null,
                new java.io.PrintStream(summary, true, java.nio.charset.StandardCharsets.UTF_8))) {
            SelectedEngine s = assertInstanceOf(SelectedEngine.class, e);
            Calibrator.Result r = s.calibration();
            assertEquals(List.of(HybridEngineProvider.CPU, HybridEngineProvider.TORNADO),
                    r.wholes().stream().map(Calibrator.Whole::label).toList());
            assertChoiceIsTheFastest(r);
            Calibrator.Whole w = r.chosenWhole();
            String expected = w == null ? (HybridEngineProvider.allOnShard0(r.plan()) ? "tornado:" : "hybrid:")
                    : w.label().equals(HybridEngineProvider.CPU) ? "cpu" : "tornado:";
            assertTrue(e.name().startsWith(expected), e.name() + " runs, expected " + expected + " from " + e.selection());
            for (Calibrator.Whole x : r.wholes()) {
                assertTrue(e.selection().contains(String.format(java.util.Locale.ROOT, "whole %s engine %.2f ms/token", x.label(),
                        x.tokenNanos() / 1e6)), e.selection());
            }
            String line = summary.toString(java.nio.charset.StandardCharsets.UTF_8);
            assertEquals(1, line.lines().count(), line);
            float[] logits = e.forward(1, 0);
            try (InferenceEngine cpu = io.github.llama2j.engine.Engines.create(model, io.github.llama2j.engine.EngineOptions.cpu(1, false))) {
                float[] ref = cpu.forward(1, 0);
                for (int i = 0; i < ref.length; i++) {
                    assertEquals(ref[i], logits[i], 1e-4f * Math.max(1, Math.abs(ref[i])), "logit " + i + " of " + e.name());
                }
            }
        }
    }

    /** A whole model that does not fit the device: the TornadoVM engine is not a candidate, the CPU engine is. */
    @Test
    void autoOffersNoTornadoVmEngineForAModelThatDoesNotFit() {
        Model model = HybridTestEngines.model("tiny_unshared.bin");
        Configuration c = model.config();
        long limit = DeviceBudget.bytes(c, SplitPlan.twoWay(c, 0.25, 0.25, 0.25), 0);
        TornadoSettings s = TornadoSettings.load("CPU").withMemoryLimit(limit);
        try (InferenceEngine e = HybridEngineProvider.createAny(model, HybridTestEngines.options(Double.NaN, false), s, null)) {
            Calibrator.Result r = assertInstanceOf(SelectedEngine.class, e).calibration();
            assertEquals(List.of(HybridEngineProvider.CPU), r.wholes().stream().map(Calibrator.Whole::label).toList());
            assertChoiceIsTheFastest(r);
            assertTrue(r.chosenWhole() != null || DeviceBudget.bytes(c, r.plan(), 0) <= limit, "chosen " + r.plan());
            e.forward(1, 0);
        }
    }

    /** A whole engine that takes a set time per token (0: returns at once) and records that it was closed. */
    private static final class Paced implements InferenceEngine {
        final String name;
        final Configuration c;
        final long nanosPerToken;
        final float[] logits;
        int tokens;
        boolean closed;

        Paced(String name, Configuration c, long nanosPerToken) {
            this.name = name;
            this.c = c;
            this.nanosPerToken = nanosPerToken;
            this.logits = new float[c.vocabSize()];
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public Configuration config() {
            return c;
        }

        @Override
        public float[] forward(int token, int pos) {
            assertFalse(closed, name + " used after close");
            tokens++;
            if (nanosPerToken > 0) {
                long end = System.nanoTime() + nanosPerToken;
                java.util.concurrent.locks.LockSupport.parkNanos(nanosPerToken);
                while (System.nanoTime() < end) {   // parkNanos may return early
                    Thread.onSpinWait();
                }
            }
            return logits;
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    /** Calibration engines whose "device" shard is a CPU shard on a worker thread (built per candidate). */
    static final class TwoCpuShards implements Calibrator.EngineMaker {
        SplitPlan largest;

        @Override
        public void prepare(Configuration one, io.github.llama2j.model.Weights w, SplitPlan largest) {
            this.largest = largest;
        }

        @Override
        public HybridEngine make(Configuration one, io.github.llama2j.model.Weights w, SplitPlan plan) {
            return new HybridEngine(one, w, plan, List.of(
                    (cc, ww, p, i, in) -> new CpuShard("fake-device", cc, ww, p, i, Engines.cpuKernels(false), new PreparedWeights(WeightCopies.AUTO), 1, FloatMath.JAVA, in, false),
                    (cc, ww, p, i, in) -> new CpuShard("cpu", cc, ww, p, i, Engines.cpuKernels(false), new PreparedWeights(WeightCopies.AUTO), 1, FloatMath.JAVA, in, true)),
                    null);
        }

        @Override
        public void close() {
        }
    }
}
