package ai.longrwkv.cli;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 6, test 4 (chat): turns in the World format from stdin, the state kept across turns. */
class ChatCommandTest {
    @TempDir
    static Path dir;
    static Path model;

    @BeforeAll
    static void tinyModel() {
        model = dir.resolve("tiny.safetensors");
        EvalTestModels.write(model, 12);
    }

    static String chat(String input, String... extra) {
        InputStream old = System.in;
        try {
            System.setIn(new ByteArrayInputStream(input.getBytes(StandardCharsets.UTF_8)));
            String[] base = {"chat", "--model", model.toString(), "--temperature", "0", "--max-tokens", "12", "--name", "Bot"};
            String[] args = new String[base.length + extra.length];
            System.arraycopy(base, 0, args, 0, base.length);
            System.arraycopy(extra, 0, args, base.length, extra.length);
            CliTestSupport.Run r = CliTestSupport.run(args);
            assertEquals(0, r.exitCode(), r.err());
            return r.out();
        } finally {
            System.setIn(old);
        }
    }

    /** The bot's replies in a transcript: the text after each "Bot:" up to the blank line. */
    static String[] replies(String transcript) {
        String[] parts = transcript.split("\nBot:", -1);
        String[] out = new String[parts.length - 1];
        for (int i = 1; i < parts.length; i++) out[i - 1] = parts[i].substring(0, parts[i].indexOf("\n\n"));
        return out;
    }

    @Test
    void turnsAreAnsweredInTheWorldFormatAndTheStateCarriesTheConversation() {
        String two = chat("Hello, who are you?\nWhat did I just ask?\n");
        assertTrue(two.contains("User: Hello, who are you?\n\nBot:"), two);
        String[] r2 = replies(two);
        assertEquals(2, r2.length, two);
        // the second question alone, in a fresh conversation, gets another answer: the first turn is in the state
        String[] alone = replies(chat("What did I just ask?\n"));
        assertNotEquals(r2[1], alone[0], "turn 2 with and without turn 1 before it");
        // /reset forgets: after it the second question is answered as in a fresh conversation
        String[] reset = replies(chat("Hello, who are you?\n/reset\nWhat did I just ask?\n"));
        assertEquals(alone[0], reset[1]);
        // deterministic at temperature 0
        assertEquals(two, chat("Hello, who are you?\nWhat did I just ask?\n"));
    }

    @Test
    void systemTextAndNamesShapeThePrompt() {
        String a = chat("Hi\n", "--system", "You are a pirate.");
        String b = chat("Hi\n");
        assertNotEquals(replies(a)[0], replies(b)[0], "the system text is in the state before the first turn");
        String named = chat("Hi\n/quit\nnot read\n", "--user", "Ann");
        assertTrue(named.contains("Ann: Hi"), named);
        assertEquals(1, replies(named).length, "/quit ends the chat");
    }
}
