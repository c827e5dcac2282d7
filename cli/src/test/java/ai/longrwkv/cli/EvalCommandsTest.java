package ai.longrwkv.cli;

import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.TokenDtype;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `eval passkey | niah | position-loss` from the command line: outputs, table, clear errors. */
class EvalCommandsTest {
    @TempDir
    static Path dir;
    static Path model;

    @BeforeAll
    static void tinyModel() {
        System.setProperty("longrwkv.noProgress", "true");
        model = dir.resolve("tiny.safetensors");
        EvalTestModels.write(model, 5);
    }

    static CliTestSupport.Run ok(String... args) {
        CliTestSupport.Run r = CliTestSupport.run(args);
        assertEquals(0, r.exitCode(), String.join(" ", args) + "\n" + r.out() + r.err());
        return r;
    }

    static String error(String... args) {
        CliTestSupport.Run r = CliTestSupport.run(args);
        assertEquals(2, r.exitCode(), String.join(" ", args) + "\n" + r.out() + r.err());
        assertTrue(r.err().startsWith("error: "), r.err());
        assertTrue(!r.err().contains("\tat "), "no stack trace: " + r.err());
        return r.err();
    }

    @Test
    void passkeyWritesTrialsSummaryHeatmapAndPrintsTheTable() throws Exception {
        Path out = dir.resolve("pk");
        CliTestSupport.Run r = ok("eval", "passkey", "--model", model.toString(), "--lengths", "300,400,...,500", "--depths", "0,50,...,100",
                "--trials", "2", "--seed", "9", "--chunk-len", "64", "--out", out.toString());
        assertTrue(r.out().contains("passkey accuracy, tiny.safetensors (2 trials per cell)"), r.out());
        assertTrue(r.out().contains("tokens/s"), r.out());
        List<String> trials = Files.readAllLines(out.resolve("trials.jsonl"));
        assertEquals(3 * 3 * 2, trials.size(), "lengths 300, 400, 500 x depths 0, 50, 100 x 2 trials");
        for (String t : trials) {
            JsonObject o = JsonParser.parseString(t).getAsJsonObject();
            assertTrue(o.has("output") && o.has("score") && o.has("answer_loss"), t);
        }
        assertEquals(1 + 9, Files.readAllLines(out.resolve("summary.csv")).size());
        assertTrue(Files.size(out.resolve("heatmap.png")) > 1000);
        JsonObject run = JsonParser.parseString(Files.readString(out.resolve("run.json"))).getAsJsonObject();
        assertEquals(3, run.getAsJsonObject("accuracy_by_length").size());
    }

    @Test
    void niahSingleAndMultikeyRun() throws Exception {
        Path hay = dir.resolve("hay.txt");
        Files.writeString(hay, "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about a little. "
                + "It is a way I have of driving off the spleen! Whenever I find myself growing grim about the mouth, I go to sea.");
        Path single = dir.resolve("niah1");
        ok("eval", "niah", "--model", model.toString(), "--haystack", hay.toString(), "--lengths", "600", "--depths", "20,80", "--trials", "1",
                "--chunk-len", "100", "--out", single.toString());
        assertEquals(2, Files.readAllLines(single.resolve("trials.jsonl")).size());
        Path multi = dir.resolve("niah4");
        CliTestSupport.Run r = ok("eval", "niah", "--model", model.toString(), "--mode", "multikey", "--needles", "3", "--lengths", "900",
                "--depths", "50", "--trials", "2", "--out", multi.toString());
        assertTrue(r.out().contains("niah-multikey accuracy"), r.out());
        assertEquals(2, Files.readAllLines(multi.resolve("trials.jsonl")).size());
    }

    @Test
    void positionLossDrawsOneCurvePerModel() throws Exception {
        Path prefix = dir.resolve("held-out");
        SplittableRandom rnd = new SplittableRandom(1);
        try (BinIdxWriter w = new BinIdxWriter(BinIdxFormat.bin(prefix), BinIdxFormat.idx(prefix), null, TokenDtype.UINT16)) {
            for (int d = 0; d < 3; d++) {
                int[] doc = new int[300];
                for (int i = 0; i < doc.length; i++) doc[i] = 32 + rnd.nextInt(90);
                w.add(doc, null);
            }
            w.finish();
        }
        Path other = dir.resolve("other.safetensors");
        EvalTestModels.write(other, 6);
        Path out = dir.resolve("pos");
        CliTestSupport.Run r = ok("eval", "position-loss", "--model", model.toString(), "--model", other.toString(), "--label", "second",
                "--data", prefix.toString(), "--ctx-len", "256", "--docs", "2", "--chunk-len", "64", "--out", out.toString());
        List<String> csv = Files.readAllLines(out.resolve("position-loss.csv"));
        assertEquals("bucket_start,bucket_end,positions,tiny.safetensors,second", csv.get(0));
        String[] last = csv.get(csv.size() - 1).split(",");
        assertEquals("256", last[1]);
        assertTrue(Double.parseDouble(last[3]) > 0 && Double.parseDouble(last[4]) > 0);
        assertTrue(Files.size(out.resolve("position-loss.png")) > 1000);
        assertTrue(r.out().contains("[2] second"), r.out());
    }

    @Test
    void mistakesGiveOneClearLine() throws Exception {
        String m = model.toString(), o = dir.resolve("err").toString();
        assertTrue(error("eval", "passkey", "--model", m, "--lengths", "100", "--out", o).contains("too short"));
        assertTrue(error("eval", "passkey", "--model", m, "--lengths", "1k", "--depths", "0,120", "--out", o).contains("--depths"));
        assertTrue(error("eval", "passkey", "--model", m, "--lengths", "1k,x", "--out", o).contains("--lengths"));
        assertTrue(error("eval", "niah", "--model", m, "--mode", "bogus", "--lengths", "1k", "--out", o).contains("--mode"));
        assertTrue(error("eval", "niah", "--model", m, "--haystack", dir.resolve("missing.txt").toString(), "--lengths", "1k", "--out", o)
                .contains("missing.txt"));
        assertTrue(error("eval", "position-loss", "--model", m, "--data", dir.resolve("nothing").toString(), "--ctx-len", "1k", "--out", o)
                .contains("nothing"));
        assertTrue(error("eval", "passkey", "--model", dir.resolve("nope.pth").toString(), "--lengths", "1k", "--out", o).contains("nope.pth"));
        assertTrue(error("eval", "passkey", "--model", m, "--tokenizer", "gpt2", "--lengths", "1k", "--out", o).contains("tokenizer"));
    }

    @Test
    void aTokenizerThatDoesNotFitTheModelIsRefused() {
        Path vocab = CliTestSupport.oracle("rwkv_vocab_v20230424.txt");
        assertTrue(error("eval", "passkey", "--model", model.toString(), "--tokenizer", "world:" + vocab, "--lengths", "1k",
                "--out", dir.resolve("err").toString()).contains("vocabulary"));
    }
}
