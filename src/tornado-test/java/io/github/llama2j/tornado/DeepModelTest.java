package io.github.llama2j.tornado;

import io.github.llama2j.model.CheckpointWriter;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.ModelFormat;
import io.github.llama2j.model.RandomWeights;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Models too deep for one TornadoVM task graph. TornadoVM records a graph's tasks in a fixed 8 KiB
 * buffer; with everything in one graph, 24 float32 layers or 14 Q8_0 layers overflowed it
 * (BufferOverflowException while building; Llama 2 7B has 32 layers). The forward pass is now a chain of
 * one graph per layer whose activations stay on the device between graphs (see {@link ForwardGraph});
 * these models check the chain against the CPU engine at every position, with a shared
 * classifier (the last graph reads the embedding table that the first graph put on the device) and an
 * unshared one. Narrow layers keep PoCL's JIT time (per task, not per size) the only real cost.
 */
@Tag("tornado")
class DeepModelTest {
    @TempDir
    static Path dir;

    @ParameterizedTest
    @CsvSource({"LEGACY_V0, 24, true", "V2_Q8, 14, false"})
    void deepModelsRunAsAChainOfGraphsAndMatchTheCpuEngine(ModelFormat format, int layers, boolean shared) {
        Configuration c = new Configuration(16, 32, layers, 2, 1, 64, 24, shared, 0);
        Path file = dir.resolve("deep_" + format + "_" + layers + ".bin");
        CheckpointWriter.write(new RandomWeights(c, 7, RandomWeights.DEFAULT_STD), format, 16, file, b -> { });

        TornadoEngine e = TestEngines.engine(file.toString());
        List<String> ids = e.taskIds();
        Set<String> graphs = new LinkedHashSet<>();
        ids.forEach(id -> graphs.add(id.substring(0, id.indexOf('.'))));
        assertEquals(List.of(ForwardGraph.FIRST, ForwardGraph.LAYER, ForwardGraph.OUTPUT), List.copyOf(graphs), "graphs: " + graphs);
        assertEquals(layers + 1, e.graphsPerToken(), "one graph per layer and the output");
        assertEquals(ForwardGraph.FIRST + ".embed", ids.getFirst());
        assertEquals(ForwardGraph.OUTPUT + ".classifier", ids.getLast());
        assertEquals(ForwardGraph.LAYER + ".qkv",
                ids.stream().filter(id -> id.startsWith(ForwardGraph.LAYER + ".")).findFirst().orElseThrow());

        new ForwardVsCpuTest().logitsMatchTheCpuEngine(file.toString());
    }
}
