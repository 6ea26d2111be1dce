package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * How the rows of every matmul are divided among N shards (devices), per kind of matrix. Each shard
 * owns one contiguous range of each kind, in shard order:
 * <ul>
 *   <li><b>heads</b>: query heads [h0, h1). The shard computes those heads' rows of wq, the rows of wk and
 *       wv of their key/value heads, their attention over its own slice of the key/value cache, and the
 *       matching input columns of wo (a partial sum of the full-width output). A boundary must fall on a
 *       key/value group (a multiple of kvMul heads, so each side owns whole kv heads with all their query
 *       heads) and on the {@link #columnGrain(Configuration, Weights) column grain} of wo's input (heads × headSize a
 *       multiple of it, so each side quantizes whole groups or blocks exactly as runq or llama.cpp does, and a
 *       K-quant column slice keeps whole super-blocks of 256).</li>
 *   <li><b>ffn</b>: hidden rows [r0, r1) of w1 and w3, and the same input columns of w2 (a partial sum);
 *       a multiple of the column grain, for the same reason.</li>
 *   <li><b>vocab</b>: rows [v0, v1) of the classifier; the shard's logits are exchanged as they are.</li>
 * </ul>
 *
 * @param heads  N + 1 head boundaries, from 0 to nHeads
 * @param ffn    N + 1 hidden-row boundaries, from 0 to hiddenDim
 * @param vocab  N + 1 classifier-row boundaries, from 0 to vocabSize
 */
public record SplitPlan(int[] heads, int[] ffn, int[] vocab) {

    /** The three kinds of split, in the order the forward pass meets them. */
    public enum Kind {
        ATTENTION("attention"), FFN("ffn"), CLASSIFIER("classifier");

        final String label;

        Kind(String label) {
            this.label = label;
        }
    }

    public SplitPlan {
        if (heads.length != ffn.length || heads.length != vocab.length || heads.length < 2) {
            throw new IllegalArgumentException("boundaries of different shard counts");
        }
        heads = heads.clone();
        ffn = ffn.clone();
        vocab = vocab.clone();
    }

    public int shards() {
        return heads.length - 1;
    }

    /**
     * The plan for two shards, device first: the device gets the given fraction of each kind's rows,
     * rounded to the nearest allowed boundary of the column grain {@code grain} ({@link #columnGrain(Configuration, Weights)}).
     */
    public static SplitPlan twoWay(Configuration c, int grain, double attention, double ffn, double classifier) {
        return of(c, grain, new double[]{attention, 1 - attention}, new double[]{ffn, 1 - ffn},
                new double[]{classifier, 1 - classifier});
    }

    /** As {@link #twoWay(Configuration, int, double, double, double)} with the grain of a model without K-quants. */
    public static SplitPlan twoWay(Configuration c, double attention, double ffn, double classifier) {
        return twoWay(c, columnGrain(c), attention, ffn, classifier);
    }

    /**
     * N shards with a share of each kind each (shares of one kind are normalised to sum 1), boundaries on the column
     * grain {@code grain}.
     */
    public static SplitPlan of(Configuration c, int grain, double[] attention, double[] ffn, double[] classifier) {
        return new SplitPlan(boundaries(attention, headBoundaries(c, grain)), boundaries(ffn, ffnBoundaries(c, grain)),
                boundaries(classifier, allBoundaries(c.vocabSize())));
    }

    /** As {@link #of(Configuration, int, double[], double[], double[])} with the grain of a model without K-quants. */
    public static SplitPlan of(Configuration c, double[] attention, double[] ffn, double[] classifier) {
        return of(c, columnGrain(c), attention, ffn, classifier);
    }

    /**
     * The values a column slice of wo or w2 starts on: runq's group for llama2.c Q8 checkpoints; for GGUF
     * models GGML's Q8_0 block (32), whatever their types, so that one rule holds for a file that mixes
     * F32, F16 and Q8_0 matrices (a Q8_0 column slice keeps whole blocks, and each side quantizes its part
     * of the input in llama.cpp's blocks); 1 (any column) for float32 checkpoints. A model whose wo or w2 is a
     * K-quant needs more: {@link #columnGrain(Configuration, Weights)}.
     */
    public static int columnGrain(Configuration c) {
        if (c.ropeStyle() != RopeStyle.LLAMA2C) {
            return Matrix.Q8_0.BLOCK;
        }
        return c.quantized() ? c.groupSize() : 1;
    }

    /**
     * The column grain of this model's wo and w2: {@link #columnGrain(Configuration)}, or a K-quant super-block (256)
     * where any wo or w2 is Q4_K or Q6_K: a column slice of K-quant blocks keeps whole super-blocks, and each side
     * quantizes its part of the input in llama.cpp's Q8_K blocks of 256. (One grain for every layer, so that a file
     * whose layers differ in type, as Q4_K_M's do, splits every layer alike; the block sizes are powers of two, so
     * the largest is a multiple of the others.)
     */
    public static int columnGrain(Configuration c, Weights w) {
        int grain = columnGrain(c);
        for (int l = 0; l < c.nLayers(); l++) {
            grain = Math.max(grain, Math.max(columnBlock(w.wo()[l]), columnBlock(w.w2()[l])));
        }
        return grain;
    }

    /** The columns a block of m spans where it is larger than Q8_0's (the K-quants' super-block), else 1. */
    private static int columnBlock(Matrix m) {
        return switch (m) {
            case Matrix.Q4_K q -> Matrix.Q4_K.BLOCK;
            case Matrix.Q6_K q -> Matrix.Q6_K.BLOCK;
            default -> 1;
        };
    }

    /** Every allowed head boundary, ascending, 0 and nHeads included, for a model without K-quants. */
    public static int[] headBoundaries(Configuration c) {
        return headBoundaries(c, columnGrain(c));
    }

    /** Every allowed head boundary on column grain {@code grain}, ascending, 0 and nHeads included. */
    public static int[] headBoundaries(Configuration c, int grain) {
        List<Integer> out = new ArrayList<>();
        for (int h = 0; h <= c.nHeads(); h++) {
            boolean kvGroup = h % c.kvMul() == 0;
            boolean whole = (h * c.headSize()) % grain == 0;
            if (kvGroup && whole || h == c.nHeads()) {
                out.add(h);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Every allowed hidden-row boundary, ascending, 0 and hiddenDim included, for a model without K-quants. */
    public static int[] ffnBoundaries(Configuration c) {
        return ffnBoundaries(c, columnGrain(c));
    }

    /** Every allowed hidden-row boundary on column grain {@code grain}, ascending, 0 and hiddenDim included. */
    public static int[] ffnBoundaries(Configuration c, int grain) {
        List<Integer> out = new ArrayList<>();
        for (int r = 0; r <= c.hiddenDim(); r++) {
            if (r % grain == 0 || r == c.hiddenDim()) {
                out.add(r);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private static int[] allBoundaries(int n) {
        int[] out = new int[n + 1];
        Arrays.setAll(out, i -> i);
        return out;
    }

    /** Cumulative shares rounded to the nearest allowed boundary (monotone, first 0, last the total). */
    static int[] boundaries(double[] shares, int[] allowed) {
        double total = 0;
        for (double s : shares) {
            if (!(s >= 0) || Double.isInfinite(s)) {
                throw new Llama2jException("split share " + s + " must be a number >= 0", Llama2jException.BAD_USAGE);
            }
            total += s;
        }
        if (total <= 0) {
            throw new Llama2jException("split shares sum to 0", Llama2jException.BAD_USAGE);
        }
        int max = allowed[allowed.length - 1];
        int[] out = new int[shares.length + 1];
        double acc = 0;
        for (int i = 0; i < shares.length; i++) {
            acc += shares[i];
            int b = i == shares.length - 1 ? max : nearest(allowed, acc / total * max);
            out[i + 1] = Math.max(b, out[i]);
        }
        return out;
    }

    private static int nearest(int[] allowed, double target) {
        int best = allowed[0];
        for (int a : allowed) {
            // ties go to the smaller boundary, so 0.5 of an odd count rounds the same way every time
            if (Math.abs(a - target) < Math.abs(best - target) - 1e-9) {
                best = a;
            }
        }
        return best;
    }

    public int headStart(int shard) {
        return heads[shard];
    }

    public int headEnd(int shard) {
        return heads[shard + 1];
    }

    public int ffnStart(int shard) {
        return ffn[shard];
    }

    public int ffnEnd(int shard) {
        return ffn[shard + 1];
    }

    public int vocabStart(int shard) {
        return vocab[shard];
    }

    public int vocabEnd(int shard) {
        return vocab[shard + 1];
    }

    /** Whether the shard owns any rows of this kind (a shard with none skips that step entirely). */
    public boolean owns(int shard, Kind kind) {
        int[] b = bounds(kind);
        return b[shard + 1] > b[shard];
    }

    int[] bounds(Kind kind) {
        return switch (kind) {
            case ATTENTION -> heads;
            case FFN -> ffn;
            case CLASSIFIER -> vocab;
        };
    }

    /** The fraction of this kind's rows that a shard owns. */
    public double fraction(int shard, Kind kind) {
        int[] b = bounds(kind);
        return (b[shard + 1] - b[shard]) / (double) b[b.length - 1];
    }

    /** One line: each kind's boundaries, e.g. {@code heads 4/8 | ffn 86/172 | vocab 256/512}. */
    public String describe() {
        return String.format(Locale.ROOT, "heads %s | ffn rows %s | classifier rows %s", shares(heads), shares(ffn), shares(vocab));
    }

    private static String shares(int[] b) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i + 1 < b.length; i++) {
            if (i > 0) {
                sb.append('+');
            }
            sb.append(b[i + 1] - b[i]);
        }
        return sb.append(" of ").append(b[b.length - 1]).toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SplitPlan p && Arrays.equals(heads, p.heads) && Arrays.equals(ffn, p.ffn)
                && Arrays.equals(vocab, p.vocab);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(heads) * 31 * 31 + Arrays.hashCode(ffn) * 31 + Arrays.hashCode(vocab);
    }

    @Override
    public String toString() {
        return describe();
    }
}
