package io.github.llama2j.engine;

import java.util.List;

/**
 * Lists the accelerator devices an engine could run on. The main build knows no accelerator
 * runtime: the TornadoVM implementation is compiled only where a TornadoVM SDK is present and is
 * found through {@link java.util.ServiceLoader}, so {@code llama2j devices} compiles and runs
 * (reporting "not available") without one.
 */
public interface DeviceLister {

    /** Every backend and device, in the {@code backend:device} index order that {@code --device} takes. */
    List<Device> devices();

    /** The accelerator runtime's version and where it runs from (one line), for {@code --version} and {@code devices}. */
    String runtimeVersion();

    /**
     * One device as the runtime reports it.
     *
     * @param backend          backend index (the B of {@code --device B:D})
     * @param device           device index within the backend (the D)
     * @param backendName      e.g. {@code opencl} or {@code ptx}
     * @param name             the driver's device name
     * @param type             e.g. {@code GPU}, {@code CPU}
     * @param globalMemory     global memory in bytes
     * @param maxAllocation    the largest single buffer in bytes
     * @param localMemory      local (shared) memory per work-group in bytes
     * @param maxWorkGroupSize the largest work-group
     * @param isDefault        the device used when {@code --device} is not given
     */
    record Device(int backend, int device, String backendName, String name, String type, long globalMemory,
                  long maxAllocation, long localMemory, long maxWorkGroupSize, boolean isDefault) {
    }
}
