package ai.longrwkv.core.tokenizer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Small hand-written vocab files: the format, the greedy match, and hostile files that must fail clearly. */
class VocabFileTest {
    @TempDir
    Path dir;

    /** The 256 single-byte tokens, ids 1..256, as the World file writes them: str literals for ASCII, bytes above. */
    private static StringBuilder byteLines() {
        StringBuilder sb = new StringBuilder();
        for (int b = 0; b < 256; b++) {
            String literal = b < 0x80 ? String.format("'\\x%02x'", b) : String.format("b'\\x%02x'", b);
            sb.append(b + 1).append(' ').append(literal).append(" 1\n");
        }
        return sb;
    }

    private Path write(String name, String content) throws Exception {
        Path f = dir.resolve(name);
        Files.writeString(f, content, StandardCharsets.UTF_8);
        return f;
    }

    private WorldTokenizer small(String extraLines) throws Exception {
        return WorldTokenizer.load(write("small.txt", byteLines() + extraLines));
    }

    @Test
    void greedyLongestMatchOnASmallVocab() throws Exception {
        // "ab" and "abcd" are tokens, "abc" is not: "abce" must fall back to "ab" + "c" + "e"
        WorldTokenizer t = small("257 'ab' 2\n258 'abcd' 4\n259 'cde' 3\n260 '世界' 6\n261 b'\\xe4\\xb8' 2\n");
        assertArrayEquals(new int[]{258}, t.encode("abcd"));
        assertArrayEquals(new int[]{257, 'c' + 1, 'e' + 1}, t.encode("abce"));
        assertArrayEquals(new int[]{258, 'e' + 1}, t.encode("abcde"));      // longest first, even if "cde" could follow "ab"
        assertArrayEquals(new int[]{260}, t.encode("世界"));
        assertArrayEquals(new int[]{261, 0x96 + 1}, t.encode("世"));       // 世 = e4 b8 96
        assertEquals(261, t.tokenCount());
        assertEquals(512, t.vocabSize());
        assertEquals("world:" + dir.resolve("small.txt"), t.name());
    }

    @Test
    void literalForms() throws Exception {
        WorldTokenizer t = small("""
                257 "it's" 4
                258 ' a b ' 5
                259 '\\u00e9\\U0001F600\\n' 7
                260 b'\\xff\\x00z' 3
                261 '\\\\\\'"' 3
                262 '\\101\\0' 2
                263 'é' 2
                """);
        assertArrayEquals("it's".getBytes(StandardCharsets.UTF_8), t.tokenBytes(257));
        assertArrayEquals(" a b ".getBytes(StandardCharsets.UTF_8), t.tokenBytes(258));
        assertArrayEquals("é😀\n".getBytes(StandardCharsets.UTF_8), t.tokenBytes(259));
        assertArrayEquals(new byte[]{(byte) 0xff, 0, 'z'}, t.tokenBytes(260));
        assertArrayEquals("\\'\"".getBytes(StandardCharsets.UTF_8), t.tokenBytes(261));
        assertArrayEquals(new byte[]{'A', 0}, t.tokenBytes(262));
        assertArrayEquals("é".getBytes(StandardCharsets.UTF_8), t.tokenBytes(263));
    }

    @Test
    void crlfLineEndings() throws Exception {
        WorldTokenizer t = WorldTokenizer.load(write("crlf.txt", (byteLines() + "257 ' \\r' 2\n").replace("\n", "\r\n")));
        assertArrayEquals(new byte[]{' ', '\r'}, t.tokenBytes(257));
        assertArrayEquals(new int[]{257, '\n' + 1}, t.encode(" \r\n"));
    }

    /** Loads a file made of the 256 byte lines and then `lines`, expects a VocabFormatException at `line`. */
    private void assertBadLine(String content, int line, String... messageParts) throws Exception {
        Path f = write("bad.txt", content);
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(f));
        assertEquals(f, e.file());
        assertEquals(line, e.line(), e.getMessage());
        assertTrue(e.getMessage().startsWith(f + " line " + line + ": "), e.getMessage());
        for (String part : messageParts) assertTrue(e.getMessage().contains(part), "'" + part + "' not in: " + e.getMessage());
    }

    @Test
    void hostileFiles() throws Exception {
        String ok = byteLines().toString();
        assertBadLine(ok + "257 abc 3\n", 257, "expected a Python literal in quotes");
        assertBadLine(ok + "257 'ab\\x4' 3\n", 257, "\\x", "hex digits");
        assertBadLine(ok + "257 'ab' 3\n", 257, "2 bytes long", "says 3");
        assertBadLine(ok + "257 '世' 1\n", 257, "3 bytes long", "says 1");
        assertBadLine(ok + "100 'ab' 2\n", 257, "duplicate token id 100", "line 100");
        assertBadLine(ok + "x7 'ab' 2\n", 257, "expected a token id", "`x7`");
        assertBadLine(ok + "-7 'ab' 2\n", 257, "expected a token id");
        assertBadLine(ok + "0 'ab' 2\n", 257, "expected a token id");
        assertBadLine(ok + "257 'ab' two\n", 257, "byte length", "`two`");
        assertBadLine(ok + "257 'ab 2\n", 257, "unterminated");
        assertBadLine(ok + "257 'ab\\' 2\n", 257, "unterminated");
        assertBadLine(ok + "257 'a'b 2\n", 257, "after the closing quote");
        assertBadLine(ok + "257 b'é' 2\n", 257, "non-ASCII");
        assertBadLine(ok + "257 '\\ud800' 3\n", 257, "surrogate");
        assertBadLine(ok + "257 'ab'\n", 257, "expected `<id> <python literal> <byte length>`");
        assertBadLine(ok + "257\n", 257, "expected `<id>");
        assertBadLine(ok + "\n", 257, "expected `<id>");
        assertBadLine(ok + "257 'a' 1\n", 257, "same bytes as the token on line 98");
        assertBadLine("", 1, "empty");
        // one missing single byte: encoding could not always advance
        assertBadLine(ok.replace("66 '\\x41' 1\n", ""), 255, "no token for the single byte 0x41");
        // not UTF-8
        Path f = dir.resolve("latin1.txt");
        Files.write(f, (ok + "257 '\u00e9' 2\n").getBytes(StandardCharsets.ISO_8859_1));
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(f));
        assertEquals(257, e.line());
        assertTrue(e.getMessage().contains("UTF-8"), e.getMessage());
    }

    @Test
    void missingFile() {
        Path f = dir.resolve("nope.txt");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WorldTokenizer.load(f));
        assertTrue(e.getMessage().contains("not found") && e.getMessage().contains(f.toString()), e.getMessage());
    }

    /** Issue 13: ids must run from 1 to the largest without gaps (it used to be allowed; a gap means a damaged file). */
    @Test
    void idsWithGapsAreRefused() throws Exception {
        Path f = write("gap.txt", byteLines() + "257 'ab' 2\n1000 'xyz' 3\n");
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(f));
        assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("id 258 is missing") && e.getMessage().contains("read 258 entries with ids up to 1000"), e.getMessage());
    }

    /** Issue 13: the World vocab cut at a line boundary (an interrupted download) is refused with the counts. */
    @Test
    void truncatedWorldVocabIsRefused() throws Exception {
        List<String> lines = Files.readAllLines(TokenizerTestFiles.worldVocab(), StandardCharsets.UTF_8);
        assertEquals(WorldTokenizer.WORLD_VOCAB_ENTRIES, lines.size());
        assertEquals(WorldTokenizer.WORLD_VOCAB_ENTRIES, TokenizerTestFiles.world().tokenCount());
        for (int keep : new int[]{65528, 60000, 40000}) {
            Path cut = write("cut-" + keep + ".txt", String.join("\n", lines.subList(0, keep)) + "\n");
            VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(cut));
            assertTrue(e.getMessage().contains("read " + keep + " entries") && e.getMessage().contains("has 65529"), e.getMessage());
        }
    }

    /** Issue 13: a copy of the World vocab that is short or damaged is refused even where the count alone would pass. */
    @Test
    void shortOrDamagedWorldVocabIsRefused() throws Exception {
        List<String> lines = Files.readAllLines(TokenizerTestFiles.worldVocab(), StandardCharsets.UTF_8);
        // cut at 500 lines, under its own name: few enough tokens for a 1024-row vocab, but it is the World file
        Path named = Files.createDirectory(dir.resolve("named")).resolve("rwkv_vocab_v20230424.txt");
        Files.writeString(named, String.join("\n", lines.subList(0, 500)) + "\n", StandardCharsets.UTF_8);
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(named));
        assertTrue(e.getMessage().contains("read 500 entries") && e.getMessage().contains("65529"), e.getMessage());
        // cut at 20000 lines under another name: recognised by its first 1000 entries
        Path cut = write("cut.txt", String.join("\n", lines.subList(0, 20000)) + "\n");
        e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(cut));
        assertTrue(e.getMessage().contains("read 20000 entries"), e.getMessage());
        // one token changed, still a well-formed file with 65529 distinct entries
        int at = -1;
        for (int i = 30000; i < lines.size() && at < 0; i++) if (lines.get(i).matches("\\d+ '[a-z]{6,}' \\d+")) at = i;
        assertTrue(at > 0);
        String line = lines.get(at);
        int q = line.indexOf('\'') + 1;
        java.util.List<String> damaged = new java.util.ArrayList<>(lines);
        damaged.set(at, line.substring(0, q) + "\\x01" + line.substring(q + 1));
        Path flipped = write("flipped.txt", String.join("\n", damaged) + "\n");
        e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(flipped));
        assertTrue(e.getMessage().contains("damaged copy"), e.getMessage());
        // the official file under another name, and with CRLF line endings, loads
        Path copy = write("copy.txt", String.join("\r\n", lines) + "\r\n");
        assertEquals(WorldTokenizer.WORLD_VOCAB_ENTRIES, WorldTokenizer.load(copy).tokenCount());
    }

    /**
     * Issue 13, mutation fuzzing: copies of the World vocab cut at a line, missing a line, with a duplicated line, cut
     * anywhere or with a byte changed. Each is refused with a VocabFormatException naming the file and a line; none
     * loads (the file is recognised by its first 1000 entries, so even a well-formed change is a damaged copy).
     */
    @Test
    void mutatedWorldVocabsAreAllRefused() throws Exception {
        byte[] original = Files.readAllBytes(TokenizerTestFiles.worldVocab());
        List<String> lines = Files.readAllLines(TokenizerTestFiles.worldVocab(), StandardCharsets.UTF_8);
        java.util.Random rnd = new java.util.Random(2024);
        int refused = 0;
        for (int i = 0; i < 24; i++) {
            byte[] content;
            int kind = i % 5;
            java.util.List<String> ls = new java.util.ArrayList<>(lines);
            switch (kind) {
                case 0 -> content = (String.join("\n", ls.subList(0, 1000 + rnd.nextInt(ls.size() - 1000))) + "\n").getBytes(StandardCharsets.UTF_8);
                case 1 -> {
                    ls.remove(rnd.nextInt(ls.size()));
                    content = (String.join("\n", ls) + "\n").getBytes(StandardCharsets.UTF_8);
                }
                case 2 -> {
                    int j = rnd.nextInt(ls.size());
                    ls.add(j, ls.get(j));
                    content = (String.join("\n", ls) + "\n").getBytes(StandardCharsets.UTF_8);
                }
                case 3 -> content = java.util.Arrays.copyOf(original, 20_000 + rnd.nextInt(original.length - 20_001));
                default -> {
                    content = original.clone();
                    int at = 20_000 + rnd.nextInt(original.length - 20_000);   // after the first 1000 entries
                    content[at] = (byte) (content[at] == 'a' ? 'b' : 'a');
                }
            }
            Path f = dir.resolve("mutant-" + i + ".txt");
            Files.write(f, content);
            VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(f), "mutation " + i + " kind " + kind);
            assertTrue(e.getMessage().startsWith(f + " line "), e.getMessage());
            refused++;
        }
        assertEquals(24, refused);
    }

    /** Issue 13: a device or a file without newlines is refused after a bounded read, not read until memory runs out. */
    @Test
    void endlessOrHugeInputIsRefusedWithBoundedReads() throws Exception {
        Path zero = Path.of("/dev/zero");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isReadable(zero), "/dev/zero not available");
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(zero));
        assertEquals(1, e.line());
        assertTrue(e.getMessage().contains("longer than " + WorldTokenizer.MAX_LINE_BYTES), e.getMessage());
        Path dirAsVocab = Files.createDirectory(dir.resolve("vocab-dir"));
        IllegalArgumentException d = assertThrows(IllegalArgumentException.class, () -> WorldTokenizer.load(dirAsVocab));
        assertTrue(d.getMessage().contains("directory"), d.getMessage());
    }

    /** Issue 13: a 200,000-byte token is a trie path 200,000 nodes deep; building it must not recurse per byte. */
    @Test
    void veryLongTokenDoesNotOverflowTheStack() throws Exception {
        String longToken = "a".repeat(200_000);
        WorldTokenizer t = small("257 '" + longToken + "' 200000\n258 'ab' 2\n");
        assertArrayEquals(new int[]{257}, t.encode(longToken));
        assertArrayEquals(new int[]{257, 258}, t.encode(longToken + "ab"));
        assertArrayEquals(new int[]{258, 'a' + 1}, t.encode("aba"));
        assertEquals(200_000, t.maxTokenLength());
    }
}
