package io.github.llama2j.tornado;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.engine.Engines;
import io.github.llama2j.engine.InferenceEngine;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;
import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Test data (only through LLAMA2J_TEST_MODELS / LLAMA2J_TEST_GOLDEN) and one TornadoVM engine per model
 * for the whole test JVM: JIT-compiling a forward graph on PoCL takes about half a second per task, so
 * every test class shares the engines built here (surefire runs them all in one fork). Engines are made
 * through {@link Engines#create}, i.e. through the ServiceLoader provider, as the CLI makes them.
 */
final class TestEngines {
    private static final Map<String, Model> MODELS = new LinkedHashMap<>();
    private static final Map<String, TornadoEngine> ENGINES = new LinkedHashMap<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(TestEngines::closeAll));
    }

    private TestEngines() {
    }

    static Path models() {
        return dir("LLAMA2J_TEST_MODELS");
    }

    static Path golden() {
        return dir("LLAMA2J_TEST_GOLDEN");
    }

    /** ../shared/gguf (GGUF models, vocabularies and llama.cpp's outputs). */
    static Path gguf() {
        return dir("LLAMA2J_TEST_GGUF");
    }

    private static Path dir(String var) {
        String v = System.getenv(var);
        boolean required = "true".equals(System.getenv("LLAMA2J_REQUIRE_TEST_DATA"));
        if (v == null || !Files.isDirectory(Path.of(v))) {
            if (required) {
                throw new IllegalStateException(var + " is " + v + ", not a directory, and LLAMA2J_REQUIRE_TEST_DATA=true");
            }
            Assumptions.abort(var + " not set: test data unavailable");
        }
        return Path.of(v);
    }

    static synchronized Model model(String file) {
        return MODELS.computeIfAbsent(file, f -> ModelLoader.load(models().resolve(f)));
    }

    /** The shared TornadoVM engine for a model file (built, compiled and verified on first use). */
    static synchronized TornadoEngine engine(String file) {
        TornadoEngine e = ENGINES.get(file);
        if (e == null) {
            InferenceEngine made = Engines.create(model(file), new EngineOptions("tornado", 1, false, null, Double.NaN, false, false));
            e = (TornadoEngine) made;
            ENGINES.put(file, e);
        }
        e.reset();
        return e;
    }

    /**
     * The settings of the split-attention engines: at most 4 work-groups per head, chunks of at least 8 positions,
     * so positions 8 .. 31 use 2 to 4 chunks and later ones 4 longer chunks (the golden cases run to seq_len).
     */
    static TornadoSettings splitSettings() {
        return TornadoSettings.load("CPU").withAttentionSplit(4, 8);
    }

    /** A shared TornadoVM engine for a model file with the attention split ({@link #splitSettings}). */
    static synchronized TornadoEngine splitEngine(String file) {
        TornadoEngine e = ENGINES.get("split:" + file);
        if (e == null) {
            e = new TornadoEngine(model(file), new EngineOptions("tornado", 1, false, null, Double.NaN, false, false), splitSettings());
            ENGINES.put("split:" + file, e);
        }
        e.reset();
        return e;
    }

    private static synchronized void closeAll() {
        ENGINES.values().forEach(TornadoEngine::close);
        MODELS.values().forEach(Model::close);
    }
}
