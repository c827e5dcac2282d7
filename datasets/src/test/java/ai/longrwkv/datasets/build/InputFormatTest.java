package ai.longrwkv.datasets.build;

import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Each input format: the rendered text and its mask for a small example are exactly what InputFormat / ChatTurns
 * (and datasets/README.md) say. With the byte tokenizer one token = one byte, so the token flags spell out the mask.
 */
class InputFormatTest {
    @TempDir
    Path dir;

    /** Expected text and mask from alternating (text, "0"|"1") pairs. */
    private record Expected(String text, String mask) {
        static Expected of(String... pairs) {
            StringBuilder text = new StringBuilder(), mask = new StringBuilder();
            for (int i = 0; i < pairs.length; i += 2) {
                text.append(pairs[i]);
                mask.append(pairs[i + 1].repeat(pairs[i].length()));
            }
            return new Expected(text.toString(), mask.toString());
        }
    }

    /** Renders one line and also builds it with the byte tokenizer; checks both. */
    private void check(InputFormat format, boolean trainAll, String jsonLine, Expected expected, boolean endTrained) throws IOException {
        RenderedDocument doc = format.renderLine(jsonLine, trainAll);
        assertEquals(expected.text(), doc.text(), "rendered text");
        assertEquals(expected.mask(), doc.charMask(), "mask of the rendered text");
        assertEquals(endTrained, doc.endTrained(), "flag of the final token 0");

        Path in = TestSupport.writeLines(dir.resolve("in.jsonl"), List.of(jsonLine));
        Path out = dir.resolve("out-" + System.nanoTime());
        new DatasetBuilder(new DatasetBuilder.Options(format, TestSupport.bytes(), "bytes", trainAll, false, 1, null)).build(List.of(in), out);
        try (BinIdxDataset data = BinIdxDataset.open(out)) {
            assertEquals(1, data.documentCount());
            int[] tokens = data.document(0);
            assertEquals(0, tokens[tokens.length - 1]);
            assertEquals(expected.text(), TestSupport.decodeBytes(Arrays.copyOf(tokens, tokens.length - 1)), "tokens");
            assertEquals(expected.mask() + (endTrained ? "1" : "0"), TestSupport.flags(data.mask(0)), "token flags");
        }
    }

    @Test
    void text() throws IOException {
        check(InputFormat.TEXT, false, "{\"text\": \"Just text.\\n\\nKept as it is.\"}",
                Expected.of("Just text.\n\nKept as it is.", "1"), true);
    }

    @Test
    void promptCompletion() throws IOException {
        String line = "{\"prompt\": \"Q: 2+2?\\nA:\", \"completion\": \" 4\"}";
        check(InputFormat.PROMPT_COMPLETION, false, line, Expected.of("Q: 2+2?\nA:", "0", " 4", "1"), true);
        check(InputFormat.PROMPT_COMPLETION, true, line, Expected.of("Q: 2+2?\nA: 4", "1"), true);
    }

    @Test
    void chatInTheWorldFormatWithAssistantTurnsTrained() throws IOException {
        String line = "{\"messages\": ["
                + "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
                + "{\"role\": \"user\", \"content\": \"  Hi!\\r\\n\\r\\n \\r\\nHow are you?\\n\"},"
                + "{\"role\": \"assistant\", \"content\": \"I am fine.\\n\\n\\n  Thanks.\"},"
                + "{\"role\": \"Narrator\", \"content\": \"The end.\"},"
                + "{\"role\": \"assistant\", \"name\": \"Bob\", \"content\": \"Bye\"}]}";
        check(InputFormat.CHAT, false, line, Expected.of(
                "System: You are helpful.\n\nUser: Hi!\nHow are you?\n\nAssistant:", "0",
                " I am fine.\n  Thanks.\n\n", "1",
                "Narrator: The end.\n\nBob:", "0",
                " Bye", "1"), true);
        check(InputFormat.CHAT, true, line, Expected.of(
                "System: You are helpful.\n\nUser: Hi!\nHow are you?\n\nAssistant: I am fine.\n  Thanks.\n\nNarrator: The end.\n\nBob: Bye", "1"), true);
    }

    @Test
    void chatEndingWithAUserTurnHasItsFinalTokenMasked() throws IOException {
        check(InputFormat.CHAT, false, "{\"messages\": [{\"role\": \"user\", \"content\": \"hello?\"}]}",
                Expected.of("User: hello?", "0"), false);
    }

    @Test
    void pippaWithPersonaPlaceholdersAndGreeting() throws IOException {
        String line = "{\"bot_id\": \"x\", \"bot_name\": \"Aqua\", \"bot_description\": \"{{char}} is a goddess.\","
                + " \"bot_definitions\": \"{{user}}: hi\\n\\n{{Char}}: hello\", \"bot_greeting\": \"Hello, {{user}}!\","
                + " \"categories\": [], \"submission_timestamp\": 0, \"conversation\": ["
                + "{\"message\": \"Hello, {{user}}!\", \"is_human\": false},"
                + "{\"message\": \"Who are you?\", \"is_human\": true},"
                + "{\"message\": \"I am {{char}}.\", \"is_human\": false}]}";
        check(InputFormat.PIPPA, false, line, Expected.of(
                "System: Aqua is a goddess.\nUser: hi\nAqua: hello\n\nAqua:", "0",
                " Hello, User!\n\n", "1",
                "User: Who are you?\n\nAqua:", "0",
                " I am Aqua.", "1"), true);
    }

    @Test
    void pippaGreetingMissingFromTheConversationIsAddedAsTheFirstBotTurn() throws IOException {
        String line = "{\"bot_name\": \"Rex\", \"bot_description\": \"\", \"bot_definitions\": null, \"bot_greeting\": \"Woof.\","
                + " \"conversation\": [{\"message\": \"Sit!\", \"is_human\": true}, {\"message\": \"*sits*\", \"is_human\": false}]}";
        check(InputFormat.PIPPA, false, line, Expected.of(
                "Rex:", "0", " Woof.\n\n", "1", "User: Sit!\n\nRex:", "0", " *sits*", "1"), true);
    }

    @Test
    void normalizeMessageCollapsesBlankLines() {
        assertEquals("a\nb\nc", ChatTurns.normalizeMessage("\n\na\n\n\nb\r\n \t \r\nc\n\n"));
        assertEquals("  x", ChatTurns.normalizeMessage("line\n  x").substring(5));
        assertEquals("one line", ChatTurns.normalizeMessage("  one line  "));
    }

    @Test
    void formatNamesParse() {
        assertEquals(InputFormat.PROMPT_COMPLETION, InputFormat.parse("prompt-completion"));
        assertEquals(InputFormat.PIPPA, InputFormat.parse("PIPPA"));
        assertThrows(IllegalArgumentException.class, () -> InputFormat.parse("sharegpt"));
    }
}
