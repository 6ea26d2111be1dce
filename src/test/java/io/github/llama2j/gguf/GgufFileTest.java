package io.github.llama2j.gguf;

import io.github.llama2j.Json;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

class GgufFileTest {
    static final String NAME = "x.gguf";

    static GgufFile parse(byte[] bytes) {
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(Math.max(1, bytes.length));
        MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, 0, bytes.length);
        try {
            return GgufFile.parse(NAME, Path.of(NAME), seg.asSlice(0, bytes.length), arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    static String error(byte[] bytes) {
        Llama2jException e = assertThrows(Llama2jException.class, () -> parse(bytes).close());
        assertEquals(Llama2jException.BAD_INPUT, e.exitCode());
        assertTrue(e.getMessage().startsWith(NAME + ": "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        return e.getMessage();
    }

    /** {@code bytes} with the header's version field replaced (versions the writer refuses to write). */
    static byte[] withVersion(byte[] bytes, int version) {
        java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(4, version);
        return bytes;
    }

    static GgufWriter everyType() {
        return new GgufWriter()
                .u8("u8", 200).i8("i8", -3).u16("u16", 60000).i16("i16", -30000)
                .u32("u32", 4_000_000_000L).i32("i32", -7).u64("u64", Long.MAX_VALUE).i64("i64", -1L)
                .f32("f32", 1.5f).f64("f64", 0.25).bool("yes", true).bool("no", false).str("s", "héllo")
                .strings("strs", "a", "", "ü")
                .floats("fs", 1f, -2f)
                .ints("is", 1, -2, 3)
                .array("u8s", GgufFile.T_UINT8, 2, new byte[]{(byte) 255, 1})
                .array("u32s", GgufFile.T_UINT32, 1, new byte[]{-1, -1, -1, -1})
                .array("bools", GgufFile.T_BOOL, 2, new byte[]{1, 0})
                .array("nested", GgufFile.T_ARRAY, 2, new GgufWriter.Le()
                        .u32(GgufFile.T_INT32).u64(1).u32(5)
                        .u32(GgufFile.T_STRING).u64(1).string("z").toArray());
    }

    @Test
    void everyValueType() {
        try (GgufFile f = parse(everyType().f32Tensor("t", new float[]{1, 2, 3, 4, 5, 6}, 3, 2).toBytes())) {
            assertEquals(3, f.version());
            assertEquals(200L, f.getLong("u8"));
            assertEquals(-3L, f.getLong("i8"));
            assertEquals(60000L, f.getLong("u16"));
            assertEquals(-30000L, f.getLong("i16"));
            assertEquals(4_000_000_000L, f.getLong("u32"));
            assertEquals(-7L, f.getLong("i32"));
            assertEquals(Long.MAX_VALUE, f.getLong("u64"));
            assertEquals(-1L, f.getLong("i64"));
            assertEquals(1.5f, f.getFloat("f32"));
            assertEquals(0.25f, f.getFloat("f64"));
            assertInstanceOf(Double.class, f.metadata().get("f64"));
            assertTrue(f.getBoolean("yes"));
            assertFalse(f.getBoolean("no"));
            assertEquals("héllo", f.getString("s"));
            assertArrayEquals(new String[]{"a", "", "ü"}, f.getStringArray("strs"));
            assertArrayEquals(new float[]{1f, -2f}, f.getFloatArray("fs"));
            assertArrayEquals(new int[]{1, -2, 3}, f.getIntArray("is"));
            assertArrayEquals(new int[]{255, 1}, f.getIntArray("u8s"));
            assertArrayEquals(new long[]{4294967295L}, (long[]) f.metadata().get("u32s"));
            assertArrayEquals(new boolean[]{true, false}, (boolean[]) f.metadata().get("bools"));
            Object[] nested = (Object[]) f.metadata().get("nested");
            assertArrayEquals(new int[]{5}, (int[]) nested[0]);
            assertArrayEquals(new String[]{"z"}, (String[]) nested[1]);
            assertEquals(List.of("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "yes", "no", "s",
                    "strs", "fs", "is", "u8s", "u32s", "bools", "nested"), List.copyOf(f.metadata().keySet()));
            GgufTensorInfo t = f.tensor("t").orElseThrow();
            assertArrayEquals(new long[]{3, 2}, t.ne());
            assertEquals(GgmlType.F32, t.type());
            assertEquals(24, t.byteSize());
            assertEquals(0, t.offset() % 32);
            assertEquals(6f, f.data(t).get(GgufFile.FLOAT, 20));
            assertTrue(f.tensor("missing").isEmpty());
            assertThrows(UnsupportedOperationException.class, () -> f.metadata().put("k", 1L));
        }
    }

    @Test
    void typedGettersNameFileAndKey() {
        try (GgufFile f = parse(everyType().toBytes())) {
            assertEquals("x.gguf: metadata key 'missing' is missing",
                    assertThrows(Llama2jException.class, () -> f.getString("missing")).getMessage());
            assertEquals("x.gguf: metadata key 'f32' is a float32 (1.5), expected a string",
                    assertThrows(Llama2jException.class, () -> f.getString("f32")).getMessage());
            assertEquals("x.gguf: metadata key 's' is a string, expected an integer",
                    assertThrows(Llama2jException.class, () -> f.getLong("s")).getMessage());
            assertEquals("x.gguf: metadata key 'u32' is 4000000000, must be in [0, 2147483647]",
                    assertThrows(Llama2jException.class, () -> f.getInt("u32", 0, Integer.MAX_VALUE)).getMessage());
            assertThrows(Llama2jException.class, () -> f.getFloatArray("strs"));
            assertThrows(Llama2jException.class, () -> f.getIntArray("u32s")); // 4294967295 does not fit
            assertThrows(Llama2jException.class, () -> f.getBoolean("u8"));
            assertTrue(f.optionalLong("nope").isEmpty());
            assertEquals(200L, f.optionalLong("u8").orElseThrow());
        }
    }

    @Test
    void alignmentAndVersion2() {
        byte[] b = new GgufWriter().version(2).alignment(64)
                .f32Tensor("a", new float[]{1}, 1).f32Tensor("b", new float[]{2, 3}, 2).toBytes();
        try (GgufFile f = parse(b)) {
            assertEquals(2, f.version());
            assertEquals(64, f.alignment());
            assertEquals(0, f.dataOffset() % 64);
            GgufTensorInfo bt = f.tensors().get(1);
            assertEquals(f.dataOffset() + 64, bt.offset());
            assertEquals(3f, f.data(bt).get(GgufFile.FLOAT, 4));
        }
    }

    @Test
    void brokenHeaders() {
        assertEquals("x.gguf: not a GGUF file (the first 4 bytes are not \"GGUF\")", error(new byte[]{'G', 'G'}));
        assertTrue(error(withVersion(new GgufWriter().toBytes(), 1)).contains("version is 1, supported versions are 2 and 3"));
        assertTrue(error(withVersion(new GgufWriter().toBytes(), 0x03000000)).contains("big-endian"));
        byte[] b = new GgufWriter().toBytes();
        b[8] = (byte) 0xff; // tensor_count
        assertTrue(error(b).contains("header field tensor_count is 255, more than the remaining"));
        b = new GgufWriter().toBytes();
        Arrays.fill(b, 16, 24, (byte) 0xff); // kv count 2^64 - 1
        assertTrue(error(b).contains("header field metadata_kv_count is 18446744073709551615"), error(b));
    }

    @Test
    void everyTruncationIsAClearError() {
        byte[] full = everyType().f32Tensor("t", new float[]{1, 2}, 2).toBytes();
        long end;
        try (GgufFile f = parse(full)) {
            GgufTensorInfo t = f.tensors().getFirst();
            end = t.offset() + t.byteSize(); // then only the padding to the alignment, which a reader does not need
            assertEquals(GgufFile.alignUp(end, 32), full.length);
        }
        for (int n = 0; n < end; n++) {
            error(Arrays.copyOf(full, n));
        }
    }

    @Test
    void hostileLengthsAreRefusedBeforeAllocating() {
        assertTrue(error(new GgufWriter().raw("k", GgufFile.T_STRING, new GgufWriter.Le().u64(1L << 40).toArray()).toBytes())
                .contains("metadata key 'k': string length 1099511627776 at offset"));
        assertTrue(error(new GgufWriter().array("k", GgufFile.T_FLOAT32, Integer.MAX_VALUE, new byte[8]).toBytes())
                .contains("metadata key 'k': array length 2147483647 at offset"));
        assertTrue(error(new GgufWriter().array("k", GgufFile.T_STRING, -1L, new byte[8]).toBytes())
                .contains("array length 18446744073709551615"));
        assertTrue(error(new GgufWriter().array("k", 13, 1, new byte[8]).toBytes()).contains("array of unknown value type 13"));
        assertTrue(error(new GgufWriter().raw("k", 99, new byte[8]).toBytes()).contains("metadata key 'k' has unknown value type 99"));
        assertTrue(error(new GgufWriter().raw("k", GgufFile.T_UINT64, new GgufWriter.Le().u64(-2).toArray()).toBytes())
                .contains("metadata key 'k' is 18446744073709551614, above the largest supported integer"));
        assertTrue(error(new GgufWriter().raw("k", GgufFile.T_BOOL, new byte[]{2}).toBytes()).contains("boolean byte is 2"));
        assertTrue(error(new GgufWriter().raw("k", GgufFile.T_UINT8, new byte[]{1}).raw("k", GgufFile.T_UINT8, new byte[]{2}).toBytes()).contains("metadata key 'k' appears twice"));
        // arrays of arrays nested 20 deep
        GgufWriter.Le deep = new GgufWriter.Le();
        for (int i = 0; i < 20; i++) {
            deep.u32(GgufFile.T_ARRAY).u64(1);
        }
        deep.u32(GgufFile.T_UINT8).u64(0);
        assertTrue(error(new GgufWriter().raw("k", GgufFile.T_ARRAY, deep.toArray()).toBytes()).contains("nested deeper than 8"));
        assertTrue(error(new GgufWriter().u32("general.alignment", 48).toBytes()).contains("'general.alignment' is an integer (48)"));
        assertTrue(error(new GgufWriter().str("general.alignment", "32").toBytes()).contains("'general.alignment' is a string"));
    }

    @Test
    void brokenTensorInfos() {
        byte[] ok = new GgufWriter().f32Tensor("t", new float[]{1, 2}, 2).toBytes();
        int dataStart = ok.length - 32; // the file ends with the 8 data bytes padded to the alignment
        assertEquals("x.gguf: tensor 't': data [" + dataStart + ".." + (dataStart + 8) + ") beyond the file size " + (dataStart + 7),
                error(Arrays.copyOf(ok, dataStart + 7)));
        assertTrue(error(Arrays.copyOf(ok, dataStart + 7)).matches("x\\.gguf: tensor 't': data \\[\\d+\\.\\.\\d+\\) beyond the file size \\d+"));
        assertTrue(error(new GgufWriter().rawTensor("t", 5, 0, new byte[4], 1).toBytes())
                .contains("tensor 't': unknown ggml tensor type id 5"));
        assertTrue(error(new GgufWriter().rawTensor("t", GgmlType.Q8_0.id(), 0, new byte[34], 16).toBytes())
                .contains("tensor 't': ne[0] = 16 is not a multiple of the q8_0 block size 32"));
        assertTrue(error(new GgufWriter().rawTensor("t", 0, 4, new byte[4], 1).toBytes())
                .contains("tensor 't': data offset 4 is not a multiple of the alignment 32"));
        // ggml's layout: one after another in the header's order, each padded to the alignment (here 64, then 4 -> 32)
        assertEquals("x.gguf: tensor 'u': data offset 32, expected 64 (tensors lie one after another in the header's order,"
                + " each padded to the alignment 32)",
                error(new GgufWriter().rawTensor("t", 0, 0, new byte[64], 16).rawTensor("u", 0, 32, new byte[4], 1).toBytes()));
        assertTrue(error(new GgufWriter().rawTensor("t", 0, 0, new byte[64], 16).rawTensor("u", 0, 96, new byte[4], 1).toBytes())
                .contains("tensor 'u': data offset 96, expected 64"), "a gap");
        assertTrue(error(new GgufWriter().rawTensor("t", 0, 64, new byte[4], 1).rawTensor("u", 0, 0, new byte[4], 1).toBytes())
                .contains("tensor 't': data offset 64, expected 0"), "out of the header's order");
        // a type id changed to a smaller type (Q5_0's 22-byte blocks read as Q4_0's 18): the next tensor is not where it should be
        assertTrue(error(new GgufWriter().rawTensor("t", GgmlType.Q4_0.id(), 0, new byte[22 * 8], 256)
                .rawTensor("u", 0, 192, new byte[4], 1).toBytes()).contains("tensor 'u': data offset 192, expected 160"));
        assertTrue(error(new GgufWriter().rawTensor("t", 0, 0, new byte[4], 1).rawTensor("t", 0, 32, new byte[4], 1).toBytes())
                .contains("tensor 't' appears twice"));
        assertTrue(error(new GgufWriter().rawTensor("t", 0, 0, new byte[4], 1, 1, 1, 1, 1).toBytes())
                .contains("tensor 't': n_dims is 5, must be 1 to 4"));
        assertTrue(error(new GgufWriter().rawTensor("t", 0, 0, new byte[4], 1L << 40, 1L << 40).toBytes())
                .contains("tensor 't': shape [1099511627776, 1099511627776] is too large"));
        assertTrue(error(new GgufWriter().rawTensor("t", 0, 0, new byte[4], -1L).toBytes()).contains("ne[0] is 18446744073709551615"));
        assertTrue(error(new GgufWriter().rawTensor("t", 0, Long.MAX_VALUE - 31 - (Long.MAX_VALUE - 31) % 32, null, 1).toBytes())
                .contains("tensor 't': data "));
    }

    @Test
    void openNamesMissingFilesAndDirectories(@TempDir Path dir) throws IOException {
        assertEquals("nope.gguf: no such file",
                assertThrows(Llama2jException.class, () -> GgufFile.open(dir.resolve("nope.gguf"))).getMessage());
        assertThrows(Llama2jException.class, () -> GgufFile.open(dir));
        Path p = dir.resolve("ok.gguf");
        Files.write(p, everyType().f32Tensor("t", new float[]{7}, 1).toBytes());
        assertTrue(GgufFile.isGguf(p));
        try (GgufFile f = GgufFile.open(p)) {
            assertEquals(p, f.path());
            assertEquals(7f, f.data(f.tensors().getFirst()).get(GgufFile.FLOAT, 0));
        }
    }

    /** Every stored model and vocabulary file opens, with llama.cpp's tensor list and the README's keys. */
    @Test
    @SuppressWarnings("unchecked")
    void sharedFiles() throws IOException {
        Path gguf = TestData.gguf();
        try (Stream<Path> s = Files.list(gguf.resolve("models"))) {
            for (Path p : s.sorted().toList()) {
                String base = p.getFileName().toString().replace(".gguf", "");
                Map<String, Object> golden = Json.read(gguf.resolve("golden").resolve(base + ".json"));
                try (GgufFile f = GgufFile.open(p)) {
                    assertEquals(golden.get("architecture"), f.getString("general.architecture"));
                    List<Object> tensors = (List<Object>) golden.get("tensors");
                    assertEquals(tensors.size(), f.tensors().size(), base);
                    for (int i = 0; i < tensors.size(); i++) {
                        Map<String, Object> t = (Map<String, Object>) tensors.get(i);
                        GgufTensorInfo info = f.tensors().get(i);
                        assertEquals(t.get("name"), info.name());
                        assertEquals(t.get("type"), info.type().displayName(), info.name());
                        long[] ne = ((List<Object>) t.get("ne")).stream().mapToLong(o -> ((Number) o).longValue()).toArray();
                        assertArrayEquals(ne, info.ne(), info.name());
                    }
                    Map<String, Object> vocab = (Map<String, Object>) golden.get("vocab");
                    assertEquals(((Number) vocab.get("n_tokens")).intValue(), f.getStringArray("tokenizer.ggml.tokens").length);
                    assertEquals(vocab.get("has_chat_template"), f.has("tokenizer.chat_template"));
                }
            }
        }
        try (Stream<Path> s = Files.list(gguf.resolve("vocab"))) {
            for (Path p : s.filter(x -> x.toString().endsWith(".gguf")).toList()) {
                try (GgufFile f = GgufFile.open(p)) {
                    assertTrue(f.getStringArray("tokenizer.ggml.tokens").length > 30000, p.toString());
                    assertTrue(f.has("tokenizer.ggml.model"));
                }
            }
        }
        Path stories = TestData.models().resolve("stories260K.gguf");
        try (GgufFile f = GgufFile.open(stories)) {
            assertEquals("llama", f.getString("general.architecture"));
            assertEquals(512, f.getStringArray("tokenizer.ggml.tokens").length);
        } catch (Llama2jException e) {
            fail(e.getMessage());
        }
    }
}
