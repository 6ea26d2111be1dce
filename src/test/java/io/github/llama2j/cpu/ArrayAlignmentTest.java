package io.github.llama2j.cpu;

import io.github.llama2j.model.Matrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link ArrayAlignment}: an array's address as a native call sees it, and the index of its first cache-line
 * boundary; and that the K-quant activations are prepared from that boundary. The collector may move an array between
 * two reads of its address, so each check is taken where two reads agree.
 */
class ArrayAlignmentTest {
    /** The address read twice, or -1 if the array moved in between (the caller tries again). */
    private static long stableAddress(int[] a, Runnable between) {
        long p = ArrayAlignment.address(a);
        between.run();
        return ArrayAlignment.address(a) == p ? p : -1;
    }

    /** Element {@code index} of an int array whose element 0 is at {@code address} starts a cache line. */
    private static void assertOnALine(long address, int index, String what) {
        assertEquals(0, (address + (long) Integer.BYTES * index) % ArrayAlignment.LINE, what + " from index " + index + " at a line's start");
    }

    private static void assumeNativeCalls() {
        String os = System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT);
        if (os.startsWith("linux")) { // (the platform the build runs on: there it must work)
            assertTrue(ArrayAlignment.known(), "memmove callable with heap segments on Linux");
        }
        assumeTrue(ArrayAlignment.known(), "no native calls with heap access here");
    }

    @Test
    void theAddressIsThatOfTheFirstElement() {
        assumeNativeCalls();
        int[] a = new SplittableRandom().ints(64).toArray();
        int[] seen = new int[2];
        for (int tries = 0; tries < 100; tries++) {
            long p = stableAddress(a, () -> {
                long q = ArrayAlignment.address(a);
                MemorySegment at = MemorySegment.ofAddress(q).reinterpret(8);
                seen[0] = at.get(ValueLayout.JAVA_INT, 0);
                seen[1] = at.get(ValueLayout.JAVA_INT, 4);
            });
            if (p > 0) {
                assertEquals(a[0], seen[0], "the int at the address");
                assertEquals(a[1], seen[1], "the int after it");
                return;
            }
        }
        throw new AssertionError("the array moved on every try");
    }

    @Test
    void findsTheFirstCacheLineBoundary() {
        assumeNativeCalls();
        Set<Long> offsets = new HashSet<>();
        int checked = 0;
        for (int i = 0; i < 400; i++) {
            int[] a = new int[16 + i % 11]; // (sizes that leave the next array at other offsets)
            int[] k = new int[1];
            long p = stableAddress(a, () -> k[0] = ArrayAlignment.intsToLine(a));
            if (p < 0) {
                continue;
            }
            assertEquals(0, p % Integer.BYTES, "an int array's elements are int-aligned");
            assertTrue(k[0] >= 0 && k[0] < ArrayAlignment.LINE / Integer.BYTES, "index " + k[0]);
            assertOnALine(p, k[0], "a[" + k[0] + "]");
            offsets.add(p % ArrayAlignment.LINE);
            checked++;
        }
        assertTrue(checked > 300, "arrays checked: " + checked);
        assertTrue(offsets.size() > 1, "arrays at more than one offset within a line, so a constant answer would fail: " + offsets);
    }

    /** The Q4_K and Q6_K pairs and the Q6_K chain starts begin at a cache line after each preparation. */
    @Test
    void kQuantActivationsStartAtACacheLine() {
        assumeNativeCalls();
        int cols = 2048;
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) Math.sin(i * 0.37);
        }
        Matrix.Q4_K q4 = new Matrix.Q4_K(MemorySegment.ofArray(new byte[cols / 256 * 144]), 1, cols);
        Matrix.Q6_K q6 = new Matrix.Q6_K(MemorySegment.ofArray(new byte[cols / 256 * 210]), 1, cols);
        int checked = 0;
        java.util.List<int[]> spacers = new java.util.ArrayList<>();
        for (int round = 0; round < 20; round++) {
            spacers.add(new int[1 + round]); // (the next arrays elsewhere on the heap each round)
            Activations a = new Activations(cols);
            long[] before = {ArrayAlignment.address(a.q8KPairs), ArrayAlignment.address(a.q8KPairs6), ArrayAlignment.address(a.q8KStarts6)};
            a.input(x, cols);
            a.prepareFor(q4);
            a.prepareFor(q6);
            long[] after = {ArrayAlignment.address(a.q8KPairs), ArrayAlignment.address(a.q8KPairs6), ArrayAlignment.address(a.q8KStarts6)};
            if (!java.util.Arrays.equals(before, after)) {
                continue; // moved while being prepared
            }
            assertOnALine(after[0], a.q8KPairsAt, "Q4_K pairs");
            assertOnALine(after[1], a.q8KPairs6At, "Q6_K pairs");
            assertOnALine(after[2], a.q8KStarts6At, "Q6_K starts");
            checked++;
        }
        assertTrue(checked > 10, "preparations checked: " + checked);
    }
}
