package ai.longrwkv.cli;

import com.google.gson.JsonParser;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 13, item 3: the same thing has the same option name everywhere; the old spellings still work. */
class OptionNamesTest {
    @TempDir
    static Path dir;
    static Path model;

    @BeforeAll
    static void tinyModel() {
        System.setProperty("longrwkv.noProgress", "true");
        model = dir.resolve("tiny.safetensors");
        EvalTestModels.write(model, 5);
    }

    @Test
    void benchTokenizerTakesTokenizerWorldPathLikeEveryOtherCommandAndStillTakesVocab() {
        Path vocab = CliTestSupport.oracle("rwkv_vocab_v20230424.txt");
        CliTestSupport.Run r = CliTestSupport.run("bench", "tokenizer", "--tokenizer", "world:" + vocab, "--mb", "0.02", "--reps", "1");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("round trip exact"), r.out());
        r = CliTestSupport.run("bench", "tokenizer", "--vocab", vocab.toString(), "--mb", "0.02", "--reps", "1");
        assertEquals(0, r.exitCode(), r.err());
        String help = CliTestSupport.run("bench", "tokenizer", "--help").out();
        assertTrue(help.contains("--tokenizer=world:PATH"), help);
        assertFalse(help.contains("--vocab"), "the old name is a hidden alias:\n" + help);
        r = CliTestSupport.run("bench", "tokenizer", "--tokenizer", "bytes");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("error: --tokenizer must be world:PATH"), r.err());
        r = CliTestSupport.run("bench", "tokenizer");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--tokenizer world:PATH"), r.err());
    }

    @Test
    void evalTakesGeneratesMaxTokensAsWellAsMaxNewTokens() throws Exception {
        for (String name : new String[]{"--max-tokens", "--max-new-tokens"}) {
            Path out = dir.resolve("pk" + name);
            CliTestSupport.Run r = CliTestSupport.run("eval", "passkey", "--model", model.toString(), "--lengths", "300", "--depths", "50",
                    "--trials", "1", name, "3", "--chunk-len", "64", "--out", out.toString());
            assertEquals(0, r.exitCode(), r.err());
            String json = Files.readString(out.resolve("run.json"));
            assertEquals(3, JsonParser.parseString(json).getAsJsonObject().get("max_new_tokens").getAsInt(), json);
        }
        CliTestSupport.Run r = CliTestSupport.run("eval", "niah", "--model", model.toString(), "--lengths", "300", "--max-tokens", "0",
                "--out", dir.resolve("n").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--max-tokens"), r.err());
    }
}
