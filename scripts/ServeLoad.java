import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A load generator for {@code llama2j serve} (or any OpenAI-compatible server): N clients send M
 * requests in all to /v1/chat/completions, each with its own seed, and it reports requests/s, completion
 * tokens/s (from the answers' usage), and latency percentiles (and time to first token when streaming).
 * JDK only, so it runs as a single-file program:
 *
 * <pre>
 *   java scripts/ServeLoad.java http://127.0.0.1:8080/v1 [--clients 8] [--requests 64] [--max-tokens 64]
 *        [--stream] [--api-key KEY] [--model ID] [--prompt TEXT]
 * </pre>
 */
public class ServeLoad {
    static final Pattern COMPLETION_TOKENS = Pattern.compile("\"completion_tokens\"\\s*:\\s*(\\d+)");

    record Sample(int status, double latencyMs, double firstTokenMs, int tokens) {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args[0].startsWith("-")) {
            System.err.println("usage: java scripts/ServeLoad.java BASE_URL [--clients N] [--requests M] [--max-tokens T]"
                    + " [--stream] [--api-key KEY] [--model ID] [--prompt TEXT]");
            System.exit(2);
        }
        String base = args[0].replaceAll("/+$", "");
        int clients = 8, requests = 64, maxTokens = 64;
        boolean stream = false;
        String key = System.getenv("LLAMA2J_API_KEY"), model = null, prompt = "Tell me a story about a cat.";
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--clients" -> clients = Integer.parseInt(args[++i]);
                case "--requests" -> requests = Integer.parseInt(args[++i]);
                case "--max-tokens" -> maxTokens = Integer.parseInt(args[++i]);
                case "--stream" -> stream = true;
                case "--api-key" -> key = args[++i];
                case "--model" -> model = args[++i];
                case "--prompt" -> prompt = args[++i];
                default -> {
                    System.err.println("unknown option " + args[i]);
                    System.exit(2);
                }
            }
        }
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
        AtomicInteger next = new AtomicInteger();
        AtomicInteger errors = new AtomicInteger();
        List<Sample> samples = Collections.synchronizedList(new ArrayList<>());
        final int total = requests, max = maxTokens;
        final boolean streamed = stream;
        final String apiKey = key, modelId = model, text = prompt;
        long start = System.nanoTime();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> running = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                running.add(pool.submit(() -> {
                    for (int i; (i = next.getAndIncrement()) < total; ) {
                        try {
                            samples.add(one(http, base, apiKey, modelId, text, max, i + 1, streamed));
                        } catch (java.io.IOException e) {
                            samples.add(new Sample(-1, -1, -1, 0)); // no answer: counted with the other errors
                            if (errors.getAndIncrement() == 0) {
                                System.err.println("ServeLoad: " + e);
                            }
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : running) {
                f.get();
            }
        }
        double wall = (System.nanoTime() - start) / 1e9;
        List<Sample> ok = samples.stream().filter(s -> s.status() == 200).toList();
        long busy = samples.stream().filter(s -> s.status() == 503).count();
        long tokens = ok.stream().mapToLong(Sample::tokens).sum();
        System.out.printf(Locale.ROOT, "%d requests, %d clients, max_tokens %d, %s: %d ok, %d got 503, %d other errors%n",
                total, clients, maxTokens, stream ? "streamed" : "not streamed", ok.size(), busy, samples.size() - ok.size() - busy);
        System.out.printf(Locale.ROOT, "wall %.2f s: %.2f requests/s, %.1f completion tokens/s (%d tokens)%n",
                wall, ok.size() / wall, tokens / wall, tokens);
        System.out.println("latency ms        " + percentiles(ok.stream().map(Sample::latencyMs).toList()));
        if (stream) {
            System.out.println("first token ms    " + percentiles(ok.stream().map(Sample::firstTokenMs).filter(t -> t >= 0).toList()));
        }
    }

    static Sample one(HttpClient http, String base, String key, String model, String prompt, int maxTokens, int seed, boolean stream)
            throws Exception {
        String body = "{" + (model == null ? "" : "\"model\": " + quote(model) + ", ")
                + "\"messages\": [{\"role\": \"user\", \"content\": " + quote(prompt) + "}], \"max_tokens\": " + maxTokens
                + ", \"seed\": " + seed + (stream ? ", \"stream\": true, \"stream_options\": {\"include_usage\": true}" : "") + "}";
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + "/chat/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body));
        if (key != null && !key.isEmpty()) {
            b.header("Authorization", "Bearer " + key);
        }
        long t0 = System.nanoTime();
        HttpResponse<java.io.InputStream> r = http.send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
        double first = -1;
        int tokens = 0;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (first < 0 && stream && line.contains("\"content\":\"") && !line.contains("\"content\":\"\"")) {
                    first = (System.nanoTime() - t0) / 1e6;
                }
                Matcher m = COMPLETION_TOKENS.matcher(line);
                if (m.find()) {
                    tokens = Integer.parseInt(m.group(1));
                }
            }
        }
        return new Sample(r.statusCode(), (System.nanoTime() - t0) / 1e6, first, tokens);
    }

    static String percentiles(List<Double> values) {
        if (values.isEmpty()) {
            return "-";
        }
        List<Double> v = new ArrayList<>(values);
        Collections.sort(v);
        return String.format(Locale.ROOT, "p50 %.1f  p90 %.1f  p99 %.1f  max %.1f", at(v, 0.50), at(v, 0.90), at(v, 0.99), v.getLast());
    }

    /** Nearest-rank percentile. */
    static double at(List<Double> sorted, double p) {
        int rank = (int) Math.ceil(p * sorted.size());
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, rank - 1)));
    }

    /** A JSON string literal: quotes, backslashes and control characters as JSON unicode escapes. */
    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        s.chars().forEach(c -> b.append(c < 0x20 || c == '"' || c == '\\' ? String.format("\\u%04x", c) : String.valueOf((char) c)));
        return b.append('"').toString();
    }
}
