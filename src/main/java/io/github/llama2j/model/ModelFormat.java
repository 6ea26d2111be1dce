package io.github.llama2j.model;

/** The three llama2.c checkpoint layouts, and GGUF. */
public enum ModelFormat {
    /** run.c's legacy export: 7 int32 header, float32 tensors, freq_cis tables, negative vocab = unshared classifier. */
    LEGACY_V0("v0 (legacy float32)"),
    /** export.py --version 1: 256-byte "ak42" header, float32 tensors. */
    V1_F32("v1 (float32)"),
    /** export.py --version 2: 256-byte header, Q8_0 tensors (int8 values, float32 scale per group), as runq.c reads. */
    V2_Q8("v2 (Q8_0)"),
    /** llama.cpp's GGUF (v2, v3): metadata key/values, then tensors of GGML types. */
    GGUF("GGUF");

    private final String description;

    ModelFormat(String description) {
        this.description = description;
    }

    public String description() {
        return description;
    }
}
