package io.github.llama2j.hybrid;

import io.github.llama2j.cpu.Activations;

/**
 * What the host hands every shard for one step: the activation after rmsnorm ({@code xb}, float32), the
 * forms of it that the step's matrices read ({@code act}: runq's Q8 groups for llama2.c Q8 checkpoints;
 * F16-rounded values and GGML Q8_0 blocks for GGUF models, as the CPU engine makes them), the position,
 * and the logits that shards fill row range by row range. The host writes these between steps only, while
 * no shard runs; shards only read them during a step (and write their own disjoint logits rows), so every
 * shard computes from the same bits.
 */
final class StepInput {
    final float[] xb;          // (dim)
    final Activations act;     // xb's forms, prepared by the host for the step's matrices
    final float[] logits;      // (vocab)
    int pos;

    StepInput(int dim, int vocab) {
        xb = new float[dim];
        act = new Activations(dim);
        logits = new float[vocab];
    }
}
