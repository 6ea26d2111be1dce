package io.github.llama2j.cpu;

import io.github.llama2j.model.Configuration;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The key/value cache of every layer and run.c's multi-head attention over it, bit-identical to
 * {@link ScalarKernels#attentionHead} but vectorized where the order of operations allows:
 * <ul>
 *   <li><b>Scores</b> {@code q·k_t / sqrt(head_size)}: each score is a sequential sum over the head's
 *       dimensions, so the vector runs across timesteps instead: lane {@code l} sums its own
 *       timestep's products in run.c's order. For that the keys are stored transposed in blocks of
 *       as many timesteps as a vector has lanes: {@code keys[layer][kvHead][block][i][lane]}, so one
 *       load gives dimension i of a block of timesteps.</li>
 *   <li><b>Softmax</b> is {@link ScalarKernels#softmax} itself (a sequential sum, and the same expf); for
 *       {@link #heads4}'s four queries {@link VectorOps#softmax4}, bit-identical to it.</li>
 *   <li><b>Weighted sum of values</b> {@code out[i] = sum_t a_t * v_t[i]}: elementwise in i and
 *       accumulated over t in order, so the vector runs along i. Values keep run.c's layout
 *       {@code [layer][t][kvDim]}.</li>
 * </ul>
 * A cache may hold a slice of the model's key/value heads (the hybrid engine's CPU shard): its arrays then
 * start at the slice's first head, and query head h reads local key/value head h / kv_mul.
 */
public final class Attention {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Timesteps per key block: one per lane. */
    private static final int BLOCK = F.length();

    private final int headSize, kvDim, kvMul, blocks;
    private final float scale;
    private final float[][] keys;   // [layer][kvHead][block][i][lane]
    private final float[][] values; // [layer][t][kvDim]

    private final io.github.llama2j.math.FloatMath math;

    /** The cache of every key/value head of the model. */
    Attention(Configuration c, io.github.llama2j.math.FloatMath math) {
        this(c.nLayers(), c.seqLen(), c.headSize(), c.nKvHeads(), c.kvMul(), math);
    }

    /**
     * A cache of {@code kvHeads} key/value heads, each shared by {@code kvMul} query heads.
     *
     * @param math expf, for softmax
     */
    public Attention(int nLayers, int seqLen, int headSize, int kvHeads, int kvMul, io.github.llama2j.math.FloatMath math) {
        this.math = math;
        this.headSize = headSize;
        this.kvDim = kvHeads * headSize;
        this.kvMul = kvMul;
        this.blocks = Math.ceilDiv(seqLen, BLOCK);
        this.scale = (float) Math.sqrt(headSize);
        this.keys = new float[nLayers][Math.multiplyExact(Math.multiplyExact(kvHeads * blocks, headSize), BLOCK)];
        this.values = new float[nLayers][Math.multiplyExact(seqLen, kvDim)];
    }

    /** Length of a head's score row: seq_len rounded up to whole blocks (whole vectors are stored). */
    public int scoreStride() {
        return blocks * BLOCK;
    }

    /** Caches position pos's key and value rows (k after RoPE; (kv_dim) each, this cache's heads) in the given layer. */
    public void store(int layer, int pos, float[] k, float[] v) {
        float[] kc = keys[layer];
        int block = pos / BLOCK, lane = pos % BLOCK;
        for (int i = 0; i < kvDim; i++) {
            int kvHead = i / headSize, d = i % headSize;
            kc[((kvHead * blocks + block) * headSize + d) * BLOCK + lane] = k[i];
        }
        System.arraycopy(v, 0, values[layer], pos * kvDim, kvDim);
    }

    /** Floats of a score row for positions [0, positions): whole blocks. */
    static int scoreLength(int positions) {
        return Math.ceilDiv(positions, BLOCK) * BLOCK;
    }

    /** Queries {@link #heads4} takes together. */
    static final int QUERIES = 4;

    /**
     * {@link #head} for four consecutive tokens at once, token j at position pos0 + j (query q[b0 + j], output
     * out[b0 + j], its scores at att[j * attStride ..]): the batched prefill's case. Each key and value vector
     * loaded serves the four queries (two blocks of timesteps, or two vectors of dimensions, times four queries per
     * pass), where {@link #head} loads it once per query. Every lane's arithmetic is {@link #head}'s in its order
     * (scores: products added over the dimensions in order, then divided; values: products added over the
     * timesteps in order), so the results are bit-identical; the blocks past a query's own position are computed
     * and ignored, as {@link #head} does within its last block.
     *
     * @param att scratch, at least 4 · attStride floats, attStride ≥ (pos0 + 4) rounded up to whole blocks
     */
    public void heads4(int layer, int h, int pos0, float[][] q, int b0, float[][] out, float[] att, int attStride) {
        int kvHead = h / kvMul;
        int qOff = h * headSize;
        float[] kc = keys[layer];
        int lastBlock = (pos0 + QUERIES - 1) / BLOCK;
        int headBlock = headSize * BLOCK;
        float[] q0 = q[b0], q1 = q[b0 + 1], q2 = q[b0 + 2], q3 = q[b0 + 3];
        int o1 = attStride, o2 = 2 * attStride, o3 = 3 * attStride;
        int block = 0;
        for (; block + 1 <= lastBlock; block += 2) {
            int base = (kvHead * blocks + block) * headBlock;
            FloatVector s00 = FloatVector.zero(F), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (int i = 0; i < headSize; i++) {
                int at = base + i * BLOCK;
                FloatVector k0 = FloatVector.fromArray(F, kc, at), k1 = FloatVector.fromArray(F, kc, at + headBlock);
                float qi = q0[qOff + i];
                s00 = s00.add(k0.mul(qi));
                s01 = s01.add(k1.mul(qi));
                qi = q1[qOff + i];
                s10 = s10.add(k0.mul(qi));
                s11 = s11.add(k1.mul(qi));
                qi = q2[qOff + i];
                s20 = s20.add(k0.mul(qi));
                s21 = s21.add(k1.mul(qi));
                qi = q3[qOff + i];
                s30 = s30.add(k0.mul(qi));
                s31 = s31.add(k1.mul(qi));
            }
            int to = block * BLOCK;
            s00.div(scale).intoArray(att, to);
            s01.div(scale).intoArray(att, to + BLOCK);
            s10.div(scale).intoArray(att, o1 + to);
            s11.div(scale).intoArray(att, o1 + to + BLOCK);
            s20.div(scale).intoArray(att, o2 + to);
            s21.div(scale).intoArray(att, o2 + to + BLOCK);
            s30.div(scale).intoArray(att, o3 + to);
            s31.div(scale).intoArray(att, o3 + to + BLOCK);
        }
        // the last block when the pairs left one: an if, not a loop (at most one pass): as a loop, C2 guarded it with a
        // loop-limit check that failed at the first prompt from position 0 and deoptimized heads4 (2026-12-03)
        if (block == lastBlock) {
            int base = (kvHead * blocks + block) * headBlock;
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            for (int i = 0; i < headSize; i++) {
                FloatVector k0 = FloatVector.fromArray(F, kc, base + i * BLOCK);
                s0 = s0.add(k0.mul(q0[qOff + i]));
                s1 = s1.add(k0.mul(q1[qOff + i]));
                s2 = s2.add(k0.mul(q2[qOff + i]));
                s3 = s3.add(k0.mul(q3[qOff + i]));
            }
            int to = block * BLOCK;
            s0.div(scale).intoArray(att, to);
            s1.div(scale).intoArray(att, o1 + to);
            s2.div(scale).intoArray(att, o2 + to);
            s3.div(scale).intoArray(att, o3 + to);
        }
        VectorOps.softmax4(att, 0, attStride, pos0 + 1, math); // ScalarKernels.softmax of each query's scores
        // weighted sums: two vectors of dimensions × four queries per pass over the timesteps all four read
        // (0 .. pos0), then each later query's own last timesteps
        float[] vc = values[layer];
        int vOff = kvHead * headSize;
        float[] r0 = out[b0], r1 = out[b0 + 1], r2 = out[b0 + 2], r3 = out[b0 + 3];
        int upper = F.loopBound(headSize);
        int i = 0;
        for (; i + 2 * BLOCK <= upper; i += 2 * BLOCK) {
            FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            int at = vOff + i;
            for (int t = 0; t <= pos0; t++, at += kvDim) {
                FloatVector v0 = FloatVector.fromArray(F, vc, at), v1 = FloatVector.fromArray(F, vc, at + BLOCK);
                float w = att[t];
                a00 = a00.add(v0.mul(w));
                a01 = a01.add(v1.mul(w));
                w = att[o1 + t];
                a10 = a10.add(v0.mul(w));
                a11 = a11.add(v1.mul(w));
                w = att[o2 + t];
                a20 = a20.add(v0.mul(w));
                a21 = a21.add(v1.mul(w));
                w = att[o3 + t];
                a30 = a30.add(v0.mul(w));
                a31 = a31.add(v1.mul(w));
            }
            // timestep pos0 + 1 (queries 1-3), pos0 + 2 (2, 3), pos0 + 3 (3), in order
            FloatVector v0 = FloatVector.fromArray(F, vc, at), v1 = FloatVector.fromArray(F, vc, at + BLOCK);
            float w = att[o1 + pos0 + 1];
            a10 = a10.add(v0.mul(w));
            a11 = a11.add(v1.mul(w));
            w = att[o2 + pos0 + 1];
            a20 = a20.add(v0.mul(w));
            a21 = a21.add(v1.mul(w));
            w = att[o3 + pos0 + 1];
            a30 = a30.add(v0.mul(w));
            a31 = a31.add(v1.mul(w));
            at += kvDim;
            v0 = FloatVector.fromArray(F, vc, at);
            v1 = FloatVector.fromArray(F, vc, at + BLOCK);
            w = att[o2 + pos0 + 2];
            a20 = a20.add(v0.mul(w));
            a21 = a21.add(v1.mul(w));
            w = att[o3 + pos0 + 2];
            a30 = a30.add(v0.mul(w));
            a31 = a31.add(v1.mul(w));
            at += kvDim;
            v0 = FloatVector.fromArray(F, vc, at);
            v1 = FloatVector.fromArray(F, vc, at + BLOCK);
            w = att[o3 + pos0 + 3];
            a30 = a30.add(v0.mul(w));
            a31 = a31.add(v1.mul(w));
            a00.intoArray(r0, qOff + i);
            a01.intoArray(r0, qOff + i + BLOCK);
            a10.intoArray(r1, qOff + i);
            a11.intoArray(r1, qOff + i + BLOCK);
            a20.intoArray(r2, qOff + i);
            a21.intoArray(r2, qOff + i + BLOCK);
            a30.intoArray(r3, qOff + i);
            a31.intoArray(r3, qOff + i + BLOCK);
        }
        // the dimensions left (fewer than two vectors): one query at a time, as head does
        for (int j = 0; j < QUERIES; j++) {
            weightedSum(vc, vOff + i, pos0 + j, att, j * attStride, out[b0 + j], qOff + i, headSize - i);
        }
    }

    /** out[o + d] = sum over t in [0, pos] of att[a + t] * values[v + t · kvDim + d], d in [0, dims): head's order. */
    private void weightedSum(float[] vc, int v, int pos, float[] att, int a, float[] out, int o, int dims) {
        int upper = F.loopBound(dims);
        int i = 0;
        for (; i < upper; i += BLOCK) {
            FloatVector acc = FloatVector.zero(F);
            for (int t = 0; t <= pos; t++) {
                acc = acc.add(FloatVector.fromArray(F, vc, t * kvDim + v + i).mul(att[a + t]));
            }
            acc.intoArray(out, o + i);
        }
        for (; i < dims; i++) {
            float acc = 0.0f;
            for (int t = 0; t <= pos; t++) {
                acc += att[a + t] * vc[t * kvDim + v + i];
            }
            out[o + i] = acc;
        }
    }

    /**
     * run.c's attention of query head h at position pos: writes out[h*headSize .. +headSize).
     *
     * @param att scratch for the head's scores, at least {@link #scoreStride()} floats from attOff
     */
    public void head(int layer, int h, int pos, float[] q, float[] out, float[] att, int attOff) {
        int kvHead = h / kvMul;
        int qOff = h * headSize;
        // scores, a block of timesteps per vector (lanes past pos are computed from unused slots and ignored);
        // four blocks per pass: four independent add chains instead of one, each lane's sum in the same order
        float[] kc = keys[layer];
        int lastBlock = pos / BLOCK;
        int headBlock = headSize * BLOCK;
        int block = 0;
        for (; block + 3 <= lastBlock; block += 4) {
            int base = (kvHead * blocks + block) * headBlock;
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            for (int i = 0; i < headSize; i++) {
                float qi = q[qOff + i];
                int at = base + i * BLOCK;
                s0 = s0.add(FloatVector.fromArray(F, kc, at).mul(qi));
                s1 = s1.add(FloatVector.fromArray(F, kc, at + headBlock).mul(qi));
                s2 = s2.add(FloatVector.fromArray(F, kc, at + 2 * headBlock).mul(qi));
                s3 = s3.add(FloatVector.fromArray(F, kc, at + 3 * headBlock).mul(qi));
            }
            int to = attOff + block * BLOCK;
            s0.div(scale).intoArray(att, to);
            s1.div(scale).intoArray(att, to + BLOCK);
            s2.div(scale).intoArray(att, to + 2 * BLOCK);
            s3.div(scale).intoArray(att, to + 3 * BLOCK);
        }
        for (; block <= lastBlock; block++) {
            int base = (kvHead * blocks + block) * headBlock;
            FloatVector score = FloatVector.zero(F);
            for (int i = 0; i < headSize; i++) {
                score = score.add(FloatVector.fromArray(F, kc, base + i * BLOCK).mul(q[qOff + i]));
            }
            score.div(scale).intoArray(att, attOff + block * BLOCK);
        }
        ScalarKernels.softmax(att, attOff, pos + 1, math);
        // weighted sum of the values, along the head's dimensions; four vectors of dimensions per pass over the
        // timesteps (four independent chains), each lane still summing its timesteps in order
        float[] vc = values[layer];
        int vOff = kvHead * headSize;
        int upper = F.loopBound(headSize);
        int i = 0;
        for (; i + 4 * BLOCK <= upper; i += 4 * BLOCK) {
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int t = 0, at = vOff + i; t <= pos; t++, at += kvDim) {
                float w = att[attOff + t];
                a0 = a0.add(FloatVector.fromArray(F, vc, at).mul(w));
                a1 = a1.add(FloatVector.fromArray(F, vc, at + BLOCK).mul(w));
                a2 = a2.add(FloatVector.fromArray(F, vc, at + 2 * BLOCK).mul(w));
                a3 = a3.add(FloatVector.fromArray(F, vc, at + 3 * BLOCK).mul(w));
            }
            a0.intoArray(out, qOff + i);
            a1.intoArray(out, qOff + i + BLOCK);
            a2.intoArray(out, qOff + i + 2 * BLOCK);
            a3.intoArray(out, qOff + i + 3 * BLOCK);
        }
        weightedSum(vc, vOff + i, pos, att, attOff, out, qOff + i, headSize - i); // the dimensions left
    }
}
