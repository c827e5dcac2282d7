package ai.longrwkv.cli;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 16 through the command line: templates in data build and generate, data synth persona, eval persona. */
class RoleplayCommandsTest {
    @TempDir
    static Path dir;
    static Path model;

    @BeforeAll
    static void tinyModel() {
        System.setProperty("longrwkv.noProgress", "true");
        model = dir.resolve("tiny.safetensors");
        EvalTestModels.write(model, 6);
    }

    static Path sample() {
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path p = d.resolve("datasets/examples/pippa-sample.jsonl");
            if (Files.isRegularFile(p)) return p;
        }
        throw new AssertionError("datasets/examples/pippa-sample.jsonl not found");
    }

    @Test
    void pippaBuildWithATemplateAndUserNameReportsRecordsWithoutAModelTurnByLine() throws Exception {
        Path out = dir.resolve("pippa");
        CliTestSupport.Run r = CliTestSupport.run("data", "build", "--input", sample().toString(), "--format", "pippa", "--template", "metharme",
                "--user-name", "Anon", "--tokenizer", "bytes", "--out", out.toString());
        assertEquals(2, r.exitCode(), r.out());
        assertTrue(r.err().strip().endsWith("pippa-sample.jsonl line 3: no model turn: every message of 'conversation' has is_human true and "
                + "bot_greeting is empty (nothing to train on)"), r.err());
        r = CliTestSupport.run("data", "build", "--input", sample().toString(), "--format", "pippa", "--template", "metharme",
                "--user-name", "Anon", "--tokenizer", "bytes", "--skip-bad", "--out", out.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("3 documents") && r.out().contains("skipped 1 bad records") && r.out().contains("line 3: no model turn"), r.out());
        JsonObject meta = JsonParser.parseString(Files.readString(dir.resolve("pippa.meta.json"))).getAsJsonObject();
        assertEquals("metharme", meta.getAsJsonObject("template").get("name").getAsString());
        assertEquals("Anon", meta.get("user_name").getAsString());
        byte[] bin = Files.readAllBytes(dir.resolve("pippa.bin"));
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < bin.length; i += 2) text.append((char) (bin[i] & 0xff));
        assertTrue(text.toString().startsWith("<|system|>Enter RP mode. Pretend to be Aqua whose persona follows:\nAqua is a cheerful"), text.toString());
        assertTrue(text.toString().contains("<|user|>My name is Kazuma, remember that.<|model|>"), "the user's turns in metharme");
        assertTrue(text.toString().contains("joined Anon's adventuring party"), "{{user}} is the display name");

        r = CliTestSupport.run("data", "build", "--input", sample().toString(), "--format", "pippa", "--template", "chatml",
                "--tokenizer", "bytes", "--out", out.toString());
        assertEquals(2, r.exitCode());
        assertEquals("error: --template: expected world, metharme or a template file, got 'chatml' (no such file)", r.err().strip());
    }

    @Test
    void generateWithATemplateIsTheUserTurnOfThatTemplate() {
        CliTestSupport.Run t = CliTestSupport.run("generate", "--model", model.toString(), "--template", "world", "--system", "Be brief.",
                "--name", "Aqua", "--user", "Kazuma", "--prompt", "Hello", "--temperature", "0", "--max-new-tokens", "30");
        assertEquals(0, t.exitCode(), t.err());
        CliTestSupport.Run raw = CliTestSupport.run("generate", "--model", model.toString(), "--prompt", "System: Be brief.\n\nKazuma: Hello\n\nAqua:",
                "--stop", "\n\n", "--temperature", "0", "--max-new-tokens", "30");
        assertEquals(raw.out(), t.out());
        CliTestSupport.Run m = CliTestSupport.run("generate", "--model", model.toString(), "--template", "metharme", "--prompt", "Hello",
                "--temperature", "0", "--max-new-tokens", "30");
        CliTestSupport.Run mraw = CliTestSupport.run("generate", "--model", model.toString(), "--prompt", "<|user|>Hello<|model|>",
                "--stop", "<|user|>", "--temperature", "0", "--max-new-tokens", "30");
        assertEquals(mraw.out(), m.out());
        CliTestSupport.Run bad = CliTestSupport.run("generate", "--model", model.toString(), "--system", "x", "--prompt", "Hello");
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().contains("give --template too"), bad.err());
    }

    @Test
    void synthAndEvalPersona() throws Exception {
        Path data = dir.resolve("persona");
        CliTestSupport.Run r = CliTestSupport.run("data", "synth", "persona", "--tokenizer", "bytes", "--facts", "number,pet", "--lengths", "600",
                "--count", "3", "--out", data.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("3 persona samples"), r.out());
        JsonObject meta = JsonParser.parseString(Files.readString(dir.resolve("persona.meta.json"))).getAsJsonObject();
        assertEquals("number,pet", meta.get("facts").getAsString());
        r = CliTestSupport.run("data", "synth", "passkey", "--tokenizer", "bytes", "--facts", "number", "--lengths", "600", "--count", "1",
                "--out", data.toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("options of the persona task"), r.err());

        Path out = dir.resolve("eval");
        r = CliTestSupport.run("eval", "persona", "--model", model.toString(), "--lengths", "600,800", "--depths", "0,100", "--trials", "1",
                "--facts", "number", "--chunk-len", "64", "--out", out.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("persona accuracy") && r.out().contains("answer loss"), r.out());
        List<String> trials = Files.readAllLines(out.resolve("trials.jsonl"));
        assertEquals(4, trials.size());
        for (String line : trials) assertEquals("number", JsonParser.parseString(line).getAsJsonObject().get("key").getAsString());
        assertTrue(Files.exists(out.resolve("heatmap.png")) && Files.exists(out.resolve("summary.csv")) && Files.exists(out.resolve("run.json")));
        r = CliTestSupport.run("eval", "persona", "--model", model.toString(), "--lengths", "600", "--facts", "number,pets", "--out", out.toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("unknown fact 'pets'"), r.err());
    }
}
