package io.github.llama2j.sampling;

/** run.c's xorshift64* generator: the state is the 64-bit seed. */
public final class Rng {
    private long state;

    public Rng(long seed) {
        this.state = seed;
    }

    /** Upper 32 bits of xorshift64*, as an unsigned value in a long. */
    public long nextU32() {
        state ^= state >>> 12;
        state ^= state << 25;
        state ^= state >>> 27;
        return (state * 0x2545F4914F6CDD1DL) >>> 32;
    }

    /** A float in [0, 1): the top 24 bits of {@link #nextU32()}, divided as run.c does, in float. */
    public float nextFloat() {
        return (nextU32() >>> 8) / 16777216.0f;
    }
}
