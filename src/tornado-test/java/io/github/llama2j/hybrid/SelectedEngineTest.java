package io.github.llama2j.hybrid;

import io.github.llama2j.engine.InferenceEngine;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link SelectedEngine} wraps the engine auto chose: every default method of {@link InferenceEngine} (batched
 * prefill, profiler, launches, reset ...) must reach the chosen engine, or the wrapper silently runs the
 * default instead (e.g. a one-token prefill loop in place of the CPU engine's batched one).
 */
class SelectedEngineTest {
    @Test
    void passesOnEveryDefaultMethodOfTheEngineSeam() throws Exception {
        List<String> missing = new ArrayList<>();
        for (Method m : InferenceEngine.class.getMethods()) {
            if (!m.isDefault() || Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            if (m.getName().equals("selection")) {
                continue; // the wrapper's own: the reason it was chosen
            }
            Method impl = SelectedEngine.class.getMethod(m.getName(), m.getParameterTypes());
            if (impl.getDeclaringClass() != SelectedEngine.class) {
                missing.add(m.getName());
            }
        }
        assertEquals(List.of(), missing, "SelectedEngine does not pass these on to the chosen engine");
    }
}
