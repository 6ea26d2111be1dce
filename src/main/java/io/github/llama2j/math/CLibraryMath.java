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
    private static final Optional<CLibraryMath> INSTANCE = load();

    private final String library;
    private final MethodHandle expf, sinf, cosf, powf;

    private CLibraryMath(String library, MethodHandle expf, MethodHandle sinf, MethodHandle cosf, MethodHandle powf) {
        this.library = library;
        this.expf = expf;
        this.sinf = sinf;
        this.cosf = cosf;
        this.powf = powf;
    }

    /** The C library's math functions, or empty where none can be linked (native access denied, unknown platform). */
    public static Optional<CLibraryMath> instance() {
        return INSTANCE;
    }

    private static Optional<CLibraryMath> load() {
        try {
            Linker linker = Linker.nativeLinker();
            FunctionDescriptor unary = FunctionDescriptor.of(ValueLayout.JAVA_FLOAT, ValueLayout.JAVA_FLOAT);
            FunctionDescriptor binary = FunctionDescriptor.of(ValueLayout.JAVA_FLOAT, ValueLayout.JAVA_FLOAT, ValueLayout.JAVA_FLOAT);
            for (String lib : LIBRARIES) {
                SymbolLookup lookup;
                try {
                    lookup = SymbolLookup.libraryLookup(lib, Arena.global());
                } catch (IllegalArgumentException notFound) {
                    continue;
                }
                var exp = lookup.find("expf");
                var sin = lookup.find("sinf");
                var cos = lookup.find("cosf");
                var pow = lookup.find("powf");
                if (exp.isPresent() && sin.isPresent() && cos.isPresent() && pow.isPresent()) {
                    Linker.Option critical = Linker.Option.critical(false);
                    return Optional.of(new CLibraryMath(lib,
                            linker.downcallHandle(exp.get(), unary, critical),
                            linker.downcallHandle(sin.get(), unary, critical),
                            linker.downcallHandle(cos.get(), unary, critical),
                            linker.downcallHandle(pow.get(), binary, critical)));
                }
            }
        } catch (RuntimeException | LinkageError e) {
            // Native access disabled or unsupported platform: callers fall back to Java's Math.
        }
        return Optional.empty();
    }

    @Override
    public float exp(float x) {
        try {
            return (float) expf.invokeExact(x);
        } catch (Throwable t) {
            throw new IllegalStateException("expf failed", t);
        }
    }

    @Override
    public float sin(float x) {
        try {
            return (float) sinf.invokeExact(x);
        } catch (Throwable t) {
            throw new IllegalStateException("sinf failed", t);
        }
    }

    @Override
    public float cos(float x) {
        try {
            return (float) cosf.invokeExact(x);
        } catch (Throwable t) {
            throw new IllegalStateException("cosf failed", t);
        }
    }

    @Override
    public float pow(float x, float y) {
        try {
            return (float) powf.invokeExact(x, y);
        } catch (Throwable t) {
            throw new IllegalStateException("powf failed", t);
        }
    }

    @Override
    public String name() {
        return library;
    }
}
