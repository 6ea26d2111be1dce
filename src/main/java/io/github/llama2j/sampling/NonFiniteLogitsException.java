package io.github.llama2j.sampling;

import io.github.llama2j.Llama2jException;

/**
 * {@link Sampler#sample}'s error when the logits hold a NaN or are infinite where a token must be chosen: a NaN or
 * infinite weight or block scale in the model's file, or activations that overflowed. Exit code
 * {@link Llama2jException#BAD_INPUT}; a caller that knows the model's file names it ({@link #naming}).
 */
public final class NonFiniteLogitsException extends Llama2jException {
    /** The message, without a file name. */
    public static final String MESSAGE = "the logits are NaN or infinite, so no token can be chosen: a weight or"
            + " scale of the model is NaN or infinite, or its activations overflowed";

    NonFiniteLogitsException() {
        super(MESSAGE, BAD_INPUT);
    }

    private NonFiniteLogitsException(String message, Throwable cause) {
        super(message, BAD_INPUT, cause);
    }

    /** The same error with {@code file} (the model's file name) before the message. */
    public NonFiniteLogitsException naming(String file) {
        return new NonFiniteLogitsException(file + ": " + MESSAGE, this);
    }
}
