package io.github.llama2j.cpu;

import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A tiny persistent parallel-for: {@code threads - 1} daemon workers plus the calling thread share
 * the blocks of a range. A token issues dozens of short parallel steps back to back, so:
 * <ul>
 *   <li>workers spin for a while before parking, because waking a parked thread costs more than
 *       a small matmul;</li>
 *   <li>blocks are claimed from a shared counter rather than assigned, so on a busy machine the
 *       caller finishes the share of a worker that the OS has not scheduled yet, instead of waiting;</li>
 *   <li>the caller waits for the blocks to be done, not for every worker to show up.</li>
 * </ul>
 * An exception thrown by any block stops the claiming of further blocks and is rethrown by
 * {@link #forRange} on the calling thread once the blocks already started have finished; later
 * exceptions of the same call are attached as suppressed. The pool stays usable afterwards.
 *
 * <p>One caller at a time: {@code forRange} must not be called concurrently or from inside a task.
 */
public final class Parallel implements AutoCloseable {

    /** Work on the half-open range [start, end). */
    @FunctionalInterface
    public interface RangeTask {
        void run(int start, int end);
    }

    /** How long an idle worker spins before it parks (a token's steps are microseconds apart). */
    private static final long SPIN_NANOS = 300_000;
    /** Blocks per thread: enough for load balancing, few enough to keep each block a long contiguous stream. */
    private static final int BLOCKS_PER_THREAD = 4;

    private final int threads;
    /** More threads than cores: spinning workers must yield now and then (see the worker loop). */
    private final boolean oversubscribed;
    private final Thread[] workers;
    /** Set by a worker about to park, so the caller knows to unpark it (plain flags, ordered by fences). */
    private final boolean[] sleeping;
    /** The current job; a worker that sees a new one helps with it. */
    private volatile Job job;
    private volatile boolean closed;

    public Parallel(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.oversubscribed = threads > Runtime.getRuntime().availableProcessors();
        this.workers = new Thread[threads - 1];
        this.sleeping = new boolean[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            final int index = i;
            Thread t = new Thread(() -> workerLoop(index), "llama2j-worker-" + (index + 1));
            t.setDaemon(true);
            workers[i] = t;
        }
        for (Thread t : workers) {
            t.start();
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code task} over [0, n) in blocks; returns when all are done. Same as {@code forRange(n, 1, task)}. */
    public void forRange(int n, RangeTask task) {
        forRange(n, 1, task);
    }

    /**
     * Runs {@code task} over [0, n) split into blocks whose inner boundaries are multiples of
     * {@code grain} (so a kernel that works best on tiles of {@code grain} rows gets whole tiles);
     * returns when every block is done, rethrowing the first exception a block threw.
     */
    public void forRange(int n, int grain, RangeTask task) {
        if (n < 0 || grain < 1) {
            throw new IllegalArgumentException("n = " + n + ", grain = " + grain);
        }
        if (closed) {
            throw new IllegalStateException("Parallel pool is closed");
        }
        int units = Math.ceilDiv(n, grain);
        if (threads == 1 || units < 2) {
            if (n > 0) {
                task.run(0, n);
            }
            return;
        }
        int blocks = Math.min(units, threads * BLOCKS_PER_THREAD);
        Job j = new Job(task, n, Math.ceilDiv(units, blocks) * grain);
        job = j; // volatile write: publishes the job to spinning workers
        VarHandle.fullFence(); // pairs with the worker's fence: either it sees the job or we see it sleeping
        for (int i = 0; i < workers.length; i++) {
            if (sleeping[i]) {
                LockSupport.unpark(workers[i]);
            }
        }
        j.work();
        j.awaitDone();
        Throwable error = j.error.get();
        if (error != null) {
            switch (error) {
                case RuntimeException e -> throw e;
                case Error e -> throw e;
                default -> throw new IllegalStateException(error);
            }
        }
    }

    /** One forRange call: blocks claimed from a counter, completion counted per block. */
    private static final class Job {
        final RangeTask task;
        final int n;
        final int blockSize;
        final int blocks;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        final AtomicReference<Throwable> error = new AtomicReference<>();

        Job(RangeTask task, int n, int blockSize) {
            this.task = task;
            this.n = n;
            this.blockSize = blockSize;
            this.blocks = Math.ceilDiv(n, blockSize);
        }

        /** Claims and runs blocks until none is left. */
        void work() {
            int b;
            while ((b = next.getAndIncrement()) < blocks) {
                try {
                    if (error.get() == null) {
                        int start = b * blockSize;
                        task.run(start, Math.min(n, start + blockSize));
                    }
                } catch (Throwable t) {
                    if (!error.compareAndSet(null, t)) {
                        error.get().addSuppressed(t);
                    }
                } finally {
                    done.incrementAndGet();
                }
            }
        }

        void awaitDone() {
            int spins = 0;
            while (done.get() < blocks) {
                if (++spins < 10_000) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield(); // a worker holding a block may be waiting for this core
                }
            }
        }
    }

    private void workerLoop(int index) {
        Job seen = null;
        while (!closed) {
            Job j = job;
            if (j != seen) {
                seen = j;
                j.work();
                continue;
            }
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            for (int spins = 1; job == seen && !closed && System.nanoTime() < spinUntil; spins++) {
                if (oversubscribed && (spins & 63) == 0) {
                    // With more threads than cores, let a thread holding a block run. ParallelBenchmark
                    // (task=work, 2 cores at load 16, two alternations): 16 threads 87 and 153 µs per call
                    // with the yield, 248 and 371 without; 2 threads 79-124 with it vs 54-81 without, and
                    // bench tg128 on 110M Q8_0 at 2 threads ~2.5% slower with it (4 alternations, load ~2):
                    // so only pools larger than the machine yield.
                    Thread.yield();
                } else {
                    Thread.onSpinWait();
                }
            }
            if (job == seen && !closed) {
                sleeping[index] = true;
                // Re-check after announcing sleep: the caller reads sleeping after publishing the job.
                VarHandle.fullFence();
                if (job == seen && !closed) {
                    LockSupport.parkNanos(this, 10_000_000);
                }
                sleeping[index] = false;
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
