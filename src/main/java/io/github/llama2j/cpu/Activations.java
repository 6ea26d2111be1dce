package io.github.llama2j.cpu;

import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.Matrix;

/**
 * The input vector of a matrix product, with the converted forms the weight types need, each
 * prepared once per input: llama.cpp converts the activations before every product with a
 * non-F32 weight, and llama2.c's runq quantizes them before every Q8 product. Following that
 * arithmetic is what lets the engine agree with their logits.
 *
 * <ul>
 *   <li>{@link Matrix.F32}: the floats as they are.</li>
 *   <li>{@link Matrix.Q8} (llama2.c): runq's groups (the matrix's group size, scale max|x| / 127,
 *       round half away from zero), the same quantization as before this class existed.</li>
 *   <li>{@link Matrix.F16}, {@link Matrix.BF16}: each value rounded to F16 (BF16), nearest even,
 *       kept as floats (every F16/BF16 value is a float, and the product of two is exact in float).</li>
 *   <li>{@link Matrix.Q8_0}, {@link Matrix.Q4_0}, {@link Matrix.IQ4_NL}: GGML Q8_0 blocks of 32 as llama.cpp's x86 code
 *       makes them (quantize_row_q8_0 with AVX): amax = max|x|, d = amax / 127 stored as F16,
 *       q = round-half-even(x * (127 / amax)).</li>
 *   <li>{@link Matrix.Q5_1}: GGML Q8_1 blocks of 32 as llama.cpp's x86 code makes them (quantize_row_q8_1 with AVX2):
 *       Q8_0's d and q, plus each block's s = F16(d * (sum of its q)), with d the float amax / 127 before its own
 *       rounding to F16.</li>
 *   <li>{@link Matrix.Q2_K}, {@link Matrix.Q3_K}, {@link Matrix.IQ4_XS}, {@link Matrix.Q4_K}, {@link Matrix.Q5_K}, {@link Matrix.Q6_K}: GGML Q8_K blocks of 256 (quantize_row_q8_K_ref):
 *       max = the first value of largest magnitude, iscale = -127 / max, q = min(127,
 *       round-half-even(iscale * x)), d = 1 / iscale (a float), plus the sums of each 16 q's.</li>
 * </ul>
 *
 * <p>Use: {@link #input} names the new input (the array is not copied, so it must not change until
 * the products that read it are done), then {@link #prepareFor} for each matrix about to read it,
 * on the thread that dispatches the product, before the workers start; the workers only read the
 * prepared forms. The quantized values are kept as shorts, widened once for the vector kernels.
 */
public final class Activations {
    /** Q8_0 and Q8_K block sizes. */
    static final int Q8_0_BLOCK = 32, Q8_K_BLOCK = 256, Q8_K_SUM = 16;

    private float[] x;
    private int n;

    // llama2.c Q8 (runq): int8 values and one float scale per group of q8Group
    byte[] q8;
    float[] q8Scales;
    int q8Group;
    private boolean q8Ready;
    /** The same, in the forms {@link Q8Matmul} reads (widened to shorts and ints, scales tiled per block of rows). */
    final Q8Matmul.Input q8Input = new Q8Matmul.Input();

    // F16 / BF16: x rounded to each, as floats
    float[] f16, bf16;
    /**
     * x rounded to F16, times 2^112 (exact: an F16 value is at most 65504 &lt; 2^16 in magnitude), what the vector F16
     * kernel multiplies the weights' unrebiased bits by, in the order its int lanes hold the halves
     * ({@link GgmlMatmul#f16}: two per lane): per block of 2L values at j, the even ones first
     * ({@code [j + i] = x[j + 2i]}), then the odd ones, L the float lanes; whole blocks only.
     */
    float[] f16Pairs;
    /** x rounded to BF16 in the same even/odd order per block of 2L, for {@link GgmlMatmul#bf16}. */
    float[] bf16Pairs;
    private boolean f16Ready, bf16Ready;

    // GGML Q8_0: values (as shorts) and the F16 scale of each block of 32, as a float
    short[] q80;
    float[] q80Scales;
    private boolean q80Ready;
    /**
     * The Q8_0 values in pairs as {@link GgmlMatmul#q4_0Packed} multiplies them, {@link #Q4_0_PAIRS} ints per block of
     * 32 ({@link #q40Pairs(short[], int, int[])}).
     */
    int[] q40Pairs;
    private boolean q40Ready;
    static final int Q4_0_PAIRS = 18;
    /** GGML Q8_1's block sums s (F16 values as floats), one per block of 32, beside the Q8_0 values and scales. */
    float[] q81Sums;
    /** The Q8_0 values in the order {@link GgmlMatmul#q5_1} multiplies them: per block of 32, {@code a_0, a_16, a_1, a_17, ..., a_15, a_31}. */
    short[] q81Pairs;
    /**
     * The Q8_0 values in pairs as {@link GgmlMatmul#q5_1Packed} multiplies them: per block of 32, 16 ints, pair t being
     * {@code a_t + 2^16 a_(t+16)} (times a lane {@code q_(t+16) + 2^16 q_t} of {@link PackedQ5_1}, its upper half is
     * {@code q_t a_t + q_(t+16) a_(t+16)}).
     */
    int[] q51Pairs;
    private boolean q81Ready;

    // GGML Q8_K: values (as shorts), the float scale of each block of 256, the sum of each 16 values
    short[] q8K;
    float[] q8KScales;
    int[] q8KSums;
    /** The sum of each 32 values (Q4_K's sub-blocks): pairs of q8KSums, added once per input rather than once per row. */
    int[] q8KSums32;
    /**
     * The values in pairs as the Q4_K copy's kernel multiplies them ({@link KQuantPacked#pairs}): 128 ints per block,
     * from {@link #q8KPairsAt} on, where the preparation found a 64-byte boundary ({@link ArrayAlignment}; each of
     * the three arrays below has room for that).
     */
    int[] q8KPairs;
    /** The values in pairs as the Q6_K copy's kernel (and the Q2_K and Q3_K copies') multiplies them ({@link KQuantPacked#pairs6}): 128 ints per block. */
    int[] q8KPairs6;
    /** Where the Q6_K copy's kernel starts its int chains ({@link KQuantPacked#q6Starts}): 32 ints per block. */
    int[] q8KStarts6;
    /** The index of the first int of {@link #q8KPairs}, {@link #q8KPairs6} and {@link #q8KStarts6} (0 to 15). */
    int q8KPairsAt, q8KPairs6At, q8KStarts6At;
    /** For tests: the first index to use in all three instead of the one found (-1: the one found). */
    int pairsAtForTests = -1;
    private boolean q8KReady, q8KPairsReady, q8KPairs6Ready;

    /** Activations whose inputs will have at most {@code capacity} values (arrays grow if needed). */
    public Activations(int capacity) {
        allocate(capacity);
    }

    private void allocate(int capacity) {
        q8 = new byte[capacity];
        q8Scales = new float[capacity];
        f16 = new float[capacity];
        f16Pairs = new float[capacity];
        bf16Pairs = new float[capacity];
        bf16 = new float[capacity];
        q80 = new short[capacity];
        q80Scales = new float[capacity / Q8_0_BLOCK + 1];
        q40Pairs = new int[capacity / Q8_0_BLOCK * Q4_0_PAIRS];
        q81Sums = new float[capacity / Q8_0_BLOCK + 1];
        q81Pairs = new short[capacity];
        q51Pairs = new int[capacity / 2];
        q8K = new short[capacity];
        q8KScales = new float[capacity / Q8_K_BLOCK + 1];
        q8KSums = new int[capacity / Q8_K_SUM + 1];
        q8KSums32 = new int[capacity / (2 * Q8_K_SUM) + 1];
        int room = ArrayAlignment.LINE / Integer.BYTES - 1;
        q8KPairs = new int[capacity / 2 + 1 + room];
        q8KPairs6 = new int[capacity / 2 + 1 + room];
        q8KStarts6 = new int[(capacity / Q8_K_BLOCK + 1) * KQuantPacked.Q6_STARTS + room];
    }

    /**
     * Sizes the forms {@code m}'s kernel reads for inputs of up to this object's capacity, so that the forward pass
     * never grows an array (see {@link Q8Matmul.Input#reserve}); only llama2.c Q8 has such forms.
     */
    public void reserveFor(Matrix m) {
        if (m instanceof Matrix.Q8 q && Q8Matmul.handles(q.groupSize())) {
            q8Input.reserve(q8.length, q.groupSize());
        }
    }

    /** The input is now {@code x[0 .. n)}: forgets every prepared form. */
    public void input(float[] x, int n) {
        if (n > x.length) {
            throw new IllegalArgumentException("input of " + n + " values in an array of " + x.length);
        }
        this.x = x;
        this.n = n;
        if (n > q8.length) {
            allocate(n);
        }
        q8Ready = f16Ready = bf16Ready = q80Ready = q40Ready = q81Ready = q8KReady = q8KPairsReady = q8KPairs6Ready = false;
    }

    /** The float input (its first {@link #size()} values). */
    public float[] x() {
        return x;
    }

    public int size() {
        return n;
    }

    /** Prepares (once per input) the form {@code m}'s kernel reads; {@code m.cols()} must be the input's size. */
    public void prepareFor(Matrix m) {
        if (m.cols() != n) {
            throw new IllegalArgumentException(m.typeName() + " matrix of " + m.cols() + " columns for an input of " + n);
        }
        switch (m) {
            case Matrix.F32 f -> {
            }
            case Matrix.Q8 q -> {
                if (!q8Ready || q8Group != q.groupSize()) {
                    VectorOps.quantize(x, n, q.groupSize(), q8, q8Scales);
                    if (Q8Matmul.handles(q.groupSize())) {
                        q8Input.prepare(q8, q8Scales, n, q.groupSize());
                    }
                    q8Group = q.groupSize();
                    q8Ready = true;
                }
            }
            case Matrix.F16 h -> {
                if (!f16Ready) {
                    toF16(x, n, f16);
                    evenThenOdd(f16, n, 0x1p112f, f16Pairs);
                    f16Ready = true;
                }
            }
            case Matrix.BF16 h -> {
                if (!bf16Ready) {
                    toBf16(x, n, bf16);
                    evenThenOdd(bf16, n, 1f, bf16Pairs);
                    bf16Ready = true;
                }
            }
            case Matrix.Q8_0 q -> prepareQ8_0();
            case Matrix.Q4_0 q -> {
                prepareQ8_0();
                if (!q40Ready) {
                    q40Pairs(q80, n, q40Pairs);
                    q40Ready = true;
                }
            }
            case Matrix.Q5_1 q -> {
                prepareQ8_0();
                if (!q81Ready) {
                    q81Sums(x, n, q80, q81Sums);
                    for (int b = 0; b < n / Q8_0_BLOCK; b++) {
                        for (int k = 0; k < 16; k++) {
                            q81Pairs[b * Q8_0_BLOCK + 2 * k] = q80[b * Q8_0_BLOCK + k];
                            q81Pairs[b * Q8_0_BLOCK + 2 * k + 1] = q80[b * Q8_0_BLOCK + 16 + k];
                            q51Pairs[b * 16 + k] = pair(q80[b * Q8_0_BLOCK + 16 + k], q80[b * Q8_0_BLOCK + k]);
                        }
                    }
                    q81Ready = true;
                }
            }
            case Matrix.Q2_K q -> prepareQ8KPairs6(); // (the copy's kernel: Q6_K's pairs and Q8_K's sums of 16; the file layout's: the values)
            case Matrix.Q3_K q -> { // (likewise, where it has a copy; else the file layout's kernel reads Q8_K's values as they are)
                if (KQuantPacked.Q3K_COPY) {
                    prepareQ8KPairs6();
                } else {
                    prepareQ8K();
                }
            }
            case Matrix.IQ4_NL q -> prepareQ8_0(); // (likewise, Q8_0's)
            case Matrix.IQ4_XS q -> prepareQ8K(); // (likewise)
            case Matrix.Q4_K _, Matrix.Q5_K _ -> { // (the same pairs: the Q5_K copy's nibbles are in Q4_K's order)
                prepareQ8K();
                if (!q8KPairsReady) { // (each type's pairs only for inputs of that type: a w2 of one type, a classifier)
                    q8KPairsAt = firstIndex(q8KPairs);
                    for (int b = 0; b < n / Q8_K_BLOCK; b++) {
                        KQuantPacked.pairs(q8K, b * Q8_K_BLOCK, q8KPairs, q8KPairsAt + b * (Q8_K_BLOCK / 2));
                    }
                    q8KPairsReady = true;
                }
            }
            case Matrix.Q6_K q -> prepareQ8KPairs6();
        }
    }

    /**
     * Q8_K's values and sums, and the pairs and chain starts of the Q6_K copy's order (the pairs read by the Q2_K, Q3_K
     * and Q6_K copies' kernels, the starts by Q6_K's). Made for Q2_K and Q3_K matrices also when they are read in the
     * file's layout ({@code --weight-copies=off}, the scalar kernels): the activations are prepared per matrix type,
     * not per form, and the pairs cost one pass over the input.
     */
    private void prepareQ8KPairs6() {
        prepareQ8K();
        if (!q8KPairs6Ready) {
            q8KPairs6At = firstIndex(q8KPairs6);
            q8KStarts6At = firstIndex(q8KStarts6);
            for (int b = 0; b < n / Q8_K_BLOCK; b++) {
                int at = q8KPairs6At + b * (Q8_K_BLOCK / 2);
                KQuantPacked.pairs6(q8K, b * Q8_K_BLOCK, q8KPairs6, at);
                KQuantPacked.q6Starts(q8KPairs6, at, q8KStarts6, q8KStarts6At + b * KQuantPacked.Q6_STARTS);
            }
            q8KPairs6Ready = true;
        }
    }

    /** Where a kernel input read a vector at a time starts in {@code a}: at its first 64-byte boundary (see the fields). */
    private int firstIndex(int[] a) {
        return pairsAtForTests >= 0 ? pairsAtForTests : ArrayAlignment.intsToLine(a);
    }

    /**
     * {@link #q40Pairs} from the Q8_0 values {@code a = q80[0, n)}, per block of 32 at j ({@link #Q4_0_PAIRS} ints):
     * for each run q = 0..3 of {@link PackedQ4_0} (bytes 4q .. 4q + 3 of a row, whose nibbles are values 4q .. 4q + 3
     * and 16 + 4q .. 19 + 4q), the four pairs {@code a_y + 2^16 a_x} for the nibbles (x, y) that the kernel's shifts by
     * 0, 4, 8 and 12 put in a lane's two halves: (4q, 4q + 2), (16 + 4q, 18 + 4q), (4q + 1, 4q + 3) and
     * (17 + 4q, 19 + 4q); then, for runs 0-1 and 2-3, where the kernel starts each int chain:
     * {@code 2^15 - 2^16 · 8 · (sum of a over the two runs' 16 values)}, the lower halves' offset and the nibbles' offset
     * of 8 at once.
     */
    static void q40Pairs(short[] a, int n, int[] into) {
        for (int blk = 0; blk < n / Q8_0_BLOCK; blk++) {
            int j = blk * Q8_0_BLOCK, o = blk * Q4_0_PAIRS;
            for (int q = 0; q < 4; q++) {
                int v = j + 4 * q;
                into[o + 4 * q] = pair(a[v], a[v + 2]);
                into[o + 4 * q + 1] = pair(a[v + 16], a[v + 18]);
                into[o + 4 * q + 2] = pair(a[v + 1], a[v + 3]);
                into[o + 4 * q + 3] = pair(a[v + 17], a[v + 19]);
            }
            for (int h = 0; h < 2; h++) {
                int sum = 0;
                for (int k = 8 * h; k < 8 * h + 8; k++) {
                    sum += a[j + k] + a[j + 16 + k];
                }
                into[o + 16 + h] = (1 << 15) - (8 * sum << 16);
            }
        }
    }

    /**
     * The s of llama.cpp's x86 quantize_row_q8_1 for the Q8_0 values {@code q} of {@code x[0, n)} (its values and
     * scales are Q8_0's): per block of 32, {@code F16(d * sum(q))} as a float, d = amax / 127 the float (the F16 scale
     * is rounded from it separately), the sum an exact int converted to float. (For a block holding an inf or NaN the
     * value is not llama.cpp's: its sum adds the int conversions of NaN products; neither gives a finite logit.)
     */
    static void q81Sums(float[] x, int n, short[] q, float[] into) {
        for (int b = 0; b < n / Q8_0_BLOCK; b++) {
            float amax = 0.0f;
            int sum = 0;
            for (int i = b * Q8_0_BLOCK; i < (b + 1) * Q8_0_BLOCK; i++) {
                amax = Math.max(amax, Math.abs(x[i]));
                sum += q[i];
            }
            into[b] = Float.float16ToFloat(Float.floatToFloat16(amax / 127.0f * sum));
        }
    }

    /** {@code a_y + 2^16 a_x}: times a lane holding nibbles x (low half) and y (high half), its high half is x a_x + y a_y. */
    private static int pair(short ax, short ay) {
        return ay + (ax << 16);
    }

    private void prepareQ8_0() {
        if (!q80Ready) {
            VectorOps.quantizeQ8_0(x, n, q80, q80Scales);
            q80Ready = true;
        }
    }

    /** GGML Q8_K's values, block scales and sums of 32 (once per input), without the copies' pairs: the batched kernels' part. */
    void prepareQ8K() {
        if (!q8KReady) {
            VectorOps.quantizeQ8K(x, n, q8K, q8KScales, q8KSums);
            for (int i = 0; i < n / (2 * Q8_K_SUM); i++) {
                q8KSums32[i] = q8KSums[2 * i] + q8KSums[2 * i + 1];
            }
            q8KReady = true;
        }
    }

    /** Throws unless the form {@code m} reads has been prepared for the current input (a kernel's guard). */
    void check(Matrix m) {
        boolean ready = switch (m) {
            case Matrix.F32 f -> x != null;
            case Matrix.Q8 q -> q8Ready && q8Group == q.groupSize();
            case Matrix.F16 h -> f16Ready;
            case Matrix.BF16 h -> bf16Ready;
            case Matrix.Q8_0 q -> q80Ready;
            case Matrix.Q4_0 q -> q80Ready && q40Ready;
            case Matrix.Q5_1 q -> q80Ready && q81Ready;
            case Matrix.Q2_K q -> q8KReady && q8KPairs6Ready;
            case Matrix.Q3_K q -> q8KReady && (q8KPairs6Ready || !KQuantPacked.Q3K_COPY);
            case Matrix.IQ4_NL q -> q80Ready;
            case Matrix.IQ4_XS q -> q8KReady;
            case Matrix.Q4_K q -> q8KReady && q8KPairsReady;
            case Matrix.Q5_K q -> q8KReady && q8KPairsReady;
            case Matrix.Q6_K q -> q8KReady && q8KPairs6Ready;
        };
        if (!ready || m.cols() != n) {
            throw new IllegalStateException("activations not prepared for a " + m.typeName() + " matrix of " + m.cols() + " columns");
        }
    }

    // ------------------------------------------------------------------ the prepared forms, for other engines

    /*
     * The hybrid engine's host prepares a step's input once and sends these forms to its devices, so that every
     * shard computes from the same bits. Each throws unless the form has been prepared for the current input;
     * the arrays are this object's own (valid until the next input), their first size() values (scales: one
     * per group or block).
     */

    /** runq's int8 values ({@link Matrix.Q8} of {@code groupSize}). */
    public byte[] q8Values(int groupSize) {
        ready(q8Ready && q8Group == groupSize, "Q8 (llama2.c) of group " + groupSize);
        return q8;
    }

    /** runq's scales, one per group. */
    public float[] q8Scales(int groupSize) {
        ready(q8Ready && q8Group == groupSize, "Q8 (llama2.c) of group " + groupSize);
        return q8Scales;
    }

    /** The values rounded to F16, as floats ({@link Matrix.F16}). */
    public float[] f16Values() {
        ready(f16Ready, "F16");
        return f16;
    }

    /** The values rounded to BF16, as floats ({@link Matrix.BF16}). */
    float[] bf16Values() {
        ready(bf16Ready, "BF16");
        return bf16;
    }

    /** GGML Q8_0's values, in shorts ({@link Matrix.Q8_0}). */
    public short[] q8_0Values() {
        ready(q80Ready, "Q8_0");
        return q80;
    }

    /** GGML Q8_K's values as shorts, after {@link #prepareQ8K}. */
    short[] q8KValues() {
        ready(q8KReady, "Q8_K");
        return q8K;
    }

    /** GGML Q8_0's block scales (F16 values as floats), one per block of 32. */
    public float[] q8_0Scales() {
        ready(q80Ready, "Q8_0");
        return q80Scales;
    }

    private static void ready(boolean ready, String form) {
        if (!ready) {
            throw new IllegalStateException("activations not prepared as " + form);
        }
    }

    // ------------------------------------------------------------------ the conversions (reference arithmetic)

    /** Each value rounded to the nearest F16 (ties to even), back as a float. */
    static void toF16(float[] x, int n, float[] out) {
        for (int i = 0; i < n; i++) {
            out[i] = Float.float16ToFloat(Float.floatToFloat16(x[i]));
        }
    }

    /**
     * {@code out} = {@code x} times {@code scale} (exact here: a power of two) in the F16 and BF16 kernels' order: per
     * block of 2L values at j, L the float lanes, the even ones first ({@code out[j + i] = x[j + 2i]}), then the odd
     * ones; whole blocks only.
     */
    private static void evenThenOdd(float[] x, int n, float scale, float[] out) {
        int l = GgmlMatmul.L;
        for (int j = 0; j + 2 * l <= n; j += 2 * l) {
            for (int i = 0; i < l; i++) {
                out[j + i] = x[j + 2 * i] * scale;
                out[j + l + i] = x[j + 2 * i + 1] * scale;
            }
        }
    }

    /** Each value rounded to the nearest BF16 (ties to even), back as a float. */
    static void toBf16(float[] x, int n, float[] out) {
        for (int i = 0; i < n; i++) {
            out[i] = Matrix.bf16ToFloat(Matrix.floatToBf16(x[i]));
        }
    }

    /**
     * llama.cpp's x86 quantize_row_q8_0: per block of 32, d = F16(amax / 127) and
     * q = round-half-even(x * (127 / amax)) (0 for an all-zero block); scales[b] is d as a float.
     */
    static void quantizeQ8_0(float[] x, int n, short[] q, float[] scales) {
        for (int b = 0; b < n / Q8_0_BLOCK; b++) {
            quantizeQ8_0(x, b * Q8_0_BLOCK, Q8_0_BLOCK, q, scales, b);
        }
    }

    /** {@link #quantizeQ8_0}'s block b, the values [base, base + block). */
    static void quantizeQ8_0(float[] x, int base, int block, short[] q, float[] scales, int b) {
        float amax = 0.0f;
        for (int i = base; i < base + block; i++) {
            amax = Math.max(amax, Math.abs(x[i]));
        }
        scales[b] = Float.float16ToFloat(Float.floatToFloat16(amax / 127.0f));
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int i = base; i < base + block; i++) {
            q[i] = (short) Math.clamp((long) Math.rint(x[i] * id), -128, 127);
        }
    }

    /**
     * llama.cpp's quantize_row_q8_K_ref: per block of 256, max = the first value with the largest
     * magnitude, iscale = -127 / max, q = min(127, round-half-even(iscale * x)), scale = 1 / iscale,
     * and the sum of each run of 16 q's. An all-zero block gets scale 0 and q = 0.
     */
    static void quantizeQ8K(float[] x, int n, short[] q, float[] scales, int[] sums) {
        for (int b = 0; b < n / Q8_K_BLOCK; b++) {
            quantizeQ8K(x, b * Q8_K_BLOCK, Q8_K_BLOCK, q, scales, sums, b);
        }
    }

    /** {@link #quantizeQ8K}'s block b, the values [base, base + block). */
    static void quantizeQ8K(float[] x, int base, int block, short[] q, float[] scales, int[] sums, int b) {
        float max = GgmlQuantize.firstOfLargestMagnitude(x, base, block);
        if (max == 0.0f) {
            scales[b] = 0.0f;
            java.util.Arrays.fill(q, base, base + block, (short) 0);
            java.util.Arrays.fill(sums, base / Q8_K_SUM, (base + block) / Q8_K_SUM, 0);
            return;
        }
        float iscale = -127.0f / max;
        for (int i = base; i < base + block; i++) {
            q[i] = (short) Math.min(127, (int) Math.rint(iscale * x[i]));
        }
        for (int s = base; s < base + block; s += Q8_K_SUM) {
            int sum = 0;
            for (int i = s; i < s + Q8_K_SUM; i++) {
                sum += q[i];
            }
            sums[s / Q8_K_SUM] = sum;
        }
        scales[b] = 1.0f / iscale;
    }
}
