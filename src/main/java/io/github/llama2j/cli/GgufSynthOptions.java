package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.gguf.GgmlType;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.gguf.GgufWriter;
import io.github.llama2j.model.Architecture;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.GgufSynth;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/** {@code llama2j synth --format gguf}: the options of {@link SynthCommand} turned into a {@link GgufSynth} and written. */
final class GgufSynthOptions {
    private final SynthCommand c;

    GgufSynthOptions(SynthCommand c) {
        this.c = c;
    }

    int write(String name) {
        if (c.groupSize != null) {
            throw usage(name + ": --group-size applies to --format v2 only");
        }
        if (!(c.std >= 0) || Double.isInfinite(c.std)) {
            throw usage(name + ": --std is " + c.std + ", must be a finite number >= 0");
        }
        GgufSynth.FileType type = c.type == null ? GgufSynth.FileType.F16 : GgufSynth.FileType.byName(c.type).orElseThrow(() ->
                usage(name + ": --type is '" + c.type + "', must be f32, f16, bf16, q8_0, q4_0 or q4_k_m"));
        GgufSynth.Shape base = null;
        if (c.shape != null) {
            base = GgufSynth.preset(c.shape).orElseThrow(() -> usage(name + ": --shape is '" + c.shape
                    + "', with --format gguf must be one of " + String.join(", ", GgufSynth.presetNames())));
        }
        String arch = c.arch != null ? c.arch : base != null ? base.arch() : "llama";
        if (Architecture.byGgufName(arch).isEmpty()) {
            throw usage(name + ": --arch is '" + arch + "', must be one of " + Architecture.supported());
        }
        if (base != null && !arch.equals(base.arch())) {
            throw usage(name + ": --arch " + arch + " differs from --shape " + c.shape + " (" + base.arch() + ")");
        }
        Integer vocabSize = null;
        Path vocabPath = null;
        if (c.vocab != null) {
            vocabSize = SynthCommand.parseInt(c.vocab).orElse(null);
            vocabPath = vocabSize == null ? Path.of(c.vocab) : null;
        }
        try (GgufFile vocab = vocabPath == null ? null : openVocab(name, vocabPath)) {
            int tokens = 0;
            if (vocab != null) {
                if (!(vocab.metadata().get("tokenizer.ggml.tokens") instanceof String[] t)) {
                    throw usage(name + ": --vocab " + vocab.name() + " has no tokenizer.ggml.tokens");
                }
                tokens = t.length;
            }
            boolean keep = base != null && c.dim == null && c.heads == null; // the preset's head layout
            int d = SynthCommand.pick("--dim", c.dim, base == null ? null : base.dim());
            int h = SynthCommand.pick("--hidden-dim", c.hiddenDim, base == null ? null : base.hidden());
            int l = SynthCommand.pick("--layers", c.layers, base == null ? null : base.layers());
            int n = SynthCommand.pick("--heads", c.heads, base == null ? null : base.heads());
            int k = SynthCommand.pick("--kv-heads", c.kvHeads, base != null && c.heads == null ? base.kvHeads() : n);
            int v = SynthCommand.pick("--vocab", vocabSize, base != null ? Integer.valueOf(base.vocab()) : vocab != null ? tokens : null);
            int ctx = SynthCommand.pick("--seq-len", c.seqLen, base == null ? null : base.context());
            String[] fields = {"--dim", "--hidden-dim", "--layers", "--heads", "--kv-heads", "--vocab", "--seq-len"};
            int[] values = {d, h, l, n, k, v, ctx};
            for (int i = 0; i < fields.length; i++) {
                if (values[i] <= 0) {
                    throw usage(name + ": " + fields[i] + " is " + values[i] + ", must be positive");
                }
            }
            if (l > GgufModelLoader.MAX_LAYERS) {
                // checked before the per-layer tensor list is built: 2^31 layers took the heap rather than an error
                throw usage(name + ": --layers is " + l + ", llama2j reads GGUF models of at most " + GgufModelLoader.MAX_LAYERS
                        + " layers");
            }
            if (k > n || n % k != 0) {
                throw usage(name + ": --kv-heads " + k + " does not divide --heads " + n);
            }
            int hs;
            if (c.headSize != null) {
                hs = c.headSize;
            } else if (keep) {
                hs = base.headSize();
            } else if (d % n != 0) {
                throw usage(name + ": --heads " + n + " does not divide --dim " + d + " (give --head-size)");
            } else {
                hs = d / n;
            }
            if (hs <= 0 || hs % 2 != 0) {
                throw usage(name + ": head size " + hs + " must be positive and even (RoPE rotates pairs)");
            }
            if (tokens > v) {
                throw usage(name + ": --vocab " + vocab.name() + " has " + tokens + " tokens, more than the vocabulary size " + v);
            }
            float theta = c.ropeTheta != null ? c.ropeTheta : base != null ? base.ropeTheta() : 10000f;
            float eps = c.rmsEps != null ? c.rmsEps : base != null ? base.rmsEps() : 1e-5f;
            if (!(theta > 1) || Float.isInfinite(theta)) {
                throw usage(name + ": --rope-theta is " + theta + ", must be above 1");
            }
            if (!(eps > 0) || eps > 1) {
                throw usage(name + ": --rms-eps is " + eps + ", must be in (0, 1]");
            }
            boolean tied = !c.unshared && (base == null || base.tied());
            GgufSynth.Shape shape = new GgufSynth.Shape(arch, d, h, l, n, k, hs, v, ctx, theta, eps, tied,
                    base == null ? null : base.llama3Rope());
            GgufSynth synth = new GgufSynth(shape, type, c.seed, c.std);
            Map<String, Integer> types = new TreeMap<>();
            for (GgufSynth.TensorSpec t : GgufSynth.tensors(shape)) {
                GgmlType gt = GgufSynth.tensorType(type, shape, t);
                if (t.cols() % gt.blockSize() != 0) {
                    throw usage(name + ": --type " + type.displayName() + " needs rows that are multiples of " + gt.blockSize()
                            + ", tensor '" + t.name() + "' has " + t.cols() + " columns");
                }
                types.merge(gt.displayName(), 1, Integer::sum);
            }
            GgufWriter w = new GgufWriter();
            synth.writeMetadata(w, "llama2j synth " + (c.shape != null ? c.shape.toLowerCase(Locale.ROOT) : arch) + " "
                    + type.displayName() + " seed " + c.seed, vocab);
            synth.addTensors(w);
            return writeFile(w, shape, type, types, vocab == null ? null : vocab.name());
        }
    }

    private int writeFile(GgufWriter w, GgufSynth.Shape s, GgufSynth.FileType type, Map<String, Integer> types, String vocab) {
        PrintWriter err = c.spec.commandLine().getErr();
        String name = String.valueOf(c.out.getFileName());
        long size = w.fileSize();
        ProgressBar bar = size >= SynthCommand.LARGE ? new ProgressBar(err, "writing " + name, size) : null;
        long t0 = System.nanoTime();
        long bytes = w.write(c.out, bar == null ? null : bar::update);
        if (bar != null) {
            bar.finish();
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        PrintWriter o = c.spec.commandLine().getOut();
        o.println(String.format(Locale.ROOT, "wrote %s: GGUF %s %s, dim %d, ffn %d, %d layers, %d heads, %d kv heads, head size %d,"
                        + " vocab %d%s, context %d, rope theta %s, rms eps %s, %s classifier%s; tensors %s; %,d parameters,"
                        + " %,d bytes in %.2f s (%.0f MB/s)",
                c.out, type.displayName(), s.arch(), s.dim(), s.hidden(), s.layers(), s.heads(), s.kvHeads(), s.headSize(), s.vocab(),
                vocab == null ? " (no tokenizer)" : " (tokenizer of " + vocab + ")", s.context(), s.ropeTheta(), s.rmsEps(),
                s.tied() ? "tied" : "separate", s.llama3Rope() == null ? "" : ", llama3 rope_freqs", types, s.parameterCount(),
                bytes, seconds, bytes / 1e6 / seconds));
        o.flush();
        return 0;
    }

    /** The vocabulary file, its errors prefixed with the option. */
    private static GgufFile openVocab(String name, Path path) {
        try {
            return GgufFile.open(path);
        } catch (Llama2jException e) {
            throw new Llama2jException(name + ": --vocab " + e.getMessage(), e.exitCode(), e);
        }
    }

    private static Llama2jException usage(String message) {
        return new Llama2jException(message, Llama2jException.BAD_USAGE);
    }
}
