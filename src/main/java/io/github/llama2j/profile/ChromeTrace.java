package io.github.llama2j.profile;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes recorded events as a Chrome trace-event file (JSON object format), for Perfetto or
 * chrome://tracing: one thread track per device and per CPU worker, each kernel and copy a complete
 * ("X") slice named by its task, so overlap between GPU and CPU is visible at a glance.
 */
public final class ChromeTrace {
    private ChromeTrace() {
    }

    public static void write(Path file, String engine, ProfileRecorder recorder) throws IOException {
        List<ProfileRecorder.Event> events = recorder.events();
        long origin = Long.MAX_VALUE;
        for (ProfileRecorder.Event e : events) {
            origin = Math.min(origin, e.startNanos());
        }
        for (ProfileRecorder.Token t : recorder.tokens()) {
            origin = Math.min(origin, t.startNanos());
        }
        if (origin == Long.MAX_VALUE) {
            origin = 0;
        }
        Map<String, Integer> tids = new LinkedHashMap<>();
        tids.put("tokens", 0);
        for (ProfileRecorder.Event e : events) {
            tids.computeIfAbsent(e.track(), k -> tids.size());
        }
        try (Writer w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            w.write("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"engine\":" + ProfileReport.quote(engine) + "},\"traceEvents\":[\n");
            w.write("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":" + ProfileReport.quote("llama2j " + engine) + "}}");
            for (Map.Entry<String, Integer> t : tids.entrySet()) {
                w.write(",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" + t.getValue()
                        + ",\"args\":{\"name\":" + ProfileReport.quote(t.getKey()) + "}}");
            }
            int n = 0;
            for (ProfileRecorder.Token t : recorder.tokens()) {
                w.write(",\n" + slice("token " + n++, "token", 0, t.startNanos() - origin, t.durationNanos(), 0));
            }
            for (ProfileRecorder.Event e : events) {
                w.write(",\n" + slice(e.task(), e.kind().name().toLowerCase(java.util.Locale.ROOT), tids.get(e.track()),
                        e.startNanos() - origin, e.durationNanos(), e.bytes()));
            }
            w.write("\n]}\n");
        }
    }

    private static String slice(String name, String category, int tid, long startNanos, long durationNanos, long bytes) {
        return "{\"name\":" + ProfileReport.quote(name) + ",\"cat\":\"" + category + "\",\"ph\":\"X\",\"pid\":1,\"tid\":" + tid
                + ",\"ts\":" + micros(startNanos) + ",\"dur\":" + micros(durationNanos) + ",\"args\":{\"bytes\":" + bytes + "}}";
    }

    private static String micros(long nanos) {
        return String.format(java.util.Locale.ROOT, "%.3f", nanos / 1e3);
    }
}
