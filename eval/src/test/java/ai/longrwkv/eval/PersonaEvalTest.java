package ai.longrwkv.eval;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.datasets.build.ChatTemplate;
import ai.longrwkv.datasets.synth.FillerChats;
import ai.longrwkv.datasets.synth.PersonaTask;
import ai.longrwkv.datasets.synth.Sample;
import ai.longrwkv.datasets.synth.SynthTasks;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 16: `eval persona` scoring and its grid on a tiny model. */
class PersonaEvalTest {
    private static final Tokenizer BYTES = Tokenizers.parse("bytes");

    @Test
    void wordMatchFindsTheFactAsWholeWordsOnly() {
        assertEquals(1, Scoring.WORD_MATCH.score(" 4956", List.of("4956")));
        assertEquals(1, Scoring.WORD_MATCH.score(" It is 4956, I think.", List.of("4956")));
        assertEquals(0, Scoring.WORD_MATCH.score(" 49567", List.of("4956")), "not inside a longer number");
        assertEquals(0, Scoring.WORD_MATCH.score(" 14956", List.of("4956")));
        assertEquals(1, Scoring.WORD_MATCH.score(" biscuit!", List.of("Biscuit")), "case is ignored");
        assertEquals(0, Scoring.WORD_MATCH.score(" Biscuits", List.of("Biscuit")));
        assertEquals(1, Scoring.WORD_MATCH.score(" I will bring the red lantern.", List.of("the red lantern")));
        assertEquals(0, Scoring.WORD_MATCH.score(" the red lanterns", List.of("the red lantern")));
        assertEquals(0, Scoring.WORD_MATCH.score("", List.of("Pia")));
        assertEquals(1, Scoring.WORD_MATCH.score("Élodie.", List.of("élodie")), "Unicode case");
    }

    @Test
    void theGridFeedsTheSynthConversationsAndCutsRepliesAtTheEndOfTheTurn(@TempDir Path dir) throws Exception {
        ModelConfig cfg = TinyModels.config();
        List<Integer> lengths = List.of(600, 900);
        double[] depths = {0, 100};
        PersonaTask task = new PersonaTask(BYTES, ChatTemplate.WORLD, FillerChats.synthetic(), List.of("number", "pet"), "User");
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 5), cfg.groupNormEps());
             RwkvState s0 = m.newState()) {
            RetrievalEval.Config c = new RetrievalEval.Config("persona", task, Scoring.WORD_MATCH, lengths, depths, 2, 9, 40, 64, dir,
                    List.of(ChatTemplate.WORLD.replyEnd("User")));
            RetrievalEval.Report r = RetrievalEval.run(m, s0, BYTES, c, "tiny", null);
            assertEquals(2 * 2 * 2, r.trials().size());
            List<String> records = Files.readAllLines(dir.resolve("trials.jsonl"));
            for (String line : records) {
                JsonObject o = JsonParser.parseString(line).getAsJsonObject();
                int d = o.get("depth_pct").getAsDouble() == 0 ? 0 : 1;
                Sample s = SynthTasks.sample(task, 9, o.get("length").getAsInt(), o.get("trial").getAsInt() * 2 + d, new double[]{0, 1});
                assertEquals(s.key(), o.get("key").getAsString(), "the asked fact");
                assertEquals(s.answer(), o.getAsJsonArray("expected").get(0).getAsString());
                assertEquals(s.promptTokens().length, o.get("prompt_tokens").getAsInt());
                String output = o.get("output").getAsString();
                assertFalse(output.contains("\n\n"), "the reply ends at the end of its turn: " + output);
                assertEquals(Scoring.WORD_MATCH.score(output, List.of(s.answer())), o.get("score").getAsDouble(), 0);
                Sample.Needle n = s.queriedNeedle();
                assertEquals(s.answerStart() - n.start() - n.length(), o.get("distance").getAsInt());
            }
            // what the eval generated is what a greedy chat turn from the same conversation generates
            JsonObject first = JsonParser.parseString(records.get(0)).getAsJsonObject();
            Sample s = SynthTasks.sample(task, 9, 600, 0, new double[]{0, 1});
            try (RwkvState st = m.newState()) {
                float[] logits = Prefill.run(m, s.promptTokens(), st, 64, null);
                Generator.Result g = Generator.generate(BYTES, t -> m.step(t, st), logits, Sampler.greedy(), 40, List.of("\n\n"), null);
                assertEquals(g.text(), first.get("output").getAsString());
            }
            assertTrue(Files.exists(dir.resolve("heatmap.png")) && Files.exists(dir.resolve("summary.csv")));
        }
    }

    /** A chat session in the metharme template feeds exactly the text the template renders for training. */
    @Test
    void aMetharmeSessionFeedsTheTemplatesText() {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 2), cfg.groupNormEps());
             RwkvState zero = m.newState();
             ChatSession chat = new ChatSession(m, BYTES, zero, ChatTemplate.METHARME, "Ann", "Rex", "Rex is a dog.", Sampler.greedy(), 6, 16)) {
            assertEquals("Hi<|model|>", chat.turnPrompt("Hi"));
            Generator.Result r = chat.turn("Hi", null);
            List<Integer> fed = new ArrayList<>();
            for (int t : BYTES.encode("<|system|>Rex is a dog.<|user|>Hi<|model|>")) fed.add(t);
            for (int t : r.tokens()) fed.add(t);
            if (r.reason() != Generator.StopReason.STOP_STRING) for (int t : BYTES.encode("<|user|>")) fed.add(t);
            try (RwkvState expected = m.newState()) {
                Prefill.run(m, fed.stream().mapToInt(Integer::intValue).toArray(), expected, 1000, null);
                for (int l = 0; l < expected.wkv.length; l++) {
                    assertArrayEquals(be.download(expected.wkv[l]).data(), be.download(chat.state().wkv[l]).data(), 2e-4f, "wkv of layer " + l);
                }
            }
        }
    }
}
