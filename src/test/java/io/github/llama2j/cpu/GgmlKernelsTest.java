package io.github.llama2j.cpu;

import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * GGML's tensor types on the CPU: the records' layouts and row dequantization, the activation
 * conversions llama.cpp makes, and every kernel ({@link ScalarKernels}, {@link VectorKernels},
 * {@link ExactVectorKernels}) against a float64 product of the dequantized values, on fresh random
 * matrices whose bytes are random (every nibble, sign and scale pattern) and whose F16 scales are
 * random finite values. Each run draws a new seed, printed in every failure message.
 *
 * <p>Bound. The kernels form each block's integer dot exactly, so the only errors are float
 * roundings: the two scales' product, the block term, and the running sums (at most one per block,
 * or per value for F16/BF16, plus log2 of the lanes). With u = 2^-24 and S = the sum of
 * |weight · activation| over the row (mins counted separately for Q4_K, so cancellation cannot
 * hide them), every result is within {@code 2 (chain + 8) u S} of the float64 value, where chain is
 * the number of blocks (quantized) or values (F16/BF16) of the row. A misread layout (a swapped
 * nibble, a wrong scale) moves a result by about |term| ~ S / blocks, hundreds of times more.
 *
 * <p>The vector width is the JVM's preferred one; the build runs this class again with
 * {@code -XX:MaxVectorSize=32} and {@code =16} so the 256- and 128-bit species run too.
 */
@Tag("vector-widths")
class GgmlKernelsTest {
    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final String[] TYPES = {"F16", "BF16", "Q8_0", "Q4_0", "Q5_1", "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    private static final double U = 0x1p-24;
    /** ggml's kvalues_iq4nl, written out here (the kernels read Matrix.IQ4_NL's copy). */
    static final int[] KVALUES_IQ4NL = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

    private final long seed = new SplittableRandom().nextLong();
    private final SplittableRandom rnd = new SplittableRandom(seed);
    /** Shared: the packed Q8_0 check packs on a pool's threads, as the engine does (its mapped files are shared too). */
    private final Arena arena = Arena.ofShared();
    private final String where = "seed " + seed + ", " + FloatVector.SPECIES_PREFERRED.vectorBitSize() + "-bit vectors";

    @AfterEach
    void close() {
        arena.close();
    }

    // ------------------------------------------------------------------ random matrices in GGML layouts

    private static int blockValues(String type) {
        return switch (type) {
            case "F16", "BF16" -> 1;
            case "Q8_0", "Q4_0", "Q5_1", "IQ4_NL" -> 32;
            default -> 256;
        };
    }

    /** A random F16 scale: normal magnitudes over several binades, either sign, now and then zero or subnormal. */
    private short randomHalf() {
        int kind = rnd.nextInt(20);
        if (kind == 0) {
            return 0;
        }
        if (kind == 1) {
            return (short) rnd.nextInt(1, 0x400); // subnormal
        }
        return Float.floatToFloat16((float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-12, 0))));
    }

    /**
     * rows × cols of {@code type}: random bytes, then every F16 field (the values of an F16 matrix,
     * the block scales) set to a random finite half; starting {@code misalign} bytes into its buffer.
     */
    Matrix randomMatrix(String type, int rows, int cols, int misalign) {
        long rowBytes = GgmlQuantize.rowBytes(type, cols);
        MemorySegment data = arena.allocate(rows * rowBytes + misalign, 64).asSlice(misalign, rows * rowBytes);
        for (long i = 0; i < data.byteSize(); i++) {
            data.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt(256));
        }
        long blockBytes = rowBytes * blockValues(type) / cols;
        for (long b = 0; b < data.byteSize(); b += blockBytes) {
            switch (type) {
                case "F16" -> data.set(Matrix.SHORT, b, randomHalf());
                case "BF16" -> data.set(Matrix.SHORT, b, Matrix.floatToBf16((float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-8, 2)))));
                case "Q8_0", "Q4_0", "IQ4_NL", "IQ4_XS" -> data.set(Matrix.SHORT, b, randomHalf());
                case "Q4_K", "Q5_K", "Q5_1" -> { // (Q5_1: d and the offset m)
                    data.set(Matrix.SHORT, b, randomHalf());
                    data.set(Matrix.SHORT, b + 2, randomHalf());
                }
                case "Q2_K" -> { // d and dmin
                    data.set(Matrix.SHORT, b + 80, randomHalf());
                    data.set(Matrix.SHORT, b + 82, randomHalf());
                }
                case "Q3_K" -> data.set(Matrix.SHORT, b + 108, randomHalf());
                default -> data.set(Matrix.SHORT, b + 208, randomHalf());
            }
        }
        return GgmlQuantize.wrap(type, data, rows, cols);
    }

    float[] randomInput(int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-4, 4)));
        }
        if (n >= 64 && rnd.nextBoolean()) {
            java.util.Arrays.fill(x, 0, 32, 0.0f); // an all-zero block (scale 0)
        }
        return x;
    }

    // ------------------------------------------------------------------ an independent float64 reading of the layouts

    private static int u8(MemorySegment s, long at) {
        return s.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }

    private static double half(MemorySegment s, long at) {
        return Float.float16ToFloat(s.get(Matrix.SHORT, at));
    }

    /** ggml's get_scale_min_k4, restated: sub-block j's 6-bit {scale, min} from the 12 bytes at q. */
    private static int[] scaleMinK4(MemorySegment s, long q, int j) {
        if (j < 4) {
            return new int[]{u8(s, q + j) & 63, u8(s, q + j + 4) & 63};
        }
        return new int[]{(u8(s, q + j + 4) & 0xF) | ((u8(s, q + j - 4) >> 6) << 4), (u8(s, q + j + 4) >> 4) | ((u8(s, q + j) >> 6) << 4)};
    }

    /**
     * Row r as float64 values: out[0][v] the value, out[1][v] its magnitude for error bounds
     * (|value|, but |d sc q| + |dmin m| for Q2_K, Q4_K and Q5_K, |d q| + |m| for Q5_1). Written from the layout, value by value.
     */
    static double[][] exactRow(Matrix m, int r) {
        int n = m.cols();
        double[] val = new double[n], mag = new double[n];
        for (int v = 0; v < n; v++) {
            switch (m) {
                case Matrix.F16 h -> val[v] = half(h.data(), ((long) r * n + v) * 2);
                case Matrix.BF16 h -> val[v] = Float.intBitsToFloat(h.data().get(Matrix.SHORT, ((long) r * n + v) * 2) << 16);
                case Matrix.Q8_0 q -> {
                    long b = ((long) r * n + v) / 32 * 34;
                    val[v] = half(q.data(), b) * q.data().get(ValueLayout.JAVA_BYTE, b + 2 + v % 32);
                }
                case Matrix.Q4_0 q -> {
                    long b = ((long) r * n + v) / 32 * 18;
                    int k = v % 32, byteAt = u8(q.data(), b + 2 + k % 16);
                    int nib = k < 16 ? byteAt & 0xF : byteAt >> 4;
                    val[v] = half(q.data(), b) * (nib - 8);
                }
                case Matrix.Q5_1 q -> { // f16 d, f16 m, u32 qh (little-endian), u8 qs[16]
                    long b = ((long) r * n + v) / 32 * 24;
                    double[] dq = q5_1Value(q.data(), b, v % 32);
                    val[v] = dq[0] + dq[1];
                    mag[v] = Math.abs(dq[0]) + Math.abs(dq[1]);
                }
                case Matrix.Q2_K q -> { // u8 scales[16] (scale | min << 4), u8 qs[64], f16 d, f16 dmin
                    long b = ((long) r * n + v) / 256 * 84;
                    int k = v % 256, h = k / 128, i = k % 128 / 32, l = k % 32, sub = k / 16;
                    int q2 = (u8(q.data(), b + 16 + 32 * h + l) >> (2 * i)) & 3;
                    int sm = u8(q.data(), b + sub);
                    double a = half(q.data(), b + 80) * (sm & 0xF) * q2, c = half(q.data(), b + 82) * (sm >> 4);
                    val[v] = a - c;
                    mag[v] = Math.abs(a) + Math.abs(c);
                }
                case Matrix.IQ4_NL q -> { // f16 d, u8 qs[16]: a nibble indexes kvalues_iq4nl
                    long b = ((long) r * n + v) / 32 * 18;
                    int k = v % 32, byteAt = u8(q.data(), b + 2 + k % 16);
                    val[v] = half(q.data(), b) * KVALUES_IQ4NL[k < 16 ? byteAt & 0xF : byteAt >> 4];
                }
                case Matrix.IQ4_XS q -> { // f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]
                    long b = ((long) r * n + v) / 256 * 136;
                    int k = v % 256, sub = k / 32, l = k % 32;
                    int byteAt = u8(q.data(), b + 8 + 16 * sub + l % 16);
                    int ls = (u8(q.data(), b + 4 + sub / 2) >> (4 * (sub % 2)) & 0xF)
                            | ((u8(q.data(), b + 2 + sub / 4) >> (2 * (sub % 4))) & 3) << 4;
                    val[v] = half(q.data(), b) * (ls - 32) * KVALUES_IQ4NL[l < 16 ? byteAt & 0xF : byteAt >> 4];
                }
                case Matrix.Q3_K q -> { // u8 hmask[32], u8 qs[64], u8 scales[12], f16 d
                    long b = ((long) r * n + v) / 256 * 110;
                    int k = v % 256, h = k / 128, i = k % 128 / 32, l = k % 32, sub = k / 16;
                    int low = (u8(q.data(), b + 32 + 32 * h + l) >> (2 * i)) & 3;
                    int high = (u8(q.data(), b + l) >> (4 * h + i)) & 1;
                    int sc = (sub < 8 ? u8(q.data(), b + 96 + sub) & 0xF : u8(q.data(), b + 96 + sub - 8) >> 4)
                            | ((u8(q.data(), b + 104 + sub % 4) >> (2 * (sub / 4))) & 3) << 4;
                    val[v] = half(q.data(), b + 108) * (sc - 32) * (low - (high == 0 ? 4 : 0));
                }
                case Matrix.Q4_K q -> {
                    long b = ((long) r * n + v) / 256 * 144;
                    int k = v % 256, sub = k / 32;
                    int byteAt = u8(q.data(), b + 16 + 32 * (sub / 2) + k % 32);
                    int nib = sub % 2 == 0 ? byteAt & 0xF : byteAt >> 4;
                    int[] sm = scaleMinK4(q.data(), b + 4, sub);
                    double a = half(q.data(), b) * sm[0] * nib, c = half(q.data(), b + 2) * sm[1];
                    val[v] = a - c;
                    mag[v] = Math.abs(a) + Math.abs(c);
                }
                case Matrix.Q5_K q -> { // f16 d, f16 dmin, scales[12], qh[32], qs[128]
                    long b = ((long) r * n + v) / 256 * 176;
                    int k = v % 256, sub = k / 32, l = k % 32;
                    int byteAt = u8(q.data(), b + 48 + 32 * (sub / 2) + l);
                    int nib = sub % 2 == 0 ? byteAt & 0xF : byteAt >> 4;
                    int bit4 = (u8(q.data(), b + 16 + l) >> sub) & 1;
                    int[] sm = scaleMinK4(q.data(), b + 4, sub);
                    double a = half(q.data(), b) * sm[0] * (nib + 16 * bit4), c = half(q.data(), b + 2) * sm[1];
                    val[v] = a - c;
                    mag[v] = Math.abs(a) + Math.abs(c);
                }
                case Matrix.Q6_K q -> {
                    long b = ((long) r * n + v) / 256 * 210;
                    int k = v % 256, h = k / 128, i = k % 128 / 32, l = k % 32;
                    int lo = u8(q.data(), b + 64 * h + l + 32 * (i % 2));
                    int nib = i < 2 ? lo & 0xF : lo >> 4;
                    int hi = (u8(q.data(), b + 128 + 32 * h + l) >> (2 * i)) & 3;
                    int sc = q.data().get(ValueLayout.JAVA_BYTE, b + 192 + 8 * h + l / 16 + 2 * i);
                    val[v] = half(q.data(), b + 208) * sc * ((nib | hi << 4) - 32);
                }
                default -> throw new IllegalArgumentException(m.typeName());
            }
            if (!(m instanceof Matrix.Q2_K || m instanceof Matrix.Q4_K || m instanceof Matrix.Q5_K || m instanceof Matrix.Q5_1)) {
                mag[v] = Math.abs(val[v]);
            }
        }
        return new double[][]{val, mag};
    }

    /** Value k of the Q5_1 block at byte b as {d * q, m}: q's low 4 bits from qs[k mod 16] (low nibble for k &lt; 16), bit 4 from bit k of qh. */
    private static double[] q5_1Value(MemorySegment s, long b, int k) {
        int byteAt = u8(s, b + 8 + k % 16);
        int q = (k < 16 ? byteAt & 0xF : byteAt >> 4) | ((s.get(LE_INT, b + 4) >>> k) & 1) << 4;
        return new double[]{half(s, b) * q, half(s, b + 2)};
    }

    /**
     * Row r of a Q5_1 matrix times the Q8_1 activations as llama.cpp's arithmetic defines it, in float64: per block,
     * {@code d_w d_x sum_k q_k a_k + m_w s_x} with the activations' own s_x (llama.cpp's F16 sum, not the sum of the
     * values: {@link #q8_1ActivationsFollowQuantizeRowQ8_1} checks it); returns {the product, its magnitude for the bound}.
     */
    static double[] q5_1Exact(Matrix.Q5_1 m, Activations a, int r) {
        double exact = 0, mag = 0;
        for (int blk = 0; blk < m.cols() / 32; blk++) {
            long b = ((long) r * m.cols() / 32 + blk) * 24;
            double dot = 0, abs = 0;
            double[] first = null;
            for (int k = 0; k < 32; k++) {
                double[] dq = q5_1Value(m.data(), b, k);
                first = dq;
                double p = dq[0] * a.q80[32 * blk + k] * a.q80Scales[blk];
                dot += p;
                abs += Math.abs(p);
            }
            double mins = first[1] * a.q81Sums[blk];
            exact += dot + mins;
            mag += abs + Math.abs(mins);
        }
        return new double[]{exact, mag};
    }

    /** The activations as the kernel for m reads them, as float64. */
    static double[] exactInput(Activations a, Matrix m) {
        int n = a.size();
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = switch (m) {
                case Matrix.F16 h -> a.f16[i];
                case Matrix.BF16 h -> a.bf16[i];
                case Matrix.Q8_0 q -> (double) a.q80[i] * a.q80Scales[i / 32];
                case Matrix.Q4_0 q -> (double) a.q80[i] * a.q80Scales[i / 32];
                case Matrix.Q5_1 q -> (double) a.q80[i] * a.q80Scales[i / 32];
                case Matrix.IQ4_NL q -> (double) a.q80[i] * a.q80Scales[i / 32];
                default -> (double) a.q8K[i] * a.q8KScales[i / 256];
            };
        }
        return x;
    }

    // ------------------------------------------------------------------ the kernels

    /** rows, cols (per type: a multiple of its block), r0, r1 (-1: rows), misalignment of the data. */
    @ParameterizedTest
    @CsvSource(textBlock = """
            1, 1, 0, -1, 0
            3, 2, 0, -1, 1
            17, 3, 0, -1, 3
            40, 1, 3, 37, 7
            33, 8, 1, 33, 2
            24, 2, 5, 23, 1
            64, 16, 0, -1, 0
            """)
    void everyKernelMatchesFloat64(int rows, int blocksPerRow, int r0, int r1, int misalign) {
        for (String type : TYPES) {
            int cols = blocksPerRow * (blockValues(type) > 1 ? blockValues(type) : 32) + (blockValues(type) > 1 ? 0 : blocksPerRow % 2);
            checkKernels(type, rows, cols, r0, r1 < 0 ? rows : r1, misalign);
        }
    }

    /** Wider rows (the shapes of real models) for the quantized types, and odd column counts for F16/BF16. */
    @ParameterizedTest
    @ValueSource(ints = {2048, 2304, 4097})
    void wideRows(int cols) {
        for (String type : TYPES) {
            int c = blockValues(type) > 1 ? cols / blockValues(type) * blockValues(type) : cols;
            checkKernels(type, 9, c, 0, 9, 5);
        }
    }

    /**
     * Rows longer than {@code KQuantPacked.SPANS_FROM_BLOCKS} super-blocks: the K-quant copies hold them in column
     * spans (a ragged last span at 8448 columns, seven whole ones at 14336), on a row range inside.
     */
    @ParameterizedTest
    @ValueSource(ints = {8448, 14336})
    void copiesInColumnSpans(int cols) {
        assertTrue(KQuantPacked.spanBlocks(cols / 256) < cols / 256, "these rows are held in spans");
        for (String type : List.of("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")) { // (Q3_K's copy below 512 bits)
            checkKernels(type, 11, cols, 2, 9, 3);
        }
    }

    /**
     * Copies of a real layer's size (Q8_0 and Q4_K: 2 MiB and more, so {@link PageMemory} maps them, in huge pages
     * where granted, instead of taking them from the arena), on a row range inside. On Linux the Q8_0 copy's values must
     * start at a 2 MiB boundary (the mapping's, sliced first), so this cannot pass on the arena's memory unnoticed.
     */
    @Test
    void copiesInMappedPages() {
        for (String type : List.of("Q8_0", "Q4_K")) {
            checkKernels(type, 1040, 4096, 3, 1037, 1);
        }
        if (PageMemory.maps()) {
            try (Parallel pool = new Parallel(2); java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                Matrix.Q8_0 m = (Matrix.Q8_0) randomMatrix("Q8_0", 1040, 4096, 1);
                PackedQ8_0 p = packedAsPrepared(m, arena, pool);
                assertEquals(0, p.quants().address() % (2L << 20), "the copy's values come from a mapped region");
                KQuantPacked.Q4K q = KQuantPacked.Q4K.of((Matrix.Q4_K) randomMatrix("Q4_K", 1040, 4096, 1));
                assertEquals(0, q.qs().address() % (2L << 20), "the Q4_K copy's nibbles come from a mapped region");
            }
        }
    }

    /**
     * The K-quant copies' kernels read the activation pairs (and Q6_K's chain starts) from the index the
     * preparation chose for them (a cache line's start, {@link ArrayAlignment}): at each of the 16 indices it may
     * choose, the float64 product within the bound (a kernel reading from another index than the pairs were written
     * at is off by far more), and bit for bit the same at every index.
     */
    @Test
    void kQuantPairsFromAnyFirstIndex() {
        for (String type : KQuantPacked.Q3K_COPY ? List.of("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K") : List.of("Q2_K", "Q4_K", "Q5_K", "Q6_K")) {
            int rows = 9, cols = 3 * 256;
            Matrix m = randomMatrix(type, rows, cols, 0);
            MatrixForm copy = switch (m) {
                case Matrix.Q2_K q -> KQuantPacked.Q2K.of(q);
                case Matrix.Q3_K q -> KQuantPacked.Q3K.of(q);
                case Matrix.Q4_K q -> KQuantPacked.Q4K.of(q);
                case Matrix.Q5_K q -> KQuantPacked.Q5K.of(q);
                default -> KQuantPacked.Q6K.of((Matrix.Q6_K) m);
            };
            boolean sixOrder = !type.equals("Q4_K") && !type.equals("Q5_K"); // (the Q6_K copy's pairs)
            float[] x = randomInput(cols), first = null;
            for (int at = 0; at < ArrayAlignment.LINE / Integer.BYTES; at++) {
                Activations a = new Activations(cols);
                a.pairsAtForTests = at;
                a.input(x, cols);
                a.prepareFor(m);
                assertEquals(at, sixOrder ? a.q8KPairs6At : a.q8KPairsAt, type + ": " + where);
                if (sixOrder) {
                    assertEquals(at, a.q8KStarts6At, type + ": " + where);
                }
                checkRows(type + " copy, pairs from index " + at, o -> new VectorKernels().matmul(o, a, copy, 0, rows), m,
                        a, cols / 256, rows, cols, 0, rows);
                float[] out = new float[rows];
                new VectorKernels().matmul(out, a, copy, 0, rows);
                if (first == null) {
                    first = out;
                } else {
                    assertArrayEquals(first, out, type + ": pairs from index " + at + " against index 0");
                }
            }
        }
    }

    /** A Q8_0 copy as {@link PreparedWeights} makes it: sliced from one {@link PageMemory} region (mapped at 2 MiB and up, else the arena's). */
    private static PackedQ8_0 packedAsPrepared(Matrix.Q8_0 m, java.lang.foreign.Arena arena, Parallel pool) {
        return PackedQ8_0.of(m, java.lang.foreign.SegmentAllocator.slicingAllocator(
                PageMemory.allocate(arena, PackedQ8_0.allocationBytes(m))), pool);
    }

    /** A Q5_1 copy as {@link PreparedWeights} makes it: sliced from one {@link PageMemory} region. */
    private static PackedQ5_1 packedAsPrepared(Matrix.Q5_1 m, java.lang.foreign.Arena arena, Parallel pool) {
        return PackedQ5_1.of(m, java.lang.foreign.SegmentAllocator.slicingAllocator(
                PageMemory.allocate(arena, PackedQ5_1.allocationBytes(m))), pool);
    }

    private void checkKernels(String type, int rows, int cols, int r0, int r1, int misalign) {
        Matrix m = randomMatrix(type, rows, cols, misalign);
        float[] x = randomInput(cols);
        Activations a = new Activations(cols);
        a.input(x, cols);
        a.prepareFor(m);
        int chain = blockValues(type) > 1 ? cols / blockValues(type) : cols;
        // the Q8_0, Q4_0, Q5_1 and K-quant kernels also on the CPU engine's load-time copies (Q8_0 and Q4_0: groups of four
        // rows, the last one padded); a bare Matrix is read in the file's layout
        try (Parallel pool = new Parallel(2); java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
            MatrixForm copy = switch (m) {
                case Matrix.Q8_0 q -> packedAsPrepared(q, arena, pool);
                case Matrix.Q4_0 q -> PackedQ4_0.of(q, java.lang.foreign.SegmentAllocator.slicingAllocator(
                        PageMemory.allocate(arena, PackedQ4_0.allocationBytes(q))), pool);
                case Matrix.Q5_1 q -> packedAsPrepared(q, arena, pool);
                case Matrix.Q2_K q -> KQuantPacked.Q2K.of(q);
                case Matrix.Q3_K q when KQuantPacked.Q3K_COPY -> KQuantPacked.Q3K.of(q);
                case Matrix.Q4_K q -> KQuantPacked.Q4K.of(q);
                case Matrix.Q5_K q -> KQuantPacked.Q5K.of(q);
                case Matrix.Q6_K q -> KQuantPacked.Q6K.of(q);
                default -> null;
            };
            for (Kernels k : new Kernels[]{new ScalarKernels(), new VectorKernels(), new ExactVectorKernels()}) {
                checkRows(k.name(), (o) -> k.matmul(o, a, m, r0, r1), m, a, chain, rows, cols, r0, r1);
                if (copy != null) {
                    checkRows(k.name() + " copy", (o) -> k.matmul(o, a, copy, r0, r1), m, a, chain, rows, cols, r0, r1);
                }
            }
        }
    }

    /**
     * Q8_0 at the extremes: weights -128 and 127 against activations of +-127, so each product is 16256 or 16129 in
     * magnitude and the kernels' short lanes carry the largest sums they may (below 512 bits two chunks' products are
     * added in shorts before they are widened: up to 32512 per lane, whose pair of lanes no longer fits a short). The
     * sums are exact integers: every kernel, on the file and on the copy, gives the exact result.
     */
    @Test
    void q8_0AtTheExtremesSumsExactly() {
        int rows = 5, cols = 256, blocks = cols / 32;
        MemorySegment data = arena.allocate((long) rows * blocks * 34, 64);
        for (int r = 0; r < rows; r++) {
            for (int blk = 0; blk < blocks; blk++) {
                long b = ((long) r * blocks + blk) * 34;
                data.set(Matrix.SHORT, b, Float.floatToFloat16(1.0f));
                for (int i = 0; i < 32; i++) {
                    // row 0 all -128, row 1 all 127, row 2 alternating, rows 3-4 -128 and 127 by halves of a block
                    byte q = switch (r) {
                        case 0 -> (byte) -128;
                        case 1 -> (byte) 127;
                        case 2 -> (byte) (i % 2 == 0 ? -128 : 127);
                        default -> (byte) ((i < 16) == (r == 3) ? -128 : 127);
                    };
                    data.set(ValueLayout.JAVA_BYTE, b + 2 + i, q);
                }
            }
        }
        Matrix.Q8_0 m = new Matrix.Q8_0(data, rows, cols);
        float[] x = new float[cols];
        for (int j = 0; j < cols; j++) {
            x[j] = j % 7 == 3 ? -127f : 127f; // amax 127 in every block: d = 1, q = x
        }
        // exact in float: |sum| <= 256 * 16256 < 2^24
        assertExactSums(m, x, (r, j) -> data.get(ValueLayout.JAVA_BYTE, ((long) r * blocks + j / 32) * 34 + 2 + j % 32),
                (pool, copies) -> PackedQ8_0.of(m, copies, pool), "");
    }

    /**
     * Every kernel on m, in the file's layout and on the copy {@code copyOf} makes, gives {@code sum_j weight(r, j) *
     * x[j]} for each row r exactly (the activations quantize to themselves: d = 1, q = x).
     */
    private void assertExactSums(Matrix m, float[] x, java.util.function.IntBinaryOperator weight,
                                 java.util.function.BiFunction<Parallel, Arena, MatrixForm> copyOf, String what) {
        int rows = m.rows(), cols = m.cols();
        Activations a = new Activations(cols);
        a.input(x, cols);
        a.prepareFor(m);
        float[] expected = new float[rows];
        for (int r = 0; r < rows; r++) {
            long sum = 0;
            for (int j = 0; j < cols; j++) {
                sum += (long) weight.applyAsInt(r, j) * (long) x[j];
            }
            expected[r] = sum;
        }
        try (Parallel pool = new Parallel(2); Arena copies = Arena.ofShared()) {
            MatrixForm copy = copyOf.apply(pool, copies);
            for (Kernels k : new Kernels[]{new ScalarKernels(), new VectorKernels(), new ExactVectorKernels()}) {
                float[] file = new float[rows], packed = new float[rows];
                k.matmul(file, a, m, 0, rows);
                k.matmul(packed, a, copy, 0, rows);
                assertArrayEquals(expected, file, k.name() + " on the file, " + what + where);
                assertArrayEquals(expected, packed, k.name() + " on the copy, " + what + where);
            }
        }
    }

    /**
     * Q4_0 at the extremes: nibbles 0 and 15 (values -8 and 7) against activations of +-127 (of one sign in a block's
     * values 0-7 and 16-23, the copy's runs 0-1, the other in 8-15 and 24-31, runs 2-3), rows of 16 rows' groups
     * and a partial one, so each lane's int chain of two runs carries the largest sums it may (its upper half 16 · 8 ·
     * 127, its lower half 8 · 15 · 127 from 2^15). The sums are exact integers: every kernel, on the file and on the
     * copy, gives the exact result.
     */
    @Test
    void q4_0AtTheExtremesSumsExactly() {
        int rows = 21, cols = 256, blocks = cols / 32;
        MemorySegment data = arena.allocate((long) rows * blocks * Matrix.Q4_0.BLOCK_BYTES, 64);
        for (int r = 0; r < rows; r++) {
            for (int blk = 0; blk < blocks; blk++) {
                long b = ((long) r * blocks + blk) * Matrix.Q4_0.BLOCK_BYTES;
                data.set(Matrix.SHORT, b, Float.floatToFloat16(1.0f));
                for (int k = 0; k < 16; k++) {
                    // nibbles: row r % 4 == 0 all 0, 1 all 15, 2 alternating by byte, 3 low 0 and high 15
                    int lo = switch (r % 4) {
                        case 0 -> 0;
                        case 1 -> 15;
                        case 2 -> k % 2 == 0 ? 0 : 15;
                        default -> 0;
                    };
                    int hi = r % 4 == 3 ? 15 : lo;
                    data.set(ValueLayout.JAVA_BYTE, b + 2 + k, (byte) (lo | hi << 4));
                }
            }
        }
        Matrix.Q4_0 m = new Matrix.Q4_0(data, rows, cols);
        for (float sign : new float[]{1f, -1f}) {
            float[] x = new float[cols];
            for (int j = 0; j < cols; j++) { // amax 127 in every block: d = 1, q = x; runs 0-1 and 2-3 of opposite signs
                x[j] = j % 16 < 8 ? sign * 127f : -sign * 127f;
            }
            // exact in float: |sum| <= 256 * 8 * 127 < 2^24
            assertExactSums(m, x, (r, j) -> {
                int b = data.get(ValueLayout.JAVA_BYTE, ((long) r * blocks + j / 32) * Matrix.Q4_0.BLOCK_BYTES + 2 + j % 16) & 0xFF;
                return (j % 32 < 16 ? b & 0x0F : b >>> 4) - 8;
            }, (pool, copies) -> PackedQ4_0.of(m, copies, pool), "activations " + sign * 127 + ", ");
        }
    }

    /**
     * The load-time repack of Q4_K (KQuantPacked.Q4K) keeps every nibble (where {@code PAIR_VALUE} says the kernel
     * finds it), scale, min, d and dmin of the file, nibbles 64-byte aligned.
     */
    @Test
    void q4_KRepackKeepsEveryField() {
        Matrix.Q4_K m = (Matrix.Q4_K) randomMatrix("Q4_K", 5, 768, 3);
        KQuantPacked.Q4K p = KQuantPacked.Q4K.of(m);
        assertEquals(0, p.qs().address() % 64, "nibbles aligned, " + where);
        int lanes = KQuantPacked.LANES;
        for (int blk = 0; blk < 5 * 3; blk++) {
            long b = blk * 144L, mt = blk * (long) KQuantPacked.Q4K.META;
            assertMetaKept(m.data(), b, p.meta(), mt, blk);
            for (int k = 0; k < 128 / lanes; k++) {
                for (int i = 0; i < lanes; i++) {
                    for (int h = 0; h < 2; h++) {
                        int v = KQuantPacked.PAIR_VALUE[2 * (k * lanes + i) + h], sub = v / 32;
                        int fileNibble = (u8(m.data(), b + 16 + 32 * (sub / 2) + v % 32) >> (4 * (sub % 2))) & 0xF;
                        int at = 4 * lanes * (k / 4) + 4 * i + 2 * h + (k % 4) / 2;
                        int copyNibble = (u8(p.qs(), blk * 128L + at) >> (4 * (k % 2))) & 0xF;
                        assertEquals(fileNibble, copyNibble, "value " + v + " (vector " + k + ", lane " + i + ", half " + h + "), " + where);
                    }
                }
            }
        }
    }

    /**
     * The meta of a Q4_K or Q5_K copy's super-block at {@code mt} holds the file's super-block at {@code b}: d, dmin,
     * the eight mins and scales (the scales again for lanes 8-15 at 16 lanes, where lane i holds sub-block i mod 8).
     */
    private void assertMetaKept(MemorySegment file, long b, MemorySegment meta, long mt, int blk) {
        assertEquals(half(file, b), half(meta, mt), "d of super-block " + blk + ", " + where);
        assertEquals(half(file, b + 2), half(meta, mt + 2), "dmin, " + where);
        for (int j = 0; j < 8; j++) {
            int[] sm = scaleMinK4(file, b + 4, j);
            assertEquals(sm[1], u8(meta, mt + 4 + j), "min " + j + " of super-block " + blk + ", " + where);
            assertEquals(sm[0], u8(meta, mt + 12 + j), "scale " + j + " of super-block " + blk + ", " + where);
            if (KQuantPacked.LANES == 16) {
                assertEquals(sm[0], u8(meta, mt + 20 + j), "scale " + j + " (again) of super-block " + blk + ", " + where);
            }
        }
    }

    /**
     * The load-time repack of Q5_K (KQuantPacked.Q5K) keeps every value (its nibble where {@code PAIR_VALUE} says, its
     * fifth bit in qh at byte (k / 4) LANES + i, bit k % 4 + 4 h), and the meta of Q4_K's copy, every part 64-byte aligned.
     */
    @Test
    void q5_KRepackKeepsEveryField() {
        Matrix.Q5_K m = (Matrix.Q5_K) randomMatrix("Q5_K", 5, 768, 3);
        KQuantPacked.Q5K p = KQuantPacked.Q5K.of(m);
        assertEquals(0, p.qs().address() % 64, "nibbles aligned, " + where);
        assertEquals(0, p.qh().address() % 64, "fifth bits aligned, " + where);
        int lanes = KQuantPacked.LANES;
        for (int blk = 0; blk < 5 * 3; blk++) {
            long b = blk * 176L, mt = blk * (long) KQuantPacked.Q5K.META;
            assertMetaKept(m.data(), b, p.meta(), mt, blk);
            for (int k = 0; k < 128 / lanes; k++) {
                for (int i = 0; i < lanes; i++) {
                    for (int h = 0; h < 2; h++) {
                        int v = KQuantPacked.PAIR_VALUE[2 * (k * lanes + i) + h], sub = v / 32;
                        int fileValue = (u8(m.data(), b + 48 + 32 * (sub / 2) + v % 32) >> (4 * (sub % 2))) & 0xF
                                | (u8(m.data(), b + 16 + v % 32) >> sub & 1) << 4;
                        int at = 4 * lanes * (k / 4) + 4 * i + 2 * h + (k % 4) / 2;
                        int copyValue = (u8(p.qs(), blk * 128L + at) >> (4 * (k % 2))) & 0xF
                                | (u8(p.qh(), blk * 32L + (k / 4) * lanes + i) >> (k % 4 + 4 * h) & 1) << 4;
                        assertEquals(fileValue, copyValue, "value " + v + " (vector " + k + ", lane " + i + ", half " + h + "), " + where);
                    }
                }
            }
        }
    }

    /**
     * The copy's order ({@code KQuantPacked.PAIR_VALUE}) holds each of a super-block's 256 values once, and an int lane
     * only values of one sub-block (the kernel applies the scales lane by lane): sub-block i mod 8 from 8 lanes up, and
     * with 4 lanes sub-blocks 0-3 in the first half of the vectors, 4-7 in the second.
     */
    @Test
    void q4_KCopysOrderIsAPermutationWithOneSubBlockPerLane() {
        int lanes = KQuantPacked.LANES, vectors = 128 / lanes;
        assertTrue(lanes == 4 || lanes == 8 || lanes == 16, "lanes " + lanes);
        boolean[] seen = new boolean[256];
        for (int k = 0; k < vectors; k++) {
            for (int i = 0; i < lanes; i++) {
                for (int h = 0; h < 2; h++) {
                    int v = KQuantPacked.PAIR_VALUE[2 * (k * lanes + i) + h];
                    assertFalse(seen[v], "value " + v + " twice, " + where);
                    seen[v] = true;
                    int sub = lanes >= 8 ? i % 8 : k / (vectors / 2) * 4 + i;
                    assertEquals(sub, v / 32, "vector " + k + ", lane " + i + ", " + where);
                }
            }
        }
    }

    /**
     * Activations of +-127 for the extremes tests, prepared for m: all +127 in round 0, all -127 in round 1 (but the
     * first, which keeps Q8_K's scale at -1, so q = -x), at random after.
     */
    private Activations extremeActivations(Matrix m, int round) {
        int cols = m.cols();
        float[] x = new float[cols];
        for (int j = 0; j < cols; j++) {
            x[j] = j == 0 || round == 0 ? 127f : round == 1 ? -127f : rnd.nextBoolean() ? 127f : -127f; // d_x = -1, q = -x
        }
        Activations a = new Activations(cols);
        a.input(x, cols);
        a.prepareFor(m);
        return a;
    }

    /** A Q4_K or Q5_K super-block's header for the extremes tests: d 1, dmin 0, every 6-bit scale and min 63. */
    private static void extremeHeader(MemorySegment data, long b) {
        data.set(Matrix.SHORT, b, Float.floatToFloat16(1.0f));
        data.set(Matrix.SHORT, b + 2, (short) 0);
        for (int j = 0; j < 12; j++) {
            data.set(ValueLayout.JAVA_BYTE, b + 4 + j, (byte) 0xFF);
        }
    }

    /**
     * Q4_K at the extremes of the copy's int lanes: nibbles 0 or 15 and activations of +-127, chosen at random (so the
     * lanes' lower halves, x * a_y, reach their largest sums of either sign), every scale 63, d 1, dmin 0, one
     * super-block per row. The copy's kernel and the file's form exact ints in their lanes (each below 2^24, exact in
     * float) and add at most 16 lanes in float: within 15 roundings of the exact sum (|sum| &lt; 2^25, so at most 15 ·
     * 1 = 15), where one unit wrong in any dot product moves the result by 63.
     */
    @Test
    void q4_KAtTheExtremesSumsExactly() {
        int rows = 8, cols = 256;
        for (int round = 0; round < 6; round++) {
            MemorySegment data = arena.allocate((long) rows * 144, 64);
            for (int r = 0; r < rows; r++) {
                long b = r * 144L;
                extremeHeader(data, b);
                for (int l = 0; l < 128; l++) {
                    // row 0 all 15, row 1 all 0, the rest at random by nibble
                    int lo = r == 0 || r > 1 && rnd.nextBoolean() ? 15 : 0;
                    int hi = r == 0 || r > 1 && rnd.nextBoolean() ? 15 : 0;
                    data.set(ValueLayout.JAVA_BYTE, b + 16 + l, (byte) (lo | hi << 4));
                }
            }
            Matrix.Q4_K m = new Matrix.Q4_K(data, rows, cols);
            Activations a = extremeActivations(m, round);
            KQuantPacked.Q4K p = KQuantPacked.Q4K.of(m);
            float[] file = new float[rows], copy = new float[rows];
            KQuantPacked.q4_K(file, a, m, 0, rows);
            KQuantPacked.q4_K(copy, a, p, 0, rows);
            assertExactWithin(m, a, file, copy, 15.0, "round " + round);
        }
    }


    /**
     * Q3_K at the extremes: 3-bit values -4 or 3 (2-bit part and hmask bit alike), every signed scale -32 or 31 (6-bit
     * 0 or 63) at random, d 1, activations of +-127, and in rounds 4 and 5 some of -128 (written into the prepared Q8_K
     * values: the kernels must not rely on Q8_K's ±127). One super-block per row: its integer sum is below 16 · 32 ·
     * 16 · 4 · 128 = 2^22 in magnitude, and every partial float sum is an integer below 2^24, so the scalar reference,
     * the vector kernel and (below 512 bits) the copy's kernel must give the exact result; one wrong value, scale or hmask
     * bit moves it by 127 or more.
     */
    @Test
    void q3_KAtTheExtremesSumsExactly() {
        int rows = 8, cols = 256;
        for (int round = 0; round < 6; round++) {
            MemorySegment data = arena.allocate((long) rows * 110, 64);
            for (int r = 0; r < rows; r++) {
                long b = r * 110L;
                // row 0 all 3, row 1 all -4, the rest at random by value
                for (int l = 0; l < 32; l++) {
                    int mask = 0;
                    for (int k = 0; k < 8; k++) {
                        boolean top = r == 0 || r > 1 && rnd.nextBoolean();
                        mask |= (top ? 1 : 0) << k;
                        long at = b + 32 + 32L * (k / 4) + l;
                        data.set(ValueLayout.JAVA_BYTE, at, (byte) (data.get(ValueLayout.JAVA_BYTE, at) | (top ? 3 : 0) << (2 * (k % 4))));
                    }
                    data.set(ValueLayout.JAVA_BYTE, b + l, (byte) mask);
                }
                for (int j = 0; j < 12; j++) { // rows 0 and 1 every scale 31 (0x3F), row 2 every -32, the rest at random
                    data.set(ValueLayout.JAVA_BYTE, b + 96 + j, (byte) (r < 2 ? 0xFF : r == 2 ? 0 : rnd.nextBoolean() ? 0xFF : 0));
                }
                data.set(Matrix.SHORT, b + 108, Float.floatToFloat16(1.0f));
            }
            Matrix.Q3_K m = new Matrix.Q3_K(data, rows, cols);
            Activations a = extremeActivations(m, Math.min(round, 3));
            if (round >= 4) {
                for (int j = 1; j < cols; j += round == 4 ? 1 : 3) {
                    a.q8K[j] = (short) (a.q8K[j] < 0 ? -128 : a.q8K[j]);
                }
                for (int g = 0; g < cols / 16; g++) { // (the copy's kernel reads Q8_K's sums of 16 and the values in pairs: made again)
                    int sum = 0;
                    for (int k = 0; k < 16; k++) {
                        sum += a.q8K[16 * g + k];
                    }
                    a.q8KSums[g] = sum;
                }
                for (int b = 0; b < cols / 256; b++) {
                    KQuantPacked.pairs6(a.q8K, 256 * b, a.q8KPairs6, a.q8KPairs6At + 128 * b);
                }
            }
            float[] vector = new float[rows], scalar = new float[rows];
            new VectorKernels().matmul(vector, a, m, 0, rows);
            new ScalarKernels().matmul(scalar, a, m, 0, rows);
            assertExactWithin(m, a, vector, scalar, 0.0, "round " + round);
            if (KQuantPacked.Q3K_COPY) { // the copy's kernel: lower halves at most 8 · 7 · 128, upper 8 · 2 · 7 · 128 per chain
                float[] copy = new float[rows];
                new VectorKernels().matmul(copy, a, KQuantPacked.Q3K.of(m), 0, rows);
                assertExactWithin(m, a, scalar, copy, 0.0, "round " + round);
            }
        }
    }

    /**
     * Q2_K at the extremes: 2-bit values 0 or 3, every 4-bit scale and min 0 or 15 (row 0: values 3, scales 15, mins 0;
     * row 1: values 0, mins 15; row 2: values 3, scales and mins 15; the rest at random), d 1, dmin 1, activations of
     * +-127, and in rounds 4 and 5 some of -128 (written into the prepared Q8_K values, their sums of 16 made again).
     * One super-block per row: both integer sums are below 2^21 in magnitude and every partial float sum is an integer
     * below 2^24, so the scalar reference, the vector kernel and the copy's kernel must give the exact result; one wrong
     * value, scale or min moves it by 127 or more.
     */
    @Test
    void q2_KAtTheExtremesSumsExactly() {
        int rows = 8, cols = 256;
        for (int round = 0; round < 6; round++) {
            MemorySegment data = arena.allocate((long) rows * 84, 64);
            for (int r = 0; r < rows; r++) {
                long b = r * 84L;
                for (int l = 0; l < 64; l++) {
                    int q = 0;
                    for (int k = 0; k < 4; k++) {
                        q |= (r == 0 || r == 2 || r > 2 && rnd.nextBoolean() ? 3 : 0) << (2 * k);
                    }
                    data.set(ValueLayout.JAVA_BYTE, b + 16 + l, (byte) q);
                }
                for (int j = 0; j < 16; j++) {
                    int sc = r == 0 || r == 2 || r > 2 && rnd.nextBoolean() ? 15 : 0;
                    int mn = r == 1 || r == 2 || r > 2 && rnd.nextBoolean() ? 15 : 0;
                    data.set(ValueLayout.JAVA_BYTE, b + j, (byte) (sc | mn << 4));
                }
                data.set(Matrix.SHORT, b + 80, Float.floatToFloat16(1.0f));
                data.set(Matrix.SHORT, b + 82, Float.floatToFloat16(1.0f));
            }
            Matrix.Q2_K m = new Matrix.Q2_K(data, rows, cols);
            Activations a = extremeActivations(m, Math.min(round, 3));
            if (round >= 4) {
                for (int j = 1; j < cols; j += round == 4 ? 1 : 3) {
                    a.q8K[j] = (short) (a.q8K[j] < 0 ? -128 : a.q8K[j]);
                }
                for (int g = 0; g < cols / 16; g++) {
                    int sum = 0;
                    for (int k = 0; k < 16; k++) {
                        sum += a.q8K[16 * g + k];
                    }
                    a.q8KSums[g] = sum;
                }
                for (int b = 0; b < cols / 256; b++) { // (the copy's kernel reads the values in pairs: made again too)
                    KQuantPacked.pairs6(a.q8K, 256 * b, a.q8KPairs6, a.q8KPairs6At + 128 * b);
                }
            }
            float[] vector = new float[rows], scalar = new float[rows], copy = new float[rows];
            new VectorKernels().matmul(vector, a, m, 0, rows);
            new ScalarKernels().matmul(scalar, a, m, 0, rows);
            new VectorKernels().matmul(copy, a, KQuantPacked.Q2K.of(m), 0, rows);
            assertExactWithin(m, a, vector, scalar, 0.0, "round " + round);
            assertExactWithin(m, a, scalar, copy, 0.0, "round " + round);
        }
    }

    /**
     * IQ4_NL and IQ4_XS at the extremes: every nibble 0 or 15 (levels -127 and 113), activations of +-127 and, in rounds 4
     * and 5, some -128 written into the prepared values (the kernels must not rely on Q8's ±127), so two products
     * added in a short lane reach 2 · 127 · 128 = 32512; IQ4_XS's eight scales -32 or 31 (6-bit 0 or 63) at random, d
     * 1 (the activations' d is ±1 too). Row 0 all 15, row 1 all 0, the rest at random. IQ4_NL: eight blocks, each sum
     * below 2^23 and their float sums exact, so the scalar reference and the vector kernel give the exact integer.
     * IQ4_XS: one super-block per row, its sum up to 256 · 127 · 128 · 32 &lt; 2^28, more than a float holds: the int
     * sums are exact and become floats once per lane (the scalar reference: once), so within 4 ulps of the exact integer
     * (32 at 2^27), where one wrong level, nibble or scale moves it by 12 · 127 · 32 or more.
     */
    @ParameterizedTest
    @ValueSource(strings = {"IQ4_NL", "IQ4_XS"})
    void iq4AtTheExtremesSumsExactly(String type) {
        int rows = 8, cols = 256;
        boolean xs = type.equals("IQ4_XS");
        for (int round = 0; round < 6; round++) {
            Matrix m = randomMatrix(type, rows, cols, 0);
            MemorySegment data = ((Matrix.Ggml) m).data();
            for (int r = 0; r < rows; r++) {
                long rb = r * GgmlQuantize.rowBytes(type, cols);
                for (int blk = 0; blk < (xs ? 1 : 8); blk++) {
                    long b = rb + (long) blk * (xs ? 136 : 18);
                    data.set(Matrix.SHORT, b, Float.floatToFloat16(1.0f));
                    long qs = b + (xs ? 8 : 2);
                    for (int j = 0; j < (xs ? 128 : 16); j++) {
                        int lo = r == 0 || r > 1 && rnd.nextBoolean() ? 15 : 0, hi = r == 0 || r > 1 && rnd.nextBoolean() ? 15 : 0;
                        data.set(ValueLayout.JAVA_BYTE, qs + j, (byte) (lo | hi << 4));
                    }
                    if (xs) { // row 0 every scale 31, row 1 every -32, the rest at random
                        int h = 0;
                        for (int sub = 0; sub < 8; sub++) {
                            int ls = r == 0 ? 63 : r == 1 ? 0 : rnd.nextBoolean() ? 63 : 0;
                            h |= (ls >> 4) << (2 * sub);
                            long at = b + 4 + sub / 2;
                            data.set(ValueLayout.JAVA_BYTE, at, (byte) (sub % 2 == 0 ? ls & 0xF : data.get(ValueLayout.JAVA_BYTE, at) & 0xF | (ls & 0xF) << 4));
                        }
                        data.set(Matrix.SHORT, b + 2, (short) h);
                    }
                }
            }
            Activations a = extremeActivations(m, Math.min(round, 3));
            short[] q = xs ? a.q8K : a.q80;
            float[] d = xs ? a.q8KScales : a.q80Scales;
            if (round >= 4) {
                for (int j = 1; j < cols; j += round == 4 ? 1 : 3) {
                    q[j] = q[j] < 0 ? -128 : q[j];
                }
            }
            float[] vector = new float[rows], scalar = new float[rows];
            new VectorKernels().matmul(vector, a, m, 0, rows);
            new ScalarKernels().matmul(scalar, a, m, 0, rows);
            for (int r = 0; r < rows; r++) {
                double[] w = exactRow(m, r)[0];
                double exact = 0;
                for (int j = 0; j < cols; j++) {
                    exact += w[j] * q[j] * d[j / (xs ? 256 : 32)];
                }
                String what = type + " row " + r + ", round " + round + ", " + where;
                double tolerance = xs ? 4 * Math.ulp((float) exact) : 0.0;
                assertEquals(exact, vector[r], tolerance, "vector, " + what);
                assertEquals(exact, scalar[r], tolerance, "scalar, " + what);
            }
        }
    }

    /**
     * The Q2_K, Q3_K, Q5_K, IQ4_NL and IQ4_XS vector kernels (on the file's layout, and on the Q2_K and Q3_K copies) against the scalar reference on fresh random matrices: the
     * same exact integers per super-block, the float sums in another order, so within a few roundings of the row's
     * magnitude (the bound of {@link #checkRows} with the scalar result in place of the float64 one, twice: both round).
     * Widths of real models' rows (Llama-3.2-1B's 2048 and 8192) and a row range inside.
     */
    @ParameterizedTest
    @CsvSource({"Q2_K, 256", "Q2_K, 768", "Q2_K, 2048", "Q2_K, 8192", "Q3_K, 256", "Q3_K, 768", "Q3_K, 2048", "Q3_K, 8192", "Q5_K, 256", "Q5_K, 768", "Q5_K, 2048",
            "IQ4_NL, 32", "IQ4_NL, 96", "IQ4_NL, 896", "IQ4_NL, 2048", "IQ4_NL, 8192", "IQ4_XS, 256", "IQ4_XS, 768", "IQ4_XS, 2048",
            "IQ4_XS, 8192"})
    void kQuantVectorKernelMatchesTheScalarReference(String type, int cols) {
        int rows = 13;
        Matrix m = randomMatrix(type, rows, cols, 3);
        Activations a = new Activations(cols);
        a.input(randomInput(cols), cols);
        a.prepareFor(m);
        double[] xe = exactInput(a, m);
        float[] vector = new float[rows], scalar = new float[rows];
        new VectorKernels().matmul(vector, a, m, 1, rows - 1);
        new ScalarKernels().matmul(scalar, a, m, 1, rows - 1);
        assertEquals(0.0f, vector[0], "row 0 is outside the range, " + where);
        assertEquals(0.0f, vector[rows - 1], "the last row is outside the range, " + where);
        // the Q2_K and Q3_K copies' kernels too (Q3_K: at 128 and 256 bits, KQuantPacked.Q3K_COPY)
        MatrixForm copy = switch (m) {
            case Matrix.Q2_K q -> KQuantPacked.Q2K.of(q);
            case Matrix.Q3_K q when KQuantPacked.Q3K_COPY -> KQuantPacked.Q3K.of(q);
            default -> null;
        };
        float[] copied = new float[rows];
        if (copy != null) {
            new VectorKernels().matmul(copied, a, copy, 1, rows - 1);
            assertEquals(0.0f, copied[0], "copy: row 0 is outside the range, " + where);
            assertEquals(0.0f, copied[rows - 1], "copy: the last row is outside the range, " + where);
        }
        for (int r = 1; r < rows - 1; r++) {
            double[] w = exactRow(m, r)[1];
            double s = 0;
            for (int j = 0; j < cols; j++) {
                s += w[j] * Math.abs(xe[j]);
            }
            double bound = 4 * (cols / blockValues(type) + 8) * U * s;
            assertTrue(Math.abs(vector[r] - scalar[r]) <= bound,
                    type + " row " + r + ": vector " + vector[r] + " vs scalar " + scalar[r] + " > bound " + bound + ", " + where);
            if (copy != null) {
                assertTrue(Math.abs(copied[r] - scalar[r]) <= bound,
                        type + " row " + r + ": copy " + copied[r] + " vs scalar " + scalar[r] + " > bound " + bound + ", " + where);
            }
        }
    }

    /**
     * Q5_K at the extremes of the vector kernel's short lanes: 5-bit values 0 or 31 (nibble and high bit alike) and
     * activations of +-127, chosen at random, every scale 63, d 1, dmin 0, one super-block per row. At 128 bits a short
     * lane adds four products and an int lane's two halves eight (8 · 31 · 127 = 31496, just under 2^15): any overflow
     * there, or a high bit read from the wrong bit of qh, moves a result by thousands. The copy's kernel adds four
     * pairs' products in an int lane's upper half (at most 4 · 2 · 31 · 128 = 31744; eight would overflow it). The
     * scalar reference, the vector kernel and the copy's kernel are within 15 roundings of the exact integer sum.
     */
    @Test
    void q5_KAtTheExtremesSumsExactly() {
        int rows = 8, cols = 256;
        for (int round = 0; round < 6; round++) {
            MemorySegment data = arena.allocate((long) rows * 176, 64);
            for (int r = 0; r < rows; r++) {
                long b = r * 176L;
                extremeHeader(data, b);
                int[] qh = new int[32];
                for (int g = 0; g < 4; g++) {
                    for (int l = 0; l < 32; l++) {
                        // row 0 all 31, row 1 all 0, the rest at random by value
                        boolean lo = r % 8 == 0 || r % 8 > 1 && rnd.nextBoolean(), hi = r % 8 == 0 || r % 8 > 1 && rnd.nextBoolean();
                        data.set(ValueLayout.JAVA_BYTE, b + 48 + 32L * g + l, (byte) ((lo ? 15 : 0) | (hi ? 15 : 0) << 4));
                        qh[l] |= (lo ? 1 : 0) << (2 * g) | (hi ? 1 : 0) << (2 * g + 1);
                    }
                }
                for (int l = 0; l < 32; l++) {
                    data.set(ValueLayout.JAVA_BYTE, b + 16 + l, (byte) qh[l]);
                }
            }
            Matrix.Q5_K m = new Matrix.Q5_K(data, rows, cols);
            Activations a = extremeActivations(m, round);
            float[] vector = new float[rows], scalar = new float[rows], copy = new float[rows];
            new VectorKernels().matmul(vector, a, m, 0, rows);
            new ScalarKernels().matmul(scalar, a, m, 0, rows);
            KQuantPacked.q5_K(copy, a, KQuantPacked.Q5K.of(m), 0, rows);
            assertExactWithin(m, a, vector, scalar, 15.0, "round " + round);
            assertExactWithin(m, a, vector, copy, 15.0, "the Q5_K copy, round " + round);
        }
    }

    /**
     * The Q5_1 copy (PackedQ5_1) keeps every 5-bit value where the kernel reads it (pair t of int t / 3, or int 5 for t =
     * 15, at bit offset 5 · (t mod 3): value t + 16 in the lower half, value t in the upper), each block's d and m as
     * floats, padding rows zero, the values 64-byte aligned. Read here from the file's layout value by value ({@code
     * q5_1Value}).
     */
    @Test
    void q5_1RepackKeepsEveryField() {
        int rows = 21, cols = 96, blocks = cols / 32;
        Matrix.Q5_1 m = (Matrix.Q5_1) randomMatrix("Q5_1", rows, cols, 3);
        try (Parallel pool = new Parallel(2)) {
            PackedQ5_1 p = packedAsPrepared(m, arena, pool);
            int lanes = PackedQ5_1.ROWS, groups = (rows + lanes - 1) / lanes;
            assertEquals(0, p.values().address() % 64, "values aligned, " + where);
            for (int r = 0; r < groups * lanes; r++) {
                for (int blk = 0; blk < blocks; blk++) {
                    long tile = ((long) (r / lanes) * blocks + blk) * lanes;
                    int at = (int) tile + r % lanes;
                    String what = "row " + r + ", block " + blk + ", " + where;
                    long b = r < rows ? ((long) r * blocks + blk) * Matrix.Q5_1.BLOCK_BYTES : -1;
                    assertEquals(r < rows ? half(m.data(), b) : 0f, p.scales()[at], "d, " + what);
                    assertEquals(r < rows ? half(m.data(), b + Matrix.Q5_1.M) : 0f, p.mins()[at], "m, " + what);
                    for (int t = 0; t < 16; t++) {
                        int i = t < 15 ? t / 3 : 5, f = t < 15 ? t % 3 : 0;
                        int v = p.values().get(LE_INT, (tile * PackedQ5_1.INTS + (long) i * lanes + r % lanes) * Integer.BYTES);
                        int lo = (v >>> (5 * f)) & 0x1F, hi = (v >>> (16 + 5 * f)) & 0x1F;
                        int wantLo = r < rows ? q5Of(m, b, t + 16) : 0, wantHi = r < rows ? q5Of(m, b, t) : 0;
                        assertEquals(wantLo, lo, "value " + (t + 16) + ", " + what);
                        assertEquals(wantHi, hi, "value " + t + ", " + what);
                    }
                    if (r < rows) { // the bits no pair uses are 0 (int 5 holds one pair; bits 15 and 31 of every int)
                        for (int i = 0; i < PackedQ5_1.INTS; i++) {
                            int v = p.values().get(LE_INT, (tile * PackedQ5_1.INTS + (long) i * lanes + r % lanes) * Integer.BYTES);
                            assertEquals(0, v & (i < 5 ? 0x80008000 : 0xFFE0FFE0), "unused bits of int " + i + ", " + what);
                        }
                    }
                }
            }
        }
    }

    /** The 5-bit value k (0..31) of the Q5_1 block at byte b, from {@code q5_1Value}'s d·q with d read back. */
    private static int q5Of(Matrix.Q5_1 m, long b, int k) {
        int qh = m.data().get(LE_INT, b + Matrix.Q5_1.QH);
        int byteAt = u8(m.data(), b + Matrix.Q5_1.QS + k % 16);
        return (k < 16 ? byteAt & 0xF : byteAt >> 4) | ((qh >>> k) & 1) << 4;
    }

    /**
     * Q5_1 at the extremes: 5-bit values 0 or 31 (row 0 all 31, row 1 all 0, the others at random by value), d 1, and
     * offsets m of 0, ±64 and the largest F16 magnitudes (-65504, 65504), against activations of ±127 (d_x = 1: the
     * Q8_1 block sums are the integer sums of the values, rounded to F16 above 2048). With |m| &lt;= 64 every partial
     * sum is an integer below 2^24, so the scalar reference and the vector kernel must give the exact result: a fifth
     * bit read from the wrong bit of qh, a nibble from the wrong half, or the offsets' part misplaced moves it by at
     * least 127. With |m| = 65504 they are within the float bound of the exact value (the offsets' sign and scale).
     */
    @Test
    void q5_1AtTheExtremesSumsExactly() {
        int rows = 21, cols = 512, blocks = cols / 32; // (21: a whole group of the copy's rows and a partial one, at every width)
        float[] offsets = new float[rows];
        for (int r = 0; r < rows; r++) {
            offsets[r] = new float[]{0f, -64f, 64f, -65504f, 65504f, -64f, 0f, 64f}[r % 8];
        }
        for (int round = 0; round < 6; round++) {
            MemorySegment data = arena.allocate((long) rows * blocks * 24, 64);
            for (int r = 0; r < rows; r++) {
                for (int blk = 0; blk < blocks; blk++) {
                    long b = ((long) r * blocks + blk) * 24;
                    data.set(Matrix.SHORT, b, Float.floatToFloat16(1.0f));
                    data.set(Matrix.SHORT, b + 2, Float.floatToFloat16(offsets[r]));
                    int qh = 0;
                    for (int k = 0; k < 16; k++) {
                        boolean lo = r == 0 || r > 1 && rnd.nextBoolean(), hi = r == 0 || r > 1 && rnd.nextBoolean();
                        data.set(ValueLayout.JAVA_BYTE, b + 8 + k, (byte) ((lo ? 15 : 0) | (hi ? 15 : 0) << 4));
                        qh |= (lo ? 1 : 0) << k | (hi ? 1 : 0) << (k + 16);
                    }
                    data.set(LE_INT, b + 4, qh);
                }
            }
            Matrix.Q5_1 m = new Matrix.Q5_1(data, rows, cols);
            Activations a = extremeActivations(m, round);
            float[] vector = new float[rows], scalar = new float[rows], copy = new float[rows];
            new VectorKernels().matmul(vector, a, m, 0, rows);
            new ScalarKernels().matmul(scalar, a, m, 0, rows);
            try (Parallel pool = new Parallel(2)) {
                new VectorKernels().matmul(copy, a, packedAsPrepared(m, arena, pool), 0, rows);
            }
            for (int r = 0; r < rows; r++) {
                double exact = 0, mag = 0;
                for (int blk = 0; blk < blocks; blk++) {
                    long b = ((long) r * blocks + blk) * 24;
                    long sumi = 0, sum = 0;
                    for (int k = 0; k < 32; k++) {
                        int byteAt = u8(data, b + 8 + k % 16);
                        int q = (k < 16 ? byteAt & 0xF : byteAt >> 4) | ((data.get(LE_INT, b + 4) >>> k) & 1) << 4;
                        sumi += (long) q * a.q80[32 * blk + k];
                        sum += a.q80[32 * blk + k];
                    }
                    double s = Float.float16ToFloat(Float.floatToFloat16((float) sum)); // d_x = 1
                    exact += sumi + offsets[r] * s;
                    mag += Math.abs(sumi) + Math.abs(offsets[r] * s);
                }
                String row = "row " + r + " (m " + offsets[r] + "), round " + round + ", " + where;
                assertEquals(1.0f, a.q80Scales[0], row);
                double tolerance = Math.abs(offsets[r]) <= 64 ? 0 : 2 * (blocks + 8) * U * mag;
                assertEquals(exact, vector[r], tolerance, "vector, " + row);
                assertEquals(exact, scalar[r], tolerance, "scalar, " + row);
                assertEquals(exact, copy[r], tolerance, "vector on the copy, " + row);
            }
        }
    }

    /**
     * The Q5_1 vector kernel against the scalar reference on fresh random matrices (random bytes, random finite F16 d and
     * m, subnormals among them), at the widths of real models' Q5_1 rows (Qwen2.5-0.5B's 896 and 4864) and at one
     * block: the same exact integers per block, the float sums in another order (the offsets' part apart, as
     * llama.cpp's AVX2 code), so within a few roundings of the row's magnitude (twice {@link #checkRows}' bound, with
     * the scalar result in place of the float64 one: both round). A row range inside the matrix.
     */
    @ParameterizedTest
    @ValueSource(ints = {32, 96, 896, 4864})
    void q5_1VectorKernelMatchesTheScalarReference(int cols) {
        int rows = 13;
        Matrix.Q5_1 m = (Matrix.Q5_1) randomMatrix("Q5_1", rows, cols, 5);
        Activations a = new Activations(cols);
        a.input(randomInput(cols), cols);
        a.prepareFor(m);
        float[] vector = new float[rows], scalar = new float[rows], copy = new float[rows];
        new VectorKernels().matmul(vector, a, m, 1, rows - 1);
        new ScalarKernels().matmul(scalar, a, m, 1, rows - 1);
        try (Parallel pool = new Parallel(2)) {
            new VectorKernels().matmul(copy, a, packedAsPrepared(m, arena, pool), 1, rows - 1);
        }
        for (float[] out : new float[][]{vector, copy}) {
            assertEquals(0.0f, out[0], "row 0 is outside the range, " + where);
            assertEquals(0.0f, out[rows - 1], "the last row is outside the range, " + where);
        }
        for (int r = 1; r < rows - 1; r++) {
            double bound = 4 * (cols / 32 + 8) * U * q5_1Exact(m, a, r)[1];
            assertTrue(Math.abs(vector[r] - scalar[r]) <= bound,
                    "row " + r + ": vector " + vector[r] + " vs scalar " + scalar[r] + " > bound " + bound + ", " + where);
            assertTrue(Math.abs(copy[r] - scalar[r]) <= bound,
                    "row " + r + ": vector on the copy " + copy[r] + " vs scalar " + scalar[r] + " > bound " + bound + ", " + where);
        }
    }

    /**
     * Each row of {@code file} and {@code copy} (one super-block per row, activations with d_x = ±1) within {@code
     * tolerance} of the exact integer result.
     */
    private void assertExactWithin(Matrix m, Activations a, float[] file, float[] copy, double tolerance, String what) {
        for (int r = 0; r < file.length; r++) {
            double[] w = exactRow(m, r)[0];
            long exact = 0;
            for (int j = 0; j < m.cols(); j++) {
                exact += (long) w[j] * a.q8K[j];
            }
            exact *= (long) a.q8KScales[0];
            String row = "row " + r + ", " + what + ", " + where;
            assertEquals((double) exact, file[r], tolerance, "the file's layout, " + row);
            assertEquals((double) exact, copy[r], tolerance, "the copy, " + row);
        }
    }

    /** The Q6_K repack (KQuantPacked.Q6K) keeps every 6-bit value (where {@code Q6_PAIR_VALUE} says the kernel finds it), scale and d. */
    @Test
    void q6_KRepackKeepsEveryField() {
        Matrix.Q6_K m = (Matrix.Q6_K) randomMatrix("Q6_K", 5, 768, 3);
        KQuantPacked.Q6K p = KQuantPacked.Q6K.of(m);
        assertEquals(0, p.qs().address() % 64, "values aligned, " + where);
        int lanes = KQuantPacked.LANES;
        for (int blk = 0; blk < 5 * 3; blk++) {
            long b = blk * 210L, mt = blk * (long) KQuantPacked.Q6K.META, q = blk * (long) KQuantPacked.Q6K.QS;
            assertEquals(half(m.data(), b + 208), half(p.meta(), mt), "d of super-block " + blk + ", " + where);
            for (int j = 0; j < 16; j++) {
                assertEquals(m.data().get(ValueLayout.JAVA_BYTE, b + 192 + j), p.meta().get(ValueLayout.JAVA_BYTE, mt + 2 + j), "scale " + j + ", " + where);
            }
            byte[] block = m.data().asSlice(b, 210).toArray(ValueLayout.JAVA_BYTE);
            for (int g = 0; g < 16 / lanes; g++) {
                for (int k = 0; k < 8; k++) {
                    for (int i = 0; i < lanes; i++) {
                        for (int h = 0; h < 2; h++) {
                            int v = KQuantPacked.Q6_PAIR_VALUE[2 * ((g * 8 + k) * lanes + i) + h];
                            // lane i's three ints of group g: A, B, C (the class comment of Q6_PAIR_VALUE)
                            long lane = q + 4L * (3 * lanes * g + i);
                            int wa = p.qs().get(LE_INT, lane) >>> 16 * h;
                            int wb = p.qs().get(LE_INT, lane + 4L * lanes) >>> 16 * h;
                            int wc = p.qs().get(LE_INT, lane + 8L * lanes) >>> 16 * h;
                            int value = switch (k) {
                                case 0 -> wa & 63;
                                case 1 -> wa >>> 6 & 63;
                                case 2 -> wb & 63;
                                case 3 -> wb >>> 6 & 63;
                                case 4 -> wc & 63;
                                case 5 -> wc >>> 6 & 63;
                                case 6 -> (wa >>> 12 & 15) | (wc >>> 12 & 3) << 4;
                                default -> (wb >>> 12 & 15) | (wc >>> 14 & 3) << 4;
                            };
                            assertEquals(q6(block, v), value, "value " + v + ", " + where);
                        }
                    }
                }
            }
        }
    }

    /** Value v (0..255) of a Q6_K super-block as stored (q6 + 32), read as {@link #exactRow} reads it. */
    private static int q6(byte[] block, int v) {
        int h = v / 128, i = v % 128 / 32, l = v % 32;
        int lo = block[64 * h + l + 32 * (i % 2)] & 0xFF;
        int nib = i < 2 ? lo & 0xF : lo >> 4;
        return nib | ((block[128 + 32 * h + l] & 0xFF) >> (2 * i) & 3) << 4;
    }

    /** The Q6_K copy's order holds each value once, and a lane of group g only values of sub-block g · LANES + i. */
    @Test
    void q6_KCopysOrderIsAPermutationWithOneSubBlockPerLane() {
        int lanes = KQuantPacked.LANES;
        boolean[] seen = new boolean[256];
        for (int g = 0; g < 16 / lanes; g++) {
            for (int k = 0; k < 8; k++) {
                for (int i = 0; i < lanes; i++) {
                    for (int h = 0; h < 2; h++) {
                        int v = KQuantPacked.Q6_PAIR_VALUE[2 * ((g * 8 + k) * lanes + i) + h];
                        assertFalse(seen[v], "value " + v + " twice, " + where);
                        seen[v] = true;
                        assertEquals(g * lanes + i, v / 16, "group " + g + ", vector " + k + ", lane " + i + ", " + where);
                    }
                }
            }
        }
    }

    /**
     * Q6_K at the extremes of the copy's int lanes: values 0 or 63 (q6 - 32 = -32 or 31) and activations of +-127 at
     * random, every scale -128 or 127, d 1, one super-block per row. Both kernels form exact ints in their lanes (each
     * below 2^24) and add them in float, at most 15 times: the partial sums stay below 2^27 (16 sub-blocks of at most
     * 128 · 16 · 32 · 127), so each rounding is at most 8, in all at most 120, where one unit wrong in a dot product
     * moves the result by 127 or more.
     */
    @Test
    void q6_KAtTheExtremesSumsExactly() {
        int rows = 8, cols = 256;
        for (int round = 0; round < 6; round++) {
            MemorySegment data = arena.allocate((long) rows * 210, 64);
            for (int r = 0; r < rows; r++) {
                long b = r * 210L;
                for (int l = 0; l < 192; l++) { // ql and qh: row 0 all ones (63), row 1 all zeros (0), the rest at random
                    int bits = r == 0 ? 0xFF : r == 1 ? 0 : rnd.nextInt(256);
                    data.set(ValueLayout.JAVA_BYTE, b + l, (byte) bits);
                }
                for (int j = 0; j < 16; j++) {
                    data.set(ValueLayout.JAVA_BYTE, b + 192 + j, (byte) (rnd.nextBoolean() ? 127 : -128));
                }
                data.set(Matrix.SHORT, b + 208, Float.floatToFloat16(1.0f));
            }
            Matrix.Q6_K m = new Matrix.Q6_K(data, rows, cols);
            float[] x = new float[cols];
            for (int j = 0; j < cols; j++) {
                x[j] = j == 0 || round == 0 ? 127f : round == 1 ? -127f : rnd.nextBoolean() ? 127f : -127f;
            }
            Activations a = new Activations(cols);
            a.input(x, cols);
            a.prepareFor(m);
            KQuantPacked.Q6K p = KQuantPacked.Q6K.of(m);
            float[] file = new float[rows], copy = new float[rows];
            new VectorKernels().matmul(file, a, m, 0, rows);
            KQuantPacked.q6_K(copy, a, p, 0, rows);
            assertExactWithin(m, a, file, copy, 120.0, "round " + round);
        }
    }



    private void checkRows(String kernel, java.util.function.Consumer<float[]> run, Matrix m, Activations a, int chain,
                           int rows, int cols, int r0, int r1) {
        String type = m.typeName();
        double[] xe = exactInput(a, m);
        float[] out = new float[rows];
        java.util.Arrays.fill(out, Float.NaN);
        run.accept(out);
        for (int r = 0; r < rows; r++) {
            String what = type + " " + rows + "x" + cols + " row " + r + " [" + r0 + ", " + r1 + "), " + kernel + ", " + where;
            if (r < r0 || r >= r1) {
                assertTrue(Float.isNaN(out[r]), what + ": outside the range, must not be written");
                continue;
            }
            double[][] w = exactRow(m, r);
            double exact = 0, s = 0;
            for (int j = 0; j < cols; j++) {
                exact += w[0][j] * xe[j];
                s += w[1][j] * Math.abs(xe[j]);
            }
            if (m instanceof Matrix.Q5_1 q) { // the offsets times the activations' F16 block sums, not times their values
                double[] e = q5_1Exact(q, a, r);
                exact = e[0];
                s = e[1];
            }
            double bound = 2 * (chain + 8) * U * s;
            assertTrue(Math.abs(out[r] - exact) <= bound,
                    what + ": " + out[r] + " vs float64 " + exact + ", |diff| " + Math.abs(out[r] - exact) + " > bound " + bound);
        }
    }

    @Test
    void theBoundIsTightEnoughToSeeALayoutError() {
        // Reading the high nibble for the low (a plausible slip) changes a Q4_0 row by far more than the bound.
        Matrix.Q4_0 m = (Matrix.Q4_0) randomMatrix("Q4_0", 1, 4096, 0);
        float[] x = randomInput(4096);
        Activations a = new Activations(4096);
        a.input(x, 4096);
        a.prepareFor(m);
        double[] xe = exactInput(a, m);
        double[][] w = exactRow(m, 0);
        double right = 0, swapped = 0, s = 0;
        for (int j = 0; j < 4096; j++) {
            right += w[0][j] * xe[j];
            swapped += w[0][(j / 32) * 32 + (j % 32 + 16) % 32] * xe[j];
            s += w[1][j] * Math.abs(xe[j]);
        }
        double bound = 2 * (128 + 8) * U * s;
        assertTrue(Math.abs(right - swapped) > 10 * bound, "swap moves the row by " + Math.abs(right - swapped) / bound + " bounds, " + where);
    }

    @Test
    void anUnpreparedInputIsRefused() {
        Matrix m = randomMatrix("Q4_K", 2, 256, 0);
        Activations a = new Activations(256);
        a.input(randomInput(256), 256);
        a.prepareFor(randomMatrix("Q8_0", 2, 256, 0)); // prepares Q8_0, not Q8_K
        assertThrows(IllegalStateException.class, () -> new VectorKernels().matmul(new float[2], a, m, 0, 2));
        a.prepareFor(m);
        new VectorKernels().matmul(new float[2], a, m, 0, 2);
        a.input(randomInput(256), 256); // a new input forgets every prepared form
        assertThrows(IllegalStateException.class, () -> new ScalarKernels().matmul(new float[2], a, m, 0, 2));
        assertThrows(IllegalArgumentException.class, () -> a.prepareFor(randomMatrix("Q6_K", 2, 512, 0)));
    }

    // ------------------------------------------------------------------ layouts and dequantization

    @Test
    void dequantizeRowIsGgmlsArithmetic() {
        for (String type : TYPES) {
            int cols = 512;
            Matrix m = randomMatrix(type, 3, cols, 3);
            float[] row = new float[cols + 2];
            for (int r = 0; r < 3; r++) {
                m.dequantizeRow(r, row, 1);
                double[][] e = exactRow(m, r);
                for (int j = 0; j < cols; j++) {
                    // F16, BF16, Q8_0, Q4_0: one exact product; Q2_K: exact products, then one subtraction; Q3_K: two exact products (d sc has at most 17 bits, times q 20); Q4_K, Q5_K (one subtraction) and Q6_K (a product of 25 bits): one rounding
                    // (Q5_1: an exact product, then one sum)
                    double tol = m instanceof Matrix.Q2_K || m instanceof Matrix.Q4_K || m instanceof Matrix.Q5_K || m instanceof Matrix.Q6_K || m instanceof Matrix.Q5_1
                            ? Math.ulp(row[1 + j]) / 2 : 0;
                    assertTrue(Math.abs(row[1 + j] - e[0][j]) <= tol,
                            type + " row " + r + " value " + j + ": " + row[1 + j] + " vs " + e[0][j] + ", " + where);
                }
            }
        }
    }

    @Test
    void compactConstructorsCheckTheShape() {
        MemorySegment s = arena.allocate(34 * 4);
        new Matrix.Q8_0(s, 2, 64);
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q8_0(s, 2, 48)); // not whole blocks
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q8_0(s, 3, 64)); // segment too small
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q4_K(arena.allocate(144), 1, 128));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q6_K(arena.allocate(209), 1, 256));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q4_0(arena.allocate(18), 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.F16(arena.allocate(6), 2, 2));
        new Matrix.BF16(arena.allocate(8), 2, 2);
        new Matrix.Q4_K(arena.allocate(144), 1, 256);
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q5_K(arena.allocate(176), 1, 128));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q5_K(arena.allocate(175), 1, 256));
        new Matrix.Q5_K(arena.allocate(352), 2, 256);
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q5_1(arena.allocate(24), 1, 16));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q5_1(arena.allocate(47), 1, 64));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q5_1(arena.allocate(49), 2, 32));
        new Matrix.Q5_1(arena.allocate(48), 2, 32);
        new Matrix.Q6_K(arena.allocate(420), 2, 256);
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q3_K(arena.allocate(110), 1, 128));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q3_K(arena.allocate(219), 2, 256));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q3_K(arena.allocate(221), 1, 512));
        new Matrix.Q3_K(arena.allocate(220), 2, 256);
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q2_K(arena.allocate(84), 1, 128));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q2_K(arena.allocate(167), 2, 256));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.Q2_K(arena.allocate(169), 1, 512));
        new Matrix.Q2_K(arena.allocate(168), 2, 256);
        assertThrows(IllegalArgumentException.class, () -> new Matrix.IQ4_NL(arena.allocate(18), 1, 16));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.IQ4_NL(arena.allocate(35), 1, 64));
        new Matrix.IQ4_NL(arena.allocate(36), 2, 32);
        assertThrows(IllegalArgumentException.class, () -> new Matrix.IQ4_XS(arena.allocate(136), 1, 128));
        assertThrows(IllegalArgumentException.class, () -> new Matrix.IQ4_XS(arena.allocate(271), 2, 256));
        new Matrix.IQ4_XS(arena.allocate(272), 2, 256);
    }

    @Test
    void quantizersRoundTrip() {
        int cols = 512;
        float[] v = randomInput(3 * cols);
        for (String type : new String[]{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_1", "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}) {
            Matrix m = GgmlQuantize.quantize(type, v, 3, cols, arena);
            assertEquals(type.equals("F32") ? "F32" : type, m.typeName());
            float[] row = new float[cols];
            for (int r = 0; r < 3; r++) {
                m.dequantizeRow(r, row, 0);
                for (int j = 0; j < cols; j++) {
                    float x = v[r * cols + j];
                    double amax = 0; // of x's block
                    int bv = Math.max(blockValues(type), 32);
                    for (int k = j / bv * bv; k < j / bv * bv + bv; k++) {
                        amax = Math.max(amax, Math.abs(v[r * cols + k]));
                    }
                    double tol = switch (type) {
                        case "F32" -> 0;
                        case "F16" -> Math.abs(x) * 0x1p-11 + 0x1p-25; // half the spacing of halves (2^-10 relative, 2^-24 subnormal)
                        case "BF16" -> Math.ulp(x) * 0x1p15; // half the spacing of bfloat16s (2^-7 relative)
                        case "Q8_0" -> amax / 127 * 0.51 + amax * 1e-3; // half a step, plus the F16 scale's rounding
                        case "Q4_0" -> amax / 8 * 1.01 + amax * 2e-3; // a whole step: -max clamps from 16 to 15
                        // half a step of (max - min) / 31, plus the F16 roundings of d (times q up to 31) and of m
                        case "Q5_1" -> amax * 2 / 31 * 0.51 + amax * 4e-3;
                        // four levels over [min(x, 0), max]: a step of up to 2 amax / 3 (the fit, by absolute error, may
                        // clamp a value by most of one), plus the 4-bit scale's and min's roundings
                        case "Q2_K" -> amax * 2 / 3 + amax * 0.15;
                        case "Q4_K" -> amax * 2 / 15 * 0.51 + amax * 0.05; // half a step, plus the 6-bit scale and min roundings
                        case "Q5_K" -> amax * 2 / 31 * 0.51 + amax * 0.05;
                        // levels -4..3 of a sub-block's least-squares scale: values near its largest clamp, the
                        // scale fitted to all 16 (weights x^2), so up to a step and a half of max / 4, plus the 6-bit scale
                        case "Q3_K" -> amax / 4 * 1.5 + amax * 0.05;
                        // the widest gap between levels (113 - 89 = 24, 127 - 104 = 23) at a scale near amax / 113 to
                        // amax / 127, half of it, plus IQ4_XS's 6-bit scale (up to 1/64 of amax, times 113 / 127)
                        case "IQ4_NL", "IQ4_XS" -> amax * 24 / 113 * 0.51 + amax * 0.05;
                        default -> amax / 31 * 0.51 + amax * 0.05;
                    };
                    assertTrue(Math.abs(row[j] - x) <= tol, type + " value " + j + " of row " + r + ": " + x + " -> " + row[j] + ", " + where);
                }
            }
        }
    }

    /**
     * 256 rows of one Q2_K super-block each that reach the reference quantizer's branches: sub-blocks of varied scales;
     * an all-zero row (d = dmin = 0); constant sub-blocks, zero, positive and negative (the search's max == min exit:
     * scale 0, the min alone); all-positive rows (min clamped to 0, dmin 0); mostly negative ones; sub-blocks near
     * 1e-20 (weights |x| that underflow in the sums); a huge value that rounds the other sub-blocks' scales to 0 (which
     * keep their first levels); values on the grid of eighths (ties). Fixed (a seeded SplittableRandom):
     * {@link #q2_KQuantizerIsLlamaQuantizes} holds llama-quantize's bytes for them.
     */
    static float[] q2KQuantizerCases() {
        return quantizerCases(20261207L, (row, sub, i, g, scale) -> switch (row % 8) {
            case 1 -> row == 1 ? 0.0 : sub % 4 == 0 ? 0.0 : sub % 4 == 1 ? 0.25 : sub % 4 == 2 ? -0.25 : g * scale;
            case 2 -> sub == 3 && i == 5 ? 1000.0 : g * 0.01;
            case 3 -> sub % 2 == 0 ? g * 1e-20 : g * scale;
            case 4 -> Math.clamp(Math.round(g * 8) / 8.0, -1.0, 1.0);
            case 5 -> Math.abs(g) * scale + (sub % 2 == 0 ? scale : 0); // all positive
            case 6 -> g * scale - 2 * scale; // mostly negative
            default -> g * scale;
        });
    }

    /** A crafted value from its place (row, sub-block, index in it), a fresh Gaussian g and the sub-block's scale. */
    interface CaseValue {
        double at(int row, int sub, int i, double g, double scale);
    }

    /**
     * 256 rows of one super-block each for the quantizer tests: per sub-block of 16 a scale 2^-8..2^2, per value a
     * Gaussian, both drawn from {@code SplittableRandom(seed)} in that order, combined by {@code v}.
     */
    static float[] quantizerCases(long seed, CaseValue v) {
        float[] x = new float[256 * 256];
        SplittableRandom r = new SplittableRandom(seed);
        for (int row = 0; row < 256; row++) {
            for (int sub = 0; sub < 16; sub++) {
                double scale = Math.scalb(1.0, r.nextInt(-8, 3));
                for (int i = 0; i < 16; i++) {
                    x[256 * row + 16 * sub + i] = (float) v.at(row, sub, i, r.nextGaussian(), scale);
                }
            }
        }
        return x;
    }

    /** The SHA-256 (hex) of the 256 × 256 values x quantized to {@code type} by GgmlQuantize, rows one after another. */
    private String quantizedHash(String type, float[] x) throws Exception {
        Matrix m = GgmlQuantize.quantize(type, x, 256, 256, arena);
        byte[] bytes = ((Matrix.Ggml) m).data().toArray(ValueLayout.JAVA_BYTE);
        return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
    }

    /**
     * {@code GgmlQuantize.q2_K} gives llama-quantize's bytes: the SHA-256 of {@link #q2KQuantizerCases} quantized here
     * equals that of the Q2_K tensor llama-quantize Q2_K wrote from an F32 GGUF holding these values as a 256 × 256
     * matrix (llama.cpp at commit 80fb11a, ggml-base built without FMA contraction).
     */
    @Test
    void q2_KQuantizerIsLlamaQuantizes() throws Exception {
        assertEquals("b30a3f611afad99a8865ec2c1516343cfef3546394ce0ec705717dd3bf8e1930", quantizedHash("Q2_K", q2KQuantizerCases()));
    }

    /**
     * 256 rows of one Q3_K super-block each that reach the reference quantizer's branches: sub-blocks of varied scales,
     * an all-zero row (d = 0) and all-zero sub-blocks, sub-blocks below its 1e-15 threshold, a huge value that rounds
     * the other sub-blocks' scales to 0 (which keep their first levels), values on rounding ties, constant and ±constant
     * sub-blocks. Fixed (a seeded SplittableRandom): {@link #q3_KQuantizerIsLlamaQuantizes} holds llama-quantize's
     * bytes for them.
     */
    static float[] q3KQuantizerCases() {
        return quantizerCases(20261206L, (row, sub, i, g, scale) -> switch (row % 8) {
            case 1 -> row == 1 || sub == row / 8 % 16 ? 0.0 : g * scale;
            case 2 -> sub == 3 && i == 5 ? 1000.0 : g * 0.01;
            case 3 -> sub % 2 == 0 ? g * 1e-20 : g * scale;
            case 4 -> i == 0 ? 1.0 : Math.clamp(Math.round(g * 8) / 8.0, -1.0, 1.0); // max 1, odd eighths: ties at -4 x
            case 5 -> sub % 3 == 0 ? 0.5 : sub % 3 == 1 ? (i % 2 == 0 ? 0.75 : -0.75) : g * scale;
            case 6 -> g * scale - 2 * scale; // mostly negative
            default -> g * scale;
        });
    }

    /**
     * {@code GgmlQuantize.q3_K} gives llama-quantize's bytes: the SHA-256 of {@link #q3KQuantizerCases} quantized
     * here equals that of the Q3_K tensor llama-quantize Q3_K_S wrote from an F32 GGUF holding these values as a
     * 256 × 256 matrix (llama.cpp at commit 80fb11a, ggml-base built without FMA contraction). Seen failing: the first
     * levels rounded half up (Math.round) instead of ggml's nearest_int (the eighths of rows 4 mod 8 are ties), and a
     * sub-block whose stored scale is 0 given levels 4 instead of keeping its first ones. Not seen by these values:
     * x / dl computed as x * (1 / dl) in the second pass (no value lies where the two round apart).
     */
    @Test
    void q3_KQuantizerIsLlamaQuantizes() throws Exception {
        assertEquals("777fd59f1b859bb4858d94a4307e816cdfd46030bf52447878bc632720502d73", quantizedHash("Q3_K", q3KQuantizerCases()));
    }

    /**
     * 256 rows of 256 values that reach the IQ4 quantizers' branches: sub-blocks of 32 at scales over eleven binades,
     * an all-zero row (IQ4_XS stores d = -0) and all-zero sub-blocks, sub-blocks below the 1e-15 threshold, a huge value
     * that rounds the other sub-blocks' 6-bit scales to 0 (their levels those of 0), values on the midpoints between
     * levels at the first scale, constant and ±constant sub-blocks, mostly negative ones. Fixed (a seeded
     * SplittableRandom): {@link #iq4QuantizersAreLlamaQuantizes} holds llama-quantize's bytes for them.
     */
    static float[] iq4QuantizerCases() {
        int rows = 256;
        int[] levels = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
        float[] x = new float[rows * 256];
        SplittableRandom r = new SplittableRandom(20261207L);
        for (int row = 0; row < rows; row++) {
            for (int sub = 0; sub < 8; sub++) {
                double scale = Math.scalb(1.0, r.nextInt(-8, 3));
                for (int i = 0; i < 32; i++) {
                    int at = 256 * row + 32 * sub + i;
                    double g = r.nextGaussian();
                    int k = r.nextInt(15);
                    x[at] = (float) switch (row % 8) {
                        case 1 -> row == 1 || sub == row / 8 % 8 ? 0.0 : g * scale;
                        case 2 -> sub == 3 && i == 5 ? 1000.0 : g * 0.01;
                        case 3 -> sub % 2 == 0 ? g * 1e-20 : g * scale;
                        case 4 -> i == 0 ? 127.0 : (levels[k] + levels[k + 1]) / 2.0; // max 127: d = 1, x on midpoints
                        case 5 -> sub % 3 == 0 ? 0.5 : sub % 3 == 1 ? (i % 2 == 0 ? 0.75 : -0.75) : g * scale;
                        case 6 -> g * scale - 2 * scale; // mostly negative
                        default -> g * scale;
                    };
                }
            }
        }
        return x;
    }

    /**
     * {@code GgmlQuantize.iq4_nl} and {@code iq4_xs} give llama-quantize's bytes: the SHA-256 of {@link #iq4QuantizerCases}
     * quantized here equals that of the tensor llama-quantize IQ4_NL (IQ4_XS) wrote from an F32 GGUF holding these values
     * as a 256 × 256 matrix (llama.cpp at commit 80fb11a, ggml-base built without FMA contraction). Seen failing: an
     * IQ4_XS sub-block whose 6-bit scale is 0 keeping its first levels instead of the level of 0. Not seen by these
     * values: best_index_int8's tie going to the lower level (the midpoints meet the first scale, not the final one).
     */
    @Test
    void iq4QuantizersAreLlamaQuantizes() throws Exception {
        float[] x = iq4QuantizerCases();
        byte[] nl = new byte[256 * 8 * 18], xs = new byte[256 * 136];
        for (int row = 0; row < 256; row++) {
            GgmlQuantize.iq4_nl(x, 256 * row, 256, MemorySegment.ofArray(nl), 8L * 18 * row);
            GgmlQuantize.iq4_xs(x, 256 * row, 256, MemorySegment.ofArray(xs), 136L * row);
        }
        java.security.MessageDigest sha = java.security.MessageDigest.getInstance("SHA-256");
        assertEquals("4adceac153a3cbba9b0430c85d8f7251f236779c22c84d538e1d44899328a8ac", java.util.HexFormat.of().formatHex(sha.digest(nl)), "IQ4_NL");
        assertEquals("e32f6b39a887cf5b05b0e5f674de0c96fbc6d02a6ca00ce6e645967f3dfb6f53", java.util.HexFormat.of().formatHex(sha.digest(xs)), "IQ4_XS");
    }

    @Test
    void q8_0And4_0QuantizersAreGgmlsReference() {
        // A block with amax 127 (d = 1, id = 1): ref Q8_0 rounds half away from zero; Q4_0 keeps the first max's sign.
        float[] x = new float[32];
        x[0] = 2.5f;
        x[1] = -2.5f;
        x[2] = 127f;
        x[3] = -0.5f;
        x[4] = 126.49f;
        MemorySegment s = arena.allocate(34);
        GgmlQuantize.q8_0(x, 0, 32, s, 0);
        assertEquals(1.0f, Float.float16ToFloat(s.get(Matrix.SHORT, 0)));
        assertArrayEquals(new byte[]{3, -3, 127, -1, 126, 0}, s.asSlice(2, 6).toArray(ValueLayout.JAVA_BYTE));
        float[] y = new float[32];
        y[5] = -16f; // max = -16: d = 2, values (v / 2 + 8.5) truncated, at most 15
        y[6] = 16f;
        y[20] = 3f;
        MemorySegment q = arena.allocate(18);
        GgmlQuantize.q4_0(y, 0, 32, q, 0);
        assertEquals(2.0f, Float.float16ToFloat(q.get(Matrix.SHORT, 0)));
        assertEquals(8 | (8 << 4), u8(q, 2)); // y[0] = 0 and y[16] = 0: nibble 8
        assertEquals(0 | (8 << 4), u8(q, 2 + 5)); // -16 / 2 + 8.5 = 0.5 -> 0
        assertEquals(15 | (8 << 4), u8(q, 2 + 6)); // 16 / 2 + 8.5 = 16.5 -> 16 -> 15
        assertEquals(8 | (10 << 4), u8(q, 2 + 4)); // y[20] = 3: 1.5 + 8.5 = 10
    }

    // ------------------------------------------------------------------ activation conversions (llama.cpp's)

    @Test
    void q8_0ActivationsRoundHalfToEvenWithScale127OverAmax() {
        float[] x = new float[64];
        x[0] = 127f;  // amax 127: id = 1, d = 1
        x[1] = 2.5f;  // ties to even: 2
        x[2] = -2.5f; // -2
        x[3] = 3.5f;  // 4
        x[4] = 0.5f;  // 0
        x[5] = -126.5f; // -126
        // block 2: amax 0.1 -> d = F16(0.1 / 127), q = rint(x * (127 / 0.1))
        x[32] = -0.1f;
        x[33] = 0.05f;
        Activations a = new Activations(64);
        a.input(x, 64);
        a.prepareFor(new Matrix.Q8_0(arena.allocate(68), 1, 64));
        assertEquals(1.0f, a.q80Scales[0]);
        assertArrayEquals(new short[]{127, 2, -2, 4, 0, -126, 0}, java.util.Arrays.copyOf(a.q80, 7));
        assertEquals(Float.float16ToFloat(Float.floatToFloat16(0.1f / 127f)), a.q80Scales[1]);
        assertEquals(-127, a.q80[32]);
        assertEquals((short) Math.rint(0.05f * (127f / 0.1f)), a.q80[33]);
        // every block of a random input: the same rule, and within [-127, 127]
        float[] r = randomInput(4096);
        Activations b = new Activations(4096);
        b.input(r, 4096);
        b.prepareFor(new Matrix.Q4_0(arena.allocate(18 * 128), 1, 4096));
        for (int i = 0; i < 4096; i++) {
            float amax = 0;
            for (int k = i / 32 * 32; k < i / 32 * 32 + 32; k++) {
                amax = Math.max(amax, Math.abs(r[k]));
            }
            assertEquals(amax == 0 ? 0 : (short) Math.rint(r[i] * (127f / amax)), b.q80[i], "value " + i + ", " + where);
            assertTrue(Math.abs(b.q80[i]) <= 127);
        }
    }

    @Test
    void q8KActivationsFollowQuantizeRowQ8KRef() {
        float[] x = new float[512];
        x[3] = -127f;  // the first value of largest magnitude is negative: iscale = -127 / -127 = 1, d = 1
        x[9] = 127f;   // same magnitude later: not the max; q = min(127, 127)
        x[10] = 0.5f;  // ties to even: 0
        x[11] = 1.5f;  // 2
        x[12] = 2.5f;  // 2
        x[13] = -2.5f; // -2
        for (int i = 256; i < 512; i++) {
            x[i] = (i - 300) * 0.125f; // max is the last value, 211 * 0.125, positive: iscale < 0
        }
        Activations a = new Activations(512);
        a.input(x, 512);
        a.prepareFor(new Matrix.Q6_K(arena.allocate(420), 1, 512));
        assertEquals(1.0f, a.q8KScales[0]);
        assertArrayEquals(new short[]{-127, 0, 0, 0, 0, 0, 127, 0, 2, 2, -2, 0}, java.util.Arrays.copyOfRange(a.q8K, 3, 15));
        assertTrue(a.q8KScales[1] < 0);
        assertEquals(-127, a.q8K[511]);
        for (int s = 0; s < 32; s++) {
            int sum = 0;
            for (int i = 16 * s; i < 16 * s + 16; i++) {
                sum += a.q8K[i];
            }
            assertEquals(sum, a.q8KSums[s], "sum " + s);
        }
        // an all-zero block: scale 0, values 0, sums 0 (even after a non-zero input)
        a.input(new float[512], 512);
        a.prepareFor(new Matrix.Q4_K(arena.allocate(288), 1, 512));
        assertEquals(0f, a.q8KScales[0]);
        assertEquals(0, a.q8K[3]);
        assertEquals(0, a.q8KSums[0]);
    }

    /**
     * Q8_1 as llama.cpp's x86 quantize_row_q8_1 makes it: Q8_0's values and F16 scale, and per block
     * s = F16(d * sum(q)) with d the float amax / 127, not its F16 rounding (which gives another s in some blocks of a
     * random input: asserted, so the test tells the two apart).
     */
    @Test
    void q8_1ActivationsFollowQuantizeRowQ8_1() {
        float[] x = new float[64];
        x[0] = 127f; // d = 1: s is the sum of the values
        x[1] = 2.5f; // 2
        x[2] = -100f;
        x[32] = 0.1f; // block 1: d = 0.1 / 127
        x[33] = 0.05f;
        Activations a = new Activations(64);
        a.input(x, 64);
        a.prepareFor(new Matrix.Q5_1(arena.allocate(48), 1, 64));
        assertEquals(1.0f, a.q80Scales[0]);
        assertArrayEquals(new short[]{127, 2, -100}, java.util.Arrays.copyOf(a.q80, 3));
        assertEquals(29.0f, a.q81Sums[0]);
        assertEquals(127, a.q80[32]);
        int sum1 = a.q80[32] + a.q80[33];
        assertEquals(Float.float16ToFloat(Float.floatToFloat16(0.1f / 127f * sum1)), a.q81Sums[1]);
        // every block of a random input
        float[] r = randomInput(4096);
        Activations b = new Activations(4096);
        b.input(r, 4096);
        b.prepareFor(new Matrix.Q5_1(arena.allocate(24 * 128), 1, 4096));
        int otherwise = 0;
        for (int blk = 0; blk < 128; blk++) {
            float amax = 0;
            int sum = 0;
            for (int k = 32 * blk; k < 32 * blk + 32; k++) {
                amax = Math.max(amax, Math.abs(r[k]));
                sum += b.q80[k];
            }
            float s = Float.float16ToFloat(Float.floatToFloat16(amax / 127f * sum));
            assertEquals(s, b.q81Sums[blk], "block " + blk + ", " + where);
            if (Float.float16ToFloat(Float.floatToFloat16(b.q80Scales[blk] * sum)) != s) {
                otherwise++;
            }
        }
        assertTrue(otherwise > 0, "the F16 scale would give the same s in every block: the test cannot tell them apart, " + where);
    }

    @Test
    void q5_1QuantizerIsGgmlsReference() {
        float[] x = new float[96];
        for (int j = 0; j < 32; j++) {
            x[j] = j * 0.5f - 3f; // min -3, max 12.5: d = 0.5, q = j
        }
        x[32] = 0f;      // block 1: min 0, max 31 (d = 1, 1 / d = 1)
        x[33] = 31f;
        x[34] = 2.5f;    // 2.5 + 0.5 = 3: truncated to 3 (a half rounds up, not to even)
        x[35] = 3.49f;   // 3
        x[50] = 30.7f;   // 31
        java.util.Arrays.fill(x, 64, 96, 5f); // block 2: max = min, d = 0: every q 0, m 5
        MemorySegment s = arena.allocate(72);
        GgmlQuantize.q5_1(x, 0, 96, s, 0);
        assertEquals(0.5f, Float.float16ToFloat(s.get(Matrix.SHORT, 0)));
        assertEquals(-3f, Float.float16ToFloat(s.get(Matrix.SHORT, 2)));
        assertEquals(0xFFFF0000, s.get(LE_INT, 4)); // values 16..31 have bit 4
        for (int j = 0; j < 16; j++) {
            assertEquals(j | j << 4, u8(s, 8 + j), "byte " + j);
        }
        assertEquals(1f, Float.float16ToFloat(s.get(Matrix.SHORT, 24)));
        assertEquals(0f, Float.float16ToFloat(s.get(Matrix.SHORT, 26)));
        assertEquals(0, u8(s, 32)); // values 0 and 16: 0
        assertEquals(15, u8(s, 33)); // value 1, 31: nibble 15 (its bit 4 in qh); value 17: 0
        assertEquals(3 | 15 << 4, u8(s, 34)); // value 2, 2.5: 3; value 18, 30.7: 31
        assertEquals(3, u8(s, 35)); // value 3, 3.49: 3
        assertEquals(1 << 1 | 1 << 18, s.get(LE_INT, 28));
        assertEquals(0f, Float.float16ToFloat(s.get(Matrix.SHORT, 48)));
        assertEquals(5f, Float.float16ToFloat(s.get(Matrix.SHORT, 50)));
        assertEquals(0, s.get(LE_INT, 52));
    }

    @Test
    void halfActivationsRoundToNearestEven() {
        float[] x = {1 + 0x1p-8f, 1 + 3 * 0x1p-8f, 1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 65520f, -0.0f, 1e-8f, Float.NaN};
        Activations a = new Activations(8);
        a.input(x, 8);
        a.prepareFor(new Matrix.BF16(arena.allocate(16), 1, 8));
        a.prepareFor(new Matrix.F16(arena.allocate(16), 1, 8));
        assertEquals(1.0f, a.bf16[0]);                 // halfway between 1 and 1 + 2^-7: even
        assertEquals(1 + 0x1p-6f, a.bf16[1]);           // halfway between 1 + 2^-7 and 1 + 2^-6: even
        assertEquals(1.0f, a.f16[2]);                  // halfway between 1 and 1 + 2^-10
        assertEquals(1 + 0x1p-9f, a.f16[3]);
        assertEquals(Float.POSITIVE_INFINITY, a.f16[4]); // beyond the largest half
        assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(a.bf16[5]));
        assertEquals(Float.float16ToFloat((short) 0), a.f16[6]);
        assertTrue(Float.isNaN(a.bf16[7]) && Float.isNaN(a.f16[7]));
    }

    /** An input of m.cols() standard normal values, prepared for m. */
    private Activations gaussianInput(Matrix m) {
        float[] x = new float[m.cols()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        Activations a = new Activations(x.length);
        a.input(x, x.length);
        a.prepareFor(m);
        return a;
    }

    /**
     * A row's result four rows at a time against the same row alone: the same products in the same lanes and order,
     * and the row sums in one order in every compilation state (LaneSums), so bit for bit (the wrong activations for
     * a row, or a row's lanes mixed up, move it by a good fraction of its sum of |w·x|).
     */
    private static void assertSameRowSum(float alone, float four, MemorySegment halves, int r, int cols, boolean f16, float[] x, String what) {
        assertEquals(Float.floatToIntBits(alone), Float.floatToIntBits(four), what + ": " + four + " against " + alone);
    }

    /** The BF16 kernel's four rows at a time give each row the sum it gives that row alone (a range of one row). */
    @Test
    void bf16FourRowsAtATimeGiveEachRowItsOwnSum() {
        int rows = 23, cols = 2 * 2 * FloatVector.SPECIES_PREFERRED.length() * 3 + 5; // five passes of four, three rows alone; a tail
        MemorySegment s = arena.allocate(2L * rows * cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            s.set(Matrix.SHORT, 2 * i, Matrix.floatToBf16((float) rnd.nextGaussian()));
        }
        Matrix.BF16 m = new Matrix.BF16(s, rows, cols);
        Activations a = gaussianInput(m);
        float[] all = new float[rows], single = new float[rows];
        GgmlMatmul.bf16(all, a, m, 0, rows);
        for (int r = 0; r < rows; r++) {
            GgmlMatmul.bf16(single, a, m, r, r + 1);
        }
        for (int r = 0; r < rows; r++) {
            assertSameRowSum(single[r], all[r], s, r, cols, false, a.bf16, where + ": row " + r + ", four rows at a time against one");
        }
    }

    /**
     * The vector F16 kernel checks each row for inf/NaN halves once and computes such a row again
     * with the check in every vector: on random rows, some holding one special half at a random
     * column (in the vector loop or in the scalar tail), every row must be what the scalar kernel
     * gives: the same inf or NaN for a special row, within float rounding for the others; and the kernel's four rows
     * at a time must give each row the sum it gives that row alone ({@link #assertSameRowSum}).
     */
    @Test
    void f16KernelFindsSpecialHalvesInAnyRow() {
        int rows = 64, cols = 2 * 2 * FloatVector.SPECIES_PREFERRED.length() * 3 + 5; // three passes and a tail
        MemorySegment s = arena.allocate(2L * rows * cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            s.set(Matrix.SHORT, 2 * i, Float.floatToFloat16((float) rnd.nextGaussian()));
        }
        short[] specials = {(short) 0x7C00, (short) 0xFC00, (short) 0x7E00, (short) 0xFE01};
        boolean[] special = new boolean[rows];
        for (int r = 0; r < rows; r++) {
            if (rnd.nextInt(3) == 0) {
                special[r] = true;
                s.set(Matrix.SHORT, 2L * ((long) r * cols + rnd.nextInt(cols)), specials[rnd.nextInt(specials.length)]);
            }
        }
        Matrix.F16 m = new Matrix.F16(s, rows, cols);
        Activations a = gaussianInput(m);
        float[] want = new float[rows], got = new float[rows];
        new ScalarKernels().matmul(want, a, m, 0, rows);
        new VectorKernels().matmul(got, a, m, 0, rows);
        // four rows at a time (the ranges above) and one at a time (ranges of one row): the same sums, special rows too
        float[] single = new float[rows];
        for (int r = 0; r < rows; r++) {
            GgmlMatmul.f16(single, a, m, r, r + 1);
        }
        for (int r = 0; r < rows; r++) {
            assertSameRowSum(single[r], got[r], s, r, cols, true, a.f16, where + ": row " + r + ", four rows at a time against one");
        }
        for (int r = 0; r < rows; r++) {
            if (special[r]) {
                assertTrue(!Float.isFinite(want[r]), where + ": row " + r);
                assertEquals(Float.floatToIntBits(want[r]), Float.floatToIntBits(got[r]), where + ": row " + r + " holds an inf/NaN half");
            } else {
                assertTrue(Float.isFinite(got[r]) && Math.abs(got[r] - want[r]) <= 1e-4 * cols, where + ": row " + r + ": " + got[r] + " vs " + want[r]);
            }
        }
    }

    /**
     * The F16 kernel told its weights are finite (a checked copy: {@link MatrixForm.Copy#finiteHalves}) gives each row
     * what the checking kernel gives it ({@link #assertSameRowSum}), for row ranges starting and ending anywhere; and
     * it does trust the flag: the same kernel on a row holding an inf reads it as a large finite value (the check, not
     * the arithmetic, finds specials), while the copy's dispatch without the flag, and the scalar reference with it, give inf.
     */
    @Test
    void f16KernelToldItsWeightsAreFiniteGivesTheCheckingKernelsSums() {
        int rows = 37, cols = 2 * 2 * FloatVector.SPECIES_PREFERRED.length() * 5 + 3;
        MemorySegment s = arena.allocate(2L * rows * cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            s.set(Matrix.SHORT, 2 * i, randomHalf());
        }
        Matrix.F16 m = new Matrix.F16(s, rows, cols);
        Activations a = gaussianInput(m);
        for (int t = 0; t < 20; t++) {
            int r0 = rnd.nextInt(rows), r1 = rnd.nextInt(r0 + 1, rows + 1);
            float[] checking = new float[rows], finite = new float[rows];
            GgmlMatmul.f16(checking, a, m, r0, r1, true);
            GgmlMatmul.f16(finite, a, m, r0, r1, false);
            for (int r = r0; r < r1; r++) {
                assertSameRowSum(checking[r], finite[r], s, r, cols, true, a.f16, where + ": rows " + r0 + ".." + r1 + ", row " + r);
            }
        }
        int r = rnd.nextInt(rows - rows % 4); // a row of a four-row pass
        s.set(Matrix.SHORT, 2L * ((long) r * cols + rnd.nextInt(cols - cols % (2 * FloatVector.SPECIES_PREFERRED.length()))), (short) 0x7C00);
        float[] file = new float[rows], trusted = new float[rows], reference = new float[rows];
        new VectorKernels().matmul(file, a, new MatrixForm.Copy(m, m, false), 0, rows);
        new VectorKernels().matmul(trusted, a, new MatrixForm.Copy(m, m, true), 0, rows);
        new ScalarKernels().matmul(reference, a, new MatrixForm.Copy(m, m, true), 0, rows);
        assertTrue(Float.isInfinite(file[r]) && Float.isInfinite(reference[r]), where + ": row " + r + ": " + file[r] + ", " + reference[r]);
        assertTrue(Float.isFinite(trusted[r]), where + ": row " + r + " read through the finite kernel: " + trusted[r]);
    }

    /** The check behind a finite F16 copy: any inf or NaN half at any place of a range, and nothing else, is found. */
    @Test
    void holdsSpecialHalvesFindsEveryInfAndNaNAndNothingElse() {
        short[] specials = {(short) 0x7C00, (short) 0xFC00, (short) 0x7E00, (short) 0xFFFF, (short) 0x7C01};
        short[] edges = {(short) 0x7BFF, (short) 0xFBFF, 0, (short) 0x8000, 1, (short) 0x83FF, (short) 0x3C00};
        for (int count = 0; count <= 19; count++) {
            for (int skip = 0; skip < 4; skip++) { // the range starting 0-3 halves into the segment (not 8-byte aligned)
                MemorySegment s = arena.allocate(2L * (count + skip + 4), 8);
                for (int i = 0; i < count + skip + 4; i++) { // a special before and after the range must not count
                    s.set(Matrix.SHORT, 2L * i, i < skip || i >= skip + count ? specials[rnd.nextInt(specials.length)]
                            : rnd.nextBoolean() ? edges[rnd.nextInt(edges.length)] : randomHalf());
                }
                assertFalse(GgmlMatmul.holdsSpecialHalves(s, 2L * skip, count), where + ": " + count + " finite halves from " + skip);
                for (int at = 0; at < count; at++) {
                    short kept = s.get(Matrix.SHORT, 2L * (skip + at));
                    s.set(Matrix.SHORT, 2L * (skip + at), specials[rnd.nextInt(specials.length)]);
                    assertTrue(GgmlMatmul.holdsSpecialHalves(s, 2L * skip, count), where + ": a special half at " + at + " of " + count);
                    s.set(Matrix.SHORT, 2L * (skip + at), kept);
                }
            }
        }
    }

    @Test
    void f16KernelReadsInfinitiesAndNaNs() {
        MemorySegment s = arena.allocate(2 * 64);
        for (int i = 0; i < 64; i++) {
            s.set(Matrix.SHORT, 2L * i, Float.floatToFloat16(1.0f));
        }
        Matrix.F16 m = new Matrix.F16(s, 1, 64);
        float[] x = new float[64];
        x[40] = 1.0f;
        Activations a = new Activations(64);
        a.input(x, 64);
        a.prepareFor(m);
        float[] out = new float[1];
        for (short special : new short[]{(short) 0x7C00, (short) 0xFC00, (short) 0x7E00}) {
            s.set(Matrix.SHORT, 2L * 40, special);
            for (Kernels k : new Kernels[]{new ScalarKernels(), new VectorKernels()}) {
                k.matmul(out, a, m, 0, 1);
                float want = Float.float16ToFloat(special);
                if (Float.isNaN(want) ? !Float.isNaN(out[0]) : out[0] != want) {
                    fail(k.name() + ": F16 " + Integer.toHexString(special & 0xFFFF) + " read as " + out[0]);
                }
            }
        }
    }
}
