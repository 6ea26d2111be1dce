package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.common.TornadoDevice;

import java.util.List;

/**
 * The parts of this package that other TornadoVM-based engines reuse (the hybrid engine in
 * {@code io.github.llama2j.hybrid}): device selection, the runtime and no-bailout checks, and the proof
 * from TornadoVM's profiler that every task ran on the device. A thin public door onto package-private
 * helpers, so they stay one implementation.
 */
public final class TornadoAccess {
    private TornadoAccess() {
    }

    /** The device named by {@code --device B:D}, or TornadoVM's default; a clear error if TornadoVM is missing. */
    public static TornadoDevice selectDevice(String spec) {
        TornadoRuntimeCheck.runtime();
        return DeviceSelection.select(spec);
    }

    /** {@code B:D} of a device. */
    public static String deviceId(TornadoDevice device) {
        return DeviceSelection.id(device);
    }

    /** The device's largest work-group. */
    public static long maxWorkGroup(TornadoDevice device) {
        return DeviceSelection.maxWorkGroup(device);
    }

    /** Why {@link #maxWorkGroup} is below the device's own limit, or "". */
    public static String limitReason(TornadoDevice device, long maxWorkGroup) {
        return DeviceSelection.limitReason(device, maxWorkGroup);
    }

    /** Makes a kernel that TornadoVM cannot compile an error rather than a silent fall-back to Java. */
    public static void requireNoBailoutRecovery() {
        TornadoRuntimeCheck.requireNoBailoutRecovery();
    }

    /**
     * Throws unless every task in {@code taskIds} appears in TornadoVM's profiler log as run on
     * {@code deviceName} with a kernel time above zero.
     */
    public static void verifyTasksRanOnDevice(List<String> taskIds, String profileLog, String deviceName) {
        TaskVerifier.verify(taskIds, TaskVerifier.parse(profileLog), deviceName);
    }
}
