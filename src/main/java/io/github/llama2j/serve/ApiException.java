package io.github.llama2j.serve;

/**
 * An error answered to the client as OpenAI's error JSON:
 * {@code {"error": {"message", "type", "param", "code"}}} with an HTTP status.
 *
 * @see Json#error
 */
public final class ApiException extends RuntimeException {
    private final int status;
    private final String type;
    private final String code;
    private final String param;

    public ApiException(int status, String type, String code, String param, String message) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.code = code;
        this.param = param;
    }

    /** 400 invalid_request_error, naming the offending field. */
    public static ApiException badRequest(String param, String message) {
        return new ApiException(400, "invalid_request_error", null, param, message);
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public String code() {
        return code;
    }

    public String param() {
        return param;
    }
}
