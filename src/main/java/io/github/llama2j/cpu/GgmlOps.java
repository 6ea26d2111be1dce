package io.github.llama2j.cpu;

import io.github.llama2j.math.FloatMath;

import java.lang.foreign.MemorySegment;

/**
 * The non-matmul steps of the forward pass as llama.cpp's CPU backend computes them (ggml-cpu's
 * ops), for GGUF models: where run.c's arithmetic differs from ggml's, following ggml's keeps our
 * logits within float rounding of llama.cpp's. llama2.c checkpoints never come here (they keep
 * run.c's arithmetic bit for bit). The hybrid engine's host and CPU shard use them too.
 */
public final class GgmlOps {
    private GgmlOps() {
    }

    /**
     * ggml's rms_norm then mul: {@code out = w * (x * scale)}, {@code scale = 1 / sqrtf(mean + eps)},
     * the sum of squares accumulated in double and the mean rounded to float; out may be x.
     * Reads x[xOff, xOff + n), the weight's first n values.
     */
    public static void rmsnorm(float[] out, int outOff, float[] x, int xOff, MemorySegment weight, int n, float eps) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            float v = x[xOff + i];
            sum += v * v;
        }
        float mean = (float) (sum / n);
        float scale = 1.0f / (float) Math.sqrt(mean + eps);
        for (int i = 0; i < n; i++) {
            out[outOff + i] = (x[xOff + i] * scale) * weight.get(ScalarKernels.FLOAT, (long) i * Float.BYTES);
        }
    }

    /** RMSNorm of each of the {@code heads} heads of x (qwen3's q/k norms), in place. */
    public static void headNorms(float[] x, int heads, int headSize, MemorySegment weight, float eps) {
        for (int h = 0; h < heads; h++) {
            rmsnorm(x, h * headSize, x, h * headSize, weight, headSize, eps);
        }
    }

    /** x[0, n) += bias. */
    public static void addBias(float[] x, MemorySegment bias, int n) {
        for (int i = 0; i < n; i++) {
            x[i] += bias.get(ScalarKernels.FLOAT, (long) i * Float.BYTES);
        }
    }

    /**
     * ggml's rope cache at {@code pos} (ggml_rope_cache_init, no YaRN, freq_scale 1): for pair i,
     * {@code theta_i = pos * s^i} by repeated float multiplication with {@code s = powf(base, -2 / headSize)},
     * divided by the frequency factor {@code factors[i]} when there are factors (Llama 3.1's rope_freqs).
     */
    static void ropeAngles(int pos, int headSize, float base, MemorySegment factors, float[] cos, float[] sin, FloatMath math) {
        float thetaScale = math.pow(base, -2.0f / headSize);
        float theta = pos;
        for (int i = 0; i < headSize / 2; i++) {
            float ff = factors == null ? 1.0f : factors.get(ScalarKernels.FLOAT, (long) i * Float.BYTES);
            float angle = theta / ff;
            cos[i] = math.cos(angle);
            sin[i] = math.sin(angle);
            theta *= thetaScale;
        }
    }

    /** llama.cpp's rope type NORM on each of the heads of x: pairs (2i, 2i+1) rotated by angle i. */
    static void ropeNorm(float[] x, int heads, int headSize, float[] cos, float[] sin) {
        for (int h = 0; h < heads; h++) {
            int off = h * headSize;
            for (int i = 0; i < headSize / 2; i++) {
                float x0 = x[off + 2 * i], x1 = x[off + 2 * i + 1];
                x[off + 2 * i] = x0 * cos[i] - x1 * sin[i];
                x[off + 2 * i + 1] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }

    /** llama.cpp's rope type NEOX on each of the heads of x: pairs (i, i + headSize/2) rotated by angle i. */
    static void ropeNeox(float[] x, int heads, int headSize, float[] cos, float[] sin) {
        int half = headSize / 2;
        for (int h = 0; h < heads; h++) {
            int off = h * headSize;
            for (int i = 0; i < half; i++) {
                float x0 = x[off + i], x1 = x[off + i + half];
                x[off + i] = x0 * cos[i] - x1 * sin[i];
                x[off + i + half] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}
