package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.util.concurrent.ConcurrentLinkedDeque;

/**
 * The {@code llama2j} command. Exit codes: 0 success, 1 internal error (a bug: stack trace shown),
 * 2 bad input file or bad usage, 3 engine/device unavailable, 4 I/O failure (download, unreadable file).
 */
@Command(name = "llama2j",
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = "llama2.c's transformer inference in Java, on the CPU and on GPUs through TornadoVM.",
        subcommands = {RunCommand.class, ServeCommand.class, ProfileCommand.class, SynthCommand.class, QuantizeCommand.class, InfoCommand.class, BenchCommand.class, DevicesCommand.class,
                CommandLine.HelpCommand.class},
        footer = {"",
                "Examples:",
                "  llama2j run stories15M -i \"Once upon a time\"",
                "  llama2j run model.bin -z tokenizer.bin -t 0 -n 256",
                "  llama2j bench stories110M --threads 1,2 --json",
                "  llama2j serve stories110M --port 8080",
                "",
                "Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 3 engine unavailable, 4 I/O failure."})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** A command line whose commands read and write {@code io}: classes with an {@code (Io)} constructor receive it. */
    public static CommandLine commandLine(Io io) {
        CommandLine.IFactory defaults = CommandLine.defaultFactory();
        CommandLine.IFactory factory = new CommandLine.IFactory() {
            @Override
            public <K> K create(Class<K> cls) throws Exception {
                try {
                    return cls.getDeclaredConstructor(Io.class).newInstance(io);
                } catch (NoSuchMethodException e) {
                    return defaults.create(cls);
                }
            }
        };
        CommandLine cl = new CommandLine(new Main(), factory);
        // No argument files: picocli would replace an argument "@x" by the lines of file x, so a prompt
        // such as "@alice hi" read a file, and "@." (a directory) was an internal error. llama2.c has none.
        cl.setExpandAtFiles(false);
        // Not picocli's default strategy object: a RunLast made when the command line is built remembers System.err as it
        // was then, and picocli gives the command line that stream again on every execute (its backwards-compatible
        // handlers), over the writer execute() was given: a command line built while a test had replaced System.err wrote
        // every later call's error messages there. A lambda is not such a handler.
        cl.setExecutionStrategy(parseResult -> new CommandLine.RunLast().execute(parseResult));
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            Throwable t = ex;
            while (t != null && !(t instanceof Llama2jException) && t.getCause() != null && t.getCause() != t) {
                t = t.getCause();
            }
            if (t instanceof Llama2jException le) {
                commandLine.getErr().println("llama2j: " + le.getMessage());
                commandLine.getErr().flush();
                return le.exitCode();
            }
            throw ex;
        });
        // A usage error is picocli's one-line message (and its "Did you mean" suggestions), then a pointer
        // to the command's help: the whole usage text after it pushed the message off the screen.
        cl.setParameterExceptionHandler((ex, args) -> {
            CommandLine cmd = ex.getCommandLine();
            PrintWriter err = cmd.getErr();
            err.println(cmd.getColorScheme().errorText(ex.getMessage()));
            CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
            err.println(helpHint(cmd));
            err.flush();
            CommandLine.IExitCodeExceptionMapper mapper = cmd.getExitCodeExceptionMapper();
            return mapper != null ? mapper.getExitCode(ex) : cmd.getCommandSpec().exitCodeOnInvalidInput();
        });
        return cl;
    }

    /** The line after a usage error: {@code see 'llama2j run --help'}. */
    static String helpHint(CommandLine cmd) {
        return "see '" + cmd.getCommandSpec().qualifiedName() + " --help'";
    }

    /** Runs the CLI and returns its exit code (tests call this; {@link #main} exits with it). */
    public static int execute(PrintWriter out, PrintWriter err, String... args) {
        // Embedded use (tests, fuzzing): generated text still goes to stdout, but chat input is empty
        // rather than the process's stdin, which may be a pipe that never closes.
        return execute(new Io(Io.system().stdout(), InputStream.nullInputStream()), out, err, args);
    }

    /**
     * Runs the CLI with the given byte streams for generated text and chat input.
     *
     * <p>Building picocli's model of the command tree (eight commands, every annotation read by
     * reflection) took about 2 ms per call, more than parsing and most runs; {@link #main} builds it
     * once per process, but tests and the fuzzer call this thousands of times. So command lines are
     * built once and reused: picocli resets every option and parameter to its initial or default value
     * before each parse, and the commands keep no other state. A command line whose run ended in an
     * internal error (exit 1) or threw is dropped rather than reused. Concurrent and nested calls each
     * get their own.
     */
    public static int execute(Io io, PrintWriter out, PrintWriter err, String... args) {
        Embedded e = Embedded.POOL.poll();
        if (e == null) {
            e = new Embedded();
        }
        boolean reusable = false;
        try {
            e.io.target = io;
            e.cl.setOut(out);
            e.cl.setErr(err);
            int code = e.cl.execute(args);
            reusable = code != 1; // 1: internal error (see the class comment)
            return code;
        } finally {
            e.io.target = null;
            if (reusable) {
                Embedded.POOL.push(e);
            }
        }
    }

    /** A reusable command line whose commands read and write the streams of the current {@link #execute} call. */
    private static final class Embedded {
        static final ConcurrentLinkedDeque<Embedded> POOL = new ConcurrentLinkedDeque<>();

        final CurrentIo io = new CurrentIo();
        final CommandLine cl = commandLine(new Io(io.stdout, io.stdin));
    }

    /** Streams that forward to the current call's {@link Io}. */
    private static final class CurrentIo {
        volatile Io target;

        final OutputStream stdout = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                target.stdout().write(b);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                target.stdout().write(b, off, len);
            }

            @Override
            public void flush() throws IOException {
                target.stdout().flush();
            }

            @Override
            public void close() throws IOException {
                target.stdout().close();
            }
        };

        final InputStream stdin = new InputStream() {
            @Override
            public int read() throws IOException {
                return target.stdin().read();
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                return target.stdin().read(b, off, len);
            }

            @Override
            public int available() throws IOException {
                return target.stdin().available();
            }

            @Override
            public void close() throws IOException {
                target.stdin().close();
            }
        };
    }

    public static void main(String[] args) {
        int code = commandLine(Io.system()).execute(args);
        System.out.flush();
        System.exit(code);
    }
}
