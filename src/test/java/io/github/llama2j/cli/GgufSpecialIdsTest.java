package io.github.llama2j.cli;

import io.github.llama2j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static io.github.llama2j.cli.CliTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Special-token ids outside the vocabulary are refused when the tokenizer is loaded, naming the key and the value
 * (llama.cpp warns and uses a default id instead, so another token silently stood in for BOS).
 */
class GgufSpecialIdsTest {
    @TempDir
    Path tmp;

    private static final int T_UINT32 = 4, T_INT32 = 5;

    /** A copy of llama3-tiny-q8_0.gguf (128256 tokens) with {@code key}'s 32-bit value and type replaced. */
    private Path patched(String key, int type, int value) throws IOException {
        byte[] b = Files.readAllBytes(TestData.gguf().resolve("models/llama3-tiny-q8_0.gguf"));
        byte[] k = key.getBytes(StandardCharsets.UTF_8);
        int at = indexOf(b, k);
        assertTrue(at > 0, key + " not in the file");
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int typeAt = at + k.length;
        assertEquals(T_UINT32, buf.getInt(typeAt), key + " is not a uint32");
        buf.putInt(typeAt, type).putInt(typeAt + 4, value);
        Path p = tmp.resolve(key.substring("tokenizer.ggml.".length()) + "_" + Integer.toUnsignedString(value) + ".gguf");
        Files.write(p, b);
        return p;
    }

    private static int indexOf(byte[] b, byte[] k) {
        outer:
        for (int i = 0; i + k.length <= b.length; i++) {
            for (int j = 0; j < k.length; j++) {
                if (b[i + j] != k[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    @Test
    void outOfRangeBosAndEosIdsAreRefusedNamingTheKey() throws IOException {
        Object[][] cases = {
                {"tokenizer.ggml.bos_token_id", T_UINT32, 999_999, "999999"},
                {"tokenizer.ggml.bos_token_id", T_UINT32, 128_256, "128256"}, // one past the last id
                {"tokenizer.ggml.bos_token_id", T_UINT32, -1, "4294967295"},  // 0xFFFFFFFF as uint32
                {"tokenizer.ggml.bos_token_id", T_INT32, -1, "-1"},
                {"tokenizer.ggml.eos_token_id", T_UINT32, (int) 4_000_000_000L, "4000000000"}};
        for (Object[] c : cases) {
            Path model = patched((String) c[0], (int) c[1], (int) c[2]);
            String expected = "llama2j: " + model.getFileName() + ": " + c[0] + " is " + c[3]
                    + ", not a token id (the vocabulary has 128256 tokens, ids 0 to 128255)";
            CliTestSupport.Run r = run("run", model.toString(), "-i", "", "-n", "4", "-t", "0", "--threads", "1");
            assertEquals(2, r.exitCode(), r.err());
            assertEquals(expected, r.errLines());
            CliTestSupport.Run info = run("info", model.toString());
            assertEquals(0, info.exitCode(), info.err());
            assertTrue(info.out().contains(expected.substring(("llama2j: " + model.getFileName() + ": ").length())),
                    "info says why it cannot run:\n" + info.out());
        }
    }

    @Test
    void theLastIdIsAccepted() throws IOException {
        Path model = patched("tokenizer.ggml.bos_token_id", T_UINT32, 128_255);
        CliTestSupport.Run r = run("run", model.toString(), "-i", "", "-n", "2", "-t", "0", "--threads", "1");
        assertEquals(0, r.exitCode(), r.err());
    }
}
