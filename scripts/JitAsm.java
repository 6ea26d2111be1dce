import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the machine code C2 compiled for a method when no disassembler plugin is at hand. Without {@code hsdis}
 * (Debian's {@code libhsdis0-fcml} exports only the older {@code decode_instructions} entry point, which JDK 25
 * does not call),
 * {@code -XX:+PrintAssembly} prints each compiled method's code as hex words; this program turns those words back
 * into bytes and disassembles them with binutils' {@code objdump}, keeping the JVM's comments (implicit exceptions,
 * oop maps, uncommon traps) at their addresses. Given the instruction pointers of a {@code perf} profile of the same
 * JVM run, it also puts each instruction's sample count and share in front of it: where the cycles went inside
 * one compiled method (a stalled load shows as the instruction after it, as timer-based samples skid).
 *
 * <pre>
 *   java --add-modules jdk.incubator.vector -XX:+UnlockDiagnosticVMOptions \
 *        -XX:CompileCommand=print,io.github.llama2j.cpu.KQuantPacked::q4_K ... > asm.log
 *   java scripts/JitAsm.java asm.log                      every C2 method in the log, disassembled
 *   java scripts/JitAsm.java asm.log N                    only the N-th C2 method (1 = the first; they are listed)
 *   perf record -e cpu-clock -F 10000 -o perf.data -- java ... (the same command, the same run)
 *   perf script -i perf.data -F ip | sort | uniq -c > ips.txt
 *   java scripts/JitAsm.java asm.log N ips.txt            with the samples; HOT=1.0 lists only instructions with ≥ 1%
 * </pre>
 * Intel syntax; x86-64 only (objdump's {@code -m i386:x86-64}).
 */
public class JitAsm {
    private static final Pattern METHOD = Pattern.compile("^Compiled method \\((c1|c2)\\)\\s+\\d+\\s+\\d+\\s+(%?)\\s*\\d+\\s+(\\S+)(.*)$");
    private static final Pattern WORDS = Pattern.compile("^\\s+0x([0-9a-f]+): ([0-9a-f |]+)$");
    private static final Pattern NOTE = Pattern.compile("^\\s+0x([0-9a-f]+): (;.*)$");
    /** An instruction of objdump's listing (address, bytes, text); a long instruction's second line of bytes has no text. */
    private static final Pattern OBJDUMP = Pattern.compile("^\\s*([0-9a-f]+):\\t[0-9a-f ]+\\t(.*)$");

    record Method(String name, long start, byte[] code, Map<Long, String> notes) {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: java scripts/JitAsm.java ASM_LOG [N [PERF_IPS]]");
            System.exit(2);
        }
        try {
            run(args);
        } catch (IOException | NumberFormatException e) {
            System.err.println("JitAsm: " + e.getClass().getSimpleName() + ": " + e.getMessage());
            System.exit(1);
        }
    }

    private static void run(String[] args) throws IOException, InterruptedException {
        List<Method> methods = parse(Files.readAllLines(Path.of(args[0])));
        if (methods.isEmpty()) {
            System.err.println(args[0] + ": no C2-compiled method with [MachCode] (run with -XX:+PrintAssembly or CompileCommand=print)");
            System.exit(1);
        }
        Map<Long, Long> samples = args.length > 2 ? samples(Path.of(args[2])) : Map.of();
        double hot = Double.parseDouble(System.getenv().getOrDefault("HOT", "0"));
        for (int i = 0; i < methods.size(); i++) {
            Method m = methods.get(i);
            if (args.length > 1 && Integer.parseInt(args[1]) != i + 1) {
                System.out.printf(Locale.ROOT, "# %d: %s (%d bytes at 0x%x)%n", i + 1, m.name(), m.code().length, m.start());
                continue;
            }
            disassemble(i + 1, m, samples, hot);
        }
    }

    /** The C2 methods of a PrintAssembly log: their code (hex words back to bytes) and the JVM's comments. */
    static List<Method> parse(List<String> lines) {
        List<Method> out = new ArrayList<>();
        String name = null;
        boolean inCode = false;
        long start = -1;
        java.io.ByteArrayOutputStream code = null;
        Map<Long, String> notes = null;
        for (String line : lines) {
            Matcher m = METHOD.matcher(line);
            if (m.matches() || line.startsWith("[Exception Handler]") || line.startsWith("[Stub Code]")) {
                if (inCode && code.size() > 0) {
                    out.add(new Method(name, start, code.toByteArray(), notes));
                }
                inCode = false;
                if (m.matches()) {
                    name = m.group(1).equals("c2") ? m.group(3) + (m.group(2).isEmpty() ? "" : " (OSR)") + " " + m.group(4).strip() : null;
                }
                continue;
            }
            if (line.startsWith("[MachCode]")) {
                inCode = name != null;
                start = -1;
                code = new java.io.ByteArrayOutputStream();
                notes = new HashMap<>();
                continue;
            }
            if (!inCode) {
                continue;
            }
            Matcher n = NOTE.matcher(line);
            if (n.matches()) {
                notes.merge(Long.parseUnsignedLong(n.group(1), 16), n.group(2), (a, b) -> a + " " + b);
                continue;
            }
            Matcher w = WORDS.matcher(line);
            if (w.matches()) {
                long at = Long.parseUnsignedLong(w.group(1), 16);
                if (start < 0) {
                    start = at;
                }
                while (start + code.size() < at) {
                    code.write(0x90); // a gap (never seen): keep addresses right
                }
                String hex = w.group(2).replace("|", "").replace(" ", "");
                for (int k = 0; k + 1 < hex.length(); k += 2) {
                    code.write(Integer.parseInt(hex, k, k + 2, 16));
                }
            } else if (line.startsWith("[/MachCode]") || line.startsWith("[Deopt Handler Code]") || line.startsWith("----")) {
                if (code.size() > 0) {
                    out.add(new Method(name, start, code.toByteArray(), notes));
                }
                inCode = false;
            } // other lines ("[Verified Entry Point]", "# parm0: ...", oop maps' continuations) are skipped
        }
        if (inCode && code.size() > 0) {
            out.add(new Method(name, start, code.toByteArray(), notes));
        }
        return out;
    }

    /** {@code perf script -F ip | sort | uniq -c} output: count per instruction pointer. */
    static Map<Long, Long> samples(Path file) throws IOException {
        Map<Long, Long> out = new HashMap<>();
        for (String line : Files.readAllLines(file)) {
            String[] f = line.strip().split("\\s+");
            if (f.length == 2) {
                out.merge(Long.parseUnsignedLong(f[1], 16), Long.parseLong(f[0]), Long::sum);
            }
        }
        return out;
    }

    static void disassemble(int index, Method m, Map<Long, Long> samples, double hot) throws IOException, InterruptedException {
        Path bin = Files.createTempFile("jitasm", ".bin");
        try {
            Files.write(bin, m.code());
            Process p = new ProcessBuilder("objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel",
                    "--adjust-vma=0x" + Long.toHexString(m.start()), bin.toString()).redirectErrorStream(true).start();
            List<String> lines = new String(p.getInputStream().readAllBytes()).lines().toList();
            if (p.waitFor() != 0) {
                throw new IOException("objdump failed: " + String.join("\n", lines));
            }
            TreeMap<Long, String> instructions = new TreeMap<>();
            for (String line : lines) {
                Matcher o = OBJDUMP.matcher(line);
                if (o.matches() && !o.group(2).isBlank()) {
                    instructions.put(Long.parseUnsignedLong(o.group(1), 16), o.group(2).strip());
                }
            }
            Map<Long, Long> counts = new HashMap<>();
            long total = 0;
            for (Map.Entry<Long, Long> s : samples.entrySet()) {
                Map.Entry<Long, String> at = instructions.floorEntry(s.getKey());
                if (at != null && s.getKey() < m.start() + m.code().length) {
                    counts.merge(at.getKey(), s.getValue(), Long::sum);
                    total += s.getValue();
                }
            }
            System.out.printf(Locale.ROOT, "# %d: %s (%d bytes at 0x%x)%s%n", index, m.name(), m.code().length, m.start(),
                    samples.isEmpty() ? "" : ", " + total + " samples");
            for (Map.Entry<Long, String> ins : instructions.entrySet()) {
                long c = counts.getOrDefault(ins.getKey(), 0L);
                double share = total == 0 ? 0 : 100.0 * c / total;
                if (share < hot) {
                    continue;
                }
                String note = m.notes().get(ins.getKey());
                if (note != null && hot == 0) {
                    System.out.println("            " + note);
                }
                String prefix = samples.isEmpty() ? "" : String.format(Locale.ROOT, "%7d %5.1f%% ", c, share);
                System.out.printf(Locale.ROOT, "%s%x: %s%n", prefix, ins.getKey(), ins.getValue());
            }
        } finally {
            Files.deleteIfExists(bin);
        }
    }
}
