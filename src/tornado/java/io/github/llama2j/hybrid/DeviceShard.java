package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cpu.Rope;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;
import io.github.llama2j.profile.Profiler;
import io.github.llama2j.tornado.DeviceSession;
import io.github.llama2j.tornado.TornadoSettings;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.TornadoProfilerResult;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Locale;

/**
 * A TornadoVM device's share, run: its graphs ({@link ShardGraphs}: one small graph per step it owns) live
 * in one execution plan on the device of a {@link DeviceSession}, started as every device engine here
 * starts (first execution, proof that every task ran on the device, one clear error otherwise), and are
 * launched one at a time with {@code withGraph(i)}: per step the host's normalised activation (Q8: its
 * int8 values and scales) and the position go in, and the partial sum (or its logits rows) comes out.
 *
 * <p>Why a graph per step rather than the TornadoVM engine's chain of graphs that keeps everything on the
 * device for the whole token: the host must add the shards' partial sums between steps, so a token is
 * 2 × layers + 1 launches on each device.
 */
final class DeviceShard implements Shard {
    private final StepInput in;
    private final DeviceSession session;
    private final String track;
    private final boolean profile;
    private final ShardGraphs graphs;
    private final StepTimes last = new StepTimes();
    private final float[] partial;
    private final int v0, v1;
    private final long deviceBytes;
    private final boolean ggml;
    private TornadoExecutionPlan plan;
    private boolean closed;
    private long loadStartNanos, compileNanos, weightTransferNanos, weightTransferBytes;

    /**
     * Copies this shard's slices into TornadoVM arrays, builds its graphs, then JIT-compiles and runs each
     * once (transferring the weights) and checks from TornadoVM's profiler that every task ran on the device.
     *
     * @param memoryAvailable device memory this shard may use (its global memory, or a configured limit)
     * @param s               work-group sizes, already checked against the device ({@link DeviceSession#settings})
     * @param math            the float functions of the host's RoPE, so that device heads rotate by the same values
     */
    DeviceShard(DeviceSession session, Configuration c, Weights w, SplitPlan plan, int shard, TornadoSettings s,
                StepInput in, FloatMath math, boolean profile, long memoryAvailable, PrintStream log) {
        this.in = in;
        this.session = session;
        this.track = session.track();
        this.profile = profile;
        this.partial = new float[c.dim()];
        this.v0 = plan.vocabStart(shard);
        this.v1 = plan.vocabEnd(shard);
        this.ggml = c.ropeStyle() != RopeStyle.LLAMA2C;
        long needed = DeviceBudget.bytes(c, w, plan, shard);
        if (needed > memoryAvailable) {
            throw new Llama2jException(String.format(Locale.ROOT,
                    "the device's share (%s) needs %.1f MiB on '%s', which has %.1f MiB: give it a smaller --split",
                    plan.describe(), needed / 1048576.0, session.name(), memoryAvailable / 1048576.0), Llama2jException.UNAVAILABLE);
        }
        this.deviceBytes = needed;
        session.settings(s);
        this.graphs = new ShardGraphs(c, w, plan, shard, s, plan.owns(shard, SplitPlan.Kind.ATTENTION)
                ? ropeTable(c, w.ropeFreqs(), math) : null);
        if (graphs.isEmpty()) {
            return;
        }
        long t0 = System.nanoTime();
        TornadoExecutionPlan p = session.plan(graphs.graphs(), graphs.gridScheduler());
        this.plan = p;
        // First launch of each graph: JIT compilation, the weight transfer (FIRST_EXECUTION), and proof that
        // every task ran on the device. Attention graphs write cache row 0, overwritten by the first token.
        in.pos = 0;
        DeviceSession.FirstExecution first = session.guarded("the hybrid engine's kernels", p,
                () -> session.firstExecution(p, graphs.graphNames(), graphs.graphTasks()));
        if (!profile) {
            p.withoutProfiler();
        }
        loadStartNanos = t0;
        compileNanos = first.graalNanos() + first.driverNanos();
        weightTransferNanos = first.transferNanos();
        weightTransferBytes = first.transferBytes();
        if (log != null) {
            int tasks = graphs.graphTasks().stream().mapToInt(List::size).sum();
            log.printf(Locale.ROOT, "[hybrid] %s (%s): %d graphs, %d tasks, %.1f MiB on the device; first launch %.1f ms "
                            + "(JIT: Graal %.1f ms + driver %.1f ms; weights in: %.1f MiB in %.1f ms)%n",
                    track, session.name(), graphs.graphNames().size(), tasks, deviceBytes / 1048576.0,
                    (System.nanoTime() - t0) / 1e6, first.graalNanos() / 1e6, first.driverNanos() / 1e6,
                    weightTransferBytes / 1048576.0, weightTransferNanos / 1e6);
            log.flush();
        }
    }

    /**
     * RoPE's cos/sin for every position and pair, from the one {@link Rope} every engine uses, with the
     * host's float functions, so that device heads rotate by exactly the CPU side's values; laid out as the
     * TornadoVM engine's table: [(pos * headSize/2 + i/2) * 2 + {0: cos, 1: sin}].
     */
    static float[] ropeTable(Configuration c, FloatMath math) {
        return ropeTable(c, null, math);
    }

    /** As {@link #ropeTable(Configuration, FloatMath)} for the model's RoPE: its style, and its frequency factors (or null). */
    static float[] ropeTable(Configuration c, MemorySegment factors, FloatMath math) {
        return Rope.of(c, factors, math).table(c.seqLen());
    }

    @Override
    public String track() {
        return track;
    }

    @Override
    public boolean runsOnHost() {
        return false;
    }

    @Override
    public float[] partial() {
        return partial;
    }

    @Override
    public StepTimes last() {
        return last;
    }

    @Override
    public void reportLoad(Profiler profiler) {
        if (compileNanos > 0) {
            profiler.record("jit", track, Profiler.Kind.COMPILE, loadStartNanos, compileNanos, 0);
            profiler.record("weights", track, Profiler.Kind.TRANSFER_WEIGHTS, loadStartNanos, weightTransferNanos,
                    weightTransferBytes);
        }
    }

    @Override
    public long weightBytes(SplitPlan.Kind kind) {
        return graphs.weightBytes(kind);
    }

    @Override
    public int launches(SplitPlan.Kind kind) {
        return graphs.launches(kind);
    }

    /** The graphs (calibration resizes their grids). */
    ShardGraphs graphs() {
        return graphs;
    }

    /** The classifier step's device output as the host last received it (tests). */
    float[] classifierOutput() {
        return graphs.classifier.out().toHeapArray();
    }

    /** The first vocabulary row of this shard's logits. */
    int vocabStart() {
        return v0;
    }

    /** Device memory this shard uses. */
    long deviceBytes() {
        return deviceBytes;
    }

    String deviceName() {
        return session.name();
    }

    /** Runs one step and hands its result over: the partial sum, or this shard's rows of the logits. */
    @Override
    public void run(SplitPlan.Kind kind, int layer) {
        FloatArray out = execute(kind, layer, in);
        long t2 = System.nanoTime();
        if (kind == SplitPlan.Kind.CLASSIFIER) {
            MemorySegment.copy(out.getSegment(), ValueLayout.JAVA_FLOAT, 0, in.logits, v0, v1 - v0);
        } else {
            MemorySegment.copy(out.getSegment(), ValueLayout.JAVA_FLOAT, 0, partial, 0, partial.length);
        }
        last.copyOutNanos += System.nanoTime() - t2;
    }

    /**
     * Launches one step's graph on {@code input}'s activation and position and returns the step's output
     * array (as the device wrote it); {@link #last()} then holds its times and bytes, the host-side copy of
     * the output not yet included.
     */
    FloatArray execute(SplitPlan.Kind kind, int layer, StepInput input) {
        if (closed) {
            throw new IllegalStateException("shard closed");
        }
        ShardGraphs.Step step = switch (kind) {
            case ATTENTION -> graphs.attention[layer];
            case FFN -> graphs.ffn[layer];
            case CLASSIFIER -> graphs.classifier;
        };
        last.clear();
        long t0 = System.nanoTime();
        copyIn(step.in(), input);
        if (step.state() != null) {
            step.state().set(1, input.pos);
        }
        long t1 = System.nanoTime();
        TornadoExecutionResult r = plan.withGraph(step.graph()).execute();
        long t2 = System.nanoTime();
        last.startNanos = t0;
        last.computeNanos = t2 - t1;
        last.copyInNanos = t1 - t0;
        last.copyOutNanos = 0;
        last.bytesIn = step.bytesIn();
        last.bytesOut = step.bytesOut();
        if (profile) {
            TornadoProfilerResult pr = r.getProfilerResult();
            long write = pr.getDeviceWriteTime(), read = pr.getDeviceReadTime();
            last.copyInNanos += write;
            last.copyOutNanos += read;
            last.computeNanos = Math.max(0, last.computeNanos - write - read);
            last.deviceKernelNanos = pr.getDeviceKernelTime();
        }
        return step.out();
    }

    /** The forms of the host's step input that the step's graph reads, into its input arrays. */
    private void copyIn(ShardGraphs.Forms to, StepInput input) {
        if (to.xf() != null) {
            MemorySegment.copy(input.xb, 0, to.xf().getSegment(), ValueLayout.JAVA_FLOAT, 0, to.xf().getSize());
        }
        if (to.xh() != null) {
            MemorySegment.copy(input.act.f16Values(), 0, to.xh().getSegment(), ValueLayout.JAVA_FLOAT, 0, to.xh().getSize());
        }
        if (to.xq() != null) {
            int n = to.xq().getSize(), groups = to.xs().getSize();
            if (ggml) { // GGML Q8_0: the values are kept as shorts on the host
                short[] q = input.act.q8_0Values();
                MemorySegment values = to.xq().getSegment();
                for (int i = 0; i < n; i++) {
                    values.set(ValueLayout.JAVA_BYTE, i, (byte) q[i]);
                }
                MemorySegment.copy(input.act.q8_0Scales(), 0, to.xs().getSegment(), ValueLayout.JAVA_FLOAT, 0, groups);
            } else { // runq's groups
                int gs = n / groups;
                MemorySegment.copy(input.act.q8Values(gs), 0, to.xq().getSegment(), ValueLayout.JAVA_BYTE, 0, n);
                MemorySegment.copy(input.act.q8Scales(gs), 0, to.xs().getSegment(), ValueLayout.JAVA_FLOAT, 0, groups);
            }
        }
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            DeviceSession.close(plan);
        }
    }
}
