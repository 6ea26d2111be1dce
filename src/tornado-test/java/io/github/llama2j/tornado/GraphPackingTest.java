package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.common.TaskPackage;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * How {@link ForwardGraph} packs layers into task graphs: the packing rule, and TornadoVM's task record that
 * bounds it (8 KiB per graph, {@link ForwardGraph#recordBytes} per task), checked against TornadoVM itself.
 */
@Tag("tornado")
class GraphPackingTest {

    @Test
    void wholeLayersFillGraphsInOrderAndTheClassifierJoinsTheLastIfItFits() {
        int[] five = {300, 300, 300, 300, 300};
        // everything fits: one graph, the classifier in it
        ForwardGraph.Packing p = ForwardGraph.pack(40, five, 60, 8192, Integer.MAX_VALUE);
        assertArrayEquals(new int[]{0, 5}, p.start());
        assertFalse(p.outputOwnGraph());
        assertEquals(1, p.graphs());
        // 1000 bytes: input + 3 layers (940), then 3 layers per graph; the classifier fits after the last two
        p = ForwardGraph.pack(40, new int[]{300, 300, 300, 300, 300, 300, 300, 300}, 60, 1000, Integer.MAX_VALUE);
        assertArrayEquals(new int[]{0, 3, 6, 8}, p.start());
        assertFalse(p.outputOwnGraph());
        // the classifier does not fit after the last three layers: a graph of its own
        p = ForwardGraph.pack(40, new int[]{300, 300, 300, 300, 300, 300}, 200, 1000, Integer.MAX_VALUE);
        assertArrayEquals(new int[]{0, 3, 6}, p.start());
        assertTrue(p.outputOwnGraph());
        assertEquals(3, p.graphs());
        // one layer per graph (the former layout): the classifier always in a graph of its own
        p = ForwardGraph.pack(40, five, 60, 8192, 1);
        assertArrayEquals(new int[]{0, 1, 2, 3, 4, 5}, p.start());
        assertTrue(p.outputOwnGraph());
        assertEquals(6, p.graphs());
        // two layers per graph (the engine's layout): 5 layers make 3 graphs, the classifier in the last
        p = ForwardGraph.pack(40, five, 60, 8192, TornadoSettings.DEFAULT_GRAPH_LAYERS);
        assertArrayEquals(new int[]{0, 2, 4, 5}, p.start());
        assertFalse(p.outputOwnGraph());
        // a layer larger than the record cannot be placed
        assertThrows(Llama2jException.class, () -> ForwardGraph.pack(40, new int[]{300, 2000}, 60, 1000, Integer.MAX_VALUE));
    }

    /** Two kernels of one and of two arguments. */
    static void one(FloatArray a) {
        a.set(0, 1f);
    }

    static void two(FloatArray a, FloatArray b) {
        b.set(0, a.get(0));
    }

    /**
     * TornadoVM's record holds 8 KiB of tasks at {@link ForwardGraph#recordBytes} each: 407 one-argument tasks
     * and 2 two-argument ones (8,190 bytes) build, one more task (8,210) overflows.
     */
    @Test
    void theTaskRecordHoldsEightKibibytesAtFifteenBytesPerTaskAndFivePerArgument() {
        FloatArray a = new FloatArray(1), b = new FloatArray(1);
        int ones = 407, twos = 2;
        assertEquals(8190, ones * ForwardGraph.recordBytes(1) + twos * ForwardGraph.recordBytes(2));
        assertTrue(8190 + ForwardGraph.recordBytes(1) > ForwardGraph.TASK_RECORD_BYTES);
        TaskGraph fits = fill(new TaskGraph("fits"), a, b, ones, twos);
        assertEquals("fits", fits.getTaskGraphName());
        RuntimeException e = assertThrows(RuntimeException.class,
                () -> fill(new TaskGraph("over"), a, b, ones, twos).addTask(new TaskPackage("t", GraphPackingTest::one, a)));
        assertTrue(causes(e, java.nio.BufferOverflowException.class), e.toString());
    }

    private static TaskGraph fill(TaskGraph g, FloatArray a, FloatArray b, int ones, int twos) {
        for (int i = 0; i < ones; i++) {
            g.addTask(new TaskPackage("t" + i, GraphPackingTest::one, a));
        }
        for (int i = 0; i < twos; i++) {
            g.addTask(new TaskPackage("u" + i, GraphPackingTest::two, a, b));
        }
        return g;
    }

    private static boolean causes(Throwable e, Class<? extends Throwable> type) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }
}
