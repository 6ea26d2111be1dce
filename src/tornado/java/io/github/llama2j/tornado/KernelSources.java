package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * Captures the OpenCL C that TornadoVM generates for every task, for {@code llama2j profile --dump-kernels}.
 *
 * <p>How TornadoVM exposes generated code (5.2): {@code -Dtornado.printKernel=True} /
 * {@code plan.withPrintKernel()} print every kernel to stdout, or append them all to the one file
 * {@code tornado.print.kernel.dir} (read once, at class initialisation), with nothing naming the task.
 * The OpenCL code cache, however, writes one file per task, {@code <task id>-<kernel>.cl}, when
 * {@code tornado.opencl.source.dump=True}, into {@code $TORNADOVM_HOME/<tornado.opencl.source.dir>/device-P-D}.
 * It reads both properties when a plan's code cache is created (at the plan's first compilation), so setting
 * them around one engine's first execution captures exactly that engine's kernels. The directory is always
 * taken relative to {@code TORNADOVM_HOME}; a relative path from there leads to a fresh temporary directory,
 * so nothing is written into the SDK. PTX has no per-task equivalent, hence OpenCL only.
 */
public final class KernelSources {
    private static final String DUMP = "tornado.opencl.source.dump";
    private static final String DIR = "tornado.opencl.source.dir";

    private KernelSources() {
    }

    /** An open capture: the properties are set until {@link #close()}; {@link #dir()} then holds the sources. */
    static final class Capture implements AutoCloseable {
        private final Path dir;
        private final String previousDump, previousDir;

        private Capture(Path dir, String previousDump, String previousDir) {
            this.dir = dir;
            this.previousDump = previousDump;
            this.previousDir = previousDir;
        }

        /** The directory holding {@code <task id>-<kernel>.cl} files, or null if nothing was requested. */
        Path dir() {
            return dir;
        }

        @Override
        public void close() {
            if (dir != null) {
                restore(DUMP, previousDump);
                restore(DIR, previousDir);
            }
        }

        private static void restore(String key, String value) {
            if (value == null) {
                System.clearProperty(key);
            } else {
                System.setProperty(key, value);
            }
        }
    }

    /** Starts capturing if {@code requested} ({@link io.github.llama2j.engine.EngineOptions#keepKernelSources()}). */
    static Capture begin(String backend, boolean requested) {
        if (!requested) {
            return new Capture(null, null, null);
        }
        if (!backend.equals("opencl")) {
            throw new Llama2jException("--dump-kernels: TornadoVM writes one source file per task only on OpenCL; on " + backend
                    + " run with LLAMA2J_JAVA_OPTS=-Dtornado.printKernel=True to print every kernel", Llama2jException.BAD_USAGE);
        }
        String home = System.getenv("TORNADOVM_HOME");
        if (home == null) {
            throw new Llama2jException("--dump-kernels needs TORNADOVM_HOME set (TornadoVM writes sources under it)",
                    Llama2jException.BAD_USAGE);
        }
        try {
            Path staging = Files.createTempDirectory("llama2j-kernels").toRealPath();
            // TornadoVM prefixes TORNADOVM_HOME; the OS resolves ".." after following its symlinks, so go from the real path.
            Path relative = Path.of(home).toRealPath().relativize(staging);
            String previousDump = System.getProperty(DUMP), previousDir = System.getProperty(DIR);
            System.setProperty(DUMP, "True");
            System.setProperty(DIR, relative.toString());
            return new Capture(staging, previousDump, previousDir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The {@code .cl} files under a capture directory (TornadoVM adds a {@code device-P-D} level). */
    static java.util.List<Path> files(Path captureDir) throws IOException {
        try (Stream<Path> s = Files.walk(captureDir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".cl")).sorted().toList();
        }
    }

    /** Deletes a capture directory. */
    static void delete(Path captureDir) {
        if (captureDir == null) {
            return;
        }
        try (Stream<Path> s = Files.walk(captureDir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temporary directory: nothing to do if it cannot be removed
        }
    }
}
