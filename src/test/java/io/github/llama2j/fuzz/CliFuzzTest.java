package io.github.llama2j.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.llama2j.cli.Io;
import io.github.llama2j.cli.Main;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Fuzzes the command line ({@link Main#execute}) with argument lists built from fuzzer bytes: the
 * subcommands, every option name, free fuzzer strings (as option values, positionals or unknown
 * options), and a few files made here: tiny v0/v1/v2 models with their tokenizer, a missing path,
 * a directory and an empty file. Standard input is fuzzer bytes too (chat mode reads it).
 *
 * <p>Properties: {@code execute} returns, with an exit code in {0, 2, 3, 4} (1 is "internal error",
 * a bug), and stderr never holds a stack trace or a line naming a throwable class.
 *
 * <p>Containment: free strings that name an existing file are replaced by a missing name, so the
 * fuzzer reads no file but the ones made here (no /dev/zero, no stdin device), Hugging Face names
 * ({@code hf:OWNER/REPO/FILE}) are replaced likewise, and nothing writes files or uses the network.
 * The models have seq_len 16, which bounds what {@code run} prints.
 * Thread counts above {@value #MAX_THREADS} are lowered to it to keep each input fast (the CLI's own
 * upper limit has its own regression test).
 */
class CliFuzzTest {
    static final int MAX_THREADS = 4;
    /**
     * A stack-trace line, or a line that starts with a throwable's class name ("java.lang.Foo: ..." or
     * "Exception in thread"). Not any mention of "Error": picocli quotes fuzzed arguments back.
     */
    static final Pattern STACK_TRACE = Pattern.compile(
            "(?m)^(\\s+at |Caused by: |Exception in thread |(?:[a-z][\\w$]*\\.)+[A-Z][\\w$]*(?:Exception|Error)\\b)");
    private static final String[] WORDS = {
            "run", "help", "-h", "--help", "-V", "--version",
            "-t", "--temperature", "-p", "--top-p", "-s", "--seed", "-n", "--steps", "-i", "--prompt",
            "-z", "--tokenizer", "-m", "--mode", "-y", "--system", "--no-stats",
            "--engine", "--threads", "--exact", "--device", "--split", "--verbose",
            "cpu", "tornado", "hybrid", "chat", "generate", "0", "1", "-1", "0.5", "NaN", "auto", "",
    };

    @MethodSource("seeds")
    @FuzzTest(maxDuration = "10m")
    void commandLine(byte[] choices) {
        Input in = decode(choices);
        execute(in.args(), in.stdin());
    }

    static Stream<Arguments> seeds() {
        return Stream.of(
                new byte[]{7, 0, 50, 6, 34, 12, 35, 22},                     // run MODEL -t 0 -n 1 --no-stats
                new byte[]{4, 0, 51, 16, 53},                                // run MODEL_V1 -z TOKENIZER
                new byte[]{6, 0, 52, 18, 32, 12, 46, 'h', 'i', '\n'},       // run MODEL_V2 -m chat -n 3, stdin "hi"
                new byte[]{2, 0, (byte) 200, 5, 'h', 'e', 'l', 'l', 'o'},    // run hello
                new byte[]{1, 2},                                            // -h
                new byte[]{4, 0, 50, 23, 30},                                // run MODEL --engine tornado
                new byte[]{8, 0, 50, 14, (byte) 200, 4, 'O', 'n', 'c', 'e', 12, 49, 57, 22}, // run MODEL -i Once -n 6 --threads=1 --no-stats
                // 2 Error:0 run run: picocli quotes the arguments back; an early version of this test took that for a trace
                new byte[]{4, 0x2d, 0x7a, 0x1a, 0, 'E', 'r', 'r', 'o', 'r', ':', '0'}
        ).map(b -> Arguments.of((Object) b));
    }

    /**
     * Runs the CLI on {@code args} with {@code stdin} as chat input and checks the properties. The
     * generated text is captured rather than written to the process's stdout (a pipe to Maven).
     */
    static void execute(String[] args, byte[] stdin) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        Io io = new Io(new ByteArrayOutputStream(), new ByteArrayInputStream(stdin));
        int code = Main.execute(io, new PrintWriter(out, true), new PrintWriter(err, true), args);
        String e = err.toString();
        if (code == 1 || code < 0 || code > 4 || hasStackTrace(e, args)) {
            throw new AssertionError("llama2j " + Arrays.toString(args) + " exited " + code + " with stderr:\n" + e);
        }
    }

    /**
     * Whether {@code err} holds a {@link #STACK_TRACE} line that is not an echo of an argument: picocli
     * quotes arguments back ("Invalid value for option '--steps': 'x ...' is not an int"), and an
     * argument with a line break can put "Exception in thread" or "\tat " at the start of a line. A
     * match counts as an echo when some argument holds its text right after a line break.
     */
    static boolean hasStackTrace(String err, String[] args) {
        // STACK_TRACE.matcher(err).find(), one line start at a time: under Jazzer each step of a regex
        // match is hooked (its regex sanitizer), and find() tried every position of a usage text, a
        // quarter of the time of each input. A match starts at a line start ((?m)^), with a character
        // that can begin one of the four alternatives; the pattern decides from there.
        Matcher m = STACK_TRACE.matcher(err);
        int n = err.length();
        int[] next = {-1, -1, -1, -1, -1}; // next position of each LINE_BREAKS character, n if none
        int p = 0;
        while (p < n) {
            char c = err.charAt(p);
            if ((c <= ' ' || c == 'C' || c == 'E' || (c >= 'a' && c <= 'z'))
                    && m.region(p, n).lookingAt() && !echoed(m.group(), args)) {
                return true;
            }
            int lineBreak = n;
            for (int k = 0; k < next.length; k++) {
                if (next[k] < p) {
                    int i = err.indexOf(LINE_BREAKS.charAt(k), p);
                    next[k] = i < 0 ? n : i;
                }
                lineBreak = Math.min(lineBreak, next[k]);
            }
            p = lineBreak + (err.startsWith("\r\n", lineBreak) ? 2 : 1);
        }
        return false;
    }

    /** The line terminators of {@code (?m)^}: after "\r\n" (one terminator) and after each of these. */
    private static final String LINE_BREAKS = "\n\r\u0085\u2028\u2029";

    private static boolean echoed(String text, String[] args) {
        for (String a : args) {
            for (int i = a.indexOf(text); i >= 0; i = a.indexOf(text, i + 1)) {
                if (i > 0 && LINE_BREAKS.indexOf(a.charAt(i - 1)) >= 0) {
                    return true;
                }
            }
        }
        return false;
    }

    record Input(String[] args, byte[] stdin) {
    }

    /** Builds an argument list: a count, then per argument a choice byte (and a string for free words). */
    static Input decode(byte[] choices) {
        int[] pos = {0};
        int count = next(choices, pos) % 12;
        List<String> args = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int k = next(choices, pos);
            if (k < WORDS.length) {
                args.add(WORDS[k]);
            } else if (k < 50) {
                args.add(String.valueOf(k - WORDS.length - 2));   // small numbers, -2..
            } else if (k < 56) {
                args.add(Files.FILES.get(k - 50).toString());
            } else if (k < 58) {
                args.add("--threads=" + (k - 56));
            } else {
                int len = next(choices, pos) % 64;
                byte[] raw = Arrays.copyOfRange(choices, Math.min(pos[0], choices.length), Math.min(pos[0] + len, choices.length));
                pos[0] += len;
                // argv strings are C strings: a real command line cannot hold a NUL
                args.add(contain(new String(raw, StandardCharsets.UTF_8).replace("\0", "")));
            }
        }
        byte[] stdin = pos[0] < choices.length ? Arrays.copyOfRange(choices, pos[0], choices.length) : new byte[0];
        return new Input(lowerThreads(args.toArray(String[]::new)), stdin);
    }

    private static int next(byte[] b, int[] pos) {
        return pos[0] < b.length ? b[pos[0]++] & 0xFF : 0;
    }

    /**
     * A free string that names an existing file becomes a missing one (see the class comment), and so
     * does a Hugging Face name ({@code hf:...}), which would be downloaded.
     */
    static String contain(String s) {
        String path = s.contains("=") ? s.substring(s.indexOf('=') + 1) : s;
        if (path.startsWith("hf:")) {
            return "missing-" + Integer.toHexString(s.hashCode());
        }
        try {
            if (!path.isEmpty() && java.nio.file.Files.exists(Path.of(path))) {
                return "missing-" + Integer.toHexString(s.hashCode());
            }
        } catch (InvalidPathException ignored) {
            // not a path: fine as it is
        }
        return s;
    }

    static String[] lowerThreads(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.startsWith("--threads=")) {
                args[i] = "--threads=" + lowered(a.substring("--threads=".length()));
            } else if (a.equals("--threads") && i + 1 < args.length) {
                args[i + 1] = lowered(args[i + 1]);
            }
        }
        return args;
    }

    private static String lowered(String v) {
        try {
            return Integer.parseInt(v.trim()) > MAX_THREADS ? String.valueOf(MAX_THREADS) : v;
        } catch (NumberFormatException e) {
            return v;
        }
    }

    /** The files the fuzzed command lines may name, made once per JVM in a temporary directory. */
    static final class Files {
        static final List<Path> FILES = make();

        private static List<Path> make() {
            try {
                Path dir = java.nio.file.Files.createTempDirectory("llama2j-cli-fuzz");
                dir.toFile().deleteOnExit();
                Random rnd = new Random(7);
                TinyFiles.Shape shape = TinyFiles.tinyShape(true, 4);
                Path v0 = write(dir, "tiny.bin", TinyFiles.v0(shape, rnd));
                Path v1 = write(dir, "tiny_v1.bin", TinyFiles.v1(TinyFiles.tinyShape(false, 0), rnd));
                Path v2 = write(dir, "tiny_q80.bin", TinyFiles.v2(shape, rnd));
                Path tok = write(dir, "tok" + shape.vocab() + ".bin", TinyFiles.tokenizer());
                Path empty = write(dir, "empty.bin", new byte[0]);
                return List.of(v0, v1, v2, tok, empty, dir);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        private static Path write(Path dir, String name, byte[] bytes) throws IOException {
            Path p = java.nio.file.Files.write(dir.resolve(name), bytes);
            p.toFile().deleteOnExit();
            return p;
        }
    }
}
