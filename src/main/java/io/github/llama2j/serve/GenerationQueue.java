package io.github.llama2j.serve;

import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.generate.TokenGenerator;
import io.github.llama2j.math.FloatMath;
import io.github.llama2j.sampling.Sampler;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One engine, many requests: a bounded queue in front of one worker thread that runs one generation at
 * a time (each from position 0 with its own sampler). A request is accepted only while fewer than
 * {@code 1 + capacity} are running or waiting; its text comes back as {@link Event}s on its own
 * {@link Job#events queue}, so the engine never waits for a slow client. Every accepted job ends with
 * exactly one terminal event ({@link Event.Done}, {@link Event.Failed} or {@link Event.Cancelled}).
 */
final class GenerationQueue implements AutoCloseable {

    /** What a job reports, in order: text, then one terminal event. */
    sealed interface Event {
        record Text(String text) implements Event {
        }

        record Done(String finishReason, int promptTokens, int completionTokens) implements Event {
        }

        record Failed(ApiException error) implements Event {
        }

        record Cancelled() implements Event {
        }
    }

    /**
     * One generation request.
     *
     * @param maxTokens sampled tokens at most
     * @param topK      run's --top-k (0 = off)
     * @param minP      run's --min-p (0 = off)
     * @param seed      the sampler's seed (run.c's xorshift; must not be 0)
     */
    static final class Job {
        final PromptFormat.Prompt prompt;
        final int maxTokens;
        final float temperature;
        final float topP;
        final int topK;
        final float minP;
        final long seed;
        final List<String> stop;
        final BlockingQueue<Event> events = new LinkedBlockingQueue<>();
        private final AtomicBoolean cancelled = new AtomicBoolean();
        private final AtomicBoolean ended = new AtomicBoolean();
        private volatile GenerationQueue owner;

        Job(PromptFormat.Prompt prompt, int maxTokens, float temperature, float topP, int topK, float minP, long seed,
            List<String> stop) {
            this.prompt = prompt;
            this.maxTokens = maxTokens;
            this.temperature = temperature;
            this.topP = topP;
            this.topK = topK;
            this.minP = minP;
            this.seed = seed;
            this.stop = List.copyOf(stop);
        }

        private volatile ApiException abortedWith;

        /** Stops the generation at its next token (the client went away). */
        void cancel() {
            cancelled.set(true);
        }

        /** Stops the generation at its next token, answering {@code error} (the server is stopping). */
        void abort(ApiException error) {
            abortedWith = error;
            cancelled.set(true);
        }

        private Event cancelledEvent() {
            ApiException e = abortedWith;
            return e != null ? new Event.Failed(e) : new Event.Cancelled();
        }

        boolean cancelled() {
            return cancelled.get();
        }

        void emit(Event e) {
            if (!ended.get()) {
                events.add(e);
            }
        }

        /** Emits a terminal event unless one was emitted already. */
        void end(Event e) {
            if (ended.compareAndSet(false, true)) {
                GenerationQueue q = owner;
                if (q != null) {
                    q.count(e); // before the client can see it: /health is exact once the answer is out
                }
                events.add(e);
            }
        }

        Event next() throws InterruptedException {
            return events.take();
        }
    }

    private final InferenceEngine engine;
    private final PromptFormat format;
    private final PrintWriter log;
    private final Semaphore slots;
    private final BlockingQueue<Job> waiting = new LinkedBlockingQueue<>();
    private final Thread worker;
    private volatile boolean closed;
    private volatile Job running;
    private final AtomicLong completed = new AtomicLong();
    private final AtomicLong cancelledCount = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();

    GenerationQueue(InferenceEngine engine, PromptFormat format, int capacity, PrintWriter log) {
        if (capacity < 0) {
            throw new IllegalArgumentException("queue capacity " + capacity);
        }
        this.engine = engine;
        this.format = format;
        this.log = log;
        this.slots = new Semaphore(1 + capacity);
        this.worker = Thread.ofPlatform().name("llama2j-generation").daemon(true).start(this::work);
    }

    /** Accepts the job, or returns false when {@code 1 + capacity} jobs are running or waiting (or when closed). */
    boolean submit(Job job) {
        if (closed || !slots.tryAcquire()) {
            return false;
        }
        job.owner = this;
        waiting.add(job);
        if (closed && waiting.remove(job)) { // closed meanwhile: close() may have drained before the add
            slots.release();
            return false;
        }
        return true;
    }

    int waitingCount() {
        return waiting.size();
    }

    boolean busy() {
        return running != null;
    }

    private void count(Event terminal) {
        switch (terminal) {
            case Event.Done d -> completed.incrementAndGet();
            case Event.Cancelled c -> cancelledCount.incrementAndGet();
            default -> failed.incrementAndGet();
        }
    }

    /** Jobs that ended with an answer, were cancelled (their client went away), or failed. */
    long completed() {
        return completed.get();
    }

    long cancelled() {
        return cancelledCount.get();
    }

    long failed() {
        return failed.get();
    }

    private void work() {
        while (!closed) {
            Job job;
            try {
                job = waiting.take();
            } catch (InterruptedException e) {
                break;
            }
            running = job;
            try {
                if (job.cancelled()) {
                    job.end(job.cancelledEvent());
                } else {
                    run(job);
                }
            } catch (io.github.llama2j.Llama2jException e) { // the model's logits NaN or infinite, a temperature that overflows them: one line, no trace
                log.println("llama2j serve: generation failed: " + e.getMessage());
                log.flush();
                job.end(new Event.Failed(new ApiException(500, "server_error", null, null, "generation failed: " + e.getMessage())));
            } catch (RuntimeException | Error e) {
                log.println("llama2j serve: generation failed: " + e);
                e.printStackTrace(log);
                log.flush();
                job.end(new Event.Failed(new ApiException(500, "server_error", null, null,
                        "generation failed: " + e.getClass().getSimpleName())));
            } finally {
                job.end(new Event.Failed(new ApiException(500, "server_error", null, null, "generation ended without an answer")));
                running = null;
                slots.release();
            }
        }
    }

    private void run(Job job) {
        engine.reset();
        int seqLen = engine.config().seqLen();
        Sampler sampler = new Sampler(engine.config().vocabSize(), job.temperature, job.topP, job.topK, job.minP, job.seed,
                FloatMath.vectorized());
        Utf8Text utf8 = new Utf8Text();
        StopStrings stops = new StopStrings(job.stop);
        PromptFormat.Prompt p = job.prompt;
        TokenGenerator.Outcome o = new TokenGenerator(engine, sampler).generate(
                new TokenGenerator.Request(p.tokens(), seqLen, job.maxTokens, p.end(), p.endInPrompt(), p.samplePrompt()),
                (prev, next, sampled) -> {
                    if (job.cancelled()) {
                        return false;
                    }
                    if (sampled) {
                        String text = stops.push(utf8.push(format.piece(prev, next)));
                        if (!text.isEmpty()) {
                            job.emit(new Event.Text(text));
                        }
                    }
                    return !stops.stopped();
                });
        if (job.cancelled()) {
            job.end(job.cancelledEvent());
            return;
        }
        String rest = stops.push(utf8.finish());
        rest += stops.finish();
        if (!rest.isEmpty()) {
            job.emit(new Event.Text(rest));
        }
        String reason = stops.stopped() || o.finish() == TokenGenerator.Finish.END_TOKEN ? "stop" : "length";
        job.end(new Event.Done(reason, o.promptTokens(), o.generated()));
    }

    /** Stops the worker: waiting jobs end with 503, the running one too, at its next token. */
    @Override
    public void close() {
        closed = true;
        ApiException stopping = new ApiException(503, "server_error", "shutting_down", null, "the server is shutting down");
        Job r = running;
        if (r != null) {
            r.abort(stopping);
        }
        List<Job> left = new ArrayList<>();
        waiting.drainTo(left);
        for (Job j : left) {
            j.end(new Event.Failed(stopping));
            slots.release();
        }
        worker.interrupt();
        try {
            worker.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
