package ai.longrwkv.datasets.io;

import ai.longrwkv.core.tokenizer.ByteTokenizer;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.build.DatasetBuilder;
import ai.longrwkv.datasets.build.InputFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** An interrupted run leaves the previous dataset (or none), never a half-written one that looks valid. */
class AtomicOutputTest {
    @TempDir
    Path dir;

    private static final String[] EXTENSIONS = {".bin", ".idx", ".mask", ".meta.json"};

    private Path input(String name, int records, String word) throws IOException {
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < records; i++) lines.add("{\"text\": \"" + word + " " + i + "\"}");
        return TestSupport.writeLines(dir.resolve(name), lines);
    }

    private List<byte[]> snapshot(String prefix) throws IOException {
        List<byte[]> out = new ArrayList<>();
        for (String ext : EXTENSIONS) out.add(Files.readAllBytes(dir.resolve(prefix + ext)));
        return out;
    }

    private List<String> tempFiles() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.contains(".tmp-")).toList();
        }
    }

    private static DatasetBuilder builder(Tokenizer t) {
        return new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, t, "bytes", false, false, 1, null));
    }

    @Test
    void killedMidWriteLeavesThePreviousDatasetIntact() throws Exception {
        Path out = dir.resolve("out");
        builder(ByteTokenizer.INSTANCE).build(List.of(input("old.jsonl", 10, "old")), out);
        List<byte[]> before = snapshot("out");

        // 1 kB records at 3 ms each: the 1 MB write buffer first reaches the temporary .bin after about 1.5 s,
        // and the whole run would take 12 s, so the kill below lands in the middle of the writing
        Path slowInput = input("new.jsonl", 4000, "new".repeat(330));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "-Dlongrwkv.noProgress=true",
                SlowBuildMain.class.getName(), slowInput.toString(), out.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile()).start();
        try {
            // wait until the child has written part of the new .bin under its temporary name
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            boolean midWrite = false;
            while (System.nanoTime() < deadline && child.isAlive()) {
                for (String t : tempFiles()) {
                    if (t.startsWith("out.bin.tmp-") && Files.size(dir.resolve(t)) > 0) midWrite = true;
                }
                if (midWrite) break;
                Thread.sleep(20);
            }
            assertTrue(midWrite, "the child started writing: " + Files.readString(dir.resolve("child.log")));
        } finally {
            child.destroyForcibly();    // SIGKILL: no shutdown hook, no cleanup
            child.waitFor(30, TimeUnit.SECONDS);
        }
        assertFalse(tempFiles().isEmpty(), "a killed process leaves its temporary files");
        List<byte[]> after = snapshot("out");
        for (int i = 0; i < EXTENSIONS.length; i++) assertArrayEquals(before.get(i), after.get(i), EXTENSIONS[i] + " unchanged");
        try (BinIdxDataset data = BinIdxDataset.open(out)) {
            assertEquals(10, data.documentCount());
        }

        // the next run for the same output removes what the dead process left
        builder(ByteTokenizer.INSTANCE).build(List.of(input("small.jsonl", 3, "next")), out);
        assertEquals(List.of(), tempFiles());
        try (BinIdxDataset data = BinIdxDataset.open(out)) {
            assertEquals(3, data.documentCount());
        }
    }

    @Test
    void aFailureMidRunLeavesNoOutputAndNoTemporaryFiles() throws IOException {
        Tokenizer failsLate = new Tokenizer() {
            int calls;
            @Override
            public synchronized int[] encode(byte[] utf8) {
                if (++calls == 500) throw new IllegalStateException("simulated crash while tokenizing");
                return ByteTokenizer.INSTANCE.encode(utf8);
            }
            @Override public byte[] decode(int[] ids) { return ByteTokenizer.INSTANCE.decode(ids); }
            @Override public int vocabSize() { return 256; }
            @Override public String name() { return "fails"; }
        };
        Path in = input("in.jsonl", 100_000, "x");    // several batches: the failure comes after output was written
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> builder(failsLate).build(List.of(in), dir.resolve("fresh")));
        assertTrue(e.getMessage().contains("simulated"));
        for (String ext : EXTENSIONS) assertFalse(Files.exists(dir.resolve("fresh" + ext)), ext);
        assertEquals(List.of(), tempFiles());
    }

    @Test
    void commitPutsTheMarkerLastAndCleansUp() throws IOException {
        Path a = dir.resolve("set.bin"), marker = dir.resolve("set.idx");
        Files.writeString(marker, "old marker");
        try (AtomicFileSet files = new AtomicFileSet()) {
            Files.writeString(files.temp(a), "data");
            Path markerTemp = files.temp(marker);
            Files.writeString(markerTemp, "new marker");
            assertEquals("old marker", Files.readString(marker), "nothing changes before commit");
            files.commit(marker);
        }
        assertEquals("data", Files.readString(a));
        assertEquals("new marker", Files.readString(marker));
        assertEquals(List.of(), tempFiles());
        try (AtomicFileSet files = new AtomicFileSet()) {
            Files.writeString(files.temp(dir.resolve("never.bin")), "abandoned");
        }
        assertFalse(Files.exists(dir.resolve("never.bin")));
        assertEquals(List.of(), tempFiles(), "closed without commit: temporary files deleted");
        assertTrue(new File(dir.toFile(), "set.bin").isFile());
    }
}
