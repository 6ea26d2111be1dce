package io.github.llama2j.hybrid;

import io.github.llama2j.model.Configuration;

/**
 * Device memory a device shard needs for a split, computed before anything is copied: its weight slices,
 * its key/value cache slice, one RoPE table per attention graph, and each graph's activations. This is
 * what lets a model larger than the device run with part of every layer on the CPU: the automatic split
 * only considers splits whose device share fits.
 */
final class DeviceBudget {
    private DeviceBudget() {
    }

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
