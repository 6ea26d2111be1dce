package io.github.llama2j.cli;

import io.github.llama2j.model.CheckpointWriter;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.ModelShapes;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KnownModelsTest {

    @Test
    void pinnedSizesAreThoseOfTheV0LayoutOfTheShapes() {
        for (String name : KnownModels.names()) {
            KnownModels.KnownModel m = KnownModels.byName(name).orElseThrow();
            long expected = CheckpointWriter.fileSize(name, ModelShapes.byName(name).orElseThrow(), ModelFormat.LEGACY_V0, 0);
            assertEquals(expected, m.weights().size(), name);
        }
    }

    @Test
    void pinnedChecksumsMatchTheSharedCopies() throws IOException {
        for (KnownModels.RemoteFile f : new KnownModels.RemoteFile[]{KnownModels.byName("stories260K").orElseThrow().weights(),
                KnownModels.byName("stories260K").orElseThrow().tokenizer(), KnownModels.LLAMA2_TOKENIZER}) {
            Path local = CliTestSupport.sharedModel(f.fileName());
            assertEquals(f.size(), Files.size(local), f.fileName());
            assertEquals(f.sha256(), Downloader.sha256(local), f.fileName());
        }
    }

    @Test
    void urls() {
        KnownModels.KnownModel s260 = KnownModels.byName("stories260K.bin").orElseThrow();
        assertEquals("https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin", s260.weights().url(null));
        assertEquals("https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin", s260.tokenizer().url(null));
        KnownModels.KnownModel s15 = KnownModels.byName("stories15M").orElseThrow();
        assertEquals("https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin", s15.weights().url(null));
        assertEquals("https://raw.githubusercontent.com/karpathy/llama2.c/master/tokenizer.bin", s15.tokenizer().url(null));
        assertEquals("http://h:1/x/tokenizer.bin", s15.tokenizer().url("http://h:1/x/"));
        assertEquals("http://h:1/x/stories15M.bin", s15.weights().url("http://h:1/x"));
        assertTrue(KnownModels.byName("stories7B").isEmpty());
    }
}
