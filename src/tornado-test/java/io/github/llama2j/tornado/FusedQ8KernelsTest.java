package io.github.llama2j.tornado;

import io.github.llama2j.model.Configuration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
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
 * work-items (work-items own 2 or 3 groups), odd head counts, grouped-query heads. The seed is printed in
 * every failure.
 */
@Tag("tornado")
class FusedQ8KernelsTest {
    static final KernelFixture K = new KernelFixture("fusedq8");
    static final int LOCAL = 8, GS = 4;
    static final int DIM = 72, HEADS = 6, HEAD = 12, KV_HEADS = 3, KV_DIM = KV_HEADS * HEAD, HIDDEN = 44, SEQ = 5, POS = 3;
    static final int VOCAB = 13, PARTS = 3;   // the norm's partial sums (3 × 8 lanes over 72 values)

    static float[] x, rmsAtt, rmsFfn, rmsFinal, xb, hbIn, xStart;
    static byte[] wqkv, wo, w13, w2, wcls;
    static float[] sqkv, so, s13, s2, scls;
    static FloatArray dQ, dKc, dVc, dXo, dHb, dXw2, dLogits;

    static void grid(String task, int groups) {
        K.grid(task, groups * LOCAL, LOCAL);
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

        K.in.addAll(List.of(dX, dRmsAtt, dRmsFfn, dRmsFinal, dXb, dHbIn, dWqkv, dWo, dW13, dW2, dWcls, dSqkv, dSo, dS13, dS2, dScls,
                rope, state, dKc, dVc, dXo, dXw2));
        tg.task("qkvNormQ8", TransformerKernels::qkvNormQ8, ctx, dX, dRmsAtt, dWqkv, dSqkv, dQ, dKc, dVc, state, rope, DIM, KV_DIM,
                HEAD, GS, PARTS);
        grid("qkvNormQ8", qkvRows / 2);
        tg.task("woQuant", TransformerKernels::matmulResidualQuantQ8, ctx, dXb, dWo, dSo, dXo, DIM, GS);
        grid("woQuant", DIM);
        tg.task("w13NormQ8", TransformerKernels::w13NormQ8, ctx, dX, dRmsFfn, dW13, dS13, dHb, DIM, HIDDEN, GS, PARTS);
        grid("w13NormQ8", HIDDEN);
        tg.task("w2Quant", TransformerKernels::matmulResidualQuantQ8, ctx, dHbIn, dW2, dS2, dXw2, HIDDEN, GS);
        grid("w2Quant", DIM);
        tg.task("matmulNormQ8", TransformerKernels::matmulNormQ8, ctx, dX, dRmsFinal, dWcls, dScls, dLogits, DIM, GS, PARTS);
        grid("matmulNormQ8", VOCAB);
        K.out.addAll(List.of(dQ, dKc, dVc, dXo, dHb, dXw2, dLogits));
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
        K.closeRelative(q, dQ, 0, 1e-5, "q");
        K.closeRelative(k, dKc, POS * KV_DIM, 1e-5, "key cache row");
        K.closeRelative(v, dVc, POS * KV_DIM, 1e-5, "value cache row");
        K.closeRelative(new float[KV_DIM], dKc, 0, 1e-5, "key cache row 0 untouched");
    }

    @Test
    void residualMatmulsQuantizeTheirInput() {
        float[] o = q8Product(wo, so, DIM, DIM, xb);
        float[] o2 = q8Product(w2, s2, DIM, HIDDEN, hbIn);
        for (int i = 0; i < DIM; i++) {
            o[i] += xStart[i];
            o2[i] += xStart[i];
        }
        K.closeRelative(o, dXo, 0, 1e-5, "x + wo·quantize(xb)");
        K.closeRelative(o2, dXw2, 0, 1e-5, "x + w2·quantize(hb)");
    }

    @Test
    void w13NormalisesQuantizesAndAppliesSwiglu() {
        float[] both = q8Product(w13, s13, 2 * HIDDEN, DIM, Reference.rmsnorm(x, rmsFfn));
        float[] hb = slice(both, 0, HIDDEN);
        Reference.swiglu(hb, slice(both, HIDDEN, HIDDEN));
        K.closeRelative(hb, dHb, 0, 1e-5, "w13NormQ8");
    }

    @Test
    void classifierNormalisesAndQuantizes() {
        K.closeRelative(q8Product(wcls, scls, VOCAB, DIM, Reference.rmsnorm(x, rmsFinal)), dLogits, 0, 1e-5, "matmulNormQ8");
    }
}
