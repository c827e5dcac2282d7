package ai.longrwkv.cli;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 13 ("nothing wrong passes silently") end to end for the training and data commands: every bad input gives
 * one line "error: ..." with exit code 2 and no Java class names; what can be recovered safely is recovered.
 */
class NothingPassesSilentlyTest {
    @TempDir
    static Path dir;
    static Path model, data;

    @BeforeAll
    static void makeModelAndData() {
        System.setProperty("longrwkv.noProgress", "true");
        model = dir.resolve("m.safetensors");
        data = dir.resolve("pk");
        ok("init", "--layers", "1", "--embd", "16", "--head-size", "16", "--vocab", "256", "--seed", "3", "--out", model.toString());
        ok("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "320", "--count", "4", "--seed", "2", "--out", data.toString());
    }

    static CliTestSupport.Run ok(String... args) {
        CliTestSupport.Run r = CliTestSupport.run(args);
        assertEquals(0, r.exitCode(), String.join(" ", args) + "\n" + r.out() + r.err());
        return r;
    }

    /** Runs a command that must fail cleanly; returns its error line. */
    static String error(String... args) {
        CliTestSupport.Run r = assertTimeoutPreemptively(Duration.ofSeconds(60), () -> CliTestSupport.run(args));
        assertEquals(2, r.exitCode(), String.join(" ", args) + "\n" + r.out() + r.err());
        List<String> errors = r.err().lines().filter(l -> l.startsWith("error: ")).toList();
        assertEquals(1, errors.size(), "one error line:\n" + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace:\n" + r.err());
        assertFalse(r.err().matches("(?s).*\\b(java|javax|com|sun|jdk)\\.[a-z]+\\.[A-Za-z.$]*(Exception|Error)\\b.*"), "no class names:\n" + r.err());
        return errors.get(0);
    }

    static String[] finetune(Path out, String... extra) {
        LinkedHashMap<String, String> opts = new LinkedHashMap<>();
        opts.put("--model", model.toString());
        opts.put("--data", data.toString());
        opts.put("--ctx-len", "320");
        opts.put("--chunk-len", "64");
        opts.put("--lr", "3e-3");
        opts.put("--steps", "2");
        opts.put("--out", out.toString());
        List<String> flags = new ArrayList<>();
        for (int i = 0; i < extra.length; i++) {
            if (extra[i].startsWith("--") && i + 1 < extra.length && !extra[i + 1].startsWith("--")) {
                if (extra[i].equals("--init")) opts.remove("--model");
                opts.put(extra[i], extra[++i]);
            } else {
                flags.add(extra[i]);
            }
        }
        opts.values().removeIf(v -> v == null);
        List<String> a = new ArrayList<>(List.of("finetune"));
        opts.forEach((k, v) -> { a.add(k); a.add(v); });
        a.addAll(flags);
        return a.toArray(String[]::new);
    }

    static int metricsLines(Path out) throws Exception {
        return (int) Files.readAllLines(out.resolve("metrics.jsonl")).stream().filter(l -> !l.isBlank()).count();
    }

    // ------------------------------------------------------------------------------------------ item 2: --config

    @Test
    void configFileProblemsAreErrorsAndBothSpellingsWork() throws Exception {
        Path out = dir.resolve("cfg");
        assertTrue(error(finetune(out, "--config", dir.resolve("missing.properties").toString())).contains("missing.properties: file not found"));
        Path typo = Files.writeString(dir.resolve("typo.properties"), "# run\nsteps=1\nctx_len=128\n");
        String e = error(finetune(out, "--config=" + typo));
        assertTrue(e.contains("typo.properties line 3: 'ctx_len' is not an option") && e.contains("did you mean 'ctx-len'"), e);
        Path esc = Files.writeString(dir.resolve("esc.properties"), "steps=1\nout=C:\\users\\me\n");
        assertTrue(error(finetune(out, "--config", esc.toString())).contains("esc.properties line 2: malformed escape"));
        Path bad = Files.writeString(dir.resolve("bad.properties"), "steps=two\n");
        assertTrue(error(finetune(out, "--config", bad.toString())).contains("bad.properties line 1: steps = 'two': expected a whole number"));
        assertTrue(error(finetune(out, "--config", dir.toString())).contains("is a directory"));
        // --config=FILE applies; required options may come from it; flags on the command line win
        Path good = Files.writeString(dir.resolve("good.properties"), "ctx-len=320\nchunk-len = 64\nsteps: 3\nlr=3e-3\n");
        ok("finetune", "--model", model.toString(), "--data", data.toString(), "--out", out.toString(), "--steps", "1", "--config=" + good);
        assertEquals(1, metricsLines(out), "--steps 1 on the command line wins over steps: 3");
        Path out2 = dir.resolve("cfg2");
        ok("finetune", "--model", model.toString(), "--data", data.toString(), "--out", out2.toString(), "--config", good.toString());
        assertEquals(3, metricsLines(out2), "steps from the file");
    }

    // ------------------------------------------------------------------------------------------ items 5 and 6: options

    @Test
    void nonFiniteAndOutOfRangeOptionValuesAreRefusedUpFront() {
        Path out = dir.resolve("opts");
        Object[][] cases = {
                {new String[]{"--lr", "NaN"}, "'--lr': expected a finite number, got 'NaN'"},
                {new String[]{"--lr", "Infinity"}, "'--lr': expected a finite number, got 'Infinity'"},
                {new String[]{"--lr-final", "NaN"}, "'--lr-final': expected a finite number, got 'NaN'"},
                {new String[]{"--lr-final", "1"}, "--lr-final 1.0 is above --lr 0.003"},
                {new String[]{"--weight-decay", "NaN"}, "'--weight-decay': expected a finite number, got 'NaN'"},
                {new String[]{"--weight-decay", "-1"}, "--weight-decay must be >= 0, got -1.0"},
                {new String[]{"--grad-clip", "-1"}, "--grad-clip must be >= 0, got -1.0"},
                {new String[]{"--grad-clip", "NaN"}, "'--grad-clip': expected a finite number, got 'NaN'"},
                {new String[]{"--micro-batch", "0"}, "--micro-batch must be 1..1048576, got 0"},
                {new String[]{"--grad-accum", "0"}, "--grad-accum must be 1..1048576, got 0"},
                {new String[]{"--warmup", "-1"}, "--warmup must be >= 0 steps, got -1"},
                {new String[]{"--save-every", "-1"}, "--save-every must be >= 0 steps"},
                {new String[]{"--init", "1,0"}, "--init 1,0: the embedding size C must be 1..65536, got 0"},
                {new String[]{"--init", "1000000,64"}, "layers must be 1..4096"},
                {new String[]{"--mode", "lora", "--lora-alpha", "0"}, "--lora-alpha must be a finite number > 0, got 0.0"},
                {new String[]{"--mode", "lora", "--lora-alpha", "-1"}, "--lora-alpha must be a finite number > 0, got -1.0"},
                {new String[]{"--mode", "lora", "--lora-r", "0"}, "--lora-r must be >= 1, got 0"},
                {new String[]{"--mode", "lora", "--lora-r", "100000"}, "--lora-r 100000 is above the model's embedding size 16"},
                {new String[]{"--init", "512,16384"}, "needs about"},
        };
        for (Object[] c : cases) {
            String e = error(finetune(out, (String[]) c[0]));
            assertTrue(e.contains((String) c[1]), String.join(" ", (String[]) c[0]) + " -> " + e);
        }
        String st = error("state-tune", "--model", model.toString(), "--data", data.toString(), "--ctx-len", "320", "--chunk-len", "64",
                "--steps", "1", "--lr", "NaN", "--out", out.toString());
        assertTrue(st.contains("'--lr': expected a finite number, got 'NaN'"), st);
        assertFalse(Files.exists(out.resolve("metrics.jsonl")), "refused before any work");
    }

    @Test
    void theNonFiniteStopIsOneCleanLineNamingTheStepAndTheParameter() {
        String e = error(finetune(dir.resolve("nan"), "--lr", "1e99", "--lr-final", "0"));
        assertTrue(e.matches("error: step 1: the update made [a-z0-9_.]+ non-finite.*"), e);
    }

    // ------------------------------------------------------------------------------------------ item 4: --resume

    @Test
    void resumeVerifiesTheCheckpointRecoversWhatIsSafeAndMayExtendTheRun() throws Exception {
        Path out = dir.resolve("run");
        ok(finetune(out, "--save-every", "1"));
        Path ck = out.resolve("checkpoints");
        Path json = ck.resolve("step-00000002/trainer.json");
        String good = Files.readString(json);
        Files.writeString(json, good.replace("\"step\": 2", "\"step\": 1000"));
        assertTrue(error(finetune(out, "--steps", "2000", "--resume", out.toString())).contains("trainer.json does not match its own checksum"));
        Files.writeString(json, "");
        assertTrue(error(finetune(out, "--resume", out.toString())).contains("trainer.json is empty"));
        Files.writeString(json, good);
        Files.writeString(ck.resolve("latest"), "");
        assertTrue(error(finetune(out, "--resume", out.toString())).contains("latest is empty"));
        Files.writeString(ck.resolve("latest"), "step-00000002\n");
        assertTrue(error(finetune(out, "--steps", "1", "--resume", out.toString())).contains("beyond --steps 1"));

        // what a kill leaves: a partial metrics line, an orphan temporary checkpoint directory of a dead process
        Files.writeString(out.resolve("metrics.jsonl"), "{\"step\":3,\"lo", java.nio.file.StandardOpenOption.APPEND);
        Files.createDirectories(ck.resolve(".tmp-step-00000003-999999999-42"));
        // the same model and data through other path spellings, and a larger --steps: allowed
        Path link = Files.createSymbolicLink(dir.resolve("alias"), dir);
        CliTestSupport.Run r = ok("finetune", "--model", link.resolve("m.safetensors").toString(), "--data", link.resolve("./pk").toString(),
                "--ctx-len", "320", "--chunk-len", "64", "--lr", "3e-3", "--steps", "4", "--resume", out.toString());
        assertTrue(r.out().contains("resumed") && r.out().contains("at step 2"), r.out());
        assertEquals(4, metricsLines(out));
        for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) JsonParser.parseString(l).getAsJsonObject();
        assertFalse(Files.exists(ck.resolve(".tmp-step-00000003-999999999-42")), "stale temporary directory removed");
        assertEquals("step-00000004", Files.readString(ck.resolve("latest")).strip());
    }

    // ------------------------------------------------------------------------------------------ items 1, 3, 8: data

    @Test
    void dataWithNothingToTrainOrBrokenSidecarsIsRefused() throws Exception {
        Path chat = Files.writeString(dir.resolve("chat.jsonl"),
                "{\"messages\": [{\"role\": \"human\", \"content\": \"Hi there\"}, {\"role\": \"narrator\", \"content\": \"Silence.\"}]}\n".repeat(20));
        Path none = dir.resolve("none");
        CliTestSupport.Run b = ok("data", "build", "--input", chat.toString(), "--format", "chat", "--tokenizer", "bytes", "--out", none.toString());
        assertTrue(b.err().contains("warning: no token of"), b.err());
        assertTrue(error(finetune(dir.resolve("o-none"), "--data", none.toString(), "--ctx-len", "64", "--chunk-len", "32")).contains("no token is trained"));

        Path gptChat = Files.writeString(dir.resolve("gpt.jsonl"),
                "{\"messages\": [{\"role\": \"human\", \"content\": \"Hi there\"}, {\"role\": \"gpt\", \"content\": \"Hello, friend.\"}]}\n".repeat(20));
        Path gpt = dir.resolve("gpt");
        ok("data", "build", "--input", gptChat.toString(), "--format", "chat", "--tokenizer", "bytes", "--out", gpt.toString());
        ok(finetune(dir.resolve("o-gpt"), "--data", gpt.toString(), "--ctx-len", "64", "--chunk-len", "32", "--steps", "1"));

        // a .mask that is there but cannot be read is not "no mask"
        Path mask = dir.resolve("gpt.mask");
        Path saved = Files.move(mask, dir.resolve("gpt.mask.saved"));
        Files.createSymbolicLink(mask, dir.resolve("nowhere.mask"));
        assertTrue(error(finetune(dir.resolve("o-gpt2"), "--data", gpt.toString(), "--ctx-len", "64", "--chunk-len", "32")).contains("does not exist"));
        Files.delete(mask);
        Files.move(saved, mask);

        // a packed dataset without its metadata
        Path packed = dir.resolve("packed");
        ok("data", "pack", "--data", gpt.toString(), "--seq-len", "256", "--out", packed.toString());
        Files.delete(dir.resolve("packed.meta.json"));
        assertTrue(error(finetune(dir.resolve("o-p"), "--data", packed.toString(), "--ctx-len", "256", "--chunk-len", "64")).contains("meta.json is missing"));

        // a token outside the model's vocabulary names the file and the document
        Files.delete(dir.resolve("gpt.meta.json"));
        String e = error(finetune(dir.resolve("o-v"), "--init", "1,16,100", "--data", gpt.toString(), "--ctx-len", "64", "--chunk-len", "32"));
        assertTrue(e.contains("gpt.bin: document ") && e.contains("outside the model's vocabulary 0..99"), e);
    }

    @Test
    void dataSynthDepthsArePercentLikeEval() throws Exception {
        Path out = dir.resolve("depths");
        String e = error("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "320", "--count", "2", "--depths", "0.5", "--out", out.toString());
        assertTrue(e.contains("--depths is in percent") && e.contains("--depths 50"), e);
        assertTrue(error("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "320", "--count", "2", "--depths", "150", "--out", out.toString())
                .contains("between 0 and 100"));
        ok("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "320", "--count", "2", "--depths", "0,50", "--out", out.toString());
        List<String> samples = Files.readAllLines(dir.resolve("depths.samples.jsonl"));
        double d50 = JsonParser.parseString(samples.get(1)).getAsJsonObject().get("depth").getAsDouble();
        assertTrue(d50 > 0.25 && d50 <= 0.5, "50 = the middle (the needle goes to the sentence start at or before it): " + d50);
        ok("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "320", "--count", "2", "--depths", "0.5%", "--out", out.toString());
        JsonObject s0 = JsonParser.parseString(Files.readAllLines(dir.resolve("depths.samples.jsonl")).get(0)).getAsJsonObject();
        assertTrue(s0.get("depth").getAsDouble() <= 0.005, "0.5% really is half a percent: " + s0);
    }

    @Test
    void dataStatsOnAFifoFailsInsteadOfHanging() throws Exception {
        Path src = dir.resolve("fifo-src");
        ok("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "320", "--count", "2", "--out", src.toString());
        Path idx = dir.resolve("fifo-src.idx");
        Files.delete(idx);
        Process p = new ProcessBuilder("mkfifo", idx.toString()).start();
        Assumptions.assumeTrue(p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0, "mkfifo not available");
        assertTrue(error("data", "stats", src.toString()).contains("not a regular file"));
        assertTrue(new String(Files.readAllBytes(dir.resolve("fifo-src.meta.json")), StandardCharsets.UTF_8).contains("synthetic"));
    }
}
