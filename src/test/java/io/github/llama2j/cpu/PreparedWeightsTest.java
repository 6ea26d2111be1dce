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

/**
 * Which matrices the CPU engine repacks at load time ({@link PreparedWeights}) and that its Q8_0 products then
 * read the copy; the repacked kernels' results are in GgmlKernelsTest.
 */
class PreparedWeightsTest {

    @Test
    void everyQ8_0MatrixOfTheLayersAndTheClassifierIsPackedAndFreedOnClose() {
        try (Model model = GgufModelLoader.load(TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf"));
             Parallel pool = new Parallel(2)) {
            var w = model.weights();
            PreparedWeights prepared = new PreparedWeights();
            prepared.prepare(w, pool);
            List<Matrix> ms = PreparedWeights.matrices(w);
            long q8 = ms.stream().filter(m -> m instanceof Matrix.Q8_0).count();
            int layers = w.wq().length;
            assertTrue(q8 >= 7 * layers, q8 + " Q8_0 matrices in " + layers + " layers");
            assertEquals(q8, prepared.size());
            for (Matrix m : List.of(w.wq()[0], w.wk()[layers - 1], w.w2()[layers - 1], w.classifier())) {
                PackedQ8_0 p = prepared.q8_0((Matrix.Q8_0) m);
                assertNotNull(p, m.typeName() + " " + m.rows() + "x" + m.cols() + " not packed");
                assertSame(m, p.source());
            }
            long bytes = prepared.byteSize();
            prepared.prepare(w, pool); // again: nothing new
            assertEquals(bytes, prepared.byteSize());
            prepared.close();
            assertEquals(0, prepared.size());
            assertNull(prepared.q8_0((Matrix.Q8_0) w.wq()[0]), "a closed registry packs nothing: the file's layout is read");
        }
    }

    /** The engine's product on a matrix with a packed copy reads the copy: a copy changed on purpose changes the result. */
    @Test
    void theQ8_0ProductReadsThePackedCopy() {
        try (Model model = GgufModelLoader.load(TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf"));
             Parallel pool = new Parallel(1)) {
            Matrix.Q8_0 m = (Matrix.Q8_0) model.weights().wq()[0];
            VectorKernels k = new VectorKernels();
            Activations a = randomInputFor(m);
            float[] file = new float[m.rows()], packed = new float[m.rows()];
            k.matmul(file, a, m, 0, m.rows());
            k.prepared().prepare(model.weights(), pool);
            PackedQ8_0 p = k.prepared().q8_0(m);
            assertNotNull(p);
            k.matmul(packed, a, m, 0, m.rows());
            for (int r = 0; r < m.rows(); r++) {
                assertEquals(file[r], packed[r], Math.abs(file[r]) * 1e-5f + 1e-5f, "row " + r);
            }
            p.scales()[0] *= 2; // row 0's first block scale in the copy only
            k.matmul(packed, a, m, 0, 1);
            assertTrue(Math.abs(packed[0] - file[0]) > 1e-6f, "row 0 read the copy: " + packed[0] + " vs " + file[0]);
            k.prepared().close();
        }
    }

    /**
     * runq's Q8 matrices are packed too (group size 32: read packed at every width) and the product reads the copy,
     * bit-identical to the file's layout until the copy is changed on purpose.
     */
    @Test
    void theRunqQ8ProductReadsThePackedCopy() {
        try (Model model = io.github.llama2j.model.ModelLoader.load(TestData.model("tiny_unshared_q80.bin"));
             Parallel pool = new Parallel(1)) {
            var w = model.weights();
            Matrix.Q8 m = (Matrix.Q8) w.w1()[0];
            assertTrue(Q8Matmul.handlesPacked(m.groupSize()), "group size " + m.groupSize());
            VectorKernels k = new VectorKernels();
            Activations a = randomInputFor(m);
            float[] file = new float[m.rows()], packed = new float[m.rows()];
            k.matmul(file, a, m, 0, m.rows());
            k.prepared().prepare(w, pool);
            assertEquals(PreparedWeights.matrices(w).size(), k.prepared().size(), "every matrix a product reads is packed");
            PackedQ8_0 p = k.prepared().q8(m);
            assertNotNull(p);
            assertSame(m, p.source());
            k.matmul(packed, a, m, 0, m.rows());
            org.junit.jupiter.api.Assertions.assertArrayEquals(file, packed);
            p.scales()[0] *= 2; // row 0's first group scale in the copy only
            k.matmul(packed, a, m, 0, 1);
            assertTrue(packed[0] != file[0], "row 0 read the copy: " + packed[0] + " vs " + file[0]);
            k.prepared().close();
            assertNull(k.prepared().q8(m));
        }
    }

    /** Fresh random activations prepared for m's type. */
    private static Activations randomInputFor(Matrix m) {
        Activations a = new Activations(m.cols());
        float[] x = new float[m.cols()];
        java.util.Random rnd = new java.util.Random(System.nanoTime());
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        a.input(x, x.length);
        a.prepareFor(m);
        return a;
    }

    @Test
    void theScalarReferenceReadsTheFilesLayout() {
        assertNull(new ScalarKernels().prepared());
    }
}
