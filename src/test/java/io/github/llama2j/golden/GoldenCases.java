package io.github.llama2j.golden;

import io.github.llama2j.Json;
import io.github.llama2j.TestData;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/** llama2.c's recorded runs (shared/golden/generate/*.json), one record per case and model file. */
record GoldenCases(String model, Map<String, Object> file) {

    static final List<String> MODELS = List.of("stories260K", "tiny", "tiny_unshared", "vocab32k",
            "tiny_q80", "tiny_unshared_q80", "vocab32k_q80");

    static GoldenCases load(String model) {
        return new GoldenCases(model, Json.read(TestData.golden().resolve("generate").resolve(model + ".json")));
    }

    /** The model file and its twins that must give the same outputs (tiny_v1.bin for tiny.bin, ...). */
    @SuppressWarnings("unchecked")
    List<String> modelFiles() {
        List<String> files = new ArrayList<>();
        files.add((String) file.get("model"));
        Object twins = file.get("same_expected_outputs_for");
        if (twins instanceof List<?> l) {
            for (Object t : l) {
                files.add((String) t);
            }
        }
        return files;
    }

    boolean quantized() {
        return "runq".equals(file.get("program"));
    }

    @SuppressWarnings("unchecked")
    List<Case> cases() {
        List<Case> out = new ArrayList<>();
        for (Object o : (List<Object>) file.get("cases")) {
            out.add(new Case((Map<String, Object>) o));
        }
        return out;
    }

    record Case(Map<String, Object> json) {
        String id() {
            return (String) json.get("id");
        }

        @SuppressWarnings("unchecked")
        List<String> argv() {
            return (List<String>) json.get("argv");
        }

        /** argv with model and tokenizer paths made absolute, and {@code modelFile} in place of the model. */
        List<String> argv(Path models, String modelFile) {
            List<String> a = new ArrayList<>(argv());
            a.set(0, models.resolve(modelFile).toString());
            for (int k = 1; k < a.size() - 1; k++) {
                if (a.get(k).equals("-z")) {
                    a.set(k + 1, models.resolve(a.get(k + 1)).toString());
                }
            }
            return a;
        }

        @SuppressWarnings("unchecked")
        Map<String, Object> effective() {
            return (Map<String, Object>) json.get("effective");
        }

        /** The raw option strings as given on llama2.c's command line (prompt, system_prompt, ...). */
        @SuppressWarnings("unchecked")
        Map<String, Object> args() {
            return (Map<String, Object>) json.get("args");
        }

        String stdin() {
            Object s = json.get("stdin");
            return s == null ? "" : (String) s;
        }

        byte[] stdout() {
            return Base64.getDecoder().decode((String) json.get("stdout_base64"));
        }

        boolean allBuildsAgree() {
            return Boolean.TRUE.equals(json.get("all_builds_agree"));
        }

        /** Where -Ofast builds of llama2.c first print something else; -1 when all builds agree. */
        int firstDifferingByte() {
            Object o = json.get("first_differing_stdout_byte");
            return o == null ? -1 : ((Number) o).intValue();
        }

        boolean chat() {
            return "chat".equals(effective().get("mode"));
        }
    }
}
