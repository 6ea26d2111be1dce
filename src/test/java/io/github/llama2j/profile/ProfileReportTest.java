package io.github.llama2j.profile;

import io.github.llama2j.Json;
import io.github.llama2j.profile.Profiler.Kind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Aggregation, roll-ups, JSON and trace output of the profiler, on hand-made events. */
class ProfileReportTest {
    @TempDir
    Path tmp;

    private static ProfileRecorder sample() {
        ProfileRecorder r = new ProfileRecorder();
        r.record("layer0.compile", "opencl:0:0", Kind.COMPILE, 0, 5_000_000, 0);
        r.record("weights", "opencl:0:0", Kind.TRANSFER_WEIGHTS, 0, 2_000_000, 1 << 20);
        for (int t = 0; t < 2; t++) {
            long base = 10_000_000L + t * 1_000_000L;
            r.record("layer0.qkv", "cpu", Kind.KERNEL, base, 100_000, 3_000);
            r.record("layer0.qkv", "cpu-worker-1", Kind.WORKER_SLICE, base, 90_000, 0);
            r.record("layer0.attention", "cpu", Kind.KERNEL, base + 100_000, 50_000, 1_000);
            r.record("layer1.qkv", "cpu", Kind.KERNEL, base + 150_000, 100_000, 3_000);
            r.record("logits", "cpu", Kind.COPY_OUT, base + 250_000, 10_000, 2_048);
            r.tokenDone(base, 400_000);
        }
        return r;
    }

    @Test
    void tasksLayersAndKindsRollUp() {
        ProfileReport report = new ProfileReport("test", sample());
        assertEquals(2, report.tokens());
        assertEquals(800_000, report.tokenNanos());
        assertEquals(List.of("layer0.compile", "layer0.qkv", "layer0.attention", "layer1.qkv", "logits"),
                List.copyOf(report.tasks().keySet()));
        ProfileReport.Row qkv0 = report.tasks().get("layer0.qkv");
        assertEquals(2, qkv0.calls, "worker slices are not extra calls");
        assertEquals(200_000, qkv0.kernelNanos);
        assertEquals(6_000, qkv0.bytesRead);
        assertEquals(6_000 / 200_000.0, qkv0.gigabytesPerSecond(), 1e-12);
        assertEquals(300_000, report.layers().get("layer0").kernelNanos);
        assertEquals(400_000, report.kinds().get("qkv").kernelNanos);
        assertEquals(4_096, report.tasks().get("logits").copyOutBytes);
        assertEquals(5_000_000, report.compileNanos());
        assertEquals(2_000_000, report.weightTransferNanos());
        assertTrue(report.kernelNanos() <= report.tokenNanos());
        String table = report.toTable();
        assertTrue(table.contains("layer0.attention") && table.contains("per layer") && table.contains("per kind"), table);
    }

    @Test
    @SuppressWarnings("unchecked")
    void jsonParsesAndCarriesEveryTask() {
        ProfileReport report = new ProfileReport("test", sample());
        Map<String, Object> json = (Map<String, Object>) Json.parse(report.toJson());
        assertEquals(2L, json.get("tokens"));
        List<Object> tasks = (List<Object>) json.get("tasks");
        assertEquals(5, tasks.size());
        assertEquals("layer0.qkv", ((Map<String, Object>) tasks.get(1)).get("name"));
    }

    /** An engine chosen by another (hybrid auto) says why in the table and the JSON; one asked for by name says nothing. */
    @Test
    @SuppressWarnings("unchecked")
    void selectionIsShownOnlyWhenGiven() {
        String why = "hybrid auto: the whole cpu engine (cpu), 1.00 ms/token measured [...]";
        ProfileReport chosen = new ProfileReport("cpu", sample(), 0, why);
        assertTrue(chosen.toTable().contains("engine chosen by " + why), chosen.toTable());
        assertEquals(why, ((Map<String, Object>) Json.parse(chosen.toJson())).get("engine_selection"));
        ProfileReport named = new ProfileReport("cpu", sample(), 0, null);
        assertTrue(!named.toTable().contains("engine chosen by"), named.toTable());
        assertTrue(!((Map<String, Object>) Json.parse(named.toJson())).containsKey("engine_selection"));
    }

    @Test
    @SuppressWarnings("unchecked")
    void chromeTraceParsesWithOneTrackPerDeviceAndWorker() throws IOException {
        Path file = tmp.resolve("trace.json");
        ChromeTrace.write(file, "test", sample());
        Map<String, Object> trace = (Map<String, Object>) Json.parse(Files.readString(file));
        List<Object> events = (List<Object>) trace.get("traceEvents");
        long slices = events.stream().filter(e -> "X".equals(((Map<String, Object>) e).get("ph"))).count();
        assertEquals(2 + 2 + 2 * 5, slices, "2 tokens, 2 one-off events, 5 events per token");
        long tracks = events.stream().filter(e -> "thread_name".equals(((Map<String, Object>) e).get("name"))).count();
        assertEquals(4, tracks, "tokens, opencl:0:0, cpu, cpu-worker-1");
        for (Object o : events) {
            Map<String, Object> e = (Map<String, Object>) o;
            if ("X".equals(e.get("ph"))) {
                assertTrue(((Number) e.get("ts")).doubleValue() >= 0);
                assertTrue(((Number) e.get("dur")).doubleValue() >= 0);
            }
        }
    }
}
