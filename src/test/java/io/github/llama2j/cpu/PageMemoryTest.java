package io.github.llama2j.cpu;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class PageMemoryTest {

    private static boolean linux() {
        String arch = System.getProperty("os.arch", "");
        return System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux")
                && (arch.equals("amd64") || arch.equals("aarch64"));
    }

    /** On Linux with native access (the build's test JVMs have it) the copies are mapped, not zeroed by the arena. */
    @Test
    void mapsOnLinux() {
        assumeTrue(linux());
        assertTrue(PageMemory.maps(), "mmap/madvise not bound: the copies would be zeroed page by page on one thread");
    }

    @Test
    void largeBlocksAreZeroAlignedMappedAndReleasedWithTheArena() throws IOException {
        long size = (3L << 20) + 123;
        Arena arena = Arena.ofShared();
        MemorySegment s = PageMemory.allocate(arena, size);
        assertEquals(size, s.byteSize());
        assertEquals(0, s.address() % 64);
        long nonZero = 0;
        for (long i = 0; i + Long.BYTES <= size; i += Long.BYTES) {
            nonZero |= s.get(ValueLayout.JAVA_LONG_UNALIGNED, i);
        }
        assertEquals(0, nonZero | s.get(ValueLayout.JAVA_BYTE, size - 1), "fresh memory must read as zeros");
        s.fill((byte) 7);
        assertEquals(7, s.get(ValueLayout.JAVA_BYTE, size - 1));
        if (PageMemory.maps()) {
            assertEquals(0, s.address() % (2L << 20), "a mapped block starts at a 2 MiB boundary (huge pages)");
            assertTrue(mapped(s.address(), size), "the block is one of this process's mappings");
        }
        arena.close();
        assertFalse(s.scope().isAlive());
        assertThrows(IllegalStateException.class, () -> s.get(ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void smallBlocksComeFromTheArena() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = PageMemory.allocate(arena, 1000);
            assertEquals(1000, s.byteSize());
            assertEquals(0, s.address() % 64);
            for (long i = 0; i < 1000; i++) {
                assertEquals(0, s.get(ValueLayout.JAVA_BYTE, i));
            }
        }
    }

    /** Whether [address, address + size) lies in one line of /proc/self/maps. */
    private static boolean mapped(long address, long size) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
            String[] range = line.substring(0, line.indexOf(' ')).split("-");
            long lo = Long.parseUnsignedLong(range[0], 16), hi = Long.parseUnsignedLong(range[1], 16);
            if (lo <= address && address + size <= hi) {
                return true;
            }
        }
        return false;
    }
}
