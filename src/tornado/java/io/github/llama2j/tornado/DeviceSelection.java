package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import uk.ac.manchester.tornado.api.TornadoBackend;
import uk.ac.manchester.tornado.api.TornadoRuntime;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;

/** Finds the TornadoVM device named by {@code --device B:D}, or TornadoVM's default device. */
final class DeviceSelection {
    private DeviceSelection() {
    }

    static TornadoDevice select(String spec) {
        TornadoRuntime rt = TornadoRuntimeCheck.runtime();
        if (spec == null || spec.isBlank()) {
            return rt.getDefaultDevice();
        }
        String[] parts = spec.trim().split(":");
        int b, d;
        try {
            if (parts.length != 2) {
                throw new NumberFormatException();
            }
            b = Integer.parseInt(parts[0]);
            d = Integer.parseInt(parts[1]);
        } catch (NumberFormatException e) {
            throw new Llama2jException("--device is '" + spec + "', must be BACKEND:DEVICE like 0:0 (see 'llama2j devices')",
                    Llama2jException.BAD_USAGE);
        }
        if (b < 0 || b >= rt.getNumBackends()) {
            throw new Llama2jException("--device " + spec + ": no backend " + b + " (TornadoVM has " + rt.getNumBackends()
                    + "; see 'llama2j devices')", Llama2jException.UNAVAILABLE);
        }
        TornadoBackend backend = rt.getBackend(b);
        if (d < 0 || d >= backend.getNumDevices()) {
            throw new Llama2jException("--device " + spec + ": backend " + b + " (" + backend.getName() + ") has no device " + d
                    + " (it has " + backend.getNumDevices() + "; see 'llama2j devices')", Llama2jException.UNAVAILABLE);
        }
        return backend.getDevice(d);
    }

    /** "B:D" of a device. */
    static String id(TornadoDevice device) {
        TornadoRuntime rt = TornadoRuntimeCheck.runtime();
        for (int b = 0; b < rt.getNumBackends(); b++) {
            TornadoBackend backend = rt.getBackend(b);
            for (int d = 0; d < backend.getNumDevices(); d++) {
                if (backend.getDevice(d).getDeviceName().equals(device.getDeviceName())
                        && backend.getBackendType() == device.getTornadoVMBackend()) {
                    return b + ":" + d;
                }
            }
        }
        return "?:?";
    }

    /**
     * Largest work-group the kernels may use on a PTX device. The kernels reduce through a local-memory
     * scratch array of {@link TransformerKernels#MAX_LOCAL} floats. TornadoVM 5.2's PTX backend indexes
     * such an array with byte offsets (4 × index + a 16-byte header) that ptxas then scales by the element
     * size again, so only (MAX_LOCAL - 16) / 4 = 252 entries are usable: on an H200, rmsnorm work-groups
     * of 256 made threads 252-255 write outside the array (compute-sanitizer: "Invalid __shared__ write",
     * then CUDA error 700 for the whole context). 128, the largest power of two below 252, is safe.
     */
    static final int PTX_MAX_LOCAL = 128;

    /**
     * The largest work-group the kernels can use on the device: its own limit (first dimension), and on
     * the PTX backend at most {@link #PTX_MAX_LOCAL}.
     */
    static long maxWorkGroup(TornadoDevice device) {
        long max = deviceMaxWorkGroup(device);
        if (device.getTornadoVMBackend() == TornadoVMBackendType.PTX) {
            max = Math.min(max, PTX_MAX_LOCAL);
        }
        return max;
    }

    /** Why {@code maxWorkGroup} is below the device's own limit (for error messages), or "". */
    static String limitReason(TornadoDevice device, long maxWorkGroup) {
        return maxWorkGroup < deviceMaxWorkGroup(device)
                ? " for llama2j's kernels on TornadoVM's PTX backend (its local arrays hold a quarter of their size; "
                + "lower the llama2j.tornado.*.local settings)"
                : "";
    }

    /** The device's own largest work-group (first dimension), as its driver reports it. */
    static long deviceMaxWorkGroup(TornadoDevice device) {
        long[] wg = device.getPhysicalDevice().getDeviceMaxWorkGroupSize();
        return wg == null || wg.length == 0 ? 1 : wg[0];
    }
}
