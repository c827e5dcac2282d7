package ai.longrwkv.datasets.build;

import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16: each chat template renders fixed chat and PIPPA records to exactly the text and mask its documentation
 * gives, character by character, and `data build` with the byte tokenizer writes exactly those tokens and flags.
 */
class ChatTemplateTest {
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

    private void check(InputFormat format, ChatTemplate template, String userName, boolean trainAll, String line, Expected expected,
                       boolean endTrained) throws IOException {
        RenderedDocument doc = format.renderLine(line, trainAll, template, userName);
        assertEquals(expected.text(), doc.text(), "rendered text");
        assertEquals(expected.mask(), doc.charMask(), "mask");
        assertEquals(endTrained, doc.endTrained(), "flag of token 0");
        Path in = TestSupport.writeLines(dir.resolve("in.jsonl"), List.of(line));
        Path out = dir.resolve("out-" + System.nanoTime());
        new DatasetBuilder(new DatasetBuilder.Options(format, TestSupport.bytes(), "bytes", trainAll, false, 1, null))
                .chat(template, userName).build(List.of(in), out);
        try (BinIdxDataset data = BinIdxDataset.open(out)) {
            int[] tokens = data.document(0);
            assertEquals(expected.text(), TestSupport.decodeBytes(Arrays.copyOf(tokens, tokens.length - 1)), "tokens");
            assertEquals(expected.mask() + (endTrained ? "1" : "0"), TestSupport.flags(data.mask(0)), "token flags");
        }
    }

    static final String CHAT = "{\"messages\": ["
            + "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
            + "{\"role\": \"user\", \"content\": \"Hi!\\n\\nHow are you?\"},"
            + "{\"role\": \"assistant\", \"content\": \"I am fine.\"},"
            + "{\"role\": \"user\", \"content\": \"Bye\"},"
            + "{\"role\": \"assistant\", \"content\": \"Bye.\"}]}";

    static final String PIPPA = "{\"bot_name\": \"Aqua\", \"bot_description\": \"{{char}} is a goddess.\","
            + " \"bot_definitions\": \"{{user}}: hi\\n\\n{{Char}}: hello\", \"bot_greeting\": \"Hello, {{user}}!\","
            + " \"categories\": [], \"conversation\": ["
            + "{\"message\": \"Hello, {{user}}!\", \"is_human\": false},"
            + "{\"message\": \"Who are you?\", \"is_human\": true},"
            + "{\"message\": \"I am {{char}}.\", \"is_human\": false}]}";

    @Test
    void worldChatWithAUserDisplayName() throws IOException {
        check(InputFormat.CHAT, ChatTemplate.WORLD, "Kazuma", false, CHAT, Expected.of(
                "System: You are helpful.\n\nKazuma: Hi!\nHow are you?\n\nAssistant:", "0",
                " I am fine.\n\n", "1",
                "Kazuma: Bye\n\nAssistant:", "0",
                " Bye.", "1"), true);
    }

    @Test
    void worldPippaWithTheUsersNameSubstituted() throws IOException {
        check(InputFormat.PIPPA, ChatTemplate.WORLD, "Kazuma", false, PIPPA, Expected.of(
                "System: Aqua is a goddess.\nKazuma: hi\nAqua: hello\n\nAqua:", "0",
                " Hello, Kazuma!\n\n", "1",
                "Kazuma: Who are you?\n\nAqua:", "0",
                " I am Aqua.", "1"), true);
    }

    @Test
    void metharmeChat() throws IOException {
        check(InputFormat.CHAT, ChatTemplate.METHARME, "User", false, CHAT, Expected.of(
                "<|system|>You are helpful.<|user|>Hi!\n\nHow are you?<|model|>", "0",
                "I am fine.", "1",
                "<|user|>Bye<|model|>", "0",
                "Bye.", "1"), true);
        check(InputFormat.CHAT, ChatTemplate.METHARME, "User", true, CHAT, Expected.of(
                "<|system|>You are helpful.<|user|>Hi!\n\nHow are you?<|model|>I am fine.<|user|>Bye<|model|>Bye.", "1"), true);
    }

    @Test
    void metharmePippaPutsThePersonaInTheSystemPrompt() throws IOException {
        check(InputFormat.PIPPA, ChatTemplate.METHARME, "Kazuma", false, PIPPA, Expected.of(
                "<|system|>Enter RP mode. Pretend to be Aqua whose persona follows:\nAqua is a goddess.\nKazuma: hi\n\nAqua: hello\n\n"
                        + "You shall reply to the user while staying in character, and generate long responses.<|model|>", "0",
                "Hello, Kazuma!", "1",
                "<|user|>Who are you?<|model|>", "0",
                "I am Aqua.", "1"), true);
    }

    @Test
    void aTemplateFileSetsPrefixesSeparatorPersonaAndWhatIsTrained() throws IOException {
        Path file = dir.resolve("alpaca.template");
        Files.writeString(file, "# a user-defined layout\nsystem=### System:\\n\nuser=### {{user}}:\\n\nmodel=### {{char}}:\\n\n"
                + "separator=\\n\\n\npersona={{char}}'s persona: {{persona}}\ntrain=model,system\n");
        ChatTemplate t = ChatTemplate.parse(file.toString());
        check(InputFormat.PIPPA, t, "You", false, PIPPA, Expected.of(
                "### System:", "0",
                "\nAqua's persona: Aqua is a goddess.\nYou: hi\nAqua: hello\n\n", "1",
                "### Aqua:", "0",
                "\nHello, You!\n\n", "1",
                "### You:\nWho are you?\n\n### Aqua:", "0",
                "\nI am Aqua.", "1"), true);
    }

    @Test
    void templateFileErrorsNameTheFileAndKey() throws IOException {
        Path file = dir.resolve("bad.template");
        Files.writeString(file, "modle=<m>\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.parse(file.toString()));
        assertTrue(e.getMessage().contains("bad.template") && e.getMessage().contains("unknown key 'modle'"), e.getMessage());
        Files.writeString(file, "train=assistant\n");
        e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.parse(file.toString()));
        assertTrue(e.getMessage().contains("train: expected a comma list of system, user, model, got 'assistant'"), e.getMessage());
        Files.writeString(file, "persona=no placeholder\n");
        e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.parse(file.toString()));
        assertTrue(e.getMessage().contains("'persona' must contain {{persona}}"), e.getMessage());
        Files.writeString(file, "separator=\nuser={{user}}: \n");
        e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.parse(file.toString()));
        assertTrue(e.getMessage().contains("nothing marks where a reply ends"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.parse("wrold"));
        assertTrue(e.getMessage().contains("expected world, metharme or a template file, got 'wrold'"), e.getMessage());
    }

    /** What `chat` and `generate --template` feed is what training masks: the prompt ends where training counts. */
    @Test
    void inferencePromptsEndWhereTrainingStartsToCount() {
        ChatTemplate w = ChatTemplate.WORLD;
        assertEquals("System: Be kind.\n\n", w.conversationStart("Be kind.", "User"));
        assertEquals("", w.conversationStart(null, "User"));
        assertEquals("User: Hi\n\nAqua:", w.turnPrompt("Hi", "User", "Aqua"));
        assertEquals("\n\n", w.replyEnd("User"));
        ChatTemplate m = ChatTemplate.METHARME;
        assertEquals("<|system|>Be kind.<|user|>", m.conversationStart("Be kind.", "User"));
        assertEquals("<|user|>", m.conversationStart(null, "User"));
        assertEquals("Hi<|model|>", m.turnPrompt("Hi", "User", "Aqua"));
        assertEquals("<|user|>", m.replyEnd("User"));
        // the fed text of a two-turn session equals the rendered training text up to each reply
        String fed = w.conversationStart("Be kind.", "User") + w.turnPrompt("Hi", "User", "Aqua") + " Hello." + w.replyEnd("User")
                + w.turnPrompt("Bye", "User", "Aqua");
        RenderedDocument doc = w.render(List.of(new ChatTemplate.Turn(ChatTemplate.Role.SYSTEM, "System", "Be kind."),
                new ChatTemplate.Turn(ChatTemplate.Role.USER, "User", "Hi"), new ChatTemplate.Turn(ChatTemplate.Role.MODEL, "Aqua", "Hello."),
                new ChatTemplate.Turn(ChatTemplate.Role.USER, "User", "Bye"), new ChatTemplate.Turn(ChatTemplate.Role.MODEL, "Aqua", "x")), false);
        assertEquals(doc.text().substring(0, doc.text().length() - " x".length()), fed);
        String fedM = m.conversationStart(null, "User") + m.turnPrompt("Hi", "User", "Aqua") + "Hello." + m.replyEnd("User")
                + m.turnPrompt("Bye", "User", "Aqua");
        assertEquals("<|user|>Hi<|model|>Hello.<|user|>Bye<|model|>", fedM);
    }
}
