package io.github.llama2j.tornado;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Tag;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The split attention ({@link TransformerKernels#attentionSplit}) and the wo kernels that combine its partials
 * ({@link TransformerKernels#matmulResidualSplitF32}, {@link TransformerKernels#matmulResidualSplitQ8}) against the
 * scalar reference (the CPU engine's attention, {@link Reference#attentionHead}) on fresh random caches and queries,
 * for several (position, splits, chunk, head size, grouped-query factor): chunks that end exactly at the position,
 * empty chunks past it, the chunk count capped (longer chunks), 33 live chunks of 64, and one chunk (which must be
 * the unsplit kernel's output bit for bit).
 *
 * <p>The attention output is read through an identity wo with x = 0 (each row's sum is its one value plus exact
 * zeros: the combined values themselves). Tolerance 1e-5 × max(1, max|out|), as {@link KernelsTest}'s attention:
 * the softmax sums run in another order (per chunk, then rescaled by e^(m_c - M) and added in chunk order), which
 * moves results by a few float ulps; a wrong chunk bound, a lost chunk or a wrong rescale moves them by 1e-2 and more.
 */
@Tag("tornado")
class SplitAttentionTest {
    static final KernelFixture K = new KernelFixture("split");
    static final int ATT_LOCAL = 8, LOCAL = 16, GS = 4;

    /** One shape: heads (kv heads) of headSize, a cache of seq positions, the token at pos, splits and chunk. */
    record Case(int heads, int kvHeads, int headSize, int seq, int pos, int splits, int chunk, int rowsPerGroup) {
        int dim() {
            return heads * headSize;
        }

        int kvDim() {
            return kvHeads * headSize;
        }

        int len() {
            return KernelHelpers.chunkLength(pos + 1, chunk, splits);
        }

        int live() {
            return (pos + len()) / len();
        }

        @Override
        public String toString() {
            return "heads " + heads + "/" + kvHeads + " × " + headSize + ", pos " + pos + ", splits " + splits + ", chunk " + chunk
                    + " (" + live() + " live chunks of " + len() + ")";
        }
    }

    static final Case[] CASES = {
            new Case(4, 2, 10, 40, 11, 4, 4, 1),    // 3 chunks of 4 ending exactly at pos, 1 empty
            new Case(4, 1, 16, 40, 30, 3, 4, 4),    // capped: 3 chunks of 11 (the last 9), GQA 4
            new Case(6, 6, 8, 40, 9, 8, 3, 2),      // 4 live chunks of 3 (the last 1), 4 empty
            new Case(4, 2, 10, 40, 7, 4, 8, 1),     // pos + 1 == chunk: one chunk, the unsplit head
            new Case(2, 2, 12, 20, 0, 2, 1, 1),     // position 0: one chunk of one position
            new Case(4, 2, 10, 70, 64, 64, 1, 4),   // 33 live chunks of 2 (the last 1), 31 empty
            new Case(2, 1, 64, 50, 47, 5, 7, 8),    // head size 64 over 8 work-items, 5 chunks of 10 (the last 8)
    };

    static float[][] q = new float[CASES.length][], kc = new float[CASES.length][], vc = new float[CASES.length][];
    static float[][] wo = new float[CASES.length][], x0 = new float[CASES.length][];
    static byte[][] woQ = new byte[CASES.length][];
    static float[][] woS = new float[CASES.length][];
    static FloatArray[] dIdentity = new FloatArray[CASES.length], dResidual = new FloatArray[CASES.length],
            dResidualQ8 = new FloatArray[CASES.length], dUnsplit = new FloatArray[CASES.length];

    @BeforeAll
    static void runOnce() {
        K.begin();
        KernelContext ctx = K.ctx();
        TaskGraph tg = K.graph();
        List<Object> in = K.in;
        for (int i = 0; i < CASES.length; i++) {
            Case c = CASES[i];
            int dim = c.dim(), kvDim = c.kvDim(), kvMul = c.heads() / c.kvHeads(), hs = c.headSize();
            float sqrt = (float) Math.sqrt(hs);
            q[i] = K.gaussian(dim, 1f);
            kc[i] = K.gaussian(c.seq() * kvDim, 1f);
            vc[i] = K.gaussian(c.seq() * kvDim, 1f);
            wo[i] = K.gaussian(dim * dim, 0.3f);
            x0[i] = K.gaussian(dim, 1f);
            woQ[i] = K.int8s(dim * dim);
            woS[i] = K.scales(dim * dim / GS);
            float[] identity = new float[dim * dim];
            for (int r = 0; r < dim; r++) {
                identity[r * dim + r] = 1f;
            }
            FloatArray dq = FloatArray.fromArray(q[i]), dkc = FloatArray.fromArray(kc[i]), dvc = FloatArray.fromArray(vc[i]);
            FloatArray att = new FloatArray(c.heads() * c.seq()), attU = new FloatArray(c.heads() * c.seq());
            FloatArray partials = new FloatArray(c.heads() * c.splits() * (KernelHelpers.PARTIAL + hs));
            IntArray state = IntArray.fromElements(1, c.pos());
            FloatArray dId = FloatArray.fromArray(identity), dWo = FloatArray.fromArray(wo[i]), dWoS = FloatArray.fromArray(woS[i]);
            IntArray dWoQ = KernelFixture.packed(woQ[i]);
            dIdentity[i] = new FloatArray(dim);
            dResidual[i] = FloatArray.fromArray(x0[i]);
            dResidualQ8[i] = FloatArray.fromArray(x0[i]);
            dUnsplit[i] = new FloatArray(dim);
            in.addAll(List.of(dq, dkc, dvc, att, attU, partials, state, dId, dWo, dWoS, dWoQ, dIdentity[i], dResidual[i], dResidualQ8[i]));
            K.out.addAll(List.of(dIdentity[i], dResidual[i], dResidualQ8[i], dUnsplit[i]));

            tg.task("unsplit" + i, TransformerKernels::attention, ctx, dq, dkc, dvc, attU, dUnsplit[i], state, c.seq(), hs, kvDim, kvMul, sqrt);
            K.grid("unsplit" + i, c.heads() * ATT_LOCAL, ATT_LOCAL);
            tg.task("attention" + i, TransformerKernels::attentionSplit, ctx, dq, dkc, dvc, att, partials, state, c.seq(), hs, kvDim, kvMul,
                    sqrt, c.splits(), c.chunk());
            K.grid("attention" + i, c.heads() * c.splits() * ATT_LOCAL, ATT_LOCAL);
            int groups = ForwardGraph.groupsFor(dim, c.rowsPerGroup()) * LOCAL;
            tg.task("identity" + i, TransformerKernels::matmulResidualSplitF32, ctx, partials, state, dId, dIdentity[i], dim, dim,
                    c.rowsPerGroup(), hs, c.splits(), c.chunk());
            K.grid("identity" + i, groups, LOCAL);
            tg.task("wo" + i, TransformerKernels::matmulResidualSplitF32, ctx, partials, state, dWo, dResidual[i], dim, dim,
                    c.rowsPerGroup(), hs, c.splits(), c.chunk());
            K.grid("wo" + i, groups, LOCAL);
            tg.task("woQ8" + i, TransformerKernels::matmulResidualSplitQ8, ctx, partials, state, dWoQ, dWoS, dResidualQ8[i], dim, GS, dim,
                    c.rowsPerGroup(), hs, c.splits(), c.chunk());
            K.grid("woQ8" + i, groups, LOCAL);
        }
        K.execute();
    }

    /** The CPU engine's attention of every head of case i. */
    static float[] reference(int i) {
        Case c = CASES[i];
        float[] out = new float[c.dim()];
        for (int h = 0; h < c.heads(); h++) {
            Reference.attentionHead(out, q[i], kc[i], vc[i], h, c.pos(), c.headSize(), c.kvDim(), c.heads() / c.kvHeads(), c.seq());
        }
        return out;
    }

    @Test
    void everyKernelRanOnTheDevice() {
        K.verifyEveryTaskRan();
    }

    @Test
    void casesCoverTheChunkBoundaries() {
        boolean exactEnd = false, empty = false, capped = false, one = false;
        for (Case c : CASES) {
            exactEnd |= c.live() > 1 && (c.pos() + 1) % c.len() == 0;
            empty |= c.live() < c.splits();
            capped |= c.len() > c.chunk();
            one |= c.live() == 1;
        }
        assertTrue(exactEnd && empty && capped && one, "cases with a chunk ending at pos, empty chunks, a capped count, one chunk");
    }

    @Test
    void combinedOutputMatchesTheCpuAttention() {
        for (int i = 0; i < CASES.length; i++) {
            K.closeRelative(reference(i), dIdentity[i], 0, 1e-5, "split attention, " + CASES[i]);
        }
    }

    @Test
    void oneChunkIsTheUnsplitKernelBitForBit() {
        int checked = 0;
        for (int i = 0; i < CASES.length; i++) {
            K.closeRelative(reference(i), dUnsplit[i], 0, 1e-5, "unsplit attention, " + CASES[i]);
            if (CASES[i].live() == 1) {
                for (int k = 0; k < CASES[i].dim(); k++) {
                    K.bitsEqual(dUnsplit[i].get(k), dIdentity[i].get(k), "one chunk, value " + k + ", " + CASES[i]);
                }
                checked++;
            }
        }
        assertEquals(2, checked, "cases with one chunk");
    }

    @Test
    void woWithResidualOnTheCombinedOutput() {
        for (int i = 0; i < CASES.length; i++) {
            Case c = CASES[i];
            float[] expected = Reference.matmulF32(wo[i], c.dim(), c.dim(), reference(i));
            for (int r = 0; r < c.dim(); r++) {
                expected[r] += x0[i][r];
            }
            K.closeRelative(expected, dResidual[i], 0, 1e-5, "wo (float32) on the split attention, " + CASES[i]);
        }
    }

    /**
     * runq's wo on the combined output: the reference quantizes the device's combined values (the identity rows,
     * the same bits every work-group combines), so an int8 value cannot flip between the two sides.
     */
    @Test
    void q8WoWithResidualOnTheCombinedOutput() {
        for (int i = 0; i < CASES.length; i++) {
            Case c = CASES[i];
            float[] xb = dIdentity[i].toHeapArray();
            byte[] xq = new byte[c.dim()];
            float[] xs = new float[c.dim() / GS];
            Reference.quantize(xb, GS, xq, xs);
            float[] expected = Reference.matmulQ8(woQ[i], woS[i], c.dim(), c.dim(), GS, xq, xs);
            for (int r = 0; r < c.dim(); r++) {
                expected[r] += x0[i][r];
            }
            K.closeRelative(expected, dResidualQ8[i], 0, 1e-5, "wo (Q8) on the split attention, " + CASES[i]);
        }
    }
}
