package io.github.llama2j;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every relative link and anchor in README.md, CONTRIBUTING.md and docs/**.md resolves. */
class DocLinksTest {

    @Test
    void everyRelativeLinkAndAnchorInTheDocumentationResolves() {
        Path root = Path.of("").toAbsolutePath();
        assertTrue(Files.isRegularFile(root.resolve("README.md")), "run from the repository root: " + root);
        List<Path> docs = DocLinks.documents(root);
        assertTrue(docs.size() >= 3, "README, CONTRIBUTING and docs/: " + docs);
        List<String> broken = DocLinks.brokenLinks(root, docs);
        assertEquals(List.of(), broken, () -> broken.size() + " broken link(s):\n" + String.join("\n", broken));
    }

    /** The checker itself: on a sample with known broken links it reports exactly those. */
    @Test
    void reportsMissingFilesAndAnchorsAndNothingElse(@TempDir Path root) throws IOException {
        Files.createDirectories(root.resolve("docs/sub"));
        Files.writeString(root.resolve("docs/sub/deep.md"), """
                # Deep page: `--engine tornado`
                ## Repeat
                ## Repeat
                ```
                ## Not a heading
                ```
                """);
        Files.writeString(root.resolve("docs/pic.png"), "x");
        Files.writeString(root.resolve("README.md"), """
                # Title
                ## Run options
                See [ok](docs/sub/deep.md), [ok anchor](docs/sub/deep.md#deep-page---engine-tornado),
                [second repeat](docs/sub/deep.md#repeat-1) and ![image](docs/pic.png "a title") and [here](#run-options).
                A directory: [docs](docs/sub). Absolute: [web](https://example.org/missing), <https://example.org>.
                Broken: [gone](docs/missing.md), ![gone image](docs/missing.png), [bad anchor](docs/sub/deep.md#nope),
                [fenced heading](docs/sub/deep.md#not-a-heading), [no repeat 2](docs/sub/deep.md#repeat-2), [self](#title-1).
                `[in code](nowhere.md)` is code.
                <!-- [in a comment](nowhere.md) -->
                ```
                [in a block](nowhere.md)
                ```
                [ref]: docs/also-missing.md
                """);
        List<String> broken = DocLinks.brokenLinks(root, DocLinks.documents(root));
        assertEquals(List.of(
                "README.md:6: docs/missing.md (no such file: " + root.resolve("docs/missing.md") + ")",
                "README.md:6: docs/missing.png (no such file: " + root.resolve("docs/missing.png") + ")",
                "README.md:6: docs/sub/deep.md#nope (no heading with id 'nope' in deep.md)",
                "README.md:7: docs/sub/deep.md#not-a-heading (no heading with id 'not-a-heading' in deep.md)",
                "README.md:7: docs/sub/deep.md#repeat-2 (no heading with id 'repeat-2' in deep.md)",
                "README.md:7: #title-1 (no heading with id 'title-1' in README.md)",
                "README.md:13: docs/also-missing.md (no such file: " + root.resolve("docs/also-missing.md") + ")"), broken);
    }

    /** GitHub's heading ids, on headings of the kinds these documents have. */
    @Test
    void headingIdsFollowGitHub() {
        assertEquals("the-tornadovm-engine---engine-tornado", DocLinks.slug("The TornadoVM engine (`--engine tornado`)"));
        assertEquals("start-up---verbose", DocLinks.slug("Start-up: --verbose"));
        assertEquals("scriptsgpu-check", DocLinks.slug("scripts/gpu-check"));
        assertEquals("hugging-face-files-hfownerrepofile", DocLinks.slug("Hugging Face files: `hf:OWNER/REPO/FILE`"));
        assertEquals("settings-tornado-config", DocLinks.slug("Settings: tornado-config/"));
        assertEquals("test_data-über-1", DocLinks.slug("Test_data Über 1"));
        assertEquals("see-the-docs", DocLinks.slug("See [the docs](docs/x.md)"));
        assertEquals(List.of("a", "a-1", "a-2", "b"), List.copyOf(DocLinks.headingIds(List.of("# A", "## A", "### A #", "text", "#B", "# B"))));
    }
}
