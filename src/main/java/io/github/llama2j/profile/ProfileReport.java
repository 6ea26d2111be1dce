package io.github.llama2j.profile;

import io.github.llama2j.profile.Profiler.Kind;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The per-task table of a profiled run: one row per named task, then roll-ups per layer and per
 * kind of task ({@code layer3.attention} → layer 3, kind {@code attention}), then the one-off costs.
 */
public final class ProfileReport {
    private static final Pattern LAYER = Pattern.compile("^layer(\\d+)\\.(.+)$");

    /** Totals for one task (or one roll-up group) over the profiled tokens. */
    public static final class Row {
        public final String name;
        public long calls;
        public long kernelNanos;
        public long bytesRead;
        public long copyInBytes, copyInNanos, copyOutBytes, copyOutNanos;
        public long dispatchNanos;
        public long exchangeNanos, exchangeBytes;
        public long compileNanos;

        Row(String name) {
            this.name = name;
        }

        void add(ProfileRecorder.Event e) {
            switch (e.kind()) {
                case KERNEL -> {
                    calls++;
                    kernelNanos += e.durationNanos();
                    bytesRead += e.bytes();
                }
                case COPY_IN -> {
                    copyInNanos += e.durationNanos();
                    copyInBytes += e.bytes();
                }
                case COPY_OUT -> {
                    copyOutNanos += e.durationNanos();
                    copyOutBytes += e.bytes();
                }
                case DISPATCH -> dispatchNanos += e.durationNanos();
                case EXCHANGE -> {
                    exchangeNanos += e.durationNanos();
                    exchangeBytes += e.bytes();
                }
                case COMPILE -> compileNanos += e.durationNanos();
                default -> {
                }
            }
        }

        void addAll(Row r) {
            calls += r.calls;
            kernelNanos += r.kernelNanos;
            bytesRead += r.bytesRead;
            copyInBytes += r.copyInBytes;
            copyInNanos += r.copyInNanos;
            copyOutBytes += r.copyOutBytes;
            copyOutNanos += r.copyOutNanos;
            dispatchNanos += r.dispatchNanos;
            exchangeNanos += r.exchangeNanos;
            exchangeBytes += r.exchangeBytes;
            compileNanos += r.compileNanos;
        }

        /** Achieved read bandwidth of the kernel, GB/s. */
        public double gigabytesPerSecond() {
            return kernelNanos == 0 ? 0 : (double) bytesRead / kernelNanos;
        }
    }

    private final String engine;
    private final int tokens;
    private final long tokenNanos;
    private final Map<String, Row> tasks = new LinkedHashMap<>();
    private final Map<String, Row> layers = new LinkedHashMap<>();
    private final Map<String, Row> kinds = new LinkedHashMap<>();
    private long weightTransferNanos, weightTransferBytes, compileNanos;
    private final int launchesPerToken;
    private final int graphsPerToken;
    private final String selection;

    public ProfileReport(String engine, ProfileRecorder recorder) {
        this(engine, recorder, 0, null);
    }

    /**
     * @param launchesPerToken device kernel launches per token ({@code InferenceEngine.launchesPerToken()}), 0 for none
     * @param selection        why the engine runs when another chose it ({@code InferenceEngine.selection()}), or null
     */
    public ProfileReport(String engine, ProfileRecorder recorder, int launchesPerToken, String selection) {
        this(engine, recorder, launchesPerToken, 0, selection);
    }

    /** @param graphsPerToken task-graph executions per token ({@code InferenceEngine.graphsPerToken()}), 0 for none */
    public ProfileReport(String engine, ProfileRecorder recorder, int launchesPerToken, int graphsPerToken, String selection) {
        this.engine = engine;
        this.launchesPerToken = launchesPerToken;
        this.graphsPerToken = graphsPerToken;
        this.selection = selection;
        List<ProfileRecorder.Token> ts = recorder.tokens();
        this.tokens = ts.size();
        this.tokenNanos = ts.stream().mapToLong(ProfileRecorder.Token::durationNanos).sum();
        for (ProfileRecorder.Event e : recorder.events()) {
            if (e.kind() == Kind.WORKER_SLICE || e.kind() == Kind.HOST) {
                continue;
            }
            if (e.kind() == Kind.TRANSFER_WEIGHTS) {
                weightTransferNanos += e.durationNanos();
                weightTransferBytes += e.bytes();
                continue;
            }
            if (e.kind() == Kind.COMPILE) {
                compileNanos += e.durationNanos();
            }
            tasks.computeIfAbsent(e.task(), Row::new).add(e);
        }
        for (Row r : tasks.values()) {
            Matcher m = LAYER.matcher(r.name);
            String layer = m.matches() ? "layer" + m.group(1) : r.name;
            String kind = m.matches() ? m.group(2) : r.name;
            layers.computeIfAbsent(layer, Row::new).addAll(r);
            kinds.computeIfAbsent(kind, Row::new).addAll(r);
        }
    }

    public String engine() {
        return engine;
    }

    public int tokens() {
        return tokens;
    }

    public long tokenNanos() {
        return tokenNanos;
    }

    public Map<String, Row> tasks() {
        return tasks;
    }

    public Map<String, Row> layers() {
        return layers;
    }

    public Map<String, Row> kinds() {
        return kinds;
    }

    public long weightTransferNanos() {
        return weightTransferNanos;
    }

    public long compileNanos() {
        return compileNanos;
    }

    /** Sum of the kernel time of all tasks. */
    public long kernelNanos() {
        return tasks.values().stream().mapToLong(r -> r.kernelNanos).sum();
    }

    // ---------------------------------------------------------------- text table

    public String toTable() {
        StringBuilder b = new StringBuilder();
        double perToken = tokens == 0 ? 0 : tokenNanos / 1e3 / tokens;
        b.append(String.format(Locale.ROOT, "engine %s: %d tokens profiled, %.1f us per token (%.2f tok/s), kernels %.1f%% of it%n",
                engine, tokens, perToken, tokens == 0 || tokenNanos == 0 ? 0 : tokens * 1e9 / tokenNanos,
                tokenNanos == 0 ? 0 : 100.0 * kernelNanos() / tokenNanos));
        if (launchesPerToken > 0) {
            b.append(String.format(Locale.ROOT, "%d device kernel launches per token", launchesPerToken))
                    .append(graphsPerToken > 0 ? String.format(Locale.ROOT, " in %d graph executions", graphsPerToken) : "")
                    .append(System.lineSeparator());
        }
        if (selection != null) {
            b.append("engine chosen by ").append(selection).append(System.lineSeparator());
        }
        section(b, "per task", tasks);
        section(b, "per layer", layers);
        section(b, "per kind", kinds);
        b.append(String.format(Locale.ROOT, "one-off: JIT compilation %.1f ms, weight transfer %.1f ms (%s)%n",
                compileNanos / 1e6, weightTransferNanos / 1e6, bytes(weightTransferBytes)));
        return b.toString();
    }

    private void section(StringBuilder b, String title, Map<String, Row> rows) {
        b.append(String.format(Locale.ROOT, "%n%-24s %7s %10s %9s %6s %10s %8s %10s %9s %10s %9s %9s %9s%n",
                title, "calls", "total ms", "mean us", "share", "read/call", "GB/s", "in/token", "in us", "out/token",
                "out us", "disp us", "jit ms"));
        for (Row r : rows.values()) {
            double perTok = Math.max(1, tokens);
            b.append(String.format(Locale.ROOT, "%-24s %7d %10.3f %9.2f %5.1f%% %10s %8.2f %10s %9.2f %10s %9.2f %9.2f %9.1f%n",
                    r.name, r.calls, r.kernelNanos / 1e6, r.calls == 0 ? 0 : r.kernelNanos / 1e3 / r.calls,
                    tokenNanos == 0 ? 0 : 100.0 * r.kernelNanos / tokenNanos,
                    bytes(r.calls == 0 ? 0 : r.bytesRead / r.calls), r.gigabytesPerSecond(),
                    bytes((long) (r.copyInBytes / perTok)), r.copyInNanos / 1e3 / perTok,
                    bytes((long) (r.copyOutBytes / perTok)), r.copyOutNanos / 1e3 / perTok,
                    r.dispatchNanos / 1e3 / perTok, r.compileNanos / 1e6));
        }
    }

    static String bytes(long n) {
        if (n < 1024) {
            return n + " B";
        }
        if (n < 1024 * 1024) {
            return String.format(Locale.ROOT, "%.1f KiB", n / 1024.0);
        }
        if (n < 1024L * 1024 * 1024) {
            return String.format(Locale.ROOT, "%.1f MiB", n / 1048576.0);
        }
        return String.format(Locale.ROOT, "%.2f GiB", n / 1073741824.0);
    }

    // ---------------------------------------------------------------- JSON

    public String toJson() {
        StringBuilder b = new StringBuilder();
        b.append("{\"engine\":").append(quote(engine))
                .append(",\"tokens\":").append(tokens)
                .append(",\"token_ns\":").append(tokenNanos)
                .append(",\"kernel_ns\":").append(kernelNanos())
                .append(",\"compile_ns\":").append(compileNanos)
                .append(",\"weight_transfer_ns\":").append(weightTransferNanos)
                .append(",\"weight_transfer_bytes\":").append(weightTransferBytes)
                .append(",\"launches_per_token\":").append(launchesPerToken);
        if (graphsPerToken > 0) {
            b.append(",\"graphs_per_token\":").append(graphsPerToken);
        }
        if (selection != null) {
            b.append(",\"engine_selection\":").append(quote(selection));
        }
        rowsJson(b, "tasks", tasks);
        rowsJson(b, "layers", layers);
        rowsJson(b, "kinds", kinds);
        return b.append('}').toString();
    }

    private static void rowsJson(StringBuilder b, String key, Map<String, Row> rows) {
        b.append(",\"").append(key).append("\":[");
        List<String> items = new ArrayList<>();
        for (Row r : rows.values()) {
            items.add("{\"name\":" + quote(r.name) + ",\"calls\":" + r.calls + ",\"kernel_ns\":" + r.kernelNanos
                    + ",\"bytes_read\":" + r.bytesRead + ",\"gb_per_s\":" + String.format(Locale.ROOT, "%.4f", r.gigabytesPerSecond())
                    + ",\"copy_in_bytes\":" + r.copyInBytes + ",\"copy_in_ns\":" + r.copyInNanos
                    + ",\"copy_out_bytes\":" + r.copyOutBytes + ",\"copy_out_ns\":" + r.copyOutNanos
                    + ",\"dispatch_ns\":" + r.dispatchNanos + ",\"exchange_ns\":" + r.exchangeNanos
                    + ",\"exchange_bytes\":" + r.exchangeBytes + ",\"compile_ns\":" + r.compileNanos + "}");
        }
        b.append(String.join(",", items)).append(']');
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
