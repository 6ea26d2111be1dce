package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.chat.ChatTemplate;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.serve.GgufFormat;
import io.github.llama2j.serve.Llama2Format;
import io.github.llama2j.serve.OpenAiServer;
import io.github.llama2j.serve.PromptFormat;
import io.github.llama2j.serve.ServeOptions;
import io.github.llama2j.tokenizer.GgufTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code llama2j serve}: an OpenAI-compatible HTTP server over one loaded model. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve the model over HTTP with OpenAI's API: POST /v1/chat/completions and /v1/completions"
                + " (streaming with \"stream\": true), GET /v1/models and GET /health.",
                "One generation runs at a time; up to --queue more requests wait, further ones get 503 with Retry-After."
                        + " The same seed and settings give the same text as 'llama2j run'. Stop with Ctrl-C."},
        footer = {"",
                "Examples:",
                "  llama2j serve stories110M",
                "  llama2j serve stories260K.bin -z tok512.bin --port 8081 --queue 4",
                "  llama2j serve Llama-3.2-1B-Instruct-Q4_K_M.gguf",
                "  LLAMA2J_API_KEY=secret llama2j serve model.bin --host 0.0.0.0",
                "  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\",
                "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story\"}], \"max_tokens\": 64}'",
                ModelResolver.NAMES_HELP})
public final class ServeCommand implements Callable<Integer> {

    @Mixin
    ModelMixin model;

    @Option(names = "--host", defaultValue = "127.0.0.1", paramLabel = "ADDRESS",
            description = "Address to listen on (default ${DEFAULT-VALUE}: this machine only; 0.0.0.0 for every interface).")
    String host;

    @Option(names = "--port", defaultValue = "8080", paramLabel = "N", description = "TCP port (default ${DEFAULT-VALUE}; 0 picks a free one).")
    int port;

    @Option(names = "--queue", defaultValue = "16", paramLabel = "N",
            description = "Requests that may wait while one generates (default ${DEFAULT-VALUE}); more get 503 with Retry-After.")
    int queue;

    @Option(names = "--api-key", paramLabel = "KEY", defaultValue = "${env:LLAMA2J_API_KEY}",
            description = "Require 'Authorization: Bearer KEY' on every endpoint but /health (default: the LLAMA2J_API_KEY"
                    + " environment variable; none if unset; an empty key is refused).")
    String apiKey;

    @Option(names = "--max-tokens", defaultValue = "0", paramLabel = "N",
            description = "Most tokens one request may generate, and the default (0 = the model's seq_len; at most seq_len).")
    int maxTokens;

    @Option(names = "--max-body", defaultValue = "1048576", paramLabel = "BYTES",
            description = "Largest request body (default ${DEFAULT-VALUE}); larger ones get 413.")
    int maxBody;

    @Option(names = "--idle-timeout", defaultValue = "60", paramLabel = "SECONDS",
            description = "Close a connection silent for this long: a stalled upload, a client that stops reading (default ${DEFAULT-VALUE}).")
    int idleTimeout;

    @Option(names = "--model-name", paramLabel = "ID", description = "The model's id in /v1/models and requests (default: the file name without extension).")
    String modelName;

    @Option(names = "--chat-template", paramLabel = "FILE",
            description = "Jinja chat template for a GGUF model, instead of its tokenizer.chat_template (without either,"
                    + " chat requests are refused).")
    Path chatTemplatePath;

    @Mixin
    EngineMixin engine;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws InterruptedException {
        PrintWriter err = spec.commandLine().getErr();
        if (port < 0 || port > 65535) {
            throw usage("--port is " + port + ", must be in [0, 65535]");
        }
        if (queue < 0 || queue > ServeOptions.MAX_QUEUE) {
            throw usage("--queue is " + queue + ", must be in [0, " + ServeOptions.MAX_QUEUE + "]");
        }
        if (maxTokens < 0) {
            throw usage("--max-tokens is " + maxTokens + ", must be >= 0 (0 means the model's seq_len)");
        }
        if (maxBody < 1024) {
            throw usage("--max-body is " + maxBody + ", must be >= 1024");
        }
        if (idleTimeout < 1 || idleTimeout > 86_400) {
            throw usage("--idle-timeout is " + idleTimeout + ", must be in [1, 86400] seconds");
        }
        if (host.isBlank()) {
            throw usage("--host is empty");
        }
        if (modelName != null && modelName.isBlank()) {
            throw usage("--model-name is empty");
        }
        String key = apiKey();
        boolean loopback = resolveHost(host).isLoopbackAddress();
        var engineOptions = engine.toOptions(false);
        try (Model m = ModelLoader.load(model.resolve(err))) {
            int seqLen = m.config().seqLen();
            checkMaxTokens(seqLen);
            PromptFormat format = promptFormat(m, seqLen);
            String id = modelName != null ? modelName : stem(m.path());
            ServeOptions options = new ServeOptions(host, port, id, queue, key, maxTokens == 0 ? seqLen : maxTokens,
                    maxBody, idleTimeout * 1000L);
            try (InferenceEngine e = Engines.create(m, engineOptions);
                 OpenAiServer server = OpenAiServer.start(options, e, format, err)) {
                Thread hook = Thread.ofPlatform().unstarted(server::close);
                Runtime.getRuntime().addShutdownHook(hook);
                err.println("llama2j serve: " + id + " on the " + e.name() + " engine, listening on " + server.baseUri()
                        + (key == null ? "" : " (API key required)") + "; Ctrl-C stops");
                if (!loopback && key == null) {
                    err.println("llama2j serve: warning: listening on " + host + " without --api-key: anyone who can reach it can use it");
                }
                err.flush();
                server.join();
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException shuttingDown) {
                    // the hook is what stopped the server
                }
            }
        }
        return 0;
    }

    /**
     * The API key, or null for none. Only an unset LLAMA2J_API_KEY without --api-key means none: an empty or blank
     * key (from either) is refused, as taking it for "no key" would silently serve without authentication (and a
     * blank one could never match, since the Authorization header's value is trimmed).
     */
    private String apiKey() {
        if (apiKey == null) {
            return null;
        }
        if (apiKey.isBlank()) {
            throw usage(spec.commandLine().getParseResult().hasMatchedOption("--api-key")
                    ? "--api-key is empty: give a key, or omit the option for no authentication"
                    : "LLAMA2J_API_KEY is set but empty: give a key, or unset it for no authentication");
        }
        return apiKey;
    }

    /**
     * No request can generate more tokens than the context holds, so a larger --max-tokens is a mistake (a
     * model other than the one meant, a missing zero?): refused rather than clamped, so that the limit the
     * operator reads in the command line is the one clients get.
     */
    private void checkMaxTokens(int seqLen) {
        if (maxTokens > seqLen) {
            throw usage("--max-tokens is " + maxTokens + ", larger than the model's context of " + seqLen
                    + " tokens (omit it or give 0 for " + seqLen + ")");
        }
    }

    /** A GGUF model's own tokenizer and chat template, else llama2.c's tokenizer and Llama 2 template. */
    private PromptFormat promptFormat(Model m, int seqLen) {
        if (m.gguf().isEmpty()) {
            if (chatTemplatePath != null) {
                throw usage("--chat-template is for GGUF models; llama2.c checkpoints chat with run.c's Llama 2 [INST] format");
            }
            return new Llama2Format(model.tokenizer(m), seqLen);
        }
        model.checkNoTokenizerForGguf();
        GgufTokenizer tokenizer = RunCommand.ggufTokenizer(m);
        ChatTemplate template = ChatTemplate.forGguf(m.gguf().get(), tokenizer, chatTemplatePath).orElse(null);
        if (template != null && chatTemplatePath != null) {
            template.requireParses(); // the server's own --chat-template: refused at start-up, not blamed on every client
        }
        return new GgufFormat(tokenizer, template, seqLen);
    }

    /**
     * The address --host names, resolved before the model is loaded: a typo ({@code 999.1.1.1}, an unknown
     * name) is a usage error found at once, not a bind failure after a long load.
     */
    private static InetAddress resolveHost(String host) {
        try {
            return InetAddress.getByName(host);
        } catch (UnknownHostException | SecurityException e) {
            throw usage("--host " + host + ": unknown host (give an IP address such as 127.0.0.1 or 0.0.0.0, or a name"
                    + " this machine resolves)");
        }
    }

    static String stem(Path p) {
        String name = p.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 ? name.substring(0, dot) : name;
    }

    private static Llama2jException usage(String message) {
        return new Llama2jException(message, Llama2jException.BAD_USAGE);
    }
}
