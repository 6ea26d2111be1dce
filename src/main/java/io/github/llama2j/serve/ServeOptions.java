package io.github.llama2j.serve;

/**
 * How {@code llama2j serve} listens and what it allows.
 *
 * @param host          address to bind (127.0.0.1 by default: only this machine can connect)
 * @param port          TCP port, 0 for any free one
 * @param modelId       the model's id in {@code /v1/models} and in requests
 * @param queue         requests that may wait while one generates; more get 503
 * @param apiKey        the Bearer key every endpoint but {@code /health} requires, or null for none
 * @param maxTokens     the most tokens one request may ask for (and the default)
 * @param maxBodyBytes  the largest request body; larger ones get 413
 * @param idleTimeoutMs how long a connection may stay silent (a stalled upload or a client that stops reading)
 */
public record ServeOptions(String host, int port, String modelId, int queue, String apiKey, int maxTokens,
                           int maxBodyBytes, long idleTimeoutMs) {
    public static final int MAX_QUEUE = 100_000;

    public ServeOptions {
        if (host == null || host.isBlank()) {
            throw new IllegalArgumentException("host is empty");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port is " + port + ", must be in [0, 65535]");
        }
        if (modelId == null || modelId.isBlank()) {
            throw new IllegalArgumentException("model id is empty");
        }
        if (queue < 0 || queue > MAX_QUEUE) {
            throw new IllegalArgumentException("queue is " + queue + ", must be in [0, " + MAX_QUEUE + "]");
        }
        if (apiKey != null && apiKey.isEmpty()) {
            throw new IllegalArgumentException("the API key is empty");
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("max tokens is " + maxTokens + ", must be >= 1");
        }
        if (maxBodyBytes < 1024) {
            throw new IllegalArgumentException("max body is " + maxBodyBytes + " bytes, must be >= 1024");
        }
        if (idleTimeoutMs < 1) {
            throw new IllegalArgumentException("idle timeout is " + idleTimeoutMs + " ms, must be >= 1");
        }
    }

    /** Loopback, the given port and model id, and the defaults of {@code llama2j serve}. */
    public static ServeOptions loopback(int port, String modelId, int maxTokens) {
        return new ServeOptions("127.0.0.1", port, modelId, 16, null, maxTokens, 1 << 20, 60_000);
    }


    public ServeOptions withQueue(int q) {
        return new ServeOptions(host, port, modelId, q, apiKey, maxTokens, maxBodyBytes, idleTimeoutMs);
    }

    public ServeOptions withApiKey(String key) {
        return new ServeOptions(host, port, modelId, queue, key, maxTokens, maxBodyBytes, idleTimeoutMs);
    }
}
