package ai.longrwkv.cli;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 6, test 4 (generate): deterministic at temperature 0, stops where asked, only text on stdout. */
class GenerateCommandTest {
    @TempDir
    static Path dir;
    static Path model;

    @BeforeAll
    static void tinyModel() {
        model = dir.resolve("tiny.safetensors");
        EvalTestModels.write(model, 8);
    }

    /** generate with this test's prompt and 40 tokens unless {@code extra} says otherwise; returns stdout. */
    static String generate(String... extra) {
        List<String> args = new ArrayList<>(List.of("generate", "--model", model.toString(), "--prompt", "Once upon a time"));
        if (!List.of(extra).contains("--max-tokens")) args.addAll(List.of("--max-tokens", "40"));
        args.addAll(List.of(extra));
        CliTestSupport.Run r = CliTestSupport.run(args.toArray(new String[0]));
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.err().contains("tokens/s"), "statistics go to stderr: " + r.err());
        return r.out();
    }

    @Test
    void greedyIsDeterministicAndOnlyTheTextGoesToStdout() {
        String a = generate("--temperature", "0");
        assertEquals(a, generate("--temperature", "0", "--seed", "77"), "greedy ignores the seed");
        assertEquals(a, generate("--temperature", "0", "--chunk-len", "3"), "chunked prefill does not change the result");
        assertTrue(a.length() > 0 && !a.contains("tokens/s"));
        String s1 = generate("--temperature", "1", "--top-p", "1", "--seed", "3");
        assertEquals(s1, generate("--temperature", "1", "--top-p", "1", "--seed", "3"), "same seed, same text");
        assertNotEquals(s1, generate("--temperature", "1", "--top-p", "1", "--seed", "4"));
    }

    @Test
    void stopsAtTheStopStringAndTheTokenLimit() {
        String full = generate("--temperature", "0");
        // a stop string taken from the greedy text itself: the output is the text before its first occurrence
        int at = -1;
        for (int i = 3; i < full.length(); i++) {
            if (full.charAt(i) != '\uFFFD' && !Character.isSurrogate(full.charAt(i))) {
                at = i;
                break;
            }
        }
        assertTrue(at > 0, "greedy text has a plain character to stop at: " + full);
        String stop = String.valueOf(full.charAt(at));
        assertEquals(full.substring(0, full.indexOf(stop)), generate("--temperature", "0", "--stop", stop));
        String five = generate("--temperature", "0", "--max-tokens", "5");
        assertTrue(full.startsWith(five.replace("\uFFFD", "")) || five.contains("\uFFFD"), five + " vs " + full);
    }

    @Test
    void promptFromAFileAndClearErrors() throws Exception {
        Path p = dir.resolve("prompt.txt");
        Files.writeString(p, "Once upon a time");
        assertEquals(generate("--temperature", "0"), CliTestSupport.run("generate", "--model", model.toString(), "--prompt-file", p.toString(),
                "--max-tokens", "40", "--temperature", "0").out());
        CliTestSupport.Run r = CliTestSupport.run("generate", "--model", model.toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--prompt"), r.err());
        r = CliTestSupport.run("generate", "--model", model.toString(), "--prompt", "x", "--temperature", "-1");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--temperature"), r.err());
        r = CliTestSupport.run("generate", "--model", model.toString(), "--prompt-file", dir.resolve("none.txt").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("none.txt"), r.err());
    }
}
