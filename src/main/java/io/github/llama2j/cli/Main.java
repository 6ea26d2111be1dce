package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/**
 * The {@code llama2j} command. Exit codes: 0 success, 1 internal error (a bug: stack trace shown),
 * 2 bad input file or bad usage, 3 engine/device unavailable, 4 I/O failure (download, unreadable file).
 */
@Command(name = "llama2j",
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = "llama2.c's transformer inference in Java, on the CPU and on GPUs through TornadoVM.",
        subcommands = {RunCommand.class, ProfileCommand.class, SynthCommand.class, QuantizeCommand.class, InfoCommand.class, BenchCommand.class, DevicesCommand.class,
                CommandLine.HelpCommand.class},
        footer = {"",
                "Examples:",
                "  llama2j run stories15M -i \"Once upon a time\"",
                "  llama2j run model.bin -z tokenizer.bin -t 0 -n 256",
                "  llama2j bench stories110M --threads 1,2 --json",
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
        return cl;
    }

    /** Runs the CLI and returns its exit code (tests call this; {@link #main} exits with it). */
    public static int execute(PrintWriter out, PrintWriter err, String... args) {
        // Embedded use (tests, fuzzing): generated text still goes to stdout, but chat input is empty
        // rather than the process's stdin, which may be a pipe that never closes.
        return execute(new Io(Io.system().stdout(), java.io.InputStream.nullInputStream()), out, err, args);
    }

    /** Runs the CLI with the given byte streams for generated text and chat input. */
    public static int execute(Io io, PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = commandLine(io);
        cl.setOut(out);
        cl.setErr(err);
        return cl.execute(args);
    }

    public static void main(String[] args) {
        int code = commandLine(Io.system()).execute(args);
        System.out.flush();
        System.exit(code);
    }
}
