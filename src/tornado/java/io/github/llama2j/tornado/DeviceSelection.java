package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import uk.ac.manchester.tornado.api.TornadoBackend;
import uk.ac.manchester.tornado.api.TornadoRuntime;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;

import java.util.ArrayList;
import java.util.List;

/** Finds the TornadoVM device named by {@code --device B:D}, or the one the engines use by default ({@link #preferred}). */
final class DeviceSelection {
    private DeviceSelection() {
    }

    static TornadoDevice select(String spec) {
        TornadoRuntime rt = TornadoRuntimeCheck.runtime();
        if (spec == null || spec.isBlank()) {
            return preferred(rt);
        }
        String[] parts = spec.trim().split(":");
        int b, d;
        try {
            if (parts.length != 2) {
                throw new NumberFormatException();
            }
            b = Integer.parseInt(parts[0]);
            d = Integer.parseInt(parts[1]);
            if (b < 0 || d < 0) { // a malformed value (usage), not a device that is missing (unavailable)
                throw new NumberFormatException();
            }
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

    /**
     * The device the engines use without {@code --device}: TornadoVM's default, except that a GPU TornadoVM offers on
     * its OpenCL backend and on its PTX backend too (an NVIDIA GPU with an SDK built with both) runs on PTX, where
     * the engine replays each task graph as a CUDA graph. On an H200 (2026-12-04, docs/measurements) PTX was the faster
     * of the two for every model measured: 110M f32 324.6 against 213.5 tok/s, 7B-shaped Q8_0 31.4 against 27.4.
     */
    static TornadoDevice preferred(TornadoRuntime rt) {
        TornadoDevice def = rt.getDefaultDevice();
        List<Candidate> all = new ArrayList<>();
        List<TornadoDevice> devices = new ArrayList<>();
        for (int b = 0; b < rt.getNumBackends(); b++) {
            TornadoBackend backend = rt.getBackend(b);
            for (int d = 0; d < backend.getNumDevices(); d++) {
                TornadoDevice dev = backend.getDevice(d);
                devices.add(dev);
                boolean isDefault = dev.getDeviceName().equals(def.getDeviceName())
                        && dev.getTornadoVMBackend() == def.getTornadoVMBackend();
                all.add(new Candidate(dev.getTornadoVMBackend(), dev.getDeviceType().name(),
                        dev.getPhysicalDevice().getDeviceName(), isDefault));
            }
        }
        int i = preferredIndex(all);
        return i < 0 ? def : devices.get(i);
    }

    /** A device as {@link #preferredIndex} weighs it: backend, TornadoVM's type name, name, whether TornadoVM's default. */
    record Candidate(TornadoVMBackendType backend, String type, String name, boolean tornadoDefault) {
    }

    /**
     * Index of the device {@link #preferred} chooses among {@code devices}: TornadoVM's default, or, when that is an
     * OpenCL GPU, the PTX backend's device of the same name if there is one; -1 when none is TornadoVM's default.
     */
    static int preferredIndex(List<Candidate> devices) {
        int def = -1;
        for (int i = 0; i < devices.size(); i++) {
            if (devices.get(i).tornadoDefault()) {
                def = i;
                break;
            }
        }
        if (def < 0) {
            return -1;
        }
        Candidate d = devices.get(def);
        if (d.backend() != TornadoVMBackendType.OPENCL || !d.type().equals("GPU")) {
            return def;
        }
        for (int i = 0; i < devices.size(); i++) {
            Candidate c = devices.get(i);
            if (c.backend() == TornadoVMBackendType.PTX && c.name().equals(d.name())) {
                return i;
            }
        }
        return def;
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
