package io.github.llama2j.cpu;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/** Throwaway A/B: attention head old vs new, thread CPU time. Args: headSize heads pos segs. */
public final class AttnAB {
    public static void main(String[] args) {
        int hs = Integer.parseInt(args[0]), heads = Integer.parseInt(args[1]), pos = Integer.parseInt(args[2]), segs = Integer.parseInt(args[3]);
        int seq = 1024, kvDim = hs * heads;
        var math = io.github.llama2j.math.FloatMath.JAVA;
        Attention a = new Attention(1, seq, hs, heads, 1, math);
        AttentionOld o = new AttentionOld(1, seq, hs, heads, 1, math);
        SplittableRandom rnd = new SplittableRandom(3);
        for (int p = 0; p <= pos; p++) {
            float[] k = new float[kvDim], v = new float[kvDim];
            for (int i = 0; i < kvDim; i++) { k[i] = (float) rnd.nextGaussian(); v[i] = (float) rnd.nextGaussian(); }
            a.store(0, p, k, v);
            o.store(0, p, k, v);
        }
        float[] q = new float[kvDim];
        for (int i = 0; i < kvDim; i++) q[i] = (float) rnd.nextGaussian();
        float[] outA = new float[kvDim], outO = new float[kvDim], att = new float[a.scoreStride()];
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        int calls = Math.max(1, 20_000_000 / (pos + 1) / hs / heads);
        double[][] r = new double[2][segs];
        for (int s = 0; s < segs; s++) {
            for (int v = 0; v < 2; v++) {
                int variant = (s % 2 == 0) ? v : 1 - v;
                long t0 = cpu.getCurrentThreadCpuTime();
                for (int c = 0; c < calls; c++) {
                    for (int h = 0; h < heads; h++) {
                        if (variant == 0) o.head(0, h, pos, q, outO, att, 0);
                        else a.head(0, h, pos, q, outA, att, 0);
                    }
                }
                r[variant][s] = (cpu.getCurrentThreadCpuTime() - t0) / 1000.0 / calls / heads;
            }
        }
        if (!Arrays.equals(outA, outO)) throw new AssertionError("mismatch");
        for (int v = 0; v < 2; v++) {
            double[] x = Arrays.copyOfRange(r[v], segs / 3, segs);
            Arrays.sort(x);
            System.out.printf(Locale.ROOT, "%s hs%d pos%d: median %.3f best %.3f us per head%n", v == 0 ? "old" : "new", hs, pos, x[x.length / 2], x[0]);
        }
    }
}
