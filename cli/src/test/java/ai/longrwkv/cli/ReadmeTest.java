package ai.longrwkv.cli;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 13, item 5: what the README tells a new user matches what the tool and the demo do. */
class ReadmeTest {
    static Path root;
    static String readme;
    static String demo;

    @BeforeAll
    static void read() throws Exception {
        for (Path dir = Paths.get("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("README.md")) && Files.isRegularFile(dir.resolve("scripts/demo.sh"))) {
                root = dir;
                break;
            }
        }
        Assumptions.assumeTrue(root != null, "README.md not found");
        readme = Files.readString(root.resolve("README.md"));
        demo = Files.readString(root.resolve("scripts/demo.sh"));
    }

    @Test
    void commandsToCopyAreNotBrokenAcrossLines() {
        // inline code spans that hold a command stay on one line; a quote opened in a command closes on its line
        Matcher m = Pattern.compile("`([^`]+)`").matcher(readme.replaceAll("(?s)```.*?```", ""));
        while (m.find()) {
            String span = m.group(1);
            if (span.startsWith("scripts/") && span.contains("'")) assertFalse(span.contains("\n"), "broken command: " + span);
        }
        Matcher block = Pattern.compile("(?s)```bash\n(.*?)```").matcher(readme);
        while (block.find()) {
            for (String line : block.group(1).split("\n")) {
                String code = line.replaceAll("#.*", "");
                assertEquals(0, code.chars().filter(c -> c == '\'').count() % 2, "unclosed quote: " + line);
            }
        }
    }

    @Test
    void checkpointDirectoriesAreNamedAsTheTrainerNamesThem() {
        assertFalse(readme.contains("step-N"), "checkpoints are step-%08d");
        assertTrue(readme.contains(String.format("checkpoints/step-%08d/", 50)), "the README shows a checkpoint name");
    }

    @Test
    void theDemoTableHasTheRowsTheDemoPrints() {
        for (String model : List.of("untrained", "truncated", "full")) {
            assertTrue(Pattern.compile("(?m)^" + model + " accuracy {2,}( {5}\\d\\.\\d\\d){4}$").matcher(readme).find(),
                    model + " accuracy row as the demo prints it");
            assertTrue(Pattern.compile("(?m)^" + model + " answer loss {2,}( {4}\\d\\.\\d{3}){4}$").matcher(readme).find(),
                    model + " answer loss row as the demo prints it");
            assertTrue(demo.contains("\"$model accuracy\"") && demo.contains("\"$model answer loss\""), "the demo prints these rows");
        }
        assertTrue(readme.contains("done in "), "the README quotes the demo's own timing line");
        assertTrue(readme.contains("deterministic"), "the README says whether the demo is deterministic");
    }

    @Test
    void theDemoSaysHowLongItTakes() {
        assertFalse(demo.contains("ten minutes"), "it takes about 2.5 minutes on 2 cores");
        assertTrue(demo.contains("two to three minutes") && demo.contains("measured on 2 cores"), "the header says how long it takes");
    }

    @Test
    void theProgressSwitchIsDocumentedAsItWorks() {
        assertTrue(readme.contains("`LONGRWKV_NO_PROGRESS=1` (or `true`, `yes`) turns them off; `0`, `false` or empty leave them on"));
    }
}
