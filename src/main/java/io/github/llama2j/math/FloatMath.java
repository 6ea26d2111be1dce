package io.github.llama2j.math;

/**
 * The float32 elementary functions the forward pass and sampler call (run.c's expf, sinf, cosf,
 * powf). Two implementations: {@link CLibraryMath}, the platform C library's own functions through
 * the foreign function API, used by default so that llama2j computes what llama2.c computes (glibc's
 * expf, for example, is not always correctly rounded, and a one-ulp difference can flip a Q8
 * rounding or a sampling decision many tokens later); and {@link #JAVA}, Java's {@link Math}
 * rounded to float, where no C library can be linked. They are called O(dim + seq_len) times per
 * layer, against O(dim²) multiply-adds, so the downcall costs little.
 */
public interface FloatMath {
    float exp(float x);

    float sin(float x);

    float cos(float x);

    float pow(float x, float y);

    /** Name for diagnostics, e.g. {@code java} or {@code libm.so.6}. */
    String name();

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
}
