package io.github.llama2j.fuzz;

import io.github.llama2j.Llama2jException;

import java.lang.management.ManagementFactory;
import java.util.function.Supplier;

/**
 * The properties every fuzz target checks besides its own: failures are {@link Llama2jException}s
 * with one clear line, and the heap allocated while handling an input stays proportional to the
 * input's size, never to a number read from it.
 */
final class FuzzProperties {
    /** Allocation allowed per input regardless of its size (boxing, strings, small arrays). */
    static final long ALLOCATION_SLACK = 4L << 20;
    /** Allocation allowed per input byte (per-layer tensor views, piece arrays, token arrays). */
    static final long ALLOCATION_PER_BYTE = 64;

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private FuzzProperties() {
    }

    /** Bytes this thread has allocated so far (HotSpot's per-thread TLAB accounting). */
    static long allocated() {
        return THREADS.getCurrentThreadAllocatedBytes();
    }

    /**
     * Runs {@code action} and fails if the heap it allocated exceeds the budget for an input of
     * {@code inputBytes}. Over budget, the action runs a second time and only that run counts: the
     * first run of a code path also pays for class loading and Jazzer's instrumentation of it.
     */
    static <T> T withAllocationBudget(String what, long inputBytes, Supplier<T> action) {
        long budget = ALLOCATION_SLACK + ALLOCATION_PER_BYTE * inputBytes;
        long before = allocated();
        T result = action.get();
        long used = allocated() - before;
        if (used > budget) {
            before = allocated();
            result = action.get();
            used = allocated() - before;
            if (used > budget) {
                throw new AssertionError(what + " allocated " + used + " bytes for a " + inputBytes
                        + "-byte input (budget " + budget + "): an allocation follows an unchecked field");
            }
        }
        return result;
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    /** A user-facing error must be one line and, for a file, name the file first. */
    static void assertClearError(Llama2jException e, String fileName) {
        String m = e.getMessage();
        if (m == null || m.isBlank() || m.indexOf('\n') >= 0 || m.indexOf('\r') >= 0) {
            throw new AssertionError("error message is not one clear line: '" + m + "'", e);
        }
        if (fileName != null && !m.startsWith(fileName + ":")) {
            throw new AssertionError("error message does not name the file " + fileName + ": '" + m + "'", e);
        }
    }
}
