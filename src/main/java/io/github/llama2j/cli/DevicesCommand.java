package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.engine.DeviceLister;
import io.github.llama2j.engine.Engines;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.concurrent.Callable;

/**
 * {@code llama2j devices}: every TornadoVM backend and device with its memory and work-group limits,
 * and which one {@code --engine tornado} uses by default. TornadoVM is reached only through the
 * {@link DeviceLister} service, so this command compiles without a TornadoVM SDK.
 */
@Command(name = "devices", mixinStandardHelpOptions = true,
        description = "List the TornadoVM backends and devices (the B:D that --device takes).",
        footer = {"", "Needs a TornadoVM SDK (TORNADOVM_HOME); scripts/llama2j adds TornadoVM's JVM flags for this command."})
public final class DevicesCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        Optional<DeviceLister> lister = ServiceLoader.load(DeviceLister.class).findFirst();
        if (lister.isEmpty()) {
            throw new Llama2jException(Engines.TORNADO_UNAVAILABLE, Llama2jException.UNAVAILABLE);
        }
        List<DeviceLister.Device> devices = lister.get().devices();
        PrintWriter out = spec.commandLine().getOut();
        if (devices.isEmpty()) {
            throw new Llama2jException("TornadoVM found no device", Llama2jException.UNAVAILABLE);
        }
        out.println(lister.get().runtimeVersion());
        int backend = -1;
        for (DeviceLister.Device d : devices) {
            if (d.backend() != backend) {
                backend = d.backend();
                out.printf(Locale.ROOT, "backend %d: %s%n", backend, d.backendName());
            }
            out.printf(Locale.ROOT, "  %d:%d  %-8s %s%s%n", d.backend(), d.device(), d.type(), d.name(),
                    d.isDefault() ? "  (default)" : "");
            out.printf(Locale.ROOT, "       global memory %s, max buffer %s, local memory %s, max work-group %d%n",
                    bytes(d.globalMemory()), bytes(d.maxAllocation()), bytes(d.localMemory()), d.maxWorkGroupSize());
        }
        out.flush();
        return 0;
    }

    static String bytes(long b) {
        if (b >= 1L << 30) {
            return String.format(Locale.ROOT, "%.1f GiB", b / (double) (1L << 30));
        }
        if (b >= 1L << 20) {
            return String.format(Locale.ROOT, "%.1f MiB", b / (double) (1L << 20));
        }
        if (b >= 1L << 10) {
            return String.format(Locale.ROOT, "%.1f KiB", b / (double) (1L << 10));
        }
        return b + " B";
    }
}
