package io.github.llama2j.cpu;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Where a Java array lies relative to the 64-byte cache lines, so that a kernel's inputs can start on a line.
 *
 * <p>The heap puts an array anywhere in steps of 8 bytes, and its elements start 16 bytes after that, so a vector read
 * of 64 bytes from an int array crosses a cache line at seven of the eight places (mod 64) the heap can put it, and
 * runs slower there. Which place an array gets depends on what the JVM allocated before: the Llama-3.2-1B Q4_K_M token at 512 bits took 0.86-0.95 of the time
 * (one round of 24: 1.01) with the K-quant kernels' activation pairs at a line's start as with them 16, 32 or 48 bytes
 * past it, in one JVM, rounds alternated (docs/measurements/2026-12-06-aligned-pairs.md). At 256 bits, and for the
 * F32 inputs of a llama2.c model and the Q8_0 inputs of a GGUF one, it made no difference that the VM's noise did not
 * hide.
 *
 * <p>Java has no way to ask for an array's address, but a native call may be given the array itself
 * ({@link Linker.Option#critical(boolean)} with heap access): C's {@code memmove(p, p, 0)} copies nothing and returns
 * {@code p}, the address of the element passed, as the machine sees it during the call. The collector may move the
 * array later, so the answer is a hint for speed that callers take again on every preparation, never something
 * correctness rests on: a kernel reads its inputs where the preparation put them, aligned or not.
 */
final class ArrayAlignment {
    /** Bytes of a cache line (x86-64, and the common ARM cores). */
    static final int LINE = 64;

    /** {@code memmove(dst, src, n)} taking heap segments, or null where no native call can be made. */
    private static final MethodHandle MEMMOVE;

    static {
        MethodHandle memmove = null;
        try {
            Linker linker = Linker.nativeLinker();
            memmove = linker.downcallHandle(linker.defaultLookup().find("memmove").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG),
                    Linker.Option.critical(true));
        } catch (RuntimeException | LinkageError e) { // no native access, no such symbol, or no heap access for this linker
            memmove = null;
        }
        MEMMOVE = memmove;
    }

    private ArrayAlignment() {
    }

    /** Whether {@link #intsToLine} can tell anything (else it always answers 0). */
    static boolean known() {
        return MEMMOVE != null;
    }

    /**
     * The address of {@code a[0]} now, or -1 where it cannot be known. For tests and {@link #intsToLine}.
     */
    static long address(int[] a) {
        if (MEMMOVE == null || a.length == 0) {
            return -1;
        }
        MemorySegment s = MemorySegment.ofArray(a); // (memmove of 0 bytes reads none of it)
        try {
            return ((MemorySegment) MEMMOVE.invokeExact(s, s, 0L)).address();
        } catch (Throwable t) { // (memmove of nothing cannot fail; a linker that refuses heap segments does)
            return -1;
        }
    }

    /**
     * How many ints past {@code a[0]} the first 64-byte boundary lies now (0 to 15), or 0 where that cannot be known.
     * An array meant to start its data at a boundary needs 15 ints of room beyond its data.
     */
    static int intsToLine(int[] a) {
        long p = address(a);
        if (p < 0 || (p & (Integer.BYTES - 1)) != 0) {
            return 0;
        }
        return (int) ((LINE - (p & (LINE - 1))) & (LINE - 1)) / Integer.BYTES;
    }
}
