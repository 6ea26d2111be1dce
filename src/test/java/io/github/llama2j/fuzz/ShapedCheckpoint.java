package io.github.llama2j.fuzz;

import io.github.llama2j.model.ModelLoader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns fuzzer bytes into a checkpoint whose size matches its header (or misses it by a few bytes),
 * so that mutations explore header combinations, body contents (NaN, infinities, huge scales) and
 * the forward pass, instead of dying at the file-size check as raw mutations of a file mostly do.
 *
 * <p>Choice bytes, in order: format (v0/v1/v2), a "wild" flag (raw 32-bit header fields instead of
 * small valid ones), the shape choices, a size error, then the body bytes (repeated to fill).
 */
final class ShapedCheckpoint {
    /** Files larger than this are cut to their header plus the body bytes given. */
    static final long MAX_BYTES = 1 << 20;

    private ShapedCheckpoint() {
    }

    /** A few choice sequences that build valid files of each format, for the seed corpus. */
    static List<byte[]> seeds() {
        List<byte[]> seeds = new ArrayList<>();
        for (int format = 0; format < 3; format++) {
            // format, tame, heads-1, headSize/2-1, kv choice, hidden, layers-1, vocab-1 (2 bytes), seq-1, shared, gs, size error
            seeds.add(new byte[]{(byte) format, 0, 1, 1, 1, 3, 1, 9, 1, 7, 1, 1, 0, 1, 2, 3, 4, 5, 6, 7});
            seeds.add(new byte[]{(byte) format, 0, 3, 0, 0, 5, 0, 2, 0, 0, 0, 2, 0, -128, 63});
        }
        seeds.add(new byte[]{1, 1, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, -1, -1, -1, 127, 1});
        return seeds;
    }

    static byte[] build(byte[] choices) {
        Choices in = new Choices(choices);
        int format = in.next() % 3;
        boolean wild = in.next() % 8 == 1;
        int dim, hidden, layers, heads, kvHeads, vocab, seqLen, groupSize;
        boolean shared;
        if (wild) {
            dim = in.nextInt();
            hidden = in.nextInt();
            layers = in.nextInt();
            heads = in.nextInt();
            kvHeads = in.nextInt();
            vocab = in.nextInt();
            seqLen = in.nextInt();
            shared = (in.next() & 1) == 1;
            groupSize = in.nextInt();
        } else {
            heads = 1 + in.next() % 4;
            int headSize = 2 * (1 + in.next() % 4);
            dim = heads * headSize;
            int kvChoice = in.next();
            kvHeads = heads % 2 == 0 && kvChoice % 2 == 1 ? heads / 2 : (kvChoice % 3 == 2 ? 1 : heads);
            groupSize = 1 << (in.next() % 3);
            hidden = groupSize * (1 + in.next() % 8);
            layers = 1 + in.next() % 3;
            vocab = 1 + ((in.next() << 8) | in.next()) % 600;
            seqLen = 1 + in.next() % 16;
            shared = (in.next() & 1) == 1;
        }
        int sizeError = in.next() % 8 == 7 ? ((byte) in.next()) % 5 : 0; // mostly exact
        byte[] body = in.rest();

        ByteBuffer header = ByteBuffer.allocate(ModelLoader.V1_V2_HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        if (format == 0) {
            header.putInt(dim).putInt(hidden).putInt(layers).putInt(heads).putInt(kvHeads)
                    .putInt(shared ? vocab : -vocab).putInt(seqLen);
        } else {
            header.putInt(ModelLoader.MAGIC).putInt(format).putInt(dim).putInt(hidden).putInt(layers).putInt(heads)
                    .putInt(kvHeads).putInt(vocab).putInt(seqLen).put((byte) (shared ? 1 : 0));
            if (format == 2) {
                header.putInt(groupSize);
            }
        }
        int headerBytes = format == 0 ? ModelLoader.V0_HEADER_BYTES : ModelLoader.V1_V2_HEADER_BYTES;
        long size = expectedSize(format, dim, hidden, layers, heads, kvHeads, vocab, seqLen, shared, groupSize);
        long total = size < 0 || size > MAX_BYTES ? headerBytes + (long) body.length : size + sizeError;
        total = Math.max(0, Math.min(total, MAX_BYTES + 8));
        byte[] file = new byte[(int) total];
        System.arraycopy(header.array(), 0, file, 0, (int) Math.min(headerBytes, total));
        if (body.length > 0) {
            for (int i = headerBytes; i < file.length; i++) {
                file[i] = body[(i - headerBytes) % body.length];
            }
        }
        return file;
    }

    /** The file size the layout implies, or -1 if the fields make no sense or it overflows. */
    static long expectedSize(int format, int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen,
                             boolean shared, int groupSize) {
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab <= 0 || seqLen <= 0
                || (format == 2 && groupSize <= 0)) {
            return -1;
        }
        try {
            long d = dim, h = hidden, v = vocab, hs = dim / heads, kv = hs * kvHeads;
            long classifiers = shared ? 1 : 2;
            if (format == 2) {
                long[] perLayer = {d * d, kv * d, kv * d, d * d, h * d, d * h, h * d};
                long layer = 8 * d;
                for (long n : perLayer) {
                    layer = Math.addExact(layer, q8(n, groupSize));
                }
                long fixed = Math.addExact(256 + 4 * d, Math.multiplyExact(classifiers, q8(Math.multiplyExact(v, d), groupSize)));
                return Math.addExact(fixed, Math.multiplyExact(layer, (long) layers));
            }
            long layer = Math.multiplyExact(4, 2 * d + 2 * d * d + 2 * d * kv + Math.multiplyExact(3 * d, h));
            long fixedFloats = Math.addExact(Math.multiplyExact(classifiers, Math.multiplyExact(v, d)), d);
            if (format == 0) {
                fixedFloats = Math.addExact(fixedFloats, Math.multiplyExact((long) seqLen, hs));
            }
            long fixed = Math.addExact(format == 0 ? 28 : 256, Math.multiplyExact(4, fixedFloats));
            return Math.addExact(fixed, Math.multiplyExact(layer, (long) layers));
        } catch (ArithmeticException e) {
            return -1;
        }
    }

    private static long q8(long numel, int gs) {
        return Math.addExact(numel, Math.multiplyExact(numel / gs, 4));
    }

    /** Sequential reader of fuzzer choices; reads past the end as zeros. */
    private static final class Choices {
        private final byte[] data;
        private int pos;

        Choices(byte[] data) {
            this.data = data;
        }

        int next() {
            return pos < data.length ? data[pos++] & 0xFF : 0;
        }

        int nextInt() {
            return next() | next() << 8 | next() << 16 | next() << 24;
        }

        byte[] rest() {
            byte[] r = pos < data.length ? java.util.Arrays.copyOfRange(data, pos, data.length) : new byte[0];
            pos = data.length;
            return r;
        }
    }
}
