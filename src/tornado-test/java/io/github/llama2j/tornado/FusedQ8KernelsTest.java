package io.github.llama2j.tornado;

import io.github.llama2j.model.Configuration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Q8 kernels that quantize their input themselves ({@code TransformerKernels.qkvNormQ8},
 * {@code matmulResidualQuantQ8}, {@code w13NormQ8}, {@code matmulNormQ8}) against the scalar reference on fresh
 * random inputs: runq's rmsnorm, quantize and int8 matmul ({@link Reference} → ScalarKernels), RoPE.
 *
 * <p>Every work-group quantizes the whole input itself, so every output row checks that its work-group got
 * runq's int8 values and scales: one value rounded the other way moves its row by a whole int8 step times the
 * scales, far beyond the float tolerance. To make that check exact for the normalised inputs too, x holds
 * multiples of 1/8 below 8 in magnitude: their squares and every partial sum of them are exact in float, so the
 * device's sum of squares (a tree per work-group) has the bits of run.c's sequential one, and so do the
 * normalised values and their quantization. The un-normalised input (wo's and w2's) is Gaussian, with a group
 * of ties that C's round() must send away from zero and an all-zero group. Shapes: 18 groups of 4 over 8
 * work-items (work-items own 2 or 3 groups), odd head counts, grouped-query heads. The seed is printed in
 * every failure.
 */
@Tag("tornado")
class FusedQ8KernelsTest {
    static final long SEED = System.nanoTime();
    static final Random RND = new Random(SEED);
    static final int LOCAL = 8, GS = 4;
    static final int DIM = 72, HEADS = 6, HEAD = 12, KV_HEADS = 3, KV_DIM = KV_HEADS * HEAD, HIDDEN = 44, SEQ = 5, POS = 3;
    static final int VOCAB = 13, PARTS = 3;   // the norm's partial sums (3 × 8 lanes over 72 values)
    static final List<String> TASKS = new ArrayList<>();

    static float[] x, rmsAtt, rmsFfn, rmsFinal, xb, hbIn, xStart;
    static byte[] wqkv, wo, w13, w2, wcls;
    static float[] sqkv, so, s13, s2, scls;
    static FloatArray dQ, dKc, dVc, dXo, dHb, dXw2, dLogits;
    static Map<String, TaskVerifier.TaskRun> runs;
    static String deviceName;

    /** Multiples of 1/8 in (-8, 8): exact squares and exact sums of squares in float. */
    static float[] eighths(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (RND.nextInt(127) - 63) / 8f;
        }
        return a;
    }

    static float[] gaussian(int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) RND.nextGaussian() * scale;
        }
        return a;
    }

    static float[] normWeight(int n) {
        float[] a = gaussian(n, 0.3f);
        for (int i = 0; i < n; i++) {
            a[i] += 1f;
        }
        return a;
    }

    static byte[] bytes(int n) {
        byte[] a = new byte[n];
        for (int i = 0; i < n; i++) {
            a[i] = (byte) (RND.nextInt(255) - 127);
        }
        return a;
    }

    static float[] scales(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0.001f + RND.nextFloat() * 0.02f;
        }
        return a;
    }

    static void grid(GridScheduler g, String task, int groups) {
        WorkerGrid1D w = new WorkerGrid1D(groups * LOCAL);
        w.setLocalWork(LOCAL, 1, 1);
        g.addWorkerGrid("fusedq8." + task, w);
        TASKS.add("fusedq8." + task);
    }

    @BeforeAll
    static void runAllKernelsOnce() {
        TornadoRuntimeCheck.requireNoBailoutRecovery();
        KernelContext ctx = new KernelContext();
        TaskGraph tg = new TaskGraph("fusedq8");
        GridScheduler g = new GridScheduler();
        x = eighths(DIM);
        rmsAtt = normWeight(DIM);
        rmsFfn = normWeight(DIM);
        rmsFinal = normWeight(DIM);
        xb = gaussian(DIM, 1f);
        float[] ties = {127f, 2.5f, -3.5f, 0.5f, -0.5f, 1.4999999f, -126.5f, 63.5f};
        System.arraycopy(ties, 0, xb, 0, ties.length);
        for (int i = 8; i < 12; i++) {
            xb[i] = 0f;
        }
        hbIn = gaussian(HIDDEN, 2f);
        xStart = gaussian(DIM, 1f);
        int qkvRows = DIM + 2 * KV_DIM;
        wqkv = bytes(qkvRows * DIM);
        sqkv = scales(qkvRows * DIM / GS);
        wo = bytes(DIM * DIM);
        so = scales(DIM * DIM / GS);
        w13 = bytes(2 * HIDDEN * DIM);
        s13 = scales(2 * HIDDEN * DIM / GS);
        w2 = bytes(DIM * HIDDEN);
        s2 = scales(DIM * HIDDEN / GS);
        wcls = bytes(VOCAB * DIM);
        scls = scales(VOCAB * DIM / GS);

        FloatArray dX = FloatArray.fromArray(x), dRmsAtt = FloatArray.fromArray(rmsAtt), dRmsFfn = FloatArray.fromArray(rmsFfn),
                dRmsFinal = FloatArray.fromArray(rmsFinal), dXb = FloatArray.fromArray(xb), dHbIn = FloatArray.fromArray(hbIn);
        Int8Array dWqkv = Int8Array.fromArray(wqkv), dWo = Int8Array.fromArray(wo), dW13 = Int8Array.fromArray(w13),
                dW2 = Int8Array.fromArray(w2), dWcls = Int8Array.fromArray(wcls);
        FloatArray dSqkv = FloatArray.fromArray(sqkv), dSo = FloatArray.fromArray(so), dS13 = FloatArray.fromArray(s13),
                dS2 = FloatArray.fromArray(s2), dScls = FloatArray.fromArray(scls);
        FloatArray rope = ForwardGraph.ropeTable(SEQ, HEAD, Configuration.LLAMA2C_ROPE_THETA);
        IntArray state = IntArray.fromElements(3, POS);
        dQ = new FloatArray(DIM);
        dKc = new FloatArray(SEQ * KV_DIM);
        dVc = new FloatArray(SEQ * KV_DIM);
        dXo = FloatArray.fromArray(xStart);
        dXw2 = FloatArray.fromArray(xStart);
        dHb = new FloatArray(HIDDEN);
        dLogits = new FloatArray(VOCAB);

        tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, dX, dRmsAtt, dRmsFfn, dRmsFinal, dXb, dHbIn, dWqkv, dWo, dW13, dW2,
                dWcls, dSqkv, dSo, dS13, dS2, dScls, rope, state, dKc, dVc, dXo, dXw2);
        tg.task("qkvNormQ8", TransformerKernels::qkvNormQ8, ctx, dX, dRmsAtt, dWqkv, dSqkv, dQ, dKc, dVc, state, rope, DIM, KV_DIM,
                HEAD, GS, PARTS);
        grid(g, "qkvNormQ8", qkvRows / 2);
        tg.task("woQuant", TransformerKernels::matmulResidualQuantQ8, ctx, dXb, dWo, dSo, dXo, DIM, GS);
        grid(g, "woQuant", DIM);
        tg.task("w13NormQ8", TransformerKernels::w13NormQ8, ctx, dX, dRmsFfn, dW13, dS13, dHb, DIM, HIDDEN, GS, PARTS);
        grid(g, "w13NormQ8", HIDDEN);
        tg.task("w2Quant", TransformerKernels::matmulResidualQuantQ8, ctx, dHbIn, dW2, dS2, dXw2, HIDDEN, GS);
        grid(g, "w2Quant", DIM);
        tg.task("matmulNormQ8", TransformerKernels::matmulNormQ8, ctx, dX, dRmsFinal, dWcls, dScls, dLogits, DIM, GS, PARTS);
        grid(g, "matmulNormQ8", VOCAB);
        tg.transferToHost(DataTransferMode.EVERY_EXECUTION, dQ, dKc, dVc, dXo, dHb, dXw2, dLogits);
        KernelRun run = KernelRun.executeOnce(tg, g, SEED);
        runs = run.runs();
        deviceName = run.deviceName();
    }

    /** runq's product of a row-major Q8 matrix with x quantized as runq does it. */
    static float[] q8Product(byte[] w, float[] s, int rows, int cols, float[] in) {
        byte[] q = new byte[cols];
        float[] qs = new float[cols / GS];
        Reference.quantize(in, GS, q, qs);
        return Reference.matmulQ8(w, s, rows, cols, GS, q, qs);
    }

    static float[] slice(float[] a, int from, int len) {
        float[] out = new float[len];
        System.arraycopy(a, from, out, 0, len);
        return out;
    }

    static void close(float[] expected, FloatArray actual, int from, String what) {
        double scale = 1;
        for (float v : expected) {
            scale = Math.max(scale, Math.abs(v));
        }
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(expected[i] - actual.get(from + i));
            int at = i;
            assertTrue(d <= 1e-5 * scale, () -> what + "[" + at + "]: expected " + expected[at] + ", device "
                    + actual.get(from + at) + " (seed " + SEED + ")");
        }
    }

    @Test
    void everyKernelRanOnTheDevice() {
        TaskVerifier.verify(TASKS, runs, deviceName);
    }

    @Test
    void qkvNormalisesQuantizesRotatesAndStores() {
        float[] all = q8Product(wqkv, sqkv, DIM + 2 * KV_DIM, DIM, Reference.rmsnorm(x, rmsAtt));
        float[] q = slice(all, 0, DIM), k = slice(all, DIM, KV_DIM), v = slice(all, DIM + KV_DIM, KV_DIM);
        Reference.rope(q, k, POS, HEAD);
        close(q, dQ, 0, "q");
        close(k, dKc, POS * KV_DIM, "key cache row");
        close(v, dVc, POS * KV_DIM, "value cache row");
        close(new float[KV_DIM], dKc, 0, "key cache row 0 untouched");
    }

    @Test
    void residualMatmulsQuantizeTheirInput() {
        float[] o = q8Product(wo, so, DIM, DIM, xb);
        float[] o2 = q8Product(w2, s2, DIM, HIDDEN, hbIn);
        for (int i = 0; i < DIM; i++) {
            o[i] += xStart[i];
            o2[i] += xStart[i];
        }
        close(o, dXo, 0, "x + wo·quantize(xb)");
        close(o2, dXw2, 0, "x + w2·quantize(hb)");
    }

    @Test
    void w13NormalisesQuantizesAndAppliesSwiglu() {
        float[] both = q8Product(w13, s13, 2 * HIDDEN, DIM, Reference.rmsnorm(x, rmsFfn));
        float[] hb = slice(both, 0, HIDDEN);
        Reference.swiglu(hb, slice(both, HIDDEN, HIDDEN));
        close(hb, dHb, 0, "w13NormQ8");
    }

    @Test
    void classifierNormalisesAndQuantizes() {
        close(q8Product(wcls, scls, VOCAB, DIM, Reference.rmsnorm(x, rmsFinal)), dLogits, 0, "matmulNormQ8");
    }
}
