package io.github.llama2j.model;

import java.lang.foreign.MemorySegment;

/**
 * A row-major weight matrix [rows × cols] that lives in the memory-mapped checkpoint.
 * Each tensor type knows its own storage; the engines' kernels read it in place.
 */
public sealed interface Matrix permits Matrix.F32, Matrix.Q8 {
    int rows();

    int cols();

    /** Bytes a full pass over this matrix reads (what one matmul streams from memory). */
    long byteSize();

    /** Float32 weights: rows × cols little-endian floats. */
    record F32(MemorySegment data, int rows, int cols) implements Matrix {
        @Override
        public long byteSize() {
            return data.byteSize();
        }
    }

    /**
     * Q8_0 weights: rows × cols int8 values, then one float32 scale per group of
     * {@code groupSize} consecutive values (groups never straddle rows because groupSize divides cols).
     */
    record Q8(MemorySegment values, MemorySegment scales, int rows, int cols, int groupSize) implements Matrix {
        @Override
        public long byteSize() {
            return values.byteSize() + scales.byteSize();
        }
    }
}
