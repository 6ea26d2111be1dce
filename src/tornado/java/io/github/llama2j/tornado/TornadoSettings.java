package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Properties;

/**
 * This project's TornadoVM tuning for one device: work-group sizes by device type, read from
 * {@code tornado-config/llama2j-tornado.properties} (bundled in the jar; replaced by
 * {@code -Dllama2j.tornado.config=FILE}; single keys overridden by {@code -Dllama2j.tornado.KEY=V}).
 *
 * @param matmulLocal    work-items per work-group of the matmul kernels
 * @param matmulRows     output rows per matmul work-group of the one-token kernels over float and K-quant weights
 *                       (Q8_0: q8Rows), each computed by a slice of matmulLocal / matmulRows work-items; the work-group's
 *                       rmsnorm is computed once for them all; also the batched prefill's
 * @param attentionLocal work-items per attention head
 * @param quantizeLocal  work-group size of the Q8 quantize kernels
 * @param normPartials   work-groups (= partial sums) of rmsnorm's first phase
 * @param normLocal      work-items per rmsnorm work-group
 * @param memoryLimit    plan for at most this many bytes of device memory; 0 = the device's own size
 * @param attentionSplits work-groups per head of the one-token attention (llama2.c checkpoints): 1 = one work-group
 *                       per head; more splits a head's positions into chunks whose partial softmax sums wo combines
 *                       (see {@link KernelHelpers#splitWeight})
 * @param attentionChunk fewest positions per chunk of a split head: a token at position pos uses
 *                       min(splits, ⌈(pos + 1) / chunk⌉) chunks ({@link KernelHelpers#chunkLength})
 * @param cudaGraph      the TornadoVM engine on a CUDA device (PTX backend): each task graph captured once as a CUDA
 *                       graph and replayed per token, one driver launch per graph instead of one per task (TornadoVM's
 *                       {@code withCUDAGraph()}); other backends have no CUDA graphs and ignore it
 * @param graphLayers    most layers per task graph of the one-token forward pass (ForwardGraph): every layer slot of a
 *                       graph compiles its own kernels (JIT work grows with it), graph executions per token fall with it
 *                       (⌈layers / graphLayers⌉, each a host-side {@code execute()} of TornadoVM's interpreter); TornadoVM's
 *                       task record caps it further
 * @param q8Rows         output rows per work-group of the one-token kernels over Q8_0 weights (runq checkpoints, GGUF
 *                       Q8_0 tensors) instead of matmulRows: each work-group quantizes its input once for all its rows, so
 *                       these gain from more rows where the float kernels lose (a slice of fewer lanes reads a float row
 *                       in shorter runs)
 */
public record TornadoSettings(int matmulLocal, int matmulRows, int attentionLocal, int quantizeLocal, int normPartials, int normLocal,
                              long memoryLimit, int attentionSplits, int attentionChunk, boolean cudaGraph, int graphLayers,
                              int q8Rows) {

    static final String RESOURCE = "/tornado-config/llama2j-tornado.properties";
    static final String PREFIX = "llama2j.tornado.";

    public TornadoSettings {
        pow2("matmul.local", matmulLocal);
        pow2("matmul.rows", matmulRows);
        if (matmulRows > matmulLocal) {
            throw new Llama2jException("TornadoVM setting matmul.rows is " + matmulRows + ", more than matmul.local (" + matmulLocal
                    + "): each row needs at least one work-item", Llama2jException.BAD_USAGE);
        }
        pow2("q8.rows", q8Rows);
        if (q8Rows > matmulLocal) {
            throw new Llama2jException("TornadoVM setting q8.rows is " + q8Rows + ", more than matmul.local (" + matmulLocal
                    + "): each row needs at least one work-item", Llama2jException.BAD_USAGE);
        }
        pow2("attention.local", attentionLocal);
        pow2("quantize.local", quantizeLocal);
        pow2("norm.local", normLocal);
        if (normPartials < 1 || normPartials > 4096) {
            throw new Llama2jException("TornadoVM setting norm.partials is " + normPartials + ", must be in [1, 4096]",
                    Llama2jException.BAD_USAGE);
        }
        if (attentionSplits < 1 || attentionSplits > MAX_SPLITS) {
            throw new Llama2jException("TornadoVM setting attention.splits is " + attentionSplits + ", must be in [1, " + MAX_SPLITS
                    + "]", Llama2jException.BAD_USAGE);
        }
        if (attentionChunk < 1) {
            throw new Llama2jException("TornadoVM setting attention.chunk is " + attentionChunk + ", must be at least 1",
                    Llama2jException.BAD_USAGE);
        }
        if (graphLayers < 1 || graphLayers > MAX_GRAPH_LAYERS) {
            throw new Llama2jException("TornadoVM setting graph.layers is " + graphLayers + ", must be in [1, " + MAX_GRAPH_LAYERS
                    + "]", Llama2jException.BAD_USAGE);
        }
        if (memoryLimit < 0) {
            throw new Llama2jException("TornadoVM setting memory.limit is " + memoryLimit + ", must be >= 0",
                    Llama2jException.BAD_USAGE);
        }
    }

    /** Most work-groups per head of the split attention. */
    public static final int MAX_SPLITS = 64;

    /** Most layers per task graph (TornadoVM's task record holds fewer of this project's layers anyway). */
    public static final int MAX_GRAPH_LAYERS = 1024;

    /** Layers per task graph where the device profile does not say (ForwardGraph's former fixed value). */
    public static final int DEFAULT_GRAPH_LAYERS = 2;

    /** Settings with the attention unsplit (one work-group per head), without CUDA graphs. */
    public TornadoSettings(int matmulLocal, int matmulRows, int attentionLocal, int quantizeLocal, int normPartials, int normLocal,
                           long memoryLimit) {
        this(matmulLocal, matmulRows, attentionLocal, quantizeLocal, normPartials, normLocal, memoryLimit, 1, 256);
    }

    /** Settings without CUDA graphs, 2 layers per graph, as many rows per Q8_0 work-group as per float one. */
    public TornadoSettings(int matmulLocal, int matmulRows, int attentionLocal, int quantizeLocal, int normPartials, int normLocal,
                           long memoryLimit, int attentionSplits, int attentionChunk) {
        this(matmulLocal, matmulRows, attentionLocal, quantizeLocal, normPartials, normLocal, memoryLimit, attentionSplits,
                attentionChunk, false, DEFAULT_GRAPH_LAYERS, matmulRows);
    }

    private static void pow2(String key, int v) {
        if (v < 1 || v > TransformerKernels.MAX_LOCAL || Integer.bitCount(v) != 1) {
            throw new Llama2jException("TornadoVM setting " + key + " is " + v + ", must be a power of two in [1, "
                    + TransformerKernels.MAX_LOCAL + "]", Llama2jException.BAD_USAGE);
        }
    }

    public TornadoSettings withMemoryLimit(long bytes) {
        return new TornadoSettings(matmulLocal, matmulRows, attentionLocal, quantizeLocal, normPartials, normLocal, bytes,
                attentionSplits, attentionChunk, cudaGraph, graphLayers, q8Rows);
    }

    /** These settings with {@code rows} rows per matmul work-group, for the float and the Q8_0 kernels alike. */
    public TornadoSettings withMatmulRows(int rows) {
        return new TornadoSettings(matmulLocal, rows, attentionLocal, quantizeLocal, normPartials, normLocal, memoryLimit,
                attentionSplits, attentionChunk, cudaGraph, graphLayers, rows);
    }

    /** These settings with the one-token attention split into at most {@code splits} chunks of at least {@code chunk} positions. */
    public TornadoSettings withAttentionSplit(int splits, int chunk) {
        return new TornadoSettings(matmulLocal, matmulRows, attentionLocal, quantizeLocal, normPartials, normLocal, memoryLimit, splits,
                chunk, cudaGraph, graphLayers, q8Rows);
    }

    /** These settings with CUDA graphs on or off. */
    public TornadoSettings withCudaGraph(boolean on) {
        return new TornadoSettings(matmulLocal, matmulRows, attentionLocal, quantizeLocal, normPartials, normLocal, memoryLimit,
                attentionSplits, attentionChunk, on, graphLayers, q8Rows);
    }

    /** These settings with at most {@code layers} layers per task graph. */
    public TornadoSettings withGraphLayers(int layers) {
        return new TornadoSettings(matmulLocal, matmulRows, attentionLocal, quantizeLocal, normPartials, normLocal, memoryLimit,
                attentionSplits, attentionChunk, cudaGraph, layers, q8Rows);
    }

    /** The largest work-group any kernel uses. */
    public int maxLocal() {
        return Math.max(Math.max(matmulLocal, attentionLocal), Math.max(Math.max(quantizeLocal, normLocal), 1));
    }

    /** Settings for a device of {@code deviceType} (TornadoVM's type name: GPU, CPU, ...). */
    public static TornadoSettings load(String deviceType) {
        Properties p = read();
        String type = deviceType.toUpperCase(Locale.ROOT);
        return new TornadoSettings(
                intValue(p, "matmul.local", type),
                intValue(p, "matmul.rows", type),
                intValue(p, "attention.local", type),
                intValue(p, "quantize.local", type),
                intValue(p, "norm.partials", type),
                intValue(p, "norm.local", type),
                size(p, "memory.limit"),
                intValue(p, "attention.splits", type),
                intValue(p, "attention.chunk", type),
                booleanValue(p, "cuda.graph", type),
                intValue(p, "graph.layers", type),
                intValue(p, "q8.rows", type));
    }

    private static Properties read() {
        Properties p = new Properties();
        String file = System.getProperty(PREFIX + "config");
        try {
            if (file != null) {
                try (Reader r = Files.newBufferedReader(Path.of(file), StandardCharsets.UTF_8)) {
                    p.load(r);
                }
            } else {
                try (InputStream in = TornadoSettings.class.getResourceAsStream(RESOURCE)) {
                    if (in == null) {
                        throw new Llama2jException("TornadoVM settings " + RESOURCE + " missing from the class path",
                                Llama2jException.UNAVAILABLE);
                    }
                    p.load(in);
                }
            }
        } catch (IOException e) {
            throw new Llama2jException("cannot read TornadoVM settings " + (file != null ? file : RESOURCE) + ": "
                    + e.getMessage(), Llama2jException.IO_FAILURE, e);
        }
        return p;
    }

    /** A setting's value and where it came from (for errors), or null value when nothing sets it. */
    private record Found(String value, String where) {
    }

    /** {@code -Dllama2j.tornado.KEY}, else {@code KEY.TYPE}, else {@code KEY.default}. */
    private static Found find(Properties p, String key, String type) {
        String v = System.getProperty(PREFIX + key);
        if (v != null) {
            return new Found(v, "-D" + PREFIX + key);
        }
        v = p.getProperty(key + "." + type);
        return v != null ? new Found(v, key + "." + type) : new Found(p.getProperty(key + ".default"), key + ".default");
    }

    private static boolean booleanValue(Properties p, String key, String type) {
        Found f = find(p, key, type);
        if (f.value() == null) {
            return false;
        }
        return switch (f.value().trim().toLowerCase(Locale.ROOT)) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new Llama2jException("TornadoVM setting " + f.where() + " is '" + f.value() + "', not true or false",
                    Llama2jException.BAD_USAGE);
        };
    }

    private static int intValue(Properties p, String key, String type) {
        Found f = find(p, key, type);
        String v = f.value();
        String where = f.where();
        if (v == null) {
            throw new Llama2jException("TornadoVM setting " + key + " has no value for device type " + type
                    + " and no default", Llama2jException.BAD_USAGE);
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new Llama2jException("TornadoVM setting " + where + " is '" + v + "', not an integer",
                    Llama2jException.BAD_USAGE);
        }
    }

    private static long size(Properties p, String key) {
        String v = System.getProperty(PREFIX + key, p.getProperty(key));
        return v == null ? 0 : parseSize(key, v);
    }

    /** "123", "512MB", "2GB", "1.5GiB" → bytes (binary units). */
    static long parseSize(String key, String text) {
        String t = text.trim().toUpperCase(Locale.ROOT).replace("IB", "B");
        long unit = 1;
        if (t.endsWith("KB")) {
            unit = 1L << 10;
        } else if (t.endsWith("MB")) {
            unit = 1L << 20;
        } else if (t.endsWith("GB")) {
            unit = 1L << 30;
        } else if (t.endsWith("TB")) {
            unit = 1L << 40;
        }
        String num = unit == 1 ? (t.endsWith("B") ? t.substring(0, t.length() - 1) : t) : t.substring(0, t.length() - 2);
        try {
            double d = Double.parseDouble(num.trim());
            if (!(d >= 0)) {
                throw new NumberFormatException();
            }
            return (long) (d * unit);
        } catch (NumberFormatException e) {
            throw new Llama2jException("TornadoVM setting " + key + " is '" + text + "', not a size like 512MB or 2GB",
                    Llama2jException.BAD_USAGE);
        }
    }
}
