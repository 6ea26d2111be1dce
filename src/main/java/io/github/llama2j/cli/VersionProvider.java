package io.github.llama2j.cli;

import picocli.CommandLine;

/** Reads the version from the jar manifest (Implementation-Version), "dev" when run from classes. */
final class VersionProvider implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
        String v = Main.class.getPackage().getImplementationVersion();
        return new String[]{"llama2j " + (v == null ? "dev" : v),
                "Java " + Runtime.version() + " (" + System.getProperty("java.vm.name") + ")"};
    }
}
