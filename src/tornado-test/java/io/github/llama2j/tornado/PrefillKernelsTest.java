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
 * Every prefill kernel ({@link PrefillKernels}) against the scalar reference ({@link Reference} → ScalarKernels)
 * on fresh random inputs, token by token: a chunk of {@value #B} rows holding {@value #COUNT} tokens at positions
 * {@value #START} .. {@value #START} + {@value #COUNT} − 1, so each check also sees that row {@value #COUNT} (past the
 * chunk's count) and the cache rows outside the chunk's positions stay untouched. Shapes as {@link KernelsTest}'s
 * and {@link FusedQ8KernelsTest}'s: rows not a multiple of the work-group, 4 heads of 10 over 2 key/value heads.
 * The Q8 kernels' inputs are multiples of 1/8 (exact sums of squares: the reference's int8 values are the
 * device's, see {@link FusedQ8KernelsTest}). The seed is printed in every failure.
 */
@Tag("tornado")
class PrefillKernelsTest {
    static final KernelFixture K = new KernelFixture("prefillk");
    static final int LOCAL = 8, B = 5, COUNT = 4, START = 2, SEQ = 8;
    static final int DIM = 40, HEADS = 4, HEAD = 10, KV_HEADS = 2, KV_DIM = KV_HEADS * HEAD, HIDDEN = 52, VOCAB = 11;
    static final int GS = 4, PARTS = 3;
    static final int[] TOKENS = {7, 0, 10, 7};

    static float[] emb, embS, x, x8, rmsAtt, rmsFfn, rmsFinal, wqkv, wo, w13, w2, wcls, xb, hb, qAtt, kc, vc;
    static byte[] embV, qwqkv, qwo, qw13, qw2, qwcls;
    static float[] sqkv, so, s13, s2, scls;
    static FloatArray dEmbF32, dEmbQ8, dQ, dKc, dVc, dXo, dHb, dXw2, dLogits, dAtt;
    static FloatArray dQ8, dKc8, dVc8, dXo8, dHb8, dXw28, dLogits8;

    static FloatArray f(float[] a) {
        return FloatArray.fromArray(a);
    }

    static void grid(String task, int groups) {
        K.grid(task, groups * LOCAL, LOCAL);
    }

    @BeforeAll
    static void runAllKernelsOnce() {
        K.begin();
        KernelContext ctx = K.ctx();
        TaskGraph tg = K.graph();
        int[] ps = new int[PrefillKernels.TOKENS + B];
        ps[PrefillKernels.START] = START;
        ps[PrefillKernels.COUNT] = COUNT;
        for (int i = 0; i < COUNT; i++) {
            ps[PrefillKernels.TOKENS + i] = TOKENS[i];
        }
        ps[PrefillKernels.TOKENS + COUNT] = 3;   // a token past the count: must not be embedded
        IntArray pstate = IntArray.fromArray(ps);
        FloatArray rope = ForwardGraph.ropeTable(SEQ, HEAD, Configuration.LLAMA2C_ROPE_THETA);
        int qkvRows = DIM + 2 * KV_DIM;

        emb = K.gaussian(VOCAB * DIM, 1f);
        embV = K.int8s(VOCAB * DIM);
        embS = K.scales(VOCAB * DIM / GS);
        x = K.gaussian(B * DIM, 1f);
        x8 = K.eighths(B * DIM);
        rmsAtt = K.normWeight(DIM, 0.3f);
        rmsFfn = K.normWeight(DIM, 0.3f);
        rmsFinal = K.normWeight(DIM, 0.3f);
        wqkv = K.gaussian(qkvRows * DIM, 0.3f);
        wo = K.gaussian(DIM * DIM, 0.3f);
        w13 = K.gaussian(2 * HIDDEN * DIM, 0.3f);
        w2 = K.gaussian(DIM * HIDDEN, 0.3f);
        wcls = K.gaussian(VOCAB * DIM, 0.3f);
        xb = K.gaussian(B * DIM, 1f);
        hb = K.gaussian(B * HIDDEN, 2f);
        qAtt = K.gaussian(B * DIM, 1f);
        kc = K.gaussian(SEQ * KV_DIM, 1f);
        vc = K.gaussian(SEQ * KV_DIM, 1f);
        qwqkv = K.int8s(qkvRows * DIM);
        sqkv = K.scales(qkvRows * DIM / GS);
        qwo = K.int8s(DIM * DIM);
        so = K.scales(DIM * DIM / GS);
        qw13 = K.int8s(2 * HIDDEN * DIM);
        s13 = K.scales(2 * HIDDEN * DIM / GS);
        qw2 = K.int8s(DIM * HIDDEN);
        s2 = K.scales(DIM * HIDDEN / GS);
        qwcls = K.int8s(VOCAB * DIM);
        scls = K.scales(VOCAB * DIM / GS);

        FloatArray dEmb = f(emb), dEmbS = f(embS), dX = f(x), dX8 = f(x8), dRmsAtt = f(rmsAtt), dRmsFfn = f(rmsFfn),
                dRmsFinal = f(rmsFinal), dWqkv = f(wqkv), dWo = f(wo), dW13 = f(w13), dW2 = f(w2), dWcls = f(wcls),
                dXb = f(xb), dHbIn = f(hb), dQAtt = f(qAtt), dKcAtt = f(kc), dVcAtt = f(vc), dSqkv = f(sqkv), dSo = f(so),
                dS13 = f(s13), dS2 = f(s2), dScls = f(scls);
        IntArray dEmbV = KernelFixture.packed(embV), dQwqkv = KernelFixture.packed(qwqkv), dQwo = KernelFixture.packed(qwo),
                dQw13 = KernelFixture.packed(qw13), dQw2 = KernelFixture.packed(qw2), dQwcls = KernelFixture.packed(qwcls);
        dEmbF32 = new FloatArray(B * DIM);
        dEmbQ8 = new FloatArray(B * DIM);
        dQ = new FloatArray(B * DIM);
        dKc = new FloatArray(SEQ * KV_DIM);
        dVc = new FloatArray(SEQ * KV_DIM);
        dXo = f(x);
        dXw2 = f(x);
        dHb = new FloatArray(B * HIDDEN);
        dLogits = new FloatArray(VOCAB);
        dAtt = new FloatArray(B * DIM);
        dQ8 = new FloatArray(B * DIM);
        dKc8 = new FloatArray(SEQ * KV_DIM);
        dVc8 = new FloatArray(SEQ * KV_DIM);
        dXo8 = f(x);
        dXw28 = f(x);
        dHb8 = new FloatArray(B * HIDDEN);
        dLogits8 = new FloatArray(VOCAB);
        FloatArray attScratch = new FloatArray(B * HEADS * SEQ);
        K.in.addAll(List.of(pstate, rope, dEmb, dEmbS, dEmbV, dX, dX8, dRmsAtt, dRmsFfn, dRmsFinal, dWqkv, dWo, dW13, dW2, dWcls, dXb,
                dHbIn, dQAtt, dKcAtt, dVcAtt, dSqkv, dSo, dS13, dS2, dScls, dQwqkv, dQwo, dQw13, dQw2, dQwcls, dKc, dVc, dXo, dXw2,
                dKc8, dVc8, dXo8, dXw28, dEmbF32, dEmbQ8, dQ, dHb, dAtt, dQ8, dHb8));

        tg.task("embedF32", PrefillKernels::embedF32, ctx, pstate, dEmb, dEmbF32, DIM);
        K.grid("embedF32", B * DIM, LOCAL);
        tg.task("embedQ8", PrefillKernels::embedQ8, ctx, pstate, dEmbV, dEmbS, dEmbQ8, DIM, GS);
        K.grid("embedQ8", B * DIM, LOCAL);
        tg.task("qkvF32", PrefillKernels::qkvF32, ctx, dX, dRmsAtt, dWqkv, dQ, dKc, dVc, pstate, rope, DIM, KV_DIM, HEAD);
        grid("qkvF32", qkvRows / 2);
        tg.task("woF32", PrefillKernels::matmulResidualF32, ctx, dXb, dWo, dXo, pstate, DIM, DIM);
        grid("woF32", DIM);
        tg.task("w13F32", PrefillKernels::w13F32, ctx, dX, dRmsFfn, dW13, dHb, pstate, DIM, HIDDEN);
        grid("w13F32", HIDDEN);
        tg.task("w2F32", PrefillKernels::matmulResidualF32, ctx, dHbIn, dW2, dXw2, pstate, HIDDEN, DIM);
        grid("w2F32", DIM);
        tg.task("classifierF32", PrefillKernels::classifierF32, ctx, dX, dRmsFinal, dWcls, dLogits, pstate, DIM);
        grid("classifierF32", VOCAB);
        tg.task("attention", PrefillKernels::attention, ctx, dQAtt, dKcAtt, dVcAtt, attScratch, dAtt, pstate, SEQ, HEAD, KV_DIM,
                HEADS / KV_HEADS, (float) Math.sqrt(HEAD), HEADS);
        K.grid("attention", B * HEADS * 4, 4);
        tg.task("qkvQ8", PrefillKernels::qkvQ8, ctx, dX8, dRmsAtt, dQwqkv, dSqkv, dQ8, dKc8, dVc8, pstate, rope, DIM, KV_DIM, HEAD, GS,
                PARTS);
        grid("qkvQ8", qkvRows / 2);
        tg.task("woQ8", PrefillKernels::matmulResidualQ8, ctx, dXb, dQwo, dSo, dXo8, pstate, DIM, DIM, GS);
        grid("woQ8", DIM);
        tg.task("w13Q8", PrefillKernels::w13Q8, ctx, dX8, dRmsFfn, dQw13, dS13, dHb8, pstate, DIM, HIDDEN, GS, PARTS);
        grid("w13Q8", HIDDEN);
        tg.task("w2Q8", PrefillKernels::matmulResidualQ8, ctx, dHbIn, dQw2, dS2, dXw28, pstate, HIDDEN, DIM, GS);
        grid("w2Q8", DIM);
        tg.task("classifierQ8", PrefillKernels::classifierQ8, ctx, dX8, dRmsFinal, dQwcls, dScls, dLogits8, pstate, DIM, GS, PARTS);
        grid("classifierQ8", VOCAB);
        K.out.addAll(List.of(dEmbF32, dEmbQ8, dQ, dKc, dVc, dXo, dXw2, dHb, dLogits, dAtt, dQ8, dKc8, dVc8, dXo8, dXw28, dHb8, dLogits8));
        K.execute();
    }

    /** runq's product of a row-major Q8 matrix with {@code in} quantized as runq does it. */
    static float[] q8Product(byte[] w, float[] s, int rows, int cols, float[] in) {
        byte[] q = new byte[cols];
        float[] qs = new float[cols / GS];
        Reference.quantize(in, GS, q, qs);
        return Reference.matmulQ8(w, s, rows, cols, GS, q, qs);
    }

    interface Product {
        float[] of(float[] in);
    }

    static float[] row(float[] a, int i, int n) {
        return slice(a, i * n, n);
    }

    @Test
    void everyKernelRanOnTheDevice() {
        K.verifyEveryTaskRan();
    }

    @Test
    void embeddingsOfTheChunksTokensOnly() {
        for (int i = 0; i < COUNT; i++) {
            float[] q8 = new float[DIM];
            for (int j = 0; j < DIM; j++) {
                int idx = TOKENS[i] * DIM + j;
                q8[j] = embV[idx] * embS[idx / GS];
            }
            K.closeRelative(row(emb, TOKENS[i], DIM), dEmbF32, i * DIM, 0, "embedF32 token " + i);
            K.closeRelative(q8, dEmbQ8, i * DIM, 0, "embedQ8 token " + i);
        }
        K.closeRelative(new float[DIM], dEmbF32, COUNT * DIM, 0, "embedF32 row past the count");
        K.closeRelative(new float[DIM], dEmbQ8, COUNT * DIM, 0, "embedQ8 row past the count");
    }

    /** q of each token and its key/value cache row at START + i, from {@code product} of that token's normalised row. */
    static void checkQkv(float[] xs, float[] rms, Product product, FloatArray q, FloatArray keys, FloatArray values, String what) {
        for (int i = 0; i < COUNT; i++) {
            float[] all = product.of(Reference.rmsnorm(row(xs, i, DIM), rms));
            float[] qi = slice(all, 0, DIM), k = slice(all, DIM, KV_DIM), v = slice(all, DIM + KV_DIM, KV_DIM);
            Reference.rope(qi, k, START + i, HEAD);
            K.closeRelative(qi, q, i * DIM, 1e-5, what + " q of token " + i);
            K.closeRelative(k, keys, (START + i) * KV_DIM, 1e-5, what + " key cache row " + (START + i));
            K.closeRelative(v, values, (START + i) * KV_DIM, 1e-5, what + " value cache row " + (START + i));
        }
        K.closeRelative(new float[DIM], q, COUNT * DIM, 0, what + " q row past the count");
        for (int pos : new int[]{0, 1, START + COUNT, SEQ - 1}) {
            K.closeRelative(new float[KV_DIM], keys, pos * KV_DIM, 0, what + " key cache row " + pos + " untouched");
            K.closeRelative(new float[KV_DIM], values, pos * KV_DIM, 0, what + " value cache row " + pos + " untouched");
        }
    }

    /** x[i] + product(in[i]) for each token, x[COUNT] unchanged. */
    static void checkResidual(float[] in, int n, Product product, FloatArray out, String what) {
        for (int i = 0; i < B; i++) {
            float[] expected = row(x, i, DIM);
            if (i < COUNT) {
                float[] p = product.of(row(in, i, n));
                for (int r = 0; r < DIM; r++) {
                    expected[r] += p[r];
                }
            }
            K.closeRelative(expected, out, i * DIM, 1e-5, what + " token " + i);
        }
    }

    static void checkW13(float[] xs, Product product, FloatArray out, String what) {
        for (int i = 0; i < COUNT; i++) {
            float[] both = product.of(Reference.rmsnorm(row(xs, i, DIM), rmsFfn));
            float[] h = slice(both, 0, HIDDEN);
            Reference.swiglu(h, slice(both, HIDDEN, HIDDEN));
            K.closeRelative(h, out, i * HIDDEN, 1e-5, what + " token " + i);
        }
        K.closeRelative(new float[HIDDEN], out, COUNT * HIDDEN, 0, what + " row past the count");
    }

    @Test
    void qkvPerTokenAtItsPosition() {
        checkQkv(x, rmsAtt, in -> Reference.matmulF32(wqkv, DIM + 2 * KV_DIM, DIM, in), dQ, dKc, dVc, "qkvF32");
        checkQkv(x8, rmsAtt, in -> q8Product(qwqkv, sqkv, DIM + 2 * KV_DIM, DIM, in), dQ8, dKc8, dVc8, "qkvQ8");
    }

    @Test
    void residualMatmulsPerToken() {
        checkResidual(xb, DIM, in -> Reference.matmulF32(wo, DIM, DIM, in), dXo, "wo f32");
        checkResidual(hb, HIDDEN, in -> Reference.matmulF32(w2, DIM, HIDDEN, in), dXw2, "w2 f32");
        checkResidual(xb, DIM, in -> q8Product(qwo, so, DIM, DIM, in), dXo8, "wo q8");
        checkResidual(hb, HIDDEN, in -> q8Product(qw2, s2, DIM, HIDDEN, in), dXw28, "w2 q8");
    }

    @Test
    void w13PerToken() {
        checkW13(x, in -> Reference.matmulF32(w13, 2 * HIDDEN, DIM, in), dHb, "w13F32");
        checkW13(x8, in -> q8Product(qw13, s13, 2 * HIDDEN, DIM, in), dHb8, "w13Q8");
    }

    @Test
    void classifierOnTheLastTokenOnly() {
        K.closeRelative(Reference.matmulF32(wcls, VOCAB, DIM, Reference.rmsnorm(row(x, COUNT - 1, DIM), rmsFinal)), dLogits, 0, 1e-5,
                "classifierF32");
        K.closeRelative(q8Product(qwcls, scls, VOCAB, DIM, Reference.rmsnorm(row(x8, COUNT - 1, DIM), rmsFinal)), dLogits8, 0, 1e-5,
                "classifierQ8");
    }

    @Test
    void causalAttentionPerTokenAndHead() {
        for (int i = 0; i < COUNT; i++) {
            float[] out = new float[DIM];
            float[] q = row(qAtt, i, DIM);
            for (int h = 0; h < HEADS; h++) {
                Reference.attentionHead(out, q, kc, vc, h, START + i, HEAD, KV_DIM, HEADS / KV_HEADS, SEQ);
            }
            K.closeRelative(out, dAtt, i * DIM, 1e-5, "attention token " + i + " (positions 0.." + (START + i) + ")");
        }
        K.closeRelative(new float[DIM], dAtt, COUNT * DIM, 0, "attention row past the count");
    }
}
