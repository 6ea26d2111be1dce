package io.github.llama2j.hybrid;

/**
 * One shard's last step: compute time (for a device: the whole graph execution, transfers included, as
 * the host sees it), host-side copies into and out of TornadoVM's arrays, the device's own transfer and
 * kernel times where TornadoVM's profiler is on (else 0), and the bytes that crossed to and from the
 * device.
 */
final class StepTimes {
    long computeNanos;
    long copyNanos;
    long deviceTransferNanos;
    long deviceKernelNanos;
    long bytesIn;
    long bytesOut;

    void clear() {
        computeNanos = copyNanos = deviceTransferNanos = deviceKernelNanos = bytesIn = bytesOut = 0;
    }
}
