package io.github.llama2j.hybrid;

import io.github.llama2j.TestData;
import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.ModelLoader;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Test models and hybrid engines shared by every test class of the test JVM: building a hybrid engine
 * JIT-compiles its device graphs (PoCL: a fraction of a second per task), so each (model, split) is built
 * once. The device is TornadoVM's default (PoCL's CPU device here); the host side uses 1 thread.
 */
final class HybridTestEngines {
    private static final Map<String, Model> MODELS = new LinkedHashMap<>();
    private static final Map<String, HybridEngine> ENGINES = new LinkedHashMap<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(HybridTestEngines::closeAll));
    }

    private HybridTestEngines() {
    }

    static synchronized Model model(String file) {
        return MODELS.computeIfAbsent(file, f -> ModelLoader.load(TestData.model(f)));
    }

    static EngineOptions options(double split, boolean exact) {
        return new EngineOptions("hybrid", 1, exact, null, split, false, false);
    }

    /** The shared engine for a model and the device's fraction of attention heads, FFN rows and classifier rows. */
    static synchronized HybridEngine engine(String file, double attention, double ffn, double classifier) {
        String key = String.format(Locale.ROOT, "%s %.4f %.4f %.4f", file, attention, ffn, classifier);
        HybridEngine e = ENGINES.get(key);
        if (e == null) {
            e = HybridEngineProvider.create(model(file), options(attention, false), null, null, attention, ffn, classifier);
            ENGINES.put(key, e);
        }
        e.reset();
        return e;
    }

    static HybridEngine engine(String file, double split) {
        return engine(file, split, split, split);
    }

    private static synchronized void closeAll() {
        ENGINES.values().forEach(HybridEngine::close);
        MODELS.values().forEach(Model::close);
    }
}
