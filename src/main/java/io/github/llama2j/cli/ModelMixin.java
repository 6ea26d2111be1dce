package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;

import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.tokenizer.Tokenizer;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;

/** The model options shared by run, bench and profile: MODEL and its tokenizer. */
public final class ModelMixin {
    @Parameters(index = "0", paramLabel = "MODEL",
            description = "Checkpoint path, a name (stories260K, stories15M, stories42M, stories110M) or hf:OWNER/REPO/FILE.")
    String model;

    @Option(names = {"-z", "--tokenizer"}, paramLabel = "FILE",
            description = "Tokenizer file; default: tok<vocab>.bin or tokenizer.bin next to the model"
                    + " (bench and profile feed token ids: there it is only checked against the model).")
    Path tokenizerPath;

    /** The model file MODEL names, downloaded first if needed (progress on {@code log}). */
    Path resolve(PrintWriter log) {
        return ModelResolver.resolve(model, log);
    }

    /**
     * The model, loaded; with -z, that tokenizer is loaded too, so that one that does not fit the model
     * fails clearly (for commands that feed token ids and need no tokenizer).
     */
    Model loadChecked(PrintWriter log) {
        Model m = ModelLoader.load(resolve(log));
        try {
            checkTokenizer(m);
            return m;
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    /** The tokenizer given with -z, or the one found next to the model. */
    Tokenizer tokenizer(Model m) {
        return Tokenizer.load(tokenizerPath != null ? tokenizerPath : ModelFiles.tokenizerFor(m), m.config().vocabSize());
    }

    /** Loads the -z tokenizer, if given, so that one that does not fit the model fails clearly. */
    void checkTokenizer(Model m) {
        if (tokenizerPath != null) {
            Tokenizer.load(tokenizerPath, m.config().vocabSize());
        }
    }

    /** -z is for llama2.c checkpoints: refused for a GGUF model. */
    void checkNoTokenizerForGguf() {
        if (tokenizerPath != null) {
            throw new Llama2jException("-z/--tokenizer is for llama2.c checkpoints; a GGUF file carries its own vocabulary",
                    Llama2jException.BAD_USAGE);
        }
    }
}
