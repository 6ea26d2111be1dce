package io.github.llama2j.profile;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Collects every event in memory (thread-safe: CPU workers record concurrently), for the table and the trace.
 * Recording can be paused so that warm-up tokens do not count.
 */
public final class ProfileRecorder implements Profiler {

    /** One recorded event. */
    public record Event(String task, String track, Kind kind, long startNanos, long durationNanos, long bytes) {
    }

    /** One token's forward pass. */
    public record Token(long startNanos, long durationNanos) {
    }

    private final List<Event> events = Collections.synchronizedList(new ArrayList<>());
    private final List<Token> tokens = Collections.synchronizedList(new ArrayList<>());
    private volatile boolean recording = true;

    public void pause() {
        recording = false;
    }

    public void resume() {
        recording = true;
    }

    /** Drops what was recorded so far, keeping one-off events (compilation, weight transfer). */
    public void clearPerTokenEvents() {
        synchronized (events) {
            events.removeIf(e -> e.kind() != Kind.COMPILE && e.kind() != Kind.TRANSFER_WEIGHTS);
        }
        tokens.clear();
    }

    @Override
    public void record(String task, String track, Kind kind, long startNanos, long durationNanos, long bytes) {
        if (recording || kind == Kind.COMPILE || kind == Kind.TRANSFER_WEIGHTS) {
            events.add(new Event(task, track, kind, startNanos, durationNanos, bytes));
        }
    }

    @Override
    public void tokenDone(long startNanos, long durationNanos) {
        if (recording) {
            tokens.add(new Token(startNanos, durationNanos));
        }
    }

    public List<Event> events() {
        synchronized (events) {
            return List.copyOf(events);
        }
    }

    public List<Token> tokens() {
        synchronized (tokens) {
            return List.copyOf(tokens);
        }
    }
}
