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
 * Deep models. TornadoVM records a graph's tasks in a fixed 8 KiB buffer (15 bytes per task plus 5 per
 * argument); with one graph for everything, 24 float32 layers or 14 Q8_0 layers once overflowed it
 * (BufferOverflowException while building; Llama 2 7B has 32 layers). {@link ForwardGraph} puts
 * {@link TornadoSettings#graphLayers} layers in a graph (far below the record's limit) and chains the graphs,
 * the activations staying on the device between them: 24 float32 layers make 12 graphs, 15 Q8_0 layers 8 (the
 * last with one layer and the classifier). Both are checked against the CPU engine at every position,
 * with a shared classifier (read where the first graph put the embedding table) and an unshared one. Narrow
 * layers keep PoCL's JIT time (per task, not per size) the only real cost.
 */
@Tag("tornado")
class DeepModelTest {
    @TempDir
    static Path dir;

    @ParameterizedTest
    @CsvSource({"LEGACY_V0, 24, true", "V2_Q8, 15, false"})
    void deepModelsRunAsAChainOfGraphsAndMatchTheCpuEngine(ModelFormat format, int layers, boolean shared) {
        Configuration c = new Configuration(16, 32, layers, 2, 1, 64, 24, shared, 0);
        Path file = dir.resolve("deep_" + format + "_" + layers + ".bin");
        CheckpointWriter.write(new RandomWeights(c, 7, RandomWeights.DEFAULT_STD), format, 16, file, b -> { });

        TornadoEngine e = TestEngines.engine(file.toString());
        List<String> ids = e.taskIds();
        Set<String> graphs = new LinkedHashSet<>();
        ids.forEach(id -> graphs.add(id.substring(0, id.indexOf('.'))));
        assertEquals(Set.of(ForwardGraph.GRAPH), graphs, "every graph has one name: " + graphs);
        assertEquals((layers + 1) / 2, e.graphsPerToken(), "two layers per graph");
        assertEquals(5 * layers + 2, ids.size());
        assertEquals(11, new java.util.HashSet<>(ids).size() - 1, "embed, 5 tasks in each of 2 slots, classifier: " + ids);
        assertEquals(ForwardGraph.GRAPH + ".embed", ids.getFirst());
        assertEquals(ForwardGraph.GRAPH + ".classifier", ids.getLast());

        new ForwardVsCpuTest().logitsMatchTheCpuEngine(file.toString());
    }
}
