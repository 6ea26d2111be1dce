package io.github.llama2j.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.gguf.GgmlType;
import io.github.llama2j.gguf.GgufWriter;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.gguf.GgufTensorInfo;
import io.github.llama2j.gguf.TinyGguf;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Model;
import org.junit.jupiter.params.provider.Arguments;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Fuzzes the GGUF reader ({@link GgufFile#parse}) on a native segment holding exactly the input, as a
 * mapped file would. Properties:
 * <ul>
 *   <li>only {@link Llama2jException} escapes, with one line that names the file;</li>
 *   <li>nothing is read outside the segment (such a read throws IndexOutOfBoundsException);</li>
 *   <li>the heap allocated is proportional to the input, never to a count or length read from it;</li>
 *   <li>a parsed file's tensors lie after the header, inside the file, at the alignment, disjoint, each
 *       exactly as large as its type and shape say; every typed getter on every key either returns or
 *       fails with a clear error;</li>
 *   <li>the model loader ({@link GgufModelLoader}) accepts the file or fails with a clear error, within the
 *       same allocation budget; small models then run two forward passes with finite-length logits.</li>
 * </ul>
 * Seeds are small valid files written here (every metadata type, several tensor types and alignments,
 * and tiny llama, qwen2 and qwen3 models).
 */
class GgufFuzzTest {
    static final String NAME = "fuzz.gguf";

    static {
        seeds().forEach(a -> exercise((byte[]) a.get()[0]));
    }

    @org.junit.jupiter.params.provider.MethodSource("seeds")
    @FuzzTest(maxDuration = "10m")
    void anyGgufBytes(byte[] data) {
        exercise(data);
    }

    static Stream<Arguments> seeds() {
        List<byte[]> files = new ArrayList<>();
        Random rnd = new Random(3);
        files.add(new GgufWriter().toBytes());
        files.add(new GgufWriter().version(2).str("general.architecture", "llama").u32("llama.block_count", 1)
                .f32("llama.rope.freq_base", 10000f).bool("b", true).f64("d", 0.5).u64("u", 7).i64("i", -7)
                .u8("u8", 1).i8("i8", -1).u16("u16", 2).i16("i16", -2).i32("i32", -3)
                .strings("tokenizer.ggml.tokens", "a", "b", "<s>").floats("tokenizer.ggml.scores", 0f, -1f, -2f)
                .ints("tokenizer.ggml.token_type", 1, 1, 3)
                .f32Tensor("t", new float[]{1, 2, 3, 4}, 2, 2).toBytes());
        files.add(new GgufWriter().alignment(64)
                .tensor("h", GgmlType.F16, bytes(rnd, 2 * 8), 8)
                .tensor("q", GgmlType.Q8_0, bytes(rnd, 34 * 2), 32, 2)
                .tensor("k", GgmlType.Q4_K, bytes(rnd, 144), 256)
                .tensor("b", GgmlType.BF16, bytes(rnd, 4), 1, 1, 2, 1).toBytes());
        files.add(new GgufWriter().array("nested", 9, 1, new byte[]{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5})
                .array("bools", 7, 2, new byte[]{0, 1}).array("u64s", 10, 1, new byte[8]).toBytes());
        files.add(TinyGguf.llama().build(1));
        files.add(TinyGguf.qwen2().build(2));
        files.add(TinyGguf.qwen3().build(3));
        List<byte[]> seeds = new ArrayList<>(files);
        for (byte[] f : files) {
            seeds.add(Arrays.copyOf(f, f.length - 1));
        }
        return seeds.stream().map(b -> Arguments.of((Object) b));
    }

    private static byte[] bytes(Random rnd, int n) {
        byte[] b = new byte[n];
        rnd.nextBytes(b);
        return b;
    }

    static void exercise(byte[] data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment file = arena.allocate(Math.max(1, data.length)).asSlice(0, data.length);
            MemorySegment.copy(data, 0, file, ValueLayout.JAVA_BYTE, 0, data.length);
            GgufFile gguf = FuzzProperties.withAllocationBudget("parse", data.length, () -> {
                try {
                    return GgufFile.parse(NAME, Path.of(NAME), file, arena);
                } catch (Llama2jException e) {
                    FuzzProperties.assertClearError(e, NAME);
                    return null;
                }
            });
            if (gguf == null) {
                return;
            }
            checkTensors(gguf, file);
            checkGetters(gguf);
            Model model = FuzzProperties.withAllocationBudget("model", data.length, () -> {
                try {
                    return GgufModelLoader.load(gguf, 0);
                } catch (Llama2jException e) {
                    FuzzProperties.assertClearError(e, NAME);
                    return null;
                }
            });
            if (model != null) {
                runForward(model);
            }
            // Not closed: that would close the arena, which try-with-resources owns.
        }
    }

    /** Two forward passes when the model and its run state are small (as in CheckpointFuzzTest). */
    static void runForward(Model model) {
        Configuration c = model.config();
        if (c.parameterCount() > CheckpointFuzzTest.MAX_FORWARD_PARAMETERS
                || CheckpointFuzzTest.runStateBytes(c) > CheckpointFuzzTest.MAX_FORWARD_STATE_BYTES) {
            return;
        }
        try (InferenceEngine e = Engines.create(model, EngineOptions.cpu(1, false))) {
            FuzzProperties.check(e.forward(0, 0).length == c.vocabSize(), "logits length");
            if (c.seqLen() > 1) {
                FuzzProperties.check(e.forward(c.vocabSize() - 1, 1).length == c.vocabSize(), "logits length");
            }
        }
    }

    static void checkTensors(GgufFile gguf, MemorySegment file) {
        List<GgufTensorInfo> sorted = new ArrayList<>(gguf.tensors());
        sorted.sort(Comparator.comparingLong(GgufTensorInfo::offset));
        long end = gguf.dataOffset();
        for (GgufTensorInfo t : sorted) {
            GgmlType type = t.type();
            FuzzProperties.check(t.ne(0) % type.blockSize() == 0, t + ": ne[0] not a multiple of the block size");
            long size = t.ne(0) / type.blockSize() * type.bytesPerBlock() * t.ne(1) * t.ne(2) * t.ne(3);
            FuzzProperties.check(size == t.byteSize(), t + ": " + t.byteSize() + " bytes, type and shape say " + size);
            FuzzProperties.check(t.offset() >= end, t + " overlaps the header or another tensor");
            FuzzProperties.check((t.offset() - gguf.dataOffset()) % gguf.alignment() == 0, t + " is not aligned");
            end = t.offset() + t.byteSize();
            FuzzProperties.check(end <= file.byteSize(), t + " ends past the file");
            MemorySegment d = gguf.data(t);
            FuzzProperties.check(d.byteSize() == t.byteSize() && d.address() == file.address() + t.offset(), t + ": wrong slice");
            FuzzProperties.check(gguf.tensor(t.name()).orElseThrow() == t, t + ": lookup by name");
        }
    }

    static void checkGetters(GgufFile gguf) {
        for (Map.Entry<String, Object> e : gguf.metadata().entrySet()) {
            Object v = e.getValue();
            FuzzProperties.check(v instanceof Long || v instanceof Float || v instanceof Double || v instanceof Boolean
                    || v instanceof String || v instanceof int[] || v instanceof long[] || v instanceof float[]
                    || v instanceof double[] || v instanceof boolean[] || v instanceof String[] || v instanceof Object[],
                    "metadata value of class " + v.getClass());
            String k = e.getKey();
            List<Runnable> getters = List.of(() -> gguf.getString(k), () -> gguf.getLong(k), () -> gguf.getFloat(k),
                    () -> gguf.getBoolean(k), () -> gguf.getStringArray(k), () -> gguf.getFloatArray(k),
                    () -> gguf.getIntArray(k), () -> gguf.getInt(k, 1, 1 << 20));
            for (Runnable g : getters) {
                try {
                    g.run();
                } catch (Llama2jException ex) {
                    FuzzProperties.assertClearError(ex, NAME);
                }
            }
        }
    }
}
