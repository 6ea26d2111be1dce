package io.github.llama2j.cli;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

class JsonTest {
    @Test
    void writesNestedValuesInOrder() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("s", "a\"b\\c\nd\u0001");
        m.put("i", 42);
        m.put("l", 5_000_000_000L);
        m.put("d", 123.456789);
        m.put("small", 1.5e-5);
        m.put("whole", 2.0);
        m.put("nan", Double.NaN);
        m.put("b", true);
        m.put("n", null);
        m.put("list", List.of(1, "x"));
        m.put("empty", List.of());
        m.put("obj", Map.of());
        assertEquals(String.join("\n", Arrays.asList(
                "{",
                "  \"s\": \"a\\\"b\\\\c\\nd\\u0001\",",
                "  \"i\": 42,",
                "  \"l\": 5000000000,",
                "  \"d\": 123.457,",
                "  \"small\": 1.5e-05,",
                "  \"whole\": 2,",
                "  \"nan\": null,",
                "  \"b\": true,",
                "  \"n\": null,",
                "  \"list\": [",
                "    1,",
                "    \"x\"",
                "  ],",
                "  \"empty\": [],",
                "  \"obj\": {}",
                "}")), Json.write(m));
    }
}
