package io.github.llama2j.cli;

import io.github.llama2j.engine.DeviceLister;
import picocli.CommandLine;

import java.util.ServiceLoader;

/** Reads the version from the jar manifest (Implementation-Version), "dev" when run from classes. */
final class VersionProvider implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
        String v = Main.class.getPackage().getImplementationVersion();
        // The TornadoVM line comes from the engine built in with it (none in a build without an SDK).
        String tornado = ServiceLoader.load(DeviceLister.class).findFirst().map(DeviceLister::runtimeVersion)
                .orElse("TornadoVM engine not built in");
        return new String[]{"llama2j " + (v == null ? "dev" : v),
                "Java " + Runtime.version() + " (" + System.getProperty("java.vm.name") + ")", tornado};
    }
}
