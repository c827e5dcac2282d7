package ai.longrwkv.cli;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `longrwkv data build | pack | synth | stats` end to end, and their errors. */
class DataCommandTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void quiet() {
        System.setProperty("longrwkv.noProgress", "true");
    }

    private Path write(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, content, StandardCharsets.UTF_8);
        return p;
    }

    private static void ok(CliTestSupport.Run r) {
        assertEquals(0, r.exitCode(), "stdout:\n" + r.out() + "\nstderr:\n" + r.err());
    }

    @Test
    void buildChatThenStatsShowsTheMaskedSample() throws IOException {
        Path in = write("chat.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n"
                + "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}]}\n");
        Path out = dir.resolve("chat");
        CliTestSupport.Run r = DataTestSupport.data("build", "--input", in.toString(), "--format", "chat", "--tokenizer", "bytes", "--out", out.toString());
        ok(r);
        assertTrue(r.out().contains("2 documents"), r.out());
        for (String ext : new String[]{".bin", ".idx", ".mask", ".meta.json"}) assertTrue(Files.exists(dir.resolve("chat" + ext)), ext);

        r = DataTestSupport.data("stats", out.toString());
        ok(r);
        assertTrue(r.out().contains("documents:      2"), r.out());
        assertTrue(r.out().contains("length histogram"), r.out());
        assertTrue(r.out().contains("User: Hi\n\nAssistant:⟦ Hello!⟨0⟩⟧"), r.out());
        r = DataTestSupport.data("stats", out.toString(), "--sample", "1");
        assertTrue(r.out().contains("System: Be brief.\n\nUser: 2+2?\n\nAssistant:⟦ 4⟨0⟩⟧"), r.out());
    }

    @Test
    void worldTokenizerBuildDecodesBack() throws IOException {
        Path vocab = CliTestSupport.oracle("rwkv_vocab_v20230424.txt");
        Path in = write("t.jsonl", "{\"text\": \"The quick brown fox, 中文 too.\"}\n");
        Path out = dir.resolve("w");
        ok(DataTestSupport.data("build", "--input", in.toString(), "--format", "text", "--tokenizer", "world:" + vocab, "--out", out.toString()));
        CliTestSupport.Run r = DataTestSupport.data("stats", out.toString());
        ok(r);
        assertTrue(r.out().contains("⟦The quick brown fox, 中文 too.⟨0⟩⟧"), r.out());
        assertTrue(r.out().contains("dtype:          uint16"), r.out());
    }

    @Test
    void badRecordIsOneErrorLineWithFileAndLineAndSkipBadReportsIt() throws IOException {
        Path in = write("bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"broken}\n{\"text\": \"also fine\"}\n");
        Path out = dir.resolve("bad");
        CliTestSupport.Run r = DataTestSupport.data("build", "--input", in.toString(), "--format", "text", "--tokenizer", "bytes", "--out", out.toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("error: " + in + " line 2: malformed JSON"), r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line, no stack trace: " + r.err());
        assertFalse(Files.exists(dir.resolve("bad.idx")));

        r = DataTestSupport.data("build", "--input", in.toString(), "--format", "text", "--tokenizer", "bytes", "--out", out.toString(), "--skip-bad");
        ok(r);
        assertTrue(r.out().contains("2 documents") && r.out().contains("skipped 1 bad records") && r.out().contains("line 2"), r.out());
    }

    @Test
    void packThenStats() throws IOException {
        StringBuilder lines = new StringBuilder();
        for (int i = 0; i < 200; i++) lines.append("{\"prompt\": \"Question ").append(i).append("? \", \"completion\": \"Answer ").append("x".repeat(i % 90)).append("\"}\n");
        Path in = write("pc.jsonl", lines.toString());
        ok(DataTestSupport.data("build", "--input", in.toString(), "--format", "prompt-completion", "--tokenizer", "bytes", "--out", dir.resolve("pc").toString()));
        CliTestSupport.Run r = DataTestSupport.data("pack", "--data", dir.resolve("pc").toString(), "--seq-len", "2k", "--mix", "512:0.5",
                "--out", dir.resolve("packed").toString(), "--state-at-doc-boundary", "reset");
        ok(r);
        assertTrue(r.out().contains("sequences"), r.out());
        r = DataTestSupport.data("stats", dir.resolve("packed").toString());
        ok(r);
        assertTrue(r.out().contains("kind:           packed"), r.out());
        assertTrue(r.out().contains("state at document boundaries: reset"), r.out());

        r = DataTestSupport.data("pack", "--data", dir.resolve("pc").toString(), "--seq-len", "2k", "--mix", "4096:0.5", "--out", dir.resolve("p2").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("longer than --seq-len"), r.err());
    }

    @Test
    void synthIsDeterministicAndWritesItsSampleList() throws IOException {
        String[] args = {"synth", "passkey", "--tokenizer", "bytes", "--lengths", "1k,2k", "--count", "3", "--seed", "5", "--out"};
        ok(DataTestSupport.data(concat(args, dir.resolve("a").toString())));
        ok(DataTestSupport.data(concat(args, dir.resolve("b").toString())));
        assertArrayEquals(Files.readAllBytes(dir.resolve("a.bin")), Files.readAllBytes(dir.resolve("b.bin")));
        List<String> samples = Files.readAllLines(dir.resolve("a.samples.jsonl"));
        assertEquals(6, samples.size());
        assertTrue(samples.get(0).contains("\"length\":1024") && samples.get(5).contains("\"length\":2048"), samples.toString());
        CliTestSupport.Run r = DataTestSupport.data("stats", dir.resolve("a").toString(), "--sample-tokens", "2000");
        ok(r);
        assertTrue(r.out().contains("The pass key is"), r.out());

        r = DataTestSupport.data("synth", "niah", "--tokenizer", "bytes", "--lengths", "50", "--count", "1", "--out", dir.resolve("c").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("too short"), r.err());
    }

    @Test
    void helpAndUsageErrors() {
        CliTestSupport.Run r = DataTestSupport.data("--help");
        ok(r);
        for (String sub : new String[]{"build", "pack", "synth", "stats"}) assertTrue(r.out().contains(sub), r.out());
        r = DataTestSupport.data("build", "--help");
        ok(r);
        assertTrue(r.out().contains("--skip-bad"), r.out());
        r = DataTestSupport.data("build", "--format", "text");
        assertEquals(2, r.exitCode(), "missing required options");
        r = DataTestSupport.data("build", "--input", "x.jsonl", "--format", "yaml", "--tokenizer", "bytes", "--out", dir.resolve("y").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("unknown input format 'yaml'"), r.err());
    }

    private static String[] concat(String[] a, String b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + 1);
        out[a.length] = b;
        return out;
    }
}
