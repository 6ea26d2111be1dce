package io.github.llama2j.gguf;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class GoldenTwinsTest {
    /** numpy: [hex(x) for x in np.random.PCG64(11).random_raw(3)]. */
    @Test
    void pcg64MatchesNumpy() {
        GoldenTwins.Pcg64 rng = new GoldenTwins.Pcg64(11);
        assertEquals(0x20e9fa102240cc4eL, rng.next());
        assertEquals(0x7fd0ac8acc0d7a67L, rng.next());
        assertEquals(0x99fbcbde970c647cL, rng.next());
    }

    /** The regenerated Q8_0 models are byte for byte the stored ones (llama-quantize's), tensor by tensor. */
    @Test
    void regeneratedQ8_0ModelsEqualTheStoredOnes() {
        for (String m : new String[]{"llama3-tiny-q8_0", "qwen2-tiny-q8_0", "qwen3-tiny-q8_0"}) {
            Map<String, Object> g = Json.read(TestData.gguf().resolve("golden/" + m + ".json"));
            try (GgufFile stored = GgufFile.open(TestData.gguf().resolve("models/" + m + ".gguf"));
                 GgufFile ours = GgufFileTest.parse(GoldenTwins.build(g))) {
                assertEquals(stored.tensors().size(), ours.tensors().size());
                for (GgufTensorInfo t : stored.tensors()) {
                    GgufTensorInfo o = ours.tensor(t.name()).orElseThrow();
                    assertEquals(t.type(), o.type(), t.name());
                    assertArrayEquals(stored.data(t).toArray(ValueLayout.JAVA_BYTE), ours.data(o).toArray(ValueLayout.JAVA_BYTE),
                            m + ": " + t.name());
                }
            }
        }
    }
}
