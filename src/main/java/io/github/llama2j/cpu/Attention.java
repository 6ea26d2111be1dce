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
 *   <li><b>Softmax</b> is {@link ScalarKernels#softmax} itself (a sequential sum, and the same expf).</li>
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
        for (; i < upper; i += BLOCK) {
            FloatVector acc = FloatVector.zero(F);
            for (int t = 0; t <= pos; t++) {
                acc = acc.add(FloatVector.fromArray(F, vc, t * kvDim + vOff + i).mul(att[attOff + t]));
            }
            acc.intoArray(out, qOff + i);
        }
        for (; i < headSize; i++) {
            float acc = 0.0f;
            for (int t = 0; t <= pos; t++) {
                acc += att[attOff + t] * vc[t * kvDim + vOff + i];
            }
            out[qOff + i] = acc;
        }
    }
}
