package ai.longrwkv.eval;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.datasets.synth.Haystack;
import ai.longrwkv.datasets.synth.NeedleTask;
import ai.longrwkv.datasets.synth.PasskeyTask;
import ai.longrwkv.datasets.synth.Sample;
import ai.longrwkv.datasets.synth.SynthTasks;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The passkey / needle grid end to end on a tiny model: records, summary, heatmap, table. */
class RetrievalEvalTest {
    private static final Tokenizer BYTES = Tokenizers.parse("bytes");

    @Test
    void passkeyGridWritesRecordsSummaryHeatmapAndTable(@TempDir Path dir) throws Exception {
        ModelConfig cfg = TinyModels.config();
        List<Integer> lengths = List.of(300, 400);
        double[] depths = {0, 50, 100};
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps());
             RwkvState s0 = m.newState()) {
            RetrievalEval.Config c = new RetrievalEval.Config("passkey", new PasskeyTask(BYTES), Scoring.EXACT_INTEGER, lengths, depths,
                    2, 42, 10, 64, dir);
            ByteArrayOutputStream table = new ByteArrayOutputStream();
            RetrievalEval.Report r = RetrievalEval.run(m, s0, BYTES, c, "tiny", new PrintStream(table, true, StandardCharsets.UTF_8));

            List<String> records = Files.readAllLines(dir.resolve("trials.jsonl"));
            assertEquals(2 * 3 * 2, records.size());
            for (String line : records) {
                JsonObject o = JsonParser.parseString(line).getAsJsonObject();
                int length = o.get("length").getAsInt();
                int trial = o.get("trial").getAsInt();
                int d = indexOf(depths, o.get("depth_pct").getAsDouble());
                // the prompt is exactly what `data synth passkey --depths 0,0.5,1 --seed 42` writes as sample trial*3+d
                Sample s = SynthTasks.sample(new PasskeyTask(BYTES), 42, length, trial * depths.length + d, new double[]{0, 0.5, 1});
                assertEquals(s.key(), o.get("key").getAsString());
                assertEquals(s.promptTokens().length, o.get("prompt_tokens").getAsInt());
                String output = o.get("output").getAsString();
                double expectedScore = Scoring.EXACT_INTEGER.score(output, List.of(s.answer()));
                assertEquals(expectedScore, o.get("score").getAsDouble(), 0);
                assertTrue(o.get("answer_loss").getAsDouble() > 0);
                Sample.Needle n = s.queriedNeedle();
                assertEquals(s.answerStart() - n.start() - n.length(), o.get("distance").getAsInt());
            }
            List<String> csv = Files.readAllLines(dir.resolve("summary.csv"));
            assertEquals("length,depth_pct,trials,accuracy,answer_loss,distance", csv.get(0));
            assertEquals(1 + 2 * 3, csv.size());
            for (String row : csv.subList(1, csv.size())) {
                String[] f = row.split(",");
                assertEquals("2", f[2]);
                double acc = Double.parseDouble(f[3]);
                assertTrue(acc >= 0 && acc <= 1);
            }
            byte[] png = Files.readAllBytes(dir.resolve("heatmap.png"));
            assertArrayEquals(new byte[]{(byte) 0x89, 'P', 'N', 'G'}, java.util.Arrays.copyOf(png, 4));
            JsonObject run = JsonParser.parseString(Files.readString(dir.resolve("run.json"))).getAsJsonObject();
            assertTrue(run.get("prefill_tokens_per_second").getAsDouble() > 0);
            assertEquals(r.prefillTokens(), run.get("prefill_tokens").getAsLong());
            String printed = table.toString(StandardCharsets.UTF_8);
            assertTrue(printed.contains("depth %") && printed.contains("answer loss") && printed.contains("tokens/s"), printed);
            assertTrue(!Files.exists(dir.resolve("trials.jsonl.partial")));
        }
    }

    @Test
    void answerLossIsTheTeacherForcedCrossEntropyOfTheAnswer() {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps())) {
            int[] prompt = BYTES.encode("What is the pass key? The pass key is");
            int[] answer = BYTES.encode(" 4711");
            double viaEval;
            try (RwkvState s = m.newState()) {
                float[] logits = Prefill.run(m, prompt, s, 8, null);
                viaEval = RetrievalEval.answerLoss(m, s, logits, answer, 2);
            }
            // the same number from one forward over prompt + answer
            int[] all = new int[prompt.length + answer.length];
            System.arraycopy(prompt, 0, all, 0, prompt.length);
            System.arraycopy(answer, 0, all, prompt.length, answer.length);
            double sum = 0;
            try (RwkvState s = m.newState(); Rwkv5Model.Activations a = m.forward(all, s, false, true)) {
                float[] l = be.download(a.logits()).data();
                for (int i = 0; i < answer.length; i++) sum += RetrievalEval.nll(l, (prompt.length - 1 + i) * 256, 256, answer[i]);
            }
            assertEquals(sum / answer.length, viaEval, 1e-4);
        }
    }

    @Test
    void needleGridScoresByContainment(@TempDir Path dir) throws Exception {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps());
             RwkvState s0 = m.newState()) {
            RetrievalEval.Config c = new RetrievalEval.Config("niah-multikey", new NeedleTask(BYTES, Haystack.synthetic(BYTES), 3),
                    Scoring.CONTAINMENT, List.of(700), new double[]{20, 80}, 1, 5, 12, 128, dir);
            RetrievalEval.run(m, s0, BYTES, c, "tiny", null);
            for (String line : Files.readAllLines(dir.resolve("trials.jsonl"))) {
                JsonObject o = JsonParser.parseString(line).getAsJsonObject();
                assertEquals(1, o.getAsJsonArray("expected").size());
                assertEquals(7, o.getAsJsonArray("expected").get(0).getAsString().length(), "RULER's 7-digit values");
            }
        }
    }

    @Test
    void tooShortLengthsAndForeignTokenizersFailBeforeAnyWork(@TempDir Path dir) {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps());
             RwkvState s0 = m.newState()) {
            RetrievalEval.Config c = new RetrievalEval.Config("passkey", new PasskeyTask(BYTES), Scoring.EXACT_INTEGER, List.of(1000, 100),
                    new double[]{0}, 1, 1, 10, 64, dir.resolve("short"));
            IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> RetrievalEval.run(m, s0, BYTES, c, "tiny", null));
            assertTrue(e.getMessage().contains("too short"), e.getMessage());
            assertTrue(!Files.exists(dir.resolve("short")), "nothing written");
        }
    }

    private static int indexOf(double[] a, double v) {
        for (int i = 0; i < a.length; i++) if (a[i] == v) return i;
        throw new AssertionError(v);
    }
}
