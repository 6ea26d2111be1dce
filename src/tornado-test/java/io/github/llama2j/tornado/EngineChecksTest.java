package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.cli.Main;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.model.Model;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** No silent fallback, the device memory check, device selection, bytes per token, and {@code llama2j devices}. */
@Tag("tornado")
class EngineChecksTest {

    static EngineOptions tornado(String device) {
        return new EngineOptions("tornado", 1, false, device, Double.NaN, false, false);
    }

    @Test
    void everyTaskOfTheGraphRanOnTheDevice() {
        for (String file : List.of("tiny.bin", "tiny_q80.bin")) {
            TornadoEngine e = TestEngines.engine(file);
            int layers = e.config().nLayers();
            List<String> ids = e.taskIds();
            assertEquals(5 * layers + 2, ids.size(), file + ": one task per kernel launch, float32 and Q8 alike");
            // two layers per graph, every graph named alike; slot 1's tasks carry "_1"
            assertEquals((layers + 1) / 2, e.graphsPerToken(), file);
            assertEquals(ForwardGraph.GRAPH + ".embed", ids.get(0));
            assertEquals(ForwardGraph.GRAPH + ".qkv", ids.get(1));
            assertTrue(ids.contains(ForwardGraph.GRAPH + ".attention_1"), ids.toString());
            assertEquals(Math.min(layers, 2) * 5 + 2, new java.util.HashSet<>(ids).size(), "distinct ids (kernels): " + ids);
            assertEquals(ForwardGraph.GRAPH + ".classifier", ids.get(ids.size() - 1));
            Map<String, TaskVerifier.TaskRun> runs = e.firstRun();
            String device = e.deviceDescription().substring(e.deviceDescription().indexOf(' ') + 1);
            for (String id : ids) {
                TaskVerifier.TaskRun r = runs.get(id);
                assertTrue(r != null && r.kernelNanos() > 0, file + ": " + id + " has no device kernel time");
                assertEquals(device, r.device(), id);
            }
        }
    }

    @Test
    void verifierNamesATaskThatDidNotRunOnTheDevice() {
        String log = """
                {
                    "forward": {
                        "TOTAL_KERNEL_TIME": "10",
                        "forward.embed": {
                            "BACKEND": "OPENCL",
                            "METHOD": "TransformerKernels.embedF32",
                            "DEVICE_ID": "0:0",
                            "DEVICE": "gpu0",
                            "TASK_KERNEL_TIME": "5"
                        },
                        "forward.layer0_qkv": {
                            "BACKEND": "OPENCL",
                            "METHOD": "TransformerKernels.qkvF32",
                            "DEVICE_ID": "0:0",
                            "DEVICE": "gpu0",
                            "TASK_KERNEL_TIME": "0"
                        }
                    }
                }
                """;
        Map<String, TaskVerifier.TaskRun> runs = TaskVerifier.parse(log);
        TaskVerifier.verify(List.of("forward.embed"), runs, "gpu0");
        Llama2jException zero = assertThrows(Llama2jException.class,
                () -> TaskVerifier.verify(List.of("forward.embed", "forward.layer0_qkv"), runs, "gpu0"));
        assertTrue(zero.getMessage().contains("forward.layer0_qkv") && zero.getMessage().contains("no device kernel time"),
                zero.getMessage());
        Llama2jException missing = assertThrows(Llama2jException.class,
                () -> TaskVerifier.verify(List.of("forward.classifier"), runs, "gpu0"));
        assertTrue(missing.getMessage().contains("forward.classifier"), missing.getMessage());
        Llama2jException other = assertThrows(Llama2jException.class,
                () -> TaskVerifier.verify(List.of("forward.embed"), runs, "gpu1"));
        assertTrue(other.getMessage().contains("gpu0") && other.getMessage().contains("gpu1"), other.getMessage());
        // Captured into CUDA graphs: no per-task kernel time and possibly no record, but never another device.
        TaskVerifier.verify(List.of("forward.embed", "forward.layer0_qkv", "forward.classifier"), runs, "gpu0", true);
        Llama2jException capturedElsewhere = assertThrows(Llama2jException.class,
                () -> TaskVerifier.verify(List.of("forward.layer0_qkv"), runs, "gpu1", true));
        assertTrue(capturedElsewhere.getMessage().contains("forward.layer0_qkv") && capturedElsewhere.getMessage().contains("gpu1"),
                capturedElsewhere.getMessage());
    }

    /**
     * {@code cuda.graph}: true/false per device type or by system property, on for GPUs, anything else refused; on a
     * device without CUDA graphs (PoCL's OpenCL here) the engine launches task by task and computes the same logits
     * (TornadoVM would throw if asked to capture a graph there).
     */
    @Test
    void cudaGraphSettingIsReadCheckedAndIgnoredWithoutCuda() {
        assertTrue(TornadoSettings.load("GPU").cudaGraph(), "on for GPUs (measured on an H200)");
        assertFalse(TornadoSettings.load("CPU").cudaGraph(), "off elsewhere");
        assertTrue(loadWith("cuda.graph", "TRUE").cudaGraph());
        refused("cuda.graph", "yes", "not true or false");
        Model m = TestEngines.model("tiny.bin");
        TornadoEngine plain = TestEngines.engine("tiny.bin");
        float[] expected = plain.forward(5, 0).clone();
        try (TornadoEngine graphs = new TornadoEngine(m, tornado(null), TornadoSettings.load("CPU").withCudaGraph(true))) {
            assertFalse(graphs.cudaGraphs(), "PoCL's OpenCL device has no CUDA graphs");
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected, graphs.forward(5, 0));
        }
    }

    /**
     * {@code graph.layers}: 2 unless the device profile says otherwise, checked, and read by the engine: tiny.bin's 5 layers
     * make 3 graphs at 2 layers per graph and 1 at 8, and every graph size computes the same logits bit for bit (the
     * same kernels; only where TornadoVM's executions begin and end moves).
     */
    @Test
    void graphLayersSettingPacksLayersAndKeepsTheLogits() {
        assertEquals(TornadoSettings.DEFAULT_GRAPH_LAYERS, TornadoSettings.load("GPU").graphLayers());
        assertEquals(2, TornadoSettings.load("CPU").graphLayers());
        refused("graph.layers", "0", "[1, 1024]");
        assertEquals(3, loadWith("graph.layers", "3").graphLayers());
        Model m = TestEngines.model("tiny.bin");
        TornadoEngine two = TestEngines.engine("tiny.bin");
        assertEquals(3, two.graphsPerToken());
        try (TornadoEngine one = new TornadoEngine(m, tornado(null), TornadoSettings.load("CPU").withGraphLayers(8))) {
            assertEquals(1, one.graphsPerToken(), "5 layers in one graph");
            int token = 5;
            for (int pos = 0; pos < 3; pos++) {
                float[] a = two.forward(token, pos).clone();
                org.junit.jupiter.api.Assertions.assertArrayEquals(a, one.forward(token, pos), "position " + pos);
                token = io.github.llama2j.sampling.Sampler.argmax(a, a.length);
            }
        }
    }

    /**
     * {@code q8.rows}: 16 on GPUs, 1 on CPUs, at most matmul.local; the Q8_0 kernels are gridded with it and the float
     * ones with matmul.rows (checked on the grids the engine schedules: tiny_q80's qkv has (64 + 2 × 32) / 2 = 64
     * pairs, its classifier 512 rows).
     */
    @Test
    void q8RowsSettingGridsTheQ8KernelsOnly() {
        assertEquals(16, TornadoSettings.load("GPU").q8Rows());
        assertEquals(4, TornadoSettings.load("GPU").matmulRows());
        assertEquals(1, TornadoSettings.load("CPU").q8Rows());
        refused("q8.rows", "32", "more than matmul.local");
        TornadoSettings s = TornadoSettings.load("CPU");
        s = new TornadoSettings(s.matmulLocal(), 1, s.attentionLocal(), s.quantizeLocal(), s.normPartials(), s.normLocal(),
                s.memoryLimit(), s.attentionSplits(), s.attentionChunk(), false, 2, 4);
        int local = s.matmulLocal();
        Model q8Model = TestEngines.model("tiny_q80.bin");
        ForwardGraph q8 = new ForwardGraph(q8Model.config(), q8Model.weights(), s);
        q8.build();
        assertEquals(ForwardGraph.groupsFor(64, 4) * local, global(q8, "forward.qkv"), "Q8 qkv at q8.rows");
        assertEquals(ForwardGraph.groupsFor(512, 4) * local, global(q8, "forward.classifier"), "Q8 classifier at q8.rows");
        ForwardGraph f32 = new ForwardGraph(TestEngines.model("tiny.bin").config(), TestEngines.model("tiny.bin").weights(), s);
        f32.build();
        assertEquals(ForwardGraph.groupsFor(512, 1) * local, global(f32, "forward.classifier"), "float classifier at matmul.rows");
    }

    /** {@link TornadoSettings#load} for a CPU device with {@code -Dllama2j.tornado.KEY=value} set; the property cleared after. */
    private static TornadoSettings loadWith(String key, String value) {
        System.setProperty(TornadoSettings.PREFIX + key, value);
        try {
            return TornadoSettings.load("CPU");
        } finally {
            System.clearProperty(TornadoSettings.PREFIX + key);
        }
    }

    /** {@link #loadWith} refuses the value: one error naming the setting, the value and {@code why}. */
    private static void refused(String key, String value, String why) {
        Llama2jException e = assertThrows(Llama2jException.class, () -> loadWith(key, value));
        String m = e.getMessage();
        assertTrue(m.contains(key) && (m.contains(" is " + value + ",") || m.contains(" is '" + value + "'")) && m.contains(why), m);
    }

    private static long global(ForwardGraph g, String task) {
        return g.gridScheduler().get(task).getGlobalWork()[0];
    }

    /** A kernel TornadoVM cannot compile must be an error under our flags, not plain Java in disguise. */
    @Test
    void aKernelThatCannotBeCompiledFailsInsteadOfFallingBack() {
        TornadoRuntimeCheck.requireNoBailoutRecovery();
        assertEquals("false", System.getProperty("tornado.recover.bailout").toLowerCase());
        FloatArray a = FloatArray.fromElements(1, 2, 3, 4);
        FloatArray out = new FloatArray(4);
        boolean threw = false;
        try {
            TaskGraph tg = new TaskGraph("bad").transferToDevice(DataTransferMode.FIRST_EXECUTION, a)
                    .task("uncompilable", EngineChecksTest::uncompilable, a, out)
                    .transferToHost(DataTransferMode.EVERY_EXECUTION, out);
            try (TornadoExecutionPlan plan = new TornadoExecutionPlan(tg.snapshot())) {
                plan.withProfiler(ProfilerMode.SILENT).execute();
            }
        } catch (Exception | Error e) {
            threw = true;
        }
        assertTrue(threw, "TornadoVM ran an uncompilable task without an error (silent fallback to Java)");
    }

    /** Not compilable by TornadoVM: it allocates a Java object and calls into the JDK's string machinery. */
    static void uncompilable(FloatArray a, FloatArray out) {
        for (@uk.ac.manchester.tornado.api.annotations.Parallel int i = 0; i < a.getSize(); i++) {
            out.set(i, Float.parseFloat(String.valueOf(a.get(i)) + "1"));
        }
    }

    @Test
    void aModelLargerThanTheDeviceMemoryIsAClearError() {
        Model model = TestEngines.model("tiny.bin");
        TornadoSettings oneMiB = TornadoSettings.load("CPU").withMemoryLimit(1 << 20);
        Llama2jException e = assertThrows(Llama2jException.class, () -> new TornadoEngine(model, tornado(null), oneMiB));
        assertEquals(Llama2jException.UNAVAILABLE, e.exitCode());
        String m = e.getMessage();
        assertTrue(m.contains("tiny.bin does not fit"), m);
        // 1,731,768 bytes for the token-by-token graphs + 2,284,040 for the batched prefill's 128-token chunk buffers
        assertTrue(m.contains("4015808 bytes") && m.contains("1048576 bytes"), "both numbers: " + m);
        assertTrue(m.contains("KV cache") && m.contains("memory limit"), m);
        // an engine built without the batched prefill does not count its buffers
        Llama2jException noPrefill = assertThrows(Llama2jException.class,
                () -> new TornadoEngine(DeviceSession.open(null), model, tornado(null), oneMiB, 0));
        assertTrue(noPrefill.getMessage().contains("1731768 bytes"), noPrefill.getMessage());
    }

    @Test
    void aDeviceThatDoesNotExistIsAClearError() {
        Model model = TestEngines.model("tiny.bin");
        Llama2jException noBackend = assertThrows(Llama2jException.class, () -> new TornadoEngine(model, tornado("7:0")));
        assertTrue(noBackend.getMessage().contains("no backend 7"), noBackend.getMessage());
        Llama2jException noDevice = assertThrows(Llama2jException.class, () -> new TornadoEngine(model, tornado("0:9")));
        assertTrue(noDevice.getMessage().contains("has no device 9"), noDevice.getMessage());
        Llama2jException bad = assertThrows(Llama2jException.class, () -> new TornadoEngine(model, tornado("gpu")));
        assertEquals(Llama2jException.BAD_USAGE, bad.exitCode());
    }

    @Test
    void perTokenOnlyTheTokenGoesInAndTheLogitsComeOut() {
        TornadoEngine e = TestEngines.engine("tiny.bin");
        // in: [token, pos] plus TornadoVM's per-launch kernel-argument records; out: the logits array
        assertTrue(e.bytesInPerToken() < 64L * (e.taskIds().size() + 1), "bytes in per token: " + e.bytesInPerToken());
        long logits = 4L * e.config().vocabSize();
        // (TornadoVM counts the array's header with it: 128 bytes with llama2j-tornado.flags, see AlignedDataTest)
        long header = uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray.ARRAY_HEADER;
        assertTrue(e.bytesOutPerToken() >= logits && e.bytesOutPerToken() <= logits + header + 64, "bytes out: " + e.bytesOutPerToken());
        // everything but the KV cache and the batched prefill's chunk buffers (device-only, never copied in)
        long deviceOnly = e.config().seqLen() * 2L * e.config().kvDim() * 4 * e.config().nLayers()
                + PrefillGraph.bytes(e.config(), Math.min(PrefillGraph.CHUNK, e.config().seqLen()));
        assertTrue(e.loadTimes().transferBytes() >= e.deviceBytes() - deviceOnly - 65536, "the first execution transferred the weights");
    }

    @Test
    void devicesCommandListsTheDefaultDevice() {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.execute(new PrintWriter(out), new PrintWriter(err), "devices");
        assertEquals(0, code, err.toString());
        String text = out.toString();
        assertTrue(text.contains("backend 0: opencl"), text);
        assertTrue(text.contains("0:0") && text.contains("(default)") && text.contains("global memory")
                && text.contains("max work-group"), text);
        assertFalse(text.isBlank());
    }

    @Test
    void settingsRejectWorkGroupsThatAreNotPowersOfTwo() {
        Llama2jException e = assertThrows(Llama2jException.class, () -> new TornadoSettings(24, 1, 16, 16, 2, 16, 0));
        assertTrue(e.getMessage().contains("matmul.local") && e.getMessage().contains("power of two"), e.getMessage());
        e = assertThrows(Llama2jException.class, () -> new TornadoSettings(16, 3, 16, 16, 2, 16, 0));
        assertTrue(e.getMessage().contains("matmul.rows") && e.getMessage().contains("power of two"), e.getMessage());
        e = assertThrows(Llama2jException.class, () -> new TornadoSettings(16, 32, 16, 16, 2, 16, 0));
        assertTrue(e.getMessage().contains("matmul.rows") && e.getMessage().contains("matmul.local"), e.getMessage());
        assertEquals(16, new TornadoSettings(16, 16, 16, 16, 2, 16, 0).matmulRows(), "one work-item per row is allowed");
        assertEquals(1, TornadoSettings.load("CPU").matmulRows(), "PoCL: one row per work-group");
        assertEquals(4, TornadoSettings.load("GPU").matmulRows(), "GPU: a 32-wide slice per row of a 128-wide work-group");
        assertEquals(2L << 30, TornadoSettings.parseSize("memory.limit", "2GB"));
        assertEquals(512L << 20, TornadoSettings.parseSize("memory.limit", "512MiB"));
        assertThrows(Llama2jException.class, () -> TornadoSettings.parseSize("memory.limit", "lots"));
        e = assertThrows(Llama2jException.class, () -> new TornadoSettings(16, 1, 16, 16, 2, 16, 0, 0, 256));
        assertTrue(e.getMessage().contains("attention.splits"), e.getMessage());
        e = assertThrows(Llama2jException.class, () -> TornadoSettings.load("CPU").withAttentionSplit(4, 0));
        assertTrue(e.getMessage().contains("attention.chunk"), e.getMessage());
        assertEquals(1, TornadoSettings.load("GPU").attentionSplits(), "unsplit until a GPU measurement says otherwise");
        List<String> keys = new ArrayList<>(List.of("GPU", "CPU", "ACCELERATOR"));
        for (String type : keys) {
            TornadoSettings s = TornadoSettings.load(type);
            assertTrue(s.maxLocal() <= TransformerKernels.MAX_LOCAL, type);
        }
    }
}
