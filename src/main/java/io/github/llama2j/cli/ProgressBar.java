package io.github.llama2j.cli;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * A one-line progress bar on stderr, redrawn in place with a carriage return at most ten times a
 * second: {@code label [#####.....]  45%  27.3/60.8 MB  12.3 MB/s}.
 */
final class ProgressBar {
    private static final long REDRAW_NANOS = 100_000_000L;
    private static final int WIDTH = 30;

    private final PrintWriter err;
    private final String label;
    private final long total;
    private final long startNanos = System.nanoTime();
    private final long initial;
    private long lastDraw = Long.MIN_VALUE;
    private long done;

    /** @param total bytes expected, or -1 if unknown (then no bar, only the count and the rate) */
    ProgressBar(PrintWriter err, String label, long total) {
        this(err, label, total, 0);
    }

    /** @param initial bytes already there when this transfer started (a resumed download): not counted in the rate */
    ProgressBar(PrintWriter err, String label, long total, long initial) {
        this.err = err;
        this.label = label;
        this.total = total;
        this.initial = initial;
        this.done = initial;
    }

    void update(long bytesDone) {
        done = bytesDone;
        long now = System.nanoTime();
        if (lastDraw == Long.MIN_VALUE || now - lastDraw >= REDRAW_NANOS) {
            lastDraw = now;
            draw(now);
        }
    }

    /** Draws the final state and ends the line. */
    void finish() {
        draw(System.nanoTime());
        err.println();
        err.flush();
    }

    private void draw(long now) {
        double seconds = Math.max(1e-9, (now - startNanos) / 1e9);
        String rate = String.format(Locale.ROOT, "%.1f MB/s", (done - initial) / 1e6 / seconds);
        String line;
        if (total > 0) {
            int filled = (int) Math.min(WIDTH, done * WIDTH / total);
            line = String.format(Locale.ROOT, "%s [%s%s] %3d%%  %.1f/%.1f MB  %s", label, "#".repeat(filled),
                    ".".repeat(WIDTH - filled), done * 100 / total, done / 1e6, total / 1e6, rate);
        } else {
            line = String.format(Locale.ROOT, "%s  %.1f MB  %s", label, done / 1e6, rate);
        }
        err.print("\r" + line);
        err.flush();
    }
}
