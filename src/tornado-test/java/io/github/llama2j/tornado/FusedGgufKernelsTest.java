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

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

import static io.github.llama2j.tornado.KernelFixture.cpuProduct;
import static io.github.llama2j.tornado.KernelFixture.floats;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The GGUF kernels that derive their input's form themselves ({@code GgmlKernels.productF32/F16/Q8_0},
 * {@code w13*}, {@code qkv*}) on fresh random inputs, each at every shape {@link #ROWS_PER_GROUP} (rows per
 * work-group of 8 work-items, each row reduced by a slice of 8 / R work-items; a qkv kernel's head rows R at a
 * time), two ways:
 * <ul>
 *   <li>against the CPU engine's scalar GGUF arithmetic (GgmlOps' rmsnorm, Activations' F16 rounding and Q8_0,
 *       ScalarKernels' matmuls, bias, head norms, Rope). Normalised inputs are multiples of 1/8 below 8 in magnitude,
 *       whose sums of squares are exact in float and double, so the device's scale has the CPU's bits and every
 *       F16 rounding and Q8_0 block must come out as the CPU's: one value rounded the other way moves its row
 *       beyond the tolerance;</li>
 *   <li>bit for bit against the two launches they replace, on the device: {@code prepare} (same work-group size,
 *       so the same sum of squares) then {@code matmulF32/F16/Q8_0}, for all three sources, SwiGLU included
 *       (whose exp is the device's, so the CPU cannot give the same bits), at one row per work-group (the shape of
 *       {@code matmul*}); at R rows, within float rounding of one row per work-group (the same values, F16
 *       roundings and Q8_0 blocks: only the order of a row's sum changes).</li>
 * </ul>
 * Shapes: 6 Q8_0 blocks over 8 work-items, 37 rows written at an offset (the last work-group partly idle at 2, 4
 * and 8 rows), a residual add, q/k/v stacked with biases (NORM pairs), with head norms (NEOX), and split into q, k
 * and v products of their own heads, with 12 rows per head (at 8 rows per work-group, half the slices of the
 * second pass idle).
 * The seed is printed in every failure.
 */
@Tag("tornado")
class FusedGgufKernelsTest {
    static final KernelFixture K = new KernelFixture("fusedggml");
    static final int LOCAL = 8, ROWS = 37, OUT_OFF = 3;
    static final int DIM = 192, HIDDEN = 96, HEADS = 4, KV = 2, HEAD = 12, SEQ = 6, POS = 4;
    static final int[] ROWS_PER_GROUP = {1, 2, 4, 8};
    static final int SHAPES = ROWS_PER_GROUP.length;
    static final int Q_DIM = HEADS * HEAD, KV_DIM = KV * HEAD, QKV_ROWS = Q_DIM + 2 * KV_DIM;
    static final float EPS = 1e-5f;
    static final String[] TYPES = {"F32", "F16", "Q8_0"};
    static final int[] SOURCES = {GgmlKernels.FROM_NORM, GgmlKernels.FROM_INPUT, GgmlKernels.FROM_SWIGLU};

    static float[] xNorm, xIn, xSwi, rmsW, residual, bias, norms;
    static Matrix[][] products = new Matrix[3][3];       // [type][source]
    static Matrix[] w13 = new Matrix[3], wqkv = new Matrix[3];
    // device outputs: [shape (index into ROWS_PER_GROUP)][type]([source])
    static FloatArray[][][] fused = new FloatArray[SHAPES][3][3];
    static FloatArray[][] unfused = new FloatArray[3][3];
    static FloatArray[][] dHb = new FloatArray[SHAPES][3];
    static FloatArray[][] dQ = new FloatArray[SHAPES][3], dKc = new FloatArray[SHAPES][3], dVc = new FloatArray[SHAPES][3];

    static Matrix matrix(int type, int rows, int cols) {
        return switch (type) {
            case 0 -> new Matrix.F32(floats(K.gaussian(rows * cols, 0.3f)), rows, cols);
            case 1 -> K.f16Matrix(rows, cols);
            default -> K.q8Matrix(rows, cols);
        };
    }

    static int n(int source) {
        return source == GgmlKernels.FROM_SWIGLU ? HIDDEN : DIM;
    }

    static float[] sourceArray(int source) {
        return source == GgmlKernels.FROM_NORM ? xNorm : source == GgmlKernels.FROM_INPUT ? xIn : xSwi;
    }

    static Configuration config(RopeStyle style) {
        return new Configuration(DIM, HIDDEN, 1, HEADS, KV, 9, SEQ, true, 0, HEAD, EPS, 10000f, style);
    }

    @BeforeAll
    static void runAllKernelsOnce() {
        K.begin();
        KernelContext ctx = K.ctx();
        TaskGraph tg = K.graph();
        List<Object> in = K.in, out = K.out;

        xNorm = K.eighths(DIM);
        xIn = K.gaussian(DIM, 3f);
        float[] ties = {127f, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f, -126.5f, 63.5f, 0f, -0f, 100.49999f, -7.5f};
        System.arraycopy(ties, 0, xIn, 0, ties.length);   // block 0: 127 / amax = 1, halves round to even
        Arrays.fill(xIn, 32, 64, 0f);                       // block 1: all zero
        xSwi = K.gaussian(2 * HIDDEN, 2f);
        rmsW = K.normWeight(DIM, 0.2f);
        residual = K.gaussian(ROWS + OUT_OFF, 1f);
        FloatArray dRmsW = FloatArray.fromArray(rmsW);
        FloatArray[] dSrc = {FloatArray.fromArray(xNorm), FloatArray.fromArray(xIn), FloatArray.fromArray(xSwi)};
        in.add(dRmsW);
        in.addAll(List.of(dSrc));

        // ---- the prepared forms of each source, for the unfused path
        FloatArray[] xf = new FloatArray[3], xh = new FloatArray[3], xs = new FloatArray[3];
        Int8Array[] xq = new Int8Array[3];
        for (int s = 0; s < 3; s++) {
            int n = n(SOURCES[s]);
            xf[s] = new FloatArray(n);
            xh[s] = new FloatArray(n);
            xq[s] = new Int8Array(n);
            xs[s] = new FloatArray(n / 32);
            in.add(xq[s]);
            tg.task("prepare" + s, GgmlKernels::prepare, ctx, dSrc[s], dRmsW, n, SOURCES[s], EPS, xf[s], xh[s], xq[s], xs[s]);
            K.grid("prepare" + s, ((n / 32 + LOCAL - 1) / LOCAL) * LOCAL, LOCAL);
        }

        // ---- every type × source: fused product (each shape) vs prepare + product; F16 writes at an offset, Q8_0 adds
        //      to a residual
        for (int t = 0; t < 3; t++) {
            for (int s = 0; s < 3; s++) {
                int n = n(SOURCES[s]);
                int add = t == 2 ? 1 : 0;
                int off = t == 0 ? 0 : OUT_OFF;
                Matrix m = matrix(t, ROWS, n);
                products[t][s] = m;
                DeviceMatrix dm = DeviceMatrix.stack("w", m);
                unfused[t][s] = add != 0 ? FloatArray.fromArray(residual) : new FloatArray(ROWS + OUT_OFF);
                in.add(unfused[t][s]);
                out.add(unfused[t][s]);
                String u = "matmul" + TYPES[t] + "_" + s;
                switch (dm) {
                    case DeviceMatrix.F32 w -> {
                        in.add(w.data());
                        tg.task(u, GgmlKernels::matmulF32, ctx, xf[s], w.data(), unfused[t][s], off, n, add);
                    }
                    case DeviceMatrix.F16 w -> {
                        in.add(w.data());
                        tg.task(u, GgmlKernels::matmulF16, ctx, xh[s], w.data(), unfused[t][s], off, n, add);
                    }
                    case DeviceMatrix.Q8 w -> {
                        Int8Array bytes = KernelFixture.unpacked(w.values());   // matmulQ8_0 reads one byte at a time
                        in.addAll(List.of(w.values(), w.scales(), bytes));
                        tg.task(u, GgmlKernels::matmulQ8_0, ctx, xq[s], xs[s], bytes, w.scales(), unfused[t][s], off, n, add);
                    }
                    default -> throw new AssertionError(dm);   // K-quants: KQuantKernelsTest
                }
                K.grid(u, ROWS * LOCAL, LOCAL);
                for (int r = 0; r < SHAPES; r++) {
                    int rows = ROWS_PER_GROUP[r];
                    FloatArray o = add != 0 ? FloatArray.fromArray(residual) : new FloatArray(ROWS + OUT_OFF);
                    fused[r][t][s] = o;
                    in.add(o);
                    out.add(o);
                    String f = "product" + TYPES[t] + "_" + s + "_r" + rows;
                    switch (dm) {
                        case DeviceMatrix.F32 w -> tg.task(f, GgmlKernels::productF32, ctx, dSrc[s], dRmsW, n, SOURCES[s], EPS, w.data(), o,
                                off, add, ROWS, rows);
                        case DeviceMatrix.F16 w -> tg.task(f, GgmlKernels::productF16, ctx, dSrc[s], dRmsW, n, SOURCES[s], EPS, w.data(), o,
                                off, add, ROWS, rows);
                        case DeviceMatrix.Q8 w -> tg.task(f, GgmlKernels::productQ8_0, ctx, dSrc[s], dRmsW, n, SOURCES[s], EPS, w.values(),
                                w.scales(), o, off, add, ROWS, rows);
                        default -> throw new AssertionError(dm);
                    }
                    grid(f, ROWS, rows);
                }
            }
        }

        // ---- w13 (rmsnorm + w1/w3 + SwiGLU) of each type, each shape
        for (int t = 0; t < 3; t++) {
            w13[t] = matrix(t, 2 * HIDDEN, DIM);
            DeviceMatrix dm = DeviceMatrix.stack("w13", w13[t]);
            in.addAll(ForwardGraph.arrays(dm));
            for (int r = 0; r < SHAPES; r++) {
                int rows = ROWS_PER_GROUP[r];
                FloatArray hb = new FloatArray(HIDDEN);
                dHb[r][t] = hb;
                out.add(hb);
                String name = "w13" + TYPES[t] + "_r" + rows;
                switch (dm) {
                    case DeviceMatrix.F32 w -> tg.task(name, GgmlKernels::w13F32, ctx, dSrc[0], dRmsW, DIM, EPS, w.data(), hb, HIDDEN, rows);
                    case DeviceMatrix.F16 w -> tg.task(name, GgmlKernels::w13F16, ctx, dSrc[0], dRmsW, DIM, EPS, w.data(), hb, HIDDEN, rows);
                    case DeviceMatrix.Q8 w -> tg.task(name, GgmlKernels::w13Q8_0, ctx, dSrc[0], dRmsW, DIM, EPS, w.values(), w.scales(), hb,
                            HIDDEN, rows);
                    default -> throw new AssertionError(w13[t]);
                }
                grid(name, HIDDEN, rows);
            }
        }

        // ---- q/k/v, each shape: F32 stacked with biases (NORM), F16 stacked with head norms (NEOX),
        //      Q8_0 with biases and head norms (NEOX) split into q, k and v products (sharing their outputs)
        bias = K.gaussian(QKV_ROWS, 0.5f);
        norms = K.normWeight(2 * HEAD, 0.2f);
        FloatArray dBias = FloatArray.fromArray(bias), dNorms = FloatArray.fromArray(norms);
        IntArray state = IntArray.fromElements(5, POS);
        in.addAll(List.of(dBias, dNorms, state));
        int[] first = {0, HEADS, HEADS + KV};
        int[] count = {HEADS, KV, KV};
        for (int t = 0; t < 3; t++) {
            wqkv[t] = matrix(t, QKV_ROWS, DIM);
            RopeStyle style = t == 0 ? RopeStyle.NORM : RopeStyle.NEOX;
            int headFlags = switch (t) {
                case 0 -> GgmlKernels.HAS_BIAS;
                case 1 -> GgmlKernels.HAS_NORM | GgmlKernels.NEOX;
                default -> GgmlKernels.HAS_BIAS | GgmlKernels.HAS_NORM | GgmlKernels.NEOX;
            };
            FloatArray rope = FloatArray.fromArray(Rope.of(config(style), null, FloatMath.standard()).table(SEQ));
            in.add(rope);
            DeviceMatrix stacked = DeviceMatrix.stack("wqkv", wqkv[t]);
            DeviceMatrix.Q8[] parts = new DeviceMatrix.Q8[3];
            if (t < 2) {
                in.addAll(ForwardGraph.arrays(stacked));
            } else {
                // split: three Q8_0 products (rows of q, of k, of v), each over its own heads
                for (int p = 0; p < 3; p++) {
                    Matrix part = K.q8Matrix(count[p] * HEAD, DIM);
                    copyRows((Matrix.Q8_0) part, (Matrix.Q8_0) wqkv[t], first[p] * HEAD);
                    parts[p] = (DeviceMatrix.Q8) DeviceMatrix.stack("part", part);
                    in.addAll(ForwardGraph.arrays(parts[p]));
                }
            }
            for (int r = 0; r < SHAPES; r++) {
                int rows = ROWS_PER_GROUP[r];
                int flags = headFlags | rows << GgmlKernels.ROWS_SHIFT;
                FloatArray[] o = K.qkvOutputs(Q_DIM, SEQ * KV_DIM, QKV_ROWS);
                FloatArray q = o[0], kc = o[1], vc = o[2], scratch = o[3];
                dQ[r][t] = q;
                dKc[r][t] = kc;
                dVc[r][t] = vc;
                String name = "qkv" + TYPES[t] + "_r" + rows;
                switch (stacked) {
                    case DeviceMatrix.F32 w -> tg.task(name, GgmlKernels::qkvF32, ctx, dSrc[0], dRmsW, DIM, EPS, w.data(), 0, scratch, dBias,
                            dNorms, flags, q, kc, vc, state, rope, HEADS, KV, HEAD);
                    case DeviceMatrix.F16 w -> tg.task(name, GgmlKernels::qkvF16, ctx, dSrc[0], dRmsW, DIM, EPS, w.data(), 0, scratch, dBias,
                            dNorms, flags, q, kc, vc, state, rope, HEADS, KV, HEAD);
                    default -> {
                        for (int p = 0; p < 3; p++) {
                            String part = name + "_" + p;
                            tg.task(part, GgmlKernels::qkvQ8_0, ctx, dSrc[0], dRmsW, DIM, EPS, parts[p].values(), parts[p].scales(),
                                    first[p], scratch, dBias, dNorms, flags, q, kc, vc, state, rope, HEADS, KV, HEAD);
                            K.grid(part, count[p] * LOCAL, LOCAL);
                        }
                    }
                }
                if (t < 2) {
                    K.grid(name, (HEADS + 2 * KV) * LOCAL, LOCAL);
                }
            }
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

    /** Makes {@code part} the rows from {@code fromRow} of {@code all} (34-byte Q8_0 blocks, the same columns). */
    static void copyRows(Matrix.Q8_0 part, Matrix.Q8_0 all, int fromRow) {
        long rowBytes = (long) DIM / 32 * 34;
        MemorySegment.copy(all.data(), fromRow * rowBytes, part.data(), 0, part.rows() * rowBytes);
    }

    static float[] normed() {
        float[] v = new float[DIM];
        GgmlReference.rmsnorm(v, xNorm, floats(rmsW), DIM, EPS);
        return v;
    }

    @Test
    void everyKernelRanOnTheDevice() {
        K.verifyEveryTaskRan();
    }

    @Test
    void fusedProductsEqualPrepareThenProductBitForBit() {
        for (int t = 0; t < 3; t++) {
            for (int s = 0; s < 3; s++) {
                for (int i = 0; i < ROWS + OUT_OFF; i++) {
                    assertEquals(Float.floatToIntBits(unfused[t][s].get(i)), Float.floatToIntBits(fused[0][t][s].get(i)),
                            TYPES[t] + " source " + s + " row " + i + ": prepare + matmul " + unfused[t][s].get(i) + ", fused "
                                    + fused[0][t][s].get(i) + K.seedNote());
                }
            }
        }
    }

    @Test
    void severalRowsPerWorkGroupOnlyReorderEachRowsSum() {
        for (int r = 1; r < SHAPES; r++) {
            for (int t = 0; t < 3; t++) {
                for (int s = 0; s < 3; s++) {   // SwiGLU included: the same device exp at every shape
                    K.closeRelative(fused[0][t][s].toHeapArray(), fused[r][t][s], 0, 1e-5, TYPES[t] + " source " + s + shape(r));
                }
            }
        }
    }

    @Test
    void fusedProductsMatchTheCpuEngine() {
        for (int t = 0; t < 3; t++) {
            for (int s = 0; s < 2; s++) {   // SwiGLU's exp is the device's: covered bit for bit above
                float[] v = SOURCES[s] == GgmlKernels.FROM_NORM ? normed() : xIn;
                float[] want = cpuProduct(products[t][s], v);
                int off = t == 0 ? 0 : OUT_OFF;
                if (t == 2) {
                    for (int r = 0; r < ROWS; r++) {
                        want[r] += residual[off + r];
                    }
                }
                for (int r = 0; r < SHAPES; r++) {
                    K.closeRelative(want, fused[r][t][s], off, 1e-5, TYPES[t] + " source " + s + shape(r));
                }
            }
        }
        for (int r = 0; r < SHAPES; r++) {
            K.closeRelative(new float[]{residual[0], residual[1], residual[2]}, fused[r][2][0], 0, 1e-5,
                    "rows before the offset untouched" + shape(r));
            K.closeRelative(new float[OUT_OFF], fused[r][1][0], 0, 1e-5, "rows before the offset unwritten" + shape(r));
        }
    }

    @Test
    void w13NormalisesMultipliesAndAppliesSwiglu() {
        for (int t = 0; t < 3; t++) {
            float[] both = cpuProduct(w13[t], normed());
            float[] hb = Arrays.copyOfRange(both, 0, HIDDEN);
            ScalarKernels.swiglu(hb, Arrays.copyOfRange(both, HIDDEN, 2 * HIDDEN), HIDDEN, FloatMath.JAVA);
            for (int r = 0; r < SHAPES; r++) {
                K.closeRelative(hb, dHb[r][t], 0, 1e-5, "w13" + TYPES[t] + shape(r));
            }
        }
    }

    @Test
    void qkvStackedAndSplitWithBiasesHeadNormsAndRope() {
        for (int t = 0; t < 3; t++) {
            float[] all = cpuProduct(wqkv[t], normed());
            if (t != 1) {
                GgmlReference.addBias(all, floats(bias), all.length);
            }
            float[] q = Arrays.copyOfRange(all, 0, Q_DIM);
            float[] k = Arrays.copyOfRange(all, Q_DIM, Q_DIM + KV_DIM);
            float[] v = Arrays.copyOfRange(all, Q_DIM + KV_DIM, QKV_ROWS);
            if (t != 0) {
                GgmlReference.headNorms(q, HEADS, HEAD, floats(Arrays.copyOfRange(norms, 0, HEAD)), EPS);
                GgmlReference.headNorms(k, KV, HEAD, floats(Arrays.copyOfRange(norms, HEAD, 2 * HEAD)), EPS);
            }
            Rope rope = Rope.of(config(t == 0 ? RopeStyle.NORM : RopeStyle.NEOX), null, FloatMath.standard());
            float[] cos = new float[HEAD / 2], sin = new float[HEAD / 2];
            rope.angles(POS, cos, sin);
            rope.rotate(q, HEADS, k, KV, cos, sin);
            for (int r = 0; r < SHAPES; r++) {
                String what = "qkv" + TYPES[t] + shape(r);
                K.closeRelative(q, dQ[r][t], 0, 1e-5, what + " q");
                K.closeRelative(k, dKc[r][t], POS * KV_DIM, 1e-5, what + " k in the cache at pos");
                K.closeRelative(v, dVc[r][t], POS * KV_DIM, 1e-5, what + " v in the cache at pos");
                K.closeRelative(new float[KV_DIM], dKc[r][t], 0, 1e-5, what + " other positions untouched");
            }
        }
    }
}
