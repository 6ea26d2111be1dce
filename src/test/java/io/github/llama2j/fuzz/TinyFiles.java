package io.github.llama2j.fuzz;

import io.github.llama2j.model.ModelLoader;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Writes small, valid llama2.c checkpoints (v0, v1, v2) and tokenizer files in memory, so the fuzz
 * seeds and the CLI fuzz target never depend on (or copy) the shared model files.
 */
public final class TinyFiles {
    private TinyFiles() {
    }

    /** A checkpoint shape: the seven header fields plus the classifier flag and the Q8 group size. */
    public record Shape(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen,
                        boolean shared, int groupSize) {
        int headSize() {
            return dim / heads;
        }

        int kvDim() {
            return headSize() * kvHeads;
        }
    }

    /** 2 layers, grouped-query attention, head size 4, a vocabulary that fits {@link #tokenizer()}. */
    public static Shape tinyShape(boolean shared, int groupSize) {
        return new Shape(8, 12, 2, 2, 1, tokenizerPieces().size(), 16, shared, groupSize);
    }

    /** run.c's legacy layout: 7-int header (negative vocab = unshared), float32 tensors, freq_cis, wcls. */
    public static byte[] v0(Shape s, Random rnd) {
        ByteBuffer b = buffer(ModelLoader.V0_HEADER_BYTES + 4 * v0Floats(s));
        b.putInt(s.dim()).putInt(s.hidden()).putInt(s.layers()).putInt(s.heads()).putInt(s.kvHeads())
                .putInt(s.shared() ? s.vocab() : -s.vocab()).putInt(s.seqLen());
        fillFloats(b, v0Floats(s), rnd);
        return b.array();
    }

    static long v0Floats(Shape s) {
        long d = s.dim(), v = s.vocab();
        return v * d + layerFloats(s) * s.layers() + d + (long) s.seqLen() * s.headSize() + (s.shared() ? 0 : v * d);
    }

    /** export.py --version 1: 256-byte header, then norms, embedding, layer matrices, wcls. */
    public static byte[] v1(Shape s, Random rnd) {
        long d = s.dim(), v = s.vocab();
        long floats = v * d + layerFloats(s) * s.layers() + d + (s.shared() ? 0 : v * d);
        ByteBuffer b = buffer(ModelLoader.V1_V2_HEADER_BYTES + 4 * floats);
        header(b, 1, s);
        fillFloats(b, floats, rnd);
        return b.array();
    }

    /** export.py --version 2: 256-byte header with the group size, float norms, then Q8_0 tensors. */
    public static byte[] v2(Shape s, Random rnd) {
        List<Long> tensors = new ArrayList<>();
        long d = s.dim(), h = s.hidden(), kv = s.kvDim(), v = s.vocab();
        tensors.add(v * d);
        long[] perLayer = {d * d, kv * d, kv * d, d * d, h * d, d * h, h * d};
        for (long numel : perLayer) {
            for (int l = 0; l < s.layers(); l++) {
                tensors.add(numel);
            }
        }
        if (!s.shared()) {
            tensors.add(v * d);
        }
        long normFloats = 2L * s.layers() * d + d;
        long bytes = ModelLoader.V1_V2_HEADER_BYTES + 4 * normFloats;
        for (long n : tensors) {
            bytes += n + 4 * (n / s.groupSize());
        }
        ByteBuffer b = buffer(bytes);
        header(b, 2, s);
        fillFloats(b, normFloats, rnd);
        for (long n : tensors) {
            for (long i = 0; i < n; i++) {
                b.put((byte) (rnd.nextInt(255) - 127));
            }
            fillFloats(b, n / s.groupSize(), rnd);
        }
        return b.array();
    }

    private static long layerFloats(Shape s) {
        long d = s.dim(), h = s.hidden(), kv = s.kvDim();
        return 2 * d + 2 * d * d + 2 * d * kv + 3 * d * h;
    }

    private static void header(ByteBuffer b, int version, Shape s) {
        b.putInt(ModelLoader.MAGIC).putInt(version);
        b.putInt(s.dim()).putInt(s.hidden()).putInt(s.layers()).putInt(s.heads()).putInt(s.kvHeads())
                .putInt(s.vocab()).putInt(s.seqLen());
        b.put((byte) (s.shared() ? 1 : 0));
        if (version == 2) {
            b.putInt(s.groupSize());
        }
        b.position(ModelLoader.V1_V2_HEADER_BYTES);
    }

    private static ByteBuffer buffer(long bytes) {
        if (bytes > 64 << 20) {
            throw new IllegalArgumentException("tiny files only: " + bytes + " bytes");
        }
        return ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void fillFloats(ByteBuffer b, long n, Random rnd) {
        for (long i = 0; i < n; i++) {
            b.putFloat((float) (rnd.nextGaussian() * 0.3));
        }
    }

    // ------------------------------------------------------------------ tokenizer

    /**
     * The pieces of a tokenizer shaped like llama2.c's: {@code <unk>}, BOS, EOS, the 256 byte tokens
     * {@code <0x00>..<0xFF>}, then a few merges (" ", " t", "he", " the", ...) and two multi-byte
     * code points, so encode exercises whole-code-point lookups, byte fallback and merging.
     */
    public static List<String> tokenizerPieces() {
        List<String> pieces = new ArrayList<>(List.of("<unk>", "\n<s>\n", "\n</s>\n"));
        for (int b = 0; b < 256; b++) {
            pieces.add(String.format("<0x%02X>", b));
        }
        pieces.addAll(List.of(" ", "e", "t", "h", "a", " t", "he", "th", " th", " the", "in", " a", "an", "é", "€", " é"));
        return pieces;
    }

    /** The tokenizer file for {@link #tokenizerPieces()}: longer merges score higher. */
    public static byte[] tokenizer() {
        List<String> pieces = tokenizerPieces();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[][] raw = new byte[pieces.size()][];
        int maxLen = 0;
        for (int i = 0; i < raw.length; i++) {
            raw[i] = pieces.get(i).getBytes(StandardCharsets.UTF_8);
            maxLen = Math.max(maxLen, raw[i].length);
        }
        out.writeBytes(le(maxLen));
        for (int i = 0; i < raw.length; i++) {
            float score = i < 259 ? 0f : -1000f + raw[i].length * 10f + i * 0.01f;
            out.writeBytes(le(Float.floatToRawIntBits(score)));
            out.writeBytes(le(raw[i].length));
            out.writeBytes(raw[i]);
        }
        return out.toByteArray();
    }

    private static byte[] le(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }
}
