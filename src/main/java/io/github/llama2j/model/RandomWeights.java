package io.github.llama2j.model;

/**
 * Seeded random weights for synthetic checkpoints: matrices are N(0, std²), RMSNorm weights are
 * 1 + std·N(0, 1) (so every channel and layer differs and a loader that reads a norm from the wrong
 * place is caught).
 *
 * <p>Every row has its own generator, seeded from (seed, tensor, layer, row). The weights therefore do
 * not depend on the order in which a writer asks for them: v0, v1 and v2 files written from one seed
 * hold the same values, and rows can be generated in parallel. Only integer arithmetic,
 * {@link StrictMath#log} and {@link Math#sqrt} are used, so the values are the same on every JVM.
 */
public final class RandomWeights implements WeightSource {
    /** The usual initialisation scale of these models. */
    public static final double DEFAULT_STD = 0.02;

    private final Configuration config;
    private final long seed;
    private final double std;

    public RandomWeights(Configuration config, long seed, double std) {
        this.config = config;
        this.seed = seed;
        this.std = std;
    }

    @Override
    public Configuration config() {
        return config;
    }

    @Override
    public void rows(Tensor tensor, int layer, int firstRow, int rowCount, float[] dst, int offset) {
        int cols = tensor.cols(config);
        double base = tensor.isNorm() ? 1.0 : 0.0;
        for (int r = 0; r < rowCount; r++) {
            normals(rowState(seed, tensor.ordinal(), layer, firstRow + r), base, std, dst, offset + r * cols, cols);
        }
    }

    /** The generator state of one row: (seed, tensor, layer, row) mixed by SplitMix64. */
    public static long rowState(long seed, long tensor, long layer, long row) {
        return mix(mix(mix(mix(seed + GOLDEN) ^ tensor) ^ layer) ^ row);
    }

    /**
     * Writes {@code n} values {@code base + std·N(0, 1)} to {@code dst[at ..]} from the generator in
     * {@code state} (SplitMix64 steps, Marsaglia's polar method: two normals per accepted point).
     */
    public static void normals(long state, double base, double std, float[] dst, int at, int n) {
        int j = 0;
        while (j < n) {
            double u, v, s;
            do {
                state += GOLDEN;
                u = unit(mix(state));
                state += GOLDEN;
                v = unit(mix(state));
                s = u * u + v * v;
            } while (s >= 1.0 || s == 0.0);
            double m = Math.sqrt(-2.0 * StrictMath.log(s) / s);
            dst[at + j++] = (float) (base + std * u * m);
            if (j < n) {
                dst[at + j++] = (float) (base + std * v * m);
            }
        }
    }

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    /** SplitMix64's output function: a bijective 64-bit mixer. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** A uniform double in (-1, 1) from the top 53 bits. */
    private static double unit(long bits) {
        return ((bits >>> 11) * 0x1.0p-53) * 2.0 - 1.0;
    }
}
