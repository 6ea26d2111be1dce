package io.github.llama2j.profile;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;
import io.github.llama2j.cli.ProfileCommand;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CPU engine's profile: the table's tasks are the engine's tasks, times add up, the trace holds them all. */
class CpuProfileTest {
    @TempDir
    Path tmp;

    @Test
    @SuppressWarnings("unchecked")
    void profileOfTheCpuEngine() throws IOException {
        try (Model m = ModelLoader.load(TestData.model("tiny_q80.bin"));
             InferenceEngine e = Engines.create(m, EngineOptions.cpu(2, false))) {
            ProfileRecorder rec = ProfileCommand.profile(e, 2, 6);
            ProfileReport report = new ProfileReport(e.name(), rec);
            assertEquals(6, report.tokens());
            assertEquals(e.taskNames(), List.copyOf(report.tasks().keySet()), "one row per task, in forward-pass order");
            for (ProfileReport.Row r : report.tasks().values()) {
                assertEquals(6, r.calls, r.name);
                assertTrue(r.kernelNanos >= 0, r.name);
            }
            assertTrue(report.kernelNanos() <= report.tokenNanos(), "kernel time within the measured token time");
            assertTrue(report.tasks().get("layer0.qkv").bytesRead > 0);

            Path trace = tmp.resolve("t.json");
            ChromeTrace.write(trace, e.name(), rec);
            Map<String, Object> json = (Map<String, Object>) Json.parse(Files.readString(trace));
            Set<String> names = new HashSet<>();
            Set<String> tracks = new HashSet<>();
            for (Object o : (List<Object>) json.get("traceEvents")) {
                Map<String, Object> ev = (Map<String, Object>) o;
                if ("X".equals(ev.get("ph"))) {
                    names.add((String) ev.get("name"));
                }
                if ("thread_name".equals(ev.get("name"))) {
                    tracks.add((String) ((Map<String, Object>) ev.get("args")).get("name"));
                }
            }
            assertTrue(names.containsAll(e.taskNames()), "every task in the trace");
            assertTrue(tracks.size() >= 3, "tokens, cpu and at least one worker track: " + tracks);
        }
    }

    /** The CPU engine runs Java, not generated kernels: --dump-kernels says so, writes nothing and is not an error. */
    @Test
    void dumpKernelsOnTheCpuEngineSaysThereAreNone() {
        Path dir = tmp.resolve("kernels");
        java.io.StringWriter out = new java.io.StringWriter(), err = new java.io.StringWriter();
        int code = io.github.llama2j.cli.Main.execute(new java.io.PrintWriter(out), new java.io.PrintWriter(err), "profile",
                TestData.model("tiny.bin").toString(), "--tokens", "1", "--warmup", "0", "--threads", "1",
                "--dump-kernels", dir.toString());
        assertEquals(0, code, err.toString());
        assertTrue(err.toString().contains("runs no generated device code"), err.toString());
        assertTrue(!Files.exists(dir), "nothing written");
        assertTrue(out.toString().contains("layer0.qkv"), "the profile itself is still printed");
    }

    /** An unwritable --trace is one line, exit 4, before anything is profiled (it was a stack trace after the run). */
    @Test
    void traceThatCannotBeWrittenFailsBeforeProfiling() throws IOException {
        Path file = tmp.resolve("file");
        Files.writeString(file, "x");
        String[][] cases = {
                {tmp.resolve("no/such/dir/t.json").toString(), ": cannot write (no folder " + tmp.resolve("no/such/dir") + ")"},
                {tmp.toString(), ": is a directory, cannot write a file there"},
                {file.resolve("t.json").toString(), ": cannot write ("}};
        for (String[] c : cases) {
            java.io.StringWriter out = new java.io.StringWriter(), err = new java.io.StringWriter();
            int code = io.github.llama2j.cli.Main.execute(new java.io.PrintWriter(out), new java.io.PrintWriter(err), "profile",
                    TestData.model("tiny.bin").toString(), "--tokens", "1", "--warmup", "0", "--threads", "1",
                    "--trace", c[0]);
            assertEquals(4, code, err.toString());
            String line = err.toString().strip();
            assertTrue(line.startsWith("llama2j: " + c[0] + c[1]), line);
            assertEquals(1, line.lines().count(), line);
            assertEquals("", out.toString(), "nothing profiled");
        }
        try (var files = Files.list(tmp)) {
            assertEquals(1, files.count(), "no probe or temp file left");
        }
    }

    @Test
    void traceIsWrittenWholeWithNoTempFileLeft() throws IOException {
        Path trace = tmp.resolve("t.json");
        java.io.StringWriter out = new java.io.StringWriter(), err = new java.io.StringWriter();
        int code = io.github.llama2j.cli.Main.execute(new java.io.PrintWriter(out), new java.io.PrintWriter(err), "profile",
                TestData.model("tiny.bin").toString(), "--tokens", "1", "--warmup", "0", "--threads", "1", "--trace", trace.toString());
        assertEquals(0, code, err.toString());
        assertTrue(Json.read(trace) instanceof Map<?, ?>);
        try (var files = Files.list(tmp)) {
            assertEquals(List.of(trace), files.toList());
        }
    }
}
