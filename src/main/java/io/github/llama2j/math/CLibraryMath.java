package io.github.llama2j.math;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * expf, sinf, cosf and powf of the platform's C math library, called through the foreign function
 * API: the very functions llama2.c links against (glibc's libm on Linux), hence bit-identical results.
 */
public final class CLibraryMath implements FloatMath {
    private static final String[] LIBRARIES = {"libm.so.6", "libm.so", "libSystem.B.dylib", "msvcrt.dll"};

    // Static final, so the JIT treats the handles as constants and inlines the downcalls.
    private static final String LIBRARY;
    private static final MethodHandle EXPF, SINF, COSF, POWF;
    private static final CLibraryMath INSTANCE;

    static {
        String library = null;
        MethodHandle exp = null, sin = null, cos = null, pow = null;
        try {
            Linker linker = Linker.nativeLinker();
            FunctionDescriptor unary = FunctionDescriptor.of(ValueLayout.JAVA_FLOAT, ValueLayout.JAVA_FLOAT);
            FunctionDescriptor binary = FunctionDescriptor.of(ValueLayout.JAVA_FLOAT, ValueLayout.JAVA_FLOAT, ValueLayout.JAVA_FLOAT);
            Linker.Option critical = Linker.Option.critical(false);
            for (String lib : LIBRARIES) {
                SymbolLookup lookup;
                try {
                    lookup = SymbolLookup.libraryLookup(lib, Arena.global());
                } catch (IllegalArgumentException notFound) {
                    continue;
                }
                var e = lookup.find("expf");
                var s = lookup.find("sinf");
                var c = lookup.find("cosf");
                var p = lookup.find("powf");
                if (e.isPresent() && s.isPresent() && c.isPresent() && p.isPresent()) {
                    exp = linker.downcallHandle(e.get(), unary, critical);
                    sin = linker.downcallHandle(s.get(), unary, critical);
                    cos = linker.downcallHandle(c.get(), unary, critical);
                    pow = linker.downcallHandle(p.get(), binary, critical);
                    library = lib;
                    break;
                }
            }
        } catch (RuntimeException | LinkageError e) {
            // Native access disabled or unsupported platform: callers fall back to Java's Math.
            exp = sin = cos = pow = null;
            library = null;
        }
        LIBRARY = library;
        EXPF = exp;
        SINF = sin;
        COSF = cos;
        POWF = pow;
        INSTANCE = library == null ? null : new CLibraryMath();
    }

    private CLibraryMath() {
    }

    /** The C library's math functions, or empty where none can be linked (native access denied, unknown platform). */
    public static Optional<CLibraryMath> instance() {
        return Optional.ofNullable(INSTANCE);
    }

    @Override
    public float exp(float x) {
        try {
            return (float) EXPF.invokeExact(x);
        } catch (Throwable t) {
            throw new IllegalStateException("expf failed", t);
        }
    }

    @Override
    public float sin(float x) {
        try {
            return (float) SINF.invokeExact(x);
        } catch (Throwable t) {
            throw new IllegalStateException("sinf failed", t);
        }
    }

    @Override
    public float cos(float x) {
        try {
            return (float) COSF.invokeExact(x);
        } catch (Throwable t) {
            throw new IllegalStateException("cosf failed", t);
        }
    }

    @Override
    public float pow(float x, float y) {
        try {
            return (float) POWF.invokeExact(x, y);
        } catch (Throwable t) {
            throw new IllegalStateException("powf failed", t);
        }
    }

    @Override
    public String name() {
        return LIBRARY;
    }
}
