package io.github.llama2j.tokenizer;

import io.github.llama2j.Llama2jException;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * llama2.c's tokenizer, byte for byte: the tokenizer.bin format, run.c's score-greedy BPE
 * {@link #encode}, and its {@link #decode} plus {@code safe_printf} filtering.
 *
 * <p>Pieces are handled as C strings (bytes up to the first NUL), because run.c stores and
 * compares them with strcmp/sprintf; lookups replicate run.c's qsort (stable here) + bsearch
 * over the vocabulary so that even duplicate pieces resolve to the same id.
 */
public final class Tokenizer implements TextTokenizer {
    public static final int BOS = 1;
    public static final int EOS = 2;
    /** Llama 2's 32,000 tokens take 433 KB; no real vocabulary comes near this. */
    static final int MAX_FILE_BYTES = 64 << 20;

    private final byte[][] pieces;   // C-string view of every vocabulary piece
    private final float[] scores;
    private final int maxTokenLength;
    private final int[] sortedIds;   // ids sorted by piece, as run.c's sorted_vocab

    public Tokenizer(byte[][] pieces, float[] scores, int maxTokenLength) {
        this.pieces = pieces;
        this.scores = scores;
        this.maxTokenLength = maxTokenLength;
        Integer[] boxed = new Integer[pieces.length];
        for (int i = 0; i < boxed.length; i++) {
            boxed[i] = i;
        }
        Arrays.sort(boxed, (a, b) -> strcmp(pieces[a], pieces[b])); // stable, like glibc's merge-sort qsort
        this.sortedIds = Arrays.stream(boxed).mapToInt(Integer::intValue).toArray();
    }

    /**
     * Reads a tokenizer.bin: uint32 max_token_length, then per token a float32 score, an int32
     * length and the bytes. The file does not store the vocabulary size; the model gives it, and
     * a file holding a different number of tokens is rejected (wrong tokenizer for the model).
     */
    public static Tokenizer load(Path path, int vocabSize) {
        String name = path.getFileName() == null ? path.toString() : path.getFileName().toString();
        byte[] bytes;
        try (java.io.InputStream in = Files.newInputStream(path)) {
            // Bounded read: the path may be a device or a pipe (-z /dev/zero) that never ends.
            bytes = in.readNBytes(MAX_FILE_BYTES + 1);
            if (bytes.length > MAX_FILE_BYTES) {
                throw new Llama2jException(name + ": larger than " + (MAX_FILE_BYTES >> 20) + " MiB, not a tokenizer file");
            }
        } catch (NoSuchFileException e) {
            throw new Llama2jException(name + ": no such tokenizer file", Llama2jException.BAD_INPUT);
        } catch (IOException e) {
            throw new Llama2jException(name + ": cannot read (" + e.getMessage() + ")", Llama2jException.IO_FAILURE, e);
        }
        return parse(name, bytes, vocabSize);
    }

    /** Parses tokenizer bytes; visible for tests and fuzzing. */
    public static Tokenizer parse(String name, byte[] bytes, int vocabSize) {
        if (vocabSize <= 0) {
            throw new Llama2jException(name + ": vocabulary size " + vocabSize + " must be positive");
        }
        if (vocabSize <= EOS) { // encode emits ids 1 and 2 whatever the vocabulary, as run.c does
            throw new Llama2jException(name + ": vocabulary size " + vocabSize + " is too small: ids " + BOS + " and " + EOS
                    + " are BOS and EOS");
        }
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (buf.remaining() < 4) {
            throw new Llama2jException(name + ": file holds " + bytes.length + " bytes, too small for a tokenizer header");
        }
        int maxLen = buf.getInt();
        if (maxLen <= 0) {
            throw new Llama2jException(name + ": header field max_token_length is " + maxLen + ", must be positive");
        }
        // Count the tokens the file really holds first, so a mismatch names both numbers.
        int held = countTokens(name, buf.duplicate().order(ByteOrder.LITTLE_ENDIAN), maxLen);
        if (held != vocabSize) {
            throw new Llama2jException(name + ": holds " + held + " tokens, the model's vocab_size is " + vocabSize
                    + " (wrong tokenizer for this model?)");
        }
        byte[][] pieces = new byte[vocabSize][];
        float[] scores = new float[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            scores[i] = buf.getFloat();
            int len = buf.getInt();
            byte[] piece = new byte[len];
            buf.get(piece);
            pieces[i] = cString(piece);
        }
        return new Tokenizer(pieces, scores, maxLen);
    }

    private static int countTokens(String name, ByteBuffer buf, int maxLen) {
        int count = 0;
        while (buf.hasRemaining()) {
            if (buf.remaining() < 8) {
                throw new Llama2jException(name + ": token " + count + " is truncated (file ends inside its score/length)");
            }
            buf.getFloat();
            int len = buf.getInt();
            if (len < 0 || len > buf.remaining()) {
                throw new Llama2jException(name + ": token " + count + " has length " + len + ", file has "
                        + buf.remaining() + " bytes left");
            }
            if (len > maxLen) {
                throw new Llama2jException(name + ": token " + count + " has length " + len
                        + ", above header field max_token_length " + maxLen);
            }
            buf.position(buf.position() + len);
            count++;
        }
        return count;
    }

    private static byte[] cString(byte[] raw) {
        for (int i = 0; i < raw.length; i++) {
            if (raw[i] == 0) {
                return Arrays.copyOf(raw, i);
            }
        }
        return raw;
    }

    @Override
    public int vocabSize() {
        return pieces.length;
    }

    public int maxTokenLength() {
        return maxTokenLength;
    }

    public byte[] piece(int id) {
        return pieces[id];
    }

    public float score(int id) {
        return scores[id];
    }

    // ---------------------------------------------------------------- TextTokenizer

    /** run.c's encode (BOS when {@code addSpecial}); run.c knows no special tokens, so {@code parseSpecial} is ignored. */
    @Override
    public int[] tokenize(String text, boolean addSpecial, boolean parseSpecial) {
        return encode(text, addSpecial, false);
    }

    /** The piece's bytes with {@code <0xXX>} as the byte (no BOS space rule, no safe_printf filter: see {@link #decodePrintable}). */
    @Override
    public byte[] tokenToPiece(int token, boolean special) {
        byte[] piece = pieces[token];
        int byteVal = parseBytePiece(piece, 0);
        return byteVal >= 0 ? new byte[]{(byte) byteVal} : piece.clone();
    }

    @Override
    public int bos() {
        return BOS;
    }

    /** EOS ends a chat turn in run.c (its generate() stops at BOS instead). */
    @Override
    public boolean isEndOfGeneration(int token) {
        return token == EOS;
    }

    // ---------------------------------------------------------------- encode

    /** run.c's encode() on a Java string (its UTF-8 bytes). */
    public int[] encode(String text, boolean bos, boolean eos) {
        return encode(text.getBytes(java.nio.charset.StandardCharsets.UTF_8), bos, eos);
    }

    /**
     * run.c's encode(): dummy-prefix space, UTF-8 code points looked up whole or split into
     * byte tokens (id = byte + 3), then repeated merging of the adjacent pair with the highest
     * vocabulary score. The text is a C string: it ends at its first NUL byte.
     */
    public int[] encode(byte[] text, boolean bos, boolean eos) {
        int textLen = 0;
        while (textLen < text.length && text[textLen] != 0) {
            textLen++;
        }
        int[] tokens = new int[textLen + 3];
        int n = 0;
        if (bos) {
            tokens[n++] = BOS;
        }
        if (textLen > 0) {
            int dummyPrefix = lookup(new byte[]{' '}, 1);
            if (dummyPrefix == -1) { // run.c would store id -1 and read outside its vocabulary
                throw new Llama2jException("the tokenizer has no \" \" piece, which encode puts before the text");
            }
            tokens[n++] = dummyPrefix;
        }
        // One UTF-8 code point at a time (at most 4 bytes); run.c sizes this buffer from max_token_length,
        // a header field, which must not decide an allocation.
        byte[] buffer = new byte[4];
        int strLen = 0;
        for (int c = 0; c < textLen; c++) {
            if ((text[c] & 0xC0) != 0x80) {
                strLen = 0; // not a continuation byte: a new code point starts
            }
            buffer[strLen++] = text[c];
            byte next = c + 1 < textLen ? text[c + 1] : 0;
            if ((next & 0xC0) == 0x80 && strLen < 4) {
                continue;
            }
            int id = lookup(buffer, strLen);
            if (id != -1) {
                tokens[n++] = id;
            } else {
                for (int i = 0; i < strLen; i++) {
                    int byteToken = (buffer[i] & 0xFF) + 3;
                    if (byteToken >= pieces.length) { // run.c assumes ids 3..258 are <0x00>..<0xFF>
                        throw new Llama2jException(String.format(java.util.Locale.ROOT,
                                "the tokenizer has %d tokens, too few for the byte token of 0x%02X (id %d) that encode needs",
                                pieces.length, buffer[i] & 0xFF, byteToken));
                    }
                    tokens[n++] = byteToken;
                }
            }
            strLen = 0;
        }
        byte[] pair = new byte[0];
        while (true) {
            float bestScore = -1e10f;
            int bestId = -1;
            int bestIdx = -1;
            for (int i = 0; i < n - 1; i++) {
                byte[] a = pieces[tokens[i]];
                byte[] b = pieces[tokens[i + 1]];
                int len = a.length + b.length;
                if (pair.length < len) {
                    pair = new byte[len * 2];
                }
                System.arraycopy(a, 0, pair, 0, a.length);
                System.arraycopy(b, 0, pair, a.length, b.length);
                int id = lookup(pair, len);
                if (id != -1 && scores[id] > bestScore) {
                    bestScore = scores[id];
                    bestId = id;
                    bestIdx = i;
                }
            }
            if (bestIdx == -1) {
                break;
            }
            tokens[bestIdx] = bestId;
            System.arraycopy(tokens, bestIdx + 2, tokens, bestIdx + 1, n - bestIdx - 2);
            n--;
        }
        if (eos) {
            if (n == tokens.length) {
                tokens = Arrays.copyOf(tokens, n + 1);
            }
            tokens[n++] = EOS;
        }
        return Arrays.copyOf(tokens, n);
    }

    /** glibc's bsearch over the sorted vocabulary, with strcmp ordering; -1 if absent. */
    private int lookup(byte[] key, int keyLen) {
        int l = 0, u = sortedIds.length;
        while (l < u) {
            int idx = (l + u) >>> 1;
            int cmp = strcmp(key, keyLen, pieces[sortedIds[idx]]);
            if (cmp < 0) {
                u = idx;
            } else if (cmp > 0) {
                l = idx + 1;
            } else {
                return sortedIds[idx];
            }
        }
        return -1;
    }

    private static int strcmp(byte[] a, byte[] b) {
        return strcmp(a, a.length, b);
    }

    private static int strcmp(byte[] a, int aLen, byte[] b) {
        int n = Math.min(aLen, b.length);
        for (int i = 0; i < n; i++) {
            int x = a[i] & 0xFF, y = b[i] & 0xFF;
            if (x != y) {
                return x - y;
            }
        }
        return Integer.compare(aLen, b.length);
    }

    // ---------------------------------------------------------------- decode

    /**
     * run.c's decode(prev, token) followed by safe_printf(): the bytes generate() prints for
     * {@code token}. A leading space is dropped after BOS; {@code <0xXX>} pieces become the raw
     * byte; a lone byte that is neither printable nor whitespace (C locale) prints nothing.
     */
    public byte[] decodePrintable(int prevToken, int token) {
        byte[] piece = pieces[token];
        int start = 0;
        if (prevToken == BOS && piece.length > 0 && piece[0] == ' ') {
            start = 1;
        }
        int byteVal = parseBytePiece(piece, start);
        byte[] out;
        if (byteVal >= 0) {
            out = byteVal == 0 ? new byte[0] : new byte[]{(byte) byteVal};
        } else {
            out = start == 0 ? piece : Arrays.copyOfRange(piece, start, piece.length);
        }
        if (out.length == 0) {
            return out;
        }
        if (out.length == 1) {
            int b = out[0] & 0xFF;
            boolean isprint = b >= 0x20 && b <= 0x7E;
            boolean isspace = b == ' ' || (b >= 0x09 && b <= 0x0D);
            if (!(isprint || isspace)) {
                return new byte[0];
            }
        }
        return out;
    }

    /**
     * sscanf(piece, "&lt;0x%02hhX&gt;") as glibc evaluates it: the literal "&lt;0x", then optional
     * whitespace and at most two hex digits (the closing '&gt;' is not checked). Returns the byte or -1.
     */
    private static int parseBytePiece(byte[] p, int start) {
        int i = start;
        if (p.length - i < 4 || p[i] != '<' || p[i + 1] != '0' || p[i + 2] != 'x') {
            return -1;
        }
        i += 3;
        while (i < p.length && (p[i] == ' ' || (p[i] >= 0x09 && p[i] <= 0x0D))) {
            i++;
        }
        int value = 0, digits = 0;
        while (i < p.length && digits < 2) {
            int d = Character.digit(p[i], 16);
            if (d < 0) {
                break;
            }
            value = value * 16 + d;
            digits++;
            i++;
        }
        return digits == 0 ? -1 : value;
    }

    /** Concatenated printable bytes of a token stream, as generate() prints it (no final newline). */
    public byte[] decodeStream(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 1; i < ids.length; i++) {
            out.writeBytes(decodePrintable(ids[i - 1], ids[i]));
        }
        return out.toByteArray();
    }
}
