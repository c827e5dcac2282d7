package ai.longrwkv.eval;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 6, test 4 (generation): deterministic at temperature 0, stops where asked, streams what it returns. */
class GeneratorTest {
    private static final Tokenizer BYTES = Tokenizers.parse("bytes");

    /** A stand-in model that "says" a script, one byte per step, then token 0 (fed tokens are recorded). */
    private static final class Script implements Generator.Stepper {
        final byte[] text;
        final List<Integer> fed = new ArrayList<>();

        Script(String text) {
            this.text = text.getBytes(StandardCharsets.UTF_8);
        }

        float[] logitsAt(int i) {
            float[] l = new float[256];
            l[i < text.length ? text[i] & 0xff : 0] = 10;
            return l;
        }

        @Override
        public float[] feed(int token) {
            fed.add(token);
            return logitsAt(fed.size());
        }
    }

    private static Generator.Result run(Script s, int max, List<String> stops, StringBuilder streamed) {
        return Generator.generate(BYTES, s, s.logitsAt(0), Sampler.greedy(), max, stops, streamed::append);
    }

    @Test
    void stopsAtEndOfTextWithoutFeedingIt() {
        Script s = new Script("hello");
        StringBuilder streamed = new StringBuilder();
        Generator.Result r = run(s, 100, List.of(), streamed);
        assertEquals("hello", r.text());
        assertEquals("hello", streamed.toString());
        assertEquals(Generator.StopReason.END_OF_TEXT, r.reason());
        assertEquals(5, s.fed.size(), "token 0 is not fed");
    }

    @Test
    void stopsAtTheMaximumTokenCount() {
        Script s = new Script("hello world");
        Generator.Result r = run(s, 4, List.of(), new StringBuilder());
        assertEquals("hell", r.text());
        assertEquals(Generator.StopReason.MAX_TOKENS, r.reason());
        assertEquals(4, r.tokens().length);
    }

    @Test
    void stopsAtAStopStringWhichIsNeitherReturnedNorStreamed() {
        Script s = new Script("Hi there.\n\nUser: more");
        StringBuilder streamed = new StringBuilder();
        Generator.Result r = run(s, 100, List.of("\n\n", "zzz"), streamed);
        assertEquals("Hi there.", r.text());
        assertEquals("Hi there.", streamed.toString(), "the first newline was held back until it could not start a stop");
        assertEquals(Generator.StopReason.STOP_STRING, r.reason());
        assertEquals("Hi there.\n\n".length(), s.fed.size(), "tokens up to the stop string are fed (a chat state keeps the turn end)");
        // a partial match that does not complete is released
        Script t = new Script("a\nb");
        StringBuilder st = new StringBuilder();
        assertEquals("a\nb", run(t, 100, List.of("\n\n"), st).text());
        assertEquals("a\nb", st.toString());
    }

    @Test
    void multiByteCharactersAreStreamedWhole() {
        Script s = new Script("né 日本");
        List<String> pieces = new ArrayList<>();
        Generator.Result r = Generator.generate(BYTES, s, s.logitsAt(0), Sampler.greedy(), 100, List.of(), pieces::add);
        assertEquals("né 日本", r.text());
        assertEquals("né 日本", String.join("", pieces));
        for (String p : pieces) assertTrue(p.indexOf('\uFFFD') < 0, "no half characters: " + pieces);
    }

    @Test
    void greedyGenerationWithARealModelIsDeterministicAndSamplingFollowsTheSeed() {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps())) {
            int[] prompt = BYTES.encode("The pass key is 123. ");
            String greedy1 = generate(m, prompt, Sampler.greedy(), 40);
            String greedy2 = generate(m, prompt, new Sampler(0, 0.5, 99), 40);
            assertEquals(greedy1, greedy2, "temperature 0 ignores top-p and seed");
            String sampled1 = generate(m, prompt, new Sampler(1.0, 0.9, 5), 40);
            assertEquals(sampled1, generate(m, prompt, new Sampler(1.0, 0.9, 5), 40), "same seed, same text");
            assertNotEquals(sampled1, generate(m, prompt, new Sampler(1.0, 0.9, 6), 40), "another seed, another text");
        }
    }

    private static String generate(Rwkv5Model m, int[] prompt, Sampler sampler, int max) {
        try (RwkvState s = m.newState()) {
            float[] logits = Prefill.run(m, prompt, s, 8, null);
            return Generator.generate(BYTES, t -> m.step(t, s), logits, sampler, max, List.of(), null).text();
        }
    }

    @Test
    void samplerKeepsOnlyTheNucleus() {
        float[] logits = new float[256];
        logits[65] = 12;   // p = 0.73 at temperature 1
        logits[66] = 11;   // p = 0.27
        Sampler s = new Sampler(1.0, 0.5, 1);
        for (int i = 0; i < 50; i++) assertEquals(65, s.next(logits), "top-p 0.5 keeps only the most likely token here");
        Sampler wide = new Sampler(1.0, 0.999, 1);
        boolean sawOther = false;
        for (int i = 0; i < 200 && !sawOther; i++) sawOther = wide.next(logits) != 65;
        assertTrue(sawOther);
        assertThrows(IllegalArgumentException.class, () -> new Sampler(-1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new Sampler(1, 0, 0));
        assertEquals(1, Sampler.argmax(new float[]{0, 3, 3}), "ties go to the lowest id");
    }
}
