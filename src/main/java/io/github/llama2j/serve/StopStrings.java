package io.github.llama2j.serve;

import java.util.List;

/**
 * OpenAI's {@code stop}: generation ends as soon as the text so far holds a stop string, and the answer
 * is that text cut before the earliest occurrence (the stop string is not part of it). Text is passed
 * on as it comes, except a tail that could still begin a stop string: that waits for the next piece.
 */
final class StopStrings {
    private final List<String> stops;
    private final StringBuilder held = new StringBuilder();
    private boolean stopped;

    StopStrings(List<String> stops) {
        for (String s : stops) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("empty stop string");
            }
        }
        this.stops = List.copyOf(stops);
    }

    /** Whether a stop string was seen (then nothing more is passed on). */
    boolean stopped() {
        return stopped;
    }

    /** The part of the text so far that is certainly in the answer and was not passed on yet. */
    String push(String text) {
        if (stopped) {
            return "";
        }
        held.append(text);
        int first = -1;
        for (String s : stops) {
            int i = held.indexOf(s);
            if (i >= 0 && (first < 0 || i < first)) {
                first = i;
            }
        }
        if (first >= 0) {
            stopped = true;
            String out = held.substring(0, first);
            held.setLength(0);
            return out;
        }
        int keep = 0;
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, held.length()); k > keep; k--) {
                if (endsWith(held, s, k)) {
                    keep = k;
                    break;
                }
            }
        }
        String out = held.substring(0, held.length() - keep);
        held.delete(0, held.length() - keep);
        return out;
    }

    /** Whether {@code text} ends with the first {@code k} characters of {@code s}. */
    private static boolean endsWith(StringBuilder text, String s, int k) {
        int base = text.length() - k;
        for (int j = 0; j < k; j++) {
            if (text.charAt(base + j) != s.charAt(j)) {
                return false;
            }
        }
        return true;
    }

    /** At the end of the answer: the held tail (it began no stop string after all). */
    String finish() {
        String out = stopped ? "" : held.toString();
        held.setLength(0);
        return out;
    }
}
