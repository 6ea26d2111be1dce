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
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Every device kernel against the scalar reference ({@link Reference} → ScalarKernels) on fresh random
 * inputs, with awkward sizes: row lengths that are not multiples of the work-group (100 columns over
 * 16 work-items), odd row counts (37), a head size of 10 over 4 work-items. The engine's float32 matmul kernels
 * run once per shape {@link #ROWS_PER_GROUP} (rows per work-group, each row reduced by a slice of 16 / R
 * work-items; 37 rows and 52 hidden rows leave the last work-group partly idle). All kernels go into one task
 * graph, so PoCL JIT-compiles them once for the whole class. The seed is printed in every failure.
 */
@Tag("tornado")
class KernelsTest {
    static final KernelFixture K = new KernelFixture("kernels");
    static final int LOCAL = 16;
    // float32 matmul shapes
    static final int ROWS = 37, COLS = 100;
    // a small transformer layer: dim 40 = 4 heads of 10, 2 kv heads (kvMul 2), hidden 52
    static final int DIM = 40, HEADS = 4, HEAD = 10, KV_HEADS = 2, KV_DIM = KV_HEADS * HEAD, HIDDEN = 52, SEQ = 7;
    static final int QKV_POS = 5, ATT_POS = SEQ - 1;
    // Q8: the layer's group size, and a separate matmul shape with groups of 12
    static final int GS = 4, Q_ROWS = 37, Q_COLS = 96, Q_GS = 12;
    static final int VOCAB = 9, TOKEN = 7;
    /** The shapes the float32 matmul kernels are checked with: rows per work-group of LOCAL work-items. */
    static final int[] ROWS_PER_GROUP = {1, 2, 4, 8};

    // inputs
    static float[] wF32, xCols, xDim, rmsW, wqkv, w13, kc, vc, qAtt, embF32, embScales, xQuant, rmsDim;
    static byte[] embValues;
    static byte[] qValues, xq96;
    static float[] qScales, xs96;
    static byte[] w13Q, xqDim;
    static float[] w13S, xsDim;
    // device outputs
    static FloatArray dEmbF32, dEmbQ8, dAttOut, dXs, dMatQ8, dHbQ8;
    // device outputs of the float32 matmul kernels, per shape (index into ROWS_PER_GROUP)
    static final int SHAPES = ROWS_PER_GROUP.length;
    static FloatArray[] dMatNorm = new FloatArray[SHAPES], dResidual = new FloatArray[SHAPES], dQ = new FloatArray[SHAPES],
            dKc = new FloatArray[SHAPES], dVc = new FloatArray[SHAPES], dHb = new FloatArray[SHAPES];
    static Int8Array dXq;
    static float[] residualStart;

    static FloatArray f(float[] a) {
        return FloatArray.fromArray(a);
    }

    static Int8Array b(byte[] a) {
        return Int8Array.fromArray(a);
    }

    @BeforeAll
    static void runAllKernelsOnce() {
        K.begin();
        KernelContext ctx = K.ctx();
        TaskGraph tg = K.graph();
        List<Object> in = K.in;

        // ---- embeddings
        embF32 = K.gaussian(VOCAB * DIM, 1f);
        embValues = K.int8s(VOCAB * DIM);
        embScales = K.scales(VOCAB * DIM / GS);
        IntArray tokenState = IntArray.fromElements(TOKEN, 0);
        FloatArray dEmb = f(embF32), dEmbS = f(embScales);
        IntArray dEmbV = KernelFixture.packed(embValues);
        dEmbF32 = new FloatArray(DIM);
        dEmbQ8 = new FloatArray(DIM);
        in.addAll(List.of(tokenState, dEmb, dEmbV, dEmbS));
        tg.task("embedF32", TransformerKernels::embedF32, ctx, tokenState, dEmb, dEmbF32, DIM);
        K.grid("embedF32", 48, LOCAL);
        tg.task("embedQ8", TransformerKernels::embedQ8, ctx, tokenState, dEmbV, dEmbS, dEmbQ8, DIM, GS);
        K.grid("embedQ8", 48, LOCAL);

        // ---- norm + matmul (classifier) and matmul + residual, 37 × 100
        wF32 = K.gaussian(ROWS * COLS, 0.3f);
        xCols = K.gaussian(COLS, 1f);
        rmsW = K.normWeight(COLS, 0.3f);
        residualStart = K.gaussian(ROWS, 1f);
        FloatArray dW = f(wF32), dXCols = f(xCols), dRmsW = f(rmsW);
        in.addAll(List.of(dW, dXCols, dRmsW));
        for (int r = 0; r < SHAPES; r++) {
            int rows = ROWS_PER_GROUP[r];
            dMatNorm[r] = new FloatArray(ROWS);
            dResidual[r] = f(residualStart);
            in.add(dResidual[r]);
            tg.task("matmulNormF32_r" + rows, TransformerKernels::matmulNormF32, ctx, dXCols, dRmsW, dW, dMatNorm[r], COLS, ROWS, rows);
            K.grid("matmulNormF32_r" + rows, ForwardGraph.groupsFor(ROWS, rows) * LOCAL, LOCAL);
            tg.task("matmulResidualF32_r" + rows, TransformerKernels::matmulResidualF32, ctx, dXCols, dW, dResidual[r], COLS, ROWS, rows);
            K.grid("matmulResidualF32_r" + rows, ForwardGraph.groupsFor(ROWS, rows) * LOCAL, LOCAL);
        }

        // ---- a layer's fused kernels at dim 40
        xDim = K.gaussian(DIM, 1f);
        rmsDim = K.normWeight(DIM, 0.3f);
        wqkv = K.gaussian((DIM + 2 * KV_DIM) * DIM, 0.3f);
        w13 = K.gaussian(2 * HIDDEN * DIM, 0.3f);
        FloatArray dXDim = f(xDim), dRmsDim = f(rmsDim), dWqkv = f(wqkv), dW13 = f(w13);
        FloatArray rope = ForwardGraph.ropeTable(SEQ, HEAD, Configuration.LLAMA2C_ROPE_THETA);
        IntArray qkvState = IntArray.fromElements(3, QKV_POS);
        in.addAll(List.of(dXDim, dRmsDim, dWqkv, dW13, rope, qkvState));
        for (int r = 0; r < SHAPES; r++) {
            int rows = ROWS_PER_GROUP[r];
            dQ[r] = new FloatArray(DIM);
            dKc[r] = new FloatArray(SEQ * KV_DIM);
            dVc[r] = new FloatArray(SEQ * KV_DIM);
            dHb[r] = new FloatArray(HIDDEN);
            in.addAll(List.of(dKc[r], dVc[r]));
            tg.task("qkvF32_r" + rows, TransformerKernels::qkvF32, ctx, dXDim, dRmsDim, dWqkv, dQ[r], dKc[r], dVc[r], qkvState, rope, DIM,
                    KV_DIM, HEAD, rows);
            K.grid("qkvF32_r" + rows, ForwardGraph.groupsFor((DIM + 2 * KV_DIM) / 2, rows) * LOCAL, LOCAL);
            tg.task("w13F32_r" + rows, TransformerKernels::w13F32, ctx, dXDim, dRmsDim, dW13, dHb[r], DIM, HIDDEN, rows);
            K.grid("w13F32_r" + rows, ForwardGraph.groupsFor(HIDDEN, rows) * LOCAL, LOCAL);
        }

        // ---- attention over a random cache, all SEQ positions, grouped-query heads
        kc = K.gaussian(SEQ * KV_DIM, 1f);
        vc = K.gaussian(SEQ * KV_DIM, 1f);
        qAtt = K.gaussian(DIM, 1f);
        FloatArray dKcAtt = f(kc), dVcAtt = f(vc), dQAtt = f(qAtt), att = new FloatArray(HEADS * SEQ);
        IntArray attState = IntArray.fromElements(3, ATT_POS);
        dAttOut = new FloatArray(DIM);
        in.addAll(List.of(dKcAtt, dVcAtt, dQAtt, attState));
        tg.task("attention", TransformerKernels::attention, ctx, dQAtt, dKcAtt, dVcAtt, att, dAttOut, attState, SEQ, HEAD,
                KV_DIM, HEADS / KV_HEADS, (float) Math.sqrt(HEAD));
        K.grid("attention", HEADS * 4, 4);

        // ---- quantize: random groups, a group whose halves must round away from zero, a zero group
        xQuant = K.gaussian(Q_COLS, 2f);
        float[] halves = {127f, 2.5f, -3.5f, 0.5f, -0.5f, 1.4999999f, -126.5f, 63.5f, 0f, -0f, 100.49999f, -7.5f};
        System.arraycopy(halves, 0, xQuant, 0, Q_GS);
        for (int i = Q_GS; i < 2 * Q_GS; i++) {
            xQuant[i] = 0f;
        }
        FloatArray dXQuant = f(xQuant);
        dXq = new Int8Array(Q_COLS);
        dXs = new FloatArray(Q_COLS / Q_GS);
        in.addAll(List.of(dXQuant, dXq));
        tg.task("quantize", TransformerKernels::quantize, ctx, dXQuant, dXq, dXs, Q_COLS, Q_GS);
        K.grid("quantize", 8, 4);

        // ---- Q8 matmuls on host-quantized inputs (so the reference sees the same int8 activations)
        qValues = K.int8s(Q_ROWS * Q_COLS);
        qScales = K.scales(Q_ROWS * Q_COLS / Q_GS);
        float[] x96 = K.gaussian(Q_COLS, 1f);
        xq96 = new byte[Q_COLS];
        xs96 = new float[Q_COLS / Q_GS];
        Reference.quantize(x96, Q_GS, xq96, xs96);
        Int8Array dQv = b(qValues), dXq96 = b(xq96);
        FloatArray dQs = f(qScales), dXs96 = f(xs96);
        dMatQ8 = new FloatArray(Q_ROWS);
        in.addAll(List.of(dQv, dXq96, dQs, dXs96));
        tg.task("matmulQ8", TransformerKernels::matmulQ8, ctx, dXq96, dXs96, dQv, dQs, dMatQ8, Q_COLS, Q_GS);
        K.grid("matmulQ8", Q_ROWS * LOCAL, LOCAL);

        w13Q = K.int8s(2 * HIDDEN * DIM);
        w13S = K.scales(2 * HIDDEN * DIM / GS);
        xqDim = new byte[DIM];
        xsDim = new float[DIM / GS];
        Reference.quantize(Reference.rmsnorm(xDim, rmsDim), GS, xqDim, xsDim);
        Int8Array dW13Q = b(w13Q), dXqDim = b(xqDim);
        FloatArray dW13S = f(w13S), dXsDim = f(xsDim);
        dHbQ8 = new FloatArray(HIDDEN);
        in.addAll(List.of(dW13Q, dXqDim, dW13S, dXsDim));
        tg.task("w13Q8", TransformerKernels::w13Q8, ctx, dXqDim, dXsDim, dW13Q, dW13S, dHbQ8, DIM, HIDDEN, GS);
        K.grid("w13Q8", HIDDEN * LOCAL, LOCAL);

        K.out.addAll(List.of(dEmbF32, dEmbQ8, dAttOut, dXq, dXs, dMatQ8, dHbQ8));
        for (int r = 0; r < SHAPES; r++) {
            K.out.addAll(List.of(dMatNorm[r], dResidual[r], dQ[r], dKc[r], dVc[r], dHb[r]));
        }
        K.execute();
    }

    /** All of {@code actual} within relTol × max(1, max|expected|) of {@code expected} ({@link KernelFixture#closeRelative}). */
    static void close(float[] expected, FloatArray actual, double relTol, String what) {
        assertEquals(expected.length, actual.getSize(), what + " length");
        K.closeRelative(expected, actual, 0, relTol, what);
    }

    @Test
    void everyKernelRanOnTheDevice() {
        K.verifyEveryTaskRan();
    }

    @Test
    void embeddings() {
        assertArrayEquals(slice(embF32, TOKEN * DIM, DIM), dEmbF32.toHeapArray(), "embedF32" + K.seedNote());
        float[] q8 = new float[DIM];
        for (int i = 0; i < DIM; i++) {
            int idx = TOKEN * DIM + i;
            q8[i] = embValues[idx] * embScales[idx / GS];
        }
        assertArrayEquals(q8, dEmbQ8.toHeapArray(), "embedQ8 (runq: value * scale)" + K.seedNote());
    }

    /** What each shape's outputs are called in a failure. */
    static String shape(int r) {
        return " (" + ROWS_PER_GROUP[r] + " rows per work-group)";
    }

    @Test
    void classifierMatmulWithFinalNorm() {
        float[] expected = Reference.matmulF32(wF32, ROWS, COLS, Reference.rmsnorm(xCols, rmsW));
        for (int r = 0; r < SHAPES; r++) {
            close(expected, dMatNorm[r], 1e-5, "matmulNormF32" + shape(r));
        }
    }

    @Test
    void matmulWithResidualAdd() {
        float[] expected = Reference.matmulF32(wF32, ROWS, COLS, xCols);
        for (int i = 0; i < ROWS; i++) {
            expected[i] += residualStart[i];
        }
        for (int r = 0; r < SHAPES; r++) {
            close(expected, dResidual[r], 1e-5, "matmulResidualF32" + shape(r));
        }
    }

    @Test
    void fusedNormQkvRopeAndCacheStore() {
        float[] xn = Reference.rmsnorm(xDim, rmsDim);
        float[] all = Reference.matmulF32(wqkv, DIM + 2 * KV_DIM, DIM, xn);
        float[] q = slice(all, 0, DIM), k = slice(all, DIM, KV_DIM), v = slice(all, DIM + KV_DIM, KV_DIM);
        Reference.rope(q, k, QKV_POS, HEAD);   // q, and k/v at row QKV_POS of the caches
        for (int r = 0; r < SHAPES; r++) {
            close(q, dQ[r], 1e-5, "q" + shape(r));
            K.closeRelative(k, dKc[r], QKV_POS * KV_DIM, 1e-5, "key cache row" + shape(r));
            K.closeRelative(v, dVc[r], QKV_POS * KV_DIM, 1e-5, "value cache row" + shape(r));
            K.closeRelative(new float[KV_DIM], dKc[r], 0, 0, "key cache row 0 untouched" + shape(r));
        }
    }

    @Test
    void fusedNormW1W3SwiGLU() {
        float[] xn = Reference.rmsnorm(xDim, rmsDim);
        float[] both = Reference.matmulF32(w13, 2 * HIDDEN, DIM, xn);
        float[] hb = slice(both, 0, HIDDEN), hb2 = slice(both, HIDDEN, HIDDEN);
        Reference.swiglu(hb, hb2);
        for (int r = 0; r < SHAPES; r++) {
            close(hb, dHb[r], 1e-5, "w13F32" + shape(r));
        }
    }

    @Test
    void attentionWithSoftmaxOverAllPositionsAndGroupedQueryHeads() {
        float[] out = new float[DIM];
        for (int h = 0; h < HEADS; h++) {
            Reference.attentionHead(out, qAtt, kc, vc, h, ATT_POS, HEAD, KV_DIM, HEADS / KV_HEADS, SEQ);
        }
        close(out, dAttOut, 1e-5, "attention");
    }

    @Test
    void quantizeIsExactlyRunq() {
        byte[] q = new byte[Q_COLS];
        float[] s = new float[Q_COLS / Q_GS];
        Reference.quantize(xQuant, Q_GS, q, s);
        assertArrayEquals(s, dXs.toHeapArray(), "scales" + K.seedNote());
        byte[] actual = new byte[Q_COLS];
        for (int i = 0; i < Q_COLS; i++) {
            actual[i] = dXq.get(i);
        }
        assertArrayEquals(q, actual, "int8 values (C round: half away from zero)" + K.seedNote());
        assertEquals(3, actual[1], "2.5 rounds to 3");
        assertEquals(-4, actual[2], "-3.5 rounds to -4");
        assertEquals(0, actual[Q_GS], "an all-zero group quantizes to 0");
    }

    @Test
    void q8Matmuls() {
        float[] expected = Reference.matmulQ8(qValues, qScales, Q_ROWS, Q_COLS, Q_GS, xq96, xs96);
        close(expected, dMatQ8, 1e-5, "matmulQ8");
    }

    @Test
    void q8FusedW1W3SwiGLU() {
        float[] both = Reference.matmulQ8(w13Q, w13S, 2 * HIDDEN, DIM, GS, xqDim, xsDim);
        float[] hb = slice(both, 0, HIDDEN), hb2 = slice(both, HIDDEN, HIDDEN);
        Reference.swiglu(hb, hb2);
        close(hb, dHbQ8, 1e-5, "w13Q8");
    }
}
