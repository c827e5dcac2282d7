package ai.longrwkv.cli;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** The training commands end to end on a tiny byte-level model and synthetic passkey data. */
class TrainingCommandsTest {
    @TempDir
    static Path dir;
    static Path model, data;
    /** The x052 init zeroes att.output and ffn.value, so nothing upstream of them gets a gradient until they move:
     * LoRA and state tuning start from this briefly finetuned model, as users start from a pretrained one. */
    static Path trained;

    @BeforeAll
    static void makeModelAndData() {
        System.setProperty("longrwkv.noProgress", "true");
        model = dir.resolve("m.safetensors");
        data = dir.resolve("pk");
        ok("init", "--layers", "2", "--embd", "32", "--head-size", "16", "--vocab", "256", "--seed", "3", "--out", model.toString());
        ok("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "256", "--count", "12", "--seed", "2", "--out", data.toString());
        Path base = dir.resolve("base");
        ok("finetune", "--model", model.toString(), "--data", data.toString(), "--ctx-len", "256", "--chunk-len", "64", "--lr", "1e-2",
                "--steps", "3", "--out", base.toString(), "--dtype", "fp32");
        trained = base.resolve("rwkv-final.pth");
    }

    static CliTestSupport.Run ok(String... args) {
        CliTestSupport.Run r = CliTestSupport.run(args);
        assertEquals(0, r.exitCode(), String.join(" ", args) + "\n" + r.out() + r.err());
        return r;
    }

    static List<JsonObject> metrics(Path out) throws Exception {
        List<JsonObject> m = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("metrics.jsonl"))) m.add(JsonParser.parseString(line).getAsJsonObject());
        return m;
    }

    /** finetune with defaults for this test; an option given in {@code extra} replaces the default. */
    private static String[] finetune(Path out, String... extra) {
        java.util.LinkedHashMap<String, String> opts = new java.util.LinkedHashMap<>();
        opts.put("--model", model.toString());
        opts.put("--data", data.toString());
        opts.put("--ctx-len", "256");
        opts.put("--chunk-len", "64");
        opts.put("--lr", "3e-3");
        opts.put("--out", out.toString());
        for (int i = 0; i < extra.length; i += 2) {
            if (extra[i].equals("--init")) opts.remove("--model");
            opts.put(extra[i], extra[i + 1]);
        }
        List<String> a = new ArrayList<>(List.of("finetune"));
        opts.forEach((k, v) -> { a.add(k); a.add(v); });
        return a.toArray(String[]::new);
    }

    @Test
    void finetuneWritesModelLogsChartAndCheckpoints() throws Exception {
        Path out = dir.resolve("ft");
        ok(finetune(out, "--steps", "4", "--save-every", "2"));
        List<JsonObject> m = metrics(out);
        assertEquals(4, m.size());
        assertEquals(4, m.get(3).get("step").getAsInt());
        assertTrue(m.get(0).get("tokens_per_sec").getAsDouble() > 0);
        assertEquals(4, Files.readAllLines(out.resolve("train_log.txt")).size());
        assertTrue(Files.size(out.resolve("loss.png")) > 1000);
        assertEquals("step-00000004", Files.readString(out.resolve("checkpoints/latest")).trim());
        assertTrue(Files.isDirectory(out.resolve("checkpoints/step-00000002")));
        ModelWeights trained = ModelFiles.load(out.resolve("rwkv-final.pth"));
        ModelWeights base = ModelFiles.load(model);
        assertEquals(base.keys(), trained.keys());
        assertFalse(Arrays.equals(base.get("blocks.0.att.key.weight").data(), trained.get("blocks.0.att.key.weight").data()));
    }

    @Test
    void badTrainingInputsAreRefusedBeforeAnyWork() {
        String[][] cases = {
                finetune(dir.resolve("x1"), "--steps", "2", "--chunk-len", "100"),
                finetune(dir.resolve("x2"), "--steps", "2", "--ctx-len", "128"),
                finetune(dir.resolve("x3"), "--steps", "1", "--init", "2,32,65536"),
                finetune(dir.resolve("x4"), "--steps", "2", "--resume", dir.resolve("nothing").toString()),
                finetune(dir.resolve("x5"), "--steps", "2", "--state-growth-penalty", "-0.1"),
        };
        String[] words = {"not a multiple of --chunk-len 100", "more than --ctx-len 128", "vocabulary of 256 but the model has 65536", "no checkpoint there",
                "--state-growth-penalty must be a finite number >= 0, got -0.1"};
        for (int i = 0; i < cases.length; i++) {
            CliTestSupport.Run r = CliTestSupport.run(cases[i]);
            assertEquals(2, r.exitCode(), r.out() + r.err());
            assertTrue(r.err().contains(words[i]), "expected '" + words[i] + "' in " + r.err());
        }
    }

    @Test
    void loraTrainsAnAdapterThatMergesIntoAPlainModel() throws Exception {
        Path out = dir.resolve("lora");
        ok(finetune(out, "--model", trained.toString(), "--steps", "3", "--mode", "lora", "--lora-r", "4", "--lora-alpha", "8",
                "--lora-targets", "att.key,ffn.value"));
        assertTrue(Files.isRegularFile(out.resolve("lora-final.pth")));
        Path merged = out.resolve("merged.pth");
        ok("lora", "merge", "--model", trained.toString(), "--lora", out.resolve("lora-final.pth").toString(), "--out", merged.toString(), "--dtype", "fp32");
        ModelWeights mw = ModelFiles.load(merged), base = ModelFiles.load(trained);
        assertEquals(base.keys(), mw.keys(), "no LoRA keys in the merged model");
        assertFalse(Arrays.equals(base.get("blocks.1.att.key.weight").data(), mw.get("blocks.1.att.key.weight").data()));
        assertArrayEquals(base.get("blocks.1.att.value.weight").data(), mw.get("blocks.1.att.value.weight").data(), "not a target");
    }

    @Test
    void stateTuneWritesAStateFileThatOtherCommandsUse() throws Exception {
        Path out = dir.resolve("st");
        ok("state-tune", "--model", trained.toString(), "--data", data.toString(), "--ctx-len", "256", "--chunk-len", "64", "--steps", "3",
                "--lr", "0.05", "--out", out.toString(), "--merge-into", trained.toString());
        Path state = out.resolve("state-final.pth");
        assertTrue(Files.isRegularFile(state));
        assertTrue(Files.isRegularFile(out.resolve("rwkv-final-with-state.pth")));
        CliTestSupport.Run withState = ok("forward", "--model", trained.toString(), "--tokens", "72,105", "--state", state.toString());
        CliTestSupport.Run without = ok("forward", "--model", trained.toString(), "--tokens", "72,105");
        assertNotEquals(without.out(), withState.out(), "the tuned state changes the predictions");
        ok("debug", "dump", "--model", trained.toString(), "--tokens", "1,2,3", "--state", state.toString(), "--out", out.resolve("d.safetensors").toString());
        ModelWeights base = ModelFiles.load(trained);
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, base, 64e-5); RwkvState s = Cli.initialState(m, state)) {
            assertTrue(be.sumOfSquares(s.wkv[0]) > 0);
        }
        // `convert` of the run's last checkpoint writes the same state file (layout and values) as state-tune did
        Path fromCheckpoint = out.resolve("from-checkpoint.pth");
        CliTestSupport.Run c = ok("convert", out.toString(), fromCheckpoint.toString());
        assertTrue(c.out().contains("state tuning (the tuned states, RWKV-PEFT layout)"), c.out());
        ModelWeights a = ai.longrwkv.core.io.pth.PthReader.read(state), b = ai.longrwkv.core.io.pth.PthReader.read(fromCheckpoint);
        assertEquals(a.keys(), b.keys());
        for (String k : a.keys()) {
            assertArrayEquals(a.get(k).shape(), b.get(k).shape(), k);
            assertArrayEquals(a.get(k).data(), b.get(k).data(), k);
        }
    }

    /** --merge-into keeps the model's own dtype (an fp32 model is not rounded to the state file's bf16) unless asked. */
    @Test
    void stateTuneMergeKeepsTheModelsDtype() throws Exception {
        Path fp32 = dir.resolve("model-fp32.pth");
        ok("convert", trained.toString(), fp32.toString(), "--dtype", "fp32");
        Path out = dir.resolve("st32");
        ok("state-tune", "--model", fp32.toString(), "--data", data.toString(), "--ctx-len", "256", "--chunk-len", "64", "--steps", "1",
                "--out", out.toString(), "--merge-into", fp32.toString());
        ModelWeights base = ModelFiles.load(fp32), merged = ModelFiles.load(out.resolve("model-fp32-with-state.pth"));
        for (String k : base.keys()) {
            assertEquals("F32", merged.entries().get(k).dtype(), k);
            assertArrayEquals(base.get(k).data(), merged.get(k).data(), k + " must be the model's values, not rounded");
        }
        Path out16 = dir.resolve("st16");
        ok("state-tune", "--model", fp32.toString(), "--data", data.toString(), "--ctx-len", "256", "--chunk-len", "64", "--steps", "1",
                "--out", out16.toString(), "--merge-into", fp32.toString(), "--merge-dtype", "bf16");
        assertEquals("BF16", ModelFiles.load(out16.resolve("model-fp32-with-state.pth")).entries().get("emb.weight").dtype());
    }

    /** Mean loss on the answer tokens of the first n samples (forward only, chunked as in training). */
    static double answerLoss(Path modelFile, int n) {
        ModelWeights w = ModelFiles.load(modelFile);
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, 64e-5);
             ai.longrwkv.finetune.DatasetSequences seqs = ai.longrwkv.finetune.DatasetSequences.open(data, 256, 1, null);
             RwkvState s0 = m.newState()) {
            double sum = 0;
            for (int i = 0; i < n; i++) {
                var r = ai.longrwkv.core.train.ChunkedBptt.run(m, seqs.sequence(i), s0, null,
                        new ai.longrwkv.core.train.ChunkedBptt.Options(64, ai.longrwkv.core.train.BpttMode.FULL, false), false, null);
                r.finalState().close();
                sum += r.loss();
            }
            return sum / n;
        }
    }

    /** Issue 5, test 5: a short full-BPTT run on passkey data lowers the loss on the answer tokens. */
    @Test
    void fullBpttTrainingOnPasskeyLowersTheAnswerLoss() {
        Path out = dir.resolve("passkey-full");
        ok(finetune(out, "--steps", "40", "--lr", "3e-3", "--bptt", "full", "--dtype", "fp32"));
        double before = answerLoss(model, 12), after = answerLoss(out.resolve("rwkv-final.pth"), 12);
        assertTrue(after < before - 1.0, "answer-token loss " + before + " -> " + after);
    }

    /** kill -9 during training at an arbitrary moment, then --resume: the run finishes with the uninterrupted losses. */
    @Test
    void killedRunResumesToTheSameLosses() throws Exception {
        Path straight = dir.resolve("straight"), killed = dir.resolve("killed");
        ok(finetune(straight, "--steps", "8", "--save-every", "1"));
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "-Dlongrwkv.noProgress=true", "-cp", System.getProperty("java.class.path"),
                LongRwkv.class.getName()));
        cmd.addAll(Arrays.asList(finetune(killed, "--steps", "8", "--save-every", "1")));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("killed.log").toFile()).start();
        // wait until a checkpoint or two exist, then kill without warning
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline && !Files.isDirectory(killed.resolve("checkpoints/step-00000002"))) Thread.sleep(20);
        p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        assertTrue(Files.isRegularFile(killed.resolve("checkpoints/latest")), "a checkpoint exists: " + Files.readString(dir.resolve("killed.log")));
        ok(finetune(killed, "--steps", "8", "--save-every", "1", "--resume", killed.toString()));
        List<JsonObject> a = metrics(straight), b = metrics(killed);
        // steps the killed run logged after its last checkpoint were dropped on resume and logged again
        assertEquals(a.size(), b.size(), "one metrics line per step");
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).get("step").getAsInt(), b.get(i).get("step").getAsInt());
            assertEquals(a.get(i).get("loss").getAsDouble(), b.get(i).get("loss").getAsDouble(), 0.0, "step " + (i + 1));
        }
        assertArrayEquals(Files.readAllBytes(straight.resolve("rwkv-final.pth")), Files.readAllBytes(killed.resolve("rwkv-final.pth")));
    }
}
