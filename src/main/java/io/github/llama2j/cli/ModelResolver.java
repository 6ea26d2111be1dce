package io.github.llama2j.cli;

import io.github.llama2j.Llama2jException;
import io.github.llama2j.model.AtomicFile;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

/**
 * Turns the MODEL argument into a file path. An existing path wins. Otherwise MODEL may name a
 * published model (stories260K, stories15M, stories42M, stories110M), looked up in order:
 * <ol>
 *   <li>{@code $LLAMA2J_MODELS/<name>.bin}, used as it is;</li>
 *   <li>the cache, {@code $XDG_CACHE_HOME/llama2j} or {@code ~/.cache/llama2j}, checked by SHA-256;</li>
 *   <li>a download into the cache (from Hugging Face's tinyllamas, or {@code $LLAMA2J_MODEL_BASE_URL}),
 *       together with the model's tokenizer so that it is found next to the model.</li>
 * </ol>
 * A cached file is checked against its pinned SHA-256 where one is known; otherwise against the
 * SHA-256 recorded in {@code <file>.sha256} when it was first downloaded (trust on first use).
 *
 * <p>MODEL may also be {@code hf:OWNER/REPO/FILE}, a file of a Hugging Face repository (a GGUF model,
 * typically): it is downloaded from {@code https://huggingface.co/OWNER/REPO/resolve/main/FILE} (or
 * {@code $LLAMA2J_HF_BASE_URL/OWNER/REPO/resolve/main/FILE}) into {@code <cache>/hf/OWNER/REPO/FILE},
 * checked against the size the server announces, and resumed after a cut (see
 * {@link Downloader#downloadResumable}). Such files have no checksum to check them against: a
 * complete file in the cache is used as it is.
 */
public final class ModelResolver {
    /** The help text about model names, for the footers of the commands that take MODEL. */
    public static final String NAMES_HELP = "%nModel names: MODEL may also be stories260K, stories15M, stories42M or"
            + "%nstories110M. A name is looked up as $LLAMA2J_MODELS/<name>.bin, then in the"
            + "%ncache ($XDG_CACHE_HOME/llama2j, else ~/.cache/llama2j); otherwise it is"
            + "%ndownloaded into the cache from Hugging Face (karpathy/tinyllamas), with its"
            + "%ntokenizer, showing progress on stderr. stories260K.bin, tok512.bin and"
            + "%ntokenizer.bin are checked against pinned SHA-256 sums. stories15M/42M/110M"
            + "%nhave no pinned sum (only their size is pinned): their SHA-256 is recorded at"
            + "%nfirst download in <file>.sha256 beside them and checked on every later use"
            + "%n(trust on first use). LLAMA2J_MODEL_BASE_URL replaces the download site."
            + "%nMODEL may also be hf:OWNER/REPO/FILE, a file of a Hugging Face repository,"
            + "%ndownloaded into the cache (an interrupted download resumes on the next run);"
            + "%nLLAMA2J_HF_BASE_URL replaces https://huggingface.co.";
    static final String MODELS_DIR_ENV = "LLAMA2J_MODELS";
    static final String BASE_URL_ENV = "LLAMA2J_MODEL_BASE_URL";
    static final String HF_BASE_URL_ENV = "LLAMA2J_HF_BASE_URL";
    static final String HUGGING_FACE = "https://huggingface.co";
    static final String HF_PREFIX = "hf:";

    private final Map<String, String> env;
    private final Path userHome;
    private final Path workingDir;
    private final PrintWriter log;

    /** @param workingDir what relative MODEL paths are relative to ({@code Path.of("")}: the process's directory) */
    ModelResolver(Map<String, String> env, Path userHome, Path workingDir, PrintWriter log) {
        this.env = env;
        this.userHome = userHome;
        this.workingDir = workingDir;
        this.log = log;
    }

    /** Resolves with the process environment; downloads log to {@code log} (stderr). */
    public static Path resolve(String model, PrintWriter log) {
        return new ModelResolver(System.getenv(), Path.of(System.getProperty("user.home")), Path.of(""), log).resolve(model);
    }

    Path resolve(String model) {
        Path p = workingDir.resolve(model);
        Optional<KnownModels.KnownModel> name = KnownModels.byName(model);
        // a file wins over a name; a directory that happens to be called like a model does not
        if (Files.isRegularFile(p) || (name.isEmpty() && Files.exists(p))) {
            return p;
        }
        if (model.startsWith(HF_PREFIX)) {
            return huggingFace(HuggingFaceFile.parse(model));
        }
        KnownModels.KnownModel known = name.orElseThrow(() -> new Llama2jException(model
                + ": no such model file, and not a model name (" + String.join(", ", KnownModels.names()) + ")",
                Llama2jException.BAD_INPUT));
        String dir = env.get(MODELS_DIR_ENV);
        if (dir != null && !dir.isBlank()) {
            Path inDir = Path.of(dir).resolve(known.weights().fileName());
            if (Files.isRegularFile(inDir)) {
                return inDir;
            }
        }
        Path cache = cacheDir();
        Path weights = ensure(known.weights(), cache);
        ensure(known.tokenizer(), cache);
        return weights;
    }

    /** A file of a Hugging Face repository: {@code hf:OWNER/REPO/FILE}, FILE possibly in a folder of the repository. */
    record HuggingFaceFile(String owner, String repo, String file) {
        HuggingFaceFile {
            for (String part : (owner + "/" + repo + "/" + file).split("/", -1)) {
                if (part.isEmpty() || part.equals(".") || part.equals("..") || part.chars().anyMatch(c -> c < 0x20 || c == 0x7f || c == '\\')) {
                    throw new Llama2jException(HF_PREFIX + owner + "/" + repo + "/" + file + ": not a Hugging Face file name "
                            + "(expected hf:OWNER/REPO/FILE, e.g. hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf)",
                            Llama2jException.BAD_USAGE);
                }
            }
        }

        static HuggingFaceFile parse(String model) {
            String[] parts = model.substring(HF_PREFIX.length()).split("/", 3);
            if (parts.length < 3) {
                throw new Llama2jException(model + ": not a Hugging Face file name (expected hf:OWNER/REPO/FILE, "
                        + "e.g. hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf)", Llama2jException.BAD_USAGE);
            }
            return new HuggingFaceFile(parts[0], parts[1], parts[2]);
        }

        /** {@code BASE/OWNER/REPO/resolve/main/FILE}, each path segment percent-encoded. */
        URI url(String base) {
            StringBuilder path = new StringBuilder();
            for (String segment : (owner + "/" + repo + "/resolve/main/" + file).split("/")) {
                path.append('/').append(URLEncoder.encode(segment, StandardCharsets.UTF_8).replace("+", "%20"));
            }
            return URI.create((base.endsWith("/") ? base.substring(0, base.length() - 1) : base) + path);
        }

        /** Where it is cached: {@code hf/OWNER/REPO/FILE} below the cache directory. */
        Path in(Path cache) {
            Path p = cache.resolve("hf").resolve(owner).resolve(repo);
            for (String segment : file.split("/")) {
                p = p.resolve(segment);
            }
            return p;
        }
    }

    /** The Hugging Face file from the cache, or downloaded (resuming an earlier cut-off download) into it. */
    Path huggingFace(HuggingFaceFile hf) {
        Path local = hf.in(cacheDir());
        if (Files.isRegularFile(local)) {
            return checkedGguf(local);
        }
        String base = blankToNull(env.get(HF_BASE_URL_ENV));
        URI url = hf.url(base != null ? base : HUGGING_FACE);
        if (log != null) {
            log.println("llama2j: downloading " + url + " to " + local);
            log.flush();
        }
        new Downloader(log).downloadResumable(url, local, -1, null);
        return checkedGguf(local);
    }

    /**
     * A Hugging Face file in the cache, checked where it is a GGUF file (Hugging Face gives no checksum to pin): a
     * file the GGUF reader refuses is named with its cache path and the way out, not only by its base name, which a
     * later run would report the same way forever.
     */
    private static Path checkedGguf(Path local) {
        if (local.getFileName().toString().endsWith(".gguf")) {
            try (io.github.llama2j.gguf.GgufFile ignored = io.github.llama2j.gguf.GgufFile.open(local)) {
                // header, metadata and tensor infos checked against the file
            } catch (Llama2jException e) {
                if (e.exitCode() == Llama2jException.BAD_INPUT) {
                    throw new Llama2jException("cached " + local + " is not a valid GGUF file (" + e.getMessage()
                            + "): delete it to download it again", Llama2jException.BAD_INPUT, e);
                }
                throw e;
            }
        }
        return local;
    }

    /** {@code $XDG_CACHE_HOME/llama2j}, or {@code ~/.cache/llama2j} when that is unset or relative (as the XDG spec says). */
    Path cacheDir() {
        String xdg = env.get("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank() && Path.of(xdg).isAbsolute()) {
            return Path.of(xdg, "llama2j");
        }
        return userHome.resolve(".cache").resolve("llama2j");
    }

    /** The file in the cache, checked; downloaded first if absent. */
    Path ensure(KnownModels.RemoteFile remote, Path cache) {
        Path local = cache.resolve(remote.fileName());
        if (Files.isRegularFile(local)) {
            verify(remote, local);
            return local;
        }
        String url = remote.url(blankToNull(env.get(BASE_URL_ENV)));
        if (log != null) {
            log.println("llama2j: downloading " + url + " to " + local);
            log.flush();
        }
        String sha = new Downloader(log).download(URI.create(url), local, remote.size(), remote.sha256());
        if (remote.sha256() == null) {
            writeSidecar(local, sha);
            if (log != null) {
                log.println("llama2j: no pinned checksum for " + remote.fileName() + "; recorded its SHA-256 " + sha
                        + " in " + sidecar(local).getFileName() + " and will check it on every later use");
                log.flush();
            }
        }
        return local;
    }

    /** Checks a cached file's size and SHA-256 against the pinned values or the recorded sidecar. */
    private void verify(KnownModels.RemoteFile remote, Path local) {
        String name = remote.fileName();
        try {
            long size = Files.size(local);
            if (remote.size() >= 0 && size != remote.size()) {
                throw corrupt(local, "holds " + size + " bytes, expected " + remote.size());
            }
            String expected = remote.sha256();
            Path sidecar = sidecar(local);
            if (expected == null && Files.isRegularFile(sidecar)) {
                expected = readSidecar(sidecar);
            }
            String actual = Downloader.sha256(local);
            if (expected == null) {
                // put there by hand, never downloaded by us: trust it now, check it from now on
                writeSidecar(local, actual);
                return;
            }
            if (!expected.equalsIgnoreCase(actual)) {
                throw corrupt(local, "SHA-256 is " + actual + ", expected " + expected
                        + (remote.sha256() == null ? " (recorded in " + sidecar.getFileName() + " at first download)" : ""));
            }
        } catch (IOException e) {
            throw new Llama2jException(name + ": cannot read cached file " + local + " (" + e + ")", Llama2jException.IO_FAILURE, e);
        }
    }

    private static Llama2jException corrupt(Path local, String why) {
        return new Llama2jException("cached " + local + " " + why + ": delete it to download it again", Llama2jException.IO_FAILURE);
    }

    static Path sidecar(Path local) {
        return local.resolveSibling(local.getFileName() + ".sha256");
    }

    /** The {@code sha256sum} format: hash, two spaces, file name; {@code sha256sum -c} can check it. */
    private static void writeSidecar(Path local, String sha) {
        Path sidecar = sidecar(local);
        AtomicFile.write(sidecar, temp -> {
            Files.writeString(temp, sha + "  " + local.getFileName() + "\n", StandardCharsets.US_ASCII);
            return null;
        });
    }

    private static String readSidecar(Path sidecar) throws IOException {
        String text = Files.readString(sidecar, StandardCharsets.US_ASCII).trim();
        String hash = text.split("\\s+", 2)[0];
        if (!hash.matches("[0-9a-fA-F]{64}")) {
            throw new Llama2jException(sidecar + ": not a SHA-256 line ('" + (text.length() > 40 ? text.substring(0, 40) + "..." : text)
                    + "'): delete it and the model file to download again", Llama2jException.IO_FAILURE);
        }
        return hash;
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s;
    }
}
