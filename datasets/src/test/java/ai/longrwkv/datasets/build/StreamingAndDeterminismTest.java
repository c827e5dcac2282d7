package ai.longrwkv.datasets.build;

import ai.longrwkv.core.tokenizer.WorldTokenizer;
import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.io.IntList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** Big text files streamed in pieces give the tokens of the whole; output bytes depend only on inputs and options. */
class StreamingAndDeterminismTest {
    @TempDir
    Path dir;

    private static String mixedText(int chars, long seed) {
        String[] words = {"the", "state", "of", "RWKV", " ", "  ", "\n", "\n\n", "中文", "日本語", "🙂", "ok.", "tab\t", "0123456789",
                "https://example.com/path?q=1", "====", "    indented", "привет", "ü", "naïve"};
        Random rng = new Random(seed);
        StringBuilder sb = new StringBuilder();
        while (sb.length() < chars) sb.append(words[rng.nextInt(words.length)]).append(rng.nextInt(4) == 0 ? "" : " ");
        return sb.toString();
    }

    @Test
    void streamingEncoderGivesExactlyTheTokensOfTheWholeText() throws IOException {
        WorldTokenizer world = TestSupport.world();
        byte[] text = mixedText(300_000, 1).getBytes(StandardCharsets.UTF_8);
        int[] whole = world.encode(text);
        int[] lengths = GreedyTokenizers.tokenByteLengths(world);
        for (int piece : new int[]{512, 4096, 65536}) {
            IntList streamed = new IntList();
            long bytes = new StreamingTextEncoder(world, lengths, piece).encode(new ByteArrayInputStream(text), streamed::add, n -> { });
            assertEquals(text.length, bytes);
            assertArrayEquals(whole, streamed.toArray(), "piece size " + piece);
        }
    }

    @Test
    void largeTextFilesAreStreamedIntoOneDocument() throws IOException {
        WorldTokenizer world = TestSupport.world();
        String text = mixedText(200_000, 2);
        Path big = TestSupport.write(dir.resolve("big.txt"), text);
        Path small = TestSupport.write(dir.resolve("small.txt"), "small one");
        DatasetBuilder b = new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, world, TestSupport.worldSpec(), false, false, 2, null));
        b.wholeTextFileBytes = 10_000;      // so that big.txt takes the streaming path
        b.textPieceBytes = 3000;
        b.build(List.of(small, big, small), dir.resolve("out"));
        try (BinIdxDataset data = BinIdxDataset.open(dir.resolve("out"))) {
            assertEquals(3, data.documentCount());
            int[] doc = data.document(1);
            assertArrayEquals(world.encode(text), Arrays.copyOf(doc, doc.length - 1));
            assertEquals(0, doc[doc.length - 1]);
            assertArrayEquals(data.document(0), data.document(2));
        }
    }

    private Path chatInput(int records) throws IOException {
        List<String> lines = new ArrayList<>();
        Random rng = new Random(3);
        for (int i = 0; i < records; i++) {
            lines.add("{\"messages\": [{\"role\": \"user\", \"content\": \"question " + i + " " + mixedText(rng.nextInt(3000), i).replace("\\", "")
                    .replace("\"", "").replace("\n", "\\n").replace("\t", "\\t") + "\"}, {\"role\": \"assistant\", \"content\": \"answer " + i + "\"}]}");
        }
        return TestSupport.writeLines(dir.resolve("chat.jsonl"), lines);
    }

    private byte[][] build(Path in, String name, int threads, Long seed) throws IOException {
        WorldTokenizer world = TestSupport.world();
        new DatasetBuilder(new DatasetBuilder.Options(InputFormat.CHAT, world, "world", false, false, threads, seed)).build(List.of(in), dir.resolve(name));
        List<byte[]> out = new ArrayList<>();
        for (String ext : new String[]{".bin", ".idx", ".mask", ".meta.json"}) out.add(Files.readAllBytes(dir.resolve(name + ext)));
        return out.toArray(new byte[0][]);
    }

    @Test
    void sameInputsSameBytesWhateverTheThreadCountAndShuffleBySeed() throws IOException {
        Path in = chatInput(1500);   // about 2.5 MB: several batches in flight
        byte[][] one = build(in, "t1", 1, null), three = build(in, "t3", 3, null), again = build(in, "again", 3, null);
        for (int i = 0; i < one.length; i++) {
            assertArrayEquals(one[i], three[i], "file " + i + ", 1 vs 3 threads");
            assertArrayEquals(one[i], again[i], "file " + i + ", run again");
        }
        byte[][] s1 = build(in, "s1", 2, 9L), s2 = build(in, "s2", 2, 9L), s3 = build(in, "s3", 2, 10L);
        for (int i = 0; i < s1.length; i++) assertArrayEquals(s1[i], s2[i], "shuffled file " + i + ", same seed");
        assertFalse(Arrays.equals(s1[0], s3[0]), "another seed, another order");
        assertFalse(Arrays.equals(s1[0], one[0]), "shuffled differs from input order");
        assertEquals(one[0].length, s1[0].length, "the same tokens, reordered");
        try (BinIdxDataset a = BinIdxDataset.open(dir.resolve("t1")); BinIdxDataset s = BinIdxDataset.open(dir.resolve("s1"))) {
            Set<String> docsA = new HashSet<>(), docsS = new HashSet<>();
            for (int i = 0; i < a.documentCount(); i++) docsA.add(Arrays.toString(a.document(i)) + Arrays.toString(a.mask(i)));
            for (int i = 0; i < s.documentCount(); i++) docsS.add(Arrays.toString(s.document(i)) + Arrays.toString(s.mask(i)));
            assertEquals(docsA, docsS, "the same documents with the same masks");
        }
    }

    @Test
    void gzipInputIsReadLikeThePlainFile() throws IOException {
        Path plain = TestSupport.writeLines(dir.resolve("in.jsonl"), List.of("{\"text\": \"one\"}", "{\"text\": \"two\"}"));
        Path gz = dir.resolve("in.jsonl.gz");
        try (GZIPOutputStream out = new GZIPOutputStream(Files.newOutputStream(gz))) {
            out.write(Files.readAllBytes(plain));
        }
        DatasetBuilder b = new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, TestSupport.bytes(), "bytes", false, false, 1, null));
        b.build(List.of(plain), dir.resolve("p"));
        b.build(List.of(gz), dir.resolve("g"));
        assertArrayEquals(Files.readAllBytes(dir.resolve("p.bin")), Files.readAllBytes(dir.resolve("g.bin")));
    }
}
