package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

/**
 * The inputs of a batch of matrix products ({@link BatchMatmul}): B rows {@code x[b][0 .. n)}, one per token,
 * and the forms the weight types need, each prepared once per input (the transposed forms split over the pool's
 * workers by blocks of columns when {@link #prepareFor(Matrix, Parallel)} is given one):
 * <ul>
 *   <li>{@link Matrix.F32}: the floats transposed into {@code xF} (tokens along the lanes; stride is B rounded up
 *       to whole vectors, the extra lanes 0; panels of tokens: {@link BatchMatmul#xIndex}).</li>
 *   <li>{@link Matrix.Q8} (runq, groups up to {@link BatchMatmul#MAX_EXACT_GROUP}): the rows transposed as floats into
 *       {@code xT}, then quantized there with the tokens along the lanes ({@link VectorOps#quantizeTokenLanes}: the
 *       one-token path's values), the group scales into {@code sT[g * stride + b]}.</li>
 *   <li>GGML Q8_0, Q4_0 and IQ4_NL: each row's {@link Activations} (llama.cpp's Q8_0 quantization, as the one-token path), each
 *       value times its block's scale (exact: an int8 times an F16 scale) transposed into {@code xD}. GGML Q5_1: the same
 *       Q8_0 values transposed as floats into {@code xT}, the block scales into {@code sT[g * stride + b]} and (Q8_1) the
 *       block sums into {@code s1T[g * stride + b]}.</li>
 *   <li>GGML Q2_K to Q6_K and IQ4_XS: each row's {@link Activations} quantized to Q8_K (llama.cpp's, as the one-token path),
 *       its values transposed as floats into {@code xK}, the scale of each super-block of 256 into
 *       {@code sK[blk * stride + b]}, the sum of each 32 values (Q4_K's and Q5_K's mins) into {@code mK[s * stride + b]}
 *       and of each 16 (Q2_K's) into {@code m16K[s * stride + b]}.</li>
 *   <li>GGML F16 and BF16: each row rounded to F16 or BF16 (its {@link Activations}, llama.cpp's conversion, as the
 *       one-token path), transposed as floats into {@code xH} (F16) or {@code xB} (BF16).</li>
 *   <li>Where the one-token kernels serve the batch ({@link BatchMatmul#readsTransposed}: runq groups over 1024, and
 *       the GGML types in short batches): each row's
 *       {@link Activations}, prepared exactly as the one-token path prepares them.</li>
 * </ul>
 * Each form has arrays of its own, so one input serves products of several types (a Q4_K_M layer's Q4_K and Q6_K
 * or a Q5_K_M layer's Q5_K and Q6_K, which share the Q8_K form,
 * a GGUF file's F32 and Q8_0 matrices, F16 and BF16 ones) prepared together. runq's groups and GGML's Q8_1 blocks (Q5_1's) share {@code xT}:
 * they never meet in one model, and {@link #check} refuses a product whose form was replaced.
 * The rows are not copied: they must not change until the products that read them are done.
 */
final class BatchActivations {
    private final Activations[] rows;
    private float[][] x;
    private int tokens, n, stride;

    float[] xF = new float[0];  // (n, stride) in panels of tokens: BatchMatmul.xIndex
    float[] xT = new float[0];  // (n, stride) in panels of tokens
    float[] sT = new float[0];  // (n / group, stride)
    float[] s1T = new float[0]; // (n / 32, stride): GGML Q8_1's block sums (Q5_1), beside xT and sT
    float[] xD = new float[0];  // (n, stride) in panels of tokens: GGML Q8_0 values times their block's scale
    float[] xK = new float[0];  // (n, stride) in panels of tokens
    float[] sK = new float[0];  // (n / 256, stride)
    float[] mK = new float[0];  // (n / 32, stride)
    float[] m16K = new float[0];  // (n / 16, stride): Q8_K's sums of 16 (Q2_K's mins)
    float[] xH = new float[0];  // (n, stride) in panels of tokens: the input rounded to F16
    float[] xB = new float[0];  // (n, stride) in panels of tokens: the input rounded to BF16
    private boolean f32Ready, q8Ready, q81Ready, q8_0DReady, kReady, f16Ready, bf16Ready;
    /** What xT holds when q8Ready: runq's group size, or {@link #GGML_Q8_0} for GGML's Q8_0 values (Q5_1's Q8_1). */
    private int q8Kind;
    private static final int GGML_Q8_0 = -1;

    /** Up to {@code maxTokens} rows of up to {@code capacity} values (arrays grow if needed). */
    BatchActivations(int maxTokens, int capacity) {
        rows = new Activations[maxTokens];
        for (int b = 0; b < maxTokens; b++) {
            rows[b] = new Activations(capacity);
        }
    }

    /** The input is now {@code x[b][0 .. n)} for b in [0, tokens): forgets every prepared form. */
    void input(float[][] x, int tokens, int n) {
        if (tokens < 1 || tokens > rows.length) {
            throw new IllegalArgumentException(tokens + " tokens in a batch of at most " + rows.length);
        }
        this.x = x;
        this.tokens = tokens;
        this.n = n;
        this.stride = Math.ceilDiv(tokens, BatchMatmul.FL) * BatchMatmul.FL;
        for (int b = 0; b < tokens; b++) {
            rows[b].input(x[b], n);
        }
        f32Ready = q8Ready = q81Ready = q8_0DReady = kReady = f16Ready = bf16Ready = false;
    }

    int tokens() {
        return tokens;
    }

    int size() {
        return n;
    }

    /** Lanes per transposed column: tokens rounded up to whole vectors. */
    int stride() {
        return stride;
    }

    /** Token b's one-token activations (prepared for the GGML types by {@link #prepareFor}). */
    Activations token(int b) {
        return rows[b];
    }

    /** Prepares (once per input) the form m's batched kernel reads; m.cols() must be the input's size. */
    void prepareFor(Matrix m) {
        prepareFor(m, null);
    }

    /**
     * {@link #prepareFor(Matrix)}, the transposed forms split over the pool's workers by blocks of columns
     * (null: on this thread). Run serially on the dispatching thread, this was 9% of a Q8_0 pp512's samples
     * (JFR, stories110M, 2 threads), the other worker idle meanwhile.
     */
    void prepareFor(Matrix m, Parallel parallel) {
        prepareFor(new MatrixForm.File(m), parallel);
    }

    /** {@link #prepareFor(Matrix, Parallel)} for the kernel that reads m in form {@code form} (a copy may take the one-token kernels). */
    void prepareFor(MatrixForm form, Parallel parallel) {
        Matrix m = form.source();
        if (m.cols() != n) {
            throw new IllegalArgumentException(m.typeName() + " matrix of " + m.cols() + " columns for an input of " + n);
        }
        if (!BatchMatmul.readsTransposed(form, tokens)) {
            prepareRows(m);
            return;
        }
        switch (m) {
            case Matrix.F32 f -> {
                if (!f32Ready) {
                    xF = grow(xF, n * stride);
                    split(parallel, Math.ceilDiv(n, COLUMN_BLOCK), (c0, c1) ->
                            transpose(xF, c0 * COLUMN_BLOCK, Math.min(c1 * COLUMN_BLOCK, n)));
                    f32Ready = true;
                }
            }
            case Matrix.Q8 w -> {
                if (!q8Ready || q8Kind != w.groupSize()) {
                    int gs = w.groupSize(), groups = n / gs;
                    xT = grow(xT, n * stride);
                    sT = grow(sT, groups * stride);
                    split(parallel, groups, (g0, g1) -> quantizeTransposed(g0, g1, gs));
                    q8Kind = gs;
                    q8Ready = true;
                }
            }
            case Matrix.Q8_0 w -> prepareQ8_0Dequantized(w, parallel);
            case Matrix.Q4_0 w -> prepareQ8_0Dequantized(w, parallel);
            case Matrix.Q4_K w -> prepareQ8KTransposed(parallel);
            case Matrix.Q6_K w -> prepareQ8KTransposed(parallel);
            case Matrix.Q5_1 w -> {
                prepareQ8_0Transposed(w, parallel);
                prepareQ81SumsTransposed(w, parallel);
            }
            case Matrix.Q2_K w -> prepareQ8KTransposed(parallel);
            case Matrix.Q3_K w -> prepareQ8KTransposed(parallel);
            case Matrix.IQ4_NL w -> prepareQ8_0Dequantized(w, parallel);
            case Matrix.IQ4_XS w -> prepareQ8KTransposed(parallel);
            case Matrix.Q5_K w -> prepareQ8KTransposed(parallel);
            case Matrix.F16 w -> prepareHalfTransposed(w, true, parallel);
            case Matrix.BF16 w -> prepareHalfTransposed(w, false, parallel);
        }
    }

    /** For GGML F16 (f16) or BF16 weights: each token's input rounded to that type, transposed (once per input). */
    private void prepareHalfTransposed(Matrix.Ggml w, boolean f16, Parallel parallel) {
        if (f16 ? f16Ready : bf16Ready) {
            return;
        }
        split(parallel, tokens, (b0, b1) -> {
            for (int b = b0; b < b1; b++) {
                rows[b].prepareFor(w);
            }
        });
        float[] into = f16 ? (xH = grow(xH, n * stride)) : (xB = grow(xB, n * stride));
        split(parallel, Math.ceilDiv(n, COLUMN_BLOCK), (c0, c1) -> transposeHalf(c0 * COLUMN_BLOCK, Math.min(c1 * COLUMN_BLOCK, n), f16, into));
        if (f16) {
            f16Ready = true;
        } else {
            bf16Ready = true;
        }
    }

    /** Columns [j0, j1) of each token's input rounded to F16 (f16) or BF16 into {@code into} (panels), the lanes past the last token 0. */
    private void transposeHalf(int j0, int j1, boolean f16, float[] into) {
        for (int c0 = j0; c0 < j1; c0 += COLUMN_BLOCK) {
            int c1 = Math.min(c0 + COLUMN_BLOCK, j1);
            for (int b = 0; b < stride; b++) {
                int at = BatchMatmul.xIndex(0, b, n, stride), w = BatchMatmul.panelWidth(b, stride);
                float[] row = b < tokens ? (f16 ? rows[b].f16Values() : rows[b].bf16Values()) : null;
                for (int j = c0; j < c1; j++) {
                    into[at + j * w] = row != null ? row[j] : 0.0f;
                }
            }
        }
    }

    /** For GGML Q2_K to Q6_K and IQ4_XS weights: each token's Q8_K activations, transposed (once per input). */
    private void prepareQ8KTransposed(Parallel parallel) {
        if (kReady) {
            return;
        }
        split(parallel, tokens, (b0, b1) -> {
            for (int b = b0; b < b1; b++) {
                rows[b].prepareQ8K();
            }
        });
        int blocks = n / Activations.Q8_K_BLOCK;
        xK = grow(xK, n * stride);
        sK = grow(sK, blocks * stride);
        mK = grow(mK, n / 32 * stride);
        m16K = grow(m16K, n / 16 * stride);
        split(parallel, blocks, this::transposeQ8K);
        kReady = true;
    }

    /**
     * Super-blocks [k0, k1) of each token's Q8_K activations: values as floats into xK, scales into sK, sums of 32
     * into mK and of 16 into m16K; lanes past the last token 0.
     */
    private void transposeQ8K(int k0, int k1) {
        int block = Activations.Q8_K_BLOCK, subs = block / 32;
        for (int k = k0; k < k1; k++) {
            int c0 = k * block, c1 = c0 + block;
            for (int b = 0; b < stride; b++) {
                int at = BatchMatmul.xIndex(0, b, n, stride), w = BatchMatmul.panelWidth(b, stride);
                boolean real = b < tokens;
                short[] q = real ? rows[b].q8KValues() : null;
                for (int j = c0; j < c1; j++) {
                    xK[at + j * w] = real ? q[j] : 0.0f;
                }
                sK[k * stride + b] = real ? rows[b].q8KScales[k] : 0.0f;
                for (int s = k * subs; s < (k + 1) * subs; s++) {
                    mK[s * stride + b] = real ? rows[b].q8KSums32[s] : 0.0f;
                }
                for (int s = 2 * k * subs; s < 2 * (k + 1) * subs; s++) {
                    m16K[s * stride + b] = real ? rows[b].q8KSums[s] : 0.0f;
                }
            }
        }
    }

    /** For GGML Q5_1 weights: each token's Q8_0 activations, values and scales transposed (once per input). */
    private void prepareQ8_0Transposed(Matrix.Ggml w, Parallel parallel) {
        if (q8Ready && q8Kind == GGML_Q8_0) {
            return;
        }
        quantizeRows(w, parallel);
        int blocks = n / Matrix.Q8_0.BLOCK;
        xT = grow(xT, n * stride);
        sT = grow(sT, blocks * stride);
        split(parallel, blocks, (g0, g1) -> transposeQ8_0(g0, g1, false));
        q8Kind = GGML_Q8_0;
        q8Ready = true;
    }

    /** For GGML Q8_0, Q4_0 and IQ4_NL weights: each token's Q8_0 activations, values times scales transposed (once per input). */
    private void prepareQ8_0Dequantized(Matrix.Ggml w, Parallel parallel) {
        if (q8_0DReady) {
            return;
        }
        quantizeRows(w, parallel);
        xD = grow(xD, n * stride);
        split(parallel, n / Matrix.Q8_0.BLOCK, (g0, g1) -> transposeQ8_0(g0, g1, true));
        q8_0DReady = true;
    }

    /** Each token quantized for w as the one-token path does (its Activations). */
    private void quantizeRows(Matrix.Ggml w, Parallel parallel) {
        split(parallel, tokens, (b0, b1) -> {
            for (int b = b0; b < b1; b++) {
                rows[b].prepareFor(w);
            }
        });
    }

    /**
     * Blocks [g0, g1) of each token's GGML Q8_0 activations transposed: each value times its block's scale into xD
     * (dequantized), or the values as floats into xT and the scales into sT; lanes past the last token 0.
     */
    private void transposeQ8_0(int g0, int g1, boolean dequantized) {
        int block = Matrix.Q8_0.BLOCK;
        float[] into = dequantized ? xD : xT;
        for (int g = g0; g < g1; g++) {
            int c0 = g * block, c1 = c0 + block;
            for (int b = 0; b < stride; b++) {
                int at = BatchMatmul.xIndex(0, b, n, stride), w = BatchMatmul.panelWidth(b, stride);
                short[] q = b < tokens ? rows[b].q8_0Values() : null;
                float d = b < tokens ? rows[b].q8_0Scales()[g] : 0.0f, times = dequantized ? d : 1.0f;
                for (int j = c0; j < c1; j++) {
                    into[at + j * w] = q != null ? q[j] * times : 0.0f;
                }
                if (!dequantized) {
                    sT[g * stride + b] = d;
                }
            }
        }
    }

    /**
     * For GGML Q5_1 weights, beside the Q8_0 form: each token's Q8_1 block sums (its {@link Activations}, as the one-token
     * path) into {@code s1T[g * stride + b]}, lanes past the last token 0 (once per input).
     */
    private void prepareQ81SumsTransposed(Matrix.Q5_1 w, Parallel parallel) {
        if (q81Ready) {
            return;
        }
        split(parallel, tokens, (b0, b1) -> { // (the Q8_0 values may have been made for a Q8_0 matrix: the sums are Q5_1's)
            for (int b = b0; b < b1; b++) {
                rows[b].prepareFor(w);
            }
        });
        int blocks = n / Matrix.Q5_1.BLOCK;
        s1T = grow(s1T, blocks * stride);
        for (int b = 0; b < stride; b++) {
            for (int g = 0; g < blocks; g++) {
                s1T[g * stride + b] = b < tokens ? rows[b].q81Sums[g] : 0.0f;
            }
        }
        q81Ready = true;
    }

    private static void split(Parallel parallel, int units, Parallel.RangeTask task) {
        if (parallel == null) {
            task.run(0, units);
        } else {
            parallel.forRange(units, task);
        }
    }

    private void prepareRows(Matrix m) {
        for (int b = 0; b < tokens; b++) {
            rows[b].prepareFor(m);
        }
    }

    /** Throws unless the form m's batched kernel reads is prepared (a kernel's guard). */
    void check(MatrixForm form) {
        Matrix m = form.source();
        boolean ready = !BatchMatmul.readsTransposed(form, tokens) || switch (m) { // (each row's Activations checks itself)
            case Matrix.F32 f -> f32Ready;
            case Matrix.Q8 w -> q8Ready && q8Kind == w.groupSize();
            case Matrix.Q8_0 w -> q8_0DReady;
            case Matrix.Q4_0 w -> q8_0DReady;
            case Matrix.Q4_K w -> kReady;
            case Matrix.Q6_K w -> kReady;
            case Matrix.Q5_1 w -> q8Ready && q8Kind == GGML_Q8_0 && q81Ready;
            case Matrix.Q2_K w -> kReady;
            case Matrix.Q3_K w -> kReady;
            case Matrix.IQ4_NL w -> q8_0DReady;
            case Matrix.IQ4_XS w -> kReady;
            case Matrix.Q5_K w -> kReady;
            case Matrix.F16 w -> f16Ready;
            case Matrix.BF16 w -> bf16Ready;
        };
        if (!ready || m.cols() != n) {
            throw new IllegalStateException("batch activations not prepared for a " + m.typeName() + " matrix of " + m.cols() + " columns");
        }
    }

    private float[] grow(float[] a, int size) {
        return a.length >= size ? a : new float[size];
    }

    /** Columns per step of the transposition: 64 columns of 64 tokens (16 KiB of xT) stay in L1 while every token writes them. */
    private static final int COLUMN_BLOCK = 64;

    /** Columns [j0, j1) of x[b][j] into {@code into} (panels: {@link BatchMatmul#xIndex}), the lanes past the last token 0. */
    private void transpose(float[] into, int j0, int j1) {
        for (int c0 = j0; c0 < j1; c0 += COLUMN_BLOCK) {
            int c1 = Math.min(c0 + COLUMN_BLOCK, j1);
            for (int t = 0, w; t < stride; t += w) {
                w = BatchMatmul.panelWidth(t, stride);
                transposePanel(into, c0, c1, t, w);
            }
        }
    }

    /** Columns [c0, c1) of the tokens of the panel of width w that starts at token t into {@code into}, the lanes past the last token 0. */
    private void transposePanel(float[] into, int c0, int c1, int t, int w) {
        for (int b = t; b < t + w; b++) {
            int at = BatchMatmul.xIndex(0, b, n, stride);
            if (b < tokens) {
                float[] row = x[b];
                for (int j = c0; j < c1; j++) {
                    into[at + j * w] = row[j];
                }
            } else {
                for (int j = c0; j < c1; j++) {
                    into[at + j * w] = 0.0f;
                }
            }
        }
    }

    /**
     * Groups [g0, g1) of each row quantized as runq, values and scales transposed as floats: a group of a panel of
     * tokens at a time, its columns transposed ({@link #transposePanel}) and then quantized in place while in L1,
     * the tokens along the lanes ({@link VectorOps#quantizeTokenLanes}: the one-token path's arithmetic per lane, so
     * its values); the lanes past the last token 0. Quantizing each token's row and then transposing its bytes one
     * by one ran at 0.8–0.9 G values per second on one thread, 5–7% of a Q8 pp512's samples
     * (BatchActivationsBenchmark; perf, stories110M, 512 bits, 2026-12-05).
     */
    private void quantizeTransposed(int g0, int g1, int groupSize) {
        for (int g = g0; g < g1; g++) {
            int c0 = g * groupSize;
            for (int t = 0, w; t < stride; t += w) {
                w = BatchMatmul.panelWidth(t, stride);
                transposePanel(xT, c0, c0 + groupSize, t, w);
                for (int b = t; b < t + w; b += BatchMatmul.FL) {
                    VectorOps.quantizeTokenLanes(xT, BatchMatmul.xIndex(c0, b, n, stride), w, groupSize, sT, g * stride + b);
                }
            }
        }
    }
}
