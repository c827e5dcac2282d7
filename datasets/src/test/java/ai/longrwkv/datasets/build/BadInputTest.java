package ai.longrwkv.datasets.build;

import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad records: an error naming file and line, or with --skip-bad skipped, counted and reported; nothing half-written. */
class BadInputTest {
    @TempDir
    Path dir;

    private DatasetBuilder builder(InputFormat format, boolean skipBad) {
        return new DatasetBuilder(new DatasetBuilder.Options(format, TestSupport.bytes(), "bytes", false, skipBad, 2, null));
    }

    /** Builds a file whose line 3 is `bad` (lines 1, 2 and 4 good) and expects the error on line 3. */
    private void expectErrorOnLine3(InputFormat format, String good, byte[] bad, String problem) throws IOException {
        ByteArrayOutputStream content = new ByteArrayOutputStream();
        content.write((good + "\n" + good + "\n").getBytes(StandardCharsets.UTF_8));
        content.write(bad);
        content.write(("\n" + good + "\n").getBytes(StandardCharsets.UTF_8));
        Path in = TestSupport.writeBytes(dir.resolve("in.jsonl"), content.toByteArray());
        Path out = dir.resolve("out");
        BadRecordException e = assertThrows(BadRecordException.class, () -> builder(format, false).build(List.of(in), out));
        assertEquals(3, e.line(), e.getMessage());
        assertTrue(e.getMessage().startsWith(in + " line 3: "), e.getMessage());
        assertTrue(e.getMessage().contains(problem), e.getMessage());
        assertNoOutputs("out");

        BuildReport r = builder(format, true).build(List.of(in), out);
        assertEquals(3, r.documents(), "the good records");
        assertEquals(1, r.skippedRecords());
        assertTrue(r.skippedExamples().get(0).contains("line 3") && r.skippedExamples().get(0).contains(problem), r.skippedExamples().toString());
        try (BinIdxDataset data = BinIdxDataset.open(out)) {
            assertEquals(3, data.documentCount());
        }
        for (String ext : new String[]{".bin", ".idx", ".mask", ".meta.json"}) Files.delete(dir.resolve("out" + ext));
    }

    private void expectErrorOnLine3(InputFormat format, String good, String bad, String problem) throws IOException {
        expectErrorOnLine3(format, good, bad.getBytes(StandardCharsets.UTF_8), problem);
    }

    private void assertNoOutputs(String name) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            List<String> left = files.map(p -> p.getFileName().toString()).filter(f -> f.startsWith(name)).toList();
            assertEquals(List.of(), left, "no output and no temporary file after a failed run");
        }
    }

    @Test
    void malformedJson() throws IOException {
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", "{\"text\": \"unterminated}", "malformed JSON");
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", "{'text': 'single quotes are not JSON'}", "malformed JSON");
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", "{\"text\": \"ok\"} trailing", "malformed JSON");
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", "[\"a list\"]", "expected a JSON object");
    }

    @Test
    void missingOrWrongFields() throws IOException {
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", "{\"txt\": \"typo\"}", "missing field 'text'");
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", "{\"text\": 42}", "field 'text' must be a string");
        expectErrorOnLine3(InputFormat.PROMPT_COMPLETION, "{\"prompt\": \"a\", \"completion\": \"b\"}", "{\"prompt\": \"a\"}", "missing field 'completion'");
        String chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
        expectErrorOnLine3(InputFormat.CHAT, chat, "{\"messages\": [{\"role\": \"user\"}]}", "message 0: missing field 'content'");
        String pippa = "{\"bot_name\": \"B\", \"conversation\": [{\"message\": \"hi\", \"is_human\": true}, {\"message\": \"yo\", \"is_human\": false}]}";
        expectErrorOnLine3(InputFormat.PIPPA, pippa, "{\"bot_name\": \"B\", \"conversation\": [{\"message\": \"hi\"}]}", "missing field 'is_human'");
        expectErrorOnLine3(InputFormat.PIPPA, pippa, "{\"conversation\": []}", "missing field 'bot_name'");
    }

    @Test
    void emptyConversations() throws IOException {
        expectErrorOnLine3(InputFormat.CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "{\"messages\": []}", "empty conversation");
        String pippa = "{\"bot_name\": \"B\", \"conversation\": [{\"message\": \"hi\", \"is_human\": true}, {\"message\": \"yo\", \"is_human\": false}]}";
        expectErrorOnLine3(InputFormat.PIPPA, pippa, "{\"bot_name\": \"B\", \"conversation\": []}", "empty conversation");
        expectErrorOnLine3(InputFormat.PIPPA, pippa, "{\"bot_name\": \"B\", \"bot_greeting\": \"\", \"conversation\": [{\"message\": \"hi\", \"is_human\": true}]}",
                "no model turn");
    }

    @Test
    void invalidUtf8() throws IOException {
        byte[] bad = {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xc3, '(', '"', '}'};
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", bad, "invalid UTF-8");
        expectErrorOnLine3(InputFormat.TEXT, "{\"text\": \"ok\"}", "{\"text\": \"lone \\ud800 surrogate\"}", "lone surrogate");
    }

    @Test
    void invalidUtf8InATextFileNamesTheLineAndEmptyFilesAreBad() throws IOException {
        Path good = TestSupport.write(dir.resolve("good.txt"), "fine\n");
        Path bad = TestSupport.writeBytes(dir.resolve("bad.txt"), new byte[]{'a', '\n', 'b', '\n', (byte) 0xe2, (byte) 0x82, '\n'});
        Path empty = TestSupport.write(dir.resolve("empty.txt"), "");
        BadRecordException e = assertThrows(BadRecordException.class, () -> builder(InputFormat.TEXT, false).build(List.of(good, bad), dir.resolve("out")));
        assertTrue(e.getMessage().startsWith(bad + " line 3: invalid UTF-8"), e.getMessage());
        e = assertThrows(BadRecordException.class, () -> builder(InputFormat.TEXT, false).build(List.of(empty), dir.resolve("out")));
        assertTrue(e.getMessage().contains("empty file"), e.getMessage());
        BuildReport r = builder(InputFormat.TEXT, true).build(List.of(good, bad, empty), dir.resolve("out"));
        assertEquals(1, r.documents());
        assertEquals(2, r.skippedRecords());
    }

    @Test
    void blankLinesAreSkippedSilentlyAndAMissingInputIsNamed() throws IOException {
        Path in = TestSupport.write(dir.resolve("in.jsonl"), "\n{\"text\": \"a\"}\r\n   \n{\"text\": \"b\"}");
        BuildReport r = builder(InputFormat.TEXT, false).build(List.of(in), dir.resolve("out"));
        assertEquals(2, r.documents());
        assertEquals(2, r.blankLines());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> builder(InputFormat.TEXT, false).build(List.of(dir.resolve("nope.jsonl")), dir.resolve("out2")));
        assertTrue(e.getMessage().contains("nope.jsonl"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("out2.idx")));
    }
}
