package io.github.llama2j.gguf;

/**
 * An independent double-precision forward pass over an all-float32 GGUF file, reading tensors by
 * llama.cpp's names straight from {@link GgufFile} (not through the model loader): the definition
 * the CPU engine's GGUF path is checked against on tiny models with shapes the golden files lack
 * (head size != dim / heads, GQA with biases, q/k norms, rope factors).
 */
final class GgufReference {
    private final GgufFile f;
    private final String a;
    private final int dim, hidden, layers, heads, kvHeads, hs, vocab;
    private final double eps, theta;
    private final boolean neox;
    private final double[][][] keys, values; // [layer][pos][kvDim]

    GgufReference(GgufFile f, int seqLen) {
        this.f = f;
        a = f.getString("general.architecture");
        dim = (int) f.getLong(a + ".embedding_length");
        hidden = (int) f.getLong(a + ".feed_forward_length");
        layers = (int) f.getLong(a + ".block_count");
        heads = (int) f.getLong(a + ".attention.head_count");
        kvHeads = (int) f.getLong(a + ".attention.head_count_kv");
        hs = f.has(a + ".attention.key_length") ? (int) f.getLong(a + ".attention.key_length") : dim / heads;
        vocab = (int) f.tensor("token_embd.weight").orElseThrow().ne(1);
        eps = f.getFloat(a + ".attention.layer_norm_rms_epsilon");
        theta = f.getFloat(a + ".rope.freq_base");
        neox = !a.equals("llama");
        keys = new double[layers][seqLen][kvHeads * hs];
        values = new double[layers][seqLen][kvHeads * hs];
    }

    private float[] t(String name) {
        GgufTensorInfo info = f.tensor(name).orElse(null);
        if (info == null) {
            return null;
        }
        float[] out = new float[(int) info.elementCount()];
        java.lang.foreign.MemorySegment.copy(f.data(info), GgufFile.FLOAT, 0, out, 0, out.length);
        return out;
    }

    /** out[r] = sum_c w[r * cols + c] * x[c], for GGUF ne = [cols, rows]. */
    private static double[] mm(float[] w, double[] x, int rows) {
        int cols = x.length;
        double[] out = new double[rows];
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int c = 0; c < cols; c++) {
                s += w[r * cols + c] * x[c];
            }
            out[r] = s;
        }
        return out;
    }

    private double[] rmsnorm(double[] x, int off, int n, float[] w) {
        double ss = 0;
        for (int i = 0; i < n; i++) {
            ss += x[off + i] * x[off + i];
        }
        double s = 1 / Math.sqrt(ss / n + eps);
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            out[i] = x[off + i] * s * w[i];
        }
        return out;
    }

    private void rope(double[] x, int nHeads, int pos, float[] factors) {
        for (int h = 0; h < nHeads; h++) {
            for (int i = 0; i < hs / 2; i++) {
                double angle = pos * Math.pow(theta, -2.0 * i / hs) / (factors == null ? 1 : factors[i]);
                int i0 = h * hs + (neox ? i : 2 * i), i1 = h * hs + (neox ? i + hs / 2 : 2 * i + 1);
                double x0 = x[i0], x1 = x[i1];
                x[i0] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
                x[i1] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
            }
        }
    }

    double[] forward(int token, int pos) {
        float[] emb = t("token_embd.weight");
        double[] x = new double[dim];
        for (int i = 0; i < dim; i++) {
            x[i] = emb[token * dim + i];
        }
        int kvDim = kvHeads * hs;
        float[] factors = t("rope_freqs.weight");
        for (int l = 0; l < layers; l++) {
            String p = "blk." + l + ".";
            double[] xb = rmsnorm(x, 0, dim, t(p + "attn_norm.weight"));
            double[] q = mm(t(p + "attn_q.weight"), xb, heads * hs);
            double[] k = mm(t(p + "attn_k.weight"), xb, kvDim);
            double[] v = mm(t(p + "attn_v.weight"), xb, kvDim);
            if (t(p + "attn_q.bias") != null) {
                float[] bq = t(p + "attn_q.bias"), bk = t(p + "attn_k.bias"), bv = t(p + "attn_v.bias");
                for (int i = 0; i < q.length; i++) {
                    q[i] += bq[i];
                }
                for (int i = 0; i < kvDim; i++) {
                    k[i] += bk[i];
                    v[i] += bv[i];
                }
            }
            if (t(p + "attn_q_norm.weight") != null) {
                for (int h = 0; h < heads; h++) {
                    System.arraycopy(rmsnorm(q, h * hs, hs, t(p + "attn_q_norm.weight")), 0, q, h * hs, hs);
                }
                for (int h = 0; h < kvHeads; h++) {
                    System.arraycopy(rmsnorm(k, h * hs, hs, t(p + "attn_k_norm.weight")), 0, k, h * hs, hs);
                }
            }
            rope(q, heads, pos, factors);
            rope(k, kvHeads, pos, factors);
            keys[l][pos] = k;
            values[l][pos] = v;
            double[] att = new double[heads * hs];
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                double[] s = new double[pos + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int tt = 0; tt <= pos; tt++) {
                    double d = 0;
                    for (int i = 0; i < hs; i++) {
                        d += q[h * hs + i] * keys[l][tt][kvh * hs + i];
                    }
                    s[tt] = d / Math.sqrt(hs);
                    max = Math.max(max, s[tt]);
                }
                double sum = 0;
                for (int tt = 0; tt <= pos; tt++) {
                    s[tt] = Math.exp(s[tt] - max);
                    sum += s[tt];
                }
                for (int tt = 0; tt <= pos; tt++) {
                    for (int i = 0; i < hs; i++) {
                        att[h * hs + i] += s[tt] / sum * values[l][tt][kvh * hs + i];
                    }
                }
            }
            double[] o = mm(t(p + "attn_output.weight"), att, dim);
            for (int i = 0; i < dim; i++) {
                x[i] += o[i];
            }
            xb = rmsnorm(x, 0, dim, t(p + "ffn_norm.weight"));
            double[] g = mm(t(p + "ffn_gate.weight"), xb, hidden), u = mm(t(p + "ffn_up.weight"), xb, hidden);
            for (int i = 0; i < hidden; i++) {
                g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
            }
            double[] d = mm(t(p + "ffn_down.weight"), g, dim);
            for (int i = 0; i < dim; i++) {
                x[i] += d[i];
            }
        }
        x = rmsnorm(x, 0, dim, t("output_norm.weight"));
        float[] out = t("output.weight");
        return mm(out == null ? emb : out, x, vocab);
    }
}
