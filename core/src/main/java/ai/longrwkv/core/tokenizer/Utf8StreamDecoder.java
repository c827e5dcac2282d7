package ai.longrwkv.core.tokenizer;

/**
 * Turns a stream of bytes that arrives in pieces (token by token) into text as soon as it is complete. A UTF-8
 * character split across pieces is held back until its last byte arrives; bytes that can no longer become a valid
 * character turn into U+FFFD, one per maximal ill-formed subsequence (the Unicode "best practice", which Python's
 * bytes.decode('utf-8', 'replace') follows; Java's String decoder does too, except that it replaces an encoded
 * surrogate ED A0..BF xx as one unit). However the bytes are split, the text is the same as decoding them at once.
 *
 * <pre>{@code
 * Utf8StreamDecoder text = new Utf8StreamDecoder();
 * for (int id : generated) System.out.print(text.feed(tokenizer.decode(new int[]{id})));
 * System.out.print(text.finish());
 * }</pre>
 * Not thread-safe: one decoder per stream.
 */
public final class Utf8StreamDecoder {
    private static final char REPLACEMENT = '\uFFFD';

    /** Continuation bytes the current character still needs (0: between characters). */
    private int needed;
    /** The code point bits gathered so far. */
    private int codePoint;
    /** Allowed range of the next continuation byte; narrower than 80..BF right after E0, ED, F0 and F4. */
    private int lower = 0x80, upper = 0xbf;

    /** The text completed by these bytes. */
    public String feed(byte[] bytes) {
        return feed(bytes, 0, bytes.length);
    }

    /** The text completed by bytes[offset, offset + length). */
    public String feed(byte[] bytes, int offset, int length) {
        StringBuilder out = new StringBuilder(length + 1);
        feed(bytes, offset, length, out);
        return out.toString();
    }

    /** Appends the text completed by bytes[offset, offset + length) to out. */
    public void feed(byte[] bytes, int offset, int length, StringBuilder out) {
        int end = offset + length;
        for (int i = offset; i < end; i++) {
            int b = bytes[i] & 0xff;
            if (needed > 0) {
                if (b >= lower && b <= upper) {
                    codePoint = (codePoint << 6) | (b & 0x3f);
                    lower = 0x80;
                    upper = 0xbf;
                    if (--needed == 0) out.appendCodePoint(codePoint);
                    continue;
                }
                // The character cannot be completed: replace what we have, then read this byte afresh.
                out.append(REPLACEMENT);
                needed = 0;
                lower = 0x80;
                upper = 0xbf;
            }
            if (b < 0x80) {
                out.append((char) b);
            } else if (b >= 0xc2 && b <= 0xdf) {
                start(1, b & 0x1f, 0x80, 0xbf);
            } else if (b == 0xe0) {
                start(2, b & 0x0f, 0xa0, 0xbf);    // A0: no overlong 3-byte forms
            } else if (b == 0xed) {
                start(2, b & 0x0f, 0x80, 0x9f);    // 9F: no surrogates
            } else if (b >= 0xe1 && b <= 0xef) {
                start(2, b & 0x0f, 0x80, 0xbf);
            } else if (b == 0xf0) {
                start(3, b & 0x07, 0x90, 0xbf);    // 90: no overlong 4-byte forms
            } else if (b == 0xf4) {
                start(3, b & 0x07, 0x80, 0x8f);    // 8F: nothing above U+10FFFF
            } else if (b >= 0xf1 && b <= 0xf3) {
                start(3, b & 0x07, 0x80, 0xbf);
            } else {
                out.append(REPLACEMENT);          // 80..C1 and F5..FF never start a character
            }
        }
    }

    private void start(int continuationBytes, int bits, int nextLower, int nextUpper) {
        needed = continuationBytes;
        codePoint = bits;
        lower = nextLower;
        upper = nextUpper;
    }

    /** Whether bytes of an unfinished character are held back. */
    public boolean hasPendingBytes() {
        return needed > 0;
    }

    /** Ends the stream: an unfinished character becomes U+FFFD. The decoder is then ready for a new stream. */
    public String finish() {
        String rest = needed > 0 ? String.valueOf(REPLACEMENT) : "";
        reset();
        return rest;
    }

    /** Forgets any unfinished character. */
    public void reset() {
        needed = 0;
        codePoint = 0;
        lower = 0x80;
        upper = 0xbf;
    }
}
