package io.github.llama2j.generate;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** run.c's Llama 2 chat template for one user turn: {@code [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]}. */
public final class Llama2Chat {
    private Llama2Chat() {
    }

    /**
     * The text of a user turn, as run.c's chat() renders it before encoding it (with BOS).
     *
     * @param system the system prompt, or empty/null for none (run.c gives it only on the first turn)
     */
    public static byte[] userTurn(byte[] system, byte[] user) {
        ByteArrayOutputStream rendered = new ByteArrayOutputStream();
        if (system != null && system.length > 0) {
            rendered.writeBytes("[INST] <<SYS>>\n".getBytes(StandardCharsets.US_ASCII));
            rendered.writeBytes(system);
            rendered.writeBytes("\n<</SYS>>\n\n".getBytes(StandardCharsets.US_ASCII));
        } else {
            rendered.writeBytes("[INST] ".getBytes(StandardCharsets.US_ASCII));
        }
        rendered.writeBytes(user);
        rendered.writeBytes(" [/INST]".getBytes(StandardCharsets.US_ASCII));
        return rendered.toByteArray();
    }
}
