package ai.longrwkv.core.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The RWKV World tokenizer (rwkv_vocab_v20230424.txt, 65529 tokens): UTF-8 bytes, then a greedy longest match
 * from left to right, as ChatRWKV's TRIE_TOKENIZER does. There are no special tokens: "&lt;|endoftext|&gt;" is
 * ordinary text, and id 0 (end-of-text) is not in the file.
 *
 * <p>File format, one token per line (LF or CRLF): {@code <id> <python literal> <byte length>}, e.g.
 * {@code 258 '\t\n' 2} or {@code 256 b'\xff' 1}. The id is before the first space, the byte length after the last
 * one, and the literal in between (it may hold spaces itself).
 */
public final class WorldTokenizer implements Tokenizer {
    /** The largest id a vocab file may use; keeps a corrupt id from allocating gigabytes. */
    static final int MAX_ID = 1 << 24;
    /** Bounds on what is read: the real file is 1.1 MB with lines of at most a few hundred bytes. */
    static final int MAX_FILE_BYTES = 64 << 20;
    static final int MAX_LINE_BYTES = 1 << 20;
    /** Entries (ids 1..65529) of rwkv_vocab_v20230424.txt, the vocab of every RWKV World model (65536 embedding rows). */
    public static final int WORLD_VOCAB_ENTRIES = 65529;
    static final String WORLD_VOCAB_FILE = "rwkv_vocab_v20230424.txt";
    /**
     * SHA-256 over the entries of rwkv_vocab_v20230424.txt in file order, each as int32 LE id, int32 LE byte length,
     * the bytes (the same for its LF and CRLF copies): of the first 1000 entries, and of all.
     */
    static final int FINGERPRINT_PREFIX_ENTRIES = 1000;
    static final String WORLD_PREFIX_SHA256 = "912cdbd5d57a821e2ba0156c786c7052c6036cff8d1965de7d14d05694c196e1";
    static final String WORLD_SHA256 = "1e6e1adc8d10aeee528862d6d6ce66db9c4ae254a7e6636f81cd6765ca053219";

    private final String name;
    private final ByteTrie trie;
    /** Token bytes of every id, back to back: id i is tokenData[tokenStart[i], tokenStart[i + 1]). Unused ids are empty. */
    private final byte[] tokenData;
    private final int[] tokenStart;
    /** present[i]: id i is a token (ids may in principle have gaps; id 0 never is). */
    private final boolean[] present;
    private final int tokenCount;
    private final int maxTokenLength;

    private WorldTokenizer(String name, byte[][] bytesById, int tokenCount) {
        this.name = name;
        this.tokenCount = tokenCount;
        int ids = bytesById.length;
        present = new boolean[ids];
        tokenStart = new int[ids + 1];
        int total = 0, longest = 0;
        for (int id = 0; id < ids; id++) {
            tokenStart[id] = total;
            if (bytesById[id] != null) {
                present[id] = true;
                total += bytesById[id].length;
                longest = Math.max(longest, bytesById[id].length);
            }
        }
        tokenStart[ids] = total;
        maxTokenLength = longest;
        tokenData = new byte[total];
        byte[][] trieTokens = new byte[tokenCount][];
        int[] trieIds = new int[tokenCount];
        int k = 0;
        for (int id = 0; id < ids; id++) {
            if (bytesById[id] == null) continue;
            System.arraycopy(bytesById[id], 0, tokenData, tokenStart[id], bytesById[id].length);
            trieTokens[k] = bytesById[id];
            trieIds[k++] = id;
        }
        trie = ByteTrie.build(trieTokens, trieIds);
    }

    /**
     * Reads a vocab file. A missing file or a line that is not {@code <id> <literal> <len>} with a matching length,
     * a new positive id and new bytes is an IllegalArgumentException ({@link VocabFormatException} for lines) that
     * names the file and line.
     */
    public static WorldTokenizer load(Path vocabFile) {
        return parse(vocabFile, readBounded(vocabFile));
    }

    /**
     * The file's bytes, read in chunks with bounds (a device such as /dev/zero or a huge file given by mistake must
     * not exhaust memory): at most {@link #MAX_FILE_BYTES}, and no line longer than {@link #MAX_LINE_BYTES}.
     */
    static byte[] readBounded(Path file) {
        if (Files.isDirectory(file)) throw new IllegalArgumentException(file + ": is a directory, expected a tokenizer vocab file");
        try (InputStream in = Files.newInputStream(file)) {
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            long total = 0;
            long lineStart = 0;
            int line = 1;
            int n;
            while ((n = in.read(buf)) > 0) {
                for (int i = 0; i < n; i++) {
                    if (buf[i] == '\n') {
                        lineStart = total + i + 1;
                        line++;
                    } else if (total + i + 1 - lineStart > MAX_LINE_BYTES) {
                        throw new VocabFormatException(file, line, "the line is longer than " + MAX_LINE_BYTES
                                + " bytes; a vocab line is `<id> <python literal> <byte length>` (the World vocab's longest is "
                                + "about 500 bytes): not a vocab file");
                    }
                }
                total += n;
                if (total > MAX_FILE_BYTES) {
                    throw new IllegalArgumentException(file + ": more than " + MAX_FILE_BYTES + " bytes, expected a tokenizer vocab file "
                            + "(rwkv_vocab_v20230424.txt is 1,093,733 bytes)");
                }
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("tokenizer vocab file not found: " + file);
        } catch (java.nio.file.AccessDeniedException e) {
            throw new IllegalArgumentException(file + ": cannot read the tokenizer vocab file (access denied)");
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read the tokenizer vocab file: " + e.getMessage());
        }
    }

    /** Parses vocab file content; `file` is only used in names and messages. */
    static WorldTokenizer parse(Path file, byte[] content) {
        CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        List<byte[]> bytesOfLine = new ArrayList<>();
        List<Integer> idOfLine = new ArrayList<>();
        Map<Integer, Integer> lineOfId = new HashMap<>();
        // Token bytes as ISO-8859-1 strings (one char per byte): a cheap hashable key for the duplicate check.
        Map<String, Integer> lineOfBytes = new HashMap<>();
        int maxId = 0;
        int lineNumber = 0;
        java.security.MessageDigest fingerprint = sha256();
        String prefixFingerprint = null;
        int pos = 0;
        while (pos < content.length) {
            lineNumber++;
            int end = pos;
            while (end < content.length && content[end] != '\n') end++;
            int lineEnd = end > pos && content[end - 1] == '\r' ? end - 1 : end;
            String line;
            try {
                line = utf8.decode(ByteBuffer.wrap(content, pos, lineEnd - pos)).toString();
            } catch (CharacterCodingException e) {
                throw new VocabFormatException(file, lineNumber, "not valid UTF-8");
            }
            pos = end + 1;

            int firstSpace = line.indexOf(' ');
            int lastSpace = line.lastIndexOf(' ');
            if (firstSpace < 0 || lastSpace == firstSpace) {
                throw new VocabFormatException(file, lineNumber, "expected `<id> <python literal> <byte length>`, got `" + line + "`");
            }
            String idText = line.substring(0, firstSpace);
            String literal = line.substring(firstSpace + 1, lastSpace);
            String lengthText = line.substring(lastSpace + 1);
            int id = parseNumber(idText);
            if (id < 1 || id > MAX_ID) {
                throw new VocabFormatException(file, lineNumber, "expected a token id from 1 to " + MAX_ID + " before the first space, got `" + idText + "`");
            }
            int length = parseNumber(lengthText);
            if (length < 1) {
                throw new VocabFormatException(file, lineNumber, "expected the token's byte length (a positive integer) after the last space, got `" + lengthText + "`");
            }
            byte[] bytes;
            try {
                bytes = PythonLiteral.parse(literal);
            } catch (IllegalArgumentException e) {
                throw new VocabFormatException(file, lineNumber, "bad token literal: " + e.getMessage());
            }
            if (bytes.length != length) {
                throw new VocabFormatException(file, lineNumber, "token " + id + " " + literal + " is " + bytes.length
                        + " bytes long (UTF-8) but the line says " + length);
            }
            Integer earlier = lineOfId.putIfAbsent(id, lineNumber);
            if (earlier != null) {
                throw new VocabFormatException(file, lineNumber, "duplicate token id " + id + " (already on line " + earlier + ")");
            }
            earlier = lineOfBytes.putIfAbsent(new String(bytes, StandardCharsets.ISO_8859_1), lineNumber);
            if (earlier != null) {
                throw new VocabFormatException(file, lineNumber, "token " + id + " " + literal + " has the same bytes as the token on line " + earlier);
            }
            bytesOfLine.add(bytes);
            idOfLine.add(id);
            fingerprint.update(new byte[]{(byte) id, (byte) (id >>> 8), (byte) (id >>> 16), (byte) (id >>> 24),
                    (byte) length, (byte) (length >>> 8), (byte) (length >>> 16), (byte) (length >>> 24)});
            fingerprint.update(bytes);
            if (bytesOfLine.size() == FINGERPRINT_PREFIX_ENTRIES) prefixFingerprint = hex(cloneDigest(fingerprint));
            maxId = Math.max(maxId, id);
        }
        if (bytesOfLine.isEmpty()) {
            throw new VocabFormatException(file, 1, "the vocab file is empty: expected lines `<id> <python literal> <byte length>`");
        }
        // Greedy matching always advances only if every single byte is a token.
        for (int b = 0; b < 256; b++) {
            if (!lineOfBytes.containsKey(String.valueOf((char) b))) {
                throw new VocabFormatException(file, lineNumber, "the vocab has no token for the single byte 0x"
                        + String.format("%02x", b) + " (checked at the end of the file): every byte needs one so that any input can be encoded");
            }
        }
        int count = bytesOfLine.size();
        if (maxId != count) {
            // ids are distinct and >= 1, so maxId > count means some ids in 1..maxId are missing
            boolean[] seen = new boolean[maxId + 1];
            for (int id : idOfLine) seen[id] = true;
            int missing = 1;
            while (seen[missing]) missing++;
            throw new VocabFormatException(file, lineNumber, "token ids have gaps: id " + missing + " is missing (read " + count
                    + " entries with ids up to " + maxId + "; a vocab lists every id from 1 to its largest)");
        }
        // The official file, recognised by its name or by its first 1000 entries, must be complete and intact: a
        // copy cut at a line boundary (an interrupted download) or damaged would otherwise load and tokenize wrongly.
        boolean officialName = file.getFileName() != null && file.getFileName().toString().equals(WORLD_VOCAB_FILE);
        if ((officialName || WORLD_PREFIX_SHA256.equals(prefixFingerprint)) && !WORLD_SHA256.equals(hex(fingerprint.digest()))) {
            if (count != WORLD_VOCAB_ENTRIES) {
                throw new VocabFormatException(file, lineNumber, "read " + count + " entries (ids 1.." + count + ") but the RWKV World vocab "
                        + WORLD_VOCAB_FILE + " has " + WORLD_VOCAB_ENTRIES + " (ids 1.." + WORLD_VOCAB_ENTRIES
                        + "): the file is incomplete (an interrupted download?)");
            }
            throw new VocabFormatException(file, lineNumber, "has the " + WORLD_VOCAB_ENTRIES + " entries of " + WORLD_VOCAB_FILE
                    + " but not their contents (the SHA-256 of the entries differs from the official file's): a damaged copy?");
        }
        // A vocab for 65536 embedding rows is the World vocab: an interrupted download cut at a line boundary would
        // otherwise load and silently miss the last tokens.
        if (count > 32767 && count < 65536 && count != WORLD_VOCAB_ENTRIES) {
            throw new VocabFormatException(file, lineNumber, "read " + count + " entries (ids 1.." + count + ") but the RWKV World vocab "
                    + "rwkv_vocab_v20230424.txt has " + WORLD_VOCAB_ENTRIES + " (ids 1.." + WORLD_VOCAB_ENTRIES
                    + "): the file is incomplete (an interrupted download?) or another vocab");
        }
        byte[][] bytesById = new byte[maxId + 1][];
        for (int i = 0; i < bytesOfLine.size(); i++) bytesById[idOfLine.get(i)] = bytesOfLine.get(i);
        WorldTokenizer tokenizer = new WorldTokenizer("world:" + file, bytesById, bytesOfLine.size());
        return tokenizer;
    }

    private static java.security.MessageDigest sha256() {
        try {
            return java.security.MessageDigest.getInstance("SHA-256");
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every Java runtime", e);
        }
    }

    private static java.security.MessageDigest cloneDigest(java.security.MessageDigest d) {
        try {
            return (java.security.MessageDigest) d.clone();
        } catch (CloneNotSupportedException e) {
            throw new IllegalStateException("SHA-256 digests can be cloned", e);
        }
    }

    private static String hex(java.security.MessageDigest d) {
        return hex(d.digest());
    }

    private static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    /** A non-negative decimal number of plain digits, or -1 (no sign, no spaces, no overflow). */
    private static int parseNumber(String s) {
        if (s.isEmpty() || s.length() > 9) return -1;
        int value = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') return -1;
            value = value * 10 + (c - '0');
        }
        return value;
    }

    @Override
    public int[] encode(byte[] utf8) {
        return trie.encode(utf8, 0, utf8.length);
    }

    /** Tokens of utf8[offset, offset + length). */
    public int[] encode(byte[] utf8, int offset, int length) {
        if (offset < 0 || length < 0 || offset + length > utf8.length) {
            throw new IndexOutOfBoundsException("range [" + offset + ", " + offset + "+" + length + ") of " + utf8.length + " bytes");
        }
        return trie.encode(utf8, offset, offset + length);
    }

    @Override
    public byte[] decode(int[] ids) {
        long total = 0;
        for (int i = 0; i < ids.length; i++) {
            int id = ids[i];
            if (id != END_OF_TEXT && (id < 0 || id >= present.length || !present[id])) {
                throw new IllegalArgumentException("token id " + id + " at position " + i + " is not in the vocab of " + name
                        + " (ids 1.." + (present.length - 1) + ", and 0 = end of text)");
            }
            total += tokenStart[id + 1] - tokenStart[id];   // id 0 has no bytes: end of text decodes to nothing
        }
        if (total > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("decoded text is too long for one array: " + total + " bytes");
        byte[] out = new byte[(int) total];
        int pos = 0;
        for (int id : ids) {
            int start = tokenStart[id], length = tokenStart[id + 1] - start;
            if (length == 1) {
                out[pos++] = tokenData[start];
            } else {
                System.arraycopy(tokenData, start, out, pos, length);
                pos += length;
            }
        }
        return out;
    }

    /** The bytes of one token (empty for end-of-text). */
    public byte[] tokenBytes(int id) {
        return decode(new int[]{id});
    }

    /** The id of exactly these bytes, or -1 if they are not one token. */
    public int idOf(byte[] bytes) {
        int id = bytes.length == 0 ? 0 : trie.idOf(bytes);
        return id == 0 ? -1 : id;
    }

    /** Number of tokens in the file (65529 for rwkv_vocab_v20230424). */
    public int tokenCount() {
        return tokenCount;
    }

    /** The largest id in the file. */
    public int maxId() {
        return present.length - 1;
    }

    /** Longest token in bytes (128 for rwkv_vocab_v20230424). */
    public int maxTokenLength() {
        return maxTokenLength;
    }

    /**
     * The model vocab: the ids (end-of-text included) rounded up to a power of two, at least 256. RWKV World models
     * pad the 65530 ids to 65536 embedding rows this way.
     */
    @Override
    public int vocabSize() {
        int n = Math.max(256, present.length);
        return Integer.highestOneBit(n - 1) << 1;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String toString() {
        return name + " (" + tokenCount + " tokens)";
    }
}
