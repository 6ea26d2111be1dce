package io.github.llama2j.sampling;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.math.FloatMath;

import java.util.Arrays;

/**
 * run.c's sampler: argmax at temperature 0; otherwise temperature scaling, softmax,
 * one coin per call, and multinomial or top-p (nucleus) selection with run.c's cutoff,
 * stable descending sort, truncation and cdf walk. Every float operation is in run.c's order,
 * so a given seed picks the same tokens as llama2.c.
 *
 * <p>Top-k and min-p (off by default, and then without any effect on run.c's path) keep the k likeliest tokens and
 * those with at least {@code min_p} times the top probability, after temperature and softmax; top-p then applies to
 * what is kept, renormalized.
 */
public final class Sampler {
    private final int vocabSize;
    private final float temperature;
    private final float topp;
    private final int topK;
    private final float minP;
    private final Rng rng;
    private final long[] candidates; // top-p scratch: sort keys (descending prob, ascending id)
    private final FloatMath math;

    public Sampler(int vocabSize, float temperature, float topp, long seed) {
        this(vocabSize, temperature, topp, 0, 0f, seed, FloatMath.standard());
    }

    /** @param math the exp used by the softmax (the C library's one reproduces llama2.c's probabilities bit for bit) */
    public Sampler(int vocabSize, float temperature, float topp, long seed, FloatMath math) {
        this(vocabSize, temperature, topp, 0, 0f, seed, math);
    }

    /**
     * @param topK keep the {@code topK} likeliest tokens; 0 (or the vocabulary size or more) keeps all
     * @param minP keep tokens whose probability is at least {@code minP} times the largest; 0 keeps all
     */
    public Sampler(int vocabSize, float temperature, float topp, int topK, float minP, long seed, FloatMath math) {
        if (topK < 0) {
            throw new Llama2jException("top-k is " + topK + ", must be >= 0 (0 = off)", Llama2jException.BAD_USAGE);
        }
        if (!(minP >= 0 && minP <= 1)) {
            throw new Llama2jException("min-p is " + minP + ", must be in [0, 1] (0 = off)", Llama2jException.BAD_USAGE);
        }
        this.topK = topK >= vocabSize ? 0 : topK;
        this.minP = minP;
        this.math = math;
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new Llama2jException("temperature is " + temperature + ", must be a finite number >= 0", Llama2jException.BAD_USAGE);
        }
        if (!(topp >= 0 && topp <= 1)) {
            throw new Llama2jException("top-p is " + topp + ", must be in [0, 1]", Llama2jException.BAD_USAGE);
        }
        this.vocabSize = vocabSize;
        this.temperature = temperature;
        this.topp = topp;
        this.rng = new Rng(seed);
        this.candidates = new long[vocabSize];
    }

    public float temperature() {
        return temperature;
    }

    /**
     * Picks the next token; {@code logits} is overwritten (scaled to probabilities) when sampling. Throws
     * {@link NonFiniteLogitsException} when a NaN is among the logits or an infinity decides the choice: greedy, a NaN
     * anywhere (looked for in the argmax's pass) or an infinite largest logit; sampling, a softmax made NaN (any NaN or
     * +infinite logit makes the sum, so every probability, NaN; -infinite ones, masked tokens, are fine). Without it, a
     * GGUF Q8_0 file with one block scale set to NaN printed token 0 over and over (2026-12-06). Finite logits that
     * overflow when divided by a tiny temperature (e.g. 1e-40) are the options' fault, not the model's: a
     * {@link Llama2jException} of {@link Llama2jException#BAD_USAGE} naming the temperature.
     */
    public int sample(float[] logits) {
        if (temperature == 0.0f) {
            return argmaxFinite(logits, vocabSize);
        }
        boolean clean = true, overflowed = false; // no logit NaN or +infinite before the division; one +infinite after it
        for (int q = 0; q < vocabSize; q++) {
            float v = logits[q], scaled = v / temperature;
            clean &= v < Float.POSITIVE_INFINITY; // (false for NaN; true for a masked token's -infinity)
            overflowed |= scaled == Float.POSITIVE_INFINITY;
            logits[q] = scaled;
        }
        softmax(logits, vocabSize, math);
        if (Float.isNaN(logits[0])) { // the sum (and so every probability) is NaN, or the max was +/-infinite
            if (clean && overflowed) {
                throw new Llama2jException("temperature " + temperature + " is too small: the logits divided by it overflow a"
                        + " float; use a larger temperature, or 0 for greedy decoding", Llama2jException.BAD_USAGE);
            }
            throw new NonFiniteLogitsException();
        }
        float coin = rng.nextFloat();
        if (topK > 0 || minP > 0) {
            return sampleFiltered(logits, vocabSize, coin);
        }
        if (topp <= 0 || topp >= 1) {
            return sampleMult(logits, vocabSize, coin);
        }
        return sampleTopp(logits, vocabSize, topp, coin);
    }

    /**
     * {@link #argmax}, throwing {@link NonFiniteLogitsException} if a value is NaN or the largest is infinite: the same
     * loop with the NaN test folded in, so greedy decoding reads the logits once per token (argmax then a second scan
     * would read them twice).
     */
    private static int argmaxFinite(float[] p, int n) {
        int maxI = 0;
        float maxP = p[0];
        boolean nan = maxP != maxP;
        for (int i = 1; i < n; i++) {
            float v = p[i];
            if (v > maxP) {
                maxI = i;
                maxP = v;
            }
            nan |= v != v;
        }
        if (nan || Float.isInfinite(maxP)) {
            throw new NonFiniteLogitsException();
        }
        return maxI;
    }

    /** First index of the largest value (strict {@code >}, as run.c). */
    public static int argmax(float[] p, int n) {
        int maxI = 0;
        float maxP = p[0];
        for (int i = 1; i < n; i++) {
            if (p[i] > maxP) {
                maxI = i;
                maxP = p[i];
            }
        }
        return maxI;
    }

    /**
     * run.c's softmax: subtract the max, expf, sequential float sum, divide. The exps in one call of
     * {@link FloatMath#expShifted} (vectorized by {@link FloatMath#vectorized()}, the same values): with one foreign
     * call per element, a draw over 128,256 entries took 0.73 ms, 0.45 ms this way (top-p 0.9, peaked logits;
     * docs/measurements/2026-12-06-f16-checked-copy.md).
     */
    public static void softmax(float[] x, int size, FloatMath math) {
        float max = x[0];
        for (int i = 1; i < size; i++) {
            if (x[i] > max) {
                max = x[i];
            }
        }
        math.expShifted(x, 0, size, max); // x[i] = expf(x[i] - max)
        float sum = 0.0f;
        for (int i = 0; i < size; i++) {
            sum += x[i];
        }
        for (int i = 0; i < size; i++) {
            x[i] /= sum;
        }
    }

    static int sampleMult(float[] probabilities, int n, float coin) {
        float cdf = 0.0f;
        for (int i = 0; i < n; i++) {
            cdf += probabilities[i];
            if (coin < cdf) {
                return i;
            }
        }
        return n - 1;
    }

    /**
     * Top-k and min-p, then top-p on the kept tokens (their probabilities renormalized), then a multinomial draw
     * among the survivors; candidates in descending probability, ties by ascending id.
     */
    private int sampleFiltered(float[] probabilities, int n, float coin) {
        float max = 0;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, probabilities[i]);
        }
        float threshold = minP * max;
        int n0 = 0;
        for (int i = 0; i < n; i++) {
            if (probabilities[i] >= threshold && probabilities[i] > 0) {
                candidates[n0++] = candidateKey(probabilities[i], i);
            }
        }
        if (n0 == 0) {
            return argmax(probabilities, n);
        }
        Arrays.sort(candidates, 0, n0);
        if (topK > 0 && n0 > topK) {
            n0 = topK;
        }
        float kept = 0.0f;
        for (int i = 0; i < n0; i++) {
            kept += probabilities[(int) candidates[i]];
        }
        int lastIdx = n0 - 1;
        if (topp > 0 && topp < 1) {
            float cumulative = 0.0f;
            for (int i = 0; i < n0; i++) {
                cumulative += probabilities[(int) candidates[i]] / kept;
                if (cumulative > topp) {
                    lastIdx = i;
                    break;
                }
            }
        }
        float mass = 0.0f;
        for (int i = 0; i <= lastIdx; i++) {
            mass += probabilities[(int) candidates[i]];
        }
        return walk(probabilities, lastIdx, coin * mass);
    }

    /** Sort key: descending probability, then ascending id (the order of run.c's stable qsort). */
    private static long candidateKey(float probability, int id) {
        // Probabilities are >= 0, so their bit patterns order like the values.
        long inverted = 0x7FFFFFFFL - Float.floatToRawIntBits(probability);
        return (inverted << 32) | id;
    }

    /** run.c's cdf walk over the sorted candidates 0..lastIdx: the first whose cumulative sum exceeds {@code r}. */
    private int walk(float[] probabilities, int lastIdx, float r) {
        float cdf = 0.0f;
        for (int i = 0; i <= lastIdx; i++) {
            cdf += probabilities[(int) candidates[i]];
            if (r < cdf) {
                return (int) candidates[i];
            }
        }
        return (int) candidates[lastIdx];
    }

    private int sampleTopp(float[] probabilities, int n, float topp, float coin) {
        // Tokens below the cutoff cannot be part of the nucleus; dropping them first keeps the sort small.
        final float cutoff = (1.0f - topp) / (n - 1);
        int n0 = 0;
        for (int i = 0; i < n; i++) {
            if (probabilities[i] >= cutoff) {
                candidates[n0++] = candidateKey(probabilities[i], i);
            }
        }
        if (n0 == 0) {
            return argmax(probabilities, n); // run.c reads probindex[-1] here (undefined); take the likeliest token
        }
        Arrays.sort(candidates, 0, n0);
        float cumulative = 0.0f;
        int lastIdx = n0 - 1;
        for (int i = 0; i < n0; i++) {
            cumulative += probabilities[(int) candidates[i]];
            if (cumulative > topp) {
                lastIdx = i;
                break;
            }
        }
        return walk(probabilities, lastIdx, coin * cumulative);
    }
}
