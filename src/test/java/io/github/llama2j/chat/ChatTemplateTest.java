package io.github.llama2j.chat;

import io.github.llama2j.Llama2jException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** jinjava as configured for Hugging Face chat templates. */
class ChatTemplateTest {
    private static final List<ChatMessage> CHAT = List.of(new ChatMessage("system", "Be brief."),
            new ChatMessage("user", "  Hi {{ 7 * 6 }}  "));

    private static String render(String template, boolean addGenerationPrompt) {
        return new ChatTemplate("test", template, "<s>", "</s>").render(CHAT, addGenerationPrompt);
    }

    @Test
    void jinjaPrecedenceAndWhitespaceAsHuggingFace() {
        // a filter binds tighter than +: only the content is trimmed
        assertEquals("[user|Hi {{ 7 * 6 }}|]", render("{{ '[' + messages[1].role + '|' + messages[1].content | trim + '|]' }}", false));
        // trim_blocks + lstrip_blocks: block lines leave no blank lines or indentation
        assertEquals("system\nuser\n", render("{% for m in messages %}\n    {% if true %}\n{{ m.role }}\n    {% endif %}\n{% endfor %}", false));
        assertEquals("a\nb", render("{{ 'a\\nb' }}", false), "escapes in string literals");
        assertEquals("<s>G", render("{{ bos_token }}{% if add_generation_prompt %}G{% endif %}", true));
        assertEquals("1|system", render("{% set rest = messages[1:] %}{{ rest|length }}|{{ messages[0]['role'] }}", false));
        assertEquals("3", render("{% set ns = namespace(n=1) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", false));
    }

    @Test
    void pythonStringMethodsAndReversedSlices() {
        assertEquals("True|Hi {{ 7 * 6 }}|  Hi|b|x|2", render("{{ messages[1].content.strip().startswith('Hi') }}|"
                + "{{ messages[1].content.strip() }}|{{ messages[1].content.split('{{')[0].rstrip() }}|"
                + "{{ 'a</think>b'.split('</think>')[-1] }}|{{ 'x\n\n'.rstrip('\n') }}|{{ 'a  b '.split()|length }}", false)
                .replace("true", "True"));
        assertEquals("usersystem", render("{% for m in messages[::-1] %}{{ m.role }}{% endfor %}", false));
    }

    @Test
    void contentIsNeverRenderedAsATemplate() {
        assertEquals("  Hi {{ 7 * 6 }}  ", render("{{ messages[1].content }}", false));
    }

    @Test
    void renderPromptDropsTheTemplatesBosWhenTheTokenizerAddsOne() {
        ChatTemplate t = new ChatTemplate("test", "{{ bos_token }}x", "<s>", "</s>");
        assertEquals("x", t.renderPrompt(CHAT, true, true));
        assertEquals("<s>x", t.renderPrompt(CHAT, true, false));
    }

    @Test
    void raiseExceptionAndBadTemplatesAreClearErrors() {
        Llama2jException e = assertThrows(Llama2jException.class,
                () -> render("{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}", false));
        assertTrue(e.getMessage().startsWith("test: chat template failed"), e.getMessage());
        assertTrue(e.getMessage().endsWith("raise_exception: no system role"), e.getMessage()); // the template's own words
        assertThrows(Llama2jException.class, () -> render("{% for m in messages %}", false));
    }

    /** {@link ChatTemplate#requireParses}: syntax errors refused up front, a template's refusal of the probe is not one. */
    @Test
    void brokenTemplatesAreRefusedBeforeTheFirstConversation() {
        for (String broken : new String[]{"{% for m in messages %}{{ m.content }", "{% if %}x{% endif %}", "{% generation %}x{% endgeneration %}",
                "{{ undefined_function(messages) }}"}) {
            ChatTemplate t = new ChatTemplate("test", broken, "<s>", "</s>");
            Llama2jException e = assertThrows(Llama2jException.class, t::requireParses, broken);
            assertTrue(e.getMessage().startsWith("test: chat template does not parse"), e.getMessage());
            assertEquals(Llama2jException.BAD_INPUT, e.exitCode(), e.getMessage());
        }
        new ChatTemplate("test", "{% for m in messages %}[{{ m.role }}]{% endfor %}", "<s>", "</s>").requireParses();
        new ChatTemplate("test", "{% if messages[0].role == 'user' %}{{ raise_exception('system first') }}{% endif %}", "<s>", "</s>")
                .requireParses();
    }

    @Test
    void strftime() {
        LocalDateTime t = LocalDateTime.of(2024, 7, 26, 9, 5, 3);
        assertEquals("26 Jul 2024 09:05:03 %", ChatTemplate.strftime("%d %b %Y %H:%M:%S %%", t));
        assertEquals("Friday, July 26", ChatTemplate.strftime("%A, %B %d", t));
    }

    @Test
    void templateFile(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("t.jinja");
        Files.writeString(f, "{% for m in messages %}[{{ m.role }}]{% endfor %}");
        assertEquals("[system][user]", ChatTemplate.fromFile(f, "<s>", "</s>").render(CHAT, true));
        Llama2jException e = assertThrows(Llama2jException.class, () -> ChatTemplate.fromFile(dir.resolve("nope"), "", ""));
        assertEquals(Llama2jException.BAD_INPUT, e.exitCode());
    }
}
