package io.github.llama2j.fuzz;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * v1/v2 files do not store anything sized by seq_len, so a tiny valid file can claim any seq_len;
 * the CPU engine sizes its KV cache and attention scores from it. Found by the checkpoint fuzzer.
 */
class EngineFindingsTest {

    /** The fuzzer's input: a v2 file of 1 layer, dim 4, seq_len 774,975,030 ("6.1."): n_heads x seq_len wrapped negative. */
    @Test
    void seqLenWhoseAttentionRowOverflowsIntIsRefused() {
        byte[] file = TinyFiles.v2(new TinyFiles.Shape(4, 6, 1, 2, 2, 3, 0x2e312e36, false, 2), new Random(1));
        Llama2jException e = assertThrows(Llama2jException.class, () -> createEngine(file));
        assertTrue(e.getMessage().startsWith("fuzz.bin: header field seq_len is 774975030"), e.getMessage());
    }

    @Test
    void kvCacheLargerThanTheHeapIsRefused() {
        long heap = Runtime.getRuntime().maxMemory();
        int seqLen = 1 << 28, kvDim = 4;                       // 2^30 floats per cache row: fits one array
        int layers = (int) (heap / (2L * seqLen * kvDim * Float.BYTES)) + 1;
        byte[] file = TinyFiles.v1(new TinyFiles.Shape(4, 2, layers, 1, 1, 2, seqLen, true, 0), new Random(2));
        Llama2jException e = assertThrows(Llama2jException.class, () -> createEngine(file));
        assertTrue(e.getMessage().startsWith("fuzz.bin: the KV cache for seq_len 268435456"), e.getMessage());
    }

    @Test
    void aSeqLenThatFitsStillRuns() {
        byte[] file = TinyFiles.v2(new TinyFiles.Shape(4, 6, 1, 2, 2, 3, 1000, false, 2), new Random(3));
        assertEquals(3, createEngine(file));
    }

    /** Creates the CPU engine and returns the length of one forward pass's logits. */
    static int createEngine(byte[] data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(data.length);
            MemorySegment.copy(data, 0, seg, ValueLayout.JAVA_BYTE, 0, data.length);
            Model model = ModelLoader.parse("fuzz.bin", Path.of("fuzz.bin"), seg, arena);
            try (InferenceEngine engine = Engines.create(model, EngineOptions.cpu(1, false))) {
                return engine.forward(0, 0).length;
            }
        }
    }
}
