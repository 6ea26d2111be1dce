package io.github.llama2j.tornado;

import io.github.llama2j.cpu.Activations;
import io.github.llama2j.cpu.GgmlReference;
import io.github.llama2j.cpu.Rope;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.RopeStyle;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.util.ArrayList;
import java.util.List;

import static io.github.llama2j.tornado.KernelFixture.cpuProduct;
import static io.github.llama2j.tornado.KernelFixture.floats;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Every GGUF device kernel ({@link GgmlKernels}) against the CPU engine's scalar GGUF arithmetic
 * ({@code cpu.GgmlReference}: GgmlOps and Activations' conversions; ScalarKernels' GGML matmuls; Rope) on
 * fresh random inputs, in one task graph. The seed is printed in every failure. Shapes are awkward on
 * purpose: an input of 100 values (3 whole Q8_0 blocks and 4 values more) over 2 work-groups, 37 rows,
 * a head size of 10, products written at an offset and added to a residual.
 *
 * <p>The F16 conversions (integer and exact float operations) are checked on every one of the 65536 halves and on random
 * float bit patterns with their edge cases, on the device and on the JVM, against {@code Float.float16ToFloat}
 * and {@code Float.floatToFloat16}.
 */
@Tag("tornado")
class GgufKernelsTest {
    static final KernelFixture K = new KernelFixture("ggml");
    static final int LOCAL = 8;
    static final int ROWS = 37, COLS = 96, N_NORM = 100, OUT_OFF = 5;
    static final int HEADS = 4, KV = 2, HEAD = 10, SEQ = 7, POS = 5, VOCAB = 9, TOKEN = 6, DIM = 64;
    static final float EPS = 1e-6f;

    static float[] xNorm, rmsW, xIn, xSwi, wF32, xF32, residual, xQ8src, xF16src, qkvIn, bias, norms;
    static Matrix.F16 wF16, embF16;
    static Matrix.Q8_0 wQ8, embQ8;
    static FloatArray[] prepF = new FloatArray[3], prepH = new FloatArray[3], prepS = new FloatArray[3];
    static Int8Array[] prepQ = new Int8Array[3];
    static FloatArray dMatF32, dResF32, dMatF16, dMatQ8, dEmbF16, dEmbQ8, dHalves, dRounded;
    static FloatArray[] dQ = new FloatArray[2], dKc = new FloatArray[2], dVc = new FloatArray[2];
    static float[] roundInputs;

    /** Test kernel: every half through {@link GgmlKernels#halfToFloat}. */
    public static void halves(KernelContext ctx, FloatArray out) {
        int i = ctx.globalIdx;
        out.set(i, GgmlKernels.halfToFloat(i));
    }

    /** Test kernel: {@link GgmlKernels#roundToHalf} of each value. */
    public static void rounds(KernelContext ctx, FloatArray in, FloatArray out) {
        int i = ctx.globalIdx;
        if (i < in.getSize()) {
            out.set(i, GgmlKernels.roundToHalf(in.get(i)));
        }
    }

    /** Float edge cases of F16 rounding, then random bit patterns around the F16 range. */
    static float[] roundCases() {
        List<Float> v = new ArrayList<>(List.of(0f, -0f, 65504f, 65519.996f, 65520f, -65520f, 1e9f, Float.MAX_VALUE,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE, 6.1035156e-5f, 6.1035152e-5f,
                5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 8.940697e-8f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 2049f, 2051f,
                -2051f, 0x1p-25f, 0x1.8p-24f, 0x1.8p-23f));
        for (int i = 0; i < 200_000; i++) {
            // exponents 2^-30 .. 2^17: subnormal halves, normals, overflow; any mantissa
            int exp = 97 + K.rnd.nextInt(48);
            int bits = (K.rnd.nextBoolean() ? 0x80000000 : 0) | (exp << 23) | K.rnd.nextInt(1 << 23);
            if (i % 4 == 0) {
                bits &= ~0xFFF; // many exact ties
                bits |= 0x1000;
            }
            v.add(Float.intBitsToFloat(bits));
        }
        float[] a = new float[v.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = v.get(i);
        }
        return a;
    }

    static Configuration config(RopeStyle style) {
        return new Configuration(DIM, 96, 1, HEADS, KV, VOCAB, SEQ, true, 0, HEAD, EPS, 10000f, style);
    }

    @BeforeAll
    static void runAllKernelsOnce() {
        K.begin();
        KernelContext ctx = K.ctx();
        TaskGraph tg = K.graph();
        List<Object> in = K.in, out = K.out;

        // ---- prepare: rmsnorm of 100 values over 2 work-groups; a hand-made input of 96; SwiGLU of 2 x 64
        xNorm = K.gaussian(N_NORM, 1f);
        rmsW = K.normWeight(N_NORM, 0.2f);
        xIn = K.gaussian(COLS, 3f);
        // block 0: amax 127 so 127/amax = 1: halves round to even; block 1 zero; block 2 F16 range ends
        float[] ties = {127f, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f, -126.5f, 63.5f, 0f, -0f, 100.49999f, -7.5f};
        System.arraycopy(ties, 0, xIn, 0, ties.length);
        for (int i = 32; i < 64; i++) {
            xIn[i] = 0f;
        }
        float[] ends = {70000f, -65519f, 1e-6f, -3e-8f, 6.1e-5f, 65504f};
        System.arraycopy(ends, 0, xIn, 64, ends.length);
        xSwi = K.gaussian(2 * DIM, 2f);
        float[][] sources = {xNorm, xIn, xSwi};
        int[] ns = {N_NORM, COLS, DIM};
        int[] modes = {GgmlKernels.FROM_NORM, GgmlKernels.FROM_INPUT, GgmlKernels.FROM_SWIGLU};
        FloatArray dRmsW = FloatArray.fromArray(rmsW);
        in.add(dRmsW);
        for (int p = 0; p < 3; p++) {
            int n = ns[p];
            FloatArray src = FloatArray.fromArray(sources[p]);
            prepF[p] = new FloatArray(n);
            prepH[p] = new FloatArray(n);
            prepQ[p] = new Int8Array(n);
            prepS[p] = new FloatArray(n / 32);
            in.addAll(List.of(src, prepQ[p]));
            out.addAll(List.of(prepF[p], prepH[p], prepQ[p], prepS[p]));
            tg.task("prepare" + p, GgmlKernels::prepare, ctx, src, dRmsW, n, modes[p], EPS, prepF[p], prepH[p], prepQ[p], prepS[p]);
            int blocks = (n + 31) / 32;
            K.grid("prepare" + p, (blocks + 1) / 2 * 2, 2);
        }

        // ---- products, 37 x 96, written at an offset; F32 also added to a residual
        wF32 = K.gaussian(ROWS * COLS, 0.3f);
        xF32 = K.gaussian(COLS, 1f);
        residual = K.gaussian(ROWS + OUT_OFF, 1f);
        FloatArray dW = FloatArray.fromArray(wF32), dX = FloatArray.fromArray(xF32);
        dMatF32 = new FloatArray(ROWS + OUT_OFF);
        dResF32 = FloatArray.fromArray(residual);
        in.addAll(List.of(dW, dX, dResF32));
        out.addAll(List.of(dMatF32, dResF32));
        tg.task("matmulF32", GgmlKernels::matmulF32, ctx, dX, dW, dMatF32, OUT_OFF, COLS, 0);
        K.grid("matmulF32", ROWS * LOCAL, LOCAL);
        tg.task("matmulF32add", GgmlKernels::matmulF32, ctx, dX, dW, dResF32, OUT_OFF, COLS, 1);
        K.grid("matmulF32add", ROWS * LOCAL, LOCAL);

        wF16 = K.f16Matrix(ROWS, COLS);
        xF16src = K.gaussian(COLS, 1f);
        float[] xh = new float[COLS];
        GgmlReference.toF16(xF16src, COLS, xh);
        DeviceMatrix.F16 dF16 = (DeviceMatrix.F16) DeviceMatrix.stack("wF16", wF16);
        FloatArray dXh = FloatArray.fromArray(xh);
        dMatF16 = new FloatArray(ROWS + OUT_OFF);
        in.addAll(List.of(dF16.data(), dXh));
        out.add(dMatF16);
        tg.task("matmulF16", GgmlKernels::matmulF16, ctx, dXh, dF16.data(), dMatF16, OUT_OFF, COLS, 0);
        K.grid("matmulF16", ROWS * LOCAL, LOCAL);

        wQ8 = K.q8Matrix(ROWS, COLS);
        xQ8src = K.gaussian(COLS, 1f);
        short[] xq = new short[COLS];
        float[] xs = new float[COLS / 32];
        GgmlReference.quantizeQ8_0(xQ8src, COLS, xq, xs);
        byte[] xqBytes = new byte[COLS];
        for (int i = 0; i < COLS; i++) {
            xqBytes[i] = (byte) xq[i];
        }
        DeviceMatrix.Q8 dQ8 = (DeviceMatrix.Q8) DeviceMatrix.stack("wQ8", wQ8);
        Int8Array dXq = Int8Array.fromArray(xqBytes);
        FloatArray dXs = FloatArray.fromArray(xs);
        dMatQ8 = new FloatArray(ROWS + OUT_OFF);
        Int8Array dQ8Bytes = KernelFixture.unpacked(dQ8.values());   // matmulQ8_0 (the hybrid's) reads one byte at a time
        in.addAll(List.of(dQ8Bytes, dQ8.scales(), dXq, dXs));
        out.add(dMatQ8);
        tg.task("matmulQ8_0", GgmlKernels::matmulQ8_0, ctx, dXq, dXs, dQ8Bytes, dQ8.scales(), dMatQ8, OUT_OFF, COLS, 0);
        K.grid("matmulQ8_0", ROWS * LOCAL, LOCAL);

        // ---- embeddings: F16 (decoded on the device) and Q8_0 (repacked, then runq's embed kernel)
        embF16 = K.f16Matrix(VOCAB, DIM);
        embQ8 = K.q8Matrix(VOCAB, DIM);
        DeviceMatrix.F16 dEmbH = (DeviceMatrix.F16) DeviceMatrix.stack("embF16", embF16);
        DeviceMatrix.Q8 dEmbQ = (DeviceMatrix.Q8) DeviceMatrix.stack("embQ8", embQ8);
        IntArray state = IntArray.fromElements(TOKEN, POS);
        dEmbF16 = new FloatArray(DIM);
        dEmbQ8 = new FloatArray(DIM);
        in.addAll(List.of(state, dEmbH.data(), dEmbQ.values(), dEmbQ.scales()));
        out.addAll(List.of(dEmbF16, dEmbQ8));
        tg.task("embedF16", GgmlKernels::embedF16, ctx, state, dEmbH.data(), dEmbF16, DIM);
        K.grid("embedF16", DIM, LOCAL);
        tg.task("embedQ8_0", TransformerKernels::embedQ8, ctx, state, dEmbQ.values(), dEmbQ.scales(), dEmbQ8, DIM, 32);
        K.grid("embedQ8_0", DIM, LOCAL);

        // ---- q/k/v heads: NORM with biases (qwen2-like but adjacent pairs), NEOX with head norms (qwen3)
        int qDim = HEADS * HEAD, kvDim = KV * HEAD;
        qkvIn = K.gaussian(qDim + 2 * kvDim, 1f);
        bias = K.gaussian(qDim + 2 * kvDim, 0.5f);
        norms = K.normWeight(2 * HEAD, 0.2f);
        FloatArray dQkv = FloatArray.fromArray(qkvIn), dBias = FloatArray.fromArray(bias), dNorms = FloatArray.fromArray(norms);
        in.addAll(List.of(dQkv, dBias, dNorms));
        RopeStyle[] styles = {RopeStyle.NORM, RopeStyle.NEOX};
        for (int v = 0; v < 2; v++) {
            FloatArray rope = FloatArray.fromArray(Rope.of(config(styles[v]), null, FloatMath.standard()).table(SEQ));
            dQ[v] = new FloatArray(qDim);
            dKc[v] = new FloatArray(SEQ * kvDim);
            dVc[v] = new FloatArray(SEQ * kvDim);
            in.addAll(List.of(rope, dKc[v], dVc[v]));
            out.addAll(List.of(dQ[v], dKc[v], dVc[v]));
            tg.task("qkvHeads" + v, GgmlKernels::qkvHeads, ctx, dQkv, dBias, v == 0 ? 1 : 0, dNorms, v == 1 ? 1 : 0, EPS, dQ[v],
                    dKc[v], dVc[v], state, rope, HEADS, KV, HEAD, v);
            K.grid("qkvHeads" + v, 8, 4);
        }

        // ---- F16 conversions by bit operations
        dHalves = new FloatArray(65536);
        roundInputs = roundCases();
        FloatArray dRoundIn = FloatArray.fromArray(roundInputs);
        dRounded = new FloatArray(roundInputs.length);
        in.add(dRoundIn);
        out.addAll(List.of(dHalves, dRounded));
        tg.task("halves", GgufKernelsTest::halves, ctx, dHalves);
        K.grid("halves", 65536, 64);
        tg.task("rounds", GgufKernelsTest::rounds, ctx, dRoundIn, dRounded);
        K.grid("rounds", (roundInputs.length + 63) / 64 * 64, 64);

        K.execute();
    }

    @Test
    void everyKernelRanOnTheDevice() {
        K.verifyEveryTaskRan();
    }

    @Test
    void halfToFloatIsExactForEveryHalf() {
        for (int h = 0; h < 65536; h++) {
            float want = Float.float16ToFloat((short) h);
            K.bitsEqual(want, GgmlKernels.halfToFloat(h), "JVM half 0x" + Integer.toHexString(h));
            K.bitsEqual(want, dHalves.get(h), "device half 0x" + Integer.toHexString(h));
        }
    }

    @Test
    void roundToHalfRoundsToNearestEven() {
        for (int i = 0; i < roundInputs.length; i++) {
            float f = roundInputs[i];
            float want = Float.float16ToFloat(Float.floatToFloat16(f));
            K.bitsEqual(want, GgmlKernels.roundToHalf(f), "JVM F16(" + f + ")");
            K.bitsEqual(want, dRounded.get(i), "device F16(" + f + ")");
        }
    }

    @Test
    void roundHalfEvenIsRint() {
        float[] cases = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.5f, 0.49999997f, 1.4999999f, 3.0000002f, -0f, 0f};
        for (float v : cases) {
            assertEquals((int) Math.rint(v), GgmlKernels.roundHalfEven(v), "rint(" + v + ")");
        }
        for (int i = 0; i < 100_000; i++) {
            float v = (K.rnd.nextFloat() - 0.5f) * 300f;
            assertEquals((int) Math.rint(v), GgmlKernels.roundHalfEven(v), "rint(" + v + ")" + K.seedNote());
        }
    }

    /** The three forms of one prepared input: float32 close to the reference, F16 and Q8_0 exactly the CPU's conversion of it. */
    static void checkForms(int p, float[] expected, double tol, String what) {
        int n = expected.length;
        K.close(expected, prepF[p], 0, tol, what + " float32");
        float[] devF = new float[n];
        for (int i = 0; i < n; i++) {
            devF[i] = prepF[p].get(i);
        }
        float[] h = new float[n];
        GgmlReference.toF16(devF, n, h);
        for (int i = 0; i < n; i++) {
            K.bitsEqual(h[i], prepH[p].get(i), what + " F16[" + i + "]");
        }
        short[] q = new short[n];
        float[] s = new float[n / 32];
        GgmlReference.quantizeQ8_0(devF, n, q, s);
        for (int i = 0; i < n / 32 * 32; i++) {
            assertEquals(q[i], prepQ[p].get(i), what + " Q8_0 value " + i + K.seedNote());
        }
        for (int b = 0; b < n / 32; b++) {
            K.bitsEqual(s[b], prepS[p].get(b), what + " Q8_0 scale " + b);
        }
    }

    @Test
    void prepareNormedInput() {
        float[] want = new float[N_NORM];
        GgmlReference.rmsnorm(want, xNorm, floats(rmsW), N_NORM, EPS);
        checkForms(0, want, 1e-5, "rmsnorm");
    }

    @Test
    void prepareInputAsItIs() {
        checkForms(1, xIn, 0, "input");
        // the hand-made cases: 127/amax = 1 in block 0, so values are rounded half to even
        int[] expect = {127, 2, -4, 0, 0, 2, -126, 64, 0, 0, 100, -8};
        for (int i = 0; i < expect.length; i++) {
            assertEquals(expect[i], prepQ[1].get(i), "Q8_0 of " + xIn[i]);
        }
        assertEquals(0f, prepS[1].get(1), "an all-zero block's scale");
        assertEquals(Float.POSITIVE_INFINITY, prepH[1].get(64), "70000 as F16");
    }

    @Test
    void prepareSwiglu() {
        float[] want = new float[DIM];
        for (int i = 0; i < DIM; i++) {
            want[i] = xSwi[i] * (1.0f / (1.0f + (float) Math.exp(-xSwi[i]))) * xSwi[DIM + i];
        }
        checkForms(2, want, 1e-5, "swiglu");
    }

    @Test
    void productsF32() {
        float[] want = cpuProduct(new Matrix.F32(floats(wF32), ROWS, COLS), xF32);
        K.close(want, dMatF32, OUT_OFF, 1e-4, "matmulF32");
        float[] res = new float[ROWS];
        for (int r = 0; r < ROWS; r++) {
            res[r] = residual[OUT_OFF + r] + want[r];
        }
        K.close(res, dResF32, OUT_OFF, 1e-4, "matmulF32 + residual");
        K.close(new float[]{residual[0], residual[1]}, dResF32, 0, 0, "rows before the offset untouched");
    }

    @Test
    void productsF16() {
        K.close(cpuProduct(wF16, xF16src), dMatF16, OUT_OFF, 1e-4, "matmulF16");
    }

    @Test
    void productsQ8_0() {
        float[] want = cpuProduct(wQ8, xQ8src);
        // sums of up to 3 blocks' exact integer dots, in another order: a few ulps of the largest term
        K.closeRelative(want, dMatQ8, OUT_OFF, 1e-5, "matmulQ8_0");
    }

    @Test
    void embeddings() {
        float[] h = new float[DIM], q = new float[DIM];
        embF16.dequantizeRow(TOKEN, h, 0);
        embQ8.dequantizeRow(TOKEN, q, 0);
        for (int i = 0; i < DIM; i++) {
            K.bitsEqual(h[i], dEmbF16.get(i), "embedF16[" + i + "]");
            K.bitsEqual(q[i], dEmbQ8.get(i), "embedQ8_0[" + i + "]");
        }
    }

    @Test
    void qkvHeadsNormWithBiases() {
        checkHeads(0, RopeStyle.NORM, true, false);
    }

    @Test
    void qkvHeadsNeoxWithHeadNorms() {
        checkHeads(1, RopeStyle.NEOX, false, true);
    }

    private void checkHeads(int v, RopeStyle style, boolean withBias, boolean withNorm) {
        int qDim = HEADS * HEAD, kvDim = KV * HEAD;
        float[] all = qkvIn.clone();
        if (withBias) {
            GgmlReference.addBias(all, floats(bias), all.length);
        }
        float[] q = java.util.Arrays.copyOfRange(all, 0, qDim);
        float[] k = java.util.Arrays.copyOfRange(all, qDim, qDim + kvDim);
        float[] val = java.util.Arrays.copyOfRange(all, qDim + kvDim, qDim + 2 * kvDim);
        if (withNorm) {
            GgmlReference.headNorms(q, HEADS, HEAD, floats(java.util.Arrays.copyOfRange(norms, 0, HEAD)), EPS);
            GgmlReference.headNorms(k, KV, HEAD, floats(java.util.Arrays.copyOfRange(norms, HEAD, 2 * HEAD)), EPS);
        }
        Rope rope = Rope.of(config(style), null, FloatMath.standard());
        float[] cos = new float[HEAD / 2], sin = new float[HEAD / 2];
        rope.angles(POS, cos, sin);
        rope.rotate(q, HEADS, k, KV, cos, sin);
        K.close(q, dQ[v], 0, 1e-5, style + " q");
        K.close(k, dKc[v], POS * kvDim, 1e-5, style + " k in the cache at pos");
        K.close(val, dVc[v], POS * kvDim, 0, style + " v in the cache at pos");
        K.close(new float[kvDim], dKc[v], 0, 0, style + " other positions untouched");
    }
}
