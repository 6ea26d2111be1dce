package io.github.llama2j.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import io.github.llama2j.Llama2jException;
import io.github.llama2j.gguf.GgufFile;
import io.github.llama2j.tokenizer.GgufTokenizer;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELResolver;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * A model's chat template ({@code tokenizer.chat_template}, a Jinja template written for Hugging Face's
 * {@code apply_chat_template}) rendered with jinjava, configured as close to Jinja as it goes: trim_blocks and
 * lstrip_blocks as Hugging Face sets them, Jinja's operator precedence ({@code a + b | trim} filters {@code b}),
 * no re-rendering of output that looks like a template, Python's string methods ({@link PythonStringMethods}) and
 * reversed slices ({@code x[::-1]}). The template sees {@code messages} (role, content),
 * {@code add_generation_prompt}, {@code bos_token}, {@code eos_token} and the functions {@code raise_exception(msg)}
 * and {@code strftime_now(format)}.
 */
public final class ChatTemplate {
    /** Rendered prompts are small; this bounds what a hostile template can make. */
    private static final long MAX_OUTPUT = 16L << 20;
    private static final Pattern REVERSED_SLICE = Pattern.compile("([A-Za-z_][A-Za-z0-9_.]*)\\[::-1\\]");

    private final String source;
    private final String template;
    /** The template as jinjava gets it: Python's {@code x[::-1]}, which jinjava cannot parse, as {@code (x|reverse)}. */
    private final String jinjaSource;
    private final String bosToken;
    private final String eosToken;
    private final Jinjava jinjava;

    /**
     * @param source   where the template comes from, for errors (a file, or the GGUF key)
     * @param bosToken the text of the BOS token ("" when none); likewise {@code eosToken}
     */
    public ChatTemplate(String source, String template, String bosToken, String eosToken) {
        this.source = source;
        this.template = template;
        this.jinjaSource = REVERSED_SLICE.matcher(template).replaceAll("($1|reverse)");
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withNestedInterpretationEnabled(false)
                .withFailOnUnknownTokens(false)
                .withMaxOutputSize(MAX_OUTPUT)
                .withElResolver(resolver())
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseNaturalOperatorPrecedence(true)
                        .withParseWhitespaceControlStrictly(true)
                        .withHandleBackslashInQuotesOnly(true)
                        .withEvaluateMapKeys(true)
                        .withIterateOverMapKeys(true)
                        .withKeepNullableLoopValues(true)
                        .withAllowAdjacentTextNodes(true)
                        .withUseTrimmingForNotesAndExpressions(true)
                        .withDefaultKeepTrailingNewlineBehavior(true)
                        .build())
                .build();
        this.jinjava = new Jinjava(config);
        jinjava.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class,
                "raiseException", String.class));
        jinjava.getGlobalContext().registerFunction(new ELFunctionDefinition("", "strftime_now", ChatTemplate.class,
                "strftimeNow", String.class));
    }

    /** Python's string methods first, then jinjava's own (read-only) resolver. */
    private static ELResolver resolver() {
        CompositeELResolver r = new CompositeELResolver();
        r.add(new PythonStringMethods());
        r.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        return r;
    }

    /** Reads a template file ({@code --chat-template FILE}). */
    public static ChatTemplate fromFile(Path file, String bosToken, String eosToken) {
        try {
            return new ChatTemplate(file.toString(), Files.readString(file, StandardCharsets.UTF_8), bosToken, eosToken);
        } catch (NoSuchFileException e) {
            throw new Llama2jException(file + ": no such chat template file", Llama2jException.BAD_INPUT);
        } catch (IOException e) {
            throw new Llama2jException(file + ": cannot read chat template (" + e.getMessage() + ")", Llama2jException.IO_FAILURE, e);
        }
    }

    /**
     * A GGUF model's template: {@code override} ({@code --chat-template FILE}) when given, else the file's own
     * {@code tokenizer.chat_template}, else none; {@code bos_token} and {@code eos_token} are the vocabulary's.
     */
    public static Optional<ChatTemplate> forGguf(GgufFile file, GgufTokenizer tokenizer, Path override) {
        String bos = tokenizer.bos() >= 0 ? tokenizer.tokenText(tokenizer.bos()) : "";
        String eos = tokenizer.eos() >= 0 ? tokenizer.tokenText(tokenizer.eos()) : "";
        if (override != null) {
            return Optional.of(fromFile(override, bos, eos));
        }
        return file.optionalString("tokenizer.chat_template")
                .map(text -> new ChatTemplate(file.name() + " (tokenizer.chat_template)", text, bos, eos));
    }

    public String source() {
        return source;
    }

    public String template() {
        return template;
    }

    /** The prompt for {@code messages}, ending with the assistant's header when {@code addGenerationPrompt}. */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> list = new ArrayList<>();
        for (ChatMessage m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            list.add(map);
        }
        RenderResult result = renderForResult(list, addGenerationPrompt, "failed");
        for (TemplateError error : result.getErrors()) {
            if (error.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new Llama2jException(source + ": chat template failed"
                        + (error.getLineno() > 0 ? " at line " + error.getLineno() : "") + ": " + describe(error));
            }
        }
        return result.getOutput();
    }

    /** jinjava's result for these messages; an exception it throws is an error saying the template {@code what}. */
    private RenderResult renderForResult(List<Map<String, Object>> messages, boolean addGenerationPrompt, String what) {
        Map<String, Object> bindings = new LinkedHashMap<>();
        bindings.put("messages", messages);
        bindings.put("add_generation_prompt", addGenerationPrompt);
        bindings.put("bos_token", bosToken);
        bindings.put("eos_token", eosToken);
        try {
            return jinjava.renderForResult(jinjaSource, bindings);
        } catch (RuntimeException e) {
            throw new Llama2jException(source + ": chat template " + what + ": " + rootMessage(e));
        }
    }

    /**
     * Throws (exit 2, naming the template and the line) if the template does not parse: a missing end tag, an unknown
     * tag, a malformed expression; found by rendering a one-message conversation ({@code user: "Hello"}), which also
     * catches an unknown function or filter on the path that conversation takes. For commands that will chat (serve,
     * {@code run -m chat}), so that a broken template is refused at start-up, not at the first request; a model
     * whose own template is broken still loads and generates. A template that refuses the probe conversation with
     * {@code raise_exception} passes: only the template's syntax is judged here.
     */
    public void requireParses() {
        RenderResult result = renderForResult(List.of(Map.of("role", "user", "content", "Hello")), true, "does not parse");
        for (TemplateError error : result.getErrors()) {
            if (error.getSeverity() == TemplateError.ErrorType.FATAL && error.getReason() == TemplateError.ErrorReason.SYNTAX_ERROR
                    && raised(error) == null) { // (jinjava files the template's own raise_exception as a syntax error too)
                throw new Llama2jException(source + ": chat template does not parse"
                        + (error.getLineno() > 0 ? " (line " + error.getLineno() + ")" : "") + ": " + error.getMessage());
            }
        }
    }

    /**
     * The prompt to tokenize: {@link #render}, without the leading BOS text when the tokenizer adds BOS itself
     * (templates such as Llama 3's write {@code bos_token}; llama.cpp's chat code drops it the same way, so the
     * prompt does not start with two BOS tokens).
     */
    public String renderPrompt(List<ChatMessage> messages, boolean addGenerationPrompt, boolean tokenizerAddsBos) {
        String text = render(messages, addGenerationPrompt);
        if (tokenizerAddsBos && !bosToken.isEmpty() && text.startsWith(bosToken)) {
            return text.substring(bosToken.length());
        }
        return text;
    }

    /**
     * A fatal error's message; for the template's own {@code raise_exception(msg)}, which jinjava reports only as
     * "Error invoking function 'raise_exception'", the template's message (templates use it to say what is wrong with
     * the conversation: "Conversation roles must alternate user/assistant/...").
     */
    private static String describe(TemplateError error) {
        TemplateException raised = raised(error);
        return raised != null ? "raise_exception: " + raised.getMessage() : error.getMessage();
    }

    /** The template's own {@code raise_exception} behind {@code error}, or null. */
    private static TemplateException raised(TemplateError error) {
        for (Throwable t = error.getException(); t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof TemplateException raised) {
                return raised;
            }
        }
        return null;
    }

    private static String rootMessage(Throwable e) {
        while (e.getCause() != null && e.getCause() != e) {
            e = e.getCause();
        }
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    /** Hugging Face's {@code raise_exception}: templates call it to refuse a conversation. */
    public static String raiseException(String message) {
        throw new TemplateException(message);
    }

    /** Hugging Face's {@code strftime_now}: the local time in strftime format (common fields only). */
    public static String strftimeNow(String format) {
        return strftime(format, LocalDateTime.now());
    }

    static String strftime(String format, LocalDateTime t) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) {
                sb.append(c);
                continue;
            }
            char f = format.charAt(++i);
            switch (f) {
                case 'd' -> sb.append(String.format(Locale.ROOT, "%02d", t.getDayOfMonth()));
                case 'm' -> sb.append(String.format(Locale.ROOT, "%02d", t.getMonthValue()));
                case 'Y' -> sb.append(t.getYear());
                case 'y' -> sb.append(String.format(Locale.ROOT, "%02d", t.getYear() % 100));
                case 'H' -> sb.append(String.format(Locale.ROOT, "%02d", t.getHour()));
                case 'M' -> sb.append(String.format(Locale.ROOT, "%02d", t.getMinute()));
                case 'S' -> sb.append(String.format(Locale.ROOT, "%02d", t.getSecond()));
                case 'b' -> sb.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> sb.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'a' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'j' -> sb.append(String.format(Locale.ROOT, "%03d", t.getDayOfYear()));
                case '%' -> sb.append('%');
                default -> sb.append('%').append(f);
            }
        }
        return sb.toString();
    }

    /** What {@code raise_exception} throws. */
    static final class TemplateException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        TemplateException(String message) {
            super(message);
        }
    }
}
