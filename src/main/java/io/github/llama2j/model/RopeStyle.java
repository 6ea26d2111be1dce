package io.github.llama2j.model;

/**
 * How RoPE rotates a head and computes its angles.
 * <ul>
 *   <li>{@link #LLAMA2C}: run.c: adjacent pairs (2i, 2i+1), angle {@code pos * (1 / powf(theta, 2i / head_size))};
 *       llama2.c checkpoints keep this arithmetic bit for bit.</li>
 *   <li>{@link #NORM}: llama.cpp's rope type NORM (the {@code llama} architecture): adjacent pairs, angle
 *       computed as ggml does ({@code theta_i = pos * s^i} by repeated float multiplication with
 *       {@code s = powf(theta, -2 / head_size)}, divided by the frequency factor of {@code rope_freqs} if any).</li>
 *   <li>{@link #NEOX}: llama.cpp's rope type NEOX ({@code qwen2}, {@code qwen3}): pairs (i, i + head_size/2),
 *       same angles as NORM.</li>
 * </ul>
 */
public enum RopeStyle {
    LLAMA2C,
    NORM,
    NEOX
}
