package io.github.llama2j.generate;

import java.util.function.Supplier;

/**
 * The time a chat spends waiting for the user's lines, before and after its first sampled token, so that the
 * run's times (time to first token, tok/s after it) are the engine's: a user who pauses a minute between turns
 * turned 157 tok/s into 21. Both chats ({@link Generator#chat}, {@link GgufGenerator#chat}) read through it.
 */
final class InputWaits {
    private long beforeFirst, afterFirst;

    /** {@code read}'s result; its time counts as waiting, before the first token when {@code sampledYet} is false. */
    <T> T read(Supplier<T> read, boolean sampledYet) {
        long t0 = System.nanoTime();
        T line = read.get();
        long waited = System.nanoTime() - t0;
        if (sampledYet) {
            afterFirst += waited;
        } else {
            beforeFirst += waited;
        }
        return line;
    }

    /** The run's start, moved past the waits before the first token. */
    long start(long startNanos) {
        return startNanos + beforeFirst;
    }

    /** The run's end, less the waits after the first token. */
    long end(long endNanos) {
        return endNanos - afterFirst;
    }
}
