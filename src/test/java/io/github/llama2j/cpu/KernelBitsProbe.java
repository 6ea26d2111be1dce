package io.github.llama2j.cpu;

import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.SegmentAllocator;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Writes the bits of every one-token CPU kernel's results on fixed random inputs, one line per kernel and form:
 * {@link KernelJitStateTest} runs it in two JVMs, one that only interprets and one that compiles every kernel with C2
 * before it prints, and requires the same lines. Each kernel runs {@code args[0]} times before its line is made (the
 * compiling JVM is started with a low compile threshold and {@code -Xbatch}, so those runs compile it).
 *
 * <p>The last line is a control: a row sum by {@code reduceLanes(ADD)}, which the interpreter and C2 add in other
 * orders (LaneSums), so on x86 the two JVMs must print it differently, or the test would not see a kernel that sums
 * that way.
 */
public final class KernelBitsProbe {
    static final String[] TYPES = {"F32", "F16", "F16 with an inf", "BF16", "Q8_0", "Q4_0", "Q5_1", "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    static final String CONTROL = "control reduceLanes";
    /** 13 rows: the four-row paths and a leftover row; each form runs on [0, 13) and on [1, 13) (a group cut at r0). */
    private static final int ROWS = 13, COLS = 512;

    private KernelBitsProbe() {
    }

    /** Arguments: the runs per kernel, and the file to write the lines to (apart from the JVM's own output). */
    public static void main(String[] args) throws java.io.IOException {
        java.nio.file.Files.write(java.nio.file.Path.of(args[1]), lines(Integer.parseInt(args[0])));
    }

    static List<String> lines(int runs) {
        List<String> lines = new ArrayList<>();
        Kernels kernels = new VectorKernels();
        SplittableRandom rnd = new SplittableRandom(20261207);
        try (Arena arena = Arena.ofShared(); Parallel pool = new Parallel(1)) {
            for (String type : TYPES) {
                float[] values = new float[ROWS * COLS];
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) (rnd.nextGaussian() * 0.05);
                }
                boolean inf = type.equals("F16 with an inf");
                Matrix m = GgmlQuantize.quantize(inf ? "F16" : type, values, ROWS, COLS, arena);
                if (inf) { // an infinite half in row 5: the F16 kernel's path for rows that hold one (f16RowSpecial)
                    ((Matrix.F16) m).data().set(Matrix.SHORT, (5L * COLS + 17) * 2, Float.floatToFloat16(Float.POSITIVE_INFINITY));
                }
                float[] x = new float[COLS];
                for (int i = 0; i < COLS; i++) {
                    x[i] = (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-4, 4)));
                }
                Activations a = new Activations(COLS);
                a.input(x, COLS);
                a.prepareFor(m);
                List<MatrixForm> forms = new ArrayList<>(List.of(new MatrixForm.File(m)));
                SegmentAllocator memory = SegmentAllocator.slicingAllocator(arena.allocate(4L * m.byteSize() + (1 << 16), 4096));
                switch (m) {
                    case Matrix.Q8_0 q -> forms.add(PackedQ8_0.of(q, memory, pool));
                    case Matrix.Q4_0 q -> forms.add(PackedQ4_0.of(q, memory, pool));
                    case Matrix.Q5_1 q -> forms.add(PackedQ5_1.of(q, memory, pool));
                    case Matrix.Q4_K q -> forms.add(KQuantPacked.Q4K.of(q));
                    case Matrix.Q5_K q -> forms.add(KQuantPacked.Q5K.of(q));
                    case Matrix.Q6_K q -> forms.add(KQuantPacked.Q6K.of(q));
                    case Matrix.F16 h when !inf -> forms.add(new MatrixForm.Copy(h, h, true)); // the checked copy's kernel
                    default -> { }
                }
                for (MatrixForm form : forms) {
                    for (int r0 : new int[]{0, 1}) {
                        float[] out = new float[ROWS];
                        for (int run = 0; run < runs; run++) {
                            kernels.matmul(out, a, form, r0, ROWS);
                        }
                        lines.add(type + " " + form.getClass().getSimpleName() + " rows " + r0 + ".. " + bits(out));
                    }
                }
            }
        }
        float[] sums = new float[64];
        for (int run = 0; run < runs; run++) {
            control(sums, new SplittableRandom(7));
        }
        lines.add(CONTROL + " " + bits(sums));
        return lines;
    }

    /** Sums of random 512-float rows by a vector accumulator and reduceLanes(ADD), as the kernels did before LaneSums. */
    private static void control(float[] sums, SplittableRandom rnd) {
        VectorSpecies<Float> s = FloatVector.SPECIES_PREFERRED;
        float[] row = new float[512];
        for (int r = 0; r < sums.length; r++) {
            for (int i = 0; i < row.length; i++) {
                row[i] = (float) rnd.nextGaussian();
            }
            FloatVector acc = FloatVector.zero(s);
            for (int i = 0; i < row.length; i += s.length()) {
                acc = acc.add(FloatVector.fromArray(s, row, i));
            }
            sums[r] = acc.reduceLanes(VectorOperators.ADD);
        }
    }

    private static String bits(float[] v) {
        StringBuilder b = new StringBuilder();
        for (float f : v) {
            b.append(Integer.toHexString(Float.floatToRawIntBits(f))).append(' ');
        }
        return b.toString().trim();
    }
}
