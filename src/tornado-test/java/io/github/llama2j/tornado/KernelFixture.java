package io.github.llama2j.tornado;

import io.github.llama2j.cpu.Activations;
import io.github.llama2j.cpu.ScalarKernels;
import io.github.llama2j.model.Matrix;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
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
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the device kernel tests ({@link KernelsTest}, {@link GgufKernelsTest}, {@link FusedGgufKernelsTest},
 * {@link FusedQ8KernelsTest}) share: one task graph per test class holding every kernel it checks (so PoCL
 * JIT-compiles them once), the grid and the device arrays of each task, one profiled execution, the random
 * inputs from a seed of their own, and the comparisons, whose failures name that seed.
 *
 * <p>Use: a {@code static final} fixture per class; in {@code @BeforeAll}, {@link #begin}, then per task
 * {@code graph().task(...)}, {@link #grid} and the arrays into {@link #in} / {@link #out}, then {@link #execute};
 * a test calls {@link #verifyEveryTaskRan}.
 */
final class KernelFixture {
    final long seed = System.nanoTime();
    final Random rnd = new Random(seed);
    /** Arrays copied to the device before the first execution. */
    final List<Object> in = new ArrayList<>();
    /** Arrays copied back to the host after every execution. */
    final List<Object> out = new ArrayList<>();
    private final String name;
    private final List<String> tasks = new ArrayList<>();
    private KernelContext ctx;
    private TaskGraph graph;
    private GridScheduler grid;
    private KernelRun run;

    /** @param name the task graph's name (task ids are {@code name.task}) */
    KernelFixture(String name) {
        this.name = name;
    }

    /**
     * Opens the task graph, after telling TornadoVM to fail rather than run a kernel it cannot compile as Java
     * ({@link TornadoRuntimeCheck#requireNoBailoutRecovery}, which must come before TornadoVM starts).
     */
    void begin() {
        TornadoRuntimeCheck.requireNoBailoutRecovery();
        ctx = new KernelContext();
        graph = new TaskGraph(name);
        grid = new GridScheduler();
    }

    KernelContext ctx() {
        return ctx;
    }

    TaskGraph graph() {
        return graph;
    }

    /** The grid of {@code task}: {@code global} work-items in work-groups of {@code local}; the task must then run on the device. */
    void grid(String task, int global, int local) {
        WorkerGrid1D w = new WorkerGrid1D(global);
        w.setLocalWork(local, 1, 1);
        grid.addWorkerGrid(name + "." + task, w);
        tasks.add(name + "." + task);
    }

    /** Executes the graph once ({@link KernelRun#executeOnce}), {@link #in} copied to the device, {@link #out} back. */
    /**
     * The outputs of one fused q/k/v task (GGUF kernels): q (qDim), the key and value caches (cacheFloats each,
     * zeros) and the kernel's device scratch (scratchFloats), registered as inputs (the caches and scratch) and
     * outputs (q and the caches). Returns {q, keyCache, valueCache, scratch}.
     */
    FloatArray[] qkvOutputs(int qDim, int cacheFloats, int scratchFloats) {
        FloatArray q = new FloatArray(qDim), kc = new FloatArray(cacheFloats), vc = new FloatArray(cacheFloats);
        FloatArray scratch = new FloatArray(scratchFloats);
        in.addAll(List.of(kc, vc, scratch));
        out.addAll(List.of(q, kc, vc));
        return new FloatArray[]{q, kc, vc, scratch};
    }

    void execute() {
        graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, in.toArray());
        graph.transferToHost(DataTransferMode.EVERY_EXECUTION, out.toArray());
        run = KernelRun.executeOnce(graph, grid, seed);
    }

    /** Every task with a {@link #grid} ran on the selected device ({@link TaskVerifier}). */
    void verifyEveryTaskRan() {
        TaskVerifier.verify(tasks, run.runs(), run.deviceName());
    }

    /** The end of every failure message. */
    String seedNote() {
        return " (seed " + seed + ")";
    }

    // ------------------------------------------------------------------ random inputs

    float[] gaussian(int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian() * scale;
        }
        return a;
    }

    /** Multiples of 1/8 in (-8, 8): exact squares and exact sums of squares in float (and double). */
    float[] eighths(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (rnd.nextInt(127) - 63) / 8f;
        }
        return a;
    }

    /** An rmsnorm weight: 1 + a Gaussian of {@code spread}. */
    float[] normWeight(int n, float spread) {
        float[] a = gaussian(n, spread);
        for (int i = 0; i < n; i++) {
            a[i] += 1f;
        }
        return a;
    }

    /** runq's int8 values, -127 to 127. */
    byte[] int8s(int n) {
        byte[] a = new byte[n];
        for (int i = 0; i < n; i++) {
            a[i] = (byte) (rnd.nextInt(255) - 127);
        }
        return a;
    }

    /** runq's group scales: positive, 0.001 to 0.021. */
    float[] scales(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0.001f + rnd.nextFloat() * 0.02f;
        }
        return a;
    }

    /** A random finite half (subnormals and zeros included, inf and NaN excluded) of magnitude below 2^(maxExp-15). */
    short randomHalf(int maxExp) {
        int exp = rnd.nextInt(maxExp + 1);
        return (short) ((rnd.nextBoolean() ? 0x8000 : 0) | (exp << 10) | rnd.nextInt(1024));
    }

    /** Random F16 weights, up to about 2 in magnitude. */
    Matrix.F16 f16Matrix(int rows, int cols) {
        MemorySegment s = Arena.ofAuto().allocate((long) rows * cols * 2, 2);
        for (long i = 0; i < (long) rows * cols; i++) {
            s.set(Matrix.SHORT, 2 * i, randomHalf(16));
        }
        return new Matrix.F16(s, rows, cols);
    }

    /** Random Q8_0 blocks: F16 scales of either sign (some subnormal, some zero), int8 values from -128 to 127. */
    Matrix.Q8_0 q8Matrix(int rows, int cols) {
        long blocks = (long) rows * cols / 32;
        MemorySegment s = Arena.ofAuto().allocate(blocks * 34, 1);
        for (long b = 0; b < blocks; b++) {
            s.set(Matrix.SHORT, b * 34, b % 11 == 3 ? 0 : randomHalf(12));
            for (int k = 0; k < 32; k++) {
                s.set(ValueLayout.JAVA_BYTE, b * 34 + 2 + k, (byte) (rnd.nextInt(256) - 128));
            }
        }
        return new Matrix.Q8_0(s, rows, cols);
    }

    /** int8 values (a multiple of 4 of them) packed four to an int, byte for byte, as {@link DeviceMatrix.Q8} holds them. */
    static IntArray packed(byte[] a) {
        IntArray p = new IntArray(a.length / 4);
        MemorySegment.copy(a, 0, p.getSegment(), ValueLayout.JAVA_BYTE, 0, a.length);
        return p;
    }

    /** The int8 values of {@link #packed} ones, one to a byte (for the kernels that read bytes). */
    static Int8Array unpacked(IntArray p) {
        Int8Array a = new Int8Array(p.getSize() * 4);
        MemorySegment.copy(p.getSegment(), 0, a.getSegment(), 0, p.getSize() * 4L);
        return a;
    }

    /** The floats in native memory (a float32 weight as the CPU engine's references read it). */
    static MemorySegment floats(float[] a) {
        MemorySegment s = Arena.ofAuto().allocate((long) a.length * Float.BYTES, 4);
        MemorySegment.copy(a, 0, s, ValueLayout.JAVA_FLOAT, 0, a.length);
        return s;
    }

    static float[] slice(float[] a, int from, int len) {
        float[] out = new float[len];
        System.arraycopy(a, from, out, 0, len);
        return out;
    }

    /** The CPU engine's product of m with the values v (as the CPU engine prepares them for m's type). */
    static float[] cpuProduct(Matrix m, float[] v) {
        float[] o = new float[m.rows()];
        ScalarKernels k = new ScalarKernels();
        switch (m) {
            case Matrix.F32 f -> k.matmulF32(o, v, f, 0, m.rows());
            case Matrix.F16 f -> {
                Activations a = new Activations(v.length);
                a.input(v, v.length);
                a.prepareFor(f);
                k.matmulF16(o, a, f, 0, m.rows());
            }
            case Matrix.Q8_0 q -> {
                Activations a = new Activations(v.length);
                a.input(v, v.length);
                a.prepareFor(q);
                k.matmulQ8_0(o, a, q, 0, m.rows());
            }
            default -> throw new AssertionError(m);
        }
        return o;
    }

    // ------------------------------------------------------------------ comparisons

    /** |expected[i] - actual[from + i]| <= tol for every i, the first failing index named. */
    void close(float[] expected, FloatArray actual, int from, double tol, String what) {
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(expected[i] - actual.get(from + i));
            int at = i;
            assertTrue(d <= tol, () -> what + "[" + at + "]: expected " + expected[at] + ", device " + actual.get(from + at)
                    + " (tolerance " + tol + ")" + seedNote());
        }
    }

    /** {@link #close} with the tolerance {@code relTol} × max(1, max|expected|). */
    void closeRelative(float[] expected, FloatArray actual, int from, double relTol, String what) {
        double scale = 1;
        for (float v : expected) {
            scale = Math.max(scale, Math.abs(v));
        }
        close(expected, actual, from, relTol * scale, what);
    }

    /** The same float, bit for bit (any NaN for a NaN). */
    void bitsEqual(float expected, float actual, String what) {
        if (Float.isNaN(expected)) {
            assertTrue(Float.isNaN(actual), () -> what + ": expected NaN, got " + actual + seedNote());
            return;
        }
        assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(actual),
                () -> what + ": expected " + expected + ", got " + actual + seedNote());
    }
}
