package io.github.llama2j.cpu;

import io.github.llama2j.TestData;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which matrices the CPU engine packs ({@link PackedWeights}); the packed kernel's results are in GgmlKernelsTest. */
class PackedWeightsTest {

    @Test
    void theVectorKernelsGetEveryQ8_0MatrixOfTheLayersAndTheClassifierPacked() {
        try (Model model = GgufModelLoader.load(TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf"));
             Parallel pool = new Parallel(2);
             PackedWeights packed = PackedWeights.of(model.weights(), new VectorKernels(), pool)) {
            var w = model.weights();
            List<Matrix.Q8_0> ms = PackedWeights.q8_0Matrices(w);
            int layers = w.wq().length;
            assertTrue(ms.size() >= 7 * layers, ms.size() + " Q8_0 matrices in " + layers + " layers");
            assertEquals(ms.size(), packed.size());
            for (Matrix m : List.of(w.wq()[0], w.wk()[layers - 1], w.w2()[layers - 1], w.classifier())) {
                PackedQ8_0 p = packed.get(m);
                assertNotNull(p, m.typeName() + " " + m.rows() + "x" + m.cols() + " not packed");
                assertSame(m, p.source());
            }
        }
    }

    @Test
    void theScalarReferenceReadsTheFilesLayout() {
        try (Model model = GgufModelLoader.load(TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf"));
             Parallel pool = new Parallel(1)) {
            PackedWeights packed = PackedWeights.of(model.weights(), new ScalarKernels(), pool);
            assertSame(PackedWeights.NONE, packed);
            assertNull(packed.get(model.weights().wq()[0]));
        }
    }
}
