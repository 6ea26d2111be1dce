package io.github.llama2j.hybrid;

/**
 * What the host hands every shard for one step: the activation after rmsnorm (float32), its runq
 * quantization (Q8 models), the position, and the logits that shards fill row range by row range.
 * The host writes these between steps only, while no shard runs; shards only read them during a step
 * (and write their own disjoint logits rows).
 */
final class StepInput {
    final float[] xb;
    final byte[] xq;
    final float[] xs;
    final float[] logits;
    int pos;

    StepInput(int dim, int groupSize, int vocab) {
        xb = new float[dim];
        xq = new byte[dim];
        xs = new float[dim / Math.max(1, groupSize)];
        logits = new float[vocab];
    }
}
