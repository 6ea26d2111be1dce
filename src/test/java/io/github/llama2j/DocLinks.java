package io.github.llama2j;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Checks the relative links of Markdown files: every {@code [text](target)}, {@code ![alt](target)} and
 * {@code [label]: target} outside code names an existing file or directory, and every {@code #anchor}
 * matches a heading of the Markdown file it points into, by GitHub's rules for heading ids.
 */
final class DocLinks {
    /** An inline link or image: {@code [text](target)} or {@code [text](target "title")}. */
    private static final Pattern INLINE = Pattern.compile("!?\\[(?:[^\\[\\]]|\\[[^\\[\\]]*])*]\\(\\s*<?([^)\\s>]*)>?(?:\\s+\"[^\"]*\")?\\s*\\)");
    /** A link reference definition: {@code [label]: target}. */
    private static final Pattern REFERENCE = Pattern.compile("^ {0,3}\\[[^\\]]+]:\\s*<?(\\S+?)>?(?:\\s+.*)?$");
    private static final Pattern HEADING = Pattern.compile("^ {0,3}(#{1,6})\\s+(.*?)\\s*#*\\s*$");
    private static final Pattern FENCE = Pattern.compile("^ {0,3}(```+|~~~+)");
    private static final Pattern SCHEME = Pattern.compile("^[a-zA-Z][a-zA-Z0-9+.-]*:");

    private DocLinks() {
    }

    /** README.md, CONTRIBUTING.md and docs/**.md of the repository at {@code root}. */
    static List<Path> documents(Path root) {
        List<Path> docs = new ArrayList<>();
        for (String top : List.of("README.md", "CONTRIBUTING.md")) {
            if (Files.isRegularFile(root.resolve(top))) {
                docs.add(root.resolve(top));
            }
        }
        Path dir = root.resolve("docs");
        if (Files.isDirectory(dir)) {
            try (Stream<Path> s = Files.walk(dir)) {
                s.filter(p -> p.toString().endsWith(".md") && Files.isRegularFile(p)).sorted().forEach(docs::add);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return docs;
    }

    /** Every broken link in {@code docs}, as {@code file:line: target (why)}; empty when all resolve. */
    static List<String> brokenLinks(Path root, List<Path> docs) {
        Map<Path, Set<String>> anchors = new HashMap<>();
        List<String> broken = new ArrayList<>();
        for (Path doc : docs) {
            List<String> lines = lines(doc);
            List<String> text = withoutCode(lines, true);
            for (int i = 0; i < text.size(); i++) {
                for (String target : targets(text.get(i))) {
                    String why = check(doc, target, anchors);
                    if (why != null) {
                        broken.add(root.relativize(doc) + ":" + (i + 1) + ": " + target + " (" + why + ")");
                    }
                }
            }
        }
        return broken;
    }

    /** Null when {@code target}, written in {@code doc}, resolves; otherwise why not. */
    private static String check(Path doc, String target, Map<Path, Set<String>> anchors) {
        if (target.isEmpty() || SCHEME.matcher(target).find() || target.startsWith("//")) {
            return null; // absolute URLs (https:, mailto:) are not checked: no network in tests
        }
        int hash = target.indexOf('#');
        String path = hash < 0 ? target : target.substring(0, hash);
        String anchor = hash < 0 ? null : target.substring(hash + 1);
        Path file = path.isEmpty() ? doc : doc.getParent().resolve(decode(path)).normalize();
        if (!Files.exists(file)) {
            return "no such file: " + file;
        }
        if (anchor == null) {
            return null;
        }
        if (!file.toString().endsWith(".md") || Files.isDirectory(file)) {
            return "an anchor into a file that is not Markdown";
        }
        Set<String> ids = anchors.computeIfAbsent(file, f -> headingIds(lines(f)));
        return ids.contains(decode(anchor)) ? null : "no heading with id '" + anchor + "' in " + file.getFileName();
    }

    /** The link targets on one line of text outside code. */
    static List<String> targets(String line) {
        List<String> targets = new ArrayList<>();
        Matcher m = INLINE.matcher(line);
        while (m.find()) {
            targets.add(m.group(1));
        }
        Matcher r = REFERENCE.matcher(line);
        if (r.matches()) {
            targets.add(r.group(1));
        }
        return targets;
    }

    /** The ids GitHub gives the headings of a document, with {@code -1}, {@code -2} … for repeats. */
    static Set<String> headingIds(List<String> lines) {
        Set<String> ids = new LinkedHashSet<>();
        Map<String, Integer> seen = new HashMap<>();
        for (String line : withoutCode(lines, false)) {
            Matcher m = HEADING.matcher(line);
            if (m.matches()) {
                String slug = slug(m.group(2));
                int n = seen.merge(slug, 1, Integer::sum) - 1;
                ids.add(n == 0 ? slug : slug + "-" + n);
            }
        }
        return ids;
    }

    /**
     * GitHub's id for a heading: the rendered text (links reduced to their text, code spans to their
     * content), lower-cased, without any character that is not a letter, mark, digit, connector
     * (underscore), space or hyphen, and with each space turned into a hyphen.
     */
    static String slug(String heading) {
        String text = heading
                .replaceAll("!?\\[([^\\]]*)]\\([^)]*\\)", "$1") // links and images: their text
                .replaceAll("<[^>]+>", "")                        // inline HTML tags
                .replace("`", "");
        text = text.toLowerCase(Locale.ROOT);
        text = text.replaceAll("[^\\p{L}\\p{M}\\p{N}\\p{Pc} -]", "");
        return text.replace(' ', '-');
    }

    /**
     * The lines with fenced code blocks and HTML comments blanked (line numbers kept), and with the
     * content of inline code spans too when {@code spans}.
     */
    static List<String> withoutCode(List<String> lines, boolean spans) {
        List<String> out = new ArrayList<>(lines.size());
        String fence = null;
        boolean comment = false;
        for (String line : lines) {
            Matcher f = FENCE.matcher(line);
            if (fence == null && f.find()) {
                fence = f.group(1);
                out.add("");
                continue;
            }
            if (fence != null) {
                if (line.strip().startsWith(fence.substring(0, 3)) && line.strip().replace(fence.substring(0, 1), "").isEmpty()) {
                    fence = null;
                }
                out.add("");
                continue;
            }
            StringBuilder b = new StringBuilder();
            int i = 0;
            while (i < line.length()) {
                if (comment) {
                    int end = line.indexOf("-->", i);
                    if (end < 0) {
                        i = line.length();
                    } else {
                        comment = false;
                        i = end + 3;
                    }
                } else if (line.startsWith("<!--", i)) {
                    comment = true;
                    i += 4;
                } else if (spans && line.charAt(i) == '`') {
                    int run = 0;
                    while (i + run < line.length() && line.charAt(i + run) == '`') {
                        run++;
                    }
                    String ticks = "`".repeat(run);
                    int end = line.indexOf(ticks, i + run);
                    if (end < 0) {
                        b.append(ticks); // an unmatched backtick is literal
                        i += run;
                    } else {
                        b.append(ticks).append(ticks); // keep the code span's place, drop its content
                        i = end + run;
                    }
                } else {
                    b.append(line.charAt(i++));
                }
            }
            out.add(b.toString());
        }
        return out;
    }

    private static String decode(String s) {
        return java.net.URLDecoder.decode(s.replace("+", "%2B"), java.nio.charset.StandardCharsets.UTF_8);
    }

    private static List<String> lines(Path file) {
        try {
            return Files.readAllLines(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
