package ai.longrwkv.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** One spelling across commands (older ones kept): --max-new-tokens, --model for inspect; no \r redraws into files. */
class OptionSpellingsTest {
    @TempDir
    Path dir;

    @Test
    void generateTakesMaxNewTokensLikeEvalAndKeepsMaxTokens() {
        Path model = dir.resolve("tiny.safetensors");
        EvalTestModels.write(model, 8);
        String[] base = {"generate", "--model", model.toString(), "--prompt", "Once upon a time", "--temperature", "0"};
        CliTestSupport.Run a = CliTestSupport.run(concat(base, "--max-new-tokens", "7"));
        CliTestSupport.Run b = CliTestSupport.run(concat(base, "--max-tokens", "7"));
        assertEquals(0, a.exitCode(), a.err());
        assertEquals(a.out(), b.out());
        CliTestSupport.Run bad = CliTestSupport.run(concat(base, "--max-new-tokens", "-1"));
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().startsWith("error: --max-new-tokens must be >= 0"), bad.err());
    }

    @Test
    void inspectTakesModelLikeTheOtherCommandsAndConvertDrawsNoCarriageReturnsIntoAFile() {
        Path model = dir.resolve("m.safetensors");
        EvalTestModels.write(model, 8);
        CliTestSupport.Run positional = CliTestSupport.run("inspect", model.toString());
        CliTestSupport.Run option = CliTestSupport.run("inspect", "--model", model.toString());
        assertEquals(0, option.exitCode(), option.err());
        assertEquals(positional.out(), option.out());
        CliTestSupport.Run both = CliTestSupport.run("inspect", model.toString(), "--model", model.toString());
        assertEquals(2, both.exitCode());
        assertTrue(both.err().startsWith("error: give the file to inspect once"), both.err());
        CliTestSupport.Run convert = CliTestSupport.run("convert", model.toString(), dir.resolve("m.pth").toString());
        assertEquals(0, convert.exitCode(), convert.err());
        assertFalse(convert.err().contains("\r"), "stderr is not a terminal here: no redraws: " + convert.err());
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
