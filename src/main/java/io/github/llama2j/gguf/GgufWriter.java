package io.github.llama2j.gguf;

import io.github.llama2j.model.AtomicFile;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.LongConsumer;

/**
 * Writes GGUF files (version 3 by default, or 2): metadata of every value type, tensor infos, and tensor
 * data at the alignment ({@code general.alignment}, default 32), each tensor's data padded with zeros
 * to the alignment as llama.cpp writes it.
 *
 * <p>Tensor data is supplied by a {@link TensorData} callback that streams the bytes when the file is
 * written, so a multi-gigabyte model never has to sit in memory: only the header (metadata and tensor
 * infos) is held. {@link #write(Path, LongConsumer)} writes through {@link AtomicFile} (a temporary file renamed
 * when complete, deleted on failure; errors are {@code Llama2jException}s with exit code 4); {@link #toBytes()} builds small files in memory (tests, fuzz seeds).
 *
 * <p>The typed methods check what they are given (key written twice, tensor shape, size against type);
 * {@link #raw} and {@link #rawTensor} write what they are given unchecked, for values copied from
 * another file and for deliberately broken files that a reader must refuse.
 */
public final class GgufWriter {
    private int version = 3;
    private long alignment = GgufFile.DEFAULT_ALIGNMENT;
    private final List<byte[]> entries = new ArrayList<>();
    private final Set<String> keys = new HashSet<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private final Set<String> tensorNames = new HashSet<>();

    /** Streams a tensor's bytes, exactly its size, in order. */
    @FunctionalInterface
    public interface TensorData {
        void write(Output out) throws IOException;
    }

    /** Where {@link TensorData} writes. */
    public interface Output {
        void write(byte[] bytes, int offset, int length) throws IOException;

        default void write(byte[] bytes) throws IOException {
            write(bytes, 0, bytes.length);
        }
    }

    /**
     * @param offset relative offset in the data section, or -1: the next free aligned position
     * @param size   bytes of data the callback writes ({@code data} null: none written, the info only)
     */
    private record Tensor(String name, long[] ne, int typeId, long offset, long size, TensorData data) {
    }

    /** 2 or 3 (the default). */
    public GgufWriter version(int v) {
        if (v != 2 && v != 3) {
            throw new IllegalArgumentException("GGUF version " + v + ": 2 or 3");
        }
        version = v;
        return this;
    }

    /** Writes {@code general.alignment} (uint32) and lays the tensors out at it (a power of two). */
    public GgufWriter alignment(int a) {
        if (a <= 0 || Integer.bitCount(a) != 1) {
            throw new IllegalArgumentException("alignment " + a + " is not a power of two");
        }
        alignment = a;
        return u32("general.alignment", a);
    }

    public long alignment() {
        return alignment;
    }

    // ------------------------------------------------------------------ metadata

    /**
     * An entry given as its value type and encoded value (what follows the type field), written
     * unchecked: for values copied with {@link GgufFile#rawValue} and for broken files in tests.
     */
    public GgufWriter raw(String key, int type, byte[] value) {
        entries.add(new Le().string(key).u32(type).bytes(value).toArray());
        return this;
    }

    /** Copies entry {@code key} of {@code from} exactly (type, integer width, array contents). */
    public GgufWriter copy(GgufFile from, String key) {
        GgufFile.RawValue v = from.rawValue(key).orElseThrow(() -> new IllegalArgumentException(from.name() + " has no " + key));
        return typed(key, v.type(), v.bytes());
    }

    private GgufWriter typed(String key, int type, byte[] value) {
        if (!keys.add(key)) {
            throw new IllegalArgumentException("metadata key '" + key + "' written twice");
        }
        return raw(key, type, value);
    }

    public GgufWriter u8(String key, int v) {
        return typed(key, GgufFile.T_UINT8, new byte[]{(byte) v});
    }

    public GgufWriter i8(String key, int v) {
        return typed(key, GgufFile.T_INT8, new byte[]{(byte) v});
    }

    public GgufWriter u16(String key, int v) {
        return typed(key, GgufFile.T_UINT16, new Le().u16(v).toArray());
    }

    public GgufWriter i16(String key, int v) {
        return typed(key, GgufFile.T_INT16, new Le().u16(v).toArray());
    }

    public GgufWriter u32(String key, long v) {
        return typed(key, GgufFile.T_UINT32, new Le().u32((int) v).toArray());
    }

    public GgufWriter i32(String key, int v) {
        return typed(key, GgufFile.T_INT32, new Le().u32(v).toArray());
    }

    public GgufWriter u64(String key, long v) {
        return typed(key, GgufFile.T_UINT64, new Le().u64(v).toArray());
    }

    public GgufWriter i64(String key, long v) {
        return typed(key, GgufFile.T_INT64, new Le().u64(v).toArray());
    }

    public GgufWriter f32(String key, float v) {
        return typed(key, GgufFile.T_FLOAT32, new Le().f32(v).toArray());
    }

    public GgufWriter f64(String key, double v) {
        return typed(key, GgufFile.T_FLOAT64, new Le().u64(Double.doubleToRawLongBits(v)).toArray());
    }

    public GgufWriter bool(String key, boolean v) {
        return typed(key, GgufFile.T_BOOL, new byte[]{(byte) (v ? 1 : 0)});
    }

    public GgufWriter str(String key, String v) {
        return typed(key, GgufFile.T_STRING, new Le().string(v).toArray());
    }

    public GgufWriter strings(String key, String... v) {
        Le b = new Le().u32(GgufFile.T_STRING).u64(v.length);
        for (String s : v) {
            b.string(s);
        }
        return typed(key, GgufFile.T_ARRAY, b.toArray());
    }

    public GgufWriter floats(String key, float... v) {
        Le b = new Le().u32(GgufFile.T_FLOAT32).u64(v.length);
        for (float f : v) {
            b.f32(f);
        }
        return typed(key, GgufFile.T_ARRAY, b.toArray());
    }

    /** An array of int32. */
    public GgufWriter ints(String key, int... v) {
        Le b = new Le().u32(GgufFile.T_INT32).u64(v.length);
        for (int i : v) {
            b.u32(i);
        }
        return typed(key, GgufFile.T_ARRAY, b.toArray());
    }

    /** An array of any element type, given as its count and encoded elements (arrays of arrays too). */
    public GgufWriter array(String key, int elementType, long count, byte[] elements) {
        return typed(key, GgufFile.T_ARRAY, new Le().u32(elementType).u64(count).bytes(elements).toArray());
    }

    // ------------------------------------------------------------------ tensors

    /** A tensor of {@code type} and shape {@code ne} (GGUF order), its bytes streamed by {@code data} when written. */
    public GgufWriter tensor(String name, GgmlType type, long[] ne, TensorData data) {
        if (!tensorNames.add(name)) {
            throw new IllegalArgumentException("tensor '" + name + "' written twice");
        }
        tensors.add(new Tensor(name, ne.clone(), type.id(), -1, byteSize(type, ne), data));
        return this;
    }

    /** A tensor holding {@code data}, which must be exactly its size. */
    public GgufWriter tensor(String name, GgmlType type, byte[] data, long... ne) {
        if (data.length != byteSize(type, ne)) {
            throw new IllegalArgumentException("tensor '" + name + "': " + data.length + " bytes, " + type.displayName()
                    + " " + Arrays.toString(ne) + " takes " + byteSize(type, ne));
        }
        return tensor(name, type, ne, out -> out.write(data));
    }

    /** A float32 tensor holding {@code values}. */
    public GgufWriter f32Tensor(String name, float[] values, long... ne) {
        Le b = new Le();
        for (float v : values) {
            b.f32(v);
        }
        return tensor(name, GgmlType.F32, b.toArray(), ne);
    }

    /**
     * A tensor info written unchecked, with any type id and relative {@code offset}; {@code data} (or
     * nothing, when null) is written at that offset. For broken files in tests.
     */
    public GgufWriter rawTensor(String name, int typeId, long offset, byte[] data, long... ne) {
        tensors.add(new Tensor(name, ne.clone(), typeId, offset, data == null ? 0 : data.length,
                data == null ? null : out -> out.write(data)));
        return this;
    }

    /** Bytes of a tensor of {@code type} and shape {@code ne}; ne[0] must be a whole number of blocks. */
    public static long byteSize(GgmlType type, long... ne) {
        if (ne.length < 1 || ne.length > GgufFile.MAX_DIMS) {
            throw new IllegalArgumentException("n_dims " + ne.length + ", must be 1 to " + GgufFile.MAX_DIMS);
        }
        for (long n : ne) {
            if (n <= 0) {
                throw new IllegalArgumentException("shape " + Arrays.toString(ne));
            }
        }
        if (ne[0] % type.blockSize() != 0) {
            throw new IllegalArgumentException("ne[0] = " + ne[0] + " is not a multiple of the " + type.displayName()
                    + " block size " + type.blockSize());
        }
        long size = Math.multiplyExact(ne[0] / type.blockSize(), (long) type.bytesPerBlock());
        for (int d = 1; d < ne.length; d++) {
            size = Math.multiplyExact(size, ne[d]);
        }
        return size;
    }

    // ------------------------------------------------------------------ writing

    /** The file's size: header, padding, every tensor's data padded to the alignment. */
    public long fileSize() {
        Layout l = layout();
        return l.end;
    }

    /** The whole file in memory (small files). */
    public byte[] toBytes() {
        MemoryOut out = new MemoryOut();
        try {
            writeTo(out, null);
        } catch (IOException e) {
            throw new IllegalStateException(e); // memory does not fail
        }
        return Arrays.copyOf(out.buf, Math.toIntExact(out.size));
    }

    /**
     * Writes the file to {@code target} through {@code target.tmp}, renamed when complete; the tensor data is
     * streamed. {@code progress} (may be null) receives the bytes written so far. Returns the file size.
     */
    public long write(Path target, LongConsumer progress) {
        long size = fileSize();
        AtomicFile.checkFreeSpace(String.valueOf(target.getFileName()), target, size);
        return AtomicFile.write(target, temp -> {
            try (FileChannel ch = FileChannel.open(temp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE)) {
                ChannelOut out = new ChannelOut(ch);
                writeTo(out, progress);
                out.flush();
            }
            return size;
        });
    }

    /** Offsets of the tensors (relative), the data section's start and the file's end. */
    private record Layout(long[] offsets, long dataStart, long end, byte[] header) {
    }

    private Layout layout() {
        Le h = new Le();
        h.u32(GgufFile.MAGIC).u32(version).u64(tensors.size()).u64(entries.size());
        for (byte[] e : entries) {
            h.bytes(e);
        }
        long[] offsets = new long[tensors.size()];
        long next = 0;
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            offsets[i] = t.offset >= 0 ? t.offset : next;
            if (t.data != null) {
                next = GgufFile.alignUp(Math.max(next, offsets[i] + t.size), alignment);
            }
            h.string(t.name).u32(t.ne.length);
            for (long n : t.ne) {
                h.u64(n);
            }
            h.u32(t.typeId).u64(offsets[i]);
        }
        long dataStart = GgufFile.alignUp(h.size(), alignment);
        long end = dataStart;
        for (int i = 0; i < tensors.size(); i++) {
            if (tensors.get(i).data != null) {
                end = Math.max(end, GgufFile.alignUp(dataStart + offsets[i] + tensors.get(i).size, alignment));
            }
        }
        return new Layout(offsets, dataStart, end, h.toArray());
    }

    private void writeTo(PositionedOut out, LongConsumer progress) throws IOException {
        Layout l = layout();
        out.write(l.header, 0, l.header.length);
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            if (t.data == null) {
                continue;
            }
            long start = l.dataStart + l.offsets[i];
            out.seek(start);
            t.data.write(out);
            if (out.position() != start + t.size) {
                throw new IllegalStateException("tensor '" + t.name + "': " + (out.position() - start) + " bytes written, "
                        + t.size + " expected");
            }
            if (progress != null) {
                progress.accept(out.position());
            }
        }
        out.seek(l.end);
    }

    /** A sequential output that can move to a position; moving forward writes zeros. */
    private abstract static class PositionedOut implements Output {
        abstract long position();

        abstract void seek(long position) throws IOException;
    }

    private static final class MemoryOut extends PositionedOut {
        byte[] buf = new byte[256];
        long size;
        int pos;

        @Override
        public void write(byte[] bytes, int offset, int length) {
            ensure((long) pos + length);
            System.arraycopy(bytes, offset, buf, pos, length);
            pos += length;
            size = Math.max(size, pos);
        }

        private void ensure(long n) {
            if (n > buf.length) {
                buf = Arrays.copyOf(buf, Math.toIntExact(Math.max(n, 2L * buf.length)));
            }
        }

        @Override
        long position() {
            return pos;
        }

        @Override
        void seek(long position) {
            ensure(position);
            pos = Math.toIntExact(position);
            size = Math.max(size, pos);
        }
    }

    /** Buffered writes to a channel; seeking flushes. */
    private static final class ChannelOut extends PositionedOut {
        private static final int BUFFER = 4 << 20;
        private final FileChannel ch;
        private final ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER);
        private long flushed;

        ChannelOut(FileChannel ch) {
            this.ch = ch;
        }

        @Override
        public void write(byte[] bytes, int offset, int length) throws IOException {
            while (length > 0) {
                int n = Math.min(length, buf.remaining());
                buf.put(bytes, offset, n);
                offset += n;
                length -= n;
                if (!buf.hasRemaining()) {
                    flush();
                }
            }
        }

        void flush() throws IOException {
            buf.flip();
            while (buf.hasRemaining()) {
                flushed += ch.write(buf, flushed);
            }
            buf.clear();
        }

        @Override
        long position() {
            return flushed + buf.position();
        }

        @Override
        void seek(long position) throws IOException {
            long p = position();
            if (position > p && position - p <= BUFFER) {
                write(new byte[(int) (position - p)]); // alignment padding: explicit zeros
                return;
            }
            flush();
            if (position > flushed) {
                ch.write(ByteBuffer.allocate(1), position - 1); // extends the file; the gap reads as zeros
            }
            flushed = position;
        }
    }

    /** A little-endian byte writer for encoding values. */
    public static final class Le {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();
        private final ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);

        public Le u16(int v) {
            b.clear();
            b.putShort((short) v);
            out.write(b.array(), 0, 2);
            return this;
        }

        public Le u32(int v) {
            b.clear();
            b.putInt(v);
            out.write(b.array(), 0, 4);
            return this;
        }

        public Le u64(long v) {
            b.clear();
            b.putLong(v);
            out.write(b.array(), 0, 8);
            return this;
        }

        public Le f32(float v) {
            return u32(Float.floatToRawIntBits(v));
        }

        /** A GGUF string: uint64 length, UTF-8 bytes. */
        public Le string(String s) {
            byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
            u64(bytes.length);
            return bytes(bytes);
        }

        public Le bytes(byte[] bytes) {
            out.write(bytes, 0, bytes.length);
            return this;
        }

        public int size() {
            return out.size();
        }

        public byte[] toArray() {
            return out.toByteArray();
        }
    }
}
