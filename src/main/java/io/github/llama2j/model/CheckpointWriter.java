package io.github.llama2j.model;

import io.github.llama2j.Llama2jException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;
import java.util.stream.IntStream;

/**
 * Writes llama2.c checkpoints (v0, v1, v2) from a {@link WeightSource}, streaming: weights are pulled
 * in chunks of rows, converted, and written through a buffered channel, so a 7B model never has to
 * fit in memory. v2 files are quantized exactly as llama2.c's {@code export.py --version 2}: per
 * group, {@code scale = max|w| / 127} and {@code q = round-half-even(w / scale)}, in float32.
 * The file is written to {@code OUT.tmp} and renamed over {@code OUT} only when complete.
 */
public final class CheckpointWriter {
    /** Group sizes tried, largest first, when none is given. */
    static final int[] GROUP_SIZES = {64, 32, 16, 8, 4, 2, 1};
    /** Floats converted per chunk (4 MiB): large enough for the channel, small enough for any heap. */
    private static final int CHUNK_FLOATS = 1 << 20;
    private static final int BUFFER_BYTES = 4 << 20;

    private CheckpointWriter() {
    }

    /**
     * What was written.
     *
     * @param bytes                 size of the file
     * @param maxQuantizationError  v2 only: per tensor kind, the largest |w - q·scale| (empty for float files)
     */
    public record Result(long bytes, Map<Tensor, Float> maxQuantizationError) {
        /** The largest error over all tensor kinds (0 for float files). */
        public float overallMaxError() {
            float m = 0;
            for (float e : maxQuantizationError.values()) {
                m = Math.max(m, e);
            }
            return m;
        }
    }

    /**
     * The largest of 64, 32, 16, 8, 4, 2, 1 that divides both matmul input widths, dim and hidden_dim.
     * (export.py only halves until dim is divisible, and runq.c then silently skips w2's tail columns.)
     */
    public static int defaultGroupSize(int dim, int hiddenDim) {
        for (int gs : GROUP_SIZES) {
            if (dim % gs == 0 && hiddenDim % gs == 0) {
                return gs;
            }
        }
        return 1;
    }

    /**
     * Exact byte size of the file {@link #write} produces, computed in closed form with overflow checks (not per layer),
     * so an absurd shape is refused at once rather than after building a list of billions of sections.
     *
     * @throws Llama2jException (bad usage) when the size does not fit in a long
     */
    public static long fileSize(String name, Configuration c, ModelFormat format, int groupSize) {
        try {
            long total = headerBytes(format);
            for (Section s : layout(c, format)) {
                total = Math.addExact(total, Math.multiplyExact(s.bytes(c, groupSize), (long) s.layers()));
            }
            return total;
        } catch (ArithmeticException e) {
            throw new Llama2jException(String.format(java.util.Locale.ROOT,
                    "%s: the file would be larger than %,d bytes (%d layers of dim %d, hidden_dim %d, vocab %d, seq_len %d)",
                    name, Long.MAX_VALUE, c.nLayers(), c.dim(), c.hiddenDim(), c.vocabSize(), c.seqLen()),
                    Llama2jException.BAD_USAGE);
        }
    }

    /**
     * Writes {@code source}'s weights to {@code out} in {@code format}. {@code groupSize} is used for v2
     * only and must divide dim and hidden_dim. {@code progress} receives the bytes written so far.
     */
    public static Result write(WeightSource source, ModelFormat format, int groupSize, Path out, LongConsumer progress) {
        Configuration c = source.config();
        String name = String.valueOf(out.getFileName());
        if (format == ModelFormat.V2_Q8) {
            checkGroupSize(name, c, groupSize);
        }
        long size = fileSize(name, c, format, groupSize);
        AtomicFile.checkFreeSpace(name, out, size);
        return AtomicFile.write(out, temp -> {
            try (FileChannel ch = FileChannel.open(temp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE)) {
                Result r = new Writer(source, c, format, groupSize, ch, progress).run();
                if (r.bytes() != size) {
                    throw new IllegalStateException("wrote " + r.bytes() + " bytes, layout says " + size);
                }
                return r;
            }
        });
    }

    /** Refuses group sizes with which runq.c would silently drop columns. */
    public static void checkGroupSize(String name, Configuration c, int groupSize) {
        if (groupSize <= 0) {
            throw new Llama2jException(name + ": group size is " + groupSize + ", must be positive", Llama2jException.BAD_USAGE);
        }
        for (String[] f : new String[][]{{"dim", String.valueOf(c.dim())}, {"hidden_dim", String.valueOf(c.hiddenDim())}}) {
            if (Integer.parseInt(f[1]) % groupSize != 0) {
                throw new Llama2jException(name + ": group size " + groupSize + " does not divide " + f[0] + " " + f[1]
                        + " (largest that works: " + defaultGroupSize(c.dim(), c.hiddenDim()) + ")", Llama2jException.BAD_USAGE);
            }
        }
    }

    // ------------------------------------------------------------------ layout

    static long headerBytes(ModelFormat format) {
        return format == ModelFormat.LEGACY_V0 ? ModelLoader.V0_HEADER_BYTES : ModelLoader.V1_V2_HEADER_BYTES;
    }

    /**
     * A stretch of the file after the header: one tensor, or ({@code layers} > 1) the same tensor of layers
     * 0 to layers-1, one after the other.
     */
    private record Section(Kind kind, Tensor tensor, int layers) {
        enum Kind { F32, Q8, FREQ_CIS }

        /** Bytes of one layer's tensor (of the whole section when layers is 1). */
        long bytes(Configuration c, int groupSize) {
            return switch (kind) {
                case F32 -> Math.multiplyExact(tensor.numel(c), (long) Float.BYTES);
                case Q8 -> Math.addExact(tensor.numel(c), Math.multiplyExact(tensor.numel(c) / groupSize, (long) Float.BYTES));
                // freq_cis_real and freq_cis_imag: seq_len × head_size/2 floats each
                case FREQ_CIS -> Math.multiplyExact((long) c.seqLen() * c.headSize(), (long) Float.BYTES);
            };
        }
    }

    /** The tensors of each format in file order (see ModelLoader and shared/models/README.md). */
    private static List<Section> layout(Configuration c, ModelFormat format) {
        List<Section> s = new ArrayList<>();
        int layers = c.nLayers();
        if (format == ModelFormat.LEGACY_V0) {
            s.add(new Section(Section.Kind.F32, Tensor.TOKEN_EMBEDDING, 1));
            for (Tensor t : List.of(Tensor.RMS_ATT, Tensor.WQ, Tensor.WK, Tensor.WV, Tensor.WO,
                    Tensor.RMS_FFN, Tensor.W1, Tensor.W2, Tensor.W3)) {
                s.add(new Section(Section.Kind.F32, t, layers));
            }
            s.add(new Section(Section.Kind.F32, Tensor.RMS_FINAL, 1));
            s.add(new Section(Section.Kind.FREQ_CIS, null, 1));
            if (!c.sharedClassifier()) {
                s.add(new Section(Section.Kind.F32, Tensor.CLASSIFIER, 1));
            }
            return s;
        }
        Section.Kind matrices = format == ModelFormat.V2_Q8 ? Section.Kind.Q8 : Section.Kind.F32;
        for (Tensor t : List.of(Tensor.RMS_ATT, Tensor.RMS_FFN)) {
            s.add(new Section(Section.Kind.F32, t, layers));
        }
        s.add(new Section(Section.Kind.F32, Tensor.RMS_FINAL, 1));
        s.add(new Section(matrices, Tensor.TOKEN_EMBEDDING, 1));
        for (Tensor t : List.of(Tensor.WQ, Tensor.WK, Tensor.WV, Tensor.WO, Tensor.W1, Tensor.W2, Tensor.W3)) {
            s.add(new Section(matrices, t, layers));
        }
        if (!c.sharedClassifier()) {
            s.add(new Section(matrices, Tensor.CLASSIFIER, 1));
        }
        return s;
    }

    static byte[] header(Configuration c, ModelFormat format, int groupSize) {
        ByteBuffer b = ByteBuffer.allocate((int) headerBytes(format)).order(ByteOrder.LITTLE_ENDIAN);
        if (format != ModelFormat.LEGACY_V0) {
            b.putInt(ModelLoader.MAGIC);
            b.putInt(format == ModelFormat.V2_Q8 ? 2 : 1);
        }
        b.putInt(c.dim()).putInt(c.hiddenDim()).putInt(c.nLayers()).putInt(c.nHeads()).putInt(c.nKvHeads());
        // v0 marks an unshared classifier with a negative vocab_size; v1/v2 have a flag byte.
        b.putInt(format == ModelFormat.LEGACY_V0 && !c.sharedClassifier() ? -c.vocabSize() : c.vocabSize());
        b.putInt(c.seqLen());
        if (format != ModelFormat.LEGACY_V0) {
            b.put((byte) (c.sharedClassifier() ? 1 : 0));
            if (format == ModelFormat.V2_Q8) {
                b.putInt(groupSize);
            }
        }
        return b.array(); // the rest of the 256 bytes stays zero
    }

    // ------------------------------------------------------------------ the streaming writer

    private static final class Writer {
        private final WeightSource source;
        private final Configuration c;
        private final ModelFormat format;
        private final int groupSize;
        private final LongConsumer progress;
        private final Out main;
        private final Out scalesOut;
        private final Map<Tensor, Float> errors = new EnumMap<>(Tensor.class);
        private float[] chunk = new float[0];
        private byte[] q = new byte[0];
        private float[] scales = new float[0];

        Writer(WeightSource source, Configuration c, ModelFormat format, int groupSize, FileChannel channel,
               LongConsumer progress) {
            this.source = source;
            this.c = c;
            this.format = format;
            this.groupSize = groupSize;
            this.progress = progress == null ? b -> { } : progress;
            this.main = new Out(channel, 0);
            this.scalesOut = format == ModelFormat.V2_Q8 ? new Out(channel, 0) : null;
        }

        Result run() throws IOException {
            byte[] h = header(c, format, groupSize);
            main.put(h, 0, h.length);
            for (Section s : layout(c, format)) {
                for (int layer = 0; layer < s.layers(); layer++) {
                    switch (s.kind()) {
                        case F32 -> f32(s.tensor(), layer);
                        case Q8 -> q8(s.tensor(), layer);
                        case FREQ_CIS -> freqCis();
                    }
                    progress.accept(main.position());
                }
            }
            main.flush();
            return new Result(main.position(), Collections.unmodifiableMap(errors));
        }

        private int rowsPerChunk(int cols) {
            return Math.max(1, CHUNK_FLOATS / cols);
        }

        private void ensure(int floats) {
            if (chunk.length < floats) {
                chunk = new float[floats];
                q = new byte[floats];
                scales = new float[floats];
            }
        }

        private void f32(Tensor t, int layer) throws IOException {
            int rows = t.rows(c), cols = t.cols(c), step = rowsPerChunk(cols);
            ensure(step * cols);
            for (int r0 = 0; r0 < rows; r0 += step) {
                int n = Math.min(step, rows - r0);
                fill(t, layer, r0, n, cols, null);
                main.put(chunk, 0, n * cols);
            }
        }

        private void q8(Tensor t, int layer) throws IOException {
            int rows = t.rows(c), cols = t.cols(c), step = rowsPerChunk(cols);
            ensure(step * cols);
            long numel = t.numel(c);
            long valuesAt = main.position();
            main.flush();
            scalesOut.seek(valuesAt + numel); // int8 values first, then the float32 scales
            float[] err = {errors.getOrDefault(t, 0f)};
            for (int r0 = 0; r0 < rows; r0 += step) {
                int n = Math.min(step, rows - r0);
                fill(t, layer, r0, n, cols, err);
                main.put(q, 0, n * cols);
                scalesOut.put(scales, 0, n * cols / groupSize);
            }
            scalesOut.flush();
            main.seek(scalesOut.position());
            errors.put(t, err[0]);
        }

        /** Pulls rows into {@code chunk} (and quantizes them when {@code err} is given), in parallel. */
        private void fill(Tensor t, int layer, int r0, int n, int cols, float[] err) {
            int tasks = Math.min(n, Math.max(1, Runtime.getRuntime().availableProcessors()));
            float[] taskErr = new float[tasks];
            RuntimeException[] failed = new RuntimeException[tasks];
            IntStream.range(0, tasks).parallel().forEach(task -> {
                int a = (int) ((long) n * task / tasks), b = (int) ((long) n * (task + 1) / tasks);
                if (a == b) {
                    return;
                }
                try {
                    source.rows(t, layer, r0 + a, b - a, chunk, a * cols);
                    if (err != null) {
                        taskErr[task] = quantize(t, layer, r0 + a, cols, chunk, a * cols, (b - a) * cols, groupSize, q, scales);
                    }
                } catch (RuntimeException e) {
                    failed[task] = e;
                }
            });
            for (RuntimeException e : failed) {
                if (e != null) {
                    throw e; // the first rows' failure, whatever the threads' timing
                }
            }
            if (err != null) {
                for (float e : taskErr) {
                    err[0] = Math.max(err[0], e);
                }
            }
        }

        private void freqCis() throws IOException {
            int half = c.headSize() / 2, seq = c.seqLen();
            float[] freq = new float[half];
            for (int i = 0; i < half; i++) {
                freq[i] = (float) (1.0 / StrictMath.pow(10000.0, (2.0 * i) / c.headSize()));
            }
            float[] row = new float[half];
            for (int part = 0; part < 2; part++) { // real (cos) table, then imaginary (sin) table
                for (int pos = 0; pos < seq; pos++) {
                    for (int i = 0; i < half; i++) {
                        float angle = pos * freq[i];
                        row[i] = (float) (part == 0 ? StrictMath.cos(angle) : StrictMath.sin(angle));
                    }
                    main.put(row, 0, half);
                }
            }
        }
    }

    /**
     * Q8_0-quantizes {@code n} floats of {@code w} from {@code at} (a whole number of groups) into
     * {@code q[at ..]} and {@code s[at / groupSize ..]}; returns the largest |w - q·scale|.
     */
    static float quantize(Tensor t, int layer, int firstRow, int cols, float[] w, int at, int n, int groupSize, byte[] q, float[] s) {
        float maxErr = 0;
        for (int g = at; g < at + n; g += groupSize) {
            float wmax = 0;
            for (int i = g; i < g + groupSize; i++) {
                wmax = Math.max(wmax, Math.abs(w[i])); // Math.max propagates NaN
            }
            if (!Float.isFinite(wmax)) {
                throw new Llama2jException(t.label() + (t.perLayer() ? "[" + layer + "]" : "") + " row "
                        + (firstRow + (g - at) / cols) + " holds a non-finite weight, cannot quantize",
                        Llama2jException.BAD_INPUT);
            }
            float scale = wmax / 127.0f;
            s[g / groupSize] = scale;
            for (int i = g; i < g + groupSize; i++) {
                // an all-zero group has scale 0: its values are 0 (export.py would divide 0 by 0)
                int v = scale == 0 ? 0 : (int) Math.rint(w[i] / scale);
                q[i] = (byte) v;
                maxErr = Math.max(maxErr, Math.abs(v * scale - w[i]));
            }
        }
        return maxErr;
    }

    /** A buffered writer at an explicit file position (two of them interleave values and scales). */
    private static final class Out {
        private final FileChannel channel;
        private final ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        private long start; // file position of buf[0]

        Out(FileChannel channel, long start) {
            this.channel = channel;
            this.start = start;
        }

        long position() {
            return start + buf.position();
        }

        void seek(long pos) throws IOException {
            flush();
            start = pos;
        }

        void put(byte[] a, int off, int n) throws IOException {
            while (n > 0) {
                if (!buf.hasRemaining()) {
                    flush();
                }
                int k = Math.min(n, buf.remaining());
                buf.put(a, off, k);
                off += k;
                n -= k;
            }
        }

        void put(float[] a, int off, int n) throws IOException {
            while (n > 0) {
                if (buf.remaining() < Float.BYTES) {
                    flush();
                }
                int k = Math.min(n, buf.remaining() / Float.BYTES);
                buf.asFloatBuffer().put(a, off, k);
                buf.position(buf.position() + k * Float.BYTES);
                off += k;
                n -= k;
            }
        }

        void flush() throws IOException {
            buf.flip();
            while (buf.hasRemaining()) {
                start += channel.write(buf, start);
            }
            buf.clear();
        }
    }
}
