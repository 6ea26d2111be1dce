package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.RopeStyle;

import java.lang.foreign.MemorySegment;

/**
 * Rotary position embedding (RoPE) of one model: the frequency of each pair of a head's dimensions,
 * and from it the rotation (cos, sin) of each pair at a position. Every engine takes its angles from
 * here, so they all rotate by the same bits:
 * <pre>
 *   freq[p]       = 1 / powf(theta, 2p / head_size)       p in [0, head_size/2)   (run.c, in float)
 *   cos, sin[p]   = cosf(pos * freq[p]), sinf(pos * freq[p])
 *   (v0, v1)     -> (v0 cos - v1 sin, v0 sin + v1 cos)     for each pair (2p, 2p+1) of every head
 * </pre>
 * through the given {@link FloatMath} (the C library's powf/cosf/sinf in exact mode, as llama2.c calls them).
 * {@link ScalarKernels#rope} is the reference that recomputes the angles per pair as run.c does.
 *
 * <p>Immutable and thread-safe; the cos/sin buffers belong to the caller.
 */
public final class Rope {
    private final int headSize;
    private final float theta;
    private final float[] freq; // (head_size/2)
    private final FloatMath math;
    private final RopeStyle style;
    private final MemorySegment factors; // (head_size/2) frequency divisors (Llama 3.1's rope_freqs), or null

    /**
     * @param headSize dimensions per head (even)
     * @param theta    the base of the frequencies ({@link Configuration#LLAMA2C_ROPE_THETA} for llama2.c checkpoints)
     * @param math     powf, cosf and sinf
     */
    public Rope(int headSize, float theta, FloatMath math) {
        this(headSize, theta, RopeStyle.LLAMA2C, null, math);
    }

    /** The model's RoPE: its head size, base and style, with the frequency factors of its weights (or none). */
    public static Rope of(Configuration c, MemorySegment factors, FloatMath math) {
        return new Rope(c.headSize(), c.ropeTheta(), c.ropeStyle(), factors, math);
    }

    /**
     * @param style   run.c's angles and pairs ({@link RopeStyle#LLAMA2C}) or llama.cpp's (NORM, NEOX)
     * @param factors GGUF only: (head_size/2) float32 divisors of the angles, or null
     */
    public Rope(int headSize, float theta, RopeStyle style, MemorySegment factors, FloatMath math) {
        if (headSize < 2 || headSize % 2 != 0) {
            throw new IllegalArgumentException("RoPE needs an even head size, got " + headSize);
        }
        if (!(theta > 0.0f) || Float.isInfinite(theta)) {
            throw new IllegalArgumentException("RoPE theta must be positive and finite, got " + theta);
        }
        this.headSize = headSize;
        this.theta = theta;
        this.math = math;
        this.style = style;
        this.factors = factors;
        this.freq = ScalarKernels.ropeFrequencies(headSize, theta, math);
    }

    public int headSize() {
        return headSize;
    }

    public float theta() {
        return theta;
    }

    /** How pairs are formed and angles computed (run.c's, or llama.cpp's NORM or NEOX). */
    public RopeStyle style() {
        return style;
    }

    /** Pairs per head: the length of the cos and sin arrays. */
    public int pairs() {
        return freq.length;
    }

    /** The frequency of each pair, a copy: (head_size/2). */
    public float[] frequencies() {
        return freq.clone();
    }

    /** The rotation of each pair at {@code pos}: cos[p], sin[p] for p in [0, head_size/2). */
    public void angles(int pos, float[] cos, float[] sin) {
        if (style == RopeStyle.LLAMA2C) {
            VectorOps.ropeAngles(pos, freq, cos, sin, math);
        } else {
            GgmlOps.ropeAngles(pos, headSize, theta, factors, cos, sin, math);
        }
    }

    /**
     * Rotates every head of q (qHeads heads) and k (kvHeads heads) in this RoPE's style by the angles of
     * {@link #angles}: adjacent pairs (run.c, NORM) or pairs half a head apart (NEOX).
     */
    public void rotate(float[] q, int qHeads, float[] k, int kvHeads, float[] cos, float[] sin) {
        switch (style) {
            case LLAMA2C -> rotate(q, qHeads * headSize, k, kvHeads * headSize, headSize, cos, sin);
            case NORM -> {
                GgmlOps.ropeNorm(q, qHeads, headSize, cos, sin);
                GgmlOps.ropeNorm(k, kvHeads, headSize, cos, sin);
            }
            case NEOX -> {
                GgmlOps.ropeNeox(q, qHeads, headSize, cos, sin);
                GgmlOps.ropeNeox(k, kvHeads, headSize, cos, sin);
            }
        }
    }

    /**
     * Every position's rotations in one table, as the device engines upload it:
     * {@code t[(pos * head_size/2 + p) * 2]} = cos, {@code + 1} = sin; (seq_len, head_size/2, 2).
     */
    public float[] table(int seqLen) {
        int half = pairs();
        float[] t = new float[Math.multiplyExact(seqLen, headSize)];
        float[] cos = new float[half], sin = new float[half];
        for (int pos = 0; pos < seqLen; pos++) {
            angles(pos, cos, sin);
            for (int p = 0; p < half; p++) {
                t[(pos * half + p) * 2] = cos[p];
                t[(pos * half + p) * 2 + 1] = sin[p];
            }
        }
        return t;
    }

    /**
     * Rotates the first {@code qRows} values of q and the first {@code kvRows} of k by the angles of
     * {@link #angles}. The arrays must start on a head boundary (pair p of a head is i % head_size / 2).
     */
    public static void rotate(float[] q, int qRows, float[] k, int kvRows, int headSize, float[] cos, float[] sin) {
        VectorOps.rope(q, k, qRows, kvRows, headSize, cos, sin);
    }
}
