package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.TestData;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.GgufModelLoader;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.RopeStyle;
import io.github.llama2j.model.Weights;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Who owns which rows: boundaries on whole key/value groups, Q8 groups and K-quant super-blocks, rounding, N shards. */
@Tag("tornado")
class SplitPlanTest {
    // dim 64 = 8 heads of 8, 4 kv heads (kvMul 2), hidden 172, vocab 512: tiny.bin's shape
    static final Configuration F32 = new Configuration(64, 172, 5, 8, 4, 512, 512, true, 0);
    // the same, Q8 with groups of 4
    static final Configuration Q8_GS4 = new Configuration(64, 172, 5, 8, 4, 512, 512, true, 4);
    // dim 96 = 6 heads of 16, multi-head, hidden 256, Q8 groups of 32: a group spans two heads
    static final Configuration Q8_GS32 = new Configuration(96, 256, 3, 6, 6, 512, 256, false, 32);
    // 7B: dim 4096 = 32 heads of 128, hidden 11008, groups of 64
    static final Configuration LLAMA7B_Q8 = new Configuration(4096, 11008, 32, 32, 32, 32000, 2048, false, 64);

    @Test
    void headBoundariesAreWholeKeyValueGroupsAndWholeQ8Groups() {
        assertArrayEquals(new int[]{0, 2, 4, 6, 8}, SplitPlan.headBoundaries(F32));
        assertArrayEquals(new int[]{0, 2, 4, 6, 8}, SplitPlan.headBoundaries(Q8_GS4));
        assertArrayEquals(new int[]{0, 2, 4, 6}, SplitPlan.headBoundaries(Q8_GS32));
        assertEquals(33, SplitPlan.headBoundaries(LLAMA7B_Q8).length);
    }

    /**
     * GGUF models, whatever their types: wo's and w2's column slices on Q8_0's 32-value blocks, so heads of 8
     * (stories260K.gguf) come in fours, heads of 16 in pairs, and hidden rows in multiples of 32 (or the end).
     */
    @Test
    void ggufBoundariesAreWholeQ8_0Blocks() {
        Configuration stories = new Configuration(64, 172, 5, 8, 4, 512, 2048, false, 0, 8, 1e-5f, 10000f, RopeStyle.NORM);
        Configuration qwen = new Configuration(64, 192, 2, 4, 2, 151936, 256, true, 0, 16, 1e-6f, 1e6f, RopeStyle.NEOX);
        Configuration qwen3 = new Configuration(1024, 3072, 28, 16, 8, 151936, 4096, true, 0, 128, 1e-6f, 1e6f, RopeStyle.NEOX);
        assertEquals(32, SplitPlan.columnGrain(stories));
        assertArrayEquals(new int[]{0, 4, 8}, SplitPlan.headBoundaries(stories));
        assertArrayEquals(new int[]{0, 32, 64, 96, 128, 160, 172}, SplitPlan.ffnBoundaries(stories));
        assertArrayEquals(new int[]{0, 2, 4}, SplitPlan.headBoundaries(qwen));
        assertArrayEquals(new int[]{0, 2, 4, 6, 8, 10, 12, 14, 16}, SplitPlan.headBoundaries(qwen3), "kv groups of 2 heads");
        assertEquals(3072 / 32 + 1, SplitPlan.ffnBoundaries(qwen3).length);
        assertEquals(1, SplitPlan.columnGrain(F32));
        assertEquals(4, SplitPlan.columnGrain(Q8_GS4));
    }

    /**
     * K-quant wo or w2 (Q4_K, Q6_K): column slices keep whole super-blocks, so the grain is 256 (the largest block,
     * a multiple of Q8_0's 32) for every layer as soon as one layer's wo or w2 is a K-quant. llama2-tiny-q4_k_m
     * (8 heads of 32: wo's 256 columns are one super-block) can then split its attention only all or nothing and its
     * 768 hidden rows in thirds; Llama-3.2-1B's shape (32 heads of 64, 4 per kv head, hidden 8192) in fours of heads.
     */
    @Test
    void kQuantBoundariesAreWholeSuperBlocks() {
        try (Model km = GgufModelLoader.load(TestData.gguf().resolve("models").resolve("llama2-tiny-q4_k_m.gguf"));
             Model q8 = GgufModelLoader.load(TestData.gguf().resolve("models").resolve("llama3-tiny-q8_0.gguf"))) {
            Configuration c = km.config();
            assertEquals(256, SplitPlan.columnGrain(c, km.weights()));
            assertEquals(32, SplitPlan.columnGrain(q8.config(), q8.weights()), "no K-quant: Q8_0's blocks");
            assertArrayEquals(new int[]{0, 8}, SplitPlan.headBoundaries(c, 256));
            assertArrayEquals(new int[]{0, 256, 512, 768}, SplitPlan.ffnBoundaries(c, 256));
            SplitPlan p = SplitPlan.twoWay(c, 256, 0.75, 0.4, 0.3);
            assertArrayEquals(new int[]{0, 8, 8}, p.heads());
            assertArrayEquals(new int[]{0, 256, 768}, p.ffn());
            assertArrayEquals(new int[]{0, 9600, 32000}, p.vocab(), "classifier rows: any row");
            // one K-quant w2 in the last layer (the others Q8_0) sets the grain of every layer
            Weights w = q8.weights();
            Matrix[] w2 = w.w2().clone();
            w2[w2.length - 1] = km.weights().w2()[1];
            Weights mixed = new Weights(w.tokenEmbedding(), w.rmsAtt(), w.wq(), w.wk(), w.wv(), w.wo(), w.rmsFfn(), w.w1(), w2,
                    w.w3(), w.rmsFinal(), w.classifier(), w.bq(), w.bk(), w.bv(), w.qNorm(), w.kNorm(), w.ropeFreqs());
            assertEquals(256, SplitPlan.columnGrain(q8.config(), mixed));
        }
        Configuration llama1b = new Configuration(2048, 8192, 16, 32, 8, 128256, 4096, true, 0, 64, 1e-5f, 5e5f, RopeStyle.NORM);
        assertArrayEquals(new int[]{0, 4, 8, 12, 16, 20, 24, 28, 32}, SplitPlan.headBoundaries(llama1b, 256));
        int[] ffn = SplitPlan.ffnBoundaries(llama1b, 256);
        assertEquals(8192 / 256 + 1, ffn.length);
        for (int b : ffn) {
            assertEquals(0, b % 256);
        }
    }

    @Test
    void ffnBoundariesAreRowsOrWholeQ8Groups() {
        assertEquals(173, SplitPlan.ffnBoundaries(F32).length);
        int[] q8 = SplitPlan.ffnBoundaries(Q8_GS4);
        assertEquals(44, q8.length);
        for (int b : q8) {
            assertEquals(0, b % 4);
        }
        assertEquals(11008 / 64 + 1, SplitPlan.ffnBoundaries(LLAMA7B_Q8).length);
    }

    @Test
    void twoWayRoundsEachFractionToTheNearestAllowedBoundary() {
        SplitPlan p = SplitPlan.twoWay(F32, 0.25, 0.61, 0.13);
        assertEquals(2, p.headEnd(0));
        assertEquals(105, p.ffnEnd(0));       // 0.61 * 172 = 104.9
        assertEquals(67, p.vocabEnd(0));      // 0.13 * 512 = 66.6
        assertEquals("heads 2+6 of 8 | ffn rows 105+67 of 172 | classifier rows 67+445 of 512", p.describe());
        SplitPlan q = SplitPlan.twoWay(Q8_GS4, 0.25, 0.61, 0.13);
        assertEquals(104, q.ffnEnd(0));       // on a group of 4
        SplitPlan h = SplitPlan.twoWay(Q8_GS32, 0.37, 0.5, 0.5);
        assertEquals(2, h.headEnd(0));        // 0.37 * 6 = 2.2 heads: pairs only
        assertEquals(128, h.ffnEnd(0));
    }

    @Test
    void zeroAndOneGiveOneSideNothing() {
        SplitPlan cpu = SplitPlan.twoWay(F32, 0, 0, 0);
        SplitPlan dev = SplitPlan.twoWay(F32, 1, 1, 1);
        for (SplitPlan.Kind k : SplitPlan.Kind.values()) {
            assertFalse(cpu.owns(0, k));
            assertTrue(cpu.owns(1, k));
            assertTrue(dev.owns(0, k));
            assertFalse(dev.owns(1, k));
            assertEquals(1.0, dev.fraction(0, k));
        }
    }

    @Test
    void onlyAPlanGivingTheDeviceEveryRowRunsTheTornadoEngineInstead() {
        assertTrue(HybridEngineProvider.allOnShard0(SplitPlan.twoWay(F32, 1, 1, 1)));
        assertFalse(HybridEngineProvider.allOnShard0(SplitPlan.twoWay(F32, 1, 1, 0.99)));
        assertFalse(HybridEngineProvider.allOnShard0(SplitPlan.twoWay(F32, 0.7, 1, 1)));   // 0.9 of 8 heads rounds to 8
    }

    @Test
    void randomSharesGiveMonotoneAllowedBoundariesCoveringEverything() {
        long seed = System.nanoTime();
        Random rnd = new Random(seed);
        for (Configuration c : new Configuration[]{F32, Q8_GS4, Q8_GS32, LLAMA7B_Q8}) {
            for (int trial = 0; trial < 200; trial++) {
                int n = 1 + rnd.nextInt(4);
                SplitPlan p = SplitPlan.of(c, shares(rnd, n), shares(rnd, n), shares(rnd, n));
                assertEquals(n, p.shards());
                check(p.heads(), c.nHeads(), SplitPlan.headBoundaries(c), seed);
                check(p.ffn(), c.hiddenDim(), SplitPlan.ffnBoundaries(c), seed);
                assertEquals(0, p.vocab()[0]);
                assertEquals(c.vocabSize(), p.vocab()[n]);
            }
        }
        // K-quant grain (Llama-3.2-1B's shape): every head and hidden-row boundary on a super-block of wo's and w2's columns
        Configuration llama1b = new Configuration(2048, 8192, 16, 32, 8, 128256, 4096, true, 0, 64, 1e-5f, 5e5f, RopeStyle.NORM);
        for (int trial = 0; trial < 200; trial++) {
            int n = 1 + rnd.nextInt(4);
            SplitPlan p = SplitPlan.of(llama1b, 256, shares(rnd, n), shares(rnd, n), shares(rnd, n));
            check(p.heads(), 32, SplitPlan.headBoundaries(llama1b, 256), seed);
            check(p.ffn(), 8192, SplitPlan.ffnBoundaries(llama1b, 256), seed);
            for (int i = 0; i <= n; i++) {
                assertEquals(0, p.heads()[i] * 64 % 256, "seed " + seed);
                assertEquals(0, p.ffn()[i] % 256, "seed " + seed);
            }
        }
    }

    private static void check(int[] b, int total, int[] allowed, long seed) {
        assertEquals(0, b[0], "seed " + seed);
        assertEquals(total, b[b.length - 1], "seed " + seed);
        for (int i = 1; i < b.length; i++) {
            assertTrue(b[i] >= b[i - 1], "monotone, seed " + seed);
            assertTrue(java.util.Arrays.binarySearch(allowed, b[i]) >= 0, b[i] + " not allowed, seed " + seed);
        }
    }

    private static double[] shares(Random rnd, int n) {
        double[] s = new double[n];
        for (int i = 0; i < n; i++) {
            s[i] = rnd.nextInt(4) == 0 ? 0 : rnd.nextDouble();
        }
        if (java.util.Arrays.stream(s).sum() == 0) {
            s[0] = 1;
        }
        return s;
    }

    @Test
    void badSharesAreUsageErrors() {
        assertThrows(Llama2jException.class, () -> SplitPlan.of(F32, new double[]{-1, 2}, new double[]{1, 1}, new double[]{1, 1}));
        assertThrows(Llama2jException.class, () -> SplitPlan.of(F32, new double[]{0, 0}, new double[]{1, 1}, new double[]{1, 1}));
        assertThrows(Llama2jException.class, () -> SplitPlan.of(F32, new double[]{Double.NaN, 1}, new double[]{1, 1},
                new double[]{1, 1}));
    }
}
