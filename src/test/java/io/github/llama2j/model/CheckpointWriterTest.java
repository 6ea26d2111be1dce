package io.github.llama2j.model;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CheckpointWriterTest {
    /** Small, but with grouped-query attention and dims that are not powers of two. */
    private static final Configuration GQA = new Configuration(48, 100, 2, 6, 3, 70, 24, true, 0);
    private static final Configuration UNSHARED = new Configuration(32, 64, 2, 4, 4, 50, 16, false, 0);

    @TempDir
    Path tmp;

    private Path write(Configuration c, ModelFormat f, int gs, long seed, String name) {
        Path out = tmp.resolve(name);
        CheckpointWriter.write(new RandomWeights(c, seed, 0.3), f, gs, out, null);
        return out;
    }

    @ParameterizedTest
    @CsvSource({"LEGACY_V0, true", "V1_F32, true", "V2_Q8, true", "LEGACY_V0, false", "V1_F32, false", "V2_Q8, false"})
    void writtenFileLoadsWithItsShapeAndSize(ModelFormat format, boolean shared) throws IOException {
        Configuration c = shared ? GQA : UNSHARED;
        int gs = format == ModelFormat.V2_Q8 ? CheckpointWriter.defaultGroupSize(c.dim(), c.hiddenDim()) : 0;
        Path out = write(c, format, gs, 7, "m.bin");
        assertEquals(CheckpointWriter.fileSize("t", c, format, gs), Files.size(out));
        assertFalse(Files.exists(tmp.resolve("m.bin.tmp")));
        try (Model m = ModelLoader.load(out)) {
            assertEquals(format, m.format());
            assertEquals(new Configuration(c.dim(), c.hiddenDim(), c.nLayers(), c.nHeads(), c.nKvHeads(), c.vocabSize(),
                    c.seqLen(), shared, gs), m.config());
            try (InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, false))) {
                for (int pos = 0; pos < 3; pos++) {
                    float[] logits = e.forward(pos + 1, pos);
                    assertEquals(c.vocabSize(), logits.length);
                    for (float v : logits) {
                        assertTrue(Float.isFinite(v), "logit " + v);
                    }
                }
            }
        }
    }

    @Test
    void v0AndV1FromOneSeedGiveIdenticalLogits() {
        for (Configuration c : new Configuration[]{GQA, UNSHARED}) {
            Path v0 = write(c, ModelFormat.LEGACY_V0, 0, 11, "a" + c.sharedClassifier() + ".bin");
            Path v1 = write(c, ModelFormat.V1_F32, 0, 11, "b" + c.sharedClassifier() + ".bin");
            float[][] a = logits(v0, 5), b = logits(v1, 5);
            for (int i = 0; i < a.length; i++) {
                assertArrayEquals(a[i], b[i], 0f, "position " + i);
            }
            // and a different seed is a different model
            Path other = write(c, ModelFormat.V1_F32, 0, 12, "c" + c.sharedClassifier() + ".bin");
            assertFalse(Arrays.equals(a[0], logits(other, 1)[0]));
        }
    }

    @Test
    void q8FileFromOneSeedIsCloseToTheFloatModel() {
        Path v0 = write(GQA, ModelFormat.LEGACY_V0, 0, 3, "f.bin");
        Path v2 = write(GQA, ModelFormat.V2_Q8, 4, 3, "q.bin");
        float[] a = logits(v0, 1)[0], b = logits(v2, 1)[0];
        double maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < a.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
            maxAbs = Math.max(maxAbs, Math.abs(a[i]));
        }
        assertTrue(maxDiff < 0.05 * maxAbs, "q8 logits differ by " + maxDiff + " (max |logit| " + maxAbs + ")");
        assertTrue(maxDiff > 0, "quantization must change something");
    }

    @Test
    void quantizingASynthesizedFloatFileGivesTheSynthesizedQ8FileByteForByte() throws IOException {
        for (Configuration c : new Configuration[]{GQA, UNSHARED}) {
            Path v0 = write(c, ModelFormat.LEGACY_V0, 0, 21, "f" + c.sharedClassifier() + ".bin");
            Path v2 = write(c, ModelFormat.V2_Q8, 4, 21, "q" + c.sharedClassifier() + ".bin");
            Path requantized = tmp.resolve("r" + c.sharedClassifier() + ".bin");
            try (Model m = ModelLoader.load(v0)) {
                CheckpointWriter.write(WeightSource.of(m), ModelFormat.V2_Q8, 4, requantized, null);
            }
            assertEquals(-1L, Files.mismatch(v2, requantized));
        }
    }

    private static float[][] logits(Path file, int positions) {
        try (Model m = ModelLoader.load(file); InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, true))) {
            float[][] out = new float[positions][];
            for (int pos = 0; pos < positions; pos++) {
                out[pos] = e.forward((3 * pos + 1) % m.config().vocabSize(), pos).clone();
            }
            return out;
        }
    }

    @Test
    void loadedWeightsAreTheSourceWeightsBitForBit() {
        RandomWeights src = new RandomWeights(UNSHARED, 5, 0.02);
        for (ModelFormat f : new ModelFormat[]{ModelFormat.LEGACY_V0, ModelFormat.V1_F32}) {
            Path out = tmp.resolve(f + ".bin");
            CheckpointWriter.write(src, f, 0, out, null);
            try (Model m = ModelLoader.load(out)) {
                WeightSource back = WeightSource.of(m);
                for (Tensor t : Tensor.values()) {
                    for (int l = 0; l < (t.perLayer() ? UNSHARED.nLayers() : 1); l++) {
                        int rows = t.rows(UNSHARED), cols = t.cols(UNSHARED);
                        float[] want = new float[rows * cols], got = new float[rows * cols];
                        src.rows(t, l, 0, rows, want, 0);
                        back.rows(t, l, 0, rows, got, 0);
                        assertArrayEquals(want, got, 0f, f + " " + t + "[" + l + "]");
                    }
                }
            }
        }
    }

    @Test
    void quantizedValuesFollowExportPy() throws IOException {
        // one row of 8 = two groups of 4; 127/127 = scale 1 makes w/scale exact, so the halves test the rounding
        Configuration c = new Configuration(8, 8, 1, 2, 2, 1, 2, true, 0);
        float[] row0 = {127f, 0.5f, 1.5f, 2.5f, -2.5f, -0.5f, 0f, 0f};
        WeightSource src = new WeightSource() {
            @Override
            public Configuration config() {
                return c;
            }

            @Override
            public void rows(Tensor t, int layer, int firstRow, int rowCount, float[] dst, int offset) {
                Arrays.fill(dst, offset, offset + rowCount * t.cols(c), 0f);
                if (t == Tensor.TOKEN_EMBEDDING) {
                    System.arraycopy(row0, 0, dst, offset, 8);
                }
            }
        };
        Path out = tmp.resolve("h.bin");
        CheckpointWriter.Result r = CheckpointWriter.write(src, ModelFormat.V2_Q8, 4, out, null);
        byte[] file = Files.readAllBytes(out);
        int at = 256 + 3 * 8 * 4; // header, rms_att, rms_ffn, rms_final (1 layer)
        // round half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -2.5 -> -2, -0.5 -> -0; second group: scale 2.5/127
        assertArrayEquals(new byte[]{127, 0, 2, 2}, Arrays.copyOfRange(file, at, at + 4));
        float scale2 = 2.5f / 127.0f;
        byte[] expected2 = {(byte) Math.rint(-2.5f / scale2), (byte) Math.rint(-0.5f / scale2), 0, 0};
        assertArrayEquals(expected2, Arrays.copyOfRange(file, at + 4, at + 8));
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(file, at + 8, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals(1.0f, b.getFloat());
        assertEquals(scale2, b.getFloat());
        assertEquals(0.5f, r.maxQuantizationError().get(Tensor.TOKEN_EMBEDDING), 0f); // |2 - 2.5| and |0 - 0.5|
        assertEquals(0f, r.maxQuantizationError().get(Tensor.WQ), 0f); // all-zero groups: scale 0, values 0
    }

    @ParameterizedTest
    @CsvSource({"tiny.bin, 4, tiny_q80.bin", "tiny_v1.bin, 4, tiny_q80.bin", "tiny_unshared.bin, 32, tiny_unshared_q80.bin",
            "tiny_unshared_v1.bin, 32, tiny_unshared_q80.bin"})
    void quantizingTheSharedFloatModelsReproducesTheirQ8TwinsByteForByte(String in, int gs, String golden) throws IOException {
        Path input = shared(in), expected = shared(golden);
        try (Model m = ModelLoader.load(input)) {
            assertEquals(gs, CheckpointWriter.defaultGroupSize(m.config().dim(), m.config().hiddenDim()));
            Path out = tmp.resolve("out.bin");
            CheckpointWriter.write(WeightSource.of(m), ModelFormat.V2_Q8, gs, out, null);
            assertEquals(-1L, Files.mismatch(out, expected), "first differing byte");
        }
    }

    @ParameterizedTest
    @CsvSource({"64, 172, 4", "96, 256, 32", "288, 768, 32", "512, 1376, 32", "768, 2048, 64", "4096, 11008, 64",
            "48, 100, 4", "30, 90, 2", "33, 64, 1"})
    void defaultGroupSizeIsTheLargestDividingBothWidths(int dim, int hidden, int expected) {
        assertEquals(expected, CheckpointWriter.defaultGroupSize(dim, hidden));
    }

    @Test
    void groupSizeThatDoesNotDivideIsRefused() {
        Llama2jException e = assertThrows(Llama2jException.class,
                () -> CheckpointWriter.write(new RandomWeights(GQA, 1, 0.02), ModelFormat.V2_Q8, 8, tmp.resolve("x.bin"), null));
        assertEquals("x.bin: group size 8 does not divide hidden_dim 100 (largest that works: 4)", e.getMessage());
        assertEquals(Llama2jException.BAD_USAGE, e.exitCode());
        assertFalse(Files.exists(tmp.resolve("x.bin")));
    }

    @Test
    void failureMidwayLeavesNeitherFileNorTemp() throws IOException {
        Path out = tmp.resolve("broken.bin");
        Files.writeString(out, "old content");
        AtomicInteger calls = new AtomicInteger();
        RandomWeights good = new RandomWeights(GQA, 1, 0.02);
        WeightSource failing = new WeightSource() {
            @Override
            public Configuration config() {
                return GQA;
            }

            @Override
            public void rows(Tensor t, int layer, int firstRow, int rowCount, float[] dst, int offset) {
                if (calls.incrementAndGet() > 5) {
                    throw new Llama2jException("source failed", Llama2jException.IO_FAILURE);
                }
                good.rows(t, layer, firstRow, rowCount, dst, offset);
            }
        };
        assertThrows(Llama2jException.class, () -> CheckpointWriter.write(failing, ModelFormat.V1_F32, 0, out, null));
        assertEquals("old content", Files.readString(out), "the old file must be left as it was");
        assertFalse(Files.exists(tmp.resolve("broken.bin.tmp")));
    }

    @Test
    void nonFiniteWeightsAreNotQuantized() {
        WeightSource nan = new WeightSource() {
            @Override
            public Configuration config() {
                return GQA;
            }

            @Override
            public void rows(Tensor t, int layer, int firstRow, int rowCount, float[] dst, int offset) {
                Arrays.fill(dst, offset, offset + rowCount * t.cols(GQA), t == Tensor.WK && layer == 1 ? Float.NaN : 0.5f);
            }
        };
        Llama2jException e = assertThrows(Llama2jException.class,
                () -> CheckpointWriter.write(nan, ModelFormat.V2_Q8, 4, tmp.resolve("n.bin"), null));
        assertEquals("wk[1] row 0 holds a non-finite weight, cannot quantize", e.getMessage());
        assertFalse(Files.exists(tmp.resolve("n.bin")));
        assertFalse(Files.exists(tmp.resolve("n.bin.tmp")));
    }

    @Test
    void randomWeightsHaveTheRequestedDistributionAndAreDeterministic() {
        Configuration c = new Configuration(256, 512, 1, 4, 4, 300, 8, true, 0);
        RandomWeights w = new RandomWeights(c, 99, 0.02);
        float[] a = new float[300 * 256], b = new float[300 * 256];
        w.rows(Tensor.TOKEN_EMBEDDING, 0, 0, 300, a, 0);
        new RandomWeights(c, 99, 0.02).rows(Tensor.TOKEN_EMBEDDING, 0, 0, 300, b, 0);
        assertArrayEquals(a, b, 0f);
        // rows are independent of how they are requested
        float[] part = new float[2 * 256];
        w.rows(Tensor.TOKEN_EMBEDDING, 0, 17, 2, part, 0);
        assertArrayEquals(Arrays.copyOfRange(a, 17 * 256, 19 * 256), part, 0f);
        double sum = 0, sq = 0;
        for (float v : a) {
            sum += v;
            sq += (double) v * v;
        }
        double mean = sum / a.length, std = Math.sqrt(sq / a.length - mean * mean);
        assertEquals(0, mean, 0.0005);
        assertEquals(0.02, std, 0.0005);
        float[] norm = new float[256];
        w.rows(Tensor.RMS_ATT, 0, 0, 1, norm, 0);
        double ns = 0;
        for (float v : norm) {
            ns += v;
        }
        assertEquals(1.0, ns / 256, 0.01);
        assertFalse(norm[0] == norm[1], "norms must vary per channel");
        float[] otherLayer = new float[256];
        new RandomWeights(new Configuration(256, 512, 2, 4, 4, 300, 8, true, 0), 99, 0.02).rows(Tensor.RMS_ATT, 1, 0, 1, otherLayer, 0);
        assertFalse(Arrays.equals(norm, otherLayer), "layers must differ");
    }

    static Path shared(String name) {
        String dir = System.getenv("LLAMA2J_TEST_MODELS");
        Assumptions.assumeTrue(dir != null && !dir.isBlank(), "LLAMA2J_TEST_MODELS is not set");
        Path p = Path.of(dir, name);
        Assumptions.assumeTrue(Files.isRegularFile(p), p + " is missing");
        return p;
    }
}
