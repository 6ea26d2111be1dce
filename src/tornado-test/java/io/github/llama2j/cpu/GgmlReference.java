package io.github.llama2j.cpu;

import java.lang.foreign.MemorySegment;

/**
 * The CPU engine's GGUF arithmetic (package-private in {@code cpu}: {@link GgmlOps}, {@link Activations}'
 * conversions), opened to the TornadoVM kernel tests as their scalar reference. Calls only, no arithmetic here.
 */
public final class GgmlReference {
    private GgmlReference() {
    }

    /** ggml's rms_norm then mul over x[0, n). */
    public static void rmsnorm(float[] out, float[] x, MemorySegment weight, int n, float eps) {
        GgmlOps.rmsnorm(out, 0, x, 0, weight, n, eps);
    }

    /** RMSNorm of each head (qwen3's q/k norms), in place. */
    public static void headNorms(float[] x, int heads, int headSize, MemorySegment weight, float eps) {
        GgmlOps.headNorms(x, heads, headSize, weight, eps);
    }

    /** x[0, n) += bias. */
    public static void addBias(float[] x, MemorySegment bias, int n) {
        GgmlOps.addBias(x, bias, n);
    }

    /** Each value rounded to F16, nearest even, as floats. */
    public static void toF16(float[] x, int n, float[] out) {
        Activations.toF16(x, n, out);
    }

    /** llama.cpp's quantize_row_q8_0 (values as shorts, the F16 scales as floats). */
    public static void quantizeQ8_0(float[] x, int n, short[] q, float[] scales) {
        Activations.quantizeQ8_0(x, n, q, scales);
    }
}
