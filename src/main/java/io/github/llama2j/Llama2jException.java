package io.github.llama2j;

/**
 * A user-facing error: bad input file, bad option, a model that does not fit.
 * The CLI prints only the message (one line, naming the file and the field) and exits
 * with {@link #exitCode()}; no stack trace is shown for these.
 */
public class Llama2jException extends RuntimeException {
    /** Exit code for invalid input files (model, tokenizer). */
    public static final int BAD_INPUT = 2;
    /** Exit code for invalid command-line usage or option values. */
    public static final int BAD_USAGE = 2;
    /** Exit code for a requested engine or device that cannot be used here. */
    public static final int UNAVAILABLE = 3;
    /** Exit code for I/O failures (download, unreadable file). */
    public static final int IO_FAILURE = 4;

    private final int exitCode;

    public Llama2jException(String message) {
        this(message, BAD_INPUT);
    }

    public Llama2jException(String message, int exitCode) {
        super(message);
        this.exitCode = exitCode;
    }

    public Llama2jException(String message, int exitCode, Throwable cause) {
        super(message, cause);
        this.exitCode = exitCode;
    }

    public int exitCode() {
        return exitCode;
    }
}
