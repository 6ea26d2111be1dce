package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;

/**
 * The inputs of a batch of matrix products ({@link BatchMatmul}): B rows {@code x[b][0 .. n)}, one per token,
 * and the forms the weight types need, each prepared once per input, on the dispatching thread:
 * <ul>
 *   <li>{@link Matrix.F32}: the floats transposed, {@code xT[j * stride + b]} (tokens along the lanes;
 *       stride is B rounded up to whole vectors, the extra lanes 0).</li>
 *   <li>{@link Matrix.Q8} (runq, groups up to {@link BatchMatmul#MAX_EXACT_GROUP}): each row quantized by
 *       {@link VectorOps#quantize}, the one-token path's own call, then transposed as floats into
 *       {@code xT} and the group scales into {@code sT[g * stride + b]}.</li>
 *   <li>GGML types: each row's {@link Activations}, prepared exactly as the one-token path prepares them.</li>
 * </ul>
 * The rows are not copied: they must not change until the products that read them are done.
 */
final class BatchActivations {
    private final Activations[] rows;
    private float[][] x;
    private int tokens, n, stride;

    float[] xT = new float[0];  // (n, stride) in panels of tokens: BatchMatmul.xIndex
    float[] sT = new float[0];  // (n / group, stride)
    private byte[] q = new byte[0];
    private float[] s = new float[0];
    private boolean f32Ready, q8Ready;
    private int q8Group;

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
        f32Ready = q8Ready = false;
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
        if (m.cols() != n) {
            throw new IllegalArgumentException(m.typeName() + " matrix of " + m.cols() + " columns for an input of " + n);
        }
        switch (m) {
            case Matrix.F32 f -> {
                if (!f32Ready) {
                    transpose();
                    f32Ready = true;
                }
            }
            case Matrix.Q8 w when BatchMatmul.transposed(w) -> {
                if (!q8Ready || q8Group != w.groupSize()) {
                    quantizeTransposed(w.groupSize());
                    q8Group = w.groupSize();
                    q8Ready = true;
                }
            }
            case Matrix.Q8 w -> prepareRows(w);
            case Matrix.Ggml g -> prepareRows(g);
        }
    }

    private void prepareRows(Matrix m) {
        for (int b = 0; b < tokens; b++) {
            rows[b].prepareFor(m);
        }
    }

    /** Throws unless the form m's batched kernel reads is prepared (a kernel's guard). */
    void check(Matrix m) {
        boolean ready = switch (m) {
            case Matrix.F32 f -> f32Ready;
            case Matrix.Q8 w when BatchMatmul.transposed(w) -> q8Ready && q8Group == w.groupSize();
            case Matrix.Q8 w -> true; // each row's Activations checks itself
            case Matrix.Ggml g -> true;
        };
        if (!ready || m.cols() != n) {
            throw new IllegalStateException("batch activations not prepared for a " + m.typeName() + " matrix of " + m.cols() + " columns");
        }
    }

    private float[] grow(float[] a, int size) {
        return a.length >= size ? a : new float[size];
    }

    /** x[b][j] into xT (panels: {@link BatchMatmul#xIndex}), the lanes past the last token 0. */
    private void transpose() {
        xT = grow(xT, n * stride);
        for (int b = 0; b < tokens; b++) {
            float[] row = x[b];
            int at = BatchMatmul.xIndex(0, b, n, stride), w = BatchMatmul.panelWidth(b, stride);
            for (int j = 0; j < n; j++) {
                xT[at + j * w] = row[j];
            }
        }
        for (int b = tokens; b < stride; b++) {
            int at = BatchMatmul.xIndex(0, b, n, stride), w = BatchMatmul.panelWidth(b, stride);
            for (int j = 0; j < n; j++) {
                xT[at + j * w] = 0.0f;
            }
        }
    }

    /** Each row quantized as runq (the one-token path's call), values and scales transposed as floats. */
    private void quantizeTransposed(int groupSize) {
        int groups = n / groupSize;
        xT = grow(xT, n * stride);
        sT = grow(sT, groups * stride);
        if (q.length < n) {
            q = new byte[n];
            s = new float[n];
        }
        for (int b = 0; b < stride; b++) {
            if (b < tokens) {
                VectorOps.quantize(x[b], n, groupSize, q, s);
            } else {
                java.util.Arrays.fill(q, 0, n, (byte) 0);
                java.util.Arrays.fill(s, 0, groups, 0.0f);
            }
            int at = BatchMatmul.xIndex(0, b, n, stride), w = BatchMatmul.panelWidth(b, stride);
            for (int j = 0; j < n; j++) {
                xT[at + j * w] = q[j];
            }
            for (int g = 0; g < groups; g++) {
                sT[g * stride + b] = s[g];
            }
        }
    }
}
