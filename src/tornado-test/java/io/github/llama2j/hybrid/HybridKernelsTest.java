package io.github.llama2j.hybrid;

import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.tornado.DeviceSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The hybrid's own device kernels against the scalar reference (ScalarKernels' order, Java math) on fresh
 * random inputs with awkward sizes: rows of 100 columns over work-groups of 16, 37 and 29 rows, a shard of
 * 4 heads of 10 with 2 key/value heads, Q8 groups of 4. One task graph, so PoCL compiles once. The seed is
 * in every failure message.
 */
@Tag("tornado")
class HybridKernelsTest {
    static final long SEED = System.nanoTime();
    static final int LOCAL = 16, N = 100, ROWS = 37, FFN_ROWS = 29;
    static final int HEADS = 4, HEAD = 10, KV_MUL = 2, Q_ROWS = HEADS * HEAD, KV_ROWS = Q_ROWS / KV_MUL, SEQ = 7, POS = 5;
    static final int GS = 4;
    static final Random RND = new Random(SEED);

    static float[] x, w, w13, wqkv, ropeTable, xs, qScales;
    static byte[] xq, qValues;
    static FloatArray dMat, dHb, dQ, dKc, dVc, dQ8q, dQ8kc, dQ8vc;

    @BeforeAll
    static void runKernelsOnce() {
        DeviceSession session = DeviceSession.of(TornadoExecutionPlan.DEFAULT_DEVICE);
        x = rnd(N);
        w = rnd(ROWS * N);
        w13 = rnd(2 * FFN_ROWS * N);
        wqkv = rnd((Q_ROWS + 2 * KV_ROWS) * N);
        qValues = new byte[(Q_ROWS + 2 * KV_ROWS) * N];
        for (int i = 0; i < qValues.length; i++) {
            qValues[i] = (byte) (RND.nextInt(255) - 127);
        }
        qScales = positive(qValues.length / GS);
        xq = new byte[N];
        for (int i = 0; i < N; i++) {
            xq[i] = (byte) (RND.nextInt(255) - 127);
        }
        xs = positive(N / GS);
        ropeTable = DeviceShard.ropeTable(shardShape(), FloatMath.JAVA);

        KernelContext ctx = new KernelContext();
        GridScheduler grid = new GridScheduler();
        List<String> tasks = new ArrayList<>();
        IntArray state = IntArray.fromElements(0, POS);
        FloatArray dx = FloatArray.fromArray(x), dw = FloatArray.fromArray(w), dw13 = FloatArray.fromArray(w13),
                dqkv = FloatArray.fromArray(wqkv), rope = FloatArray.fromArray(ropeTable), dxs = FloatArray.fromArray(xs),
                dqs = FloatArray.fromArray(qScales);
        Int8Array dxq = Int8Array.fromArray(xq), dqv = Int8Array.fromArray(qValues);
        dMat = new FloatArray(ROWS);
        dHb = new FloatArray(FFN_ROWS);
        dQ = new FloatArray(Q_ROWS);
        dKc = new FloatArray(SEQ * KV_ROWS);
        dVc = new FloatArray(SEQ * KV_ROWS);
        dQ8q = new FloatArray(Q_ROWS);
        dQ8kc = new FloatArray(SEQ * KV_ROWS);
        dQ8vc = new FloatArray(SEQ * KV_ROWS);
        TaskGraph g = new TaskGraph("hk")
                .transferToDevice(DataTransferMode.FIRST_EXECUTION, state, dx, dw, dw13, dqkv, rope, dxs, dqs, dxq, dqv)
                .task("mat", HybridKernels::matmulF32, ctx, dx, dw, dMat, N)
                .task("w13", HybridKernels::w13F32, ctx, dx, dw13, dHb, N, FFN_ROWS)
                .task("qkv", HybridKernels::qkvF32, ctx, dx, dqkv, dQ, dKc, dVc, state, rope, N, Q_ROWS, KV_ROWS, HEAD)
                .task("qkvq8", HybridKernels::qkvQ8, ctx, dxq, dxs, dqv, dqs, dQ8q, dQ8kc, dQ8vc, state, rope, N, Q_ROWS,
                        KV_ROWS, HEAD, GS)
                .transferToHost(DataTransferMode.EVERY_EXECUTION, dMat, dHb, dQ, dKc, dVc, dQ8q, dQ8kc, dQ8vc);
        grid(grid, tasks, "mat", ROWS * LOCAL);
        grid(grid, tasks, "w13", FFN_ROWS * LOCAL);
        grid(grid, tasks, "qkv", (Q_ROWS + 2 * KV_ROWS) / 2 * LOCAL);
        grid(grid, tasks, "qkvq8", (Q_ROWS + 2 * KV_ROWS) / 2 * LOCAL);
        try (TornadoExecutionPlan plan = new TornadoExecutionPlan(g.snapshot())) {
            var r = plan.withGridScheduler(grid).withProfiler(ProfilerMode.SILENT).execute();
            session.verifyRanOnDevice(tasks, r.getProfilerResult().getProfileLog());
        } catch (Exception e) {
            throw new IllegalStateException("seed " + SEED, e);
        }
    }

    /** A configuration whose head size and sequence length are the shard's (for the RoPE table). */
    static Configuration shardShape() {
        return new Configuration(Q_ROWS, 8, 1, HEADS, HEADS / KV_MUL, 4, SEQ, true, 0);
    }

    static void grid(GridScheduler g, List<String> tasks, String task, int global) {
        WorkerGrid1D w = new WorkerGrid1D(global);
        w.setLocalWork(LOCAL, 1, 1);
        g.addWorkerGrid("hk." + task, w);
        tasks.add("hk." + task);
    }

    static float[] rnd(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) RND.nextGaussian();
        }
        return a;
    }

    static float[] positive(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0.001f + RND.nextFloat() * 0.02f;
        }
        return a;
    }

    static float dot(float[] m, int row, float[] v) {
        float s = 0;
        for (int j = 0; j < N; j++) {
            s += m[row * N + j] * v[j];
        }
        return s;
    }

    /** Σ |m[row, j] · v[j]|: the size of a float dot product's rounding error does not depend on its result. */
    static float absDot(float[] m, int row, float[] v) {
        float s = 0;
        for (int j = 0; j < N; j++) {
            s += Math.abs(m[row * N + j] * v[j]);
        }
        return s;
    }

    static void close(float expected, float actual, String what) {
        close(expected, actual, Math.abs(expected), what);
    }

    /**
     * Within 1e-5 of {@code scale}: for float32 dot products the scale is Σ|terms| (see absDot), since
     * summing 100 terms in another order can cancel down to a result far smaller than its rounding error
     * (seen: 1.41626 vs 1.41618 from a row whose terms add up to 64 in absolute value). A wrong element,
     * row or position moves a result by the size of a term, far beyond this.
     */
    static void close(float expected, float actual, float scale, String what) {
        assertEquals(expected, actual, 1e-5f * Math.max(1f, scale), what + ", seed " + SEED);
    }

    @Test
    void matmulF32() {
        for (int r = 0; r < ROWS; r++) {
            close(dot(w, r, x), dMat.get(r), absDot(w, r, x), "row " + r);
        }
    }

    @Test
    void w13F32IsSwigluOfTheTwoRows() {
        float[] hb = new float[FFN_ROWS], hb2 = new float[FFN_ROWS];
        for (int r = 0; r < FFN_ROWS; r++) {
            hb[r] = dot(w13, r, x);
            hb2[r] = dot(w13, FFN_ROWS + r, x);
        }
        float[] scale = new float[FFN_ROWS];
        for (int r = 0; r < FFN_ROWS; r++) {
            // silu(a)·b moves by at most 1.1·|b|·δa + |silu(a)|·δb (|silu'| < 1.1)
            float a = hb[r], silu = a / (1f + (float) Math.exp(-a));
            scale[r] = 1.1f * Math.abs(hb2[r]) * absDot(w13, r, x) + Math.abs(silu) * absDot(w13, FFN_ROWS + r, x);
        }
        ScalarKernels.swiglu(hb, hb2, FFN_ROWS, FloatMath.JAVA);
        for (int r = 0; r < FFN_ROWS; r++) {
            close(hb[r], dHb.get(r), Math.max(scale[r], Math.abs(hb[r])), "hidden row " + r);
        }
    }

    @Test
    void qkvF32RotatesTheShardsHeadsAndStoresItsCacheRow() {
        float[] all = new float[Q_ROWS + 2 * KV_ROWS];
        for (int r = 0; r < all.length; r++) {
            all[r] = dot(wqkv, r, x);
        }
        float[] scale = new float[all.length];
        for (int r = 0; r < all.length; r++) {
            scale[r] = absDot(wqkv, r, x);
        }
        checkQkv(all, dQ, dKc, dVc, scale);
    }

    @Test
    void qkvQ8IsRunqsProductThenTheSame() {
        float[] all = new float[Q_ROWS + 2 * KV_ROWS];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(qValues.length), s = arena.allocate(qScales.length * 4L);
            MemorySegment.copy(qValues, 0, v, ValueLayout.JAVA_BYTE, 0, qValues.length);
            MemorySegment.copy(qScales, 0, s, ScalarKernels.FLOAT, 0, qScales.length);
            new ScalarKernels().matmulQ8(all, xq, xs, new Matrix.Q8(v, s, all.length, N, GS), 0, all.length);
        }
        checkQkv(all, dQ8q, dQ8kc, dQ8vc, null);   // int8 dots are exact: relative to the result
    }

    /** RoPE mixes the pair (2i, 2i+1): both rows' errors reach each output. */
    private static float ropeScale(float[] scale, int row, float value) {
        return scale == null ? Math.abs(value) : Math.max(Math.abs(value), scale[row & ~1] + scale[row | 1]);
    }

    /** @param scale per stacked row Σ|terms| of its float dot product, or null (see close) */
    private static void checkQkv(float[] all, FloatArray dq, FloatArray dkc, FloatArray dvc, float[] scale) {
        float[] q = java.util.Arrays.copyOfRange(all, 0, Q_ROWS);
        float[] k = java.util.Arrays.copyOfRange(all, Q_ROWS, Q_ROWS + KV_ROWS);
        float[] v = java.util.Arrays.copyOfRange(all, Q_ROWS + KV_ROWS, all.length);
        ScalarKernels.rope(q, k, POS, Q_ROWS, KV_ROWS, HEAD, ScalarKernels.ropeFrequencies(HEAD, Configuration.LLAMA2C_ROPE_THETA,
                FloatMath.JAVA), FloatMath.JAVA);
        for (int i = 0; i < Q_ROWS; i++) {
            close(q[i], dq.get(i), ropeScale(scale, i, q[i]), "q " + i);
        }
        for (int i = 0; i < KV_ROWS; i++) {
            close(k[i], dkc.get(POS * KV_ROWS + i), ropeScale(scale, Q_ROWS + i, k[i]), "k " + i);
            float vs = scale == null ? Math.abs(v[i]) : Math.max(Math.abs(v[i]), scale[Q_ROWS + KV_ROWS + i]);
            close(v[i], dvc.get(POS * KV_ROWS + i), vs, "v " + i);
        }
    }
}
