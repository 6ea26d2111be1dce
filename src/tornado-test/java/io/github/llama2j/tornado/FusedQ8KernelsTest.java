package io.github.llama2j.tornado;

import io.github.llama2j.model.Configuration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.util.List;

import static io.github.llama2j.tornado.KernelFixture.slice;

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
 * work-items (work-items own 2 or 3 groups), odd head counts, grouped-query heads. Every kernel runs once per
 * shape {@link #ROWS_PER_GROUP} (rows per work-group of 8 work-items, each row reduced by a slice of 8 / R; with 8
 * one work-item per row; 13 vocabulary rows, 44 hidden rows and 27 qkv pairs leave the last work-group partly
 * idle); the norm's sum of squares stays over the whole work-group. The seed is printed in every failure.
 */
@Tag("tornado")
class FusedQ8KernelsTest {
    static final KernelFixture K = new KernelFixture("fusedq8");
    static final int LOCAL = 8, GS = 4;
    static final int DIM = 72, HEADS = 6, HEAD = 12, KV_HEADS = 3, KV_DIM = KV_HEADS * HEAD, HIDDEN = 44, SEQ = 5, POS = 3;
    static final int VOCAB = 13, PARTS = 3;   // the norm's partial sums (3 × 8 lanes over 72 values)
    static final int[] ROWS_PER_GROUP = {1, 2, 4, 8};
    static final int SHAPES = ROWS_PER_GROUP.length;

    static float[] x, rmsAtt, rmsFfn, rmsFinal, xb, hbIn, xStart;
    static byte[] wqkv, wo, w13, w2, wcls;
    static float[] sqkv, so, s13, s2, scls;
    // device outputs per shape (index into ROWS_PER_GROUP)
    static FloatArray[] dQ = new FloatArray[SHAPES], dKc = new FloatArray[SHAPES], dVc = new FloatArray[SHAPES],
            dXo = new FloatArray[SHAPES], dHb = new FloatArray[SHAPES], dXw2 = new FloatArray[SHAPES], dLogits = new FloatArray[SHAPES];

    /** The grid of a task over {@code rows} rows at {@code rowsPerGroup} rows per work-group. */
    static void grid(String task, int rows, int rowsPerGroup) {
        K.grid(task, ForwardGraph.groupsFor(rows, rowsPerGroup) * LOCAL, LOCAL);
    }

    @BeforeAll
    static void runAllKernelsOnce() {
        K.begin();
        KernelContext ctx = K.ctx();
        TaskGraph tg = K.graph();
        x = K.eighths(DIM);
        rmsAtt = K.normWeight(DIM, 0.3f);
        rmsFfn = K.normWeight(DIM, 0.3f);
        rmsFinal = K.normWeight(DIM, 0.3f);
        xb = K.gaussian(DIM, 1f);
        float[] ties = {127f, 2.5f, -3.5f, 0.5f, -0.5f, 1.4999999f, -126.5f, 63.5f};
        System.arraycopy(ties, 0, xb, 0, ties.length);
        for (int i = 8; i < 12; i++) {
            xb[i] = 0f;
        }
        hbIn = K.gaussian(HIDDEN, 2f);
        xStart = K.gaussian(DIM, 1f);
        int qkvRows = DIM + 2 * KV_DIM;
        wqkv = K.int8s(qkvRows * DIM);
        sqkv = K.scales(qkvRows * DIM / GS);
        wo = K.int8s(DIM * DIM);
        so = K.scales(DIM * DIM / GS);
        w13 = K.int8s(2 * HIDDEN * DIM);
        s13 = K.scales(2 * HIDDEN * DIM / GS);
        w2 = K.int8s(DIM * HIDDEN);
        s2 = K.scales(DIM * HIDDEN / GS);
        wcls = K.int8s(VOCAB * DIM);
        scls = K.scales(VOCAB * DIM / GS);

        FloatArray dX = FloatArray.fromArray(x), dRmsAtt = FloatArray.fromArray(rmsAtt), dRmsFfn = FloatArray.fromArray(rmsFfn),
                dRmsFinal = FloatArray.fromArray(rmsFinal), dXb = FloatArray.fromArray(xb), dHbIn = FloatArray.fromArray(hbIn);
        // the weights packed four int8 values to an int, as the engine's DeviceMatrix.Q8 holds them
        IntArray dWqkv = KernelFixture.packed(wqkv), dWo = KernelFixture.packed(wo), dW13 = KernelFixture.packed(w13),
                dW2 = KernelFixture.packed(w2), dWcls = KernelFixture.packed(wcls);
        FloatArray dSqkv = FloatArray.fromArray(sqkv), dSo = FloatArray.fromArray(so), dS13 = FloatArray.fromArray(s13),
                dS2 = FloatArray.fromArray(s2), dScls = FloatArray.fromArray(scls);
        FloatArray rope = ForwardGraph.ropeTable(SEQ, HEAD, Configuration.LLAMA2C_ROPE_THETA);
        IntArray state = IntArray.fromElements(3, POS);
        K.in.addAll(List.of(dX, dRmsAtt, dRmsFfn, dRmsFinal, dXb, dHbIn, dWqkv, dWo, dW13, dW2, dWcls, dSqkv, dSo, dS13, dS2, dScls,
                rope, state));
        for (int r = 0; r < SHAPES; r++) {
            int rows = ROWS_PER_GROUP[r];
            String sfx = "_r" + rows;
            dQ[r] = new FloatArray(DIM);
            dKc[r] = new FloatArray(SEQ * KV_DIM);
            dVc[r] = new FloatArray(SEQ * KV_DIM);
            dXo[r] = FloatArray.fromArray(xStart);
            dXw2[r] = FloatArray.fromArray(xStart);
            dHb[r] = new FloatArray(HIDDEN);
            dLogits[r] = new FloatArray(VOCAB);
            K.in.addAll(List.of(dKc[r], dVc[r], dXo[r], dXw2[r]));
            tg.task("qkvNormQ8" + sfx, TransformerKernels::qkvNormQ8, ctx, dX, dRmsAtt, dWqkv, dSqkv, dQ[r], dKc[r], dVc[r], state, rope, DIM,
                    KV_DIM, HEAD, GS, PARTS, rows);
            grid("qkvNormQ8" + sfx, qkvRows / 2, rows);
            tg.task("woQuant" + sfx, TransformerKernels::matmulResidualQuantQ8, ctx, dXb, dWo, dSo, dXo[r], DIM, GS, DIM, rows);
            grid("woQuant" + sfx, DIM, rows);
            tg.task("w13NormQ8" + sfx, TransformerKernels::w13NormQ8, ctx, dX, dRmsFfn, dW13, dS13, dHb[r], DIM, HIDDEN, GS, PARTS, rows);
            grid("w13NormQ8" + sfx, HIDDEN, rows);
            tg.task("w2Quant" + sfx, TransformerKernels::matmulResidualQuantQ8, ctx, dHbIn, dW2, dS2, dXw2[r], HIDDEN, GS, DIM, rows);
            grid("w2Quant" + sfx, DIM, rows);
            tg.task("matmulNormQ8" + sfx, TransformerKernels::matmulNormQ8, ctx, dX, dRmsFinal, dWcls, dScls, dLogits[r], DIM, GS, PARTS,
                    VOCAB, rows);
            grid("matmulNormQ8" + sfx, VOCAB, rows);
            K.out.addAll(List.of(dQ[r], dKc[r], dVc[r], dXo[r], dHb[r], dXw2[r], dLogits[r]));
        }
        K.execute();
    }

    /** runq's product of a row-major Q8 matrix with x quantized as runq does it. */
    static float[] q8Product(byte[] w, float[] s, int rows, int cols, float[] in) {
        byte[] q = new byte[cols];
        float[] qs = new float[cols / GS];
        Reference.quantize(in, GS, q, qs);
        return Reference.matmulQ8(w, s, rows, cols, GS, q, qs);
    }

    @Test
    void everyKernelRanOnTheDevice() {
        K.verifyEveryTaskRan();
    }

    @Test
    void qkvNormalisesQuantizesRotatesAndStores() {
        float[] all = q8Product(wqkv, sqkv, DIM + 2 * KV_DIM, DIM, Reference.rmsnorm(x, rmsAtt));
        float[] q = slice(all, 0, DIM), k = slice(all, DIM, KV_DIM), v = slice(all, DIM + KV_DIM, KV_DIM);
        Reference.rope(q, k, POS, HEAD);
        for (int r = 0; r < SHAPES; r++) {
            K.closeRelative(q, dQ[r], 0, 1e-5, "q" + shape(r));
            K.closeRelative(k, dKc[r], POS * KV_DIM, 1e-5, "key cache row" + shape(r));
            K.closeRelative(v, dVc[r], POS * KV_DIM, 1e-5, "value cache row" + shape(r));
            K.closeRelative(new float[KV_DIM], dKc[r], 0, 1e-5, "key cache row 0 untouched" + shape(r));
        }
    }

    /** What each shape's outputs are called in a failure. */
    static String shape(int r) {
        return " (" + ROWS_PER_GROUP[r] + " rows per work-group)";
    }

    @Test
    void residualMatmulsQuantizeTheirInput() {
        float[] o = q8Product(wo, so, DIM, DIM, xb);
        float[] o2 = q8Product(w2, s2, DIM, HIDDEN, hbIn);
        for (int i = 0; i < DIM; i++) {
            o[i] += xStart[i];
            o2[i] += xStart[i];
        }
        for (int r = 0; r < SHAPES; r++) {
            K.closeRelative(o, dXo[r], 0, 1e-5, "x + wo·quantize(xb)" + shape(r));
            K.closeRelative(o2, dXw2[r], 0, 1e-5, "x + w2·quantize(hb)" + shape(r));
        }
    }

    @Test
    void w13NormalisesQuantizesAndAppliesSwiglu() {
        float[] both = q8Product(w13, s13, 2 * HIDDEN, DIM, Reference.rmsnorm(x, rmsFfn));
        float[] hb = slice(both, 0, HIDDEN);
        Reference.swiglu(hb, slice(both, HIDDEN, HIDDEN));
        for (int r = 0; r < SHAPES; r++) {
            K.closeRelative(hb, dHb[r], 0, 1e-5, "w13NormQ8" + shape(r));
        }
    }

    @Test
    void classifierNormalisesAndQuantizes() {
        float[] expected = q8Product(wcls, scls, VOCAB, DIM, Reference.rmsnorm(x, rmsFinal));
        for (int r = 0; r < SHAPES; r++) {
            K.closeRelative(expected, dLogits[r], 0, 1e-5, "matmulNormQ8" + shape(r));
        }
    }
}
