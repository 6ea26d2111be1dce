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

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link KQuantKernels} (Q4_K and Q6_K weights, Q8_K activations derived in the kernel) on fresh random inputs,
 * against the CPU engine's scalar reference: {@code Activations}' Q8_K, {@code ScalarKernels.matmulQ4_K/Q6_K},
 * GgmlOps' rmsnorm, bias and head norms, Rope, and {@code Matrix.Q4_K/Q6_K.dequantizeRow} for the embedding.
 * <ul>
 *   <li>Weights: random bytes in every field (nibbles, 6-bit scales and mins, Q6_K's high bits and int8 scales),
 *       F16 block scales of either sign, some subnormal, some zero.</li>
 *   <li>Inputs: normalised sources are multiples of 1/8 below 8 in magnitude (sums of squares exact in float and
 *       double, so the device's rmsnorm scale has the CPU's bits and every Q8_K value must come out as the CPU's);
 *       the raw input has a block whose largest magnitude is -127 (iscale 1: halves round to even), a block of
 *       zeros (d_x = 0) and a Gaussian block. SwiGLU's exp is the device's, so that source is compared with a
 *       looser tolerance (an activation may round the other way at a Q8_K boundary).</li>
 *   <li>Shapes: every product, w13 and qkv kernel at each {@link #ROWS_PER_GROUP} (rows per work-group of 8
 *       work-items, each row by a slice of 8 / R: 3 super-blocks per row over 8, 4, 2 (one work-item takes two) and 1
 *       work-item; a qkv kernel's 12 head rows R at a time, half the slices of the second pass idle at 8), 13 rows
 *       (the last work-group partly idle at 2, 4 and 8) written at an offset or added to a residual; w1/w3 both Q4_K and Q4_K over Q6_K; q/k/v stacked with wq, wk Q4_K and wv Q6_K (as in a
 *       Q4_K_M layer; biases, NORM pairs) and all Q6_K split into q, k, v products of their own heads (biases, head
 *       norms, NEOX).</li>
 * </ul>
 * Inputs, graph and run come from {@link KernelFixture}; the seed is printed in every failure.
 */
@Tag("tornado")
class KQuantKernelsTest {
    static final KernelFixture K = new KernelFixture("kquant");
    static final int LOCAL = 8, ROWS = 13, OUT_OFF = 3, DIM = 768, N_SWI = 512, W13_HIDDEN = 10, VOCAB = 5, TOKEN = 3;
    static final int HEADS = 4, KV = 2, HEAD = 12, SEQ = 6, POS = 4;
    static final int[] ROWS_PER_GROUP = {1, 2, 4, 8};
    static final int SHAPES = ROWS_PER_GROUP.length;
    static final int Q_DIM = HEADS * HEAD, KV_DIM = KV * HEAD, QKV_ROWS = Q_DIM + 2 * KV_DIM;
    static final float EPS = 1e-5f;
    static final String[] TYPES = {"Q4_K", "Q6_K"};
    static final int[] SOURCES = {GgmlKernels.FROM_NORM, GgmlKernels.FROM_INPUT, GgmlKernels.FROM_SWIGLU};

    static float[] xNorm, xIn, xSwi, rmsW, residual, bias, norms;
    static Matrix[][] products = new Matrix[2][3];     // [type][source]
    static Matrix[] w1 = new Matrix[2], w3 = new Matrix[2], emb = new Matrix[2];
    static Matrix[][] wqkv = new Matrix[2][3];          // [variant][q, k, v]
    // device outputs: [shape (index into ROWS_PER_GROUP)][type or variant]([source])
    static FloatArray[][][] out = new FloatArray[SHAPES][2][3];
    static FloatArray[][] dHb = new FloatArray[SHAPES][2];
    static FloatArray[] dEmb = new FloatArray[2];
    static FloatArray[][] dQ = new FloatArray[SHAPES][2], dKc = new FloatArray[SHAPES][2], dVc = new FloatArray[SHAPES][2];

    /** Random K-quant blocks: every byte random, then the F16 scales (Q4_K: d, dmin at 0, 2; Q6_K: d at 208). */
    static Matrix kQuant(int type, int rows, int cols) {
        int bytes = type == 0 ? KQuantKernels.Q4_K_BYTES : KQuantKernels.Q6_K_BYTES;
        long blocks = (long) rows * cols / KQuantKernels.QK_K;
        MemorySegment s = Arena.ofAuto().allocate(blocks * bytes, 2);
        byte[] random = new byte[(int) (blocks * bytes)];
        K.rnd.nextBytes(random);
        MemorySegment.copy(random, 0, s, ValueLayout.JAVA_BYTE, 0, random.length);
        for (long b = 0; b < blocks; b++) {
            long at = b * bytes;
            if (type == 0) {
                s.set(Matrix.SHORT, at, b % 7 == 5 ? 0 : K.randomHalf(10));
                s.set(Matrix.SHORT, at + 2, K.randomHalf(10));
            } else {
                s.set(Matrix.SHORT, at + 208, b % 7 == 5 ? 0 : K.randomHalf(8));
            }
        }
        return type == 0 ? new Matrix.Q4_K(s, rows, cols) : new Matrix.Q6_K(s, rows, cols);
    }

    static int n(int source) {
        return source == GgmlKernels.FROM_SWIGLU ? N_SWI : DIM;
    }

    static Configuration config(RopeStyle style) {
        return new Configuration(DIM, N_SWI, 1, HEADS, KV, VOCAB, SEQ, true, 0, HEAD, EPS, 10000f, style);
    }

    @BeforeAll
    static void runAllKernelsOnce() {
        K.begin();
        KernelContext ctx = K.ctx();
        TaskGraph tg = K.graph();
        List<Object> in = K.in, back = K.out;

        xNorm = K.eighths(DIM);
        xIn = K.gaussian(DIM, 3f);
        float[] ties = {-127f, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f, 126.5f, 63.5f, 0f, -0f, 100.49999f, -7.5f, 127f};
        Arrays.fill(xIn, 0, 256, 0.25f);
        System.arraycopy(ties, 0, xIn, 0, ties.length);    // block 0: max -127 first, so iscale = 1: halves to even
        Arrays.fill(xIn, 256, 512, 0f);                     // block 1: all zero
        xSwi = K.gaussian(2 * N_SWI, 2f);
        rmsW = K.normWeight(DIM, 0.2f);
        residual = K.gaussian(ROWS + OUT_OFF, 1f);
        FloatArray dRmsW = FloatArray.fromArray(rmsW);
        FloatArray[] dSrc = {FloatArray.fromArray(xNorm), FloatArray.fromArray(xIn), FloatArray.fromArray(xSwi)};
        in.add(dRmsW);
        in.addAll(List.of(dSrc));

        // ---- products: every type × source; Q4_K writes at an offset, Q6_K adds to a residual
        for (int t = 0; t < 2; t++) {
            for (int s = 0; s < 3; s++) {
                int n = n(SOURCES[s]);
                int add = t == 1 ? 1 : 0;
                int off = t == 0 ? OUT_OFF : 0;
                products[t][s] = kQuant(t, ROWS, n);
                DeviceMatrix.KQuant w = (DeviceMatrix.KQuant) DeviceMatrix.stack("w", products[t][s]);
                assertEquals(t, w.firstType());
                in.add(w.blocks());
                for (int r = 0; r < SHAPES; r++) {
                    int rows = ROWS_PER_GROUP[r];
                    FloatArray o = add != 0 ? FloatArray.fromArray(residual) : new FloatArray(ROWS + OUT_OFF);
                    out[r][t][s] = o;
                    in.add(o);
                    back.add(o);
                    String name = "product" + TYPES[t] + "_" + s + "_r" + rows;
                    tg.task(name, KQuantKernels::productKQuant, ctx, dSrc[s], dRmsW, n, SOURCES[s], EPS, w.blocks(), t, o, off, add,
                            ROWS, rows);
                    grid(name, ROWS, rows);
                }
            }
        }

        // ---- w13 (rmsnorm + w1/w3 + SwiGLU): both Q4_K; w1 Q4_K over w3 Q6_K (stacked, each keeping its type)
        for (int t = 0; t < 2; t++) {
            w1[t] = kQuant(0, W13_HIDDEN, DIM);
            w3[t] = kQuant(t, W13_HIDDEN, DIM);
            DeviceMatrix.KQuant w = (DeviceMatrix.KQuant) DeviceMatrix.stack("w13", w1[t], w3[t]);
            assertEquals(t == 0 ? 0 : 2, w.types());
            in.add(w.blocks());
            for (int r = 0; r < SHAPES; r++) {
                int rows = ROWS_PER_GROUP[r];
                dHb[r][t] = new FloatArray(W13_HIDDEN);
                back.add(dHb[r][t]);
                String name = "w13_" + t + "_r" + rows;
                tg.task(name, KQuantKernels::w13KQuant, ctx, dSrc[0], dRmsW, DIM, EPS, w.blocks(), w.types(), dHb[r][t], W13_HIDDEN,
                        rows);
                grid(name, W13_HIDDEN, rows);
            }
        }

        // ---- q/k/v: wq, wk Q4_K and wv Q6_K stacked (as in a Q4_K_M layer), biases (NORM);
        //      all Q6_K, biases and head norms (NEOX), split into q, k and v products of their own heads
        bias = K.gaussian(QKV_ROWS, 0.5f);
        norms = K.normWeight(2 * HEAD, 0.2f);
        FloatArray dBias = FloatArray.fromArray(bias), dNorms = FloatArray.fromArray(norms);
        IntArray state = IntArray.fromElements(TOKEN, POS);
        in.addAll(List.of(dBias, dNorms, state));
        for (int t = 0; t < 2; t++) {
            int[] first = {0, HEADS, HEADS + KV};
            int[] count = {HEADS, KV, KV};
            for (int p = 0; p < 3; p++) {
                wqkv[t][p] = kQuant(t == 0 && p < 2 ? 0 : 1, count[p] * HEAD, DIM);
            }
            RopeStyle style = t == 0 ? RopeStyle.NORM : RopeStyle.NEOX;
            int flags = t == 0 ? GgmlKernels.HAS_BIAS : GgmlKernels.HAS_BIAS | GgmlKernels.HAS_NORM | GgmlKernels.NEOX;
            FloatArray rope = FloatArray.fromArray(Rope.of(config(style), null, FloatMath.standard()).table(SEQ));
            in.add(rope);
            DeviceMatrix.KQuant stacked = (DeviceMatrix.KQuant) DeviceMatrix.stack("wqkv", wqkv[t]);
            DeviceMatrix.KQuant[] parts = new DeviceMatrix.KQuant[3];
            if (t == 0) {
                assertEquals(4, stacked.types());
                in.add(stacked.blocks());
            } else {
                for (int p = 0; p < 3; p++) {
                    parts[p] = (DeviceMatrix.KQuant) DeviceMatrix.stack("part", wqkv[t][p]);
                    in.add(parts[p].blocks());
                }
            }
            for (int r = 0; r < SHAPES; r++) {
                int rows = ROWS_PER_GROUP[r];
                int shaped = flags | rows << GgmlKernels.ROWS_SHIFT;
                FloatArray[] o = K.qkvOutputs(Q_DIM, SEQ * KV_DIM, QKV_ROWS);
                FloatArray q = o[0], kc = o[1], vc = o[2], scratch = o[3];
                dQ[r][t] = q;
                dKc[r][t] = kc;
                dVc[r][t] = vc;
                if (t == 0) {
                    String name = "qkv_mixed_r" + rows;
                    tg.task(name, KQuantKernels::qkvKQuant, ctx, dSrc[0], dRmsW, DIM, EPS, stacked.blocks(), 0, scratch, dBias, dNorms,
                            shaped | stacked.types() << KQuantKernels.TYPES_SHIFT, q, kc, vc, state, rope, HEADS, KV, HEAD);
                    K.grid(name, (HEADS + 2 * KV) * LOCAL, LOCAL);
                } else {
                    for (int p = 0; p < 3; p++) {
                        String name = "qkvQ6_K_" + p + "_r" + rows;
                        tg.task(name, KQuantKernels::qkvKQuant, ctx, dSrc[0], dRmsW, DIM, EPS, parts[p].blocks(), first[p], scratch, dBias,
                                dNorms, shaped | 7 << KQuantKernels.TYPES_SHIFT, q, kc, vc, state, rope, HEADS, KV, HEAD);
                        K.grid(name, count[p] * LOCAL, LOCAL);
                    }
                }
            }
        }

        // ---- embedding rows
        for (int t = 0; t < 2; t++) {
            emb[t] = kQuant(t, VOCAB, DIM);
            Int8Array w = ((DeviceMatrix.KQuant) DeviceMatrix.stack("embedding", emb[t])).blocks();
            dEmb[t] = new FloatArray(DIM);
            in.add(w);
            back.add(dEmb[t]);
            String name = "embed" + TYPES[t];
            if (t == 0) {
                tg.task(name, KQuantKernels::embedQ4_K, ctx, state, w, dEmb[t], DIM);
            } else {
                tg.task(name, KQuantKernels::embedQ6_K, ctx, state, w, dEmb[t], DIM);
            }
            K.grid(name, DIM, 64);
        }

        K.execute();
    }

    /** The grid of a task over {@code rows} rows at {@code rowsPerGroup} rows per work-group. */
    static void grid(String task, int rows, int rowsPerGroup) {
        K.grid(task, ForwardGraph.groupsFor(rows, rowsPerGroup) * LOCAL, LOCAL);
    }

    /** What each shape's outputs are called in a failure. */
    static String shape(int r) {
        return " (" + ROWS_PER_GROUP[r] + " rows per work-group)";
    }

    /** The CPU engine's product of m (Q4_K or Q6_K) with the values v: Q8_K activations, the scalar reference. */
    static float[] cpuProduct(Matrix m, float[] v) {
        float[] o = new float[m.rows()];
        ScalarKernels k = new ScalarKernels();
        Activations a = new Activations(v.length);
        a.input(v, v.length);
        a.prepareFor(m);
        switch (m) {
            case Matrix.Q4_K q -> k.matmulQ4_K(o, a, q, 0, m.rows());
            case Matrix.Q6_K q -> k.matmulQ6_K(o, a, q, 0, m.rows());
            default -> throw new AssertionError(m);
        }
        return o;
    }

    static float[] normed() {
        float[] v = new float[DIM];
        GgmlReference.rmsnorm(v, xNorm, KernelFixture.floats(rmsW), DIM, EPS);
        return v;
    }

    static float[] swiglu() {
        float[] v = Arrays.copyOfRange(xSwi, 0, N_SWI);
        ScalarKernels.swiglu(v, Arrays.copyOfRange(xSwi, N_SWI, 2 * N_SWI), N_SWI, FloatMath.JAVA);
        return v;
    }

    static void close(float[] expected, FloatArray actual, int from, double relTol, String what) {
        double scale = 1;
        for (float v : expected) {
            scale = Math.max(scale, Math.abs(v));
        }
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(expected[i] - actual.get(from + i));
            int at = i;
            double tol = relTol * scale;
            assertTrue(d <= tol, () -> what + "[" + at + "]: expected " + expected[at] + ", device " + actual.get(from + at)
                    + " (tolerance " + tol + ")" + K.seedNote());
        }
    }

    @Test
    void everyKernelRanOnTheDevice() {
        K.verifyEveryTaskRan();
    }

    @Test
    void productsMatchTheCpuEngine() {
        for (int t = 0; t < 2; t++) {
            for (int s = 0; s < 3; s++) {
                float[] v = switch (SOURCES[s]) {
                    case GgmlKernels.FROM_NORM -> normed();
                    case GgmlKernels.FROM_INPUT -> xIn;
                    default -> swiglu();
                };
                float[] want = cpuProduct(products[t][s], v);
                int off = t == 0 ? OUT_OFF : 0;
                if (t == 1) {
                    for (int r = 0; r < ROWS; r++) {
                        want[r] += residual[off + r];
                    }
                }
                for (int r = 0; r < SHAPES; r++) {
                    // SwiGLU's exp is the device's: an activation may round the other way at a Q8_K boundary
                    close(want, out[r][t][s], off, SOURCES[s] == GgmlKernels.FROM_SWIGLU ? 2e-3 : 1e-5, TYPES[t] + " source " + s + shape(r));
                    // at every shape the same Q8_K values (the same device exp): only the order of a row's sum differs
                    close(out[0][t][s].toHeapArray(), out[r][t][s], 0, 1e-5, TYPES[t] + " source " + s + shape(r) + " against 1 row");
                }
            }
        }
        for (int r = 0; r < SHAPES; r++) {
            close(new float[OUT_OFF], out[r][0][0], 0, 0, "rows before the offset untouched" + shape(r));
        }
    }

    @Test
    void w13NormalisesMultipliesAndAppliesSwiglu() {
        for (int t = 0; t < 2; t++) {
            float[] hb = cpuProduct(w1[t], normed());
            ScalarKernels.swiglu(hb, cpuProduct(w3[t], normed()), W13_HIDDEN, FloatMath.JAVA);
            for (int r = 0; r < SHAPES; r++) {
                close(hb, dHb[r][t], 0, 1e-5, "w13 variant " + t + shape(r));
            }
        }
    }

    @Test
    void qkvStackedAndSplitWithBiasesHeadNormsAndRope() {
        for (int t = 0; t < 2; t++) {
            float[] all = new float[QKV_ROWS];
            System.arraycopy(cpuProduct(wqkv[t][0], normed()), 0, all, 0, Q_DIM);
            System.arraycopy(cpuProduct(wqkv[t][1], normed()), 0, all, Q_DIM, KV_DIM);
            System.arraycopy(cpuProduct(wqkv[t][2], normed()), 0, all, Q_DIM + KV_DIM, KV_DIM);
            GgmlReference.addBias(all, KernelFixture.floats(bias), all.length);
            float[] q = Arrays.copyOfRange(all, 0, Q_DIM);
            float[] k = Arrays.copyOfRange(all, Q_DIM, Q_DIM + KV_DIM);
            float[] v = Arrays.copyOfRange(all, Q_DIM + KV_DIM, QKV_ROWS);
            if (t == 1) {
                GgmlReference.headNorms(q, HEADS, HEAD, KernelFixture.floats(Arrays.copyOfRange(norms, 0, HEAD)), EPS);
                GgmlReference.headNorms(k, KV, HEAD, KernelFixture.floats(Arrays.copyOfRange(norms, HEAD, 2 * HEAD)), EPS);
            }
            Rope rope = Rope.of(config(t == 0 ? RopeStyle.NORM : RopeStyle.NEOX), null, FloatMath.standard());
            float[] cos = new float[HEAD / 2], sin = new float[HEAD / 2];
            rope.angles(POS, cos, sin);
            rope.rotate(q, HEADS, k, KV, cos, sin);
            for (int r = 0; r < SHAPES; r++) {
                String what = "qkv variant " + t + shape(r);
                close(q, dQ[r][t], 0, 1e-5, what + " q");
                close(k, dKc[r][t], POS * KV_DIM, 1e-5, what + " k in the cache at pos");
                close(v, dVc[r][t], POS * KV_DIM, 1e-5, what + " v in the cache at pos");
                close(new float[KV_DIM], dKc[r][t], 0, 0, what + " other positions untouched");
            }
        }
    }

    @Test
    void embeddingRowIsTheDequantizedRowBitForBit() {
        for (int t = 0; t < 2; t++) {
            float[] want = new float[DIM];
            emb[t].dequantizeRow(TOKEN, want, 0);
            for (int i = 0; i < DIM; i++) {
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(dEmb[t].get(i)),
                        "embed" + TYPES[t] + "[" + i + "]: expected " + want[i] + ", device " + dEmb[t].get(i) + K.seedNote());
            }
        }
    }
}
