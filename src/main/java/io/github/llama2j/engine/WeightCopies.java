package io.github.llama2j.engine;

import io.github.llama2j.Llama2jException;

import java.util.Locale;

/**
 * Whether the CPU engine (and the hybrid engine's CPU share) copies weight matrices at load time into the layouts
 * its kernels read faster than the file's (io.github.llama2j.cpu.PreparedWeights): {@code --weight-copies}.
 * The results are the same either way (the same products in the same order); the copies cost memory and load time.
 */
public enum WeightCopies {
    /**
     * Q2_K to Q6_K always (Q3_K at 512 bits as it is, under the rule below); GGUF Q8_0 and llama2.c's runq Q8, Q4_0 and
     * Q5_1 matrices (repacked), and float32, F16, BF16, IQ4_NL and IQ4_XS ones (as they are), when their copies take at
     * most half of the memory available.
     */
    AUTO,
    /** None: every product reads the file's layout (for little memory, or to compare). */
    OFF;

    /** The value of {@code --weight-copies}: {@code auto} or {@code off}; anything else is a usage error (exit 2). */
    public static WeightCopies parse(String value) {
        return switch (value == null ? "" : value.toLowerCase(Locale.ROOT)) {
            case "auto" -> AUTO;
            case "off" -> OFF;
            default -> throw new Llama2jException("--weight-copies is '" + value + "', must be auto or off", Llama2jException.BAD_USAGE);
        };
    }

    /** The CLI's spelling. */
    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
