package io.github.llama2j.cli;

import io.github.llama2j.InputFiles;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.model.CheckpointWriter;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.model.Tensor;
import io.github.llama2j.model.WeightSource;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code llama2j quantize}: float32 (v0/v1) to Q8_0 (v2), with export.py --version 2's arithmetic. */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = {"Quantize a float32 checkpoint (v0 or v1) to Q8_0 (v2, as runq.c reads), exactly as llama2.c's"
                + " export.py --version 2 does: per group of G consecutive weights of a row, scale = max|w| / 127 and"
                + " q = round-half-even(w / scale), in float32.",
                "Unlike export.py, the default group size is the largest of 64, 32, 16, 8, 4, 2, 1 that divides both dim and"
                        + " hidden_dim (export.py only checks dim, and runq.c then silently ignores the tail of every w2 row);"
                        + " an explicit --group-size that does not divide both is refused.",
                "Prints the largest absolute quantization error |w - q*scale| per tensor kind and overall."
                        + " The file is written to OUT.tmp and renamed to OUT when complete; OUT may not be IN.",
                "GGUF input is refused: a v2 checkpoint cannot hold all a GGUF model holds (rope theta and scaling,"
                        + " biases, q/k norms, NEOX RoPE); llama.cpp's llama-quantize quantizes GGUF files."},
        footer = {"",
                "Examples:",
                "  llama2j quantize stories110M.bin stories110M_q80.bin",
                "  llama2j quantize stories15M stories15M_q80.bin --group-size 32",
                "  llama2j quantize tiny.bin tiny_q80.bin --group-size 4",
                ModelResolver.NAMES_HELP})
public final class QuantizeCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "IN", description = "Float32 checkpoint (v0 or v1), path or model name.")
    String in;

    @Parameters(index = "1", paramLabel = "OUT", description = "v2 (Q8_0) checkpoint to write.")
    Path out;

    @Option(names = "--group-size", paramLabel = "G", description = "Q8_0 group size (default: the largest of 64, 32, ..., 1 dividing dim and hidden_dim).")
    Integer groupSize;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        Path inPath = ModelResolver.resolve(in, err);
        String inName = InputFiles.name(inPath);
        if (GgufFile.isGguf(inPath)) {
            // GGUF holds what a v2 checkpoint cannot (rope theta and scaling, biases, q/k norms, NEOX RoPE, other
            // types): converting it would silently give a different model.
            throw new Llama2jException(inName + ": is GGUF: quantize reads float32 llama2.c checkpoints (v0 or v1);"
                    + " to quantize a GGUF model use llama.cpp's llama-quantize", Llama2jException.BAD_INPUT);
        }
        if (isSameFile(inPath, out)) {
            throw new Llama2jException(out + ": is IN itself; quantize does not overwrite its input, give another OUT", Llama2jException.BAD_USAGE);
        }
        long inBytes = InputFiles.size(inPath, "a model file");
        try (Model m = ModelLoader.load(inPath)) {
            if (m.format() == ModelFormat.V2_Q8) {
                throw new Llama2jException(inName + ": is " + m.format().description()
                        + ", already quantized: quantize reads float32 (v0 or v1) checkpoints", Llama2jException.BAD_INPUT);
            }
            Configuration c = m.config();
            int gs = groupSize != null ? groupSize : CheckpointWriter.defaultGroupSize(c.dim(), c.hiddenDim());
            CheckpointWriter.checkGroupSize(inName, c, gs);
            long size = CheckpointWriter.fileSize(inName, c, ModelFormat.V2_Q8, gs);
            ProgressBar bar = size >= (256L << 20) ? new ProgressBar(err, "writing " + out.getFileName(), size) : null;
            long t0 = System.nanoTime();
            CheckpointWriter.Result r = CheckpointWriter.write(WeightSource.of(m), ModelFormat.V2_Q8, gs, out,
                    bar == null ? null : bar::update);
            if (bar != null) {
                bar.finish();
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            PrintWriter o = spec.commandLine().getOut();
            o.println(String.format(Locale.ROOT, "quantized %s (%s, %,d bytes) -> %s (%s, group size %d, %,d bytes) in %.2f s",
                    inPath, m.format().description(), inBytes, out, ModelFormat.V2_Q8.description(), gs,
                    r.bytes(), seconds));
            o.println("max |w - q*scale|:");
            for (Map.Entry<Tensor, Float> e : r.maxQuantizationError().entrySet()) {
                o.println(String.format(Locale.ROOT, "  %-16s %.6g", e.getKey().label(), e.getValue()));
            }
            o.println(String.format(Locale.ROOT, "  %-16s %.6g", "overall", r.overallMaxError()));
            o.flush();
        }
        return 0;
    }

    /** Whether {@code out} exists and is {@code in} (the same path, a link to it, or a hard link). */
    private static boolean isSameFile(Path in, Path out) {
        try {
            return Files.exists(out) && Files.isSameFile(in, out);
        } catch (IOException | SecurityException e) {
            return false; // cannot tell: writing OUT will report what is wrong with it
        }
    }
}
