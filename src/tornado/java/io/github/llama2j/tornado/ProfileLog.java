package io.github.llama2j.tornado;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads TornadoVM's profiler log ({@code TornadoProfilerResult.getProfileLog()}) with the profiler in
 * SILENT mode. Facts about that log that shape this class (TornadoVM 5.2, {@code TimeProfiler.createJson}):
 * <ul>
 *   <li>Every execution of a task graph appends one JSON object, {@code {"graph": {totals..., "graph.task": {...}}}},
 *       to that graph's buffer, and the buffer is never cleared: the log holds every execution so far.
 *       An execution plan with several graphs returns the graphs' buffers joined one after the other.
 *       So the last execution of graph {@code g} is the last object headed {@code "g": }.</li>
 *   <li>Every value is a string (numbers too), nested one level: graph totals, then one object per task.</li>
 *   <li>Task objects come in hash order, not launch order, and carry no start timestamp.</li>
 * </ul>
 */
final class ProfileLog {

    /** One execution of one graph: its totals and its tasks' fields, keyed by TornadoVM field name. */
    record GraphRecord(String graph, Map<String, String> totals, Map<String, Map<String, String>> tasks) {

        long total(String field) {
            return num(totals.get(field));
        }

        long task(String taskId, String field) {
            Map<String, String> t = tasks.get(taskId);
            return t == null ? 0 : num(t.get(field));
        }
    }

    private ProfileLog() {
    }

    /**
     * The last record of each graph in {@code graphs} (missing graphs are left out). Only the tail of the
     * log is parsed, so reading it after every token costs the string copy, not a parse of the history.
     */
    static Map<String, GraphRecord> lastPerGraph(String log, Collection<String> graphs) {
        Map<String, GraphRecord> out = new LinkedHashMap<>();
        for (String g : graphs) {
            // A task key is "g.task", so "g": only matches a section header.
            int at = log.lastIndexOf("\"" + g + "\":");
            if (at >= 0) {
                Parser p = new Parser(log, at);
                String name = p.string();
                p.expect(':');
                Map<String, String> totals = new LinkedHashMap<>();
                Map<String, Map<String, String>> tasks = new LinkedHashMap<>();
                p.object(totals, tasks);
                out.put(name, new GraphRecord(name, totals, tasks));
            }
        }
        return out;
    }

    static long num(String s) {
        if (s == null) {
            return 0;
        }
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            return 0; // "n/a" (power) and the like
        }
    }

    /** Just enough JSON for TornadoVM's log: objects whose values are strings or objects of strings. */
    private static final class Parser {
        private final String s;
        private int i;

        Parser(String s, int i) {
            this.s = s;
            this.i = i;
        }

        void object(Map<String, String> values, Map<String, Map<String, String>> children) {
            expect('{');
            skip();
            if (peek() == '}') {
                i++;
                return;
            }
            while (true) {
                String key = string();
                expect(':');
                skip();
                if (peek() == '{') {
                    Map<String, String> child = new LinkedHashMap<>();
                    object(child, null);
                    if (children != null) {
                        children.put(key, child);
                    }
                } else {
                    values.put(key, string());
                }
                skip();
                char c = s.charAt(i++);
                if (c == '}') {
                    return;
                }
                if (c != ',') {
                    throw error("',' or '}'");
                }
            }
        }

        String string() {
            expect('"');
            int end = s.indexOf('"', i);
            if (end < 0) {
                throw error("closing quote");
            }
            String v = s.substring(i, end); // TornadoVM writes no escapes (ids, numbers, device names)
            i = end + 1;
            return v;
        }

        void expect(char c) {
            skip();
            if (i >= s.length() || s.charAt(i) != c) {
                throw error("'" + c + "'");
            }
            i++;
        }

        private char peek() {
            if (i >= s.length()) {
                throw error("more input");
            }
            return s.charAt(i);
        }

        private void skip() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private IllegalStateException error(String wanted) {
            return new IllegalStateException("TornadoVM profiler log: expected " + wanted + " at offset " + i);
        }
    }
}
