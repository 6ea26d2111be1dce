package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Exact-mode kernels ({@code --exact}): bit-identical to {@link ScalarKernels}, i.e. to run.c's
 * {@code val += w[i*n + j] * x[j]} in index order with one rounding for the product and one for the
 * sum, but vectorized.
 *
 * <p>The trick is to vectorize across rows instead of along a row: lane {@code l} of the accumulator
 * holds row {@code r + l}'s running sum, so every lane adds its own products one column after
 * another, exactly in run.c's order. The weights are stored by rows, so a tile of 16 rows × 16
 * columns is loaded as 16 row vectors, multiplied by x elementwise (the same roundings as run.c's
 * products), transposed in registers (4 rounds of two-source lane permutes), and the 16 column
 * vectors are added to the accumulator in column order. No FMA: {@code mul} then {@code add} rounds
 * twice, like C without contraction.
 *
 * <p>This needs 16 float lanes (AVX-512). With fewer, and for the leftover rows of a range (fewer
 * than 16), it uses the scalar loop. Q8_0 products are exact in every mode and use the
 * {@link VectorKernels} Q8 kernel; GGML's types use the {@link Kernels} defaults, the same vector
 * kernels as the default mode.
 */
public final class ExactVectorKernels implements Kernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** Rows (and columns) per tile: one float lane per row. */
    static final int TILE = 16;
    /** True where the preferred float vector has the 16 lanes this kernel's transpose is written for. */
    static final boolean SUPPORTED = F.length() == TILE;

    /*
     * Lane permutes of the transpose: round `bit` pairs vectors a and b = a | bit and swaps bit `bit`
     * of the vector number with bit `bit` of the lane number. Index i < 16 picks lane i of the first
     * vector, i + 16 lane i of the second.
     */
    private static final IntVector LO1 = permute(1, false), HI1 = permute(1, true);
    private static final IntVector LO2 = permute(2, false), HI2 = permute(2, true);
    private static final IntVector LO4 = permute(4, false), HI4 = permute(4, true);
    private static final IntVector LO8 = permute(8, false), HI8 = permute(8, true);

    private static final ScalarKernels SCALAR = new ScalarKernels();

    private static IntVector permute(int bit, boolean high) {
        if (!SUPPORTED) {
            return null;
        }
        int[] idx = new int[TILE];
        for (int l = 0; l < TILE; l++) {
            boolean set = (l & bit) != 0;
            idx[l] = high ? (set ? l + TILE : l | bit) : (set ? (l ^ bit) + TILE : l);
        }
        return IntVector.fromArray(IntVector.SPECIES_512, idx, 0);
    }

    @Override
    public String name() {
        return SUPPORTED ? "exact" + F.vectorBitSize() : "exact-scalar";
    }

    @Override
    public void matmulF32(float[] out, float[] x, Matrix.F32 w, int r0, int r1) {
        if (!SUPPORTED) {
            SCALAR.matmulF32(out, x, w, r0, r1);
            return;
        }
        int n = w.cols();
        MemorySegment data = w.data();
        long rowBytes = (long) n * Float.BYTES;
        int upper = n - n % TILE;
        float[] lanes = new float[TILE];
        int r = r0;
        for (; r + TILE <= r1; r += TILE) {
            long base = r * rowBytes;
            FloatVector acc = FloatVector.zero(F);
            for (int j = 0; j < upper; j += TILE) {
                acc = tile(acc, FloatVector.fromArray(F, x, j), data, base + (long) j * Float.BYTES, rowBytes);
            }
            // Columns past the last whole tile: each row goes on alone, still in order.
            acc.intoArray(lanes, 0);
            for (int l = 0; l < TILE; l++) {
                float val = lanes[l];
                long rowBase = base + l * rowBytes;
                for (int j = upper; j < n; j++) {
                    val += data.get(ScalarKernels.FLOAT, rowBase + (long) j * Float.BYTES) * x[j];
                }
                out[r + l] = val;
            }
        }
        if (r < r1) {
            SCALAR.matmulF32(out, x, w, r, r1);
        }
    }

    /**
     * Adds the tile at {@code base} (16 rows, rowBytes apart, 16 columns) times x's 16 values to the
     * 16 rows' sums, column by column.
     */
    private static FloatVector tile(FloatVector acc, FloatVector xv, MemorySegment data, long base, long rowBytes) {
        // p_i = row i of the tile times x, elementwise
        IntVector p0 = FloatVector.fromMemorySegment(F, data, base + 0 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p1 = FloatVector.fromMemorySegment(F, data, base + 1 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p2 = FloatVector.fromMemorySegment(F, data, base + 2 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p3 = FloatVector.fromMemorySegment(F, data, base + 3 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p4 = FloatVector.fromMemorySegment(F, data, base + 4 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p5 = FloatVector.fromMemorySegment(F, data, base + 5 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p6 = FloatVector.fromMemorySegment(F, data, base + 6 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p7 = FloatVector.fromMemorySegment(F, data, base + 7 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p8 = FloatVector.fromMemorySegment(F, data, base + 8 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p9 = FloatVector.fromMemorySegment(F, data, base + 9 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p10 = FloatVector.fromMemorySegment(F, data, base + 10 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p11 = FloatVector.fromMemorySegment(F, data, base + 11 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p12 = FloatVector.fromMemorySegment(F, data, base + 12 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p13 = FloatVector.fromMemorySegment(F, data, base + 13 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p14 = FloatVector.fromMemorySegment(F, data, base + 14 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector p15 = FloatVector.fromMemorySegment(F, data, base + 15 * rowBytes, LE).mul(xv).reinterpretAsInts();
        IntVector t;
        // swap bit 1 of the row number (which vector) with bit 1 of the column (which lane)
        t = LO1.selectFrom(p0, p1); p1 = HI1.selectFrom(p0, p1); p0 = t;
        t = LO1.selectFrom(p2, p3); p3 = HI1.selectFrom(p2, p3); p2 = t;
        t = LO1.selectFrom(p4, p5); p5 = HI1.selectFrom(p4, p5); p4 = t;
        t = LO1.selectFrom(p6, p7); p7 = HI1.selectFrom(p6, p7); p6 = t;
        t = LO1.selectFrom(p8, p9); p9 = HI1.selectFrom(p8, p9); p8 = t;
        t = LO1.selectFrom(p10, p11); p11 = HI1.selectFrom(p10, p11); p10 = t;
        t = LO1.selectFrom(p12, p13); p13 = HI1.selectFrom(p12, p13); p12 = t;
        t = LO1.selectFrom(p14, p15); p15 = HI1.selectFrom(p14, p15); p14 = t;
        // swap bit 2 of the row number (which vector) with bit 2 of the column (which lane)
        t = LO2.selectFrom(p0, p2); p2 = HI2.selectFrom(p0, p2); p0 = t;
        t = LO2.selectFrom(p1, p3); p3 = HI2.selectFrom(p1, p3); p1 = t;
        t = LO2.selectFrom(p4, p6); p6 = HI2.selectFrom(p4, p6); p4 = t;
        t = LO2.selectFrom(p5, p7); p7 = HI2.selectFrom(p5, p7); p5 = t;
        t = LO2.selectFrom(p8, p10); p10 = HI2.selectFrom(p8, p10); p8 = t;
        t = LO2.selectFrom(p9, p11); p11 = HI2.selectFrom(p9, p11); p9 = t;
        t = LO2.selectFrom(p12, p14); p14 = HI2.selectFrom(p12, p14); p12 = t;
        t = LO2.selectFrom(p13, p15); p15 = HI2.selectFrom(p13, p15); p13 = t;
        // swap bit 4 of the row number (which vector) with bit 4 of the column (which lane)
        t = LO4.selectFrom(p0, p4); p4 = HI4.selectFrom(p0, p4); p0 = t;
        t = LO4.selectFrom(p1, p5); p5 = HI4.selectFrom(p1, p5); p1 = t;
        t = LO4.selectFrom(p2, p6); p6 = HI4.selectFrom(p2, p6); p2 = t;
        t = LO4.selectFrom(p3, p7); p7 = HI4.selectFrom(p3, p7); p3 = t;
        t = LO4.selectFrom(p8, p12); p12 = HI4.selectFrom(p8, p12); p8 = t;
        t = LO4.selectFrom(p9, p13); p13 = HI4.selectFrom(p9, p13); p9 = t;
        t = LO4.selectFrom(p10, p14); p14 = HI4.selectFrom(p10, p14); p10 = t;
        t = LO4.selectFrom(p11, p15); p15 = HI4.selectFrom(p11, p15); p11 = t;
        // swap bit 8 of the row number (which vector) with bit 8 of the column (which lane)
        t = LO8.selectFrom(p0, p8); p8 = HI8.selectFrom(p0, p8); p0 = t;
        t = LO8.selectFrom(p1, p9); p9 = HI8.selectFrom(p1, p9); p1 = t;
        t = LO8.selectFrom(p2, p10); p10 = HI8.selectFrom(p2, p10); p2 = t;
        t = LO8.selectFrom(p3, p11); p11 = HI8.selectFrom(p3, p11); p3 = t;
        t = LO8.selectFrom(p4, p12); p12 = HI8.selectFrom(p4, p12); p4 = t;
        t = LO8.selectFrom(p5, p13); p13 = HI8.selectFrom(p5, p13); p5 = t;
        t = LO8.selectFrom(p6, p14); p14 = HI8.selectFrom(p6, p14); p6 = t;
        t = LO8.selectFrom(p7, p15); p15 = HI8.selectFrom(p7, p15); p7 = t;
        // now p_j is column j (lane i: row i's product), added in column order
        return acc.add(p0.reinterpretAsFloats()).add(p1.reinterpretAsFloats()).add(p2.reinterpretAsFloats()).add(p3.reinterpretAsFloats()).add(p4.reinterpretAsFloats()).add(p5.reinterpretAsFloats()).add(p6.reinterpretAsFloats()).add(p7.reinterpretAsFloats()).add(p8.reinterpretAsFloats()).add(p9.reinterpretAsFloats()).add(p10.reinterpretAsFloats()).add(p11.reinterpretAsFloats()).add(p12.reinterpretAsFloats()).add(p13.reinterpretAsFloats()).add(p14.reinterpretAsFloats()).add(p15.reinterpretAsFloats());
    }

    @Override
    public void matmulQ8(float[] out, byte[] xq, float[] xs, Matrix.Q8 w, int r0, int r1) {
        VectorKernels.q8(out, xq, xs, w, r0, r1);
    }

    @Override
    public void matmulQ8(float[] out, Activations x, Matrix.Q8 w, int r0, int r1) {
        VectorKernels.q8(out, x, w, r0, r1);
    }
}
