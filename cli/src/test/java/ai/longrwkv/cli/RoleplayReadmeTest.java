package ai.longrwkv.cli;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16: the README's "Roleplay finetune" recipe works. Its second bash block (rwkv.cpp's tiny model from
 * shared/oracle, the example PIPPA file) is run line by line exactly as written (the paths moved to a temporary
 * directory and the oracle); its first block (the real 128k run) must use the same commands with
 * the same options, so that it cannot drift from what was run.
 */
class RoleplayReadmeTest {
    static Path root;
    static List<List<String>> real, small;

    @BeforeAll
    static void read() throws Exception {
        for (Path dir = Paths.get("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("README.md")) && Files.isRegularFile(dir.resolve("datasets/examples/pippa-sample.jsonl"))) {
                root = dir;
                break;
            }
        }
        Assumptions.assumeTrue(root != null, "README.md not found");
        String readme = Files.readString(root.resolve("README.md"));
        int at = readme.indexOf("\n## Roleplay finetune\n");
        assertTrue(at >= 0, "the README has a Roleplay finetune section");
        String section = readme.substring(at, readme.indexOf("\n## ", at + 5));
        Matcher block = Pattern.compile("(?s)```bash\n(.*?)```").matcher(section);
        assertTrue(block.find(), "the real run");
        real = commands(block.group(1));
        assertTrue(block.find(), "the small run");
        small = commands(block.group(1));
    }

    /** The `longrwkv ...` lines of a block, split as a shell would (single and double quotes). */
    static List<List<String>> commands(String block) {
        List<List<String>> out = new ArrayList<>();
        for (String line : block.replace("\\\n", " ").split("\n")) {
            if (!line.startsWith("longrwkv ")) continue;
            List<String> words = new ArrayList<>();
            StringBuilder w = new StringBuilder();
            char quote = 0;
            boolean inWord = false;
            for (char c : line.toCharArray()) {
                if (quote != 0) {
                    if (c == quote) quote = 0;
                    else w.append(c);
                } else if (c == '\'' || c == '"') {
                    quote = c;
                    inWord = true;
                } else if (c == ' ') {
                    if (inWord) words.add(w.toString());
                    w.setLength(0);
                    inWord = false;
                } else {
                    w.append(c);
                    inWord = true;
                }
            }
            if (inWord) words.add(w.toString());
            out.add(words.subList(1, words.size()));
        }
        return out;
    }

    /** The subcommand words (before the first option) and the option names of a command. */
    static String shape(List<String> cmd) {
        StringBuilder sub = new StringBuilder();
        Set<String> options = new LinkedHashSet<>();
        for (String w : cmd) {
            if (w.startsWith("--")) options.add(w);
            else if (options.isEmpty()) sub.append(w).append(' ');
        }
        return sub + String.join(" ", options);
    }

    @Test
    void theRealRunUsesTheCommandsAndOptionsOfTheSmallOne() {
        List<String> smallShapes = new ArrayList<>();
        for (List<String> c : small) smallShapes.add(shape(c));
        List<String> realShapes = new ArrayList<>();
        for (List<String> c : real) realShapes.add(shape(c));
        assertEquals(smallShapes, realShapes);
        assertTrue(String.join(" ", real.get(1)).contains("--seq-len 128k") && String.join(" ", real.get(2)).contains("--ctx-len 131072"),
                "the real run is at 128k");
    }

    @Test
    void theSmallRunRunsAsWritten(@TempDir Path dir) throws Exception {
        System.setProperty("longrwkv.noProgress", "true");
        Path oracle = CliTestSupport.oracle("tiny-rwkv-5v2-730K-FP32.bin");   // skips the test when ../shared/oracle is not there
        for (List<String> cmd : small) {
            String[] args = cmd.stream().map(w -> w.replace("rp-demo/", dir + "/").replace("datasets/examples/", root + "/datasets/examples/")
                    .replace("../shared/oracle/tiny-rwkv-5v2-730K-FP32.bin", oracle.toString())).toArray(String[]::new);
            CliTestSupport.Run r = CliTestSupport.run(args);
            assertEquals(0, r.exitCode(), String.join(" ", cmd) + "\n" + r.err());
        }
        for (String f : List.of("pippa.bin", "pippa-1k.segments", "lora/lora-final.pth", "lora.pth", "state/state-final.pth",
                "eval-lora/heatmap.png", "eval-state/summary.csv")) {
            assertTrue(Files.isRegularFile(dir.resolve(f)), f);
        }
        // the state-tune moved the state: a trained model passes gradient to its initial state
        String log = Files.readString(dir.resolve("state/metrics.jsonl"));
        assertTrue(!log.contains("\"grad_norm\":0.0,"), log);
        String meta = Files.readString(dir.resolve("pippa-1k.meta.json"));
        assertTrue(meta.contains("\"state_at_document_boundary\": \"reset\"") || meta.contains("\"state_at_document_boundary\":\"reset\""), meta);
    }
}
