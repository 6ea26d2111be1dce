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
        Calibrator.Result r = Calibrator.calibrate(c, model.weights(), p -> true, CalibratorTest::twoCpuShards, null);
        assertTrue(r.points().stream().anyMatch(p -> p.attention() == 0 && p.ffn() == 0 && p.classifier() == 0), "all-CPU measured");
        assertTrue(r.points().stream().anyMatch(p -> p.attention() == 1 && p.ffn() == 1 && p.classifier() == 1), "all-device measured");
        assertTrue(r.points().size() >= Calibrator.COARSE.length, "coarse candidates: " + r.points());
        double bestAtt = r.points().stream().mapToDouble(Calibrator.Point::attentionNanos).min().orElseThrow();
        double bestFfn = r.points().stream().mapToDouble(Calibrator.Point::ffnNanos).min().orElseThrow();
        double bestCls = r.points().stream().mapToDouble(Calibrator.Point::classifierNanos).min().orElseThrow();
        assertTrue(r.points().stream().anyMatch(p -> p.attention() == r.attention() && p.attentionNanos() == bestAtt));
        assertTrue(r.points().stream().anyMatch(p -> p.ffn() == r.ffn() && p.ffnNanos() == bestFfn));
        assertTrue(r.points().stream().anyMatch(p -> p.classifier() == r.classifier() && p.classifierNanos() == bestCls));
        assertEquals(c.nLayers() * (bestAtt + bestFfn) + bestCls, r.estimatedTokenNanos(), 1e-6 * r.estimatedTokenNanos());
        assertTrue(Calibrator.summary(r, c.nLayers()).contains("all-CPU"));
    }

    @Test
    void skipsSplitsWhoseDeviceShareDoesNotFit() {
        Model model = HybridTestEngines.model("tiny_q80.bin");
        Configuration c = model.config();
        long limit = DeviceBudget.bytes(c, SplitPlan.twoWay(c, 0.25, 0.25, 0.25), 0);
        Calibrator.Result r = Calibrator.calibrate(c, model.weights(), p -> DeviceBudget.bytes(c, p, 0) <= limit,
                CalibratorTest::twoCpuShards, null);
        for (Calibrator.Point p : r.points()) {
            assertTrue(DeviceBudget.bytes(c, p.plan(), 0) <= limit, "measured a split that does not fit: " + p);
        }
        assertTrue(DeviceBudget.bytes(c, SplitPlan.twoWay(c, r.attention(), r.ffn(), r.classifier()), 0) <= limit);
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

    /** A calibration engine whose "device" shard is a CPU shard on a worker thread. */
    static HybridEngine twoCpuShards(Configuration one, io.github.llama2j.model.Weights w, SplitPlan plan) {
        return new HybridEngine(one, w, plan, List.of(
                (cc, ww, p, i, in) -> new CpuShard("fake-device", cc, ww, p, i, Engines.cpuKernels(false), 1, FloatMath.JAVA, in, false),
                (cc, ww, p, i, in) -> new CpuShard("cpu", cc, ww, p, i, Engines.cpuKernels(false), 1, FloatMath.JAVA, in, true)),
                null);
    }
}
