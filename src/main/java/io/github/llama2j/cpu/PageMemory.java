package io.github.llama2j.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;

/**
 * Zeroed private memory for the CPU engine's load-time weight copies ({@link PreparedWeights}: {@link PackedQ8_0}, the
 * {@link KQuantPacked} forms and the others), mapped from the
 * operating system and asking for transparent huge pages, instead of {@link Arena#allocate}.
 *
 * <p>Why: {@code Arena.allocate} zeroes the whole block on the calling thread before the copy starts, so every
 * page of it is faulted in, one 4 KiB page at a time, on one thread. On the 2-vCPU development VM that was most
 * of the engine's construction for a Llama-3.2-1B Q8_0 file: 1.3 GiB of copies, 3.4–3.5 s to allocate (a
 * first touch of fresh anonymous memory, one thread: 3.5–3.7 s with 4 KiB pages; two threads 2.0–2.2 s; two
 * threads with {@code madvise(MADV_HUGEPAGE)} 0.53–0.67 s;
 * docs/measurements/2026-12-03-start-up-copies.md). A fresh anonymous mapping is already zero, so nothing is
 * written before the copy, and the pages are faulted in by the workers that fill them, 2 MiB at a time where
 * the kernel grants huge pages ({@code /sys/kernel/mm/transparent_hugepage/enabled} {@code always} or
 * {@code madvise}).
 *
 * <p>Linux only (x86-64 and AArch64, whose {@code mmap} and {@code madvise} constants this class uses), and only
 * where native access is allowed (the launcher passes {@code --enable-native-access=ALL-UNNAMED}); elsewhere, or
 * when the mapping fails, {@link Arena#allocate} as before. The mapping is released when {@code arena} closes.
 */
final class PageMemory {
    private static final long HUGE_PAGE = 2L << 20;
    private static final int PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MADV_HUGEPAGE = 14;
    private static final MethodHandle MMAP, MUNMAP, MADVISE;

    static {
        MethodHandle mmap = null, munmap = null, madvise = null;
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "");
        if (os.startsWith("linux") && (arch.equals("amd64") || arch.equals("x86_64") || arch.equals("aarch64"))) {
            try {
                Linker linker = Linker.nativeLinker();
                var libc = linker.defaultLookup();
                mmap = linker.downcallHandle(libc.find("mmap").orElseThrow(), FunctionDescriptor.of(ValueLayout.ADDRESS,
                        ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                        ValueLayout.JAVA_LONG));
                munmap = linker.downcallHandle(libc.find("munmap").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
                madvise = linker.downcallHandle(libc.find("madvise").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            } catch (RuntimeException | LinkageError e) { // native access denied, or no such symbol: Arena.allocate
                mmap = munmap = madvise = null;
            }
        }
        MMAP = mmap;
        MUNMAP = munmap;
        MADVISE = madvise;
    }

    private PageMemory() {
    }

    /** Whether {@link #allocate} maps its memory (else it uses {@link Arena#allocate}). */
    static boolean maps() {
        return MMAP != null;
    }

    /**
     * {@code size} zero bytes, 64-byte aligned (2 MiB aligned when mapped), valid until {@code arena} closes. Not
     * written here: its pages are faulted in by whoever writes them first.
     *
     * @throws OutOfMemoryError if neither a mapping nor {@code arena} can provide it
     */
    static MemorySegment allocate(Arena arena, long size) {
        if (MMAP != null && size >= HUGE_PAGE) {
            MemorySegment mapped = map(arena, size);
            if (mapped != null) {
                return mapped;
            }
        }
        return arena.allocate(size, 64);
    }

    private static MemorySegment map(Arena arena, long size) {
        long length = size + HUGE_PAGE; // room to start at a 2 MiB boundary (the slack is never touched)
        MemorySegment p;
        try {
            p = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0L);
        } catch (Throwable t) {
            return null;
        }
        if (p.address() == -1L || p.address() == 0L) { // MAP_FAILED
            return null;
        }
        long start = (p.address() + HUGE_PAGE - 1) & -HUGE_PAGE;
        MemorySegment region;
        try {
            region = MemorySegment.ofAddress(start).reinterpret(size, arena, s -> unmap(p, length));
        } catch (IllegalStateException | WrongThreadException e) { // the arena is closed, or not this thread's
            unmap(p, length);
            throw e;
        }
        try {
            int ignored = (int) MADVISE.invokeExact(region, size, MADV_HUGEPAGE); // advice: no huge pages is fine too
        } catch (Throwable t) {
            // advice only
        }
        return region;
    }

    private static void unmap(MemorySegment p, long length) {
        try {
            int ignored = (int) MUNMAP.invokeExact(p, length);
        } catch (Throwable t) {
            // nothing to do: the address space stays reserved until the process ends
        }
    }
}
