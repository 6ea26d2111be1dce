import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Renders a llama2j Chrome trace (written by {@code llama2j profile --trace}) as a PNG timeline: one row
 * per track, one box per slice, coloured by category. It exists because Chromium's built-in trace viewer
 * (chrome://tracing) does not load in headless Chromium 156 on this machine and Perfetto's UI is online
 * only; this draws the same slices from the same JSON, offline, with the JDK alone (headless AWT).
 *
 * <pre>
 *   java scripts/TracePng.java trace.json out.png [FIRST_TOKEN [TOKENS]]   (default: the last 2 profiled tokens)
 * </pre>
 * It reads the one-event-per-line layout that llama2j's ChromeTrace writes, not arbitrary trace files.
 */
public class TracePng {
    record Slice(String name, String cat, int tid, double ts, double dur) {
    }

    private static final Pattern SLICE = Pattern.compile(
            "\\{\"name\":\"((?:[^\"\\\\]|\\\\.)*)\",\"cat\":\"([a-z_]+)\",\"ph\":\"X\",\"pid\":\\d+,\"tid\":(\\d+),\"ts\":([0-9.]+),\"dur\":([0-9.]+)");
    private static final Pattern TRACK = Pattern.compile(
            "\\{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\\d+,\"tid\":(\\d+),\"args\":\\{\"name\":\"((?:[^\"\\\\]|\\\\.)*)\"}}");
    private static final Map<String, Color> COLOURS = Map.of(
            "kernel", new Color(0x3B78C2), "copy_in", new Color(0x3FA34D), "copy_out", new Color(0xE08A1E),
            "dispatch", new Color(0xB8B8B8), "host", new Color(0x9A6FC0), "token", new Color(0xDCE6F2),
            "worker_slice", new Color(0x6FA8DC), "exchange", new Color(0xC0504D));

    public static void main(String[] args) throws IOException {
        if (args.length < 2) {
            System.err.println("usage: java scripts/TracePng.java trace.json out.png [FIRST_TOKEN [TOKENS]]");
            System.exit(2);
        }
        Map<Integer, String> tracks = new LinkedHashMap<>();
        List<Slice> slices = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[0]))) {
            Matcher t = TRACK.matcher(line);
            if (t.find()) {
                tracks.put(Integer.parseInt(t.group(1)), t.group(2));
                continue;
            }
            Matcher m = SLICE.matcher(line);
            if (m.find()) {
                slices.add(new Slice(m.group(1), m.group(2), Integer.parseInt(m.group(3)), Double.parseDouble(m.group(4)),
                        Double.parseDouble(m.group(5))));
            }
        }
        List<Slice> tokens = slices.stream().filter(s -> s.cat().equals("token")).toList();
        if (tokens.isEmpty()) {
            throw new IllegalArgumentException(args[0] + ": no token slices (not a llama2j profile trace?)");
        }
        int count = args.length > 3 ? Integer.parseInt(args[3]) : Math.min(2, tokens.size());
        int first = args.length > 2 ? Integer.parseInt(args[2]) : tokens.size() - count;
        double t0 = tokens.get(first).ts();
        Slice lastToken = tokens.get(Math.min(tokens.size(), first + count) - 1);
        double t1 = lastToken.ts() + lastToken.dur();
        // Tracks without a slice in the window (e.g. the one-off JIT) are left out.
        List<Integer> rows = new ArrayList<>();
        for (int tid : tracks.keySet()) {
            if (slices.stream().anyMatch(s -> s.tid() == tid && s.ts() + s.dur() > t0 && s.ts() < t1)) {
                rows.add(tid);
            }
        }

        int labelW = 250, plotW = 1150, rowH = 34, top = 56, legendH = 40;
        int w = labelW + plotW + 20, h = top + rows.size() * rowH + 30 + legendH;
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, w, h);
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
        g.drawString(Path.of(args[0]).getFileName() + ": tokens " + first + "-" + (first + count - 1) + " ("
                + String.format(Locale.ROOT, "%.2f ms", (t1 - t0) / 1e3) + ")", 10, 20);
        double scale = plotW / (t1 - t0);

        // time axis
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
        double step = niceStep((t1 - t0) / 10);
        for (double t = 0; t <= t1 - t0; t += step) {
            int x = labelW + (int) (t * scale);
            g.setColor(new Color(0xEEEEEE));
            g.drawLine(x, top - 6, x, top + rows.size() * rowH);
            g.setColor(Color.DARK_GRAY);
            g.drawString(t >= 1000 ? String.format(Locale.ROOT, "%.1f ms", t / 1e3) : String.format(Locale.ROOT, "%.0f us", t),
                    x + 2, top - 10);
        }
        for (int r = 0; r < rows.size(); r++) {
            int tid = rows.get(r);
            int y = top + r * rowH;
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            g.drawString(fit(g, tracks.get(tid), labelW - 12), 8, y + rowH / 2 + 4);
            for (Slice s : slices) {
                if (s.tid() != tid || s.ts() + s.dur() <= t0 || s.ts() >= t1) {
                    continue;
                }
                int x0 = labelW + (int) Math.round((Math.max(s.ts(), t0) - t0) * scale);
                int x1 = labelW + (int) Math.round((Math.min(s.ts() + s.dur(), t1) - t0) * scale);
                int bw = Math.max(1, x1 - x0);
                g.setColor(COLOURS.getOrDefault(s.cat(), Color.GRAY));
                g.fillRect(x0, y + 4, bw > 3 ? bw - 1 : bw, rowH - 8); // a 1 px gap keeps adjacent slices apart
                if (bw > 30) {
                    g.setColor(s.cat().equals("token") || s.cat().equals("dispatch") ? Color.BLACK : Color.WHITE);
                    g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 10));
                    g.drawString(fit(g, s.name(), bw - 4), x0 + 2, y + rowH / 2 + 4);
                }
            }
            g.setColor(new Color(0xCCCCCC));
            g.setStroke(new BasicStroke(1));
            g.drawLine(labelW, y + rowH, labelW + plotW, y + rowH);
        }
        int lx = 10, ly = h - legendH + 14;
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        for (String cat : List.of("token", "host", "copy_in", "dispatch", "kernel", "copy_out", "worker_slice")) {
            g.setColor(COLOURS.get(cat));
            g.fillRect(lx, ly - 10, 14, 12);
            g.setColor(Color.BLACK);
            g.drawString(cat, lx + 18, ly);
            lx += 40 + g.getFontMetrics().stringWidth(cat);
        }
        g.setColor(Color.DARK_GRAY);
        g.drawString("rendered from the trace JSON by scripts/TracePng.java", lx + 20, ly);
        g.dispose();
        ImageIO.write(img, "png", Path.of(args[1]).toFile());
    }

    private static double niceStep(double raw) {
        double p = Math.pow(10, Math.floor(Math.log10(raw)));
        for (double m : new double[]{1, 2, 5, 10}) {
            if (m * p >= raw) {
                return m * p;
            }
        }
        return 10 * p;
    }

    private static String fit(Graphics2D g, String s, int width) {
        if (g.getFontMetrics().stringWidth(s) <= width) {
            return s;
        }
        while (s.length() > 1 && g.getFontMetrics().stringWidth(s + "…") > width) {
            s = s.substring(0, s.length() - 1);
        }
        return s.length() <= 1 ? "" : s + "…";
    }
}
