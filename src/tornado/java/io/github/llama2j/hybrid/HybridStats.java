package io.github.llama2j.hybrid;

import java.util.Locale;

/**
 * Where a hybrid token's time goes, accumulated over the tokens since the last {@link #reset()}:
 * per step kind the wall time of the steps (from handing out the work to the last shard finishing),
 * the time the host waited for devices after finishing its own share, and the host's combine (adding the
 * partial sums into the residual, the next rmsnorm and quantization); per shard its compute time, the
 * host-side copies into and out of TornadoVM's arrays, the device's own transfer and kernel time (only
 * with TornadoVM's profiler on) and the bytes it exchanged. Always on: a handful of clock reads per step.
 */
public final class HybridStats {
    private final String[] tracks;
    private final long[] stepNanos = new long[3];
    private final long[] steps = new long[3];
    private final long[] waitNanos = new long[3];
    private final long[] combineNanos = new long[3];
    private final long[] computeNanos, copyInNanos, copyOutNanos, deviceKernelNanos, bytesIn, bytesOut;
    private long tokens;
    private long tokenNanos;

    HybridStats(String[] tracks) {
        this.tracks = tracks.clone();
        int n = tracks.length;
        computeNanos = new long[n];
        copyInNanos = new long[n];
        copyOutNanos = new long[n];
        deviceKernelNanos = new long[n];
        bytesIn = new long[n];
        bytesOut = new long[n];
    }

    void step(SplitPlan.Kind kind, long wallNanos, long waitNanos, long combineNanos) {
        int k = kind.ordinal();
        steps[k]++;
        stepNanos[k] += wallNanos;
        this.waitNanos[k] += waitNanos;
        this.combineNanos[k] += combineNanos;
    }

    void shard(int shard, StepTimes t) {
        computeNanos[shard] += t.computeNanos;
        copyInNanos[shard] += t.copyInNanos;
        copyOutNanos[shard] += t.copyOutNanos;
        deviceKernelNanos[shard] += t.deviceKernelNanos;
        bytesIn[shard] += t.bytesIn;
        bytesOut[shard] += t.bytesOut;
    }

    void token(long nanos) {
        tokens++;
        tokenNanos += nanos;
    }

    public void reset() {
        java.util.Arrays.fill(stepNanos, 0);
        java.util.Arrays.fill(steps, 0);
        java.util.Arrays.fill(waitNanos, 0);
        java.util.Arrays.fill(combineNanos, 0);
        for (long[] a : new long[][]{computeNanos, copyInNanos, copyOutNanos, deviceKernelNanos, bytesIn, bytesOut}) {
            java.util.Arrays.fill(a, 0);
        }
        tokens = 0;
        tokenNanos = 0;
    }

    public long tokens() {
        return tokens;
    }

    /** Mean wall time of one step of this kind (ns), or 0 if none ran. */
    public double meanStepNanos(SplitPlan.Kind kind) {
        int k = kind.ordinal();
        return steps[k] == 0 ? 0 : (double) (stepNanos[k] + combineNanos[k]) / steps[k];
    }

    /** Bytes exchanged with devices per token (inputs to and results from every device step). */
    public double bytesPerToken() {
        long b = 0;
        for (int i = 0; i < tracks.length; i++) {
            b += bytesIn[i] + bytesOut[i];
        }
        return tokens == 0 ? 0 : (double) b / tokens;
    }

    /** Per-token breakdown, one line per part, for --verbose. */
    public String report() {
        if (tokens == 0) {
            return "[hybrid] no tokens run";
        }
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "[hybrid] %d tokens, %.3f ms/token (%.2f tok/s)%n", tokens, ms(tokenNanos),
                tokens * 1e9 / tokenNanos));
        for (SplitPlan.Kind kind : SplitPlan.Kind.values()) {
            int k = kind.ordinal();
            if (steps[k] > 0) {
                sb.append(String.format(Locale.ROOT,
                        "[hybrid]   %-10s steps: %.3f ms/token wall (%d per token), host waited %.3f ms for devices, "
                                + "combine %.3f ms%n", kind.label, ms(stepNanos[k]), steps[k] / tokens, ms(waitNanos[k]),
                        ms(combineNanos[k])));
            }
        }
        for (int i = 0; i < tracks.length; i++) {
            if (computeNanos[i] == 0) {
                continue;
            }
            sb.append(String.format(Locale.ROOT, "[hybrid]   %-12s compute %.3f ms/token", tracks[i], ms(computeNanos[i])));
            if (bytesIn[i] + bytesOut[i] > 0) {
                sb.append(String.format(Locale.ROOT, " (graph launches%s); exchange: in %.1f KiB %.3f ms, out %.1f KiB %.3f ms",
                        deviceKernelNanos[i] > 0 ? "" : ", transfers included", bytesIn[i] / 1024.0 / tokens, ms(copyInNanos[i]),
                        bytesOut[i] / 1024.0 / tokens, ms(copyOutNanos[i])));
                if (deviceKernelNanos[i] > 0) {
                    sb.append(String.format(Locale.ROOT, " (device transfers included); device kernels %.3f ms",
                            ms(deviceKernelNanos[i])));
                }
            }
            sb.append(System.lineSeparator());
        }
        return sb.toString().stripTrailing();
    }

    private double ms(long totalNanos) {
        return totalNanos / 1e6 / tokens;
    }
}
