package io.github.llama2j.gguf;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor of a GGUF file, as its tensor-info entry describes it, already checked against the file.
 *
 * @param name     the tensor's name (llama.cpp's: {@code blk.0.attn_q.weight} ...)
 * @param ne       the extent of each dimension, GGUF order: {@code ne[0]} is the innermost (contiguous) one;
 *                 a matrix is {@code [n_in, n_out]}, row-major over {@code n_in}
 * @param type     the ggml type of its values
 * @param offset   absolute byte offset of its data in the file
 * @param byteSize bytes of data
 */
public record GgufTensorInfo(String name, long[] ne, GgmlType type, long offset, long byteSize) {
    public GgufTensorInfo {
        Objects.requireNonNull(name);
        Objects.requireNonNull(type);
        ne = ne.clone();
        if (ne.length < 1 || ne.length > GgufFile.MAX_DIMS) {
            throw new IllegalArgumentException("n_dims " + ne.length);
        }
        for (long n : ne) {
            if (n < 0) {
                throw new IllegalArgumentException("ne " + Arrays.toString(ne));
            }
        }
        if (offset < 0 || byteSize < 0) {
            throw new IllegalArgumentException("offset " + offset + ", size " + byteSize);
        }
    }

    @Override
    public long[] ne() {
        return ne.clone();
    }

    /** Number of dimensions (1 to 4). */
    public int nDims() {
        return ne.length;
    }

    /** Extent of dimension {@code i}, 1 beyond {@link #nDims()}. */
    public long ne(int i) {
        return i < ne.length ? ne[i] : 1;
    }

    /** Number of values (the product of {@link #ne()}; the reader has checked it does not overflow). */
    public long elementCount() {
        long n = 1;
        for (long d : ne) {
            n *= d;
        }
        return n;
    }

    /** The shape in GGUF order, e.g. {@code [64, 128256]}. */
    public String shape() {
        return Arrays.toString(ne);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo t && name.equals(t.name) && Arrays.equals(ne, t.ne) && type == t.type
                && offset == t.offset && byteSize == t.byteSize;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, Arrays.hashCode(ne), type, offset, byteSize);
    }

    @Override
    public String toString() {
        return name + " " + type.displayName() + " " + shape();
    }
}
