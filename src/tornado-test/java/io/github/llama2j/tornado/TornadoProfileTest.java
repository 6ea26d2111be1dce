package io.github.llama2j.tornado;

import io.github.llama2j.Json;
import io.github.llama2j.cli.Main;
import io.github.llama2j.cli.ProfileCommand;
import io.github.llama2j.profile.ChromeTrace;
import io.github.llama2j.profile.Profiler;
import io.github.llama2j.profile.ProfileRecorder;
import io.github.llama2j.profile.ProfileReport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The TornadoVM engine's profile on the test device (PoCL here): rows, times, trace and kernel sources. */
@Tag("tornado")
class TornadoProfileTest {
    @TempDir
    Path tmp;

    @Test
    void profileRowsAreTheGraphsTasksWithTornadoVmsTimes() throws IOException {
        for (String file : List.of("tiny.bin", "tiny_q80.bin")) {
            TornadoEngine e = TestEngines.engine(file);  // built without profile: setProfiler switches TornadoVM's on
            String device = e.deviceDescription().substring(e.deviceDescription().indexOf(' ') + 1);
            ProfileRecorder rec = ProfileCommand.profile(e, 2, 5);
            Map<String, Long> lastKernels = e.lastKernelTimes();   // profiler still on: the last token's record
            e.setProfiler(Profiler.NONE);
            ProfileReport report = new ProfileReport(e.name(), rec);

            // One row per task of the graph(s), in launch order, named as DeviceProfile maps the ids.
            List<String> names = e.taskNames();
            assertEquals(e.taskIds().size(), names.size(), file);
            assertEquals(names.size(), new HashSet<>(names).size(), file + ": names are unique");
            assertEquals(names, List.copyOf(report.tasks().keySet()), file);
            assertTrue(names.contains("layer0.qkv") && names.contains("layer0.w1w3_swiglu") && names.contains("classifier"),
                    names.toString());
            // float32 and Q8 alike: the norm and the quantization are fused into their consumers
            assertTrue(names.stream().noneMatch(n -> n.contains("norm") || n.contains("quant")), names.toString());

            // Every device row comes from TornadoVM's profiler: the device name in its record, a kernel time
            // above zero, the JIT time of the first execution, and the last token equal to the raw record.
            for (ProfileReport.Row r : report.tasks().values()) {
                assertEquals(5, r.calls, r.name);
                assertTrue(r.kernelNanos > 0, file + " " + r.name + ": no kernel time");
                // each kernel is compiled once: by layer 0's graph, or by the first graph named "layer"
                // (TornadoVM 5.2 recompiles every graph's last task, so w2 has JIT time in every layer)
                if (!r.name.startsWith("layer") || r.name.startsWith("layer0.") || r.name.startsWith("layer1.")) {
                    assertTrue(r.compileNanos > 0, file + " " + r.name + ": no JIT time");
                }
                assertTrue(r.bytesRead > 0, file + " " + r.name + ": no bytes");
            }
            List<ProfileRecorder.Event> kernels = rec.events().stream().filter(ev -> ev.kind() == Profiler.Kind.KERNEL).toList();
            for (ProfileRecorder.Event ev : kernels) {
                assertTrue(ev.track().startsWith("opencl:") || ev.track().startsWith("ptx:"), ev.track());
                assertTrue(ev.track().endsWith(" " + device), ev.track() + " should name " + device);
            }
            List<ProfileRecorder.Event> lastToken = kernels.subList(kernels.size() - names.size(), kernels.size());
            List<String> ids = e.taskIds();
            for (int i = 0; i < ids.size(); i++) {
                assertEquals(names.get(i), lastToken.get(i).task());
                assertEquals(lastKernels.get(names.get(i)), lastToken.get(i).durationNanos(), ids.get(i));
            }
            assertTrue(report.weightTransferNanos() > 0, "weight transfer time");

            // Times are non-negative and, per token, the device's kernel + copy + dispatch time fits in the token.
            List<ProfileRecorder.Token> tokens = rec.tokens();
            assertEquals(5, tokens.size());
            for (ProfileRecorder.Event ev : rec.events()) {
                assertTrue(ev.durationNanos() >= 0 && ev.bytes() >= 0, ev.toString());
            }
            for (ProfileRecorder.Token t : tokens) {
                long deviceNanos = 0;
                for (ProfileRecorder.Event ev : rec.events()) {
                    boolean perToken = ev.kind() == Profiler.Kind.KERNEL || ev.kind() == Profiler.Kind.COPY_IN
                            || ev.kind() == Profiler.Kind.COPY_OUT || ev.kind() == Profiler.Kind.DISPATCH;
                    if (perToken && ev.startNanos() >= t.startNanos() && ev.startNanos() < t.startNanos() + t.durationNanos()) {
                        deviceNanos += ev.durationNanos();
                    }
                }
                assertTrue(deviceNanos > 0 && deviceNanos <= t.durationNanos(), file + ": device " + deviceNanos + " ns in a token of "
                        + t.durationNanos() + " ns");
            }
            long sum = 0;
            for (ProfileReport.Row r : report.tasks().values()) {
                sum += r.kernelNanos + r.copyInNanos + r.copyOutNanos + r.dispatchNanos;
            }
            assertTrue(sum <= report.tokenNanos(), sum + " > " + report.tokenNanos());

            // The trace parses and holds every task as a kernel slice on the device's track.
            Path trace = tmp.resolve(file + ".json");
            ChromeTrace.write(trace, e.name(), rec);
            Map<String, Object> json = Json.read(trace);
            Set<String> sliced = new HashSet<>();
            Map<Object, String> trackNames = new java.util.HashMap<>();
            for (Object o : (List<?>) json.get("traceEvents")) {
                Map<?, ?> ev = (Map<?, ?>) o;
                if ("thread_name".equals(ev.get("name"))) {
                    trackNames.put(ev.get("tid"), String.valueOf(((Map<?, ?>) ev.get("args")).get("name")));
                }
            }
            for (Object o : (List<?>) json.get("traceEvents")) {
                Map<?, ?> ev = (Map<?, ?>) o;
                if ("kernel".equals(ev.get("cat"))) {
                    assertTrue(trackNames.get(ev.get("tid")).endsWith(device), String.valueOf(ev));
                    sliced.add((String) ev.get("name"));
                }
            }
            assertEquals(new HashSet<>(names), sliced, file);
            assertTrue(trackNames.containsValue(DeviceProfile.HOST_TRACK), "host work on its own track");
        }
    }

    @Test
    void profileCommandWritesTableTraceAndOneKernelSourcePerTask() throws IOException {
        Path kernels = tmp.resolve("kernels");
        Path trace = tmp.resolve("trace.json");
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new PrintWriter(out), new PrintWriter(err), "profile",
                TestEngines.models().resolve("tiny.bin").toString(), "--engine", "tornado", "--tokens", "2", "--warmup", "1",
                "--json", "--trace", trace.toString(), "--dump-kernels", kernels.toString());
        assertEquals(0, code, err.toString());
        @SuppressWarnings("unchecked")
        Map<String, Object> report = (Map<String, Object>) Json.parse(out.toString());
        List<?> tasks = (List<?>) report.get("tasks");
        Set<String> expected = new HashSet<>();
        for (Object t : tasks) {
            expected.add(((Map<?, ?>) t).get("name") + ".cl");
        }
        Set<String> written = new HashSet<>();
        try (var files = Files.list(kernels)) {
            files.forEach(f -> written.add(f.getFileName().toString()));
        }
        assertEquals(expected, written, "one OpenCL file per task, named by task");
        String qkv = Files.readString(kernels.resolve("layer0.qkv.cl"));
        assertTrue(qkv.contains("__kernel void qkvF32("), qkv.substring(0, Math.min(300, qkv.length())));
        assertTrue(Files.size(trace) > 0);
        assertTrue(Json.read(trace).containsKey("traceEvents"));
    }

    /** The forward pass is several graphs: every graph's last record is read. */
    @Test
    void severalGraphsAndAccumulatedRecords() {
        String log = record("forward0", 1, "forward0.embed", "forward0.layer0_qkv")
                + record("forward0", 2, "forward0.embed", "forward0.layer0_qkv")
                + record("forward1", 3, "forward1.layer1_w13", "forward1.classifier")
                + record("forward1", 4, "forward1.layer1_w13", "forward1.classifier");
        Map<String, ProfileLog.GraphRecord> last = ProfileLog.lastPerGraph(log, List.of("forward0", "forward1", "forward2"));
        assertEquals(Set.of("forward0", "forward1"), last.keySet());
        assertEquals(2, last.get("forward0").task("forward0.layer0_qkv", "TASK_KERNEL_TIME"));
        assertEquals(4, last.get("forward1").task("forward1.classifier", "TASK_KERNEL_TIME"));
        assertEquals(40, last.get("forward1").total("COPY_IN_TIME"));
        assertEquals("pthread-test", last.get("forward1").tasks().get("forward1.layer1_w13").get("DEVICE"));

        // The engine reads each graph's own record right after it ran; every layer's graph has the same name
        // (layer.w13 in layers 1 and 2), so graphs are told apart by their place in the plan.
        List<ForwardGraph.Task> tasks = List.of(new ForwardGraph.Task(0, "first.embed", -1, "embed"),
                new ForwardGraph.Task(0, "first.qkv", 0, "qkv"), new ForwardGraph.Task(1, "layer.w13", 1, "w13"),
                new ForwardGraph.Task(2, "layer.w13", 2, "w13"), new ForwardGraph.Task(3, "output.classifier", -1, "classifier"));
        GraphRun[] runs = {run(record("first", 1, "first.embed", "first.qkv") + record("first", 2, "first.embed", "first.qkv")),
                run(record("layer", 3, "layer.w13") + record("layer", 4, "layer.w13")), run(record("layer", 5, "layer.w13")),
                run(record("output", 6, "output.classifier"))};
        ProfileRecorder rec = new ProfileRecorder();
        DeviceProfile dp = new DeviceProfile(tasks, List.of("first", "layer", "layer", "output"),
                new TaskTraffic(TestEngines.model("tiny.bin").config()), "opencl:0:0");
        assertEquals(List.of("embed", "layer0.qkv", "layer1.w1w3_swiglu", "layer2.w1w3_swiglu", "classifier"), dp.names());
        dp.recordToken(rec, 1000, 1_000_000, runs, 3);
        List<ProfileRecorder.Event> k = rec.events().stream().filter(e -> e.kind() == Profiler.Kind.KERNEL).toList();
        assertEquals(List.of(2L, 2L, 4L, 5L, 6L), k.stream().map(ProfileRecorder.Event::durationNanos).toList());
        assertEquals("opencl:0:0 pthread-test", k.get(0).track());
        // Same task name twice: the graph stays in the name so rows never merge.
        assertEquals(List.of("embed", "first1.embed"), new DeviceProfile(List.of(new ForwardGraph.Task(0, "first.embed", -1, "embed"),
                new ForwardGraph.Task(1, "first.embed", -1, "embed")), List.of("first", "first"), null, "t").names());
    }

    private static GraphRun run(String log) {
        return new GraphRun(log, 0, 0, 0, 0, 0, 0, 0);
    }

    private static String record(String graph, int kernel, String... tasks) {
        StringBuilder b = new StringBuilder("{\n    \"" + graph + "\": {\n        \"COPY_IN_TIME\": \"" + kernel * 10 + "\",\n"
                + "        \"TOTAL_COPY_IN_SIZE_BYTES\": \"24\",\n");
        for (int i = 0; i < tasks.length; i++) {
            b.append("        \"").append(tasks[i]).append("\": {\n            \"DEVICE\": \"pthread-test\",\n")
                    .append("            \"POWER_USAGE_mW\": \"n/a\",\n            \"TASK_KERNEL_TIME\": \"").append(kernel)
                    .append("\"\n        }").append(i < tasks.length - 1 ? ", " : "").append('\n');
        }
        return b.append("    }\n}\n").toString();
    }

    /**
     * A GGUF model's tasks count the weights they stream (the profile's GB/s): every product of every kind has bytes,
     * the tied Q8_0 classifier exactly the embedding's blocks as the device holds them (32 int8 values and a float
     * scale: 36 bytes per 32 values), attention its cache.
     */
    @Test
    void ggufTasksCountTheirWeights() {
        try (io.github.llama2j.model.Model m = io.github.llama2j.model.GgufModelLoader.load(
                TestEngines.gguf().resolve("models/llama3-tiny-q8_0.gguf"))) {
            io.github.llama2j.model.Configuration c = m.config();
            ForwardGraph fg = new ForwardGraph(c, m.weights(), TornadoSettings.load("CPU"));
            fg.build();
            TaskTraffic traffic = new TaskTraffic(c, fg.ggmlWeightBytes());
            for (ForwardGraph.Task t : fg.tasks()) {
                if (!t.kind().equals("embed")) {
                    assertTrue(traffic.bytesRead(t.kind(), 3) > 0, t.kind() + ": no bytes");
                }
            }
            assertEquals((long) c.vocabSize() * c.dim() / 32 * 36, traffic.bytesRead("classifier_q8", 0));
            assertTrue(traffic.bytesRead("attention", 7) > traffic.bytesRead("attention", 3), "attention reads the cache up to pos");
        }
    }

    @Test
    void dumpKernelsWithoutARequestIsAClearError() {
        var ex = org.junit.jupiter.api.Assertions.assertThrows(io.github.llama2j.Llama2jException.class,
                () -> TestEngines.engine("tiny.bin").dumpKernels(tmp.resolve("k")));
        assertTrue(ex.getMessage().contains("--dump-kernels"), ex.getMessage());
    }
}
