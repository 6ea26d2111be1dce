package io.github.llama2j.hybrid;

/**
 * One shard's last step. {@code computeNanos}: for the CPU its share's wall time; for a device the graph
 * execution as the host sees it (launches, kernels and, unless TornadoVM's profiler is on to tell them
 * apart, the transfers). {@code copyInNanos}/{@code copyOutNanos}: the exchange with the device, i.e. the
 * host's copies into and out of TornadoVM's arrays plus, with TornadoVM's profiler on, the device's own
 * write and read times (then taken out of {@code computeNanos}). {@code deviceKernelNanos}: the device's
 * kernel time (profiler on, else 0). Bytes: what crossed to and from the device.
 */
final class StepTimes {
    long startNanos;
    long computeNanos;
    long copyInNanos;
    long copyOutNanos;
    long deviceKernelNanos;
    long bytesIn;
    long bytesOut;

    void clear() {
        startNanos = computeNanos = copyInNanos = copyOutNanos = deviceKernelNanos = bytesIn = bytesOut = 0;
    }
}
