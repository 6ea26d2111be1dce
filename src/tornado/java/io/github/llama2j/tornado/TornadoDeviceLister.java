package io.github.llama2j.tornado;

import io.github.llama2j.engine.DeviceLister;
import uk.ac.manchester.tornado.api.TornadoBackend;
import uk.ac.manchester.tornado.api.TornadoRuntime;
import uk.ac.manchester.tornado.api.common.TornadoDevice;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** {@code llama2j devices} through TornadoVM's runtime: every backend, every device. */
public final class TornadoDeviceLister implements DeviceLister {
    @Override
    public String runtimeVersion() {
        return TornadoVersion.describe();
    }

    @Override
    public List<Device> devices() {
        TornadoRuntime rt = TornadoRuntimeCheck.runtime();
        TornadoDevice def = DeviceSelection.preferred(rt);
        List<Device> out = new ArrayList<>();
        for (int b = 0; b < rt.getNumBackends(); b++) {
            TornadoBackend backend = rt.getBackend(b);
            for (int d = 0; d < backend.getNumDevices(); d++) {
                TornadoDevice dev = backend.getDevice(d);
                boolean isDefault = dev.getDeviceName().equals(def.getDeviceName())
                        && dev.getTornadoVMBackend() == def.getTornadoVMBackend();
                out.add(new Device(b, d, backend.getBackendType().name().toLowerCase(Locale.ROOT),
                        dev.getPhysicalDevice().getDeviceName(), dev.getDeviceType().name(), dev.getMaxGlobalMemory(),
                        dev.getMaxAllocMemory(), dev.getDeviceLocalMemorySize(), DeviceSelection.deviceMaxWorkGroup(dev), isDefault));
            }
        }
        return out;
    }
}
