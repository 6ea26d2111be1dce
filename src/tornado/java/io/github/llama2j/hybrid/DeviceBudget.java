package io.github.llama2j.hybrid;

import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;

/**
 * Device memory a device shard needs for a split, computed before anything is copied: its weight slices,
 * its key/value cache slice, one RoPE table per attention graph, and each graph's activations. This is
 * what lets a model larger than the device run with part of every layer on the CPU: the automatic split
 * only considers splits whose device share fits.
 */
final class DeviceBudget {
    private DeviceBudget() {
    }

    /** The bytes for a model of either kind: llama2.c's formula below, or a GGUF model's from its matrices' types. */
    static long bytes(Configuration c, Weights w, SplitPlan plan, int shard) {
        return c.ropeStyle() == RopeStyle.LLAMA2C ? bytes(c, plan, shard) : ggufBytes(c, w, plan, shard);
    }

    /**
     * A GGUF model's device share ({@link ShardGraphs}' GGUF graphs): its weight slices ({@link #ggufWeightBytes}),
     * the biases and head norms, the cache slice, the RoPE table, the q/k/v outputs, and every form of each
     * product's input (float32, F16-rounded, Q8_0).
     */
    private static long ggufBytes(Configuration c, Weights w, SplitPlan plan, int shard) {
        int dim = c.dim(), hs = c.headSize();
        long forms = 9L * dim + (dim / 32 + 1) * 4L;   // the step input: float32, F16-rounded, Q8_0 values and scales
        long total = ggufWeightBytes(c, w, plan, shard);
        if (plan.owns(shard, SplitPlan.Kind.ATTENTION)) {
            int heads = plan.headEnd(shard) - plan.headStart(shard);
            long qRows = (long) heads * hs, kvRows = qRows / c.kvMul();
            long small = (qRows + 2 * kvRows) * 4 * 2 + 2L * hs * 4;   // biases, the q/k/v outputs; head norms
            long cache = 2L * c.seqLen() * kvRows * 4;
            long rope = (long) c.seqLen() * hs * 4;
            long act = (qRows * 2 + (long) heads * c.seqLen() + dim) * 4 + 9 * qRows + (qRows / 32 + 1) * 4 + forms + 8;
            total += c.nLayers() * (small + cache + rope + act);
        }
        if (plan.owns(shard, SplitPlan.Kind.FFN)) {
            long rows = plan.ffnEnd(shard) - plan.ffnStart(shard);
            total += c.nLayers() * ((2 * rows + dim) * 4 + 9 * rows + (rows / 32 + 1) * 4 + forms);
        }
        if (plan.owns(shard, SplitPlan.Kind.CLASSIFIER)) {
            total += (plan.vocabEnd(shard) - plan.vocabStart(shard)) * 4 + forms;
        }
        return total;
    }

    /**
     * A GGUF model's weight slices on the device, every layer's, at their types' device sizes (F32 4 bytes a value,
     * F16 2, Q8_0 repacked and Q4_0 widened 1 + 4/32, Q4_K and Q6_K as the file's blocks, 144 and 210 bytes per 256): what
     * {@link WeightSlices#toDevice} makes of them.
     */
    static long ggufWeightBytes(Configuration c, Weights w, SplitPlan plan, int shard) {
        int dim = c.dim();
        long total = 0;
        for (int l = 0; l < c.nLayers(); l++) {
            if (plan.owns(shard, SplitPlan.Kind.ATTENTION)) {
                long qRows = (long) (plan.headEnd(shard) - plan.headStart(shard)) * c.headSize(), kvRows = qRows / c.kvMul();
                total += slice(w.wq()[l], qRows, dim) + slice(w.wk()[l], kvRows, dim) + slice(w.wv()[l], kvRows, dim)
                        + slice(w.wo()[l], dim, qRows);
            }
            if (plan.owns(shard, SplitPlan.Kind.FFN)) {
                long rows = plan.ffnEnd(shard) - plan.ffnStart(shard);
                total += slice(w.w1()[l], rows, dim) + slice(w.w3()[l], rows, dim) + slice(w.w2()[l], dim, rows);
            }
        }
        if (plan.owns(shard, SplitPlan.Kind.CLASSIFIER)) {
            total += slice(w.classifier(), plan.vocabEnd(shard) - plan.vocabStart(shard), dim);
        }
        return total;
    }

    /** Device bytes of a rows × cols slice of {@code m}'s type. */
    private static long slice(Matrix m, long rows, long cols) {
        long values = rows * cols;
        return switch (m) {
            case Matrix.F16 h -> values * 2;
            case Matrix.Q8_0 q -> values + values / Matrix.Q8_0.BLOCK * Float.BYTES;
            case Matrix.Q4_0 q -> values + values / Matrix.Q4_0.BLOCK * Float.BYTES; // widened to Q8_0's layout
            case Matrix.Q8 q -> values + values / q.groupSize() * Float.BYTES;
            case Matrix.Q4_K q -> values / Matrix.Q4_K.BLOCK * Matrix.Q4_K.BLOCK_BYTES;
            case Matrix.Q6_K q -> values / Matrix.Q6_K.BLOCK * Matrix.Q6_K.BLOCK_BYTES;
            default -> values * Float.BYTES;
        };
    }

    /** A llama2.c checkpoint's device share (all float32 or all Q8). */
    static long bytes(Configuration c, SplitPlan plan, int shard) {
        int dim = c.dim(), hs = c.headSize(), gs = Math.max(1, c.groupSize());
        boolean q8 = c.quantized();
        double perElement = q8 ? 1 + 4.0 / gs : 4;
        long input = q8 ? dim + (long) (dim / gs) * 4 : (long) dim * 4;
        long total = 0;
        if (plan.owns(shard, SplitPlan.Kind.ATTENTION)) {
            int heads = plan.headEnd(shard) - plan.headStart(shard);
            long qRows = (long) heads * hs, kvRows = qRows / c.kvMul();
            long weights = (long) Math.ceil((qRows + 2 * kvRows) * dim * perElement + dim * qRows * perElement);
            long cache = 2L * c.seqLen() * kvRows * 4;
            long rope = (long) c.seqLen() * hs * 4;
            long act = (qRows * 2 + (long) heads * c.seqLen() + dim) * 4 + input + 8 + (q8 ? qRows + qRows / gs * 4 : 0);
            total += c.nLayers() * (weights + cache + rope + act);
        }
        if (plan.owns(shard, SplitPlan.Kind.FFN)) {
            long rows = plan.ffnEnd(shard) - plan.ffnStart(shard);
            long weights = (long) Math.ceil(3 * rows * dim * perElement);
            long act = (rows + dim) * 4 + input + (q8 ? rows + rows / gs * 4 : 0);
            total += c.nLayers() * (weights + act);
        }
        if (plan.owns(shard, SplitPlan.Kind.CLASSIFIER)) {
            long rows = plan.vocabEnd(shard) - plan.vocabStart(shard);
            total += (long) Math.ceil(rows * dim * perElement) + rows * 4 + input;
        }
        return total;
    }
}
