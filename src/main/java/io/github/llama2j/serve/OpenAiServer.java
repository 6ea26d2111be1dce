package io.github.llama2j.serve;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.InferenceEngine;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpMethod;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.IdleTimeout;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.URIUtil;
import org.eclipse.jetty.util.thread.VirtualThreadPool;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.BindException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code llama2j serve}: OpenAI's completion endpoints over one engine, on Jetty 12 (its core handler API,
 * no servlets) with a virtual thread per request. Generation itself runs on the {@link GenerationQueue}'s
 * one thread; request threads parse, validate, wait for their text and write it.
 *
 * <p>Endpoints: {@code POST /v1/chat/completions}, {@code POST /v1/completions} (both with SSE streaming),
 * {@code GET /v1/models}, {@code GET /v1/models/{id}}, {@code GET /health}. Every error is OpenAI's error
 * JSON; no stack trace reaches a client.
 */
public final class OpenAiServer implements AutoCloseable {
    /** Strict about duplicate keys: {@code {"prompt": "a", "prompt": "b"}} is ambiguous, not "the last one wins". */
    static final ObjectMapper JSON = JsonMapper.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();
    /** What a full queue answers in Retry-After (seconds). */
    static final int RETRY_AFTER_SECONDS = 1;

    private final ServeOptions options;
    private final InferenceEngine engine;
    private final PromptFormat format;
    private final PrintWriter log;
    private final GenerationQueue queue;
    private final Server server;
    private final ServerConnector connector;
    private final long created = System.currentTimeMillis() / 1000;
    private final AtomicLong ids = new AtomicLong();
    private final SecureRandom random = new SecureRandom();
    private final byte[] apiKey;

    private OpenAiServer(ServeOptions options, InferenceEngine engine, PromptFormat format, PrintWriter log) {
        this.options = options;
        this.engine = engine;
        this.format = format;
        this.log = log;
        this.apiKey = options.apiKey() == null ? null : options.apiKey().getBytes(StandardCharsets.UTF_8);
        this.queue = new GenerationQueue(engine, format, options.queue(), log);
        VirtualThreadPool threads = new VirtualThreadPool();
        threads.setName("llama2j-http");
        server = new Server(threads);
        HttpConfiguration http = new HttpConfiguration();
        http.setSendServerVersion(false);
        http.setSendXPoweredBy(false);
        connector = new ServerConnector(server, new HttpConnectionFactory(http));
        connector.setHost(options.host());
        connector.setPort(options.port());
        connector.setIdleTimeout(options.idleTimeoutMs());
        server.addConnector(connector);
        server.setHandler(new Api());
        server.setErrorHandler(new JsonErrors());
        server.setStopTimeout(2_000);
    }

    /** Starts serving {@code engine}; the caller keeps ownership of the engine (close it after this). */
    public static OpenAiServer start(ServeOptions options, InferenceEngine engine, PromptFormat format, PrintWriter log) {
        OpenAiServer s = new OpenAiServer(options, engine, format, log);
        try {
            s.server.start();
        } catch (Exception e) {
            s.close();
            Throwable t = e;
            while (t.getCause() != null && !(t instanceof BindException)) {
                t = t.getCause();
            }
            if (t instanceof BindException || e instanceof IOException) {
                throw new Llama2jException("cannot listen on " + options.host() + ":" + options.port() + " (" + reason(t) + ")",
                        Llama2jException.IO_FAILURE, e);
            }
            throw new Llama2jException("cannot start the server on " + options.host() + ":" + options.port() + " (" + reason(e) + ")",
                    Llama2jException.IO_FAILURE, e);
        }
        return s;
    }

    /**
     * An exception's message for the start-up line; some (an unresolved address's) have none, and "(null)"
     * tells the operator nothing, so those are named by their class.
     */
    static String reason(Throwable t) {
        String message = t.getMessage();
        return message == null || message.isBlank() ? t.getClass().getSimpleName() : message;
    }

    /** The port it listens on (the chosen one when started with port 0). */
    public int port() {
        return connector.getLocalPort();
    }

    /** {@code http://host:port/v1}, what OpenAI clients take as their base URL. */
    public URI baseUri() {
        String host = options.host().contains(":") ? "[" + options.host() + "]" : options.host();
        return URI.create("http://" + host + ":" + port() + "/v1");
    }

    /** Blocks until the server stops. */
    public void join() throws InterruptedException {
        server.join();
    }

    @Override
    public void close() {
        queue.close();
        try {
            server.stop();
        } catch (Exception e) {
            log.println("llama2j serve: stopping: " + e);
            log.flush();
        }
    }

    // ------------------------------------------------------------------ routing

    private final class Api extends Handler.Abstract {
        @Override
        public boolean handle(Request request, Response response, Callback callback) {
            try {
                route(request, response, callback);
            } catch (ApiException e) {
                sendError(response, callback, e);
            } catch (RuntimeException e) {
                log.println("llama2j serve: internal error on " + request.getMethod() + " " + Request.getPathInContext(request) + ": " + e);
                e.printStackTrace(log);
                log.flush();
                sendError(response, callback, new ApiException(500, "server_error", null, null, "internal server error"));
            }
            return true;
        }
    }

    private void route(Request request, Response response, Callback callback) {
        String path = Request.getPathInContext(request);
        String method = request.getMethod();
        if (path.equals("/health")) {
            requireGet(request, response);
            ObjectNode health = JSON.createObjectNode();
            health.put("status", "ok");
            health.put("model", options.modelId());
            health.put("engine", engine.name());
            health.put("generating", queue.busy());
            health.put("waiting", queue.waitingCount());
            health.put("completed", queue.completed());
            health.put("cancelled", queue.cancelled());
            health.put("failed", queue.failed());
            sendJson(response, callback, 200, health);
            return;
        }
        checkApiKey(request);
        switch (path) {
            case "/v1/models" -> {
                requireGet(request, response);
                ObjectNode list = JSON.createObjectNode();
                list.put("object", "list");
                list.putArray("data").add(modelObject());
                sendJson(response, callback, 200, list);
            }
            case "/v1/chat/completions" -> {
                requireMethod(request, response, "POST");
                complete(request, response, callback, true);
            }
            case "/v1/completions" -> {
                requireMethod(request, response, "POST");
                complete(request, response, callback, false);
            }
            default -> {
                if (path.startsWith("/v1/models/")) {
                    requireGet(request, response);
                    String id = modelIdInPath(path.substring("/v1/models/".length()));
                    if (!id.equals(options.modelId())) {
                        throw modelNotFound(id);
                    }
                    sendJson(response, callback, 200, modelObject());
                } else {
                    throw new ApiException(404, "invalid_request_error", "not_found", null,
                            "no such endpoint: " + method + " " + path + " (this server has /v1/chat/completions, /v1/completions, /v1/models and /health)");
                }
            }
        }
    }

    private ObjectNode modelObject() {
        ObjectNode m = JSON.createObjectNode();
        m.put("id", options.modelId());
        m.put("object", "model");
        m.put("created", created);
        m.put("owned_by", "llama2j");
        return m;
    }

    private static ApiException modelNotFound(String id) {
        return new ApiException(404, "invalid_request_error", "model_not_found", "model",
                "the model '" + id + "' does not exist here (GET /v1/models lists the one this server has)");
    }

    /**
     * The model id in {@code /v1/models/{id}}, percent-decoded: the path arrives encoded, and an id with a space
     * ({@code --model-name "org/my model"}) is sent as {@code my%20model}. (Jetty itself refuses an encoded
     * slash, {@code %2F}, as ambiguous; a literal slash works.)
     */
    private static String modelIdInPath(String encoded) {
        try {
            return URIUtil.decodePath(encoded);
        } catch (IllegalArgumentException badEscape) {
            return encoded; // matches no id: answered as an unknown model
        }
    }

    /** GET, or HEAD, which HTTP requires wherever GET works: the same status and headers, no body. */
    private static void requireGet(Request request, Response response) {
        if (!isHead(request)) {
            requireMethod(request, response, "GET", "GET, HEAD");
        }
    }

    private static void requireMethod(Request request, Response response, String method) {
        requireMethod(request, response, method, method);
    }

    private static void requireMethod(Request request, Response response, String method, String allow) {
        if (!request.getMethod().equals(method)) {
            response.getHeaders().put(HttpHeader.ALLOW, allow);
            throw new ApiException(405, "invalid_request_error", "method_not_allowed", null,
                    request.getMethod() + " is not allowed here, use " + allow.replace(", ", " or "));
        }
    }

    private static boolean isHead(Request request) {
        return HttpMethod.HEAD.is(request.getMethod());
    }

    private void checkApiKey(Request request) {
        if (apiKey == null) {
            return;
        }
        String auth = request.getHeaders().get(HttpHeader.AUTHORIZATION);
        String prefix = "Bearer ";
        boolean ok = auth != null && auth.regionMatches(true, 0, prefix, 0, prefix.length())
                && MessageDigest.isEqual(apiKey, auth.substring(prefix.length()).trim().getBytes(StandardCharsets.UTF_8));
        if (!ok) {
            throw new ApiException(401, "invalid_request_error", "invalid_api_key", null,
                    auth == null ? "missing API key: send the header 'Authorization: Bearer KEY'" : "incorrect API key");
        }
    }

    // ------------------------------------------------------------------ completions

    private void complete(Request request, Response response, Callback callback, boolean chat) {
        JsonNode body = readJson(request);
        ApiRequest r = ApiRequest.parse(body, chat);
        if (r.model() != null && !r.model().equals(options.modelId())) {
            throw modelNotFound(r.model());
        }
        if (r.maxTokens() != null && r.maxTokens() > options.maxTokens()) {
            throw ApiException.badRequest("max_tokens", "max_tokens is " + r.maxTokens() + ", this server allows at most "
                    + options.maxTokens());
        }
        PromptFormat.Prompt prompt = chat ? format.chat(r.messages()) : format.completion(r.prompt());
        int seqLen = engine.config().seqLen();
        int room = seqLen - prompt.tokens().length + 1; // tokens that can still be sampled (the last one is not fed)
        int maxTokens = r.maxTokens() != null ? r.maxTokens() : Math.min(options.maxTokens(), room);
        long seed = r.seed() != null && r.seed() > 0 ? r.seed() : 1 + (random.nextLong() >>> 1);
        GenerationQueue.Job job = new GenerationQueue.Job(prompt, maxTokens, r.temperature(), r.topP(), r.topK(), r.minP(), seed,
                r.stop());
        if (!queue.submit(job)) {
            response.getHeaders().put(HttpHeader.RETRY_AFTER, Integer.toString(RETRY_AFTER_SECONDS));
            throw new ApiException(503, "server_error", "server_busy", null,
                    "the server is busy (" + (1 + options.queue()) + " requests generating or waiting); retry later");
        }
        // Accepted: a connection that fails or closes cancels the job.
        request.addFailureListener(t -> job.cancel());
        String id = (chat ? "chatcmpl-" : "cmpl-") + Long.toHexString(created) + "-" + ids.incrementAndGet();
        if (r.stream()) {
            stream(request, response, callback, job, chat, id, r.includeUsage());
        } else {
            collect(request, response, callback, job, chat, id);
        }
    }

    private void collect(Request request, Response response, Callback callback, GenerationQueue.Job job, boolean chat, String id) {
        StringBuilder text = new StringBuilder();
        while (true) {
            GenerationQueue.Event e = take(request, job);
            switch (e) {
                case GenerationQueue.Event.Text t -> text.append(t.text());
                case GenerationQueue.Event.Done d -> {
                    ObjectNode root = envelope(chat ? "chat.completion" : "text_completion", id);
                    ObjectNode choice = root.putArray("choices").addObject();
                    choice.put("index", 0);
                    if (chat) {
                        ObjectNode message = choice.putObject("message");
                        message.put("role", "assistant");
                        message.put("content", text.toString());
                    } else {
                        choice.put("text", text.toString());
                    }
                    choice.putNull("logprobs");
                    choice.put("finish_reason", d.finishReason());
                    root.set("usage", usage(d));
                    sendJson(response, callback, 200, root);
                    return;
                }
                case GenerationQueue.Event.Failed f -> {
                    sendError(response, callback, f.error());
                    return;
                }
                case GenerationQueue.Event.Cancelled c -> {
                    callback.failed(new IOException("the client went away"));
                    return;
                }
            }
        }
    }

    private void stream(Request request, Response response, Callback callback, GenerationQueue.Job job, boolean chat, String id,
                        boolean includeUsage) {
        response.setStatus(200);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/event-stream; charset=utf-8");
        response.getHeaders().put(HttpHeader.CACHE_CONTROL, "no-cache");
        String object = chat ? "chat.completion.chunk" : "text_completion";
        try (OutputStream out = Content.Sink.asOutputStream(response)) {
            if (chat) {
                ObjectNode first = chunk(object, id, true, "", null);
                send(out, first);
            }
            while (true) {
                GenerationQueue.Event e = take(request, job);
                switch (e) {
                    case GenerationQueue.Event.Text t -> send(out, chunk(object, id, chat, t.text(), null));
                    case GenerationQueue.Event.Done d -> {
                        ObjectNode last = chunk(object, id, chat, null, d.finishReason());
                        send(out, last);
                        if (includeUsage) {
                            ObjectNode u = envelope(object, id);
                            u.putArray("choices");
                            u.set("usage", usage(d));
                            send(out, u);
                        }
                        sendRaw(out, "data: [DONE]\n\n");
                        out.close();
                        callback.succeeded();
                        return;
                    }
                    case GenerationQueue.Event.Failed f -> {
                        send(out, errorJson(f.error()));
                        sendRaw(out, "data: [DONE]\n\n");
                        out.close();
                        callback.succeeded();
                        return;
                    }
                    case GenerationQueue.Event.Cancelled c -> {
                        callback.failed(new IOException("the client went away"));
                        return;
                    }
                }
            }
        } catch (IOException e) {
            job.cancel(); // the client hung up: stop generating at the next token
            callback.failed(e);
        }
    }

    private ObjectNode chunk(String object, String id, boolean chat, String text, String finishReason) {
        ObjectNode root = envelope(object, id);
        ObjectNode choice = root.putArray("choices").addObject();
        choice.put("index", 0);
        if (chat) {
            ObjectNode delta = choice.putObject("delta");
            if (text != null && text.isEmpty() && finishReason == null) {
                delta.put("role", "assistant");
            }
            if (text != null) {
                delta.put("content", text);
            }
        } else {
            choice.put("text", text == null ? "" : text);
        }
        choice.putNull("logprobs");
        if (finishReason == null) {
            choice.putNull("finish_reason");
        } else {
            choice.put("finish_reason", finishReason);
        }
        return root;
    }

    private ObjectNode envelope(String object, String id) {
        ObjectNode root = JSON.createObjectNode();
        root.put("id", id);
        root.put("object", object);
        root.put("created", System.currentTimeMillis() / 1000);
        root.put("model", options.modelId());
        return root;
    }

    private static ObjectNode usage(GenerationQueue.Event.Done d) {
        ObjectNode u = JSON.createObjectNode();
        u.put("prompt_tokens", d.promptTokens());
        u.put("completion_tokens", d.completionTokens());
        u.put("total_tokens", d.promptTokens() + d.completionTokens());
        return u;
    }

    /**
     * The job's next event. Waiting for the engine (in the queue, or between tokens) is not the client's
     * silence: the connection's idle timeout is off meanwhile, and back on for reads and writes.
     */
    private GenerationQueue.Event take(Request request, GenerationQueue.Job job) {
        EndPoint endPoint = request.getConnectionMetaData().getConnection().getEndPoint();
        endPoint.setIdleTimeout(0);
        try {
            return job.next();
        } catch (InterruptedException e) {
            job.cancel();
            Thread.currentThread().interrupt();
            return new GenerationQueue.Event.Cancelled();
        } finally {
            if (endPoint instanceof IdleTimeout idle) {
                idle.notIdle(); // the silence counts from now, not from the last read
            }
            endPoint.setIdleTimeout(options.idleTimeoutMs());
        }
    }

    private static void send(OutputStream out, JsonNode event) throws IOException {
        sendRaw(out, "data: " + JSON.writeValueAsString(event) + "\n\n");
    }

    private static void sendRaw(OutputStream out, String text) throws IOException {
        out.write(text.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    // ------------------------------------------------------------------ bodies and errors

    private JsonNode readJson(Request request) {
        long declared = request.getLength();
        int max = options.maxBodyBytes();
        if (declared > max) {
            throw tooLarge(declared);
        }
        byte[] body;
        try (InputStream in = Request.asInputStream(request)) {
            body = in.readNBytes(max + 1);
        } catch (IOException e) {
            throw unreadableBody(e);
        }
        if (body.length > max) {
            throw tooLarge(-1);
        }
        if (body.length == 0) {
            throw ApiException.badRequest(null, "the request body is empty: send a JSON object");
        }
        try (JsonParser parser = JSON.createParser(body)) {
            JsonNode root = JSON.readTree(parser);
            checkNothingFollows(parser);
            return root;
        } catch (JsonProcessingException e) {
            throw ApiException.badRequest(null, "the request body is not valid JSON (" + where(e.getLocation()) + "): "
                    + withoutSource(e.getOriginalMessage()));
        } catch (IOException e) {
            throw ApiException.badRequest(null, "the request body is not valid JSON");
        }
    }

    /**
     * One JSON value is the whole body: Jackson stops after the first one, so {@code {...} trailing} or two
     * objects in a row would otherwise be taken as the first object alone.
     */
    private static void checkNothingFollows(JsonParser parser) throws IOException {
        JsonLocation at;
        try {
            if (parser.nextToken() == null) {
                return;
            }
            at = parser.currentTokenLocation();
        } catch (JsonProcessingException e) {
            at = e.getLocation(); // text that is not even a JSON token
        }
        throw ApiException.badRequest(null, "the request body is not valid JSON (" + where(at)
                + "): text follows the JSON object; send exactly one object");
    }

    private static String where(JsonLocation at) {
        return at == null ? "at an unknown place" : "line " + at.getLineNr() + ", column " + at.getColumnNr();
    }

    /** Jackson's message without its "(start marker at [Source: ...])", which names a Jackson setting. */
    private static String withoutSource(String message) {
        return message == null ? "unreadable" : message.replaceAll(" ?\\(start marker at \\[Source: [^\\]]*\\]\\)", "");
    }

    /**
     * A body that could not be read: 408 when the client went silent mid-upload (the idle timeout), else 400.
     * Jetty's exceptions name Java classes ({@code java.util.concurrent.TimeoutException: Idle timeout
     * expired ...}), so the client gets a plain message instead.
     */
    private ApiException unreadableBody(IOException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof TimeoutException) {
                return new ApiException(408, "invalid_request_error", "request_timeout", null,
                        "the request body stopped arriving: nothing came for " + idleTimeoutText()
                                + " (the server's idle timeout) before the body was complete");
            }
        }
        return ApiException.badRequest(null, "the request body could not be read (the connection failed or the body was"
                + " malformed)");
    }

    private String idleTimeoutText() {
        long ms = options.idleTimeoutMs();
        return ms % 1000 == 0 ? ms / 1000 + " s" : ms + " ms";
    }

    private ApiException tooLarge(long declared) {
        return new ApiException(413, "invalid_request_error", "request_too_large", null,
                "the request body" + (declared >= 0 ? " (" + declared + " bytes)" : "") + " is larger than this server's limit of "
                        + options.maxBodyBytes() + " bytes");
    }

    static ObjectNode errorJson(ApiException e) {
        ObjectNode root = JSON.createObjectNode();
        ObjectNode error = root.putObject("error");
        error.put("message", e.getMessage());
        error.put("type", e.type());
        if (e.param() == null) {
            error.putNull("param");
        } else {
            error.put("param", e.param());
        }
        if (e.code() == null) {
            error.putNull("code");
        } else {
            error.put("code", e.code());
        }
        return root;
    }

    private static void sendError(Response response, Callback callback, ApiException e) {
        if (response.isCommitted()) {
            callback.failed(e);
            return;
        }
        sendJson(response, callback, e.status(), errorJson(e));
    }

    /** The JSON answer; to a HEAD request, its headers only (Content-Length as a GET would have it). */
    private static void sendJson(Response response, Callback callback, int status, JsonNode body) {
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
        byte[] bytes;
        try {
            bytes = JSON.writeValueAsBytes(body);
        } catch (JsonProcessingException e) {
            callback.failed(e);
            return;
        }
        response.getHeaders().put(HttpHeader.CONTENT_LENGTH, bytes.length);
        boolean head = isHead(response.getRequest());
        response.write(true, head ? ByteBuffer.allocate(0) : ByteBuffer.wrap(bytes), callback);
    }

    /** Jetty's own errors (a malformed request line, headers too large, ...) in OpenAI's format, not HTML. */
    private static final class JsonErrors extends ErrorHandler {
        @Override
        protected void generateResponse(Request request, Response response, int code, String message, Throwable cause,
                                        Callback callback) {
            // Jetty's message for a 5xx may be an exception's text: the client gets the status only.
            String text = code >= 500 || message == null || message.isBlank() ? "HTTP error " + code : message;
            ApiException e = new ApiException(code, code >= 500 ? "server_error" : "invalid_request_error", null, null, text);
            response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
            String json;
            try {
                json = JSON.writeValueAsString(errorJson(e));
            } catch (JsonProcessingException ex) {
                json = "{\"error\":{\"message\":\"HTTP error " + code + "\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
            }
            Content.Sink.write(response, true, json, callback);
        }
    }
}
