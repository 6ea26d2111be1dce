package io.github.llama2j.tornado;

import io.github.llama2j.engine.EngineOptions;
import io.github.llama2j.model.Configuration;
import io.github.llama2j.model.Model;
import io.github.llama2j.model.Weights;

/** For tests outside this package: a TornadoVM engine with batched prefill graphs of a given chunk, and their memory budget. */
public final class ChunkedEngines {
    private ChunkedEngines() {
    }

    /** A TornadoVM engine on the default device whose prefill graphs take {@code chunk} tokens (0: token by token). */
    public static TornadoEngine engine(Model model, int chunk) {
        EngineOptions options = new EngineOptions("tornado", 1, false, null, Double.NaN, false, false);
        return new TornadoEngine(DeviceSession.open(null), model, options, null, chunk);
    }

    /** What {@link MemoryBudget} adds for prefill graphs of {@code chunk} tokens (0 where the model has none). */
    public static long prefillBudget(Configuration c, Weights w, int chunk) {
        return MemoryBudget.of(c, w, chunk).activations() - MemoryBudget.of(c, w, 0).activations();
    }

    /** {@link PrefillGraph#supports}: whether the engine prefills these weights in chunks. */
    public static boolean supports(Configuration c, Weights w) {
        return PrefillGraph.supports(c, w);
    }
}
