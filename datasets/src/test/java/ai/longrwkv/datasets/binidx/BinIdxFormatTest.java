package ai.longrwkv.datasets.binidx;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.WorldTokenizer;
import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.build.DatasetBuilder;
import ai.longrwkv.datasets.build.InputFormat;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The .idx / .bin / .mask bytes, field by field, against the format (docs/formats.md, binidx section). */
class BinIdxFormatTest {
    @TempDir
    Path dir;

    private Path build(Tokenizer tokenizer, String spec, String... texts) throws IOException {
        List<String> lines = new ArrayList<>();
        for (String t : texts) lines.add("{\"text\": \"" + t + "\"}");
        Path in = TestSupport.writeLines(dir.resolve("in.jsonl"), lines);
        Path out = dir.resolve("out");
        new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, tokenizer, spec, false, false, 2, null)).build(List.of(in), out);
        return out;
    }

    @Test
    void indexAndBinBytesFieldByField() throws IOException {
        Path out = build(TestSupport.bytes(), "bytes", "hi", "abc");
        ByteBuffer idx = ByteBuffer.wrap(Files.readAllBytes(dir.resolve("out.idx"))).order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[9];
        idx.get(magic);
        assertArrayEquals(new byte[]{'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0}, magic);
        assertEquals(1L, idx.getLong(), "version");
        assertEquals(8, idx.get(), "dtype code 8 = uint16");
        assertEquals(2L, idx.getLong(), "count = documents");
        assertEquals(3L, idx.getLong(), "doc_count = count + 1");
        assertEquals(3, idx.getInt(), "size of 'hi' + token 0");
        assertEquals(4, idx.getInt(), "size of 'abc' + token 0");
        assertEquals(0L, idx.getLong(), "pointer 0");
        assertEquals(6L, idx.getLong(), "pointer 1 = 3 tokens * 2 bytes");
        assertEquals(0L, idx.getLong(), "doc_idx[0]");
        assertEquals(1L, idx.getLong(), "doc_idx[1]");
        assertEquals(2L, idx.getLong(), "doc_idx[2]");
        assertFalse(idx.hasRemaining(), "nothing after doc_idx");

        ByteBuffer bin = ByteBuffer.wrap(Files.readAllBytes(dir.resolve("out.bin"))).order(ByteOrder.LITTLE_ENDIAN);
        int[] tokens = new int[bin.remaining() / 2];
        for (int i = 0; i < tokens.length; i++) tokens[i] = bin.getShort() & 0xffff;
        assertArrayEquals(new int[]{'h', 'i', 0, 'a', 'b', 'c', 0}, tokens);

        ByteBuffer mask = ByteBuffer.wrap(Files.readAllBytes(dir.resolve("out.mask"))).order(ByteOrder.LITTLE_ENDIAN);
        byte[] maskMagic = new byte[8];
        mask.get(maskMagic);
        assertEquals("LRWKVMSK", new String(maskMagic, StandardCharsets.US_ASCII));
        assertEquals(1L, mask.getLong(), "mask version");
        assertEquals(7L, mask.getLong(), "mask token count");
        byte[] flags = new byte[mask.remaining()];
        mask.get(flags);
        assertEquals("1111111", TestSupport.flags(flags), "text: everything trained, token 0 included");

        try (BinIdxDataset data = BinIdxDataset.open(out)) {
            assertEquals(2, data.documentCount());
            assertEquals(7, data.tokenCount());
            assertArrayEquals(new int[]{'a', 'b', 'c', 0}, data.document(1));
            assertEquals(3, data.documentStart(1));
            assertTrue(data.hasMask());
            assertEquals(7, data.trainedTokenCount());
            int[] flat = new int[4];
            data.readTokens(2, flat, 0, 4);
            assertArrayEquals(new int[]{0, 'a', 'b', 'c'}, flat);
        }
    }

    @Test
    void worldTokensMatchTheTokenizer() throws IOException {
        WorldTokenizer world = TestSupport.world();
        String[] texts = {"Hello world, this is RWKV.", "中文和 emoji 🙂 too", "tabs\\tand\\nnewlines"};
        Path out = build(world, TestSupport.worldSpec(), texts);
        String[] decoded = {"Hello world, this is RWKV.", "中文和 emoji 🙂 too", "tabs\tand\nnewlines"};
        try (BinIdxDataset data = BinIdxDataset.open(out)) {
            assertEquals(TokenDtype.UINT16, data.dtype());
            assertEquals(3, data.documentCount());
            for (int i = 0; i < texts.length; i++) {
                int[] expected = world.encode(decoded[i]);
                int[] doc = data.document(i);
                assertArrayEquals(expected, Arrays.copyOf(doc, doc.length - 1), "document " + i);
                assertEquals(0, doc[doc.length - 1], "document " + i + " ends with token 0");
                assertEquals(decoded[i], new String(world.decode(doc), StandardCharsets.UTF_8));
            }
        }
    }

    @Test
    void trainingSequenceShiftsTheFlagsOntoThePredictingPosition() {
        TokenSequence s = BinIdxDataset.toTrainingSequence(new int[]{5, 6, 7, 0}, new byte[]{0, 0, 1, 1});
        assertArrayEquals(new int[]{6, 7, 0, -1}, s.targets());
        assertArrayEquals(new float[]{0, 1, 1, 0}, s.mask());
    }

    /** An independent reader written from the format description, the way RWKV-LM's binidx.py reads (numpy memmap). */
    @Test
    void readableByANumpyBinidxReader() throws Exception {
        Path out = build(TestSupport.bytes(), "bytes", "hi", "abc", "xyz!");
        String script = String.join("\n",
                "import struct, sys, numpy as np",
                "p = sys.argv[1]",
                "dtypes = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: float, 7: np.double, 8: np.uint16}",
                "with open(p + '.idx', 'rb') as f:",
                "    assert f.read(9) == b'MMIDIDX\\x00\\x00'",
                "    assert struct.unpack('<Q', f.read(8)) == (1,)",
                "    (code,) = struct.unpack('<B', f.read(1))",
                "    dtype = dtypes[code]",
                "    (n,) = struct.unpack('<Q', f.read(8))",
                "    (docs,) = struct.unpack('<Q', f.read(8))",
                "    off = f.tell()",
                "buf = memoryview(np.memmap(p + '.idx', mode='r', order='C'))",
                "sizes = np.frombuffer(buf, dtype=np.int32, count=n, offset=off)",
                "pointers = np.frombuffer(buf, dtype=np.int64, count=n, offset=off + sizes.nbytes)",
                "doc_idx = np.frombuffer(buf, dtype=np.int64, count=docs, offset=off + sizes.nbytes + pointers.nbytes)",
                "bin_buf = memoryview(np.memmap(p + '.bin', mode='r', order='C'))",
                "for i in range(n):",
                "    a = np.frombuffer(bin_buf, dtype=dtype, count=int(sizes[i]), offset=int(pointers[i]))",
                "    print(' '.join(str(int(x)) for x in a))",
                "flat = np.frombuffer(bin_buf, dtype=dtype, count=4, offset=2 * np.dtype(dtype).itemsize)",
                "print('flat', ' '.join(str(int(x)) for x in flat))",
                "print('doc_idx', ' '.join(str(int(x)) for x in doc_idx))");
        Path py = TestSupport.write(dir.resolve("read.py"), script);
        Process p;
        try {
            p = new ProcessBuilder("python3", py.toString(), out.toString()).redirectErrorStream(true).start();
        } catch (IOException e) {
            Assumptions.assumeTrue(false, "python3 not available");
            return;
        }
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        Assumptions.assumeFalse(output.contains("No module named 'numpy'"), "numpy not installed");
        assertEquals(0, p.exitValue(), output);
        assertEquals(String.join("\n", "104 105 0", "97 98 99 0", "120 121 122 33 0", "flat 0 97 98 99", "doc_idx 0 1 2 3") + "\n", output);
    }

    @Test
    void tokenIdsThatDoNotFitTheDtypeAreAnError() throws IOException {
        Path bin = dir.resolve("x.bin"), idx = dir.resolve("x.idx");
        try (BinIdxWriter w = new BinIdxWriter(bin, idx, null, TokenDtype.UINT16)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.add(new int[]{1, 65536}, null));
            assertTrue(e.getMessage().contains("65536") && e.getMessage().contains("uint16"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> w.add(new int[]{-1}, null));
        }
        // and through the builder, with a tokenizer whose ids go past 16 bits but claims a 65536 vocab
        Tokenizer liar = new Tokenizer() {
            @Override public int[] encode(byte[] utf8) { return new int[]{70000}; }
            @Override public byte[] decode(int[] ids) { return new byte[0]; }
            @Override public int vocabSize() { return 65536; }
            @Override public String name() { return "liar"; }
        };
        Path in = TestSupport.writeLines(dir.resolve("in.jsonl"), List.of("{\"text\": \"a\"}"));
        DatasetBuilder b = new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, liar, "liar", false, false, 1, null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.build(List.of(in), dir.resolve("liar")));
        assertTrue(e.getMessage().contains("70000") && e.getMessage().contains("does not fit"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("liar.idx")));
        assertFalse(Files.exists(dir.resolve("liar.bin")));
    }

    @Test
    void mismatchedOrTruncatedFilesAreRefused() throws IOException {
        Path out = build(TestSupport.bytes(), "bytes", "hello", "world");
        byte[] bin = Files.readAllBytes(dir.resolve("out.bin"));
        Files.write(dir.resolve("out.bin"), Arrays.copyOf(bin, bin.length - 2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BinIdxDataset.open(out));
        assertTrue(e.getMessage().contains("out.bin has 22 bytes"), e.getMessage());
        Files.write(dir.resolve("out.bin"), bin);
        byte[] mask = Files.readAllBytes(dir.resolve("out.mask"));
        Files.write(dir.resolve("out.mask"), Arrays.copyOf(mask, mask.length - 1));
        e = assertThrows(IllegalArgumentException.class, () -> BinIdxDataset.open(out));
        assertTrue(e.getMessage().contains("out.mask"), e.getMessage());
        Files.delete(dir.resolve("out.idx"));
        e = assertThrows(IllegalArgumentException.class, () -> BinIdxDataset.open(out));
        assertTrue(e.getMessage().contains("out.idx not found") && e.getMessage().contains("incomplete"), e.getMessage());
        Files.write(dir.resolve("junk.idx"), "not an index at all, really not, whatever the extension says".getBytes(StandardCharsets.US_ASCII));
        e = assertThrows(IllegalArgumentException.class, () -> BinIdxDataset.open(dir.resolve("junk")));
        assertTrue(e.getMessage().contains("junk.idx") && e.getMessage().contains("magic"), e.getMessage());
    }
}
