package io.github.llama2j.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A tiny persistent parallel-for: {@code threads - 1} daemon workers plus the calling thread split
 * a range into contiguous chunks. Workers spin briefly before parking, because a token issues
 * dozens of short matmuls back to back and waking a parked thread costs more than one of them.
 */
public final class Parallel implements AutoCloseable {

    /** Work on the half-open range [start, end). */
    @FunctionalInterface
    public interface RangeTask {
        void run(int start, int end);
    }

    private static final long SPIN_NANOS = 200_000;

    private final int threads;
    private final Thread[] workers;
    private final AtomicInteger remaining = new AtomicInteger();
    private volatile long generation;
    private volatile RangeTask task;
    private volatile int size;
    private volatile boolean closed;

    public Parallel(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            final int index = i + 1;
            Thread t = new Thread(() -> workerLoop(index), "llama2j-worker-" + index);
            t.setDaemon(true);
            workers[i] = t;
            t.start();
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code task} over [0, n) split in {@link #threads()} chunks; returns when all are done. */
    public void forRange(int n, RangeTask task) {
        if (threads == 1 || n < 2) {
            task.run(0, n);
            return;
        }
        this.task = task;
        this.size = n;
        remaining.set(workers.length);
        generation++; // publishes task and size to the spinning workers
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
        runChunk(0, task, n);
        while (remaining.get() != 0) {
            Thread.onSpinWait();
        }
    }

    private void runChunk(int index, RangeTask t, int n) {
        int start = (int) ((long) n * index / threads);
        int end = (int) ((long) n * (index + 1) / threads);
        if (start < end) {
            t.run(start, end);
        }
    }

    private void workerLoop(int index) {
        long seen = 0;
        while (!closed) {
            long g = generation;
            if (g == seen) {
                long spinUntil = System.nanoTime() + SPIN_NANOS;
                while (generation == seen && !closed) {
                    if (System.nanoTime() > spinUntil) {
                        LockSupport.parkNanos(this, 1_000_000);
                    } else {
                        Thread.onSpinWait();
                    }
                }
                continue;
            }
            seen = g;
            try {
                runChunk(index, task, size);
            } finally {
                remaining.decrementAndGet();
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
