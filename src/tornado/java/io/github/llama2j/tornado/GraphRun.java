package io.github.llama2j.tornado;

import uk.ac.manchester.tornado.api.TornadoProfilerResult;

import java.util.function.ToLongFunction;

/**
 * TornadoVM's profiler figures of one graph's execution (ns and bytes), and its JSON record: the last
 * one in TornadoVM's log, which keeps every execution's record. Read right after the graph ran (a
 * {@code TornadoExecutionResult} reads them from the plan lazily, and by then the plan may have moved on).
 */
record GraphRun(String log, long kernelNanos, long graalNanos, long driverNanos, long writeNanos, long readNanos,
                long bytesIn, long bytesOut) {

    static GraphRun of(String graph, TornadoProfilerResult p) {
        String all = p.getProfileLog();
        int cut = all.lastIndexOf("\"" + graph + "\"");
        return new GraphRun(cut < 0 ? all : all.substring(cut), p.getDeviceKernelTime(), p.getTornadoCompilerTime(),
                p.getDriverInstallTime(), p.getDeviceWriteTime(), p.getDeviceReadTime(), p.getTotalBytesCopyIn(),
                p.getTotalBytesCopyOut());
    }

    static long sum(GraphRun[] runs, ToLongFunction<GraphRun> field) {
        long total = 0;
        for (GraphRun r : runs) {
            total += field.applyAsLong(r);
        }
        return total;
    }

    static String logs(GraphRun[] runs) {
        StringBuilder sb = new StringBuilder();
        for (GraphRun r : runs) {
            sb.append(r.log());
        }
        return sb.toString();
    }
}
