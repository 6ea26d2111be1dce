package io.github.llama2j.cpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(value = 30, unit = TimeUnit.SECONDS) // a lost wake-up or a lost exception would hang
class ParallelTest {

    /** threads, n, grain: every index is visited exactly once, and inner block boundaries fall on the grain. */
    @ParameterizedTest
    @CsvSource({"1, 100, 1", "2, 0, 1", "2, 1, 1", "2, 7, 1", "2, 1000, 16", "3, 1001, 16", "4, 12, 1", "2, 32000, 16", "3, 5, 64"})
    void coversEveryIndexOnce(int threads, int n, int grain) {
        try (Parallel p = new Parallel(threads)) {
            for (int round = 0; round < 50; round++) { // repeated: workers alternate between spinning and parking
                AtomicIntegerArray hits = new AtomicIntegerArray(Math.max(n, 1));
                p.forRange(n, grain, (s, e) -> {
                    assertTrue(s < e && (s % grain == 0), "block [" + s + ", " + e + ")");
                    assertTrue(e == n || e % grain == 0, "block end " + e);
                    for (int i = s; i < e; i++) {
                        hits.incrementAndGet(i);
                    }
                });
                for (int i = 0; i < n; i++) {
                    assertEquals(1, hits.get(i), "index " + i + " in round " + round);
                }
            }
        }
    }

    @Test
    void workersShareTheWork() {
        try (Parallel p = new Parallel(2)) {
            Set<Thread> seen = ConcurrentHashMap.newKeySet();
            // Each block waits for the other thread to arrive, so both threads must take part.
            CountDownLatch both = new CountDownLatch(2);
            p.forRange(2, (s, e) -> {
                seen.add(Thread.currentThread());
                both.countDown();
                await(both);
            });
            assertEquals(2, seen.size());
        }
    }

    @Test
    void exceptionInAWorkerReachesTheCallerAndThePoolSurvives() {
        try (Parallel p = new Parallel(2)) {
            Thread caller = Thread.currentThread();
            IllegalStateException boom = new IllegalStateException("boom");
            for (int round = 0; round < 50; round++) {
                // Two blocks that wait for each other, so each thread runs one; the worker's throws.
                CountDownLatch both = new CountDownLatch(2);
                IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> p.forRange(2, (s, e) -> {
                    both.countDown();
                    await(both);
                    if (Thread.currentThread() != caller) {
                        throw boom;
                    }
                }));
                assertSame(boom, thrown);
                // The pool keeps working afterwards.
                AtomicIntegerArray hits = new AtomicIntegerArray(64);
                p.forRange(64, (s, e) -> {
                    for (int i = s; i < e; i++) {
                        hits.incrementAndGet(i);
                    }
                });
                for (int i = 0; i < 64; i++) {
                    assertEquals(1, hits.get(i));
                }
            }
        }
    }

    @Test
    void exceptionInTheCallersBlockWaitsForTheOthers() {
        try (Parallel p = new Parallel(2)) {
            AtomicIntegerArray finished = new AtomicIntegerArray(1);
            assertThrows(ArithmeticException.class, () -> p.forRange(2, (s, e) -> {
                if (s == 0) {
                    throw new ArithmeticException("first block");
                }
                sleep(50);
                finished.set(0, 1);
            }));
            // forRange returned only once the other block was done (or was never started).
            int before = finished.get(0);
            sleep(100);
            assertEquals(before, finished.get(0), "a block was still running after forRange returned");
        }
    }

    @Test
    void errorsAreRethrownAsIs() {
        try (Parallel p = new Parallel(3)) {
            AssertionError e = assertThrows(AssertionError.class, () -> p.forRange(30, (s, end) -> {
                throw new AssertionError("in block " + s);
            }));
            assertTrue(e.getMessage().startsWith("in block"));
        }
    }

    @Test
    void rejectsBadArguments() {
        try (Parallel p = new Parallel(2)) {
            assertThrows(IllegalArgumentException.class, () -> p.forRange(-1, (s, e) -> { }));
            assertThrows(IllegalArgumentException.class, () -> p.forRange(10, 0, (s, e) -> { }));
        }
        assertThrows(IllegalArgumentException.class, () -> new Parallel(0));
    }

    private static void await(CountDownLatch latch) {
        try {
            assertTrue(latch.await(10, TimeUnit.SECONDS), "the other thread never took a block");
        } catch (InterruptedException ex) {
            throw new RuntimeException(ex);
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException ex) {
            throw new RuntimeException(ex);
        }
    }
}
