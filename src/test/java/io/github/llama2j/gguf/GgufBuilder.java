package io.github.llama2j.gguf;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes small GGUF files for tests and fuzz seeds: metadata entries of every type, and tensors
 * laid out in order at the alignment. Raw entries and explicit offsets allow writing broken files.
 */
public final class GgufBuilder {
    private int version = 3;
    private long alignment = GgufFile.DEFAULT_ALIGNMENT;
    private final List<byte[]> kvs = new ArrayList<>();
    private final List<Tensor> tensors = new ArrayList<>();

    private record Tensor(String name, long[] ne, int typeId, byte[] data, Long offset) {
    }

    public GgufBuilder version(int v) {
        version = v;
        return this;
    }

    /** Writes {@code general.alignment} (uint32) and lays tensors out at it. */
    public GgufBuilder alignment(int a) {
        alignment = a;
        return u32("general.alignment", a);
    }

    public GgufBuilder raw(String key, int type, byte[] value) {
        Le b = new Le();
        b.string(key).u32(type).bytes(value);
        kvs.add(b.toArray());
        return this;
    }

    public GgufBuilder u8(String key, int v) {
        return raw(key, GgufFile.T_UINT8, new byte[]{(byte) v});
    }

    public GgufBuilder i8(String key, int v) {
        return raw(key, GgufFile.T_INT8, new byte[]{(byte) v});
    }

    public GgufBuilder u16(String key, int v) {
        return raw(key, GgufFile.T_UINT16, new Le().u16(v).toArray());
    }

    public GgufBuilder i16(String key, int v) {
        return raw(key, GgufFile.T_INT16, new Le().u16(v).toArray());
    }

    public GgufBuilder u32(String key, long v) {
        return raw(key, GgufFile.T_UINT32, new Le().u32((int) v).toArray());
    }

    public GgufBuilder i32(String key, int v) {
        return raw(key, GgufFile.T_INT32, new Le().u32(v).toArray());
    }

    public GgufBuilder u64(String key, long v) {
        return raw(key, GgufFile.T_UINT64, new Le().u64(v).toArray());
    }

    public GgufBuilder i64(String key, long v) {
        return raw(key, GgufFile.T_INT64, new Le().u64(v).toArray());
    }

    public GgufBuilder f32(String key, float v) {
        return raw(key, GgufFile.T_FLOAT32, new Le().f32(v).toArray());
    }

    public GgufBuilder f64(String key, double v) {
        return raw(key, GgufFile.T_FLOAT64, new Le().u64(Double.doubleToRawLongBits(v)).toArray());
    }

    public GgufBuilder bool(String key, boolean v) {
        return raw(key, GgufFile.T_BOOL, new byte[]{(byte) (v ? 1 : 0)});
    }

    public GgufBuilder str(String key, String v) {
        return raw(key, GgufFile.T_STRING, new Le().string(v).toArray());
    }

    public GgufBuilder strings(String key, String... v) {
        Le b = new Le().u32(GgufFile.T_STRING).u64(v.length);
        for (String s : v) {
            b.string(s);
        }
        return raw(key, GgufFile.T_ARRAY, b.toArray());
    }

    public GgufBuilder floats(String key, float... v) {
        Le b = new Le().u32(GgufFile.T_FLOAT32).u64(v.length);
        for (float f : v) {
            b.f32(f);
        }
        return raw(key, GgufFile.T_ARRAY, b.toArray());
    }

    public GgufBuilder ints(String key, int... v) {
        Le b = new Le().u32(GgufFile.T_INT32).u64(v.length);
        for (int i : v) {
            b.u32(i);
        }
        return raw(key, GgufFile.T_ARRAY, b.toArray());
    }

    /** An array given as its element type, count and raw element bytes. */
    public GgufBuilder array(String key, int elementType, long count, byte[] elements) {
        return raw(key, GgufFile.T_ARRAY, new Le().u32(elementType).u64(count).bytes(elements).toArray());
    }

    public GgufBuilder tensor(String name, GgmlType type, byte[] data, long... ne) {
        tensors.add(new Tensor(name, ne, type.id(), data, null));
        return this;
    }

    /** A float32 tensor holding {@code values}. */
    public GgufBuilder f32Tensor(String name, float[] values, long... ne) {
        Le b = new Le();
        for (float v : values) {
            b.f32(v);
        }
        return tensor(name, GgmlType.F32, b.toArray(), ne);
    }

    /** A tensor with any type id and relative offset, its data written at that offset. */
    public GgufBuilder rawTensor(String name, int typeId, long offset, byte[] data, long... ne) {
        tensors.add(new Tensor(name, ne, typeId, data, offset));
        return this;
    }

    public byte[] build() {
        Le out = new Le();
        out.u32(GgufFile.MAGIC).u32(version).u64(tensors.size()).u64(kvs.size());
        for (byte[] kv : kvs) {
            out.bytes(kv);
        }
        long[] offsets = new long[tensors.size()];
        long next = 0;
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            offsets[i] = t.offset != null ? t.offset : next;
            next = GgufFile.alignUp(Math.max(next, offsets[i] + t.data.length), alignment);
            out.string(t.name).u32(t.ne.length);
            for (long n : t.ne) {
                out.u64(n);
            }
            out.u32(t.typeId).u64(offsets[i]);
        }
        long dataStart = GgufFile.alignUp(out.size(), alignment);
        byte[] head = out.toArray();
        long end = dataStart;
        for (int i = 0; i < tensors.size(); i++) {
            if (writable(dataStart, offsets[i], tensors.get(i).data)) {
                end = Math.max(end, dataStart + offsets[i] + tensors.get(i).data.length);
            }
        }
        byte[] file = new byte[Math.toIntExact(end)];
        System.arraycopy(head, 0, file, 0, head.length);
        for (int i = 0; i < tensors.size(); i++) {
            byte[] d = tensors.get(i).data;
            if (!writable(dataStart, offsets[i], d)) {
                continue; // an absurd offset: only the tensor info is written
            }
            System.arraycopy(d, 0, file, Math.toIntExact(dataStart + offsets[i]), d.length);
        }
        return file;
    }

    private static boolean writable(long dataStart, long offset, byte[] data) {
        return offset >= 0 && offset < (1 << 28) && dataStart + offset + data.length < (1 << 28);
    }

    /** A little-endian byte writer. */
    static final class Le {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();
        private final ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);

        Le u16(int v) {
            b.clear();
            b.putShort((short) v);
            out.write(b.array(), 0, 2);
            return this;
        }

        Le u32(int v) {
            b.clear();
            b.putInt(v);
            out.write(b.array(), 0, 4);
            return this;
        }

        Le u64(long v) {
            b.clear();
            b.putLong(v);
            out.write(b.array(), 0, 8);
            return this;
        }

        Le f32(float v) {
            return u32(Float.floatToRawIntBits(v));
        }

        Le string(String s) {
            byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
            u64(bytes.length);
            return bytes(bytes);
        }

        Le bytes(byte[] bytes) {
            out.write(bytes, 0, bytes.length);
            return this;
        }

        int size() {
            return out.size();
        }

        byte[] toArray() {
            return out.toByteArray();
        }
    }
}
