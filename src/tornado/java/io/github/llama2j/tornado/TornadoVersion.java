package io.github.llama2j.tornado;

import java.io.IOException;
import java.lang.module.ModuleReference;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Which TornadoVM this JVM runs, for {@code llama2j --version} and {@code llama2j devices}. The project is
 * compiled against the SDK's own {@code share/java/tornado/tornado-api-*.jar} (Maven profile
 * {@code tornadovm}), and TornadoVM runs from the module path its argfile names, so the version is read
 * from that module: its descriptor's version, else the jar's name ({@code tornado-api-5.2.0-jdk25-db146ae.jar}).
 * Nothing here loads a TornadoVM class, so it works in a JVM started without TornadoVM's flags too.
 */
public final class TornadoVersion {
    static final String API_MODULE = "tornado.api";
    private static final String JAR_PREFIX = "tornado-api-";

    private TornadoVersion() {
    }

    /** One line: the TornadoVM version this JVM runs and where from, or why none is loaded. */
    public static String describe() {
        Optional<ModuleReference> loaded = ModuleLayer.boot().configuration().findModule(API_MODULE)
                .map(m -> m.reference());
        if (loaded.isPresent()) {
            ModuleReference ref = loaded.get();
            Optional<Path> jar = ref.location().filter(u -> "file".equals(u.getScheme())).map(Path::of);
            String version = ref.descriptor().rawVersion().or(() -> jar.flatMap(TornadoVersion::fromJarName)).orElse("unknown");
            return "TornadoVM " + version + jar.map(p -> " (" + sdkOf(p) + ")").orElse("");
        }
        String home = System.getenv("TORNADOVM_HOME");
        Optional<String> sdk = home == null ? Optional.empty() : apiJar(Path.of(home)).flatMap(TornadoVersion::fromJarName);
        return "TornadoVM engine built in; TornadoVM not loaded in this JVM"
                + sdk.map(v -> " (SDK at " + home + ": TornadoVM " + v + ")").orElse("");
    }

    /** {@code 5.2.0-jdk25-db146ae} from {@code .../tornado-api-5.2.0-jdk25-db146ae.jar}. */
    static Optional<String> fromJarName(Path jar) {
        String n = jar.getFileName().toString();
        if (n.startsWith(JAR_PREFIX) && n.endsWith(".jar") && n.length() > JAR_PREFIX.length() + 4) {
            return Optional.of(n.substring(JAR_PREFIX.length(), n.length() - 4));
        }
        return Optional.empty();
    }

    /** The SDK's tornado-api jar ({@code share/java/tornado/tornado-api-*.jar}), if there is exactly one. */
    static Optional<Path> apiJar(Path sdk) {
        Path dir = sdk.resolve("share/java/tornado");
        if (!Files.isDirectory(dir)) {
            return Optional.empty();
        }
        Path found = null;
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, JAR_PREFIX + "*.jar")) {
            for (Path p : s) {
                if (p.getFileName().toString().endsWith("-sources.jar")) {
                    continue;
                }
                if (found != null) {
                    return Optional.empty();
                }
                found = p;
            }
        } catch (IOException e) {
            return Optional.empty();
        }
        return Optional.ofNullable(found);
    }

    /** The SDK directory of a jar in {@code SDK/share/java/tornado/}, or the jar's directory. */
    private static Path sdkOf(Path jar) {
        Path dir = jar.getParent();
        Path sdk = dir != null && dir.endsWith(Path.of("share", "java", "tornado")) ? dir.getParent().getParent().getParent() : dir;
        return sdk == null ? jar : sdk;
    }
}
