package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Matrix products of a batch of B tokens (batched prefill): {@code out[b][r] = sum_j m[r][j] * x[b][j]}
 * for rows r in [r0, r1) and every token b, each weight read from memory once for all B tokens. One token's
 * product streams the whole matrix for a handful of multiply-adds per byte and waits on memory; B tokens
 * share each weight, so the batch runs at the speed of arithmetic instead.
 *
 * <p><b>Layout.</b> The tokens run along the vector lanes: the activations are transposed
 * ({@link BatchActivations}, stride = B rounded up to the lane count), so one broadcast weight {@code m[r][j]}
 * multiply-adds into a vector of tokens and no horizontal sum is ever needed. They are stored in panels of
 * {@link #PANEL} tokens (four vectors), each panel column-major ({@link #xIndex}): a pass reads its tokens'
 * values of consecutive columns at a constant distance, which lets C2 hoist every bounds check out of the
 * multiply-add loop (with a row-major {@code xT[j * stride + b]} the distance is the variable stride and the
 * checks, and a multiply, stayed in the loop). A tile of {@link #TILE_ROWS} rows goes over the columns one
 * block at a time (64 columns for F32, the group for Q8; a block's activations, at most 64 columns × 64
 * tokens = 16 KiB, stay in L1 while the tile's rows pass over them); the tile's weights, every block, are
 * first copied (F32) or widened from int8 (Q8) into a float scratch, row after row (one sequential read of the
 * tile's rows), so one loop multiplies both types; then passes of {@link #PASS_ROWS} rows × four token vectors
 * (at 512 bits 6 rows at a time first, 24 accumulators, then 4 × 4; 8 accumulators at 256 and 128, where 16
 * registers would not hold 16), and over the one-vector panels after the whole ones (a batch that is not a
 * multiple of four vectors) passes of 4 rows × one vector at every width; the block sums of a tile gather in a
 * scratch {@code (TILE_ROWS, stride)} and are written back to {@code out[b][r]} at the end.
 *
 * <p><b>Order.</b> Each (row, token) is one lane, so its arithmetic is scalar arithmetic, in one order at
 * every vector width:
 * <ul>
 *   <li>{@link Matrix.F32}: per block of {@link #F32_BLOCK} columns, a fused multiply-add chain from 0 in
 *       column order; the block sums added in block order ({@link #f32Reference}, bit-identical). That is
 *       not the one-token kernel's order (a few ulps apart, like any two float orders).</li>
 *   <li>{@link Matrix.Q8} (runq): per group, the products of int8 weights and int8 activations are exact
 *       in float, and so are their sums while they stay within 2^24 (a group of up to
 *       {@link #MAX_EXACT_GROUP}: 1024 · 128 · 128 = 2^24), so the float chain gives runq's integer dot
 *       exactly; then {@code val += (dot * wScale) * xScale}, group after group, as runq. Bit-identical to
 *       {@link ScalarKernels#matmulQ8} for each token, hence to the one-token path.</li>
 *   <li>GGML Q8_0, Q4_0 and IQ4_NL (batches of {@link #Q8_0_TRANSPOSED_FROM_TOKENS}, {@link #Q4_0_TRANSPOSED_FROM_TOKENS}
 *       and {@link #IQ4_TRANSPOSED_FROM_TOKENS} tokens and more; a Q4_0 copy's of {@link #PACKED_Q4_0_TRANSPOSED_FROM_TOKENS}
 *       at 256 bits, none at the other widths), on each token's Q8_0 activations: both sides' scales folded
 *       into their values, each weight widened as {@code q · d} (Q4_0's q the nibble minus 8, IQ4_NL's its level, -127..113)
 *       and each activation as {@code q_x · d_x}, both exact in float (an 8-bit integer times an F16 scale); then as F32,
 *       in column blocks of {@link #Q8_0_COLUMN_BLOCK}: per block an FMA chain from 0 in column order, the block sums added
 *       in block order ({@link #ggmlBlocks}). The one-token kernels' integer dots are exact and scaled per 32; here each
 *       factor is exact and each FMA rounds once (the product exact inside it), a few ulps apart (as any two float orders).</li>
 *   <li>GGML IQ4_XS (batches of {@link #IQ4_TRANSPOSED_FROM_TOKENS} tokens and more): as the K-quants, on each token's Q8_K activations, in column
 *       blocks of half a super-block ({@link #IQ4_XS_COLUMN_BLOCK}) whose values are widened as {@code (ls - 32) * level},
 *       {@code val += (dot * d) * d_x} block after block: the one-token kernel's integers (while a block's FMA chain
 *       stays within 2^24), their float sums in another order.</li>
 *   <li>GGML Q5_1 in the file's layout (batches of {@link #Q5_1_TRANSPOSED_FROM_TOKENS} tokens and more): as runq's Q8 (the block of 32 as the
 *       group) on each token's Q8_1 activations, the 5-bit values (0..31) widened, each block's exact integer dot by an FMA chain,
 *       {@code val += (dot * d_w) * d_x} block after block; then the
 *       offsets' part {@code sum_g m_g * s_g} as an FMA chain over the blocks, added ({@link #q51Offsets}).</li>
 *   <li>GGML Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (batches of {@link #TRANSPOSED_FROM_TOKENS} tokens and more, Q5_K of
 *       {@link #Q5_K_TRANSPOSED_FROM_TOKENS}, Q2_K and Q3_K of {@link #Q2_Q3_K_TRANSPOSED_FROM_TOKENS}): on each token's Q8_K
 *       activations (their int8 values as floats, a scale per 256), the weights widened as {@code sc_j * q} (exact) in column blocks whose integer dot stays exact ({@link #Q4_K_COLUMN_BLOCK},
 *       {@link #Q5_K_COLUMN_BLOCK}, {@link #Q6_K_COLUMN_BLOCK}, {@link #Q3_K_COLUMN_BLOCK} for Q2_K and Q3_K), {@code val += (dot * d) * d_x} block after block; Q4_K's and
 *       Q5_K's mins' part subtracted after ({@link #q45KMins}), Q2_K's ({@link #q2KMins}). The one-token kernels' integers, their float sums in another order.</li>
 *   <li>GGML F16 and BF16 (as many tokens): as F32 on each token's input rounded to the type (its
 *       {@link Activations}), the weights widened to float ({@link #widenHalves}, exact).</li>
 *   <li>runq groups over 1024, and the GGML types in shorter batches: the one-token kernel of {@code perToken} for
 *       each token, a tile of {@link #TILE_ROWS} rows at a time, so the tile's weights come from memory for the first
 *       token and from cache for the others. Bit-identical to the one-token path (same kernel, same rows,
 *       activations converted per token by {@link Activations}).</li>
 * </ul>
 *
 * <p>The passes are written out per shape (6 × 4, 4 × 4, 4 × 1, 2 × 4, 2 × 1, 1 × 1 rows × token vectors), each one
 * loop: the 4-row passes measured 1.2–1.3× the 2-row ones at 512 bits for both types, and at 256 bits 4 × 4
 * spills (0.6×) while 4 × 1 ran as fast as 2 × 1 or faster (one core, in cache, loaded machine; {@link #PASS_ROWS},
 * and docs/measurements/2026-12-02-q8-kernels.md). At 512 bits 6 × 4 (a broadcast per four FMAs, as 4 × 4, but six
 * rows share each activation load) ran its loop alone at 1.03–1.13× 4 × 4 in cache, and {@code BatchMatmulBenchmark}
 * (128 tokens) at 1.05–1.35× on one thread (docs/measurements/2026-12-04-prefill-six-rows.md).
 */
final class BatchMatmul {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int FL = F.length();
    /** Tokens per panel of the transposed activations: the four token vectors a pass multiplies together. */
    static final int PANEL = 4 * FL;
    /** Rows per tile: the block sums of a tile stay in cache, and tiles start on the pool's row grain. */
    static final int TILE_ROWS = CpuLayer.ROW_GRAIN;
    /** Columns per F32 block (64 columns × 64 tokens of floats: 16 KiB, half an L1). */
    static final int F32_BLOCK = 64;
    /** Largest runq group whose int8 dot is exact as a float sum. */
    static final int MAX_EXACT_GROUP = 1024;

    private static final ValueLayout.OfFloat FLOAT = ScalarKernels.FLOAT;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** FL bytes, widened to FL floats (null at 128 bits: no byte vector is shorter than 64 bits; scalar there). */
    private static final VectorSpecies<Byte> B_FOR_F = FL >= 8
            ? ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(FL * Byte.SIZE)) : null;

    /** FL halves, widened to FL ints (null at 128 bits: scalar there). */
    private static final VectorSpecies<Short> H_FOR_F = FL >= 8
            ? ShortVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(FL * Short.SIZE)) : null;
    private static final VectorSpecies<Integer> I_FOR_F = IntVector.SPECIES_PREFERRED;

    /** Each worker's tile of block sums, (TILE_ROWS, stride). */
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[0]);

    private BatchMatmul() {
    }

    /** Whether m has a transposed kernel ({@link #readsTransposed}: for how many tokens it is used). */
    static boolean transposed(Matrix m) {
        return switch (m) {
            case Matrix.F32 f -> true;
            case Matrix.Q8 q -> q.groupSize() <= MAX_EXACT_GROUP;
            case Matrix.Q8_0 q -> true;
            case Matrix.Q4_0 q -> true;
            case Matrix.Q4_K q -> true;
            case Matrix.Q5_1 q -> true;
            case Matrix.Q2_K q -> true;
            case Matrix.Q3_K q -> true;
            case Matrix.IQ4_NL q -> true;
            case Matrix.IQ4_XS q -> true;
            case Matrix.Q5_K q -> true;
            case Matrix.Q6_K q -> true;
            case Matrix.F16 h -> true;
            case Matrix.BF16 h -> true;
        };
    }

    /**
     * Fewest tokens for which Q4_K, Q6_K, F16 and BF16 take the transposed kernel (Q5_K: {@link #Q5_K_TRANSPOSED_FROM_TOKENS}). Below it the one-token kernels
     * (on the load-time copies) run each token over tiles of rows: widening a tile's weights costs the same for 8
     * tokens as for 128. Measured on Llama-3.2-1B, 512 bits, transposed / one-token (`bench --prompt-tokens N`,
     * loaded machine, docs/measurements/2026-12-04-prefill-k-quants-f16.md): Q4_K_M pp8 0.43, pp16 0.92, pp32 0.83,
     * pp48 1.80, pp64 1.65; F16 pp16 1.04, pp48 1.56, pp64 2.37.
     */
    static final int TRANSPOSED_FROM_TOKENS = 48;
    /**
     * The same for GGML Q8_0, whose widening is cheaper: Llama-3.2-1B Q8_0, 512 bits, quiet machine, two
     * rounds: pp8 0.49 / 0.49, pp16 0.77 / 0.92, pp32 1.04 / 1.03, pp64 1.61 / 1.36.
     */
    static final int Q8_0_TRANSPOSED_FROM_TOKENS = 32;
    /**
     * The same for GGML Q4_0, whose one-token kernel is slower than Q8_0's (nibbles to unpack): Llama-3.2-1B Q4_0,
     * quiet machine, two rounds at 512 bits and one at 256: pp8 0.90 / 0.89 / 1.41, pp16 1.75 / 1.73 / 1.73,
     * pp24 1.53 / 1.61 / 1.92, pp32 1.98 / 1.68 / 2.68 (docs/measurements/2026-12-04-k-quant-straight-code.md).
     */
    static final int Q4_0_TRANSPOSED_FROM_TOKENS = 16;
    /**
     * The same for GGML Q5_K, whose one-token kernel read the file's layout then (before the load-time copy, whose kernel
     * runs about twice as fast: the threshold was not measured again) and ran short prompts at a third of the transposed kernel's speed: Llama-3.2-1B Q5_K_M, transposed / one-token, loaded machine (load
     * 5.5-7.1), two rounds at 512 bits: pp8 2.16 / 0.59, pp16 3.05 / 3.03, pp32 3.05 / 2.46; 256 bits pp16 1.89
     * (docs/measurements/2026-12-06-q5-k-prefill.md).
     */
    static final int Q5_K_TRANSPOSED_FROM_TOKENS = 16;
    /**
     * The same for GGML Q5_1 in the file's layout (a copy, {@link PackedQ5_1}, never takes it: {@link #transposed(MatrixForm)}):
     * one thread's CPU time on a 4864 x 896 matrix, 512 bits, G token-values per second, transposed / the file layout's
     * one-token kernel per tile: 4 tokens 6.6-9.8 / 9.0-9.9, 8 tokens 9.5-10.0 / 7.1-10.1 (8 tokens fill half of the
     * 16 lanes, so they cost what 16 do), 16 tokens 22-25 / 7.0-7.5, 64 tokens 40-57 / 7.8-10.3
     * (docs/measurements/2026-12-06-q5-1-copy.md).
     */
    static final int Q5_1_TRANSPOSED_FROM_TOKENS = 16;
    /**
     * The same for GGML Q2_K and Q3_K, whose one-token kernels read load-time copies below 512 bits (Q3_K's reads the
     * file's layout at 512). Llama-3.2-1B-shaped Q3_K_M and Q2_K files, 2 threads, one round each, transposed /
     * one-token (per tile): 256 bits pp48 0.97 and 0.91, pp64 1.34 and 1.12, pp96 1.21, pp128 1.46 and 1.28; 512 bits
     * pp48 1.96 and 1.15, pp128 2.79 and 1.88 (docs/measurements/2026-12-07-q2-k-q3-k-copies.md#prompts).
     */
    static final int Q2_Q3_K_TRANSPOSED_FROM_TOKENS = FL >= 16 ? 48 : 64;
    /**
     * The same for GGML IQ4_NL and IQ4_XS, whose one-token kernels read the file's layout (a table lookup per value):
     * Llama-3.2-1B-shaped IQ4_XS and IQ4_NL files, 2 threads, one round each, transposed / one-token (per tile): 256 bits pp8 0.85
     * and 0.70, pp16 1.10 and 1.11, pp32 2.0 (IQ4_XS); 512 bits pp8 1.02 and 0.81, pp16 2.1 and 1.75, pp32 2.7
     * (docs/measurements/2026-12-07-iq4-prompts.md#the-threshold-16-tokens).
     */
    static final int IQ4_TRANSPOSED_FROM_TOKENS = 16;

    /**
     * Whether m's form has a transposed kernel: not a Q4_0 copy ({@link PackedQ4_0}) but at 256 bits
     * ({@link #PACKED_Q4_0_TRANSPOSED_FROM_TOKENS}), whose one-token kernel, a tile of
     * rows at a time, was as fast as the transposed kernel or faster at every batch measured: Llama-3.2-1B Q4_0, 512 bits, two
     * rounds, one-token / transposed: pp16 2.0 / 2.7, pp32 1.7 / 1.9, pp64 1.2 / 1.2, pp128 0.95 / 1.01, pp256 1.15 /
     * 1.51, pp512 1.16 / 1.14 (docs/measurements/2026-12-05-q4-0-rows-in-lanes.md). Nor a Q5_1 copy ({@link PackedQ5_1}),
     * the same kind of kernel: one thread's CPU time on a 4864 x 896 matrix, 512 bits, 63-70 G token-values per second
     * one-token per tile against 52-58 transposed at 128 tokens, 36-69 (median 68) against 40-57 (median 56) at 64, 38-66 against 22-25 at 16;
     * Qwen2.5-0.5B-shaped Q5_K_M, one thread, transposed / one-token: pp48 0.68-0.89, pp64 1.02-1.20, pp128 0.64-0.80
     * (docs/measurements/2026-12-06-q5-1-copy.md). The file's layout ({@code --weight-copies=off}) keeps the transposed
     * kernel from {@link #Q4_0_TRANSPOSED_FROM_TOKENS} (Q4_0) or {@link #Q5_1_TRANSPOSED_FROM_TOKENS} (Q5_1).
     */
    static boolean transposed(MatrixForm f) {
        return !(f instanceof PackedQ4_0 && PACKED_Q4_0_TRANSPOSED_FROM_TOKENS == Integer.MAX_VALUE || f instanceof PackedQ5_1)
                && transposed(f.source());
    }

    /**
     * Fewest tokens of a batch for which a Q4_0 copy ({@link PackedQ4_0}) is read through the transposed kernel (in the
     * file's layout, its {@link MatrixForm#source}): 64 at 256 bits, where that kernel, its scales folded, beat the copy's
     * one-token kernel from 64 tokens (Llama-3.2-1B Q4_0 on 2 threads, transposed / one-token, two rounds: pp32 0.80, 1.06;
     * pp64 1.39, 1.03; pp128 1.19, 1.06; pp256 1.08, 1.20); never at 512 bits (the one-token kernel as fast or faster,
     * above; pp128 0.85 and 0.93 again with the scales folded) nor at 128 (not measured)
     * (docs/measurements/2026-12-07-q8-0-folded-scales.md).
     */
    static final int PACKED_Q4_0_TRANSPOSED_FROM_TOKENS = F.vectorBitSize() == 256 ? 64 : Integer.MAX_VALUE;

    /** Fewest tokens of a batch for which {@link #matmul} reads a matrix of form f, if {@link #transposed(MatrixForm)}, through the transposed forms. */
    static int transposedFromTokens(MatrixForm f) {
        return f instanceof PackedQ4_0 ? PACKED_Q4_0_TRANSPOSED_FROM_TOKENS : transposedFromTokens(f.source());
    }

    /** Whether {@link #matmul} reads a matrix of form f through the transposed forms for a batch of {@code tokens}. */
    static boolean readsTransposed(MatrixForm f, int tokens) {
        return transposed(f) && readsTransposed(f.source(), tokens) && tokens >= transposedFromTokens(f);
    }

    /** Whether {@link #matmul} reads m, in the file's layout, through the transposed forms for a batch of {@code tokens}. */
    static boolean readsTransposed(Matrix m, int tokens) {
        return transposed(m) && tokens >= transposedFromTokens(m);
    }

    /** Fewest tokens of a batch for which {@link #matmul} reads m, if {@link #transposed(Matrix)}, through the transposed forms. */
    static int transposedFromTokens(Matrix m) {
        return switch (m) {
            case Matrix.Q4_K q -> TRANSPOSED_FROM_TOKENS;
            case Matrix.Q5_K q -> Q5_K_TRANSPOSED_FROM_TOKENS;
            case Matrix.Q6_K q -> TRANSPOSED_FROM_TOKENS;
            case Matrix.Q3_K q -> Q2_Q3_K_TRANSPOSED_FROM_TOKENS;
            case Matrix.F16 h -> TRANSPOSED_FROM_TOKENS;
            case Matrix.BF16 h -> TRANSPOSED_FROM_TOKENS;
            case Matrix.Q8_0 q -> Q8_0_TRANSPOSED_FROM_TOKENS;
            case Matrix.Q4_0 q -> Q4_0_TRANSPOSED_FROM_TOKENS;
            case Matrix.Q5_1 q -> Q5_1_TRANSPOSED_FROM_TOKENS;
            case Matrix.F32 f -> 1;
            case Matrix.Q8 q -> 1;
            case Matrix.Q2_K q -> Q2_Q3_K_TRANSPOSED_FROM_TOKENS;
            case Matrix.IQ4_NL q -> IQ4_TRANSPOSED_FROM_TOKENS;
            case Matrix.IQ4_XS q -> IQ4_TRANSPOSED_FROM_TOKENS;
        };
    }

    /** How {@link #tiles} reads a tile's weights. */
    enum WeightLayout {
        /** Floats, row after row (llama2.c's and GGUF's F32). */
        F32,
        /** runq's Q8: int8 values row after row, and a float scale per group in a segment of their own. */
        RUNQ_Q8,
        /** GGML Q8_0: blocks of {@link Matrix.Q8_0#BLOCK_BYTES} bytes, an F16 scale then 32 int8 values. */
        GGML_Q8_0,
        /**
         * GGML Q4_0: blocks of {@link Matrix.Q4_0#BLOCK_BYTES} bytes, an F16 scale then 16 bytes whose low nibbles are
         * values 0-15 and high nibbles values 16-31, each minus 8.
         */
        GGML_Q4_0,
        /**
         * GGML Q4_K: super-blocks of {@link Matrix.Q4_K#BLOCK_BYTES} bytes (f16 d, f16 dmin, 12 bytes of 6-bit scales
         * and mins, 128 nibble bytes); a column block is half a super-block (128 values, four sub-blocks), each
         * value widened as {@code sc_j * nibble}, the mins' part apart ({@link #q45KMins}).
         */
        GGML_Q4_K,
        /**
         * GGML Q5_K: super-blocks of {@link Matrix.Q5_K#BLOCK_BYTES} bytes (Q4_K's with 32 bytes of fifth bits before the
         * nibbles); a column block is a quarter of a super-block (64 values, two sub-blocks: {@link #Q5_K_COLUMN_BLOCK}),
         * each value widened as {@code sc_j * q}, q = nibble + 16 · bit in 0..31, the mins' part as Q4_K's.
         */
        GGML_Q5_K,
        /**
         * GGML Q6_K: super-blocks of {@link Matrix.Q6_K#BLOCK_BYTES} bytes (ql, qh, 16 int8 scales, f16 d); a column
         * block is an eighth of a super-block (32 values, two sub-blocks), each value widened as {@code sc_j * (q - 32)}.
         */
        GGML_Q6_K,
        /**
         * GGML Q3_K: super-blocks of {@link Matrix.Q3_K#BLOCK_BYTES} bytes (hmask, qs, 12 bytes of 6-bit scales, f16 d);
         * a column block is half a super-block ({@link #Q3_K_COLUMN_BLOCK}: its values lie in Q6_K's order, four parts of
         * 32), each value widened as {@code (sc_j - 32) * q}, q in -4..3.
         */
        GGML_Q3_K,
        /**
         * GGML Q2_K: super-blocks of {@link Matrix.Q2_K#BLOCK_BYTES} bytes (16 bytes of 4-bit scales and mins, qs, f16 d,
         * f16 dmin); a column block as Q3_K's (half a super-block, its values in Q6_K's order), each value widened as
         * {@code sc_j * q}, q in 0..3; the mins' part apart, per sub-block of 16 ({@link #q2KMins}).
         */
        GGML_Q2_K,
        /**
         * GGML Q5_1: blocks of {@link Matrix.Q5_1#BLOCK_BYTES} bytes (f16 d, f16 m, the fifth bits, 16 nibble bytes), each
         * value widened as q in 0..31; the offsets' part {@code m · s_x} added after the blocks ({@link #q51Offsets}).
         */
        GGML_Q5_1,
        /**
         * GGML IQ4_NL: blocks of {@link Matrix.IQ4_NL#BLOCK_BYTES} bytes, an F16 scale then 16 bytes whose low nibbles
         * index the levels of values 0-15 and high nibbles of values 16-31 ({@link #widenIq4}); as Q4_0 otherwise.
         */
        GGML_IQ4_NL,
        /**
         * GGML IQ4_XS: super-blocks of {@link Matrix.IQ4_XS#BLOCK_BYTES} bytes (f16 d, the 6-bit scales, eight sub-blocks
         * of 16 nibble bytes as IQ4_NL's); a column block is half a super-block ({@link #IQ4_XS_COLUMN_BLOCK}), each value
         * widened as {@code (ls - 32) * level}.
         */
        GGML_IQ4_XS,
        /** GGML F16: halves row after row, widened to float (exact), against the input rounded to F16; as F32 otherwise. */
        GGML_F16,
        /** GGML BF16: as F16 with bfloat16 halves and the input rounded to BF16. */
        GGML_BF16;

        /**
         * Whether a column block's sum is scaled by a weight scale and an activation scale (the quantized layouts whose
         * scales are not {@link #folded}).
         */
        boolean scaled() {
            return this != F32 && this != GGML_F16 && this != GGML_BF16 && !folded();
        }

        /**
         * Whether each value is widened times its block's scale, against activations that are their Q8_0 values times
         * theirs ({@link BatchActivations#xD}): Q8_0, Q4_0 and IQ4_NL, whose blocks of 32 would otherwise scale a
         * pass's sums every 32 columns ({@link #Q8_0_COLUMN_BLOCK}).
         */
        boolean folded() {
            return this == GGML_Q8_0 || this == GGML_Q4_0 || this == GGML_IQ4_NL;
        }

        /** Whether the activations are Q8_K's (a scale per 256 columns, {@link BatchActivations#xK}). */
        boolean kQuant() {
            return this == GGML_Q4_K || this == GGML_Q5_K || this == GGML_Q6_K || this == GGML_Q3_K || this == GGML_Q2_K
                    || this == GGML_IQ4_XS;
        }

        /** Whether the values have a min per sub-block, subtracted after the column blocks ({@link #q45KMins}): Q4_K and Q5_K. */
        boolean mins() {
            return this == GGML_Q4_K || this == GGML_Q5_K;
        }

        /** Bytes per block of the file (0: not GGML). */
        int fileBlockBytes() {
            return switch (this) {
                case F32, RUNQ_Q8, GGML_F16, GGML_BF16 -> 0;
                case GGML_Q8_0 -> Matrix.Q8_0.BLOCK_BYTES;
                case GGML_Q4_0 -> Matrix.Q4_0.BLOCK_BYTES;
                case GGML_Q5_1 -> Matrix.Q5_1.BLOCK_BYTES;
                case GGML_Q4_K -> Matrix.Q4_K.BLOCK_BYTES;
                case GGML_Q5_K -> Matrix.Q5_K.BLOCK_BYTES;
                case GGML_Q6_K -> Matrix.Q6_K.BLOCK_BYTES;
                case GGML_Q3_K -> Matrix.Q3_K.BLOCK_BYTES;
                case GGML_Q2_K -> Matrix.Q2_K.BLOCK_BYTES;
                case GGML_IQ4_NL -> Matrix.IQ4_NL.BLOCK_BYTES;
                case GGML_IQ4_XS -> Matrix.IQ4_XS.BLOCK_BYTES;
            };
        }
    }

    /**
     * Columns per Q4_K column block: half a super-block. A block's widened values are at most 63 · 15 in magnitude
     * and Q8_K's activations at most 127, so its FMA chain stays under 128 · 945 · 127 &lt; 2^24: exact, the
     * integer {@code sum_j sc_j * dot_j} of its four sub-blocks (a whole super-block could reach 2^24.9).
     */
    static final int Q4_K_COLUMN_BLOCK = 128;
    /**
     * Columns per Q5_K column block: a quarter of a super-block, the two sub-blocks that share 32 nibble bytes. A
     * widened value is at most 63 · 31 = 1953, a product at most 1953 · 127 = 248,031, so the chain stays within
     * 64 · 248,031 = 15,873,984 &lt; 2^24 = 16,777,216: exact, the integer {@code sc_2p * dot_2p + sc_2p+1 * dot_2p+1}
     * (Q4_K's 128 columns could reach 31,747,968, past 2^24; {@code BatchMatmulTest.q5KAtTheExtremesSumsExactly}
     * sits at the bound).
     */
    static final int Q5_K_COLUMN_BLOCK = 64;
    /** Columns per Q6_K column block: two sub-blocks, values at most 128 · 32, so the chain stays within 32 · 4096 · 127 &lt; 2^24: exact. */
    static final int Q6_K_COLUMN_BLOCK = 32;
    /**
     * Columns per Q3_K column block: half a super-block (as Q4_K's: its activations stay in L1), eight sub-blocks;
     * widened values at most 4 · 32 = 128 in magnitude, so the chain stays within 128 · 128 · 128 = 2^21 &lt; 2^24: exact.
     */
    static final int Q3_K_COLUMN_BLOCK = 128;
    /**
     * Columns per IQ4_XS column block: half a super-block (as Q4_K's), four sub-blocks. A widened value is at most
     * 32 · 127 = 4064 in magnitude (scale ls - 32 in -32..31, levels in -127..113), a product at most 4064 · 128 =
     * 520,192: the chain's partial sums are the exact integer {@code sum_s (ls_s - 32) * dot_s} while they stay within
     * 2^24 (a sub-block of 32 always does, 32 · 520,192 &lt; 2^24; four only while scales, levels and activations are not
     * all near their extremes with one sign); past it each further FMA may round to the float grid, and the roundings
     * add up: with every value -31 · -127 against -127 the chain ends 92 from the exact -63,999,872 (1.4e-6 of it;
     * {@code BatchMatmulTest.iq4XsAtTheExtremes}, row 1), where the one-token kernel's int sum is exact and its float
     * conversion rounds once past 2^24 (llama.cpp's too). Against a sub-block per column block
     * (always exact), 1B IQ4_XS pp128 on 2 threads 1.16-1.34x at 256 bits and 1.08-1.09x at 512
     * (docs/measurements/2026-12-07-iq4-prompts.md).
     */
    static final int IQ4_XS_COLUMN_BLOCK = 128;
    /**
     * Columns per column block of the {@link WeightLayout#folded} layouts (Q8_0, Q4_0, IQ4_NL: four of their blocks of
     * 32; 128 columns of 64 tokens of activations, 32 KiB, stay in L1 as the K-quants' do). Against the block of 32
     * scaled after each pass (the one-token kernel's integers, their float sums in another order), 1B Q8_0 pp128 on 2
     * threads 1.08-1.22x at 256 bits and 1.12-1.29x at 512, three rounds; a trial with blocks of 64 gained less at 256 bits
     * (docs/measurements/2026-12-07-q8-0-folded-scales.md).
     */
    static final int Q8_0_COLUMN_BLOCK = 128;

    /**
     * Rows [r0, r1) of out[b] = m · x[b] for every token b of the batch; {@code in} is prepared for m. The
     * transposed kernels read the file's layout; the one-token kernels read m's form (a load-time copy or the file's).
     */
    static void matmul(float[][] out, BatchActivations in, MatrixForm m, int r0, int r1, Kernels perToken) {
        if (r0 >= r1) {
            return;
        }
        in.check(m);
        if (!readsTransposed(m, in.tokens())) {
            perTokenTiles(out, in, m, r0, r1, perToken);
            return;
        }
        switch (m instanceof MatrixForm.Copy c ? c.copy() : m.source()) { // a copy has the file's layout
            case Matrix.F32 f -> f32(out, in.xF, in.stride(), in.tokens(), f, r0, r1);
            case Matrix.Q8 q -> q8(out, in.xT, in.sT, in.stride(), in.tokens(), q, r0, r1);
            case Matrix.Q8_0 q -> ggmlBlocks(out, in, WeightLayout.GGML_Q8_0, q.data(), q.cols(), r0, r1);
            case Matrix.Q4_0 q -> ggmlBlocks(out, in, WeightLayout.GGML_Q4_0, q.data(), q.cols(), r0, r1);
            case Matrix.Q4_K q -> tiles(out, in.xK, in.sK, in.mK, in.stride(), in.tokens(), WeightLayout.GGML_Q4_K, q.data(), null,
                    q.cols(), Q4_K_COLUMN_BLOCK, r0, r1);
            case Matrix.Q6_K q -> tiles(out, in.xK, in.sK, null, in.stride(), in.tokens(), WeightLayout.GGML_Q6_K, q.data(), null,
                    q.cols(), Q6_K_COLUMN_BLOCK, r0, r1);
            case Matrix.Q5_1 q -> tiles(out, in.xT, in.sT, in.s1T, in.stride(), in.tokens(), WeightLayout.GGML_Q5_1, q.data(), null,
                    q.cols(), Matrix.Q5_1.BLOCK, r0, r1);
            case Matrix.Q2_K q -> tiles(out, in.xK, in.sK, in.m16K, in.stride(), in.tokens(), WeightLayout.GGML_Q2_K, q.data(), null,
                    q.cols(), Q3_K_COLUMN_BLOCK, r0, r1);
            case Matrix.Q3_K q -> tiles(out, in.xK, in.sK, null, in.stride(), in.tokens(), WeightLayout.GGML_Q3_K, q.data(), null,
                    q.cols(), Q3_K_COLUMN_BLOCK, r0, r1);
            case Matrix.IQ4_NL q -> ggmlBlocks(out, in, WeightLayout.GGML_IQ4_NL, q.data(), q.cols(), r0, r1);
            case Matrix.IQ4_XS q -> tiles(out, in.xK, in.sK, null, in.stride(), in.tokens(), WeightLayout.GGML_IQ4_XS, q.data(), null,
                    q.cols(), IQ4_XS_COLUMN_BLOCK, r0, r1);
            case Matrix.Q5_K q -> tiles(out, in.xK, in.sK, in.mK, in.stride(), in.tokens(), WeightLayout.GGML_Q5_K, q.data(), null,
                    q.cols(), Q5_K_COLUMN_BLOCK, r0, r1);
            case Matrix.F16 h -> tiles(out, in.xH, null, null, in.stride(), in.tokens(), WeightLayout.GGML_F16, h.data(), null,
                    h.cols(), F32_BLOCK, r0, r1);
            case Matrix.BF16 h -> tiles(out, in.xB, null, null, in.stride(), in.tokens(), WeightLayout.GGML_BF16, h.data(), null,
                    h.cols(), F32_BLOCK, r0, r1);
        }
    }

    /** The one-token kernel for each token, a tile of rows at a time (the tile's weights then come from cache). */
    private static void perTokenTiles(float[][] out, BatchActivations in, MatrixForm m, int r0, int r1, Kernels perToken) {
        for (int rt = r0; rt < r1; rt += TILE_ROWS) {
            int re = Math.min(rt + TILE_ROWS, r1);
            for (int b = 0; b < in.tokens(); b++) {
                perToken.matmul(out[b], in.token(b), m, rt, re);
            }
        }
    }

    /** Tokens in whole panels of {@link #PANEL}; the rest are in panels of one vector. */
    static int panels(int stride) {
        return stride - stride % PANEL;
    }

    /**
     * Where x[b][j] goes in the transposed activations {@code xT} of n columns and stride lanes: in panels of
     * tokens, each panel column-major, so that a pass reads its tokens' values of consecutive columns at a
     * constant distance (which lets C2 drop the bounds checks in the loop). Tokens [t, t + w) form a panel,
     * w = {@link #PANEL} while whole panels fit, then w = FL; the panel starts at t * n and holds (n, w).
     */
    static int xIndex(int j, int b, int n, int stride) {
        int w = panelWidth(b, stride), t = b - b % w;
        return t * n + j * w + (b - t);
    }

    /** The width of token b's panel: {@link #PANEL} or FL ({@link #xIndex}: x[b][j + 1] is this far past x[b][j]). */
    static int panelWidth(int b, int stride) {
        return b < panels(stride) ? PANEL : FL;
    }

    private static float[] tile(int size) {
        float[] t = TILE.get();
        if (t.length < size) {
            t = new float[size];
            TILE.set(t);
        }
        Arrays.fill(t, 0, size, 0.0f);
        return t;
    }

    /** out[b][rt + i] = tile[i * stride + b]. */
    private static void scatter(float[] tile, float[][] out, int rt, int rows, int stride, int tokens) {
        for (int b = 0; b < tokens; b++) {
            float[] o = out[b];
            for (int i = 0; i < rows; i++) {
                o[rt + i] = tile[i * stride + b];
            }
        }
    }

    // ------------------------------------------------------------------ the tiled kernel (F32 and runq's Q8)

    /**
     * Rows per register tile over whole panels: 6 at 512 bits and up (6 × 4 accumulators, 4 activation vectors and
     * one or two broadcasts: C2 keeps the loop in AVX-512's 32 vector registers; a tile's last 4 rows then take
     * 4 × 4), 2 below (2 × 4 + 4 + 2 = 14 of AVX2's 16; 4 rows there spill). C2 loaded all broadcasts of a column
     * before its FMAs, so rows + vectors + rows × vectors had to fit 16: a 6 × 2 pass (12 accumulators) kept 20 vectors
     * live and five accumulators on the stack, pp512 0.62-0.79× of 2 × 4 at 256 bits
     * (docs/measurements/2026-12-05-unmasked-pairs.md).
     */
    static final int PASS_ROWS = F.vectorBitSize() >= 512 ? 6 : 2;

    /**
     * Each worker's scratch: a tile's weights as floats, every column block of its rows, (blocks, TILE_ROWS, block),
     * and its rows' scales, (blocks, TILE_ROWS).
     */
    private static final class Scratch {
        float[] weights = new float[0];
        float[] scales = new float[0];
        /**
         * Q4_K and Q5_K: the tile's rows' 6-bit mins, (TILE_ROWS, superBlocks, 8); Q2_K: its 4-bit mins, (TILE_ROWS,
         * superBlocks, 16) (sized for 16); and their dmin, (TILE_ROWS, superBlocks).
         */
        float[] mins = new float[0];
        float[] dmins = new float[0];
        /** Q5_1: the tile's rows' block offsets m, (TILE_ROWS, blocks). */
        float[] offsets = new float[0];
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static void f32(float[][] out, float[] xT, int stride, int tokens, Matrix.F32 w, int r0, int r1) {
        tiles(out, xT, null, null, stride, tokens, WeightLayout.F32, w.data(), null, w.cols(), F32_BLOCK, r0, r1);
    }

    /**
     * runq's Q8, the group as the column block: xT holds the int8 activations as floats and sT the activation
     * scales, {@code sT[g * stride + b]}; per group, the dot (exact) times the weight scale times the activation
     * scale is added to the token's sum.
     */
    static void q8(float[][] out, float[] xT, float[] sT, int stride, int tokens, Matrix.Q8 w, int r0, int r1) {
        tiles(out, xT, sT, null, stride, tokens, WeightLayout.RUNQ_Q8, w.values(), w.scales(), w.cols(), w.groupSize(), r0, r1);
    }

    /**
     * GGML Q8_0, Q4_0 and IQ4_NL, their scales folded ({@link WeightLayout#folded}): {@code xD} holds each token's Q8_0
     * activations (its {@link Activations}: llama.cpp's quantization, as the one-token path) as {@code q_x · d_x}, the
     * weights are widened as {@code q · d}, and the passes run as F32's in column blocks of {@link #Q8_0_COLUMN_BLOCK}
     * (an FMA chain from 0 per block, the block sums added in order); no scale in the pass.
     */
    private static void ggmlBlocks(float[][] out, BatchActivations in, WeightLayout layout, MemorySegment data, int n, int r0, int r1) {
        tiles(out, in.xD, null, null, in.stride(), in.tokens(), layout, data, null, n, Q8_0_COLUMN_BLOCK, r0, r1);
    }

    /**
     * Rows [r0, r1) for every token: F32 weights (scales null: values holds floats, block {@link #F32_BLOCK}), runq's
     * Q8 (values holds int8, scales one float per group, block the group size, sT the activation scales) or a GGML
     * layout (values the file's blocks, block as the layout says; sT the activation scales, one per block (Q5_1), per
     * super-block of 256 for the K-quants' Q8_K, or null for the {@link WeightLayout#folded} layouts, whose xT holds
     * the activations times their scales; mT Q8_K's sums of 32, for Q4_K's and Q5_K's mins, or of 16 for Q2_K's).
     * A tile of {@link #TILE_ROWS} rows goes over the columns one block at a time: the tile's weights, every
     * block, are first copied (F32) or widened (the others) into a float scratch, so one loop multiplies every type;
     * then passes of {@link #PASS_ROWS} rows (the remainder 4, 2 and 1 at a time) over the whole panels of tokens, and
     * of 4 rows (then 2, 1) over the one-vector panels after them. Each (row, token) lane is one pass's FMA chain,
     * so the pass shapes change no result. Q4_K's and Q5_K's mins' part is subtracted after the last block ({@link #q45KMins}),
     * and Q2_K's ({@link #q2KMins}).
     */
    static void tiles(float[][] out, float[] xT, float[] sT, float[] mT, int stride, int tokens, WeightLayout layout,
                      MemorySegment values, MemorySegment scales, int n, int block, int r0, int r1) {
        boolean scaled = layout.scaled();
        // values per block of the file, and per activation scale (a folded layout's column block holds four of its blocks)
        int fileBlock = layout.kQuant() ? Activations.Q8_K_BLOCK : layout.folded() ? Matrix.Q8_0.BLOCK : block;
        long ggmlRowBytes = (long) (n / fileBlock) * layout.fileBlockBytes();
        int groups = n / block, blocks = Math.ceilDiv(n, block), superBlocks = n / Activations.Q8_K_BLOCK;
        Scratch s = SCRATCH.get();
        if (s.weights.length < blocks * TILE_ROWS * block) {
            s.weights = new float[blocks * TILE_ROWS * block];
        }
        if (s.scales.length < blocks * TILE_ROWS) {
            s.scales = new float[blocks * TILE_ROWS];
        }
        if ((layout.mins() || layout == WeightLayout.GGML_Q2_K) && s.mins.length < superBlocks * TILE_ROWS * 16) { // (Q2_K: 16 mins)
            s.mins = new float[superBlocks * TILE_ROWS * 16];
            s.dmins = new float[superBlocks * TILE_ROWS];
        }
        if (layout == WeightLayout.GGML_Q5_1 && s.offsets.length < groups * TILE_ROWS) {
            s.offsets = new float[groups * TILE_ROWS];
        }
        float[] wf = s.weights, wsAll = s.scales;
        for (int rt = r0; rt < r1; rt += TILE_ROWS) {
            int rows = Math.min(TILE_ROWS, r1 - rt);
            float[] tile = tile(rows * stride);
            // the tile's weights, every block, row after row: one sequential stream of rows · n values (a block of
            // all the tile's rows at a time, 16 streams a row apart, left the widening's loads waiting on DRAM:
            // docs/measurements/2026-12-04-prefill-tile-read.md)
            for (int i = 0; i < rows; i++) {
                long row = (long) (rt + i) * n;
                for (int k0 = 0, g = 0; k0 < n; k0 += block, g++) {
                    int kb = Math.min(block, n - k0), at = (g * TILE_ROWS + i) * block;
                    long b = (rt + i) * ggmlRowBytes + (long) (k0 / fileBlock) * layout.fileBlockBytes(); // its GGML block
                    switch (layout) {
                        case F32 -> MemorySegment.copy(values, FLOAT, (row + k0) * Float.BYTES, wf, at, kb);
                        case GGML_F16 -> widenHalves(values, (row + k0) * Short.BYTES, wf, at, kb, true);
                        case GGML_BF16 -> widenHalves(values, (row + k0) * Short.BYTES, wf, at, kb, false);
                        case RUNQ_Q8 -> {
                            widen(values, row + k0, 1.0f, wf, at, kb);
                            wsAll[g * TILE_ROWS + i] = scales.getAtIndex(FLOAT, (long) (rt + i) * groups + g);
                        }
                        case GGML_Q8_0, GGML_Q4_0, GGML_IQ4_NL -> { // the column block's blocks: each an F16 scale, then its values
                            for (int p = 0; p < kb / fileBlock; p++) {
                                long bp = b + (long) p * layout.fileBlockBytes();
                                float d = Float.float16ToFloat(values.get(Matrix.SHORT, bp));
                                switch (layout) {
                                    case GGML_Q8_0 -> widen(values, bp + Short.BYTES, d, wf, at + fileBlock * p, fileBlock);
                                    case GGML_Q4_0 -> widenNibbles(values, bp + Short.BYTES, d, wf, at + fileBlock * p);
                                    default -> widenIq4(values, bp + Short.BYTES, d, wf, at + fileBlock * p);
                                }
                            }
                        }
                        case GGML_Q5_1 -> {
                            widenQ5_1(values, b, wf, at);
                            wsAll[g * TILE_ROWS + i] = Float.float16ToFloat(values.get(Matrix.SHORT, b));
                            s.offsets[i * groups + g] = Float.float16ToFloat(values.get(Matrix.SHORT, b + Matrix.Q5_1.M));
                        }
                        case GGML_Q4_K, GGML_Q5_K -> { // the column block's pairs of sub-blocks (Q4_K two, Q5_K one)
                            boolean q5 = layout == WeightLayout.GGML_Q5_K;
                            int first = k0 % Activations.Q8_K_BLOCK; // the block's first value in its super-block
                            for (int p = first / 64; p < (first + kb) / 64; p++) {
                                widenQ45K(values, b, q5 ? Matrix.Q5_K.QS : 16, q5 ? Matrix.Q5_K.QH : -1, p, wf, at + 64 * p - first);
                            }
                            wsAll[g * TILE_ROWS + i] = Float.float16ToFloat(values.get(Matrix.SHORT, b));
                            if (first == 0) {
                                int sb = i * superBlocks + k0 / Activations.Q8_K_BLOCK;
                                s.dmins[sb] = Float.float16ToFloat(values.get(Matrix.SHORT, b + 2));
                                for (int j = 0; j < 8; j++) {
                                    s.mins[sb * 8 + j] = Matrix.Q4_K.min(values, b + 4, j);
                                }
                            }
                        }
                        case GGML_Q6_K -> {
                            widenQ6K(values, b, k0 % Activations.Q8_K_BLOCK / Q6_K_COLUMN_BLOCK, wf, at);
                            wsAll[g * TILE_ROWS + i] = Float.float16ToFloat(values.get(Matrix.SHORT, b + 208));
                        }
                        case GGML_Q2_K -> { // the column block's four parts of 32, and at a super-block's start its mins
                            int first = k0 % Activations.Q8_K_BLOCK / 32;
                            for (int p = 0; p < Q3_K_COLUMN_BLOCK / 32; p++) {
                                widenQ23K(values, b, first + p, wf, at + 32 * p, false);
                            }
                            wsAll[g * TILE_ROWS + i] = Float.float16ToFloat(values.get(Matrix.SHORT, b + Matrix.Q2_K.D));
                            if (first == 0) {
                                int sb = i * superBlocks + k0 / Activations.Q8_K_BLOCK;
                                s.dmins[sb] = Float.float16ToFloat(values.get(Matrix.SHORT, b + Matrix.Q2_K.DMIN));
                                for (int j = 0; j < 16; j++) {
                                    s.mins[sb * 16 + j] = Matrix.Q2_K.min(values, b, j);
                                }
                            }
                        }
                        case GGML_IQ4_XS -> { // the column block's sub-blocks
                            int first = k0 % Activations.Q8_K_BLOCK / 32;
                            long head = values.get(LONG, b); // d (bits 0-15), scales_h, scales_l (Matrix.IQ4_XS.scale)
                            for (int p = 0; p < IQ4_XS_COLUMN_BLOCK / 32; p++) {
                                widenIq4(values, b + Matrix.IQ4_XS.QS + 16L * (first + p), Matrix.IQ4_XS.scale(head, first + p), wf, at + 32 * p);
                            }
                            wsAll[g * TILE_ROWS + i] = Float.float16ToFloat((short) head);
                        }
                        case GGML_Q3_K -> { // the column block's four parts of 32
                            int first = k0 % Activations.Q8_K_BLOCK / 32;
                            for (int p = 0; p < Q3_K_COLUMN_BLOCK / 32; p++) {
                                widenQ23K(values, b, first + p, wf, at + 32 * p, true);
                            }
                            wsAll[g * TILE_ROWS + i] = Float.float16ToFloat(values.get(Matrix.SHORT, b + Matrix.Q3_K.D));
                        }
                    }
                }
            }
            for (int k0 = 0, g = 0; k0 < n; k0 += block, g++) {
                int kb = Math.min(block, n - k0), wg = g * TILE_ROWS * block, sg = g * TILE_ROWS;
                float[] xs = scaled ? sT : null;
                int so = k0 / fileBlock * stride, full = panels(stride);
                // whole panels of four token vectors, one panel at a time (its block of activations, up to 128 columns
                // of 64 tokens = 32 KiB, stays in L1 while every row passes over it): PASS_ROWS rows at a time (6 at
                // 512 bits, then 4), then 2, then 1
                for (int t = 0; t < full; t += PANEL) {
                    int i = 0;
                    if (PASS_ROWS == 6) { // (a constant: C2 keeps one branch)
                        for (; i + 6 <= rows; i += 6) {
                            rows6x4(wf, wg + i * block, block, kb, xT, t * n + k0 * PANEL, stride, tile, i * stride + t, xs, so + t, wsAll, sg + i);
                        }
                        for (; i + 4 <= rows; i += 4) {
                            rows4x4(wf, wg + i * block, block, kb, xT, t * n + k0 * PANEL, stride, tile, i * stride + t, xs, so + t, wsAll, sg + i);
                        }
                    }
                    for (; i + 2 <= rows; i += 2) {
                        rows2x4(wf, wg + i * block, block, kb, xT, t * n + k0 * PANEL, stride, tile, i * stride + t, xs, so + t, wsAll, sg + i);
                    }
                    for (; i < rows; i++) {
                        for (int u = t; u < t + PANEL; u += FL) {
                            rows1x1(wf, wg + i * block, kb, xT, t * n + k0 * PANEL + (u - t), PANEL, tile, i * stride + u, xs, so + u, wsAll, sg + i);
                        }
                    }
                }
                // the one-vector panels after them: 4 rows at a time at every width (4 accumulators fit 16 registers)
                int i = 0;
                for (; i + 4 <= rows; i += 4) {
                    for (int t = full; t < stride; t += FL) {
                        rows4x1(wf, wg + i * block, block, kb, xT, t * n + k0 * FL, stride, tile, i * stride + t, xs, so + t, wsAll, sg + i);
                    }
                }
                for (; i + 2 <= rows; i += 2) {
                    for (int t = full; t < stride; t += FL) {
                        rows2x1(wf, wg + i * block, block, kb, xT, t * n + k0 * FL, stride, tile, i * stride + t, xs, so + t, wsAll, sg + i);
                    }
                }
                for (; i < rows; i++) {
                    for (int t = full; t < stride; t += FL) {
                        rows1x1(wf, wg + i * block, kb, xT, t * n + k0 * FL, FL, tile, i * stride + t, xs, so + t, wsAll, sg + i);
                    }
                }
            }
            if (layout.mins()) {
                q45KMins(tile, rows, stride, superBlocks, s.mins, s.dmins, sT, mT);
            } else if (layout == WeightLayout.GGML_Q2_K) {
                q2KMins(tile, rows, stride, superBlocks, s.mins, s.dmins, sT, mT);
            }
            if (layout == WeightLayout.GGML_Q5_1) {
                q51Offsets(tile, rows, stride, groups, s.offsets, mT);
            }
            scatter(tile, out, rt, rows, stride, tokens);
        }
    }

    /**
     * Q4_K's and Q5_K's mins' part (their 6-bit mins are packed alike), after the tile's blocks: for each row i and token, super-block after super-block,
     * {@code sum -= (M * dmin) * d_x} with {@code M = sum_j m_j * s_j} (the sub-blocks' 6-bit mins times the
     * activations' sums of 32, {@code mT}), an FMA chain over the 8 sub-blocks, exact (at most 8 · 63 · 32 · 127
     * &lt; 2^24). Lanes are tokens, as in the passes.
     */
    private static void q45KMins(float[] tile, int rows, int stride, int superBlocks, float[] mins, float[] dmins, float[] sK,
                                float[] mK) {
        // super-block and token vector outside, rows inside: the activations' sums (mK) are read once per tile
        for (int k = 0; k < superBlocks; k++) {
            for (int t = 0; t < stride; t += FL) {
                int m0 = k * 8 * stride + t;
                FloatVector s0 = FloatVector.fromArray(F, mK, m0), s1 = FloatVector.fromArray(F, mK, m0 + stride);
                FloatVector s2 = FloatVector.fromArray(F, mK, m0 + 2 * stride), s3 = FloatVector.fromArray(F, mK, m0 + 3 * stride);
                FloatVector s4 = FloatVector.fromArray(F, mK, m0 + 4 * stride), s5 = FloatVector.fromArray(F, mK, m0 + 5 * stride);
                FloatVector s6 = FloatVector.fromArray(F, mK, m0 + 6 * stride), s7 = FloatVector.fromArray(F, mK, m0 + 7 * stride);
                FloatVector dx = FloatVector.fromArray(F, sK, k * stride + t);
                for (int i = 0; i < rows; i++) {
                    int sb = i * superBlocks + k, mi = sb * 8, o = i * stride + t;
                    FloatVector m = s0.mul(mins[mi]); // an FMA chain from 0 over the 8 sub-blocks (the first product exact)
                    m = s1.fma(FloatVector.broadcast(F, mins[mi + 1]), m);
                    m = s2.fma(FloatVector.broadcast(F, mins[mi + 2]), m);
                    m = s3.fma(FloatVector.broadcast(F, mins[mi + 3]), m);
                    m = s4.fma(FloatVector.broadcast(F, mins[mi + 4]), m);
                    m = s5.fma(FloatVector.broadcast(F, mins[mi + 5]), m);
                    m = s6.fma(FloatVector.broadcast(F, mins[mi + 6]), m);
                    m = s7.fma(FloatVector.broadcast(F, mins[mi + 7]), m);
                    FloatVector.fromArray(F, tile, o).sub(m.mul(dmins[sb]).mul(dx)).intoArray(tile, o);
                }
            }
        }
    }

    /**
     * Q2_K's mins' part, after the tile's blocks, as {@link #q45KMins} with sixteen sub-blocks of 16: for each row i,
     * super-block k and token, {@code sum -= (M · dmin) · d_x} with {@code M = sum_j m_j · s_j} (an FMA chain from 0
     * over the 16 sub-blocks, exact: at most 16 · 15 · 16 · 128 &lt; 2^24), s_j the token's Q8_K sum of sub-block j
     * ({@code m16K}).
     */
    private static void q2KMins(float[] tile, int rows, int stride, int superBlocks, float[] mins, float[] dmins, float[] sK,
                                float[] m16K) {
        for (int k = 0; k < superBlocks; k++) {
            for (int t = 0; t < stride; t += FL) {
                int m0 = k * 16 * stride + t;
                FloatVector dx = FloatVector.fromArray(F, sK, k * stride + t);
                for (int i = 0; i < rows; i++) {
                    int sb = i * superBlocks + k, mi = sb * 16, o = i * stride + t;
                    FloatVector m = FloatVector.fromArray(F, m16K, m0).mul(mins[mi]);
                    for (int j = 1; j < 16; j++) {
                        m = FloatVector.fromArray(F, m16K, m0 + j * stride).fma(FloatVector.broadcast(F, mins[mi + j]), m);
                    }
                    FloatVector.fromArray(F, tile, o).sub(m.mul(dmins[sb]).mul(dx)).intoArray(tile, o);
                }
            }
        }
    }

    /**
     * Q5_1's offsets' part, after the tile's blocks: for each row i and token, {@code sum += M} with {@code M = sum_g m_g
     * · s_g}, an FMA chain from 0 over the row's blocks (m_g the block's offset as a float, s_g the token's Q8_1 block
     * sum, {@code s1T[g · stride + b]}). Lanes are tokens, as in the passes.
     */
    private static void q51Offsets(float[] tile, int rows, int stride, int blocks, float[] offsets, float[] s1T) {
        for (int t = 0; t < stride; t += FL) {
            for (int i = 0; i < rows; i++) {
                int mi = i * blocks, o = i * stride + t;
                FloatVector m = FloatVector.fromArray(F, s1T, t).mul(offsets[mi]);
                for (int g = 1; g < blocks; g++) {
                    m = FloatVector.fromArray(F, s1T, g * stride + t).fma(FloatVector.broadcast(F, offsets[mi + g]), m);
                }
                FloatVector.fromArray(F, tile, o).add(m).intoArray(tile, o);
            }
        }
    }

    /** Lane k: k (a lane's shift of a Q5_1 block's word of fifth bits in {@link #widenQ5_1}). */
    private static final int[] LANE_INDEX = java.util.stream.IntStream.range(0, 16).toArray();
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);

    /**
     * The Q5_1 block at {@code b}: wf[at + k] = q_k (0..31, exact as floats), the low (k &lt; 16) or high nibble of byte k
     * mod 16 of its 16 nibble bytes plus 16 times bit k of its word of fifth bits ({@link Matrix.Q5_1}).
     */
    static void widenQ5_1(MemorySegment values, long b, float[] wf, int at) {
        int qh = values.get(INT, b + Matrix.Q5_1.QH), k = 0;
        long from = b + Matrix.Q5_1.QS;
        if (B_FOR_F != null) { // bytes zero-extended to int lanes, each lane's two fifth bits from the word shifted by its index
            for (; k + FL <= 16; k += FL) {
                IntVector v = (IntVector) ByteVector.fromMemorySegment(B_FOR_F, values, from + k, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I_FOR_F, 0);
                IntVector h = IntVector.broadcast(I_FOR_F, qh).lanewise(VectorOperators.LSHR, IntVector.fromArray(I_FOR_F, LANE_INDEX, k));
                IntVector lo = v.and(0x0F).or(h.and(1).lanewise(VectorOperators.LSHL, 4));
                IntVector hi = v.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 12).and(16));
                ((FloatVector) lo.convert(VectorOperators.I2F, 0)).intoArray(wf, at + k);
                ((FloatVector) hi.convert(VectorOperators.I2F, 0)).intoArray(wf, at + 16 + k);
            }
        }
        for (; k < 16; k++) {
            int q = values.get(BYTE, from + k) & 0xFF;
            wf[at + k] = (q & 0x0F) | ((qh >>> k) & 1) << 4;
            wf[at + 16 + k] = (q >>> 4) | ((qh >>> (k + 16)) & 1) << 4;
        }
    }

    /**
     * Sub-blocks 2p and 2p + 1 of the Q4_K or Q5_K super-block at {@code b}, whose nibbles are at {@code b + qsAt} and
     * fifth bits at {@code b + qhAt} (negative: none, Q4_K): wf[at + 32 i + l] = sc_(2p + i) * q (exact), q value l of
     * sub-block 2p + i: the low (i = 0) or high nibble of the nibble byte {@code 32 p + l}, plus 16 times bit 2p + i of
     * qh[l] (Q5_K, {@link Matrix.Q5_K}), so 0..15 (Q4_K) or 0..31 (Q5_K).
     */
    static void widenQ45K(MemorySegment values, long b, int qsAt, int qhAt, int p, float[] wf, int at) {
        float scLo = Matrix.Q4_K.scale(values, b + 4, 2 * p), scHi = Matrix.Q4_K.scale(values, b + 4, 2 * p + 1);
        long from = b + qsAt + 32L * p, qh = b + qhAt;
        int k = 0;
        if (B_FOR_F != null) { // bytes zero-extended to int lanes: x86 has no byte shift, an int one is one instruction
            for (; k + FL <= 32; k += FL) {
                IntVector v = (IntVector) ByteVector.fromMemorySegment(B_FOR_F, values, from + k, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I_FOR_F, 0);
                IntVector lo = v.and(0x0F), hi = v.lanewise(VectorOperators.LSHR, 4);
                if (qhAt >= 0) { // bits 2p and 2p + 1 of qh[l], moved to bit 4
                    IntVector h = ((IntVector) ByteVector.fromMemorySegment(B_FOR_F, values, qh + k, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I_FOR_F, 0)).lanewise(VectorOperators.LSHR, 2 * p);
                    lo = lo.or(h.and(1).lanewise(VectorOperators.LSHL, 4));
                    hi = hi.or(h.and(2).lanewise(VectorOperators.LSHL, 3));
                }
                ((FloatVector) lo.convert(VectorOperators.I2F, 0)).mul(scLo).intoArray(wf, at + k);
                ((FloatVector) hi.convert(VectorOperators.I2F, 0)).mul(scHi).intoArray(wf, at + 32 + k);
            }
        }
        for (; k < 32; k++) {
            int q = values.get(BYTE, from + k) & 0xFF, h = qhAt < 0 ? 0 : (values.get(BYTE, qh + k) & 0xFF) >>> (2 * p);
            wf[at + k] = scLo * ((q & 0x0F) | (h & 1) << 4);
            wf[at + 32 + k] = scHi * ((q >>> 4) | (h & 2) << 3);
        }
    }

    /**
     * Part {@code part} (values 32 part .. 32 part + 31) of the Q6_K super-block at {@code b}: wf[at + l] = sc * (q - 32)
     * (exact), as {@link Matrix.Q6_K}'s layout puts them: in half h = part / 4, i = part % 4, value l takes the
     * low (i &lt; 2) or high nibble of ql[l + 32 (i mod 2)], bits 2i.. of qh[l] and scale scales[l / 16 + 2i].
     */
    static void widenQ6K(MemorySegment values, long b, int part, float[] wf, int at) {
        int half = part / 4, i = part % 4, nibbleShift = 4 * (i / 2), highShift = 2 * i;
        long ql = b + 64L * half + 32L * (i % 2), qh = b + 128 + 32L * half, sc = b + 192 + 8L * half + 2L * i;
        int k = 0;
        if (B_FOR_F != null) { // in int lanes, as widenQ4K
            for (; k + FL <= 32; k += FL) {
                IntVector lo = ((IntVector) ByteVector.fromMemorySegment(B_FOR_F, values, ql + k, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I_FOR_F, 0)).lanewise(VectorOperators.LSHR, nibbleShift).and(0x0F);
                IntVector hi = ((IntVector) ByteVector.fromMemorySegment(B_FOR_F, values, qh + k, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I_FOR_F, 0)).lanewise(VectorOperators.LSHR, highShift).and(3)
                        .lanewise(VectorOperators.LSHL, 4);
                float scale = values.get(BYTE, sc + k / 16);
                ((FloatVector) lo.or(hi).sub(32).convert(VectorOperators.I2F, 0)).mul(scale).intoArray(wf, at + k);
            }
        }
        for (; k < 32; k++) {
            int low = ((values.get(BYTE, ql + k) & 0xFF) >>> nibbleShift) & 0x0F;
            int high = ((values.get(BYTE, qh + k) & 0xFF) >>> highShift) & 3;
            int q = (low | (high << 4)) - 32;
            wf[at + k] = values.get(BYTE, sc + k / 16) * (float) q;
        }
    }

    /**
     * Part {@code part} (values 32 part .. 32 part + 31) of the Q2_K ({@code q3} false) or Q3_K super-block at {@code b}:
     * wf[at + l] = sc * q (exact), as {@link Matrix.Q2_K}'s and {@link Matrix.Q3_K}'s layouts put them: in half h =
     * part / 4, i = part % 4, value l takes bits 2i..2i+1 of qs[32 h + l] (Q2_K: q in 0..3, sc its 4-bit scale) and, for
     * Q3_K, bit 4h + i of hmask[l] (q = those bits | that bit &lt;&lt; 2, minus 4; sc = the 6-bit scale - 32), sub-block
     * 2 part + l / 16. One method for both, as {@link #widenQ45K}: they differ in the high bit and the scale only.
     */
    static void widenQ23K(MemorySegment values, long b, int part, float[] wf, int at, boolean q3) {
        int half = part / 4, i = part % 4, lowShift = 2 * i, highShift = 4 * half + i, offset = q3 ? 4 : 0;
        long qs = b + (q3 ? Matrix.Q3_K.QS : Matrix.Q2_K.QS) + 32L * half, hmask = b + Matrix.Q3_K.HMASK;
        float sc0 = q3 ? Matrix.Q3_K.scale(values, b, 2 * part) : Matrix.Q2_K.scale(values, b, 2 * part);
        float sc1 = q3 ? Matrix.Q3_K.scale(values, b, 2 * part + 1) : Matrix.Q2_K.scale(values, b, 2 * part + 1);
        int k = 0;
        if (B_FOR_F != null) { // in int lanes, as widenQ6K (FL divides 16: a vector within one sub-block)
            for (; k + FL <= 32; k += FL) {
                IntVector q = ((IntVector) ByteVector.fromMemorySegment(B_FOR_F, values, qs + k, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I_FOR_F, 0)).lanewise(VectorOperators.LSHR, lowShift).and(3);
                if (q3) {
                    q = q.or(((IntVector) ByteVector.fromMemorySegment(B_FOR_F, values, hmask + k, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I_FOR_F, 0)).lanewise(VectorOperators.LSHR, highShift).and(1)
                            .lanewise(VectorOperators.LSHL, 2)).sub(4);
                }
                ((FloatVector) q.convert(VectorOperators.I2F, 0)).mul(k < 16 ? sc0 : sc1).intoArray(wf, at + k);
            }
        }
        for (; k < 32; k++) {
            int low = ((values.get(BYTE, qs + k) & 0xFF) >>> lowShift) & 3;
            int high = q3 ? ((values.get(BYTE, hmask + k) & 0xFF) >>> highShift) & 1 : 0;
            wf[at + k] = (k < 16 ? sc0 : sc1) * (float) ((low | high << 2) - offset);
        }
    }

    /**
     * The IQ4 sub-block whose 16 nibble bytes are at {@code from} ({@link Matrix.IQ4_NL}'s layout, also each of IQ4_XS's
     * eight): wf[at + k] = sc * level(low nibble of byte k) and wf[at + 16 + k] = sc * level(high nibble), k in 0..15
     * (exact: sc is IQ4_XS's integer scale, |sc| ≤ 32, or IQ4_NL's F16 d; |level| ≤ 127). The 16 bytes in one 128-bit vector, each nibble's level looked up in it as the
     * one-token kernel does ({@link GgmlMatmul#IQ4_LEVELS}), then widened to floats FL at a time (16 values or fewer per
     * vector; wider ones take the scalar loop).
     */
    static void widenIq4(MemorySegment values, long from, float sc, float[] wf, int at) {
        if (FL <= 16) { // (a constant)
            ByteVector table = ByteVector.fromArray(GgmlMatmul.B16, GgmlMatmul.IQ4_LEVELS, 0);
            ByteVector lo = ByteVector.fromMemorySegment(GgmlMatmul.B16, values, from, LE).and((byte) 0x0F).selectFrom(table);
            ByteVector hi = LongVector.fromMemorySegment(GgmlMatmul.L16, values, from, LE)
                    .lanewise(VectorOperators.LSHR, 4).reinterpretAsBytes().and((byte) 0x0F).selectFrom(table);
            for (int part = 0; part < 16 / FL; part++) { // (FL 4, 8 or 16: a constant)
                ((FloatVector) lo.convertShape(VectorOperators.B2F, F, part)).mul(sc).intoArray(wf, at + part * FL);
                ((FloatVector) hi.convertShape(VectorOperators.B2F, F, part)).mul(sc).intoArray(wf, at + 16 + part * FL);
            }
            return;
        }
        for (int k = 0; k < 16; k++) {
            int q = values.get(BYTE, from + k) & 0xFF;
            wf[at + k] = sc * Matrix.IQ4_NL.value(q & 0x0F);
            wf[at + 16 + k] = sc * Matrix.IQ4_NL.value(q >>> 4);
        }
    }

    /**
     * wf[at + k] = the k-th half at byte {@code from}, for k in [0, count): F16 (f16) or BF16 widened to float (exact).
     * F16 through its bits: sign and the 15 other bits shifted into a float's place, times 2^112 to rebias the
     * exponent (exact for normal and subnormal halves); a half with the all-ones exponent (inf, NaN) keeps it.
     */
    static void widenHalves(MemorySegment values, long from, float[] wf, int at, int count, boolean f16) {
        int k = 0;
        if (H_FOR_F != null) {
            for (; k + FL <= count; k += FL) {
                IntVector h = (IntVector) ShortVector.fromMemorySegment(H_FOR_F, values, from + 2L * k, LE)
                        .convertShape(VectorOperators.S2I, I_FOR_F, 0);
                FloatVector v;
                if (f16) {
                    IntVector bits = h.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000);
                    v = bits.reinterpretAsFloats().mul(0x1p112f);
                    VectorMask<Integer> special = h.and(0x7C00).compare(VectorOperators.EQ, 0x7C00);
                    if (special.anyTrue()) {
                        v = v.blend(bits.or(0x7F800000).reinterpretAsFloats(), special.cast(F));
                    }
                } else {
                    v = h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                }
                v.intoArray(wf, at + k);
            }
        }
        for (; k < count; k++) {
            short h = values.get(Matrix.SHORT, from + 2L * k);
            wf[at + k] = f16 ? Float.float16ToFloat(h) : Float.intBitsToFloat(h << 16);
        }
    }

    /** wf[at + k] = sc · values[base + k] for k in [0, count): int8 widened to float, times sc (exact for an F16 sc, and for 1). */
    private static void widen(MemorySegment values, long base, float sc, float[] wf, int at, int count) {
        int k = 0;
        if (B_FOR_F != null) {
            for (; k + FL <= count; k += FL) {
                ((FloatVector) ByteVector.fromMemorySegment(B_FOR_F, values, base + k, LE).convertShape(VectorOperators.B2F, F, 0))
                        .mul(sc).intoArray(wf, at + k);
            }
        }
        for (; k < count; k++) {
            wf[at + k] = sc * values.get(BYTE, base + k);
        }
    }

    /** wf[at + k] = sc · ((low nibble of byte k) - 8) and wf[at + 16 + k] = sc · ((high nibble) - 8) for the 16 bytes at from (a Q4_0 block). */
    private static void widenNibbles(MemorySegment values, long from, float sc, float[] wf, int at) {
        int half = Matrix.Q4_0.BLOCK / 2, k = 0;
        if (B_FOR_F != null) {
            for (; k + FL <= half; k += FL) {
                ByteVector v = ByteVector.fromMemorySegment(B_FOR_F, values, from + k, LE);
                ((FloatVector) v.and((byte) 0x0F).sub((byte) 8).convertShape(VectorOperators.B2F, F, 0)).mul(sc).intoArray(wf, at + k);
                ((FloatVector) v.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8)
                        .convertShape(VectorOperators.B2F, F, 0)).mul(sc).intoArray(wf, at + half + k);
            }
        }
        for (; k < half; k++) {
            int b = values.get(BYTE, from + k) & 0xFF;
            wf[at + k] = sc * ((b & 0x0F) - 8);
            wf[at + half + k] = sc * ((b >> 4) - 8);
        }
    }

    /*
     * The passes: rows i.. of the tile (their block weights at wf[w0 + row * block + k]) against one panel of the
     * block's activations, four token vectors (x = base + k * PANEL) or one (x = base + k * FL); each (row, token
     * vector) an FMA chain from 0 over the block, added to the tile at o (+ row * stride) as it is (F32) or scaled
     * first as runq does, (dot * wScale) * xScale (Q8: xs non-null, the tokens' scales at xs[s..]). Written out per
     * shape, one loop per method and the panel's width a constant: C2 then hoists every bounds check out of the
     * loop (with a loop over panels around it, a hoisted check trapped and the recompiled loop kept all of them),
     * and without helpers returning vectors (a vector returned by a method that C2 does not inline is boxed).
     */

    private static void rows6x4(float[] wf, int w0, int block, int kb, float[] xT, int base, int stride, float[] tile, int o,
                                float[] xs, int s, float[] ws, int i) {
        int w1 = w0 + block, w2 = w1 + block, w3 = w2 + block, w4 = w3 + block, w5 = w4 + block;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F), a22 = FloatVector.zero(F), a23 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F), a32 = FloatVector.zero(F), a33 = FloatVector.zero(F);
        FloatVector a40 = FloatVector.zero(F), a41 = FloatVector.zero(F), a42 = FloatVector.zero(F), a43 = FloatVector.zero(F);
        FloatVector a50 = FloatVector.zero(F), a51 = FloatVector.zero(F), a52 = FloatVector.zero(F), a53 = FloatVector.zero(F);
        for (int k = 0; k < kb; k++) {
            int x = base + k * PANEL;
            FloatVector x0 = FloatVector.fromArray(F, xT, x), x1 = FloatVector.fromArray(F, xT, x + FL);
            FloatVector x2 = FloatVector.fromArray(F, xT, x + 2 * FL), x3 = FloatVector.fromArray(F, xT, x + 3 * FL);
            FloatVector b = FloatVector.broadcast(F, wf[w0 + k]);
            a00 = x0.fma(b, a00);
            a01 = x1.fma(b, a01);
            a02 = x2.fma(b, a02);
            a03 = x3.fma(b, a03);
            b = FloatVector.broadcast(F, wf[w1 + k]);
            a10 = x0.fma(b, a10);
            a11 = x1.fma(b, a11);
            a12 = x2.fma(b, a12);
            a13 = x3.fma(b, a13);
            b = FloatVector.broadcast(F, wf[w2 + k]);
            a20 = x0.fma(b, a20);
            a21 = x1.fma(b, a21);
            a22 = x2.fma(b, a22);
            a23 = x3.fma(b, a23);
            b = FloatVector.broadcast(F, wf[w3 + k]);
            a30 = x0.fma(b, a30);
            a31 = x1.fma(b, a31);
            a32 = x2.fma(b, a32);
            a33 = x3.fma(b, a33);
            b = FloatVector.broadcast(F, wf[w4 + k]);
            a40 = x0.fma(b, a40);
            a41 = x1.fma(b, a41);
            a42 = x2.fma(b, a42);
            a43 = x3.fma(b, a43);
            b = FloatVector.broadcast(F, wf[w5 + k]);
            a50 = x0.fma(b, a50);
            a51 = x1.fma(b, a51);
            a52 = x2.fma(b, a52);
            a53 = x3.fma(b, a53);
        }
        if (xs != null) {
            FloatVector s0 = FloatVector.fromArray(F, xs, s), s1 = FloatVector.fromArray(F, xs, s + FL);
            FloatVector s2 = FloatVector.fromArray(F, xs, s + 2 * FL), s3 = FloatVector.fromArray(F, xs, s + 3 * FL);
            float c0 = ws[i];
            a00 = a00.mul(c0).mul(s0); a01 = a01.mul(c0).mul(s1); a02 = a02.mul(c0).mul(s2); a03 = a03.mul(c0).mul(s3);
            float c1 = ws[i + 1];
            a10 = a10.mul(c1).mul(s0); a11 = a11.mul(c1).mul(s1); a12 = a12.mul(c1).mul(s2); a13 = a13.mul(c1).mul(s3);
            float c2 = ws[i + 2];
            a20 = a20.mul(c2).mul(s0); a21 = a21.mul(c2).mul(s1); a22 = a22.mul(c2).mul(s2); a23 = a23.mul(c2).mul(s3);
            float c3 = ws[i + 3];
            a30 = a30.mul(c3).mul(s0); a31 = a31.mul(c3).mul(s1); a32 = a32.mul(c3).mul(s2); a33 = a33.mul(c3).mul(s3);
            float c4 = ws[i + 4];
            a40 = a40.mul(c4).mul(s0); a41 = a41.mul(c4).mul(s1); a42 = a42.mul(c4).mul(s2); a43 = a43.mul(c4).mul(s3);
            float c5 = ws[i + 5];
            a50 = a50.mul(c5).mul(s0); a51 = a51.mul(c5).mul(s1); a52 = a52.mul(c5).mul(s2); a53 = a53.mul(c5).mul(s3);
        }
        int p = o;
        FloatVector.fromArray(F, tile, p).add(a00).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a01).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a02).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a03).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a10).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a11).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a12).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a13).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a20).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a21).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a22).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a23).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a30).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a31).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a32).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a33).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a40).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a41).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a42).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a43).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a50).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a51).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a52).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a53).intoArray(tile, p + 3 * FL);
    }

    private static void rows4x4(float[] wf, int w0, int block, int kb, float[] xT, int base, int stride, float[] tile, int o,
                                float[] xs, int s, float[] ws, int i) {
        int w1 = w0 + block, w2 = w1 + block, w3 = w2 + block;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F), a22 = FloatVector.zero(F), a23 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F), a32 = FloatVector.zero(F), a33 = FloatVector.zero(F);
        for (int k = 0; k < kb; k++) {
            int x = base + k * PANEL;
            FloatVector x0 = FloatVector.fromArray(F, xT, x), x1 = FloatVector.fromArray(F, xT, x + FL);
            FloatVector x2 = FloatVector.fromArray(F, xT, x + 2 * FL), x3 = FloatVector.fromArray(F, xT, x + 3 * FL);
            FloatVector b = FloatVector.broadcast(F, wf[w0 + k]);
            a00 = x0.fma(b, a00);
            a01 = x1.fma(b, a01);
            a02 = x2.fma(b, a02);
            a03 = x3.fma(b, a03);
            b = FloatVector.broadcast(F, wf[w1 + k]);
            a10 = x0.fma(b, a10);
            a11 = x1.fma(b, a11);
            a12 = x2.fma(b, a12);
            a13 = x3.fma(b, a13);
            b = FloatVector.broadcast(F, wf[w2 + k]);
            a20 = x0.fma(b, a20);
            a21 = x1.fma(b, a21);
            a22 = x2.fma(b, a22);
            a23 = x3.fma(b, a23);
            b = FloatVector.broadcast(F, wf[w3 + k]);
            a30 = x0.fma(b, a30);
            a31 = x1.fma(b, a31);
            a32 = x2.fma(b, a32);
            a33 = x3.fma(b, a33);
        }
        if (xs != null) {
            FloatVector s0 = FloatVector.fromArray(F, xs, s), s1 = FloatVector.fromArray(F, xs, s + FL);
            FloatVector s2 = FloatVector.fromArray(F, xs, s + 2 * FL), s3 = FloatVector.fromArray(F, xs, s + 3 * FL);
            float c0 = ws[i], c1 = ws[i + 1], c2 = ws[i + 2], c3 = ws[i + 3];
            a00 = a00.mul(c0).mul(s0); a01 = a01.mul(c0).mul(s1); a02 = a02.mul(c0).mul(s2); a03 = a03.mul(c0).mul(s3);
            a10 = a10.mul(c1).mul(s0); a11 = a11.mul(c1).mul(s1); a12 = a12.mul(c1).mul(s2); a13 = a13.mul(c1).mul(s3);
            a20 = a20.mul(c2).mul(s0); a21 = a21.mul(c2).mul(s1); a22 = a22.mul(c2).mul(s2); a23 = a23.mul(c2).mul(s3);
            a30 = a30.mul(c3).mul(s0); a31 = a31.mul(c3).mul(s1); a32 = a32.mul(c3).mul(s2); a33 = a33.mul(c3).mul(s3);
        }
        int p = o;
        FloatVector.fromArray(F, tile, p).add(a00).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a01).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a02).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a03).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a10).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a11).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a12).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a13).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a20).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a21).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a22).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a23).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a30).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a31).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a32).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a33).intoArray(tile, p + 3 * FL);
    }

    private static void rows4x1(float[] wf, int w0, int block, int kb, float[] xT, int base, int stride, float[] tile, int o,
                                float[] xs, int s, float[] ws, int i) {
        int w1 = w0 + block, w2 = w1 + block, w3 = w2 + block;
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
        for (int k = 0; k < kb; k++) {
            FloatVector x0 = FloatVector.fromArray(F, xT, base + k * FL);
            a0 = x0.fma(FloatVector.broadcast(F, wf[w0 + k]), a0);
            a1 = x0.fma(FloatVector.broadcast(F, wf[w1 + k]), a1);
            a2 = x0.fma(FloatVector.broadcast(F, wf[w2 + k]), a2);
            a3 = x0.fma(FloatVector.broadcast(F, wf[w3 + k]), a3);
        }
        if (xs != null) {
            FloatVector s0 = FloatVector.fromArray(F, xs, s);
            a0 = a0.mul(ws[i]).mul(s0);
            a1 = a1.mul(ws[i + 1]).mul(s0);
            a2 = a2.mul(ws[i + 2]).mul(s0);
            a3 = a3.mul(ws[i + 3]).mul(s0);
        }
        FloatVector.fromArray(F, tile, o).add(a0).intoArray(tile, o);
        FloatVector.fromArray(F, tile, o + stride).add(a1).intoArray(tile, o + stride);
        FloatVector.fromArray(F, tile, o + 2 * stride).add(a2).intoArray(tile, o + 2 * stride);
        FloatVector.fromArray(F, tile, o + 3 * stride).add(a3).intoArray(tile, o + 3 * stride);
    }

    private static void rows2x4(float[] wf, int w0, int block, int kb, float[] xT, int base, int stride, float[] tile, int o,
                                float[] xs, int s, float[] ws, int i) {
        int w1 = w0 + block;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        for (int k = 0; k < kb; k++) {
            int x = base + k * PANEL;
            FloatVector x0 = FloatVector.fromArray(F, xT, x), x1 = FloatVector.fromArray(F, xT, x + FL);
            FloatVector x2 = FloatVector.fromArray(F, xT, x + 2 * FL), x3 = FloatVector.fromArray(F, xT, x + 3 * FL);
            FloatVector b0 = FloatVector.broadcast(F, wf[w0 + k]);
            FloatVector b1 = FloatVector.broadcast(F, wf[w1 + k]);
            a00 = x0.fma(b0, a00);
            a01 = x1.fma(b0, a01);
            a02 = x2.fma(b0, a02);
            a03 = x3.fma(b0, a03);
            a10 = x0.fma(b1, a10);
            a11 = x1.fma(b1, a11);
            a12 = x2.fma(b1, a12);
            a13 = x3.fma(b1, a13);
        }
        if (xs != null) {
            FloatVector s0 = FloatVector.fromArray(F, xs, s), s1 = FloatVector.fromArray(F, xs, s + FL);
            FloatVector s2 = FloatVector.fromArray(F, xs, s + 2 * FL), s3 = FloatVector.fromArray(F, xs, s + 3 * FL);
            float c0 = ws[i], c1 = ws[i + 1];
            a00 = a00.mul(c0).mul(s0); a01 = a01.mul(c0).mul(s1); a02 = a02.mul(c0).mul(s2); a03 = a03.mul(c0).mul(s3);
            a10 = a10.mul(c1).mul(s0); a11 = a11.mul(c1).mul(s1); a12 = a12.mul(c1).mul(s2); a13 = a13.mul(c1).mul(s3);
        }
        int p = o;
        FloatVector.fromArray(F, tile, p).add(a00).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a01).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a02).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a03).intoArray(tile, p + 3 * FL);
        p += stride;
        FloatVector.fromArray(F, tile, p).add(a10).intoArray(tile, p);
        FloatVector.fromArray(F, tile, p + FL).add(a11).intoArray(tile, p + FL);
        FloatVector.fromArray(F, tile, p + 2 * FL).add(a12).intoArray(tile, p + 2 * FL);
        FloatVector.fromArray(F, tile, p + 3 * FL).add(a13).intoArray(tile, p + 3 * FL);
    }

    private static void rows2x1(float[] wf, int w0, int block, int kb, float[] xT, int base, int stride, float[] tile, int o,
                                float[] xs, int s, float[] ws, int i) {
        int w1 = w0 + block;
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
        for (int k = 0; k < kb; k++) {
            FloatVector x0 = FloatVector.fromArray(F, xT, base + k * FL);
            a0 = x0.fma(FloatVector.broadcast(F, wf[w0 + k]), a0);
            a1 = x0.fma(FloatVector.broadcast(F, wf[w1 + k]), a1);
        }
        if (xs != null) {
            FloatVector s0 = FloatVector.fromArray(F, xs, s);
            a0 = a0.mul(ws[i]).mul(s0);
            a1 = a1.mul(ws[i + 1]).mul(s0);
        }
        FloatVector.fromArray(F, tile, o).add(a0).intoArray(tile, o);
        FloatVector.fromArray(F, tile, o + stride).add(a1).intoArray(tile, o + stride);
    }

    /** One row, one token vector at x = base + k * width (the tile's odd last row). */
    private static void rows1x1(float[] wf, int w0, int kb, float[] xT, int base, int width, float[] tile, int o,
                                float[] xs, int s, float[] ws, int i) {
        FloatVector a0 = FloatVector.zero(F);
        for (int k = 0; k < kb; k++) {
            a0 = FloatVector.fromArray(F, xT, base + k * width).fma(FloatVector.broadcast(F, wf[w0 + k]), a0);
        }
        if (xs != null) {
            a0 = a0.mul(ws[i]).mul(FloatVector.fromArray(F, xs, s));
        }
        FloatVector.fromArray(F, tile, o).add(a0).intoArray(tile, o);
    }

    /**
     * The scalar reference of {@link #f32}, in its order: for each row and token, per block of
     * {@link #F32_BLOCK} columns a fused multiply-add chain from 0, the block sums added in order.
     * x is row-major here, {@code x[b][j]}.
     */
    static void f32Reference(float[][] out, float[][] x, int tokens, Matrix.F32 w, int r0, int r1) {
        int n = w.cols();
        MemorySegment data = w.data();
        for (int b = 0; b < tokens; b++) {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * n * Float.BYTES;
                float sum = 0.0f;
                for (int k0 = 0; k0 < n; k0 += F32_BLOCK) {
                    float block = 0.0f;
                    for (int k = k0; k < Math.min(k0 + F32_BLOCK, n); k++) {
                        block = Math.fma(data.get(FLOAT, base + 4L * k), x[b][k], block);
                    }
                    sum += block;
                }
                out[b][r] = sum;
            }
        }
    }
}
