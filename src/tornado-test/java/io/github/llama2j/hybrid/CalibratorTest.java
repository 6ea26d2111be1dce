package io.github.llama2j.hybrid;

import io.github.llama2j.engine.Engines;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.tornado.TornadoSettings;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
        StepInput in = new StepInput(one.dim(), 0, one.vocabSize());
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
                    (cc, ww, p, i, in) -> new CpuShard("fake-device", cc, ww, p, i, Engines.cpuKernels(false), 1, FloatMath.JAVA, in, false),
                    (cc, ww, p, i, in) -> new CpuShard("cpu", cc, ww, p, i, Engines.cpuKernels(false), 1, FloatMath.JAVA, in, true)),
                    null);
        }

        @Override
        public void close() {
        }
    }
}
