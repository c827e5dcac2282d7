package ai.longrwkv.core.tokenizer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The World tokenizer on the real vocab file (skipped when shared/oracle is absent). */
class WorldTokenizerTest {

    @Test
    void publishedTestVector() {
        // rwkv.cpp python/rwkv_cpp/rwkv_world_tokenizer.test.py; <|endoftext|> is plain text, not a special token
        String text = "I'll 'd test блабла 以下は、]) -> <|endoftext|><|padding|> int";
        int[] expected = {74, 5229, 274, 101, 32223, 5092, 27980, 2795, 27980, 33, 10399, 10258, 10139, 10079, 1682, 3463,
                295, 125, 25258, 7588, 2318, 125, 790, 125, 49520, 125, 63, 21888};
        WorldTokenizer t = TokenizerTestFiles.world();
        assertArrayEquals(expected, t.encode(text));
        assertEquals(text, new String(t.decode(expected), StandardCharsets.UTF_8));
    }

    @Test
    void derivedTestVectors() {
        WorldTokenizer t = TokenizerTestFiles.world();
        assertArrayEquals(new int[]{11, 994, 2098, 29435, 21800}, t.encode("\nElon Musk has"));
        assertArrayEquals(new int[]{33155, 40213}, t.encode("Hello world"));
        assertArrayEquals(new int[]{35, 1950}, t.encode("\"in"));
        assertArrayEquals(new int[0], t.encode(""));
    }

    @Test
    void vocabShape() {
        WorldTokenizer t = TokenizerTestFiles.world();
        assertEquals(65529, t.tokenCount());
        assertEquals(65529, t.maxId());
        assertEquals(128, t.maxTokenLength());
        assertEquals(65536, t.vocabSize());
        // ids 1..256 are the single bytes 0..255
        for (int b = 0; b < 256; b++) assertArrayEquals(new byte[]{(byte) b}, t.tokenBytes(b + 1));
        assertArrayEquals(new byte[0], t.tokenBytes(0));
        assertArrayEquals("\t\n".getBytes(StandardCharsets.UTF_8), t.tokenBytes(258));
        assertArrayEquals("\u2002".getBytes(StandardCharsets.UTF_8), t.tokenBytes(9804));
        assertEquals(" ".repeat(128), new String(t.tokenBytes(65529), StandardCharsets.UTF_8));
    }

    @Test
    void everyVocabEntryEncodesToItself() {
        WorldTokenizer t = TokenizerTestFiles.world();
        int checked = 0;
        for (int id = 1; id <= t.maxId(); id++) {
            byte[] bytes = t.tokenBytes(id);
            int[] ids = t.encode(bytes);
            if (ids.length != 1 || ids[0] != id) {
                throw new AssertionError("token " + id + " " + Arrays.toString(bytes) + " encodes to " + Arrays.toString(ids));
            }
            assertEquals(id, t.idOf(bytes));
            checked++;
        }
        assertEquals(65529, checked);
    }

    @Test
    void endOfTextDecodesToNothingAndUnknownIdsAreErrors() {
        WorldTokenizer t = TokenizerTestFiles.world();
        assertArrayEquals("ab".getBytes(StandardCharsets.UTF_8), t.decode(new int[]{0, 98, 0, 99, 0}));
        for (int bad : new int[]{65530, 65535, -1, Integer.MAX_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.decode(new int[]{98, bad}));
            assertTrue(e.getMessage().contains("token id " + bad + " at position 1"), e.getMessage());
        }
    }

    @Test
    void unicodeStringsRoundTrip() {
        WorldTokenizer t = TokenizerTestFiles.world();
        Random rnd = new Random(11);
        for (int trial = 0; trial < 300; trial++) {
            String s = TokenizerTestFiles.randomText(rnd, rnd.nextInt(400));
            int[] ids = t.encode(s);
            assertEquals(s, new String(t.decode(ids), StandardCharsets.UTF_8));
            for (int id : ids) assertTrue(id >= 1 && id < t.vocabSize());
        }
        String mixed = "Grüße, 世界! Привет 👋🏽 👨‍👩‍👧‍👦 🇯🇵 e\u0301 한국어 日本語のテキスト <|endoftext|>";
        assertEquals(mixed, new String(t.decode(t.encode(mixed)), StandardCharsets.UTF_8));
    }

    @Test
    void arbitraryBytesRoundTripIncludingInvalidUtf8() {
        WorldTokenizer t = TokenizerTestFiles.world();
        Random rnd = new Random(12);
        for (int trial = 0; trial < 300; trial++) {
            byte[] b = TokenizerTestFiles.randomBytes(rnd, rnd.nextInt(500));
            assertArrayEquals(b, t.decode(t.encode(b)));
        }
        byte[][] invalid = {{(byte) 0xff}, {(byte) 0xc0, (byte) 0x80}, {(byte) 0xed, (byte) 0xa0, (byte) 0x80},
                {(byte) 0xe4, (byte) 0xb8}, {(byte) 0xf0, (byte) 0x9f, (byte) 0x98}, {(byte) 0x80, 'a', (byte) 0xbf}};
        for (byte[] b : invalid) assertArrayEquals(b, t.decode(t.encode(b)));
    }

    @Test
    void greedyLongestMatchAgreesWithNaiveReference() {
        WorldTokenizer t = TokenizerTestFiles.world();
        // Naive reference: from each position try every length from the longest down, look it up in a hash map.
        // Bytes are keyed as ISO-8859-1 strings, one char per byte.
        Map<String, Integer> idOfBytes = new HashMap<>();
        int maxLen = 0;
        for (int id = 1; id <= t.maxId(); id++) {
            byte[] b = t.tokenBytes(id);
            idOfBytes.put(new String(b, StandardCharsets.ISO_8859_1), id);
            maxLen = Math.max(maxLen, b.length);
        }
        Random rnd = new Random(13);
        for (int trial = 0; trial < 150; trial++) {
            byte[] input = randomTokenizerInput(rnd, t);
            String s = new String(input, StandardCharsets.ISO_8859_1);
            int[] expected = new int[input.length];
            int n = 0;
            for (int pos = 0; pos < s.length(); ) {
                for (int len = Math.min(maxLen, s.length() - pos); ; len--) {
                    Integer id = idOfBytes.get(s.substring(pos, pos + len));
                    if (id != null) {
                        expected[n++] = id;
                        pos += len;
                        break;
                    }
                }
            }
            assertArrayEquals(Arrays.copyOf(expected, n), t.encode(input), "trial " + trial);
        }
    }

    /** Runs of vocab tokens glued together (so longer matches straddle them), random text and random bytes. */
    static byte[] randomTokenizerInput(Random rnd, WorldTokenizer t) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int pieces = rnd.nextInt(200);
        for (int i = 0; i < pieces; i++) {
            switch (rnd.nextInt(4)) {
                case 0, 1 -> out.writeBytes(t.tokenBytes(1 + rnd.nextInt(t.maxId())));
                case 2 -> out.writeBytes(TokenizerTestFiles.randomText(rnd, rnd.nextInt(10)).getBytes(StandardCharsets.UTF_8));
                default -> out.writeBytes(TokenizerTestFiles.randomBytes(rnd, rnd.nextInt(4)));
            }
        }
        return out.toByteArray();
    }

    @Test
    void crlfFileGivesTheSameTokenizer(@TempDir Path dir) throws Exception {
        // RWKV-LM ships the same vocab with CRLF line endings
        WorldTokenizer lf = TokenizerTestFiles.world();
        String content = Files.readString(TokenizerTestFiles.worldVocab(), StandardCharsets.UTF_8);
        Path crlfFile = dir.resolve("vocab-crlf.txt");
        Files.writeString(crlfFile, content.replace("\n", "\r\n"), StandardCharsets.UTF_8);
        WorldTokenizer crlf = WorldTokenizer.load(crlfFile);
        assertEquals(lf.tokenCount(), crlf.tokenCount());
        for (int id = 1; id <= lf.maxId(); id++) assertArrayEquals(lf.tokenBytes(id), crlf.tokenBytes(id));
    }

    @Test
    void encodesARangeOfAnArray() {
        WorldTokenizer t = TokenizerTestFiles.world();
        byte[] b = "xxHello worldyy".getBytes(StandardCharsets.UTF_8);
        assertArrayEquals(new int[]{33155, 40213}, t.encode(b, 2, 11));
        assertThrows(IndexOutOfBoundsException.class, () -> t.encode(b, 10, 10));
    }
}
