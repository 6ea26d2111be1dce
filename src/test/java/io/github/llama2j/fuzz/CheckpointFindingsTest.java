package io.github.llama2j.fuzz;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Hostile checkpoints found by fuzzing or by reviewing what the fuzzer could not reach; each was a bug. */
class CheckpointFindingsTest {

    /**
     * A v1 header whose implied size wraps around 2^64 to exactly 19,856 bytes: the unshared
     * classifier's 4·(2·vocab·dim + dim) overflowed unchecked, so the size check passed and slicing the
     * embedding read past the file (IndexOutOfBoundsException). Found by solving the size equation,
     * which random mutation cannot.
     */
    @Test
    void sizeThatWrapsAround2To64IsRejected() {
        int dim = 708_942_074, hidden = 264_057_899, vocab = 2_147_483_647;
        ByteBuffer b = ByteBuffer.allocate(19_856).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(ModelLoader.MAGIC).putInt(1).putInt(dim).putInt(hidden).putInt(1).putInt(dim / 2).putInt(1)
                .putInt(vocab).putInt(1).put((byte) 0);
        Llama2jException e = assertThrows(Llama2jException.class, () -> parse(b.array()));
        assertTrue(e.getMessage().startsWith("fuzz.bin: "), e.getMessage());
    }

    static void parse(byte[] data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment file = arena.allocate(data.length);
            MemorySegment.copy(data, 0, file, ValueLayout.JAVA_BYTE, 0, data.length);
            ModelLoader.parse("fuzz.bin", Path.of("fuzz.bin"), file, arena);
        }
    }
}
