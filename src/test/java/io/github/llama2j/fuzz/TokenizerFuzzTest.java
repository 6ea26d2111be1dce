package io.github.llama2j.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.tokenizer.Tokenizer;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Fuzzes the tokenizer: the tokenizer.bin reader on arbitrary files (then encode and decode with
 * whatever vocabulary it held), and encode/decode on arbitrary text with the real vocabularies
 * (tok512.bin and Llama 2's tokenizer.bin from $LLAMA2J_TEST_MODELS; a small generated vocabulary
 * of the same shape when that is not set).
 *
 * <p>The round-trip properties, for a text {@code s} (a C string: its bytes up to the first NUL)
 * and {@code ids = encode(s, bos=false, eos=false)}:
 * <ol>
 *   <li><b>lossless</b>: the pieces of {@code ids}, with each byte token {@code <0xHH>} read as its
 *       byte, concatenate to {@code " " + s} (the dummy prefix, then s), for every byte string s;</li>
 *   <li><b>printed</b>: for valid UTF-8 s, what llama2.c's generate() prints for BOS then ids
 *       ({@link Tokenizer#decodeStream}) is s without the code points that safe_printf drops: an
 *       ASCII control character other than \t \n \v \f \r, and a non-ASCII code point that is not
 *       a vocabulary piece of its own (encode spells it as byte tokens, each printed as a lone
 *       non-printable byte, which safe_printf skips). The leading space after BOS is the dummy
 *       prefix, which decode removes.</li>
 * </ol>
 * Texts are cut to {@value #MAX_TEXT} bytes: encode merges in quadratic time, as run.c does.
 */
class TokenizerFuzzTest {
    static final String NAME = "fuzz-tok.bin";
    static final int MAX_TEXT = 512;

    static {
        // Load the classes involved once, so the allocation budget measures inputs, not class loading.
        Tokenizer t = Tokenizer.parse(NAME, TinyFiles.tokenizer(), TinyFiles.tokenizerPieces().size());
        t.decodeStream(t.encode("warm up é€ \u0001".getBytes(StandardCharsets.UTF_8), true, true));
    }

    // ------------------------------------------------------------------ any tokenizer file

    @MethodSource("fileSeeds")
    @FuzzTest(maxDuration = "10m")
    void anyTokenizerFile(byte[] data) {
        int held = referenceTokenCount(data);
        if (held <= Tokenizer.EOS) { // malformed, or no room for BOS and EOS
            if (held > 0) {
                expectRejected(data, held);
            }
            FuzzProperties.withAllocationBudget("parse", data.length, () -> {
                expectRejected(data, 1);
                expectRejected(data, Integer.MAX_VALUE);
                return null;
            });
            return;
        }
        Tokenizer tok = FuzzProperties.withAllocationBudget("parse", data.length, () -> {
            try {
                return Tokenizer.parse(NAME, data, held);
            } catch (Llama2jException e) {
                throw new AssertionError("well-formed tokenizer of " + held + " tokens rejected: " + e.getMessage(), e);
            }
        });
        expectRejected(data, held + 1);
        expectRejected(data, held - 1);

        // Encode a piece of the input itself with this vocabulary, then decode every id that came out.
        byte[] text = Arrays.copyOfRange(data, Math.max(0, data.length - 64), data.length);
        FuzzProperties.withAllocationBudget("encode/decode", data.length, () -> {
            for (int flags = 0; flags < 4; flags++) {
                int[] ids;
                try {
                    ids = tok.encode(text, (flags & 1) != 0, (flags & 2) != 0);
                } catch (Llama2jException e) {
                    FuzzProperties.assertClearError(e, null); // a vocabulary without " " or byte tokens
                    continue;
                }
                int prev = Tokenizer.BOS;
                for (int id : ids) {
                    FuzzProperties.check(id >= 0 && id < held, "encode produced id " + id + " outside [0, " + held + ")");
                    tok.decodePrintable(prev, id);
                    prev = id;
                }
            }
            return null;
        });
        for (int id = 0; id < Math.min(held, 1024); id++) {
            tok.decodePrintable(Tokenizer.BOS, id);
            tok.decodePrintable(id, id);
        }
    }

    private static void expectRejected(byte[] data, int vocabSize) {
        try {
            Tokenizer.parse(NAME, data, vocabSize);
        } catch (Llama2jException e) {
            FuzzProperties.assertClearError(e, NAME);
            return;
        }
        throw new AssertionError("tokenizer accepted with vocab_size " + vocabSize);
    }

    /**
     * An independent reading of the format: uint32 max_token_length &gt; 0, then records of float
     * score, int32 length in [0, max_token_length] and that many bytes, ending exactly at the end of
     * the file. Returns the number of records, or -1 if the file is malformed.
     */
    static int referenceTokenCount(byte[] data) {
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < 4) {
            return -1;
        }
        long maxLen = b.getInt();
        if (maxLen <= 0) {
            return -1;
        }
        int count = 0;
        while (b.hasRemaining()) {
            if (b.remaining() < 8) {
                return -1;
            }
            b.getFloat();
            long len = b.getInt();
            if (len < 0 || len > maxLen || len > b.remaining()) {
                return -1;
            }
            b.position(b.position() + (int) len);
            count++;
        }
        return count;
    }

    static Stream<Arguments> fileSeeds() {
        List<byte[]> seeds = new ArrayList<>();
        byte[] tiny = TinyFiles.tokenizer();
        seeds.add(tiny);
        seeds.add(Arrays.copyOf(tiny, 4));
        seeds.add(Arrays.copyOf(tiny, 40));
        seeds.add(Arrays.copyOf(tiny, tiny.length - 1));
        // no " " and no byte tokens; a token holding a NUL; a duplicate piece; a one-token vocabulary
        String z = "00000000" + "01000000" + "7a";
        seeds.add(HexFormat.of().parseHex("02000000" + "0000803f" + "01000000" + "61" + "00000000" + "02000000" + "6162" + z));
        seeds.add(HexFormat.of().parseHex("04000000" + "00000000" + "03000000" + "610062" + "00000000" + "01000000" + "20" + z));
        seeds.add(HexFormat.of().parseHex("01000000" + "00000000" + "01000000" + "20" + "0000803f" + "01000000" + "20" + z));
        seeds.add(HexFormat.of().parseHex("00000002" + "00000000" + "01000000" + "20"));
        return seeds.stream().map(b -> Arguments.of((Object) b));
    }

    // ------------------------------------------------------------------ round trips with real vocabularies

    @MethodSource("textSeeds")
    @FuzzTest(maxDuration = "10m")
    void roundTripTok512(byte[] text) {
        roundTrip(Vocabularies.TOK512, text);
    }

    @MethodSource("textSeeds")
    @FuzzTest(maxDuration = "10m")
    void roundTripLlama2(byte[] text) {
        roundTrip(Vocabularies.LLAMA2, text);
    }

    static Stream<Arguments> textSeeds() {
        return Stream.of("", "Once upon a time", " leading space", "two  spaces\tand\ttabs\n\nnewlines",
                        "héllo wörld € 日本語 🙂", "control \u0001\u001b\u007f chars", "<0x41> <0xZZ> <0x", "a\u0000after NUL")
                .map(s -> Arguments.of((Object) s.getBytes(StandardCharsets.UTF_8)));
    }

    static void roundTrip(Vocabulary vocab, byte[] input) {
        Tokenizer tok = vocab.tokenizer();
        byte[] s = cString(input, MAX_TEXT);
        int[] ids = FuzzProperties.withAllocationBudget("encode", s.length, () -> tok.encode(s, false, false));
        if (s.length == 0) {
            FuzzProperties.check(ids.length == 0, "empty text encoded to " + ids.length + " tokens");
            return;
        }
        ByteArrayOutputStream lossless = new ByteArrayOutputStream();
        for (int id : ids) {
            FuzzProperties.check(id >= 0 && id < tok.vocabSize(), "id " + id + " outside the vocabulary");
            lossless.writeBytes(rawBytes(tok.piece(id)));
        }
        byte[] expected = concat(new byte[]{' '}, s);
        if (!Arrays.equals(lossless.toByteArray(), expected)) {
            throw new AssertionError("pieces of encode(" + hex(s) + ") = " + Arrays.toString(ids) + " spell "
                    + hex(lossless.toByteArray()) + ", not ' ' + the text");
        }
        if (!validUtf8(s)) {
            return;
        }
        int[] withBos = new int[ids.length + 1];
        withBos[0] = Tokenizer.BOS;
        System.arraycopy(ids, 0, withBos, 1, ids.length);
        byte[] printed = tok.decodeStream(withBos);
        byte[] wanted = printable(s, vocab.pieces());
        if (!Arrays.equals(printed, wanted)) {
            throw new AssertionError("generate() would print " + hex(printed) + " for " + hex(s) + " (ids "
                    + Arrays.toString(ids) + "), expected " + hex(wanted));
        }
    }

    /** A byte token's byte, else the piece itself. */
    static byte[] rawBytes(byte[] piece) {
        if (piece.length == 6 && piece[0] == '<' && piece[1] == '0' && piece[2] == 'x' && piece[5] == '>'
                && isUpperHex(piece[3]) && isUpperHex(piece[4])) {
            return new byte[]{(byte) Integer.parseInt(new String(piece, 3, 2, StandardCharsets.US_ASCII), 16)};
        }
        return piece;
    }

    private static boolean isUpperHex(byte b) {
        return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'F');
    }

    /** s without the code points safe_printf drops (see the class comment). */
    static byte[] printable(byte[] s, Set<String> pieces) {
        String text = new String(s, StandardCharsets.UTF_8);
        StringBuilder out = new StringBuilder();
        text.codePoints().forEach(cp -> {
            boolean keep;
            if (cp < 0x80) {
                keep = (cp >= 0x20 && cp <= 0x7E) || cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
            } else {
                keep = pieces.contains(new String(Character.toChars(cp)));
            }
            if (keep) {
                out.appendCodePoint(cp);
            }
        });
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    static byte[] cString(byte[] input, int max) {
        int n = 0;
        while (n < input.length && n < max && input[n] != 0) {
            n++;
        }
        return Arrays.copyOf(input, n);
    }

    static boolean validUtf8(byte[] s) {
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(s));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    /** A loaded vocabulary and the set of its pieces (as strings). */
    record Vocabulary(Tokenizer tokenizer, Set<String> pieces) {
        static Vocabulary of(Tokenizer tok) {
            Set<String> pieces = new HashSet<>();
            for (int i = 0; i < tok.vocabSize(); i++) {
                pieces.add(new String(tok.piece(i), StandardCharsets.UTF_8));
            }
            return new Vocabulary(tok, pieces);
        }
    }

    /** The real vocabularies when $LLAMA2J_TEST_MODELS is set, else the generated one. */
    static final class Vocabularies {
        static final Vocabulary TOK512 = load("tok512.bin", 512);
        static final Vocabulary LLAMA2 = load("tokenizer.bin", 32000);

        private static Vocabulary load(String file, int vocabSize) {
            String dir = System.getenv("LLAMA2J_TEST_MODELS");
            Path p = dir == null || dir.isBlank() ? null : Path.of(dir, file);
            try {
                if (p != null && Files.isRegularFile(p)) {
                    return Vocabulary.of(Tokenizer.parse(file, Files.readAllBytes(p), vocabSize));
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return Vocabulary.of(Tokenizer.parse("generated", TinyFiles.tokenizer(), TinyFiles.tokenizerPieces().size()));
        }
    }
}
