package io.github.llama2j.math;

/**
 * The float32 elementary functions the forward pass and sampler call (run.c's expf, sinf, cosf,
 * powf). Two implementations: {@link CLibraryMath}, the platform C library's own functions through
 * the foreign function API, used by default so that llama2j computes what llama2.c computes (glibc's
 * expf, for example, is not always correctly rounded, and a one-ulp difference can flip a Q8
 * rounding or a sampling decision many tokens later); and {@link #JAVA}, Java's {@link Math}
 * rounded to float, where no C library can be linked. A third, {@link #vectorized()}, gives the C library's
 * values with the bulk exp of softmax and SwiGLU vectorized ({@link VectorExpf}): exp is called per attention
 * score and per hidden unit, and in a batched prefill one downcall per element was 12% of the time.
 */
public interface FloatMath {
    float exp(float x);

    float sin(float x);

    float cos(float x);

    float pow(float x, float y);

    /** Name for diagnostics, e.g. {@code java} or {@code libm.so.6}. */
    String name();

    /**
     * x[off+i] = exp(x[off+i] - shift) for i in [0, n), the subtraction in float (softmax's form): the values of n
     * calls of {@link #exp}, which is what this default makes.
     */
    default void expShifted(float[] x, int off, int n, float shift) {
        for (int i = off; i < off + n; i++) {
            x[i] = exp(x[i] - shift);
        }
    }

    /** run.c's SwiGLU on [from, to): hb[i] = hb[i] * (1 / (1 + exp(-hb[i]))) * hb2[i], with {@link #exp}. */
    default void swiglu(float[] hb, float[] hb2, int from, int to) {
        for (int i = from; i < to; i++) {
            float val = hb[i];
            val *= (1.0f / (1.0f + exp(-val)));
            val *= hb2[i];
            hb[i] = val;
        }
    }

    /** Java's Math, rounded to float. */
    FloatMath JAVA = new FloatMath() {
        @Override
        public float exp(float x) {
            return (float) Math.exp(x);
        }

        @Override
        public float sin(float x) {
            return (float) Math.sin(x);
        }

        @Override
        public float cos(float x) {
            return (float) Math.cos(x);
        }

        @Override
        public float pow(float x, float y) {
            return (float) Math.pow(x, y);
        }

        @Override
        public String name() {
            return "java";
        }
    };

    /** The C library's functions where they can be linked, else {@link #JAVA}. */
    static FloatMath standard() {
        return CLibraryMath.instance().map(m -> (FloatMath) m).orElse(JAVA);
    }

    /**
     * {@link #standard()}'s values, with {@link #expShifted} and {@link #swiglu} vectorized by {@link VectorExpf}
     * where the C library can be linked and {@link VectorExpf#selfCheck} agrees with it; else {@link #standard()}.
     */
    static FloatMath vectorized() {
        return VectorExpMath.INSTANCE != null ? VectorExpMath.INSTANCE : standard();
    }
}
