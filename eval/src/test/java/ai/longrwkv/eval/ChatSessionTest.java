package ai.longrwkv.eval;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 6, test 4 (chat): the state is kept across turns, in the World chat format. */
class ChatSessionTest {
    private static final Tokenizer BYTES = Tokenizers.parse("bytes");

    @Test
    void theStateAfterTwoTurnsIsTheStateOfTheWholeTranscript() {
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 11), cfg.groupNormEps());
             RwkvState zero = m.newState();
             ChatSession chat = new ChatSession(m, BYTES, zero, "User", "Bot", "You are terse.", Sampler.greedy(), 12, 16)) {
            StringBuilder streamed = new StringBuilder();
            Generator.Result first = chat.turn("Hello there", streamed::append);
            assertEquals(first.text(), streamed.toString(), "the reply is streamed as returned");
            Generator.Result second = chat.turn("And\n\nagain?", null);

            // the transcript the state must hold: every fed token, in the World chat format
            List<Integer> transcript = new ArrayList<>();
            append(transcript, BYTES.encode("System: You are terse.\n\n"));
            appendTurn(transcript, "User: Hello there\n\nBot:", first);
            appendTurn(transcript, "User: And\nagain?\n\nBot:", second);
            try (RwkvState expected = m.newState()) {
                Prefill.run(m, transcript.stream().mapToInt(Integer::intValue).toArray(), expected, 1000, null);
                assertStatesEqual(be, expected, chat.state());
            }

            // a fresh session that skips the first turn is in another state: the first turn is remembered
            try (ChatSession other = new ChatSession(m, BYTES, zero, "User", "Bot", "You are terse.", Sampler.greedy(), 12, 16)) {
                other.turn("And\n\nagain?", null);
                assertFalse(Arrays.equals(be.download(other.state().wkv[1]).data(), be.download(chat.state().wkv[1]).data()));
            }

            // /reset goes back to the state after the system text
            chat.reset();
            try (RwkvState afterSystem = m.newState()) {
                Prefill.run(m, BYTES.encode("System: You are terse.\n\n"), afterSystem, 1000, null);
                assertStatesEqual(be, afterSystem, chat.state());
            }
        }
    }

    /** The turn prompt, the reply's tokens, and the blank line (generated or added) that ends the turn. */
    private static void appendTurn(List<Integer> transcript, String prompt, Generator.Result r) {
        append(transcript, BYTES.encode(prompt));
        append(transcript, r.tokens());
        if (r.reason() != Generator.StopReason.STOP_STRING) append(transcript, BYTES.encode("\n\n"));
    }

    private static void append(List<Integer> list, int[] tokens) {
        for (int t : tokens) list.add(t);
    }

    private static void assertStatesEqual(CpuBackend be, RwkvState expected, RwkvState actual) {
        for (int l = 0; l < expected.wkv.length; l++) {
            assertArrayEquals(be.download(expected.wkv[l]).data(), be.download(actual.wkv[l]).data(), 2e-4f, "wkv of layer " + l);
            assertArrayEquals(be.download(expected.attX[l]).data(), be.download(actual.attX[l]).data(), 2e-5f, "att_x of layer " + l);
            assertArrayEquals(be.download(expected.ffnX[l]).data(), be.download(actual.ffnX[l]).data(), 2e-5f, "ffn_x of layer " + l);
        }
    }

    @Test
    void messagesCannotEndATurnEarly() {
        assertEquals("a\nb", ChatSession.normalize("  a\r\n\r\n\r\nb \n"));
        ModelConfig cfg = TinyModels.config();
        try (CpuBackend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 1), cfg.groupNormEps());
             RwkvState zero = m.newState();
             ChatSession chat = new ChatSession(m, BYTES, zero, "Ann", "Rex", null, Sampler.greedy(), 5, 16)) {
            assertEquals("Ann: hi\nthere\n\nRex:", chat.turnPrompt("hi\n\nthere"));
            assertTrue(chat.turn("hi", null).tokens().length <= 5);
        }
    }
}
