package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Weights;

import java.util.Locale;

/**
 * What the forward graph needs on the device, computed from the checkpoint before anything is copied,
 * and the check against the device: the sum against its global memory (or a configured limit), the
 * largest single buffer against its maximum allocation.
 *
 * @param weights     bytes of weights (stacked matrices, norms) plus the RoPE table
 * @param kvCache     bytes of the key and value caches (float32, every layer, seq_len positions)
 * @param activations bytes of activations, scratch and logits, and the batched prefill's chunk buffers
 * @param largest     bytes of the largest single buffer
 */
record MemoryBudget(long weights, long kvCache, long activations, long largest) {

    long total() {
        return weights + kvCache + activations;
    }

    /** The engine as {@link TornadoEngine}'s public constructors build it: with the batched prefill's chunk buffers. */
    static MemoryBudget of(Configuration c, Weights w) {
        return of(c, w, PrefillGraph.CHUNK);
    }

    /**
     * @param prefillChunk tokens per chunk of the batched prefill's buffers, 0 for an engine built without them
     *                     (they are counted only where the model has a batched prefill, {@link PrefillGraph#supports}: llama2.c checkpoints and most GGUF models)
     */
    static MemoryBudget of(Configuration c, Weights w, int prefillChunk) {
        long weights = DeviceMatrix.deviceBytes(w.tokenEmbedding())
                + (w.classifier() == w.tokenEmbedding() ? 0 : DeviceMatrix.deviceBytes(w.classifier()))
                + w.rmsFinal().byteSize() + (long) c.seqLen() * c.headSize() * Float.BYTES;
        long largest = Math.max(DeviceMatrix.deviceBytes(w.tokenEmbedding()), DeviceMatrix.deviceBytes(w.classifier()));
        for (int l = 0; l < c.nLayers(); l++) {
            long qkv = DeviceMatrix.deviceBytes(w.wq()[l]) + DeviceMatrix.deviceBytes(w.wk()[l]) + DeviceMatrix.deviceBytes(w.wv()[l]);
            long w13 = DeviceMatrix.deviceBytes(w.w1()[l]) + DeviceMatrix.deviceBytes(w.w3()[l]);
            long wo = DeviceMatrix.deviceBytes(w.wo()[l]), w2 = DeviceMatrix.deviceBytes(w.w2()[l]);
            weights += w.rmsAtt()[l].byteSize() + w.rmsFfn()[l].byteSize() + qkv + w13 + wo + w2;
            for (java.lang.foreign.MemorySegment[] optional : new java.lang.foreign.MemorySegment[][]{w.bq(), w.bk(), w.bv(), w.qNorm(), w.kNorm()}) {
                weights += optional == null ? 0 : optional[l].byteSize();
            }
            largest = Math.max(largest, Math.max(Math.max(qkv, w13), Math.max(wo, w2)));
        }
        long kvLayer = (long) c.seqLen() * c.kvDim() * Float.BYTES;
        largest = Math.max(largest, kvLayer);
        long kv = 2L * c.nLayers() * kvLayer;
        // x (dim), q and xb (q_dim), hb (hidden; GGUF 2 hidden), attention scores, logits, GGUF's qkv (see ForwardGraph)
        boolean ggml = ForwardGraph.isGgml(c);
        long floats = c.dim() + 2L * c.qDim() + (ggml ? 2L : 1L) * c.hiddenDim() + (long) c.nHeads() * c.seqLen()
                + c.vocabSize() + (ggml ? (long) c.qDim() + 2L * c.kvDim() : 0);
        long prefill = 0;
        if (prefillChunk > 0 && PrefillGraph.supports(c, w)) { // the batched prefill's chunk buffers, attention scores the largest
            int chunk = Math.min(prefillChunk, c.seqLen());
            prefill = PrefillGraph.bytes(c, chunk);
            largest = Math.max(largest, 4L * chunk * c.nHeads() * c.seqLen());
        }
        return new MemoryBudget(weights, kv, floats * Float.BYTES + 8 + prefill, largest);
    }

    /**
     * Throws a clear error naming both numbers when the model does not fit.
     *
     * @param available the device's global memory, or the configured limit if smaller
     * @param maxBuffer the device's largest single allocation
     */
    void check(String model, String device, long available, String availableWhat, long maxBuffer) {
        if (total() > available) {
            throw new Llama2jException(String.format(Locale.ROOT,
                    "%s does not fit on %s: it needs %s (weights %s + KV cache %s + activations %s), %s is %s",
                    model, device, mib(total()), mib(weights), mib(kvCache), mib(activations), availableWhat, mib(available)),
                    Llama2jException.UNAVAILABLE);
        }
        if (maxBuffer > 0 && largest > maxBuffer) {
            throw new Llama2jException(String.format(Locale.ROOT,
                    "%s does not fit on %s: its largest buffer needs %s, the device's largest allocation is %s",
                    model, device, mib(largest), mib(maxBuffer)), Llama2jException.UNAVAILABLE);
        }
    }

    static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1f MiB (%d bytes)", bytes / (1024.0 * 1024.0), bytes);
    }
}
