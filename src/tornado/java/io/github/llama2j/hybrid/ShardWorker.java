package io.github.llama2j.hybrid;

import io.github.llama2j.Llama2jException;

import java.util.concurrent.locks.LockSupport;

/**
 * The thread that drives one device shard, so that the device computes while the host computes the
 * CPU's share. One job at a time: {@link #submit} hands it a step, {@link #join} waits for it and rethrows
 * what it threw. Both sides spin briefly before parking, because a token is dozens of short steps and
 * waking a parked thread costs more than one of them on a fast device.
 */
final class ShardWorker implements AutoCloseable {
    private static final long SPIN_NANOS = 100_000;

    private final Thread thread;
    private volatile Runnable job;
    private volatile boolean done = true;
    private volatile Throwable failure;
    private volatile Thread waiter;
    private volatile boolean closed;

    ShardWorker(String name) {
        thread = new Thread(this::loop, "llama2j-hybrid-" + name);
        thread.setDaemon(true);
        thread.start();
    }

    void submit(Runnable step) {
        if (!done) {
            throw new IllegalStateException("previous step still running");
        }
        failure = null;
        done = false;
        job = step;
        LockSupport.unpark(thread);
    }

    /** Waits for the submitted step; a failure on the worker is rethrown here. */
    void join() {
        long spinUntil = System.nanoTime() + SPIN_NANOS;
        waiter = Thread.currentThread();
        while (!done) {
            if (System.nanoTime() < spinUntil) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(this, 200_000);
            }
        }
        waiter = null;
        Throwable t = failure;
        if (t != null) {
            failure = null;
            switch (t) {
                case RuntimeException e -> throw e;
                case Error e -> throw e;
                default -> throw new Llama2jException("hybrid shard failed: " + t, Llama2jException.UNAVAILABLE, t);
            }
        }
    }

    private void loop() {
        while (!closed) {
            Runnable r = job;
            if (r == null) {
                long spinUntil = System.nanoTime() + SPIN_NANOS;
                while (job == null && !closed) {
                    if (System.nanoTime() < spinUntil) {
                        Thread.onSpinWait();
                    } else {
                        LockSupport.parkNanos(this, 1_000_000);
                    }
                }
                continue;
            }
            job = null;
            try {
                r.run();
            } catch (Throwable t) {
                failure = t;
            } finally {
                done = true;
                Thread w = waiter;
                if (w != null) {
                    LockSupport.unpark(w);
                }
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        LockSupport.unpark(thread);
    }
}
