package io.github.llama2j.tornado;

import io.github.llama2j.Llama2jException;
import uk.ac.manchester.tornado.api.TornadoRuntime;
import uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider;

/**
 * Guards the TornadoVM entry points: a jar built with the TornadoVM engine but started without
 * TornadoVM's JVM flags (its argfile) must say so in one line instead of failing with a linkage error,
 * and TornadoVM must not be allowed to fall back silently to plain Java.
 */
public final class TornadoRuntimeCheck {
    static final String BAILOUT_PROPERTY = "tornado.recover.bailout";

    private TornadoRuntimeCheck() {
    }

    /**
     * Throws the error of {@link #runtime} when TornadoVM is not on the module path: for an engine's entry point, before
     * it loads a class that links against TornadoVM (the hybrid's device shard), which would fail with a bare
     * {@code NoClassDefFoundError} instead.
     */
    public static void require() {
        runtime();
    }

    /** TornadoVM's runtime, or a clear error when it is not on the module path. */
    static TornadoRuntime runtime() {
        try {
            return TornadoRuntimeProvider.getTornadoRuntime();
        } catch (LinkageError | RuntimeException e) {
            Throwable root = e;
            while (root.getCause() != null && root.getCause() != root) {
                root = root.getCause();
            }
            String why = String.valueOf(root.getMessage()).replace("[ERROR] ", "").strip();
            throw new Llama2jException("TornadoVM runtime not available (" + why + "): start llama2j with TornadoVM's JVM flags (scripts/llama2j adds "
                    + "@$TORNADOVM_HOME/tornado-argfile and tornado-config/llama2j-tornado.flags)", Llama2jException.UNAVAILABLE, e);
        }
    }

    /**
     * TornadoVM reads {@code tornado.recover.bailout} once, when its options class loads; if the launcher
     * did not set it, set it now (before TornadoVM starts) so a kernel that cannot be compiled is an error.
     * The per-task check after the first execution catches a fallback either way.
     */
    static void requireNoBailoutRecovery() {
        String v = System.getProperty(BAILOUT_PROPERTY);
        if (v == null) {
            System.setProperty(BAILOUT_PROPERTY, "False");
        }
    }
}
