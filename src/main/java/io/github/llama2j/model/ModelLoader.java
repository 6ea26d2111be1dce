package io.github.llama2j.model;

import io.github.llama2j.gguf.GgufFile;

import io.github.llama2j.InputFiles;
import io.github.llama2j.Llama2jException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;

/**
 * Reads llama2.c checkpoints (v0, v1, v2) by memory-mapping the file: weights stay on disk pages,
 * never copied onto the heap. The header is validated completely, and the exact byte size the
 * header implies is compared with the file's size, before any tensor view is made.
 */
public final class ModelLoader {
    /** "ak42" read as a little-endian uint32. */
    public static final int MAGIC = 0x616b3432;
    public static final int V1_V2_HEADER_BYTES = 256;
    public static final int V0_HEADER_BYTES = 7 * Integer.BYTES;
    static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private ModelLoader() {
    }

    public static Model load(Path path) {
        String name = path.getFileName() == null ? path.toString() : path.getFileName().toString();
        long fileSize = InputFiles.size(path, "a model file");
        if (GgufFile.isGguf(path)) {
            return GgufModelLoader.load(path);
        }
        if (name.toLowerCase(Locale.ROOT).endsWith(".gguf")) {
            // read as a llama2.c header, a damaged GGUF file gave "header field n_heads is 0"
            throw new Llama2jException(name + ": not a GGUF file (bad magic: the file does not start with 'GGUF')");
        }
        if (fileSize < V0_HEADER_BYTES) {
            throw new Llama2jException(name + ": file holds " + fileSize + " bytes, too small for a llama2.c header");
        }
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
            Model model = parse(name, path, file, arena);
            return model;
        } catch (IOException e) {
            arena.close();
            throw new Llama2jException(name + ": cannot map (" + e.getMessage() + ")", Llama2jException.IO_FAILURE, e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Parses and validates a whole checkpoint held in {@code file}; visible for tests and fuzzing. */
    public static Model parse(String name, Path path, MemorySegment file, Arena arena) {
        long fileSize = file.byteSize();
        if (fileSize < V0_HEADER_BYTES) {
            throw new Llama2jException(name + ": file holds " + fileSize + " bytes, too small for a llama2.c header");
        }
        int first = file.get(INT, 0);
        if (first == MAGIC) {
            if (fileSize < V1_V2_HEADER_BYTES) {
                throw new Llama2jException(name + ": file holds " + fileSize + " bytes, too small for the 256-byte v1/v2 header");
            }
            int version = file.get(INT, 4);
            int[] h = new int[7];
            for (int i = 0; i < 7; i++) {
                h[i] = file.get(INT, 8 + 4L * i);
            }
            byte sharedFlag = file.get(ValueLayout.JAVA_BYTE, 36);
            if (sharedFlag != 0 && sharedFlag != 1) {
                throw new Llama2jException(name + ": header field shared_classifier is " + sharedFlag + ", must be 0 or 1");
            }
            if (version == 1) {
                Configuration c = validate(name, h, sharedFlag == 1, 0, false);
                return new Model(path, ModelFormat.V1_F32, c, LayoutV1.map(name, file, c), arena);
            } else if (version == 2) {
                int groupSize = file.get(INT, 37);
                Configuration c = validate(name, h, sharedFlag == 1, groupSize, true);
                return new Model(path, ModelFormat.V2_Q8, c, LayoutV2.map(name, file, c), arena);
            } else {
                throw new Llama2jException(name + ": header field version is " + version + ", supported versions are 1 and 2");
            }
        }
        int[] h = new int[7];
        for (int i = 0; i < 7; i++) {
            h[i] = file.get(INT, 4L * i);
        }
        boolean shared = h[5] > 0;
        if (h[5] == Integer.MIN_VALUE) {
            throw new Llama2jException(name + ": header field vocab_size is " + h[5] + ", out of range");
        }
        h[5] = Math.abs(h[5]);
        Configuration c = validate(name, h, shared, 0, false);
        return new Model(path, ModelFormat.LEGACY_V0, c, LayoutV0.map(name, file, c), arena);
    }

    private static Configuration validate(String name, int[] h, boolean shared, int groupSize, boolean q8) {
        String[] fields = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
        for (int i = 0; i < 7; i++) {
            if (h[i] <= 0) {
                throw new Llama2jException(name + ": header field " + fields[i] + " is " + h[i] + ", must be positive"
                        + (i == 0 && h[0] == MAGIC_BYTES_SWAPPED ? " (is this a big-endian file?)" : ""));
            }
        }
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4];
        if (dim % heads != 0) {
            throw new Llama2jException(name + ": header field n_heads is " + heads + ", does not divide dim " + dim);
        }
        if (kvHeads > heads || heads % kvHeads != 0) {
            throw new Llama2jException(name + ": header field n_kv_heads is " + kvHeads + ", does not divide n_heads " + heads);
        }
        if ((dim / heads) % 2 != 0) {
            throw new Llama2jException(name + ": head size dim/n_heads = " + (dim / heads) + " is odd, RoPE needs it even");
        }
        if (q8) {
            if (groupSize <= 0) {
                throw new Llama2jException(name + ": header field group_size is " + groupSize + ", must be positive");
            }
            if (dim % groupSize != 0) {
                throw new Llama2jException(name + ": header field group_size is " + groupSize + ", does not divide dim " + dim);
            }
            if (hidden % groupSize != 0) {
                throw new Llama2jException(name + ": header field group_size is " + groupSize
                        + ", does not divide hidden_dim " + hidden);
            }
        }
        return new Configuration(dim, hidden, layers, heads, kvHeads, h[5], h[6], shared, q8 ? groupSize : 0);
    }

    private static final int MAGIC_BYTES_SWAPPED = Integer.reverseBytes(MAGIC);

    /**
     * Compares the size the header implies with the file's size. Sizes are computed in long with
     * overflow checks, so an absurd header is rejected before anything is sliced or allocated.
     */
    static void checkSize(String name, Configuration c, long fileSize, long fixedBytes, long perLayerBytes) {
        long expected;
        try {
            expected = Math.addExact(fixedBytes, Math.multiplyExact(perLayerBytes, (long) c.nLayers()));
        } catch (ArithmeticException e) {
            throw new Llama2jException(name + ": header describes a model too large to exist (" + c.nLayers() + " layers of dim "
                    + c.dim() + ")");
        }
        if (expected != fileSize) {
            double layersHeld = perLayerBytes == 0 ? 0 : (double) (fileSize - fixedBytes) / perLayerBytes;
            throw new Llama2jException(String.format(Locale.ROOT,
                    "%s: header says %d layers, file holds %s (expected %d bytes, file has %d: %d bytes too %s)",
                    name, c.nLayers(), formatLayers(layersHeld), expected, fileSize, Math.abs(fileSize - expected),
                    fileSize > expected ? "many" : "few"));
        }
    }

    private static String formatLayers(double layers) {
        if (layers < 0) {
            return "not even the embedding and final weights"; // shorter than the fixed part: no layer at all
        }
        String s = String.format(Locale.ROOT, "%.2f", layers);
        s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        return s;
    }

    /** Sum that throws ArithmeticException on overflow, like {@link #mul}. */
    static long sum(long... terms) {
        long r = 0;
        for (long t : terms) {
            r = Math.addExact(r, t);
        }
        return r;
    }

    static long mul(long... factors) {
        long r = 1;
        for (long f : factors) {
            r = Math.multiplyExact(r, f);
        }
        return r;
    }

    /** Sequentially slices tensors out of the mapped file. */
    static final class Cursor {
        private final MemorySegment file;
        private long offset;

        Cursor(MemorySegment file, long offset) {
            this.file = file;
            this.offset = offset;
        }

        MemorySegment take(long bytes) {
            MemorySegment s = file.asSlice(offset, bytes);
            offset += bytes;
            return s;
        }

        MemorySegment floats(long count) {
            return take(count * Float.BYTES);
        }

        void skip(long bytes) {
            offset += bytes;
        }

        long offset() {
            return offset;
        }
    }

    /** Splits a block of n same-sized float32 matrices into per-layer views. */
    static Matrix[] f32Layers(Cursor cur, int layers, int rows, int cols) {
        Matrix[] out = new Matrix[layers];
        for (int l = 0; l < layers; l++) {
            out[l] = new Matrix.F32(cur.floats((long) rows * cols), rows, cols);
        }
        return out;
    }

    static MemorySegment[] vectors(Cursor cur, int layers, int size) {
        MemorySegment[] out = new MemorySegment[layers];
        for (int l = 0; l < layers; l++) {
            out[l] = cur.floats(size);
        }
        return out;
    }

    /** run.c's legacy layout. */
    static final class LayoutV0 {
        static Weights map(String name, MemorySegment file, Configuration c) {
            long d = c.dim(), h = c.hiddenDim(), kv = c.kvDim(), v = c.vocabSize(), hs = c.headSize();
            long perLayer;
            long fixed;
            try {
                perLayer = mul(4, sum(2 * d, mul(2, d, d), mul(2, d, kv), mul(3, d, h)));
                fixed = sum(V0_HEADER_BYTES, mul(4, sum(mul(v, d), d, mul(c.seqLen(), hs),
                        c.sharedClassifier() ? 0 : mul(v, d))));
            } catch (ArithmeticException e) {
                throw new Llama2jException(name + ": header describes a model too large to exist");
            }
            checkSize(name, c, file.byteSize(), fixed, perLayer);
            int L = c.nLayers(), D = c.dim(), H = c.hiddenDim(), KV = c.kvDim(), V = c.vocabSize();
            Cursor cur = new Cursor(file, V0_HEADER_BYTES);
            Matrix emb = new Matrix.F32(cur.floats((long) V * D), V, D);
            MemorySegment[] rmsAtt = vectors(cur, L, D);
            Matrix[] wq = f32Layers(cur, L, D, D);
            Matrix[] wk = f32Layers(cur, L, KV, D);
            Matrix[] wv = f32Layers(cur, L, KV, D);
            Matrix[] wo = f32Layers(cur, L, D, D);
            MemorySegment[] rmsFfn = vectors(cur, L, D);
            Matrix[] w1 = f32Layers(cur, L, H, D);
            Matrix[] w2 = f32Layers(cur, L, D, H);
            Matrix[] w3 = f32Layers(cur, L, H, D);
            MemorySegment rmsFinal = cur.floats(D);
            cur.skip((long) c.seqLen() * c.headSize() * Float.BYTES); // freq_cis_real, freq_cis_imag: unused
            Matrix cls = c.sharedClassifier() ? emb : new Matrix.F32(cur.floats((long) V * D), V, D);
            return new Weights(emb, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, cls);
        }
    }

    /** export.py --version 1. */
    static final class LayoutV1 {
        static Weights map(String name, MemorySegment file, Configuration c) {
            long d = c.dim(), h = c.hiddenDim(), kv = c.kvDim(), v = c.vocabSize();
            long perLayer;
            long fixed;
            try {
                perLayer = mul(4, sum(2 * d, mul(2, d, d), mul(2, d, kv), mul(3, d, h)));
                fixed = sum(V1_V2_HEADER_BYTES, mul(4, sum(mul(v, d), d, c.sharedClassifier() ? 0 : mul(v, d))));
            } catch (ArithmeticException e) {
                throw new Llama2jException(name + ": header describes a model too large to exist");
            }
            checkSize(name, c, file.byteSize(), fixed, perLayer);
            int L = c.nLayers(), D = c.dim(), H = c.hiddenDim(), KV = c.kvDim(), V = c.vocabSize();
            Cursor cur = new Cursor(file, V1_V2_HEADER_BYTES);
            MemorySegment[] rmsAtt = vectors(cur, L, D);
            MemorySegment[] rmsFfn = vectors(cur, L, D);
            MemorySegment rmsFinal = cur.floats(D);
            Matrix emb = new Matrix.F32(cur.floats((long) V * D), V, D);
            Matrix[] wq = f32Layers(cur, L, D, D);
            Matrix[] wk = f32Layers(cur, L, KV, D);
            Matrix[] wv = f32Layers(cur, L, KV, D);
            Matrix[] wo = f32Layers(cur, L, D, D);
            Matrix[] w1 = f32Layers(cur, L, H, D);
            Matrix[] w2 = f32Layers(cur, L, D, H);
            Matrix[] w3 = f32Layers(cur, L, H, D);
            Matrix cls = c.sharedClassifier() ? emb : new Matrix.F32(cur.floats((long) V * D), V, D);
            return new Weights(emb, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, cls);
        }
    }

    /** export.py --version 2 (Q8_0), as runq.c reads it. */
    static final class LayoutV2 {
        static long q8Bytes(long numel, int gs) {
            return Math.addExact(numel, mul(numel / gs, Float.BYTES));
        }

        static Weights map(String name, MemorySegment file, Configuration c) {
            int gs = c.groupSize();
            long d = c.dim(), h = c.hiddenDim(), kv = c.kvDim(), v = c.vocabSize();
            long perLayer;
            long fixed;
            try {
                perLayer = Math.addExact(8 * d, Math.addExact(mul(q8Bytes(mul(d, d), gs), 2),
                        Math.addExact(mul(q8Bytes(mul(d, kv), gs), 2), mul(q8Bytes(mul(d, h), gs), 3))));
                long emb = q8Bytes(mul(v, d), gs);
                fixed = sum(V1_V2_HEADER_BYTES, 4 * d, mul(emb, c.sharedClassifier() ? 1 : 2));
            } catch (ArithmeticException e) {
                throw new Llama2jException(name + ": header describes a model too large to exist");
            }
            checkSize(name, c, file.byteSize(), fixed, perLayer);
            int L = c.nLayers(), D = c.dim(), H = c.hiddenDim(), KV = c.kvDim(), V = c.vocabSize();
            Cursor cur = new Cursor(file, V1_V2_HEADER_BYTES);
            MemorySegment[] rmsAtt = vectors(cur, L, D);
            MemorySegment[] rmsFfn = vectors(cur, L, D);
            MemorySegment rmsFinal = cur.floats(D);
            Matrix emb = q8(cur, V, D, gs);
            Matrix[] wq = q8Layers(cur, L, D, D, gs);
            Matrix[] wk = q8Layers(cur, L, KV, D, gs);
            Matrix[] wv = q8Layers(cur, L, KV, D, gs);
            Matrix[] wo = q8Layers(cur, L, D, D, gs);
            Matrix[] w1 = q8Layers(cur, L, H, D, gs);
            Matrix[] w2 = q8Layers(cur, L, D, H, gs);
            Matrix[] w3 = q8Layers(cur, L, H, D, gs);
            Matrix cls = c.sharedClassifier() ? emb : q8(cur, V, D, gs);
            return new Weights(emb, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, cls);
        }

        private static Matrix q8(Cursor cur, int rows, int cols, int gs) {
            long n = (long) rows * cols;
            MemorySegment values = cur.take(n);
            MemorySegment scales = cur.floats(n / gs);
            return new Matrix.Q8(values, scales, rows, cols, gs);
        }

        private static Matrix[] q8Layers(Cursor cur, int layers, int rows, int cols, int gs) {
            Matrix[] out = new Matrix[layers];
            for (int l = 0; l < layers; l++) {
                out[l] = q8(cur, rows, cols, gs);
            }
            return out;
        }
    }
}
