package io.github.llama2j.cpu;

import io.github.llama2j.model.ModelLoader;
import io.github.llama2j.model.Matrix;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.Weights;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Benchmark (not a test): a GGUF file's matrices, as the engine streams them from the mapped file
 * (from DRAM: a pass reads hundreds of MB), through the kernels' variants and through a plain
 * streaming read of the same bytes (the ceiling), one thread, GB/s of weights per second of the
 * thread's CPU time, rounds in a rotated order, ratios per round.
 * <pre>
 * java --add-modules jdk.incubator.vector -Xbatch -cp target/test-classes:target/classes \
 *      io.github.llama2j.cpu.GgufStreamSpeed FILE.gguf[,FILE2.gguf...] [SET [SECONDS ROUNDS]]
 *   FILE may also be a llama2.c checkpoint (runq's Q8 .bin: its Q8 matrices, packed ({@link PackedQ8_0}) or not)
 *   several files (copies of one file whose page cache was filled differently): every variant runs on each
 *   file's set, named variant@file's index; ratios are to "current" on the first file. A file's variants run
 *   one after the other, so its first variant is the first to read its pages after another file's: a slot that
 *   was 1.1-4x slower on some page-cache states (docs/measurements/2026-12-03-f16.md)
 *   SET: ffn (w1, w3, w2 of every layer), all (every matrix and the classifier), cls (the classifier),
 *        kv, v0 (layer 0's wk or wv alone, which stays in cache), type:T (every matrix of GGML type T, e.g. type:Q5_1)
 *   -Dvariants=a,b  runs only these (and "current"): stream (the plain read), file (every matrix in the file's
 *                   layout instead of the engine's load-time copy: {@code --weight-copies=off}), filecopy (the same kernels
 *                   on a private copy of the file's bytes: the kernel without the page cache's cost), chunks16 and lookup16
 *                   (the engine's forms 16 rows at a time, resolved once or looked up in the registry for each tile)
 *                   cvt256, cvt1024, cvtArr256, cvtArr1024 (F16 only; other types run the engine's kernel): blocks of
 *                   a row converted by Float.float16ToFloat into a float scratch, then the FMAs
 *                   (docs/measurements/2026-12-03-f16-convert.md)
 *   -Dbase=NAME     the variant the per-round ratios are to (default: current)
 * </pre>
 * {@code current} is the engine's kernels on the engine's load-time repacks ({@link PreparedWeights}, made once
 * before the rounds and timed); {@code stream} reads the file's bytes.
 */
public final class GgufStreamSpeed {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final VectorSpecies<Long> LS = LongVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Byte> BB = ByteVector.SPECIES_PREFERRED;

    interface K {
        void run(float[] out, Activations x, Matrix m);
    }

    record Variant(String name, K k, List<Matrix> ms) {
    }

    /** The ceiling: every byte of the matrix read once, 4 independent accumulators. */
    static long stream(MemorySegment s) {
        long n = s.byteSize(), step = BB.length() * 4L, upper = n - n % step;
        LongVector a0 = LongVector.zero(LS), a1 = a0, a2 = a0, a3 = a0;
        long i = 0;
        for (; i < upper; i += step) {
            a0 = a0.add(LongVector.fromMemorySegment(LS, s, i, LE));
            a1 = a1.add(LongVector.fromMemorySegment(LS, s, i + BB.length(), LE));
            a2 = a2.add(LongVector.fromMemorySegment(LS, s, i + 2L * BB.length(), LE));
            a3 = a3.add(LongVector.fromMemorySegment(LS, s, i + 3L * BB.length(), LE));
        }
        long r = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            r += s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i);
        }
        return r;
    }

    static volatile long sink;

    public static void main(String[] args) throws Exception {
        List<Path> files = Arrays.stream(args[0].split(",")).map(Path::of).toList();
        String set = args.length > 1 ? args[1] : "ffn";
        double seconds = args.length > 2 ? Double.parseDouble(args[2]) : 1.0;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 7;
        List<Model> models = new ArrayList<>();
        List<List<Matrix>> sets = new ArrayList<>();
        for (Path file : files) {
            Model model = ModelLoader.load(file); // GGUF or a llama2.c checkpoint (runq's Q8 included)
            models.add(model);
            sets.add(matrices(model.weights(), set));
        }
        List<Matrix> ms = sets.get(0);
        long total = 0;
        int maxRows = 0, maxCols = 0;
        for (Matrix m : ms) {
            total += m.byteSize();
            maxRows = Math.max(maxRows, m.rows());
            maxCols = Math.max(maxCols, m.cols());
        }
        SplittableRandom rnd = new SplittableRandom(7);
        java.util.Map<Integer, Activations> acts = new java.util.HashMap<>();
        for (Matrix m : ms) {
            acts.computeIfAbsent(m.cols(), n -> {
                float[] x = new float[n];
                for (int i = 0; i < n; i++) {
                    x[i] = (float) rnd.nextGaussian();
                }
                Activations a = new Activations(n);
                a.input(x, n);
                return a;
            });
            acts.get(m.cols()).prepareFor(m);
        }
        float[] out = new float[maxRows], ref = new float[maxRows];
        VectorKernels vk = new VectorKernels();
        PreparedWeights prepared = new PreparedWeights(io.github.llama2j.engine.WeightCopies.AUTO);
        long p0 = System.nanoTime();
        try (Parallel pool = new Parallel(1)) {
            for (Model model : models) {
                prepared.prepare(model.weights(), pool);
            }
        }
        System.out.printf(Locale.ROOT, "prepared forms: %d MB in %.2f s%n", prepared.byteSize() >> 20, (System.nanoTime() - p0) * 1e-9);
        java.util.Map<Matrix, MatrixForm> forms = new java.util.IdentityHashMap<>(); // resolved once, as the engine does
        for (List<Matrix> each : sets) {
            for (Matrix m : each) {
                forms.put(m, prepared.resolve(m));
            }
        }
        List<Variant> vs = new ArrayList<>();
        vs.add(new Variant("current", (o, a, m) -> vk.matmul(o, a, forms.get(m), 0, m.rows()), ms));
        vs.add(new Variant("stream", (o, a, m) -> sink += stream(m instanceof Matrix.Q8 q ? q.values() : ((Matrix.Ggml) m).data()), ms));
        // every matrix in the file's layout (what the engine reads with --weight-copies=off)
        vs.add(new Variant("file", (o, a, m) -> vk.matmul(o, a, m, 0, m.rows()), ms));
        // the file's layout copied into private memory (the kernel on the file's bytes, without the page cache's cost)
        if (only(System.getProperty("variants"), "filecopy")) {
            java.util.Map<Matrix, Matrix> fileCopies = new java.util.IdentityHashMap<>();
            java.lang.foreign.Arena copies = java.lang.foreign.Arena.ofShared();
            for (Matrix m : ms) {
                if (m instanceof Matrix.Ggml g) {
                    MemorySegment c = PageMemory.allocate(copies, g.data().byteSize());
                    c.copyFrom(g.data());
                    fileCopies.put(m, switch (m) {
                        case Matrix.Q4_0 q -> new Matrix.Q4_0(c, q.rows(), q.cols());
                        case Matrix.Q5_1 q -> new Matrix.Q5_1(c, q.rows(), q.cols());
                        case Matrix.Q8_0 q -> new Matrix.Q8_0(c, q.rows(), q.cols());
                        case Matrix.F16 q -> new Matrix.F16(c, q.rows(), q.cols());
                        case Matrix.BF16 q -> new Matrix.BF16(c, q.rows(), q.cols());
                        case Matrix.Q4_K q -> new Matrix.Q4_K(c, q.rows(), q.cols());
                        case Matrix.Q6_K q -> new Matrix.Q6_K(c, q.rows(), q.cols());
                        default -> m;
                    });
                }
            }
            vs.add(new Variant("filecopy", (o, a, m) -> vk.matmul(o, a, fileCopies.getOrDefault(m, m), 0, m.rows()), ms));
        }
        // the engine's forms in tiles of 16 rows (the batched prefill's grain), the form resolved once (chunks16) or
        // looked up in the registry for every tile (lookup16: what every product did before the forms were resolved
        // when the engine is built)
        vs.add(new Variant("chunks16", (o, a, m) -> {
            MatrixForm f = forms.get(m);
            for (int r = 0; r < m.rows(); r += 16) {
                vk.matmul(o, a, f, r, Math.min(r + 16, m.rows()));
            }
        }, ms));
        vs.add(new Variant("lookup16", (o, a, m) -> {
            for (int r = 0; r < m.rows(); r += 16) {
                vk.matmul(o, a, prepared.resolve(m), r, Math.min(r + 16, m.rows()));
            }
        }, ms));
        // F16 through vcvtph2ps (docs/measurements/2026-12-03-f16-convert.md): blocks of a row converted into a float
        // scratch by a scalar loop of Float.float16ToFloat (from the mapping, or from a short[] copy: cvtArr), then
        // the FMAs; other types run the engine's kernel
        for (int b : new int[]{256, 1024}) {
            for (boolean copy : new boolean[]{false, true}) {
                vs.add(new Variant((copy ? "cvtArr" : "cvt") + b, (o, a, m) -> {
                    if (forms.get(m) instanceof MatrixForm.File(Matrix.F16 h)) {
                        F16Variants.cvt(o, a, h, 0, h.rows(), b, copy);
                    } else {
                        vk.matmul(o, a, forms.get(m), 0, m.rows());
                    }
                }, ms));
            }
        }
        String only = System.getProperty("variants");
        if (only != null) {
            List<String> keep = List.of(only.split(","));
            vs.removeIf(v -> !v.name.equals("current") && !keep.contains(v.name));
        }
        if (files.size() > 1) {
            List<Variant> each = new ArrayList<>();
            for (int f = 0; f < files.size(); f++) {
                for (Variant v : vs) {
                    each.add(new Variant(v.name + "@" + f, v.k, sets.get(f)));
                }
            }
            vs = each;
        }
        // check each variant against the scalar reference on the first matrices of each shape
        ScalarKernels sk = new ScalarKernels();
        for (Variant v : vs) {
            if (v.name.startsWith("stream")) {
                continue;
            }
            double worst = 0;
            for (Matrix m : v.ms.subList(0, Math.min(v.ms.size(), 8))) {
                Activations a = acts.get(m.cols());
                sk.matmul(ref, a, m, 0, m.rows());
                Arrays.fill(out, Float.NaN);
                v.k.run(out, a, m);
                for (int r = 0; r < m.rows(); r++) {
                    worst = Math.max(worst, Math.abs(out[r] - ref[r]) / (Math.abs(ref[r]) + 1e-3));
                }
            }
            System.out.printf(Locale.ROOT, "check %-12s max rel diff vs scalar %.2e%n", v.name, worst);
        }
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        int nv = vs.size();
        for (Variant v : vs) {
            long t0 = cpu.getCurrentThreadCpuTime();
            while (cpu.getCurrentThreadCpuTime() - t0 < 2_000_000_000L) {
                for (Matrix m : v.ms) {
                    v.k.run(out, acts.get(m.cols()), m);
                }
            }
        }
        // after the warm-up (compiled code): each variant's outputs bit for bit against the first variant's
        for (Variant v : vs.subList(1, nv)) {
            if (v.name.startsWith("stream")) {
                continue;
            }
            long differ = 0, count = 0;
            for (int i = 0; i < Math.min(v.ms.size(), 8); i++) {
                Matrix m = v.ms.get(i);
                vs.get(0).k.run(ref, acts.get(m.cols()), vs.get(0).ms.get(i));
                v.k.run(out, acts.get(m.cols()), m);
                for (int r = 0; r < m.rows(); r++, count++) {
                    differ += Float.floatToIntBits(out[r]) != Float.floatToIntBits(ref[r]) ? 1 : 0;
                }
            }
            System.out.printf(Locale.ROOT, "bits %-12s %d of %d outputs differ from %s (compiled)%n", v.name, differ, count, vs.get(0).name);
        }
        double[][] gbs = new double[nv][rounds];
        String load0 = loadavg();
        for (int round = 0; round < rounds; round++) {
            for (int t = 0; t < nv; t++) {
                int vi = (t + round) % nv;
                Variant v = vs.get(vi);
                long t0 = cpu.getCurrentThreadCpuTime(), bytes = 0;
                while (cpu.getCurrentThreadCpuTime() - t0 < (long) (seconds * 1e9)) {
                    for (Matrix m : v.ms) {
                        v.k.run(out, acts.get(m.cols()), m);
                        bytes += m.byteSize();
                    }
                }
                gbs[vi][round] = bytes / (double) (cpu.getCurrentThreadCpuTime() - t0);
            }
        }
        System.out.printf(Locale.ROOT, "%s set %s: %d matrices, %d MB, %d-bit, %d rounds x %.2f s, load before %s, after %s%n",
                files.stream().map(p -> p.getFileName().toString()).toList(), set, ms.size(), total >> 20, FloatVector.SPECIES_PREFERRED.vectorBitSize(), rounds, seconds, load0, loadavg());
        String baseName = System.getProperty("base", vs.get(0).name);
        int base = 0;
        for (int vi = 0; vi < nv; vi++) {
            base = vs.get(vi).name.equals(baseName) ? vi : base;
        }
        System.out.printf(Locale.ROOT, "  ratios per round to %s%n", vs.get(base).name);
        for (int vi = 0; vi < nv; vi++) {
            double[] g = gbs[vi].clone(), ratio = new double[rounds];
            for (int i = 0; i < rounds; i++) {
                ratio[i] = gbs[vi][i] / gbs[base][i];
            }
            Arrays.sort(g);
            Arrays.sort(ratio);
            StringBuilder each = new StringBuilder();
            for (double x : gbs[vi]) {
                each.append(String.format(Locale.ROOT, " %.1f", x));
            }
            System.out.printf(Locale.ROOT, "  %-12s median %6.2f  best %6.2f GB/s (CPU time); / base per round: median %.2f (quartiles %.2f-%.2f); rounds:%s%n",
                    vs.get(vi).name, g[g.length / 2], g[g.length - 1], ratio[rounds / 2], ratio[rounds / 4], ratio[(3 * rounds) / 4], each);
        }
        for (Model model : models) {
            model.close();
        }
        if (files.size() > 1) {
            System.out.println("  (variant@i: the i-th file)");
        }
    }

    /** The matrices of {@code set} (see the class comment), in the order the passes read them. */
    static List<Matrix> matrices(Weights w, String set) {
        if (set.startsWith("type:")) { // every matrix of one type (e.g. type:Q5_1), the classifier included
            String type = set.substring("type:".length());
            return new ArrayList<>(matrices(w, "all").stream().filter(m -> m.typeName().equals(type)).distinct().toList());
        }
        List<Matrix> ms = new ArrayList<>();
        for (int l = 0; l < w.wq().length; l++) {
            if (set.equals("kv") || set.equals("v0")) { // layer 0's wk or wv alone: it stays in the caches
                ms.add(set.equals("kv") ? w.wk()[0] : w.wv()[0]);
                break;
            }
            if (!set.equals("cls") && !set.equals("ffn")) {
                ms.addAll(List.of(w.wq()[l], w.wk()[l], w.wv()[l], w.wo()[l]));
            }
            if (!set.equals("cls")) {
                ms.addAll(List.of(w.w1()[l], w.w3()[l], w.w2()[l]));
            }
        }
        if (!set.equals("ffn") && !set.equals("kv") && !set.equals("v0")) {
            ms.add(w.classifier());
        }
        return ms;
    }

    static String loadavg() {
        try {
            return java.nio.file.Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (java.io.IOException e) {
            return "?";
        }
    }

    /** Whether the comma-separated list {@code only} (null: every variant) names {@code variant}. */
    private static boolean only(String only, String variant) {
        return only == null || java.util.Arrays.asList(only.split(",")).contains(variant);
    }
}
