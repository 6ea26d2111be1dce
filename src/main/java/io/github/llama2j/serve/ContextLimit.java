package io.github.llama2j.serve;

/** The context-length checks every {@link PromptFormat} makes, with OpenAI's {@code context_length_exceeded} error. */
final class ContextLimit {
    private ContextLimit() {
    }

    /**
     * Each token covers at least one byte of text (BOS and SentencePiece's dummy prefix aside), and at most
     * {@code maxTokenBytes}: text longer than {@code seqLen * maxTokenBytes} bytes cannot fit, and is rejected before
     * it is encoded (BPE is slow on long words).
     */
    static void checkBytes(long bytes, int seqLen, int maxTokenBytes, String param) {
        long max = (long) seqLen * Math.max(1, maxTokenBytes);
        if (bytes > max) {
            throw exceeded(param, noun(param) + " (" + bytes + " bytes) cannot fit the model's context of "
                    + seqLen + " tokens");
        }
    }

    static void checkTokens(int tokens, int seqLen, String param) {
        if (tokens > seqLen) {
            throw exceeded(param, noun(param) + " is " + tokens + " tokens, longer than the model's context of "
                    + seqLen + " tokens");
        }
    }

    /** What the field holds, as the subject of a sentence: "the messages is 817 tokens" is not English. */
    private static String noun(String param) {
        return param.equals("messages") ? "the conversation" : "the " + param;
    }

    private static ApiException exceeded(String param, String message) {
        return new ApiException(400, "invalid_request_error", "context_length_exceeded", param, message);
    }
}
