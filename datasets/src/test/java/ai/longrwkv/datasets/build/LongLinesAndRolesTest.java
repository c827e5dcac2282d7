package ai.longrwkv.datasets.build;

import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.*;

/** Issue 13 items 1 and 7: assistant role names, and a bound on one jsonl line (a .gz can hide a huge one). */
class LongLinesAndRolesTest {
    @TempDir
    Path dir;

    @Test
    void commonAssistantAndUserRoleNamesAreTrainedAndMaskedLikeAssistantAndUser() {
        for (String assistant : new String[]{"assistant", "gpt", "model", "bot", "char", "GPT", " Model "}) {
            for (String user : new String[]{"user", "human", "Human"}) {
                String line = "{\"messages\": [{\"role\": \"" + user + "\", \"content\": \"Hi\"}, {\"role\": \"" + assistant + "\", \"content\": \"Hello!\"}]}";
                RenderedDocument doc = InputFormat.CHAT.renderLine(line, false);
                assertEquals("User: Hi\n\nAssistant: Hello!", doc.text(), assistant + "/" + user);
                assertTrue(doc.endTrained(), assistant + " is the model's turn: trained");
                assertTrue(doc.charMask().contains("1"), assistant);
            }
        }
        // any other role is a named speaker, not trained; "name" still prints instead of the role
        RenderedDocument other = InputFormat.CHAT.renderLine("{\"messages\": [{\"role\": \"narrator\", \"content\": \"Once\"}]}", false);
        assertEquals("narrator: Once", other.text());
        assertFalse(other.charMask().contains("1"));
        RenderedDocument named = InputFormat.CHAT.renderLine("{\"messages\": [{\"role\": \"char\", \"name\": \"Aria\", \"content\": \"Hey\"}]}", false);
        assertEquals("Aria: Hey", named.text());
        assertTrue(named.endTrained());
    }

    private Path gz(String name, String... lines) throws IOException {
        Path f = dir.resolve(name);
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(f))) {
            for (String l : lines) out.write((l + "\n").getBytes(StandardCharsets.UTF_8));
        }
        return f;
    }

    @Test
    void aLineLongerThanTheBoundIsABadRecordNamingTheFileAndLine() throws IOException {
        String ok = "{\"text\": \"short\"}";
        String huge = "{\"text\": \"" + "x".repeat(5000) + "\"}";
        Path in = gz("in.jsonl.gz", ok, huge, ok);
        DatasetBuilder strict = new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, TestSupport.bytes(), "bytes", false, false, 1, null))
                .maxLineBytes(1000);
        BadRecordException e = assertThrows(BadRecordException.class, () -> strict.build(List.of(in), dir.resolve("a")));
        assertTrue(e.getMessage().startsWith(in + " line 2: line longer than 1000 bytes"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("a.idx")));

        DatasetBuilder skipping = new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, TestSupport.bytes(), "bytes", false, true, 1, null))
                .maxLineBytes(1000);
        BuildReport r = skipping.build(List.of(in), dir.resolve("b"));
        assertEquals(2, r.documents());
        assertEquals(1, r.skippedRecords());
        try (BinIdxDataset d = BinIdxDataset.open(dir.resolve("b"))) {
            assertEquals("short", TestSupport.decodeBytes(java.util.Arrays.copyOf(d.document(1), 5)), "the line after the long one is read whole");
        }
        // at the bound exactly it is kept
        DatasetBuilder exact = new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, TestSupport.bytes(), "bytes", false, false, 1, null))
                .maxLineBytes(huge.length());
        assertEquals(3, exact.build(List.of(in), dir.resolve("c")).documents());
    }

    @Test
    void emptyInputsAndBrokenGzipAreCleanErrors() throws IOException {
        DatasetBuilder b = new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, TestSupport.bytes(), "bytes", false, false, 1, null));
        Path blank = TestSupport.write(dir.resolve("blank.jsonl"), "\n  \n\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.build(List.of(blank), dir.resolve("e")));
        assertTrue(e.getMessage().startsWith("no documents: " + blank + " holds no records (3 blank lines)"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("e.idx")), "nothing written");
        byte[] gz = java.util.Arrays.copyOf(Files.readAllBytes(gz("whole.jsonl.gz", "{\"text\": \"hello there\"}".repeat(1).split("\n"))), 20);
        Path cut = Files.write(dir.resolve("cut.jsonl.gz"), gz);
        e = assertThrows(IllegalArgumentException.class, () -> b.build(List.of(cut), dir.resolve("g")));
        assertTrue(e.getMessage().startsWith(cut + ": not a complete gzip file"), e.getMessage());
        Path plain = TestSupport.write(dir.resolve("plain.jsonl.gz"), "{\"text\": \"x\"}\n");
        e = assertThrows(IllegalArgumentException.class, () -> b.build(List.of(plain), dir.resolve("g")));
        assertTrue(e.getMessage().startsWith(plain + ": not a complete gzip file"), e.getMessage());
        assertFalse(e.getMessage().contains("Exception"), e.getMessage());
        Path quotes = TestSupport.write(dir.resolve("q.jsonl"), "{'text': 'x'}\n");
        e = assertThrows(BadRecordException.class, () -> b.build(List.of(quotes), dir.resolve("q")));
        assertTrue(e.getMessage().contains("malformed JSON: not standard JSON at line 1") && !e.getMessage().contains("JsonReader"), e.getMessage());
    }
}
