package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.Model;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Finds the tokenizer for a model when -z is not given. */
final class ModelFiles {
    private ModelFiles() {
    }

    /**
     * The tokenizer next to the model: {@code tok<vocab>.bin} (llama2.c's name for custom vocabularies,
     * e.g. tok512.bin for stories260K), then {@code tokenizer.bin} (Llama 2's 32000 tokens).
     */
    static Path tokenizerFor(Model model) {
        Path dir = model.path().toAbsolutePath().getParent();
        List<Path> candidates = new ArrayList<>();
        int vocab = model.config().vocabSize();
        if (vocab != 32000) {
            candidates.add(dir.resolve("tok" + vocab + ".bin"));
        }
        candidates.add(dir.resolve("tokenizer.bin"));
        for (Path p : candidates) {
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        throw new Llama2jException(model.path().getFileName() + ": no tokenizer given (-z) and none found next to it (looked for "
                + String.join(", ", candidates.stream().map(p -> p.getFileName().toString()).toList()) + " in " + dir + ")");
    }
}
