package io.github.llama2j.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.model.Weights;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Fuzzes the checkpoint reader (v0, v1 and v2 headers and bodies) with {@link ModelLoader#parse} on a
 * native segment holding exactly the input, as a mapped file would. Properties:
 * <ul>
 *   <li>only {@link Llama2jException} escapes, with one line that names the file;</li>
 *   <li>nothing is read outside the segment (any such read throws IndexOutOfBoundsException);</li>
 *   <li>a parsed model's tensors tile the file: disjoint, inside it, and together exactly the bytes
 *       the layout gives them, with the shapes the header gives;</li>
 *   <li>the heap allocated is proportional to the input, never to a header field;</li>
 *   <li>small parsed models run two forward passes on the CPU engine, with vocab_size logits; larger
 *       run states must be refused with a Llama2jException before anything is allocated.</li>
 * </ul>
 * {@link #anyBytes} mutates whole files (seeded with tiny valid v0/v1/v2 files and their headers);
 * {@link #shapedFile} builds a file of exactly the size its fuzzed header implies (plus or minus a
 * few bytes), so mutations reach the body checks and the forward pass instead of the size check.
 */
class CheckpointFuzzTest {
    static final String NAME = "fuzz.bin";
    /** Forward passes only on models this small (stories260K has 260K parameters). */
    static final long MAX_FORWARD_PARAMETERS = 300_000;
    /** ... and with a run state (KV cache, activations) this small. */
    static final long MAX_FORWARD_STATE_BYTES = 16L << 20;

    static {
        // Load and initialise the classes involved once, so the allocation budget measures inputs, not class loading.
        seeds().forEach(a -> exercise((byte[]) a.get()[0]));
    }

    @MethodSource("seeds")
    @FuzzTest(maxDuration = "10m")
    void anyBytes(byte[] data) {
        exercise(data);
    }

    @MethodSource("shapedSeeds")
    @FuzzTest(maxDuration = "10m")
    void shapedFile(byte[] choices) {
        exercise(ShapedCheckpoint.build(choices));
    }

    static Stream<Arguments> seeds() {
        List<byte[]> files = new ArrayList<>();
        Random rnd = new Random(1);
        files.add(TinyFiles.v0(TinyFiles.tinyShape(true, 0), rnd));
        files.add(TinyFiles.v0(TinyFiles.tinyShape(false, 0), rnd));
        files.add(TinyFiles.v1(TinyFiles.tinyShape(true, 0), rnd));
        files.add(TinyFiles.v1(TinyFiles.tinyShape(false, 0), rnd));
        files.add(TinyFiles.v2(TinyFiles.tinyShape(true, 4), rnd));
        files.add(TinyFiles.v2(TinyFiles.tinyShape(false, 2), rnd));
        // multi-head attention, head size 2, one layer, vocab 3
        files.add(TinyFiles.v0(new TinyFiles.Shape(4, 6, 1, 2, 2, 3, 5, true, 0), rnd));
        files.add(TinyFiles.v2(new TinyFiles.Shape(4, 6, 1, 2, 2, 3, 5, false, 2), rnd));
        List<byte[]> seeds = new ArrayList<>(files);
        for (byte[] f : files) { // headers alone and truncated bodies
            seeds.add(Arrays.copyOf(f, f[0] == 0x32 ? ModelLoader.V1_V2_HEADER_BYTES : ModelLoader.V0_HEADER_BYTES));
            seeds.add(Arrays.copyOf(f, f.length - 1));
        }
        return seeds.stream().map(b -> Arguments.of((Object) b));
    }

    static Stream<Arguments> shapedSeeds() {
        return ShapedCheckpoint.seeds().stream().map(b -> Arguments.of((Object) b));
    }

    /** Parses {@code data} as a checkpoint and checks every property above. */
    static void exercise(byte[] data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment file = arena.allocate(data.length);
            MemorySegment.copy(data, 0, file, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, data.length);
            Model model = FuzzProperties.withAllocationBudget("parse", data.length, () -> {
                try {
                    return ModelLoader.parse(NAME, Path.of(NAME), file, arena);
                } catch (Llama2jException e) {
                    FuzzProperties.assertClearError(e, NAME);
                    return null;
                }
            });
            if (model == null) {
                return;
            }
            checkTiling(model, file);
            runForward(model);
            // The model is not closed: it would close the arena, which try-with-resources owns.
        }
    }

    /** Tensors lie in the file, do not overlap, have the header's shapes and cover the body exactly. */
    static void checkTiling(Model model, MemorySegment file) {
        Configuration c = model.config();
        Weights w = model.weights();
        int L = c.nLayers(), D = c.dim(), H = c.hiddenDim(), KV = c.kvDim(), V = c.vocabSize();
        List<MemorySegment> parts = new ArrayList<>();
        shape(w.tokenEmbedding(), V, D, c, parts);
        FuzzProperties.check(w.rmsAtt().length == L && w.rmsFfn().length == L && w.wq().length == L && w.w2().length == L,
                "per-layer arrays do not have n_layers entries");
        for (int l = 0; l < L; l++) {
            vector(w.rmsAtt()[l], D, parts);
            vector(w.rmsFfn()[l], D, parts);
            shape(w.wq()[l], D, D, c, parts);
            shape(w.wk()[l], KV, D, c, parts);
            shape(w.wv()[l], KV, D, c, parts);
            shape(w.wo()[l], D, D, c, parts);
            shape(w.w1()[l], H, D, c, parts);
            shape(w.w2()[l], D, H, c, parts);
            shape(w.w3()[l], H, D, c, parts);
        }
        vector(w.rmsFinal(), D, parts);
        if (c.sharedClassifier()) {
            FuzzProperties.check(w.classifier() == w.tokenEmbedding(), "shared classifier is not the embedding");
        } else {
            shape(w.classifier(), V, D, c, parts);
        }
        long header = model.format() == ModelFormat.LEGACY_V0 ? ModelLoader.V0_HEADER_BYTES : ModelLoader.V1_V2_HEADER_BYTES;
        long unused = model.format() == ModelFormat.LEGACY_V0 ? (long) c.seqLen() * c.headSize() * Float.BYTES : 0;
        long base = file.address();
        parts.sort(Comparator.comparingLong(MemorySegment::address));
        long end = base + header;
        long total = 0;
        for (MemorySegment p : parts) {
            FuzzProperties.check(p.address() >= end, "tensor at offset " + (p.address() - base) + " overlaps the header or another tensor");
            end = p.address() + p.byteSize();
            total += p.byteSize();
        }
        FuzzProperties.check(end <= base + file.byteSize(), "a tensor ends past the file");
        FuzzProperties.check(header + total + unused == file.byteSize(),
                "tensors cover " + total + " bytes of a " + file.byteSize() + "-byte file");
    }

    private static void vector(MemorySegment s, int dim, List<MemorySegment> parts) {
        FuzzProperties.check(s.byteSize() == (long) dim * Float.BYTES, "norm vector of " + s.byteSize() + " bytes, dim " + dim);
        parts.add(s);
    }

    private static void shape(Matrix m, int rows, int cols, Configuration c, List<MemorySegment> parts) {
        FuzzProperties.check(m.rows() == rows && m.cols() == cols, "matrix " + m.rows() + "x" + m.cols() + ", expected " + rows + "x" + cols);
        long n = (long) rows * cols;
        switch (m) {
            case Matrix.F32 f -> {
                FuzzProperties.check(!c.quantized() && f.data().byteSize() == n * Float.BYTES, "float32 matrix of wrong size");
                parts.add(f.data());
            }
            case Matrix.Q8 q -> {
                FuzzProperties.check(c.quantized() && q.groupSize() == c.groupSize(), "Q8 matrix in a float model or wrong group size");
                FuzzProperties.check(q.values().byteSize() == n && q.scales().byteSize() == n / c.groupSize() * Float.BYTES,
                        "Q8 matrix of wrong size");
                parts.add(q.values());
                parts.add(q.scales());
            }
            default -> FuzzProperties.check(false, "a llama2.c checkpoint with a " + m.typeName() + " matrix");
        }
    }

    /** Two forward passes on small models; a too-large run state must be refused cleanly. */
    static void runForward(Model model) {
        Configuration c = model.config();
        long state = runStateBytes(c);
        if (c.parameterCount() > MAX_FORWARD_PARAMETERS) {
            return;
        }
        if (state > MAX_FORWARD_STATE_BYTES) {
            if (state > 4 * Runtime.getRuntime().maxMemory()) {
                // Cannot fit in this heap: the engine must say so, not throw an Error or a wrong-size array.
                FuzzProperties.withAllocationBudget("engine refusal", 0, () -> {
                    try (InferenceEngine e = Engines.create(model, EngineOptions.cpu(1, false))) {
                        throw new AssertionError("engine accepted a run state of " + state + " bytes");
                    } catch (Llama2jException expected) {
                        FuzzProperties.assertClearError(expected, NAME);
                        return null;
                    }
                });
            }
            return;
        }
        try (InferenceEngine e = Engines.create(model, EngineOptions.cpu(1, false))) {
            float[] logits = e.forward(0, 0);
            FuzzProperties.check(logits.length == c.vocabSize(), "logits length " + logits.length);
            if (c.seqLen() > 1) {
                logits = e.forward(c.vocabSize() - 1, 1);
                FuzzProperties.check(logits.length == c.vocabSize(), "logits length " + logits.length);
            }
        }
    }

    /** The CPU engine's run state in bytes (KV cache, attention scores, logits, activations), saturating. */
    static long runStateBytes(Configuration c) {
        try {
            long kv = Math.multiplyExact(Math.multiplyExact(2L * c.nLayers(), c.seqLen()), c.kvDim());
            long att = Math.multiplyExact((long) c.nHeads(), c.seqLen());
            long vectors = 6L * c.dim() + 4L * c.hiddenDim() + 2L * c.kvDim() + c.vocabSize();
            return Math.multiplyExact(Math.addExact(Math.addExact(kv, att), vectors), Float.BYTES);
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    /** Little-endian ints for building inputs in tests. */
    static byte[] ints(int... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            b.putInt(v);
        }
        return b.array();
    }
}
