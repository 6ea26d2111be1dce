package io.github.llama2j.fuzz;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code -z /dev/zero}: Tokenizer.load read the whole "file" into one array, which for an endless
 * device ends in OutOfMemoryError after 2 GiB. Seen while writing the CLI fuzzer, whose containment
 * keeps fuzzed paths away from existing files (so it could not reach this itself).
 */
class TokenizerLoadFindingsTest {

    @Test
    void endlessDeviceIsRefused() {
        Path zero = Path.of("/dev/zero");
        assumeTrue(Files.isReadable(zero), "needs /dev/zero");
        Llama2jException e = assertThrows(Llama2jException.class, () -> Tokenizer.load(zero, 512));
        assertEquals("zero: larger than 64 MiB, not a tokenizer file", e.getMessage());
    }
}
