package io.github.llama2j.gguf;

import io.github.llama2j.model.GgufSynth;

import java.lang.foreign.MemorySegment;

import java.math.BigInteger;
import java.util.List;
import java.util.Map;

/**
 * Regenerates the weights of shared/gguf's unstored test models (the F32, F16, BF16 and Q8_0 twins)
 * in Java, following tools/make_models.py's documented scheme, and writes them as a GGUF file with the
 * golden file's hyper-parameters and tensor list (no tokenizer: the engine needs none).
 *
 * <p>Random numbers: numpy's {@code PCG64(seed).random_raw()}, a 128-bit LCG with the XSL-RR output.
 * Its initial state comes from numpy's SeedSequence hashing of the seed; the four states are listed
 * here as numpy reports them ({@code np.random.PCG64(seed).state}), so no SeedSequence port is needed.
 * Each normal is the sum of the twelve 16-bit chunks of three raw words minus 393210 (Irwin-Hall), an
 * integer k; a weight of std m/2^e is {@code k*m / 2^(16+e)} and a norm weight {@code 1 + k*m / 2^(16+e)},
 * both exact in float32. Tensors are drawn in file order; rope_freqs draws nothing.
 * Conversions as make_models.py: f16 and bf16 round to nearest even; q8_0 is quantize_row_q8_0_ref
 * (round half away from zero), only for 2-D {@code *.weight} tensors that are not norms.
 */
final class GoldenTwins {
    private static final BigInteger MASK = BigInteger.ONE.shiftLeft(128).subtract(BigInteger.ONE);
    private static final long MUL_HI = 0x2360ED051FC65DA4L, MUL_LO = 0x4385DF649FCCF645L;
    private static final long IH_MEAN = 6 * 65535;

    /** numpy.random.PCG64(seed).state: {state, inc} as 128-bit hex. */
    private static final Map<Integer, String[]> STATES = Map.of(
            11, new String[]{"6b00d0fb170ad4f8a9bbfcf88690096e", "5f8ac07ffe071c3b00016928186734b"},
            2, new String[]{"692416b3311ec79c2a21eb1bc4f483cc", "5bae0a5743882ba5d1ad0f9f2cb8dbef"},
            3, new String[]{"f38b68fdd16b0f8da7f7267aef605897", "a7043c160277735a2ed88b8bc66abe1f"},
            4, new String[]{"76339b92f88ff6f34f69f00c3a703764", "d1596989777d52aca8edb0f4250cac59"});

    /** The base models' seeds and std exponents {emb, mat} (m = 1), as make_models.py's MODELS. */
    private static final Map<String, int[]> SPECS = Map.of(
            "llama3-tiny", new int[]{11, 4, 3},
            "llama2-tiny", new int[]{2, 5, 4},
            "qwen2-tiny", new int[]{3, 4, 3},
            "qwen3-tiny", new int[]{4, 4, 3});

    /** llama3-tiny's RoPE scaling (README: factor 32, low 1, high 4, original context 8192; rope_freqs as the converter computes it). */
    private static final GgufSynth.Llama3Rope LLAMA3_ROPE = new GgufSynth.Llama3Rope(32, 1, 4, 8192);

    /** PCG64 with numpy's step-then-output order. */
    static final class Pcg64 {
        long hi, lo;
        final long incHi, incLo;

        Pcg64(int seed) {
            String[] s = STATES.get(seed);
            BigInteger state = new BigInteger(s[0], 16), inc = new BigInteger(s[1], 16);
            hi = state.shiftRight(64).longValue();
            lo = state.longValue();
            incHi = inc.shiftRight(64).and(MASK).longValue();
            incLo = inc.longValue();
        }

        long next() {
            // state = state * MUL + inc (mod 2^128)
            long newLo = lo * MUL_LO;
            long newHi = Math.unsignedMultiplyHigh(lo, MUL_LO) + hi * MUL_LO + lo * MUL_HI;
            long sumLo = newLo + incLo;
            long carry = Long.compareUnsigned(sumLo, newLo) < 0 ? 1 : 0;
            hi = newHi + incHi + carry;
            lo = sumLo;
            return Long.rotateRight(hi ^ lo, (int) (hi >>> 58));
        }

        long irwinHall() {
            long s = 0;
            for (int j = 0; j < 3; j++) {
                long w = next();
                for (int sh = 0; sh < 64; sh += 16) {
                    s += (w >>> sh) & 0xFFFF;
                }
            }
            return s - IH_MEAN;
        }
    }

    /** The base model of a golden file: "llama3-tiny-f16" -> "llama3-tiny". */
    static String base(String modelFile) {
        String n = modelFile.replace(".gguf", "");
        return n.substring(0, n.lastIndexOf('-'));
    }

    static boolean canBuild(Map<String, Object> golden) {
        return SPECS.containsKey(base((String) golden.get("model_file")));
    }

    @SuppressWarnings("unchecked")
    static byte[] build(Map<String, Object> golden) {
        String base = base((String) golden.get("model_file"));
        int[] spec = SPECS.get(base);
        Pcg64 rng = new Pcg64(spec[0]);
        String arch = (String) golden.get("architecture");
        Map<String, Object> h = (Map<String, Object>) golden.get("hparams");
        GgufWriter b = new GgufWriter().str("general.architecture", arch)
                .u32(arch + ".context_length", num(h, "n_ctx_train")).u32(arch + ".embedding_length", num(h, "n_embd"))
                .u32(arch + ".block_count", num(h, "n_layer")).u32(arch + ".feed_forward_length", num(h, "n_ff"))
                .u32(arch + ".attention.head_count", num(h, "n_head")).u32(arch + ".attention.head_count_kv", num(h, "n_head_kv"))
                .f32(arch + ".rope.freq_base", ((Number) h.get("rope_freq_base")).floatValue())
                .f32(arch + ".attention.layer_norm_rms_epsilon", ((Number) h.get("rms_norm_eps")).floatValue());
        for (Map<String, Object> t : (List<Map<String, Object>>) golden.get("tensors")) {
            String name = (String) t.get("name");
            long[] ne = ((List<Object>) t.get("ne")).stream().mapToLong(o -> ((Number) o).longValue()).toArray();
            int n = 1;
            for (long d : ne) {
                n *= (int) d;
            }
            float[] v = new float[n];
            if (name.equals("rope_freqs.weight")) {
                v = LLAMA3_ROPE.factors(((Number) h.get("rope_freq_base")).floatValue(), 2 * n);
            } else {
                boolean norm = name.endsWith("_norm.weight");
                int e = name.equals("token_embd.weight") ? spec[1] : name.endsWith(".bias") ? 4 : norm ? 3 : spec[2];
                for (int i = 0; i < n; i++) {
                    long k = rng.irwinHall();
                    v[i] = norm ? (float) Math.scalb((double) ((1L << (16 + e)) + k), -(16 + e)) : (float) Math.scalb((double) k, -(16 + e));
                }
            }
            GgmlType type = GgmlType.valueOf(((String) t.get("type")).toUpperCase(java.util.Locale.ROOT));
            b.tensor(name, type, convert(v, type), ne);
        }
        return b.toBytes();
    }

    private static long num(Map<String, Object> h, String key) {
        return ((Number) h.get(key)).longValue();
    }

    /** The values converted with the writer's conversions (GgmlQuantize: the reference quantizers make_models.py ports). */
    private static byte[] convert(float[] v, GgmlType type) {
        byte[] out = new byte[Math.toIntExact(GgufWriter.byteSize(type, v.length))];
        GgufSynth.convert(type, v, 0, v.length, MemorySegment.ofArray(out), 0);
        return out;
    }
}
