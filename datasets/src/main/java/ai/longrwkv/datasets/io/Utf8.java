package ai.longrwkv.datasets.io;

import java.util.Arrays;

/** Strict UTF-8 checks and encoding: input data with broken text is an error the user must see, not a U+FFFD. */
public final class Utf8 {
    private Utf8() { }

    /**
     * Checks bytes that arrive in consecutive pieces (a character may be split between pieces) and counts lines, so
     * that an error can name the line. Rules of RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
     */
    public static final class Validator {
        private int needed;
        private int lower = 0x80, upper = 0xbf;
        private long line = 1;
        private long offset;

        /** Checks bytes[from, to); on the first invalid byte throws {@link InvalidUtf8Exception}. */
        public void feed(byte[] bytes, int from, int to) {
            for (int i = from; i < to; i++) {
                int b = bytes[i] & 0xff;
                if (needed > 0) {
                    if (b < lower || b > upper) throw invalid(b, offset + (i - from));
                    lower = 0x80;
                    upper = 0xbf;
                    needed--;
                    continue;
                }
                if (b < 0x80) {
                    if (b == '\n') line++;
                } else if (b >= 0xc2 && b <= 0xdf) {
                    expect(1, 0x80, 0xbf);
                } else if (b == 0xe0) {
                    expect(2, 0xa0, 0xbf);
                } else if (b == 0xed) {
                    expect(2, 0x80, 0x9f);
                } else if (b >= 0xe1 && b <= 0xef) {
                    expect(2, 0x80, 0xbf);
                } else if (b == 0xf0) {
                    expect(3, 0x90, 0xbf);
                } else if (b == 0xf4) {
                    expect(3, 0x80, 0x8f);
                } else if (b >= 0xf1 && b <= 0xf3) {
                    expect(3, 0x80, 0xbf);
                } else {
                    throw invalid(b, offset + (i - from));
                }
            }
            offset += to - from;
        }

        /** The input ended: an unfinished character is an error. */
        public void finish() {
            if (needed > 0) throw new InvalidUtf8Exception(line, "invalid UTF-8: the text ends inside a multi-byte character");
        }

        /** The 1-based line the next byte is on. */
        public long line() {
            return line;
        }

        private void expect(int continuationBytes, int nextLower, int nextUpper) {
            needed = continuationBytes;
            lower = nextLower;
            upper = nextUpper;
        }

        private InvalidUtf8Exception invalid(int b, long at) {
            return new InvalidUtf8Exception(line, String.format("invalid UTF-8: byte 0x%02x at byte offset %d", b, at));
        }
    }

    /** Invalid UTF-8 on a given line (of the bytes fed to one validator). */
    public static final class InvalidUtf8Exception extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;
        private final long line;

        InvalidUtf8Exception(long line, String message) {
            super(message);
            this.line = line;
        }

        public long line() {
            return line;
        }
    }

    /** Throws {@link InvalidUtf8Exception} unless bytes[from, to) is complete, valid UTF-8. */
    public static void check(byte[] bytes, int from, int to) {
        // ASCII is the common case and needs no state machine
        int i = from;
        while (i < to && bytes[i] >= 0) i++;
        if (i == to) return;
        Validator v = new Validator();
        v.feed(bytes, from, to);
        v.finish();
    }

    /**
     * UTF-8 bytes of a Java string. A lone surrogate (which JSON can write as "\ud800") has no UTF-8 encoding; where
     * String.getBytes would silently write '?', this throws, naming `what`.
     */
    public static byte[] encode(String s, String what) {
        int n = s.length();
        int ascii = 0;
        while (ascii < n && s.charAt(ascii) < 0x80) ascii++;
        if (ascii == n) return s.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        // at most 3 bytes per UTF-16 unit (a surrogate pair is 2 units for 4 bytes)
        byte[] out = new byte[ascii + (n - ascii) * 3];
        for (int i = 0; i < ascii; i++) out[i] = (byte) s.charAt(i);
        int pos = ascii;
        for (int i = ascii; i < n; i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                out[pos++] = (byte) c;
            } else if (c < 0x800) {
                out[pos++] = (byte) (0xc0 | (c >> 6));
                out[pos++] = (byte) (0x80 | (c & 0x3f));
            } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                int cp = Character.toCodePoint(c, s.charAt(++i));
                out[pos++] = (byte) (0xf0 | (cp >> 18));
                out[pos++] = (byte) (0x80 | ((cp >> 12) & 0x3f));
                out[pos++] = (byte) (0x80 | ((cp >> 6) & 0x3f));
                out[pos++] = (byte) (0x80 | (cp & 0x3f));
            } else if (Character.isSurrogate(c)) {
                throw new IllegalArgumentException(String.format("%s holds a lone surrogate \\u%04x at character %d, which has no UTF-8 encoding", what, (int) c, i));
            } else {
                out[pos++] = (byte) (0xe0 | (c >> 12));
                out[pos++] = (byte) (0x80 | ((c >> 6) & 0x3f));
                out[pos++] = (byte) (0x80 | (c & 0x3f));
            }
        }
        return Arrays.copyOf(out, pos);
    }
}
