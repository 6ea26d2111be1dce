package io.github.llama2j.gguf;

import io.github.llama2j.InputFiles;
import io.github.llama2j.Llama2jException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A GGUF file (versions 2 and 3), memory-mapped whole: the header, metadata and tensor infos are parsed
 * and checked when the file is opened; tensor data stays in the mapping and is handed out as slices.
 *
 * <p>Every count, length, offset and size read from the file is checked against the bytes that remain
 * before it is used, with overflow-checked arithmetic, so a hostile header can neither make the reader
 * allocate more than the file's size implies nor read outside the file. Problems are
 * {@link Llama2jException}s (exit code 2) naming the file and the field.
 *
 * <p>Metadata values: integer types are {@link Long} (a uint64 above {@link Long#MAX_VALUE} is an error),
 * FLOAT32 {@link Float}, FLOAT64 {@link Double}, BOOL {@link Boolean}, STRING {@link String}. Arrays:
 * int8/uint8/int16/uint16/int32 {@code int[]}; uint32/int64/uint64 {@code long[]}; float32 {@code float[]};
 * float64 {@code double[]}; bool {@code boolean[]}; string {@code String[]}; arrays of arrays {@code Object[]}.
 * Arrays in {@link #metadata()} are shared: do not modify them (the typed getters return copies).
 */
public final class GgufFile implements AutoCloseable {
    /** "GGUF" read as a little-endian uint32. */
    public static final int MAGIC = 0x46554747;
    public static final int MAX_DIMS = 4;
    public static final long DEFAULT_ALIGNMENT = 32;
    /** Deepest nesting of arrays accepted (llama.cpp's files use 1). */
    static final int MAX_NESTING = 8;
    /** Smallest possible sizes of entries, used to bound counts by the bytes left before allocating. */
    private static final int MIN_KV_BYTES = 8 + 4 + 1;
    private static final int MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;

    static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble DOUBLE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** GGUF metadata value types. */
    static final int T_UINT8 = 0, T_INT8 = 1, T_UINT16 = 2, T_INT16 = 3, T_UINT32 = 4, T_INT32 = 5, T_FLOAT32 = 6,
            T_BOOL = 7, T_STRING = 8, T_ARRAY = 9, T_UINT64 = 10, T_INT64 = 11, T_FLOAT64 = 12;

    private final Path path;
    private final String name;
    private final int version;
    private final Map<String, Object> metadata;
    /** Per key: {value type, first byte, end} of the encoded value in the file. */
    private final Map<String, long[]> spans;
    private final List<GgufTensorInfo> tensors;
    private final Map<String, GgufTensorInfo> byName;
    private final long alignment;
    private final long dataOffset;
    private final MemorySegment file;
    private final Arena arena;

    private GgufFile(Path path, String name, int version, Map<String, Object> metadata, Map<String, long[]> spans,
                     List<GgufTensorInfo> tensors, long alignment, long dataOffset, MemorySegment file, Arena arena) {
        this.path = path;
        this.name = name;
        this.version = version;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.spans = spans;
        this.tensors = List.copyOf(tensors);
        Map<String, GgufTensorInfo> m = new HashMap<>();
        for (GgufTensorInfo t : tensors) {
            m.put(t.name(), t);
        }
        this.byName = m;
        this.alignment = alignment;
        this.dataOffset = dataOffset;
        this.file = file;
        this.arena = arena;
    }

    /** Maps and parses {@code path}; everything the header describes is checked against the file. */
    public static GgufFile open(Path path) {
        String name = fileName(path);
        long fileSize = InputFiles.size(path, "a GGUF file");
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
            return parse(name, path, file, arena);
        } catch (IOException e) {
            arena.close();
            throw new Llama2jException(name + ": cannot map (" + e.getMessage() + ")", Llama2jException.IO_FAILURE, e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** True when {@code path} starts with the GGUF magic (false for short or unreadable files). */
    public static boolean isGguf(Path path) {
        try (var in = Files.newInputStream(path)) {
            byte[] b = in.readNBytes(4);
            return b.length == 4 && b[0] == 'G' && b[1] == 'G' && b[2] == 'U' && b[3] == 'F';
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * Parses a whole GGUF file held in {@code file}; visible for tests and fuzzing. The returned object
     * closes {@code arena} when closed.
     */
    public static GgufFile parse(String name, Path path, MemorySegment file, Arena arena) {
        Cursor c = new Cursor(name, file);
        if (file.byteSize() < 4 || c.file.get(INT, 0) != MAGIC) {
            throw new Llama2jException(name + ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
        }
        c.pos = 4;
        int version = c.u32("header field version");
        if (version != 2 && version != 3) {
            String hint = version == 1 ? " (GGUF v1 files predate August 2023: convert them again with llama.cpp)"
                    : Integer.reverseBytes(version) == 2 || Integer.reverseBytes(version) == 3 ? " (is this a big-endian file?)" : "";
            throw new Llama2jException(name + ": header field version is " + Integer.toUnsignedString(version)
                    + ", supported versions are 2 and 3" + hint);
        }
        long tensorCount = c.count("header field tensor_count", MIN_TENSOR_INFO_BYTES);
        long kvCount = c.count("header field metadata_kv_count", MIN_KV_BYTES);
        // Both tables follow: their minimal sizes together must fit too.
        if (tensorCount * MIN_TENSOR_INFO_BYTES + kvCount * MIN_KV_BYTES > c.remaining()) {
            throw c.error("header says " + kvCount + " metadata entries and " + tensorCount
                    + " tensors, more than the file's " + file.byteSize() + " bytes can hold");
        }

        Map<String, Object> metadata = new LinkedHashMap<>();
        Map<String, long[]> spans = new HashMap<>();
        for (long i = 0; i < kvCount; i++) {
            String key = c.string("metadata entry " + i + " key");
            String field = "metadata key " + quote(key);
            int type = c.u32(field + " value type");
            long start = c.pos;
            Object value = c.value(type, field, 0);
            if (metadata.putIfAbsent(key, value) != null) {
                throw c.error(field + " appears twice");
            }
            spans.put(key, new long[]{type, start, c.pos});
        }

        long alignment = DEFAULT_ALIGNMENT;
        Object a = metadata.get("general.alignment");
        if (a != null) {
            if (!(a instanceof Long l) || l <= 0 || Long.bitCount(l) != 1 || l > (1L << 30)) {
                throw c.error("metadata key 'general.alignment' is " + describe(a) + ", must be a power of two integer up to 2^30");
            }
            alignment = l;
        }

        List<GgufTensorInfo> infos = new ArrayList<>();
        List<String> names = new ArrayList<>();
        List<long[]> shapes = new ArrayList<>();
        List<Long> typeIds = new ArrayList<>();
        List<Long> offsets = new ArrayList<>();
        Map<String, Boolean> seen = new HashMap<>();
        for (long i = 0; i < tensorCount; i++) {
            String tname = c.string("tensor info " + i + " name");
            String field = "tensor " + quote(tname);
            if (seen.putIfAbsent(tname, Boolean.TRUE) != null) {
                throw c.error(field + " appears twice");
            }
            int nDims = c.u32(field + " n_dims");
            if (nDims < 1 || nDims > MAX_DIMS) {
                throw c.error(field + ": n_dims is " + Integer.toUnsignedString(nDims) + ", must be 1 to " + MAX_DIMS);
            }
            long[] ne = new long[nDims];
            for (int d = 0; d < nDims; d++) {
                ne[d] = c.u64(field + " ne[" + d + "]");
                if (ne[d] < 0) {
                    throw c.error(field + ": ne[" + d + "] is " + Long.toUnsignedString(ne[d]) + ", too large");
                }
            }
            long typeId = Integer.toUnsignedLong(c.u32(field + " type"));
            long offset = c.u64(field + " offset");
            names.add(tname);
            shapes.add(ne);
            typeIds.add(typeId);
            offsets.add(offset);
        }
        long dataOffset;
        try {
            dataOffset = alignUp(c.pos, alignment);
        } catch (ArithmeticException e) {
            throw c.error("data section offset overflows");
        }
        for (int i = 0; i < names.size(); i++) {
            infos.add(tensorInfo(c, names.get(i), shapes.get(i), typeIds.get(i), offsets.get(i), alignment, dataOffset));
        }
        checkLaidOut(c, infos, alignment, dataOffset);
        return new GgufFile(path, name, version, metadata, spans, infos, alignment, dataOffset, file, arena);
    }

    private static GgufTensorInfo tensorInfo(Cursor c, String tname, long[] ne, long typeId, long offset,
                                             long alignment, long dataOffset) {
        String field = "tensor " + quote(tname);
        GgmlType type = GgmlType.byId(typeId);
        if (type == null) {
            throw c.error(field + ": unknown ggml tensor type id " + typeId);
        }
        if (ne[0] % type.blockSize() != 0) {
            throw c.error(field + ": ne[0] = " + ne[0] + " is not a multiple of the " + type.displayName()
                    + " block size " + type.blockSize());
        }
        long size;
        try {
            long elements = 1;
            for (long n : ne) {
                elements = Math.multiplyExact(elements, n);
            }
            size = Math.multiplyExact(ne[0] / type.blockSize(), (long) type.bytesPerBlock());
            for (int d = 1; d < ne.length; d++) {
                size = Math.multiplyExact(size, ne[d]);
            }
        } catch (ArithmeticException e) {
            throw c.error(field + ": shape " + java.util.Arrays.toString(ne) + " is too large");
        }
        if (offset < 0) {
            throw c.error(field + ": data offset " + Long.toUnsignedString(offset) + " beyond the file size " + c.file.byteSize());
        }
        if (offset % alignment != 0) {
            throw c.error(field + ": data offset " + offset + " is not a multiple of the alignment " + alignment);
        }
        long start;
        long end;
        try {
            start = Math.addExact(dataOffset, offset);
            end = Math.addExact(start, size);
        } catch (ArithmeticException e) {
            throw c.error(field + ": data offset " + offset + " beyond the file size " + c.file.byteSize());
        }
        if (end > c.file.byteSize()) {
            throw c.error(field + ": data [" + start + ".." + end + ") beyond the file size " + c.file.byteSize());
        }
        return new GgufTensorInfo(tname, ne, type, start, size);
    }

    /**
     * ggml's layout, which its reader requires (gguf.cpp: "tensor has offset X, expected Y"): the tensors' data one
     * after another in the header's order, each padded to the alignment. So no two overlap, and a header whose type or
     * shape makes a tensor smaller or larger than its place (a corrupted type id, say) is refused, not read as garbage.
     */
    private static void checkLaidOut(Cursor c, List<GgufTensorInfo> infos, long alignment, long dataOffset) {
        long expected = 0;
        for (GgufTensorInfo t : infos) {
            long offset = t.offset() - dataOffset;
            if (offset != expected) {
                throw c.error("tensor " + quote(t.name()) + ": data offset " + offset + ", expected " + expected
                        + " (tensors lie one after another in the header's order, each padded to the alignment " + alignment + ")");
            }
            try {
                expected = alignUp(Math.addExact(expected, t.byteSize()), alignment);
            } catch (ArithmeticException e) {
                throw c.error("tensor " + quote(t.name()) + ": data offset overflows");
            }
        }
    }

    static long alignUp(long pos, long alignment) {
        long r = pos % alignment;
        return r == 0 ? pos : Math.addExact(pos, alignment - r);
    }

    public Path path() {
        return path;
    }

    /** The file name used in messages. */
    public String name() {
        return name;
    }

    public int version() {
        return version;
    }

    /** Alignment of tensor data ({@code general.alignment}, default 32). */
    public long alignment() {
        return alignment;
    }

    /** Absolute offset of the data section. */
    public long dataOffset() {
        return dataOffset;
    }

    /** The file's size in bytes. */
    public long byteSize() {
        return file.byteSize();
    }

    /** All metadata in file order (unmodifiable; its arrays are shared, do not modify them). */
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** All tensor infos, in file order. */
    public List<GgufTensorInfo> tensors() {
        return tensors;
    }

    public Optional<GgufTensorInfo> tensor(String tensorName) {
        return Optional.ofNullable(byName.get(tensorName));
    }

    /** The tensor's bytes: a slice of the mapping (nothing is copied). */
    public MemorySegment data(GgufTensorInfo t) {
        if (byName.get(t.name()) != t && !t.equals(byName.get(t.name()))) {
            throw new IllegalArgumentException("tensor " + t.name() + " is not from " + name);
        }
        return file.asSlice(t.offset(), t.byteSize());
    }

    /**
     * A metadata value as the file encodes it: its GGUF value type and the bytes after the type field
     * (for a string its length and bytes; for an array its element type, count and elements). Copying
     * these into {@link GgufWriter#raw} reproduces the entry exactly, integer widths included.
     */
    public Optional<RawValue> rawValue(String key) {
        long[] s = spans.get(key);
        return s == null ? Optional.empty()
                : Optional.of(new RawValue((int) s[0], file.asSlice(s[1], s[2] - s[1]).toArray(ValueLayout.JAVA_BYTE)));
    }

    /** An encoded metadata value: its GGUF value type id and its bytes. */
    public record RawValue(int type, byte[] bytes) {
        public RawValue {
            bytes = bytes.clone();
        }

        @Override
        public byte[] bytes() {
            return bytes.clone();
        }
    }

    public Optional<Object> get(String key) {
        return Optional.ofNullable(metadata.get(key));
    }

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    public String getString(String key) {
        return typed(key, String.class, "a string");
    }

    public Optional<String> optionalString(String key) {
        return has(key) ? Optional.of(getString(key)) : Optional.empty();
    }

    /** Any integer type. */
    public long getLong(String key) {
        return typed(key, Long.class, "an integer");
    }

    public Optional<Long> optionalLong(String key) {
        return has(key) ? Optional.of(getLong(key)) : Optional.empty();
    }

    /** Any integer type whose value lies in {@code [min, max]}. */
    public int getInt(String key, int min, int max) {
        long v = getLong(key);
        if (v < min || v > max) {
            throw new Llama2jException(name + ": metadata key " + quote(key) + " is " + v + ", must be in [" + min + ", " + max + "]");
        }
        return (int) v;
    }

    /** FLOAT32, or FLOAT64 narrowed to float. */
    public float getFloat(String key) {
        Object v = require(key);
        if (v instanceof Float f) {
            return f;
        }
        if (v instanceof Double d) {
            return d.floatValue();
        }
        throw wrongType(key, v, "a float");
    }

    public Optional<Float> optionalFloat(String key) {
        return has(key) ? Optional.of(getFloat(key)) : Optional.empty();
    }

    public boolean getBoolean(String key) {
        return typed(key, Boolean.class, "a boolean");
    }

    public Optional<Boolean> optionalBoolean(String key) {
        return has(key) ? Optional.of(getBoolean(key)) : Optional.empty();
    }

    public String[] getStringArray(String key) {
        return typed(key, String[].class, "an array of strings").clone();
    }

    public float[] getFloatArray(String key) {
        return typed(key, float[].class, "an array of float32").clone();
    }

    /** Arrays of int8 to int32; uint32/int64/uint64 arrays too when every value fits in an int. */
    public int[] getIntArray(String key) {
        Object v = require(key);
        if (v instanceof int[] a) {
            return a.clone();
        }
        if (v instanceof long[] a) {
            int[] out = new int[a.length];
            for (int i = 0; i < a.length; i++) {
                if (a[i] < Integer.MIN_VALUE || a[i] > Integer.MAX_VALUE) {
                    throw new Llama2jException(name + ": metadata key " + quote(key) + " element " + i + " is " + a[i]
                            + ", out of the int range");
                }
                out[i] = (int) a[i];
            }
            return out;
        }
        throw wrongType(key, v, "an array of integers");
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    private Object require(String key) {
        Object v = metadata.get(key);
        if (v == null) {
            throw new Llama2jException(name + ": metadata key " + quote(key) + " is missing");
        }
        return v;
    }

    private <T> T typed(String key, Class<T> type, String what) {
        Object v = require(key);
        if (!type.isInstance(v)) {
            throw wrongType(key, v, what);
        }
        return type.cast(v);
    }

    private Llama2jException wrongType(String key, Object v, String what) {
        return new Llama2jException(name + ": metadata key " + quote(key) + " is " + describe(v) + ", expected " + what);
    }

    /** "a float32 (1.5)", "an array of 3 strings" ...: for messages. */
    public static String describe(Object v) {
        return switch (v) {
            case Long l -> "an integer (" + l + ")";
            case Float f -> "a float32 (" + f + ")";
            case Double d -> "a float64 (" + d + ")";
            case Boolean b -> "a boolean (" + b + ")";
            case String s -> "a string";
            case int[] a -> "an array of " + a.length + " integers";
            case long[] a -> "an array of " + a.length + " 64-bit integers";
            case float[] a -> "an array of " + a.length + " float32";
            case double[] a -> "an array of " + a.length + " float64";
            case boolean[] a -> "an array of " + a.length + " booleans";
            case String[] a -> "an array of " + a.length + " strings";
            case Object[] a -> "an array of " + a.length + " arrays";
            default -> v.getClass().getSimpleName();
        };
    }

    /**
     * A name from the file, quoted for a one-line message: control characters escaped as \\uXXXX and
     * anything past 100 characters cut.
     */
    public static String quote(String s) {
        StringBuilder sb = new StringBuilder("'");
        int n = Math.min(s.length(), 100);
        for (int i = 0; i < n; i++) {
            char ch = s.charAt(i);
            if (Character.isISOControl(ch) || Character.getType(ch) == Character.LINE_SEPARATOR
                    || Character.getType(ch) == Character.PARAGRAPH_SEPARATOR) {
                sb.append(String.format(java.util.Locale.ROOT, "\\u%04x", (int) ch));
            } else {
                sb.append(ch);
            }
        }
        return sb.append(s.length() > n ? "...'" : "'").toString();
    }

    static String fileName(Path path) {
        return path.getFileName() == null ? path.toString() : path.getFileName().toString();
    }

    /** Reads little-endian values at a position, checking each read against the end of the file. */
    private static final class Cursor {
        final String name;
        final MemorySegment file;
        long pos;

        Cursor(String name, MemorySegment file) {
            this.name = name;
            this.file = file;
        }

        long remaining() {
            return file.byteSize() - pos;
        }

        Llama2jException error(String message) {
            return new Llama2jException(name + ": " + message);
        }

        void need(long bytes, String field) {
            if (bytes > remaining()) {
                throw error(field + " at offset " + pos + " ends beyond the file size " + file.byteSize()
                        + " (truncated file?)");
            }
        }

        int u32(String field) {
            need(4, field);
            int v = file.get(INT, pos);
            pos += 4;
            return v;
        }

        long u64(String field) {
            need(8, field);
            long v = file.get(LONG, pos);
            pos += 8;
            return v;
        }

        /** A uint64 count of entries each at least {@code minBytes} long, bounded by the bytes left. */
        long count(String field, long minBytes) {
            long n = u64(field);
            if (n < 0 || n > remaining() / minBytes) {
                throw error(field + " is " + Long.toUnsignedString(n) + ", more than the remaining "
                        + remaining() + " bytes of the file can hold");
            }
            return n;
        }

        String string(String field) {
            long len = u64(field + " length");
            if (len < 0 || len > remaining() || len > Integer.MAX_VALUE - 16) {
                throw error(field + ": string length " + Long.toUnsignedString(len) + " at offset " + (pos - 8)
                        + " beyond the file size " + file.byteSize());
            }
            byte[] bytes = file.asSlice(pos, len).toArray(ValueLayout.JAVA_BYTE);
            pos += len;
            return new String(bytes, StandardCharsets.UTF_8);
        }

        Object value(int type, String field, int depth) {
            return switch (type) {
                case T_UINT8 -> { need(1, field); yield (long) Byte.toUnsignedInt(file.get(ValueLayout.JAVA_BYTE, pos++)); }
                case T_INT8 -> { need(1, field); yield (long) file.get(ValueLayout.JAVA_BYTE, pos++); }
                case T_UINT16 -> { need(2, field); long v = Short.toUnsignedInt(file.get(SHORT, pos)); pos += 2; yield v; }
                case T_INT16 -> { need(2, field); long v = file.get(SHORT, pos); pos += 2; yield v; }
                case T_UINT32 -> Integer.toUnsignedLong(u32(field));
                case T_INT32 -> (long) u32(field);
                case T_FLOAT32 -> { need(4, field); float v = file.get(FLOAT, pos); pos += 4; yield v; }
                case T_BOOL -> bool(field);
                case T_STRING -> string(field);
                case T_ARRAY -> array(field, depth + 1);
                case T_UINT64 -> {
                    long v = u64(field);
                    if (v < 0) {
                        throw error(field + " is " + Long.toUnsignedString(v) + ", above the largest supported integer "
                                + Long.MAX_VALUE);
                    }
                    yield v;
                }
                case T_INT64 -> u64(field);
                case T_FLOAT64 -> { need(8, field); double v = file.get(DOUBLE, pos); pos += 8; yield v; }
                default -> throw error(field + " has unknown value type " + Integer.toUnsignedString(type));
            };
        }

        boolean bool(String field) {
            need(1, field);
            byte b = file.get(ValueLayout.JAVA_BYTE, pos++);
            if (b != 0 && b != 1) {
                throw error(field + ": boolean byte is " + b + ", must be 0 or 1");
            }
            return b == 1;
        }

        private static int elementBytes(int type) {
            return switch (type) {
                case T_UINT8, T_INT8, T_BOOL -> 1;
                case T_UINT16, T_INT16 -> 2;
                case T_UINT32, T_INT32, T_FLOAT32 -> 4;
                case T_UINT64, T_INT64, T_FLOAT64, T_STRING -> 8; // a string is at least its length field
                case T_ARRAY -> 12; // at least its element type and count
                default -> -1;
            };
        }

        Object array(String field, int depth) {
            if (depth > MAX_NESTING) {
                throw error(field + ": arrays nested deeper than " + MAX_NESTING + " levels");
            }
            int type = u32(field + " array element type");
            int elementBytes = elementBytes(type);
            if (elementBytes < 0) {
                throw error(field + " is an array of unknown value type " + Integer.toUnsignedString(type));
            }
            long n = u64(field + " array length");
            if (n < 0 || n > remaining() / elementBytes || n > Integer.MAX_VALUE - 16) {
                throw error(field + ": array length " + Long.toUnsignedString(n) + " at offset " + (pos - 8)
                        + " beyond the file size " + file.byteSize());
            }
            int len = (int) n;
            switch (type) {
                case T_UINT8, T_INT8, T_UINT16, T_INT16, T_INT32 -> {
                    int[] a = new int[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = switch (type) {
                            case T_UINT8 -> Byte.toUnsignedInt(file.get(ValueLayout.JAVA_BYTE, pos + i));
                            case T_INT8 -> file.get(ValueLayout.JAVA_BYTE, pos + i);
                            case T_UINT16 -> Short.toUnsignedInt(file.get(SHORT, pos + 2L * i));
                            case T_INT16 -> file.get(SHORT, pos + 2L * i);
                            default -> file.get(INT, pos + 4L * i);
                        };
                    }
                    pos += (long) len * elementBytes;
                    return a;
                }
                case T_UINT32, T_INT64, T_UINT64 -> {
                    long[] a = new long[len];
                    for (int i = 0; i < len; i++) {
                        if (type == T_UINT32) {
                            a[i] = Integer.toUnsignedLong(file.get(INT, pos + 4L * i));
                        } else {
                            a[i] = file.get(LONG, pos + 8L * i);
                            if (type == T_UINT64 && a[i] < 0) {
                                throw error(field + " element " + i + " is " + Long.toUnsignedString(a[i])
                                        + ", above the largest supported integer " + Long.MAX_VALUE);
                            }
                        }
                    }
                    pos += (long) len * elementBytes;
                    return a;
                }
                case T_FLOAT32 -> {
                    float[] a = new float[len];
                    MemorySegment.copy(file, FLOAT, pos, a, 0, len);
                    pos += 4L * len;
                    return a;
                }
                case T_FLOAT64 -> {
                    double[] a = new double[len];
                    MemorySegment.copy(file, DOUBLE, pos, a, 0, len);
                    pos += 8L * len;
                    return a;
                }
                case T_BOOL -> {
                    boolean[] a = new boolean[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = bool(field);
                    }
                    return a;
                }
                case T_STRING -> {
                    String[] a = new String[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = string(field);
                    }
                    return a;
                }
                default -> { // T_ARRAY
                    Object[] a = new Object[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = array(field, depth + 1);
                    }
                    return a;
                }
            }
        }
    }
}
