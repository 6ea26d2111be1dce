package io.github.llama2j.math;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;

/**
 * The exhaustive check behind {@link VectorExpf}: every finite float through the vectorized expf and through the
 * C library's expf ({@link CLibraryMath}), compared bit for bit; run once per C library and recorded in
 * docs/measurements/2026-12-03-prefill.md. Not a test (minutes of CPU); run with
 * <pre>
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *      -cp target/classes:target/test-classes io.github.llama2j.math.ExpfSweep [threads [stride]]
 * </pre>
 * Besides the verdict it prints what chose {@link VectorExpf#WINDOW}: over the inputs in the vector range, the
 * largest distance from a float midpoint (in the double's last bits) at which rounding the double to float
 * disagreed with the C library, the share of inputs the window hands to the C library, and the inputs just outside
 * the window (nearest to it) for {@link VectorExpf#HARD}.
 */
public final class ExpfSweep {
    private static final int CHUNK = 1 << 20;
    public static void main(String[] args) throws Exception {
        FloatMath libm = CLibraryMath.instance().orElseThrow(() -> new IllegalStateException("no C library"));
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
        AtomicLong finite = new AtomicLong(), mismatches = new AtomicLong(), inRange = new AtomicLong(),
                windowed = new AtomicLong(), worstUnwindowed = new AtomicLong(-1);
        List<long[]> hard = new ArrayList<>(); // {distance, bits}
        long start = System.nanoTime();
        int stride = args.length > 1 ? Integer.parseInt(args[1]) : 1; // > 1: a sample of the chunks (a trial run)
        int chunks = (int) ((1L << 32) / CHUNK) / stride;
        java.util.concurrent.ForkJoinPool pool = new java.util.concurrent.ForkJoinPool(threads);
        pool.submit(() -> IntStream.range(0, chunks).map(i -> i * stride).parallel().forEach(c -> {
            float[] x = new float[CHUNK];
            int n = 0;
            for (long b = (long) c * CHUNK; b < (long) (c + 1) * CHUNK; b++) {
                float f = Float.intBitsToFloat((int) b);
                if (Float.isFinite(f)) {
                    x[n++] = f;
                }
            }
            float[] y = x.clone();
            VectorExpf.expShifted(y, 0, n, 0.0f, libm);
            long mis = 0, range = 0, win = 0, worst = -1;
            List<long[]> localHard = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                float ref = libm.exp(x[i]);
                if (Float.floatToRawIntBits(ref) != Float.floatToRawIntBits(y[i])) {
                    mis++;
                    if (mis <= 5) {
                        System.out.printf("MISMATCH x=%s (%08x): vector %s, libm %s%n", x[i], Float.floatToRawIntBits(x[i]), y[i], ref);
                    }
                }
                if (x[i] >= VectorExpf.LOW && x[i] <= VectorExpf.HIGH) {
                    range++;
                    long distance = midpointDistance(x[i]);
                    if (distance < VectorExpf.WINDOW) {
                        win++;
                    }
                    if ((float) scalarExp(x[i]) != ref) {
                        worst = Math.max(worst, distance);
                    } else if (distance >= VectorExpf.WINDOW && distance < VectorExpf.WINDOW + (1 << 12)) {
                        localHard.add(new long[] {distance, Float.floatToRawIntBits(x[i])});
                    }
                }
            }
            finite.addAndGet(n);
            mismatches.addAndGet(mis);
            inRange.addAndGet(range);
            windowed.addAndGet(win);
            long w = worst;
            worstUnwindowed.accumulateAndGet(w, Math::max);
            synchronized (hard) {
                hard.addAll(localHard);
            }
        })).get();
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf("libm %s, species %s, %d finite floats, %.0f s%n", libm.name(), VectorExpf.D, finite.get(), seconds);
        System.out.printf("in [%s, %s]: %d; within the window (%d) of a midpoint: %d (%.3f%%)%n", VectorExpf.LOW, VectorExpf.HIGH,
                inRange.get(), VectorExpf.WINDOW, windowed.get(), 100.0 * windowed.get() / inRange.get());
        System.out.printf("largest midpoint distance at which the rounded double disagreed with libm: %d (%.2f%% of the window)%n",
                worstUnwindowed.get(), 100.0 * worstUnwindowed.get() / VectorExpf.WINDOW);
        hard.sort((a, b) -> Long.compare(a[0], b[0]));
        StringBuilder sb = new StringBuilder("nearest outside the window:");
        for (int i = 0; i < Math.min(16, hard.size()); i++) {
            sb.append(String.format(" 0x%08x (%d)", hard.get(i)[1], hard.get(i)[0]));
        }
        System.out.println(sb);
        System.out.println(mismatches.get() == 0 ? "EQUAL on every finite float" : "MISMATCHES: " + mismatches.get());
    }

    /** The lane arithmetic of {@link VectorExpf#exp}, scalar (Math.fma is the same single rounding): the double. */
    static double scalarExp(float x) {
        double[] pk = polynomialAndK(x);
        return Math.scalb(pk[0], (int) pk[1]);
    }

    /** |tail - midpoint| of the double's 29 bits below a float mantissa. */
    static long midpointDistance(float x) {
        long bits = Double.doubleToRawLongBits(polynomialAndK(x)[0]);
        return Math.abs((bits & ((1L << 29) - 1)) - (1L << 28));
    }

    private static double[] polynomialAndK(float xf) {
        double x = xf;
        double s = Math.fma(x, VectorExpf.INV_LN2, VectorExpf.SHIFT);
        double k = s - VectorExpf.SHIFT;
        double u = Math.fma(k, -VectorExpf.LN2_HI, x);
        u = Math.fma(k, -VectorExpf.LN2_LO, u);
        double[] c = VectorExpf.TAYLOR;
        double p = Math.fma(u, c[11], c[10]);
        for (int j = 9; j >= 0; j--) {
            p = Math.fma(p, u, c[j]);
        }
        return new double[] {p, k};
    }
}
