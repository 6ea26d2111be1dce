package io.github.llama2j.gguf;

import io.github.llama2j.Json;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.TestData;
import io.github.llama2j.cli.Main;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.GgmlQuantize;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.GgufSynth;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code llama2j synth --format gguf}, {@link GgufSynth} and {@link GgufWriter}. */
class GgufSynthTest {
    @TempDir
    Path tmp;

    record Run(int code, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Run(code, out.toString(), err.toString());
    }

    private static final String[] SMALL = {"--dim", "64", "--hidden-dim", "96", "--layers", "3", "--heads", "4", "--kv-heads", "2",
            "--vocab", "40", "--seq-len", "64"};

    /** synth OUT --format gguf with SMALL's options, those in {@code extra} replaced (a --shape drops them all). */
    private static String[] args(String out, String[] extra) {
        Map<String, String> o = new java.util.LinkedHashMap<>();
        if (!Arrays.asList(extra).contains("--shape")) {
            for (int i = 0; i < SMALL.length; i += 2) {
                o.put(SMALL[i], SMALL[i + 1]);
            }
        }
        for (int i = 0; i < extra.length; i += 2) {
            o.put(extra[i], extra[i + 1]);
        }
        List<String> a = new ArrayList<>(List.of("synth", out, "--format", "gguf"));
        o.forEach((k, v) -> {
            a.add(k);
            if (v != null) {
                a.add(v);
            }
        });
        return a.toArray(String[]::new);
    }

    /**
     * Every architecture and type: the file loads, every tensor's bytes are the generated rows converted by
     * GgmlQuantize (f32 tensors: the generated values themselves), the values follow the stated distribution,
     * and the hyper-parameters come back.
     */
    @Test
    void roundTripEveryArchitectureAndType() {
        for (String arch : new String[]{"llama", "qwen2", "qwen3"}) {
            for (GgufSynth.FileType type : GgufSynth.FileType.values()) {
                Path out = tmp.resolve(arch + "-" + type.displayName() + ".gguf");
                // 256 wide so the K-quants apply; qwen3 with head size 32 != dim / heads (so its 128-wide attn_output falls
                // back from Q4_K to Q5_0, from Q5_K to Q5_1)
                int headSize = arch.equals("qwen3") ? 32 : 64;
                String[] extra = {"--arch", arch, "--type", type.displayName(), "--seed", "5", "--dim", "256",
                        "--hidden-dim", "512", "--head-size", String.valueOf(headSize), "--unshared", null}; // null: a flag
                Run r = run(args(out.toString(), extra));
                assertEquals(0, r.code, r.err);
                assertTrue(r.out.startsWith("wrote " + out + ": GGUF " + type.displayName() + " " + arch), r.out);
                GgufSynth.Shape shape = new GgufSynth.Shape(arch, 256, 512, 3, 4, 2, headSize, 40, 64,
                        10000f, 1e-5f, false, null);
                GgufSynth synth = new GgufSynth(shape, type, 5, 0.02);
                try (Model m = GgufModelLoader.load(out)) {
                    GgufFile f = m.gguf().orElseThrow();
                    Configuration c = m.config();
                    assertEquals(256, c.dim());
                    assertEquals(512, c.hiddenDim());
                    assertEquals(3, c.nLayers());
                    assertEquals(4, c.nHeads());
                    assertEquals(2, c.nKvHeads());
                    assertEquals(40, c.vocabSize());
                    assertEquals(headSize, c.headSize());
                    assertFalse(c.sharedClassifier());
                    assertEquals(arch, f.getString("general.architecture"));
                    assertEquals((long) type.ftype(), f.getLong("general.file_type"));
                    assertEquals(64L, f.getLong(arch + ".context_length"));
                    assertEquals(3, f.version());
                    List<GgufSynth.TensorSpec> specs = GgufSynth.tensors(shape);
                    assertEquals(specs.size(), f.tensors().size());
                    for (GgufSynth.TensorSpec t : specs) {
                        GgufTensorInfo info = f.tensor(t.name()).orElseThrow();
                        GgmlType gt = GgufSynth.tensorType(type, shape, t);
                        assertEquals(gt, info.type(), t.name());
                        assertArrayEquals(t.ne(), info.ne(), t.name());
                        checkRows(synth, t, gt, f.data(info));
                    }
                }
            }
        }
    }

    /**
     * A Q4_K_M file of rows that are no K-quant rows (96 wide): Q5_0 and Q8_0 in their place, as llama-quantize writes
     * them; each tensor's bytes are the generated rows converted (Q5_0 by ggml's reference quantizer); the loader
     * gives each Q5_0 tensor as a Q8_0 matrix of the same values; info's check (validate) passes without widening.
     */
    @Test
    void q4KMWhereKQuantsDoNotFitHasQ5_0() {
        Path out = tmp.resolve("narrow-q4_k_m.gguf");
        Run r = run(args(out.toString(), new String[]{"--arch", "qwen2", "--type", "q4_k_m", "--seed", "3", "--dim", "96",
                "--hidden-dim", "160", "--heads", "4", "--kv-heads", "2"}));
        assertEquals(0, r.code, r.err);
        GgufSynth.Shape shape = new GgufSynth.Shape("qwen2", 96, 160, 3, 4, 2, 24, 40, 64, 10000f, 1e-5f, true, null);
        GgufSynth synth = new GgufSynth(shape, GgufSynth.FileType.Q4_K_M, 3, 0.02);
        try (Model m = GgufModelLoader.load(out)) {
            GgufFile f = m.gguf().orElseThrow();
            GgufModelLoader.validate(f);
            int q5 = 0;
            for (GgufSynth.TensorSpec t : GgufSynth.tensors(shape)) {
                GgufTensorInfo info = f.tensor(t.name()).orElseThrow();
                GgmlType gt = GgufSynth.tensorType(GgufSynth.FileType.Q4_K_M, shape, t);
                assertEquals(gt, info.type(), t.name());
                assertTrue(gt != GgmlType.Q4_K && gt != GgmlType.Q6_K, t.name() + ": " + gt);
                checkRows(synth, t, gt, f.data(info));
                if (gt == GgmlType.Q5_0) {
                    q5++;
                }
            }
            assertTrue(q5 >= 3 * 5, "attn q/k/o and ffn gate/up of every layer at least: " + q5);
            Matrix wq = m.weights().wq()[1];
            assertInstanceOf(Matrix.Q8_0.class, wq);
            MemorySegment q5bytes = f.data(f.tensor("blk.1.attn_q.weight").orElseThrow());
            float[] row = new float[96];
            for (int i = 0; i < 96; i++) {
                wq.dequantizeRow(i, row, 0);
                for (int j = 0; j < 96; j++) {
                    long b = (long) (i * 96 + j) / 32 * 22;
                    int k = j % 32, byteOf = q5bytes.get(ValueLayout.JAVA_BYTE, b + 6 + k % 16) & 0xFF;
                    int qh = q5bytes.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), b + 2);
                    int q = (k < 16 ? byteOf & 0xF : byteOf >> 4) | ((qh >> k) & 1) << 4;
                    assertEquals((q - 16) * Float.float16ToFloat(q5bytes.get(Matrix.SHORT, b)), row[j], 0.0f, "row " + i + " col " + j);
                }
            }
        }
        Run info = run("info", out.toString());
        assertEquals(0, info.code, info.err);
        // the model passes (no vocabulary in this file: that is info's one reason)
        assertTrue(info.out.contains("q5_0") && info.out.contains("runs in llama2j          no: no tokenizer.ggml.model"), info.out);
    }

    /** Each row: the bytes equal the regenerated values converted independently, and the values look as specified. */
    private static void checkRows(GgufSynth synth, GgufSynth.TensorSpec t, GgmlType gt, MemorySegment data) {
        long rowBytes = GgmlQuantize.rowBytes(gt.name(), t.cols());
        float[] x = new float[t.cols()];
        double sum = 0, sq = 0;
        for (int r = 0; r < t.rows(); r++) {
            synth.rowValues(t, r, x, 0);
            MemorySegment row = data.asSlice(r * rowBytes, rowBytes);
            if (gt == GgmlType.F32) {
                assertArrayEquals(x, row.toArray(GgufFile.FLOAT), t.name() + " row " + r);
            } else {
                byte[] expected = new byte[(int) rowBytes];
                GgufSynth.convert(gt, x, 0, t.cols(), MemorySegment.ofArray(expected), 0);
                assertArrayEquals(expected, row.toArray(ValueLayout.JAVA_BYTE), t.name() + " row " + r);
            }
            for (float v : x) {
                sum += v;
                sq += v * v;
            }
        }
        double n = (double) t.rows() * t.cols(), mean = sum / n, std = Math.sqrt(sq / n - mean * mean);
        switch (t.kind()) {
            case NORM -> {
                assertEquals(1.0, mean, 0.01, t.name());
                assertEquals(0.02, std, 0.01, t.name());
            }
            case ROPE_FREQS -> {
            }
            default -> {
                assertEquals(0.0, mean, 0.01, t.name());
                assertEquals(0.02, std, 0.004, t.name());
            }
        }
    }

    /** Every tokenizer key of the vocabulary file is copied exactly (type, widths, values), chat template included. */
    @Test
    void vocabularyKeysAreCopiedExactly() throws IOException {
        Path vocab = TestData.gguf().resolve("vocab/ggml-vocab-qwen2.gguf");
        Path out = tmp.resolve("q.gguf");
        Run r = run("synth", out.toString(), "--format", "gguf", "--arch", "qwen2", "--dim", "32", "--hidden-dim", "64",
                "--layers", "1", "--heads", "2", "--kv-heads", "1", "--seq-len", "32", "--type", "q8_0", "--vocab", vocab.toString());
        assertEquals(0, r.code, r.err);
        try (GgufFile v = GgufFile.open(vocab); Model m = GgufModelLoader.load(out)) {
            GgufFile f = m.gguf().orElseThrow();
            int copied = 0;
            for (String key : v.metadata().keySet()) {
                if (key.startsWith("tokenizer.")) {
                    assertEquals(v.rawValue(key).orElseThrow().type(), f.rawValue(key).orElseThrow().type(), key);
                    assertArrayEquals(v.rawValue(key).orElseThrow().bytes(), f.rawValue(key).orElseThrow().bytes(), key);
                    copied++;
                }
            }
            assertTrue(copied >= 5 && f.has("tokenizer.chat_template"), "copied " + copied);
            assertEquals(v.getStringArray("tokenizer.ggml.tokens").length, m.config().vocabSize());
            assertFalse(f.metadata().keySet().stream().anyMatch(k -> !k.startsWith("tokenizer.") && !k.startsWith("general.")
                    && !k.startsWith("qwen2.")), "only tokenizer keys are copied");
        }
        // info reads it: architecture, types, tokenizer
        Run info = run("info", out.toString());
        assertEquals(0, info.code, info.err);
        assertTrue(info.out.contains("qwen2") && info.out.contains("q8_0") && info.out.contains("gpt2"), info.out);
    }

    /** A vocabulary smaller than the model's is padded as llama.cpp's converter pads it (Qwen2.5-7B: 152064 rows). */
    @Test
    void shortVocabularyIsPadded() {
        try (GgufFile v = GgufFile.open(TestData.gguf().resolve("vocab/ggml-vocab-qwen2.gguf"))) {
            int n = v.getStringArray("tokenizer.ggml.tokens").length;
            GgufSynth.Shape s = new GgufSynth.Shape("qwen2", 32, 64, 1, 2, 1, 16, n + 3, 32, 1e6f, 1e-6f, true, null);
            GgufWriter w = new GgufWriter();
            GgufSynth synth = new GgufSynth(s, GgufSynth.FileType.F32, 1, 0.02);
            synth.writeMetadata(w, "padded", v);
            synth.addTensors(w);
            try (GgufFile f = GgufFileTest.parse(w.toBytes())) {
                String[] tokens = f.getStringArray("tokenizer.ggml.tokens");
                assertEquals(n + 3, tokens.length);
                assertEquals("[PAD" + (n + 2) + "]", tokens[n + 2]);
                assertArrayEquals(v.getStringArray("tokenizer.ggml.tokens"), Arrays.copyOf(tokens, n));
                int[] types = f.getIntArray("tokenizer.ggml.token_type");
                assertEquals(5, types[n]);
                assertArrayEquals(v.getIntArray("tokenizer.ggml.token_type"), Arrays.copyOf(types, n));
                assertEquals(n + 3, f.tensor("token_embd.weight").orElseThrow().ne(1));
            }
        }
    }

    /** f32 files of every architecture (GQA, biases, q/k norms, head size != dim / heads) against the double reference. */
    @Test
    void forwardStepMatchesTheReference() {
        for (String arch : new String[]{"llama", "qwen2", "qwen3"}) {
            Path out = tmp.resolve(arch + ".gguf");
            Run r = run(args(out.toString(), new String[]{"--arch", arch, "--type", "f32", "--std", "0.3", "--head-size",
                    arch.equals("qwen3") ? "32" : "16"}));
            assertEquals(0, r.code, r.err);
            try (Model m = GgufModelLoader.load(out); GgufFile f = GgufFile.open(out);
                 InferenceEngine e = Engines.create(m, EngineOptions.cpu(1, false))) {
                GgufReference ref = new GgufReference(f, 64);
                int[] tokens = {1, 7, 39, 3};
                for (int pos = 0; pos < tokens.length; pos++) {
                    float[] ours = e.forward(tokens[pos], pos);
                    double[] expected = ref.forward(tokens[pos], pos);
                    double max = 0, diff = 0;
                    for (int i = 0; i < ours.length; i++) {
                        assertTrue(Float.isFinite(ours[i]));
                        max = Math.max(max, Math.abs(expected[i]));
                        diff = Math.max(diff, Math.abs(ours[i] - expected[i]));
                    }
                    assertTrue(max > 0.1, arch + ": logits too small to compare: " + max);
                    assertTrue(diff <= 1e-4 * max, arch + " pos " + pos + ": " + diff + " of " + max);
                }
            }
        }
    }

    /** The per-tensor types of Q4_0 and Q4_K_M follow llama-quantize: the stored llama2-tiny files' types, tensor by tensor. */
    @Test
    @SuppressWarnings("unchecked")
    void mixedTypesFollowLlamaQuantize() {
        for (String[] m : new String[][]{{"llama2-tiny-q4_0", "Q4_0"}, {"llama2-tiny-q4_k_m", "Q4_K_M"}}) {
            Map<String, Object> g = Json.read(TestData.gguf().resolve("golden/" + m[0] + ".json"));
            // llama2-tiny: 256 wide, 2 layers, 8 heads, ffn 768, separate output (README)
            GgufSynth.Shape s = new GgufSynth.Shape("llama", 256, 768, 2, 8, 8, 32, 32000, 256, 10000f, 1e-5f, false, null);
            GgufSynth.FileType ft = GgufSynth.FileType.byName(m[1]).orElseThrow();
            List<Map<String, Object>> stored = (List<Map<String, Object>>) g.get("tensors");
            assertEquals(stored.size(), GgufSynth.tensors(s).size());
            for (GgufSynth.TensorSpec t : GgufSynth.tensors(s)) {
                Map<String, Object> st = stored.stream().filter(x -> x.get("name").equals(t.name())).findFirst().orElseThrow();
                assertEquals(((String) st.get("type")).toUpperCase(java.util.Locale.ROOT), GgufSynth.tensorType(ft, s, t).name(),
                        m[0] + ": " + t.name());
            }
        }
        // Qwen2.5-0.5B's 896-wide rows are no K-quant rows: Q4_K falls back to Q5_0, Q6_K to Q8_0
        GgufSynth.Shape q = GgufSynth.preset("qwen2.5-0.5b").orElseThrow();
        List<GgufSynth.TensorSpec> ts = GgufSynth.tensors(q);
        assertEquals(GgmlType.Q8_0, GgufSynth.tensorType(GgufSynth.FileType.Q4_K_M, q, ts.getFirst()));
        assertEquals(GgmlType.Q5_0, GgufSynth.tensorType(GgufSynth.FileType.Q4_K_M, q,
                ts.stream().filter(t -> t.name().equals("blk.5.attn_q.weight")).findFirst().orElseThrow()));
        assertEquals(GgmlType.Q4_K, GgufSynth.tensorType(GgufSynth.FileType.Q4_K_M, q,
                ts.stream().filter(t -> t.name().equals("blk.4.ffn_down.weight")).findFirst().orElseThrow()));
        assertEquals(GgmlType.Q6_K, GgufSynth.tensorType(GgufSynth.FileType.Q4_K_M, q,
                ts.stream().filter(t -> t.name().equals("blk.0.ffn_down.weight")).findFirst().orElseThrow()));
    }

    /**
     * Q3_K_S, Q3_K_M and Q3_K_L's per-tensor types, as llama-quantize wrote them for a 16-layer llama file with its own
     * classifier (dim 256, ffn 256, 4 heads, 2 kv heads): the classifier Q6_K in all three; Q3_K_M: attn_v Q5_K in layers
     * 0-1 and Q4_K after, ffn_down Q5_K in layer 0 (16 / 16) and Q4_K after, attn_output Q4_K; Q3_K_L: attn_v, ffn_down
     * and attn_output Q5_K; every other matrix (the token embedding too) Q3_K. 96 wide (qwen2, ffn 256, tied), the
     * fallbacks llama-quantize Q3_K_M took: Q4_0 for Q3_K, Q5_0 for Q4_K (attn_output), Q5_1 for Q5_K (attn_v), Q8_0 for
     * the Q6_K classifier, ffn_down Q4_K (its rows are 256 wide).
     */
    @Test
    void q3KTypesFollowLlamaQuantize() {
        GgufSynth.Shape deep = new GgufSynth.Shape("llama", 256, 256, 16, 4, 2, 64, 300, 64, 10000f, 1e-5f, false, null);
        for (GgufSynth.TensorSpec t : GgufSynth.tensors(deep)) {
            String n = t.name();
            boolean matrix = t.kind() == GgufSynth.Kind.MATRIX;
            GgmlType m = !matrix ? GgmlType.F32 : n.equals("output.weight") ? GgmlType.Q6_K
                    : n.endsWith("attn_v.weight") ? (t.layer() < 2 ? GgmlType.Q5_K : GgmlType.Q4_K)
                    : n.endsWith("ffn_down.weight") ? (t.layer() < 1 ? GgmlType.Q5_K : GgmlType.Q4_K)
                    : n.endsWith("attn_output.weight") ? GgmlType.Q4_K : GgmlType.Q3_K;
            GgmlType l = !matrix ? GgmlType.F32 : n.equals("output.weight") ? GgmlType.Q6_K
                    : n.endsWith("attn_v.weight") || n.endsWith("ffn_down.weight") || n.endsWith("attn_output.weight") ? GgmlType.Q5_K
                    : GgmlType.Q3_K;
            GgmlType s = !matrix ? GgmlType.F32 : n.equals("output.weight") ? GgmlType.Q6_K : GgmlType.Q3_K;
            assertEquals(m, GgufSynth.tensorType(GgufSynth.FileType.Q3_K_M, deep, t), "Q3_K_M " + n);
            assertEquals(l, GgufSynth.tensorType(GgufSynth.FileType.Q3_K_L, deep, t), "Q3_K_L " + n);
            assertEquals(s, GgufSynth.tensorType(GgufSynth.FileType.Q3_K_S, deep, t), "Q3_K_S " + n);
        }
        GgufSynth.Shape narrow = new GgufSynth.Shape("qwen2", 96, 256, 2, 4, 2, 24, 300, 64, 10000f, 1e-5f, true, null);
        for (GgufSynth.TensorSpec t : GgufSynth.tensors(narrow)) {
            String n = t.name();
            GgmlType expected = t.kind() != GgufSynth.Kind.MATRIX ? GgmlType.F32 : n.equals("token_embd.weight") ? GgmlType.Q8_0
                    : n.endsWith("attn_v.weight") ? GgmlType.Q5_1 : n.endsWith("attn_output.weight") ? GgmlType.Q5_0
                    : n.endsWith("ffn_down.weight") ? GgmlType.Q4_K : GgmlType.Q4_0;
            assertEquals(expected, GgufSynth.tensorType(GgufSynth.FileType.Q3_K_M, narrow, t), "narrow Q3_K_M " + n);
        }
    }

    /**
     * Q2_K's and Q2_K_S's per-tensor types, as llama-quantize wrote them (Q2_K) or listed them with --dry-run (Q2_K_S,
     * which it quantizes only with an importance matrix) for a 16-layer llama file with its own classifier (dim 256, ffn
     * 512, 8 heads, 2 kv heads: four query heads per kv head): the classifier Q6_K; Q2_K: attn_v Q4_K, ffn_down and
     * attn_output Q3_K; Q2_K_S: attn_v Q4_K, ffn_down Q4_K in layers 0-1 (16 / 8) and Q2_K after; every other matrix
     * (the token embedding too) Q2_K. With 4 heads and 2 kv heads (a 2-layer file) attn_v is Q3_K in Q2_K and Q2_K in
     * Q2_K_S. 96 wide (qwen2, tied), the fallbacks llama-quantize Q2_K took: Q4_0 for Q2_K and Q3_K, Q8_0 for the
     * Q6_K classifier, ffn_down Q3_K (its rows are 256 wide).
     */
    @Test
    void q2KTypesFollowLlamaQuantize() {
        GgufSynth.Shape deep = new GgufSynth.Shape("llama", 256, 512, 16, 8, 2, 32, 300, 64, 10000f, 1e-5f, false, null);
        for (GgufSynth.TensorSpec t : GgufSynth.tensors(deep)) {
            String n = t.name();
            boolean matrix = t.kind() == GgufSynth.Kind.MATRIX;
            GgmlType q = !matrix ? GgmlType.F32 : n.equals("output.weight") ? GgmlType.Q6_K
                    : n.endsWith("attn_v.weight") ? GgmlType.Q4_K
                    : n.endsWith("ffn_down.weight") || n.endsWith("attn_output.weight") ? GgmlType.Q3_K : GgmlType.Q2_K;
            GgmlType s = !matrix ? GgmlType.F32 : n.equals("output.weight") ? GgmlType.Q6_K
                    : n.endsWith("attn_v.weight") ? GgmlType.Q4_K
                    : n.endsWith("ffn_down.weight") && t.layer() < 2 ? GgmlType.Q4_K : GgmlType.Q2_K;
            assertEquals(q, GgufSynth.tensorType(GgufSynth.FileType.Q2_K, deep, t), "Q2_K " + n);
            assertEquals(s, GgufSynth.tensorType(GgufSynth.FileType.Q2_K_S, deep, t), "Q2_K_S " + n);
        }
        GgufSynth.Shape small = new GgufSynth.Shape("llama", 256, 256, 2, 4, 2, 64, 300, 64, 10000f, 1e-5f, false, null);
        GgufSynth.TensorSpec v = GgufSynth.tensors(small).stream().filter(t -> t.name().equals("blk.1.attn_v.weight")).findFirst().orElseThrow();
        assertEquals(GgmlType.Q3_K, GgufSynth.tensorType(GgufSynth.FileType.Q2_K, small, v));
        assertEquals(GgmlType.Q2_K, GgufSynth.tensorType(GgufSynth.FileType.Q2_K_S, small, v));
        GgufSynth.Shape narrow = new GgufSynth.Shape("qwen2", 96, 256, 2, 4, 2, 24, 300, 64, 10000f, 1e-5f, true, null);
        for (GgufSynth.TensorSpec t : GgufSynth.tensors(narrow)) {
            String n = t.name();
            GgmlType expected = t.kind() != GgufSynth.Kind.MATRIX ? GgmlType.F32 : n.equals("token_embd.weight") ? GgmlType.Q8_0
                    : n.endsWith("ffn_down.weight") ? GgmlType.Q3_K : GgmlType.Q4_0;
            assertEquals(expected, GgufSynth.tensorType(GgufSynth.FileType.Q2_K, narrow, t), "narrow Q2_K " + n);
        }
    }

    /**
     * IQ4_NL and IQ4_XS's per-tensor types, as llama-quantize wrote them (no importance matrix) for a 16-layer llama file
     * with its own classifier (dim 256, ffn 512, 8 heads, 2 kv heads: four query heads per kv head): the classifier
     * Q6_K, attn_v Q5_K, ffn_down Q5_K in layers 0-1 (16 / 8), every other matrix (the token embedding too) the file's
     * type. A Qwen2.5-0.5B-like qwen2 file (896 wide, ffn 4864, 14 heads, 2 kv heads, tied), the fallbacks llama-quantize
     * took: the classifier Q8_0, attn_v Q5_1 (for Q5_K), IQ4_XS's 896-wide rows IQ4_NL, ffn_down (4864-wide rows) IQ4_XS.
     */
    @Test
    void iq4TypesFollowLlamaQuantize() {
        GgufSynth.Shape deep = new GgufSynth.Shape("llama", 256, 512, 16, 8, 2, 32, 300, 64, 10000f, 1e-5f, false, null);
        GgufSynth.Shape narrow = new GgufSynth.Shape("qwen2", 896, 4864, 2, 14, 2, 64, 300, 64, 10000f, 1e-5f, true, null);
        for (GgufSynth.FileType ft : new GgufSynth.FileType[]{GgufSynth.FileType.IQ4_NL, GgufSynth.FileType.IQ4_XS}) {
            for (GgufSynth.TensorSpec t : GgufSynth.tensors(deep)) {
                String n = t.name();
                GgmlType expected = t.kind() != GgufSynth.Kind.MATRIX ? GgmlType.F32 : n.equals("output.weight") ? GgmlType.Q6_K
                        : n.endsWith("attn_v.weight") || n.endsWith("ffn_down.weight") && t.layer() < 2 ? GgmlType.Q5_K : ft.base();
                assertEquals(expected, GgufSynth.tensorType(ft, deep, t), ft + " " + n);
            }
            for (GgufSynth.TensorSpec t : GgufSynth.tensors(narrow)) {
                String n = t.name();
                GgmlType expected = t.kind() != GgufSynth.Kind.MATRIX ? GgmlType.F32 : n.equals("token_embd.weight") ? GgmlType.Q8_0
                        : n.endsWith("attn_v.weight") ? GgmlType.Q5_1 : n.endsWith("ffn_down.weight") ? ft.base() : GgmlType.IQ4_NL;
                assertEquals(expected, GgufSynth.tensorType(ft, narrow, t), "narrow " + ft + " " + n);
            }
        }
    }

    /**
     * Q5_K_M's per-tensor types, as llama-quantize Q5_K_M wrote them for a 2-layer Llama-3.2-1B-shaped file (tied: the
     * embedding is the classifier, Q6_K; layer 1 is in use_more_bits' last eighth, so its attn_v and ffn_down are Q6_K;
     * every other matrix Q5_K).
     */
    @Test
    void q5KMTypesFollowLlamaQuantize() {
        GgufSynth.Shape l = GgufSynth.preset("llama-3.2-1b").orElseThrow();
        GgufSynth.Shape two = new GgufSynth.Shape(l.arch(), l.dim(), l.hidden(), 2, l.heads(), l.kvHeads(), l.headSize(), l.vocab(),
                256, l.ropeTheta(), l.rmsEps(), l.tied(), l.llama3Rope());
        for (GgufSynth.TensorSpec t : GgufSynth.tensors(two)) {
            GgmlType expected = t.name().equals("token_embd.weight") || t.name().equals("blk.1.attn_v.weight")
                    || t.name().equals("blk.1.ffn_down.weight") ? GgmlType.Q6_K
                    : t.name().endsWith("norm.weight") || t.name().equals("rope_freqs.weight") ? GgmlType.F32 : GgmlType.Q5_K;
            assertEquals(expected, GgufSynth.tensorType(GgufSynth.FileType.Q5_K_M, two, t), t.name());
        }
    }

    /**
     * A Q5_K_M file of rows that are no K-quant rows (96 wide): Q5_1 and Q8_0 in their place, as llama-quantize writes
     * them; each tensor's bytes are the generated rows converted (Q5_1 by ggml's reference quantizer); the loader gives
     * each Q5_1 tensor as a {@link Matrix.Q5_1} of the file's values (checked against the layout, decoded here); info
     * lists q5_1 and passes the file.
     */
    @Test
    void q5KMWhereKQuantsDoNotFitHasQ5_1() {
        Path out = tmp.resolve("narrow-q5_k_m.gguf");
        Run r = run(args(out.toString(), new String[]{"--arch", "qwen2", "--type", "q5_k_m", "--seed", "3", "--dim", "96",
                "--hidden-dim", "160", "--heads", "4", "--kv-heads", "2"}));
        assertEquals(0, r.code, r.err);
        GgufSynth.Shape shape = new GgufSynth.Shape("qwen2", 96, 160, 3, 4, 2, 24, 40, 64, 10000f, 1e-5f, true, null);
        GgufSynth synth = new GgufSynth(shape, GgufSynth.FileType.Q5_K_M, 3, 0.02);
        try (Model m = GgufModelLoader.load(out)) {
            GgufFile f = m.gguf().orElseThrow();
            int q51 = 0;
            for (GgufSynth.TensorSpec t : GgufSynth.tensors(shape)) {
                GgufTensorInfo info = f.tensor(t.name()).orElseThrow();
                GgmlType gt = GgufSynth.tensorType(GgufSynth.FileType.Q5_K_M, shape, t);
                assertEquals(gt, info.type(), t.name());
                assertTrue(gt != GgmlType.Q5_K && gt != GgmlType.Q6_K, t.name() + ": " + gt);
                checkRows(synth, t, gt, f.data(info));
                if (gt == GgmlType.Q5_1) {
                    q51++;
                }
            }
            assertTrue(q51 >= 3 * 5, "attn q/k/o and ffn gate/up of every layer at least: " + q51);
            Matrix wq = m.weights().wq()[1];
            assertInstanceOf(Matrix.Q5_1.class, wq);
            MemorySegment bytes = f.data(f.tensor("blk.1.attn_q.weight").orElseThrow());
            float[] row = new float[96];
            for (int i = 0; i < 96; i++) {
                wq.dequantizeRow(i, row, 0);
                for (int j = 0; j < 96; j++) { // f16 d, f16 m, u32 qh, u8 qs[16]
                    long b = (long) (i * 96 + j) / 32 * 24;
                    int k = j % 32, byteOf = bytes.get(ValueLayout.JAVA_BYTE, b + 8 + k % 16) & 0xFF;
                    int qh = bytes.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), b + 4);
                    int q = (k < 16 ? byteOf & 0xF : byteOf >> 4) | ((qh >> k) & 1) << 4;
                    float d = Float.float16ToFloat(bytes.get(Matrix.SHORT, b)), min = Float.float16ToFloat(bytes.get(Matrix.SHORT, b + 2));
                    assertEquals(q * d + min, row[j], 0.0f, "row " + i + " col " + j);
                }
            }
        }
        Run info = run("info", out.toString());
        assertEquals(0, info.code, info.err);
        // the model passes (no vocabulary in this file: that is info's one reason)
        assertTrue(info.out.contains("q5_1") && info.out.contains("runs in llama2j          no: no tokenizer.ggml.model"), info.out);
    }

    /** The presets' hyper-parameters are the published models' (parameter counts as llama.cpp reports them). */
    @Test
    void presetsHaveTheRealShapes() {
        assertEquals(1_235_814_432L, GgufSynth.preset("llama-3.2-1b").orElseThrow().parameterCount());
        assertEquals(8_030_261_312L, GgufSynth.preset("llama-3.1-8b").orElseThrow().parameterCount());
        assertEquals(494_032_768L, GgufSynth.preset("qwen2.5-0.5b").orElseThrow().parameterCount());
        assertEquals(7_615_616_512L, GgufSynth.preset("qwen2.5-7b").orElseThrow().parameterCount());
        // Llama 3 RoPE scaling as the converter computes it: llama3-tiny's stored rope_freqs (factor 32, head size 16)
        float[] f = new GgufSynth.Llama3Rope(32, 1, 4, 8192).factors(500000f, 16);
        assertArrayEquals(new float[]{1, 1, 1, 1, Float.intBitsToFloat(0x4052b46f), 32, 32, 32}, f);
    }

    /** Bad options: exit code 2 and one line naming the option. */
    @Test
    void badOptionsNameTheOption() throws IOException {
        Path out = tmp.resolve("bad.gguf");
        String vocab = TestData.gguf().resolve("vocab/ggml-vocab-qwen2.gguf").toString();
        Path notGguf = Files.writeString(tmp.resolve("text.gguf"), "hello");
        String[][] cases = {
                {"--type", "q5_k"}, {"--type", "q8_0", "--dim", "48"}, {"--arch", "phi3"}, {"--shape", "llama-2-7b"},
                {"--shape", "llama-3.2-1b", "--arch", "qwen2"}, {"--heads", "3"}, {"--head-size", "15"}, {"--kv-heads", "3"},
                {"--vocab", tmp.resolve("missing.gguf").toString()}, {"--vocab", notGguf.toString()},
                {"--shape", "llama-3.2-1b", "--vocab", vocab},
                {"--group-size", "32"}, {"--rope-theta", "0.5"}, {"--rms-eps", "0"}, {"--std", "-1"}, {"--layers", "0"}};
        String[] named = {"--type", "--type", "--arch", "--shape", "--arch", "--heads", "head size", "--kv-heads", "--vocab",
                "--vocab", "--vocab", "--group-size", "--rope-theta", "--rms-eps", "--std", "--layers"};
        for (int i = 0; i < cases.length; i++) {
            Run r = run(args(out.toString(), cases[i]));
            String line = r.err.strip();
            assertEquals(2, r.code, Arrays.toString(cases[i]) + ": " + r.err + r.out);
            assertFalse(line.contains("\n") || line.contains("Exception"), line);
            assertTrue(line.contains(named[i]), Arrays.toString(cases[i]) + ": " + line);
            assertFalse(Files.exists(out) || Files.exists(tmp.resolve("bad.gguf.tmp")));
        }
        // options of one format refused with the other
        Run r = run("synth", tmp.resolve("x.bin").toString(), "--shape", "stories260K", "--type", "q8_0");
        assertEquals(2, r.code);
        assertTrue(r.err.contains("--type applies to --format gguf only"), r.err);
        r = run("synth", tmp.resolve("x.bin").toString(), "--shape", "stories260K", "--vocab", vocab);
        assertEquals(2, r.code);
        assertTrue(r.err.contains("--vocab is '"), r.err);
    }

    /** The writer: toBytes and write(path) give the same bytes; a tensor streamed in pieces larger than the buffer. */
    @Test
    void writerStreamsToDiskAndChecksSizes() throws IOException {
        int n = 3 << 20; // 12 MB of float32, three times the write buffer
        GgufWriter w = new GgufWriter().str("general.architecture", "x").u8("a", 1).alignment(64);
        w.tensor("big", GgmlType.F32, new long[]{n}, out -> {
            byte[] chunk = new byte[1 << 20];
            for (int c = 0; c < 12; c++) {
                Arrays.fill(chunk, (byte) c);
                out.write(chunk);
            }
        });
        w.f32Tensor("small", new float[]{1, 2, 3}, 3);
        Path p = tmp.resolve("big.gguf");
        assertEquals(w.fileSize(), w.write(p, null));
        assertArrayEquals(w.toBytes(), Files.readAllBytes(p));
        try (GgufFile f = GgufFile.open(p)) {
            assertEquals(64, f.alignment());
            GgufTensorInfo big = f.tensor("big").orElseThrow();
            assertEquals(5, f.data(big).get(ValueLayout.JAVA_BYTE, (5L << 20) + 7));
            assertEquals(3f, f.data(f.tensor("small").orElseThrow()).get(GgufFile.FLOAT, 8));
            assertEquals(0, f.tensor("small").orElseThrow().offset() % 64);
        }
        // a callback writing the wrong size fails and leaves nothing behind
        GgufWriter wrong = new GgufWriter().tensor("t", GgmlType.F32, new long[]{4}, out -> out.write(new byte[12]));
        Path q = tmp.resolve("wrong.gguf");
        assertThrows(IllegalStateException.class, () -> wrong.write(q, null));
        assertFalse(Files.exists(q) || Files.exists(tmp.resolve("wrong.gguf.tmp")));
        assertThrows(IllegalArgumentException.class, () -> new GgufWriter().u8("k", 1).u8("k", 2));
        assertThrows(IllegalArgumentException.class, () -> new GgufWriter().tensor("t", GgmlType.Q8_0, new byte[34], 16));
        assertThrows(IllegalArgumentException.class, () -> new GgufWriter().version(1));
        Llama2jException e = assertThrows(Llama2jException.class,
                () -> new GgufWriter().f32Tensor("t", new float[1], 1).write(tmp.resolve("no/such/dir/x.gguf"), null));
        assertEquals(Llama2jException.IO_FAILURE, e.exitCode());
    }
}
