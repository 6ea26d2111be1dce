package io.github.llama2j.cpu;

import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.Weights;

import java.lang.foreign.ValueLayout;

/**
 * run.c's / runq.c's forward pass written out plainly with the {@link ScalarKernels} reference
 * (one matmul at a time, keys in run.c's layout, no threads): what {@link CpuEngine} must equal bit
 * for bit in exact mode, and for Q8 models in every mode.
 */
final class ReferenceForward {
    private final Configuration c;
    private final Weights w;
    private final ScalarKernels s = new ScalarKernels();
    private final float[] x, xb, xb2, hb, hb2, q, k, v, att, logits;
    private final float[][] keyCache, valueCache;
    private final byte[] xq, hq;
    private final float[] xs, hs, freq;

    ReferenceForward(Model model) {
        c = model.config();
        w = model.weights();
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim();
        x = new float[dim];
        xb = new float[dim];
        xb2 = new float[dim];
        hb = new float[hidden];
        hb2 = new float[hidden];
        q = new float[dim];
        k = new float[kvDim];
        v = new float[kvDim];
        att = new float[c.nHeads() * c.seqLen()];
        logits = new float[c.vocabSize()];
        keyCache = new float[c.nLayers()][c.seqLen() * kvDim];
        valueCache = new float[c.nLayers()][c.seqLen() * kvDim];
        int gs = Math.max(1, c.groupSize());
        xq = new byte[dim];
        xs = new float[dim / gs];
        hq = new byte[hidden];
        hs = new float[hidden / gs];
        freq = ScalarKernels.ropeFrequencies(c.headSize(), Configuration.LLAMA2C_ROPE_THETA, io.github.llama2j.math.FloatMath.standard());
    }

    float[] forward(int token, int pos) {
        int dim = c.dim(), hidden = c.hiddenDim(), kvDim = c.kvDim(), hsz = c.headSize();
        switch (w.tokenEmbedding()) {
            case Matrix.F32 m -> {
                for (int i = 0; i < dim; i++) {
                    x[i] = m.data().getAtIndex(ScalarKernels.FLOAT, (long) token * dim + i);
                }
            }
            case Matrix.Q8 m -> {
                for (int i = 0; i < dim; i++) {
                    long at = (long) token * dim + i;
                    x[i] = m.values().get(ValueLayout.JAVA_BYTE, at) * m.scales().getAtIndex(ScalarKernels.FLOAT, at / m.groupSize());
                }
            }
            default -> throw new IllegalArgumentException("llama2.c reference: no " + w.tokenEmbedding().typeName() + " matrices");
        }
        for (int l = 0; l < c.nLayers(); l++) {
            ScalarKernels.rmsnorm(xb, x, w.rmsAtt()[l], dim);
            matmul(q, xb, dim, w.wq()[l]);
            matmul(k, xb, dim, w.wk()[l]);
            matmul(v, xb, dim, w.wv()[l]);
            ScalarKernels.rope(q, k, pos, dim, kvDim, hsz, freq, io.github.llama2j.math.FloatMath.standard());
            System.arraycopy(k, 0, keyCache[l], pos * kvDim, kvDim);
            System.arraycopy(v, 0, valueCache[l], pos * kvDim, kvDim);
            for (int h = 0; h < c.nHeads(); h++) {
                ScalarKernels.attentionHead(xb, q, keyCache[l], valueCache[l], att, h * c.seqLen(), h, pos, hsz, kvDim, c.kvMul(), io.github.llama2j.math.FloatMath.standard());
            }
            matmul(xb2, xb, dim, w.wo()[l]);
            ScalarKernels.add(x, xb2, dim);
            ScalarKernels.rmsnorm(xb, x, w.rmsFfn()[l], dim);
            matmul(hb, xb, dim, w.w1()[l]);
            matmul(hb2, xb, dim, w.w3()[l]);
            ScalarKernels.swiglu(hb, hb2, hidden, io.github.llama2j.math.FloatMath.standard());
            matmul(xb, hb, hidden, w.w2()[l]);
            ScalarKernels.add(x, xb, dim);
        }
        ScalarKernels.rmsnorm(x, x, w.rmsFinal(), dim);
        matmul(logits, x, dim, w.classifier());
        return logits;
    }

    private void matmul(float[] out, float[] in, int n, Matrix m) {
        switch (m) {
            case Matrix.F32 f -> s.matmulF32(out, in, f, 0, f.rows());
            case Matrix.Q8 q8 -> {
                byte[] qv = n == c.dim() ? xq : hq;
                float[] sv = n == c.dim() ? xs : hs;
                ScalarKernels.quantize(in, n, q8.groupSize(), qv, sv);
                s.matmulQ8(out, qv, sv, q8, 0, q8.rows());
            }
            default -> throw new IllegalArgumentException("llama2.c reference: no " + m.typeName() + " matrices");
        }
    }
}
