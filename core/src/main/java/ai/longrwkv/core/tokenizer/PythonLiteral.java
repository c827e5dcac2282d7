package ai.longrwkv.core.tokenizer;

import java.util.Arrays;

/**
 * Reads one Python str or bytes literal, as Python's repr() writes them in the vocab file ('abc', "it's", b'\xff'),
 * and returns the bytes it stands for: a str literal is UTF-8 encoded, a bytes literal is taken as is.
 * Escapes follow the Python language reference: \\ \' \" \a \b \f \n \r \t \v, octal \o \oo \ooo, \xhh, and in
 * str literals also \\uXXXX and \\UXXXXXXXX. An unknown escape such as \q keeps its backslash, as Python does.
 * Anything else (no quotes, no closing quote, text after it, bad hex digits) is an IllegalArgumentException whose
 * message says what was expected.
 */
final class PythonLiteral {
    private PythonLiteral() { }

    static byte[] parse(String literal) {
        int n = literal.length();
        int i = 0;
        boolean isBytes = false;
        if (i < n && (literal.charAt(i) == 'b' || literal.charAt(i) == 'B')) {
            isBytes = true;
            i++;
        } else if (i < n && (literal.charAt(i) == 'u' || literal.charAt(i) == 'U')) {
            i++;    // u'...' is an ordinary str literal
        }
        if (i >= n || (literal.charAt(i) != '\'' && literal.charAt(i) != '"')) {
            throw new IllegalArgumentException("expected a Python literal in quotes such as 'abc' or b'\\xff', got " + quoted(literal));
        }
        char quote = literal.charAt(i++);
        ByteSink out = new ByteSink();
        while (true) {
            if (i >= n) throw new IllegalArgumentException("unterminated literal " + quoted(literal) + ": no closing " + quote);
            int c = literal.codePointAt(i);
            if (c == quote) {
                i++;
                break;
            }
            if (c != '\\') {
                if (c >= Character.MIN_SURROGATE && c <= Character.MAX_SURROGATE) {
                    throw new IllegalArgumentException("literal " + quoted(literal) + " holds a lone surrogate, which has no UTF-8 encoding");
                }
                if (isBytes && c > 0x7f) {
                    throw new IllegalArgumentException("bytes literal " + quoted(literal) + " holds the non-ASCII character "
                            + quoted(new String(Character.toChars(c))) + " (Python allows only ASCII there)");
                }
                out.codePoint(c);
                i += Character.charCount(c);
                continue;
            }
            // a backslash: there is always a next character here, else the literal is unterminated
            if (i + 1 >= n) throw new IllegalArgumentException("unterminated literal " + quoted(literal) + ": it ends in a backslash");
            char e = literal.charAt(i + 1);
            i += 2;
            switch (e) {
                case '\\', '\'', '"' -> out.codePoint(e);
                case 'a' -> out.codePoint(7);
                case 'b' -> out.codePoint(8);
                case 'f' -> out.codePoint(12);
                case 'n' -> out.codePoint(10);
                case 'r' -> out.codePoint(13);
                case 't' -> out.codePoint(9);
                case 'v' -> out.codePoint(11);
                case '0', '1', '2', '3', '4', '5', '6', '7' -> {
                    int value = e - '0';
                    for (int k = 0; k < 2 && i < n && literal.charAt(i) >= '0' && literal.charAt(i) <= '7'; k++) {
                        value = value * 8 + (literal.charAt(i++) - '0');
                    }
                    if (isBytes) {
                        if (value > 0xff) throw new IllegalArgumentException("octal escape " + Integer.toOctalString(value) + " in " + quoted(literal) + " is above \\377, the largest byte");
                        out.rawByte(value);
                    } else {
                        out.codePoint(value);
                    }
                }
                case 'x' -> {
                    int value = hex(literal, i, 2, "\\x");
                    i += 2;
                    if (isBytes) out.rawByte(value); else out.codePoint(value);
                }
                case 'u', 'U' -> {
                    if (isBytes) {
                        // not an escape in bytes literals: Python keeps the backslash
                        out.codePoint('\\');
                        out.codePoint(e);
                    } else {
                        int digits = e == 'u' ? 4 : 8;
                        int value = hex(literal, i, digits, "\\" + e);
                        i += digits;
                        if (value > Character.MAX_CODE_POINT) {
                            throw new IllegalArgumentException("\\U escape " + literal.substring(i - digits - 2, i) + " in " + quoted(literal) + " is above U+10FFFF");
                        }
                        if (value >= Character.MIN_SURROGATE && value <= Character.MAX_SURROGATE) {
                            throw new IllegalArgumentException("escape " + literal.substring(i - digits - 2, i) + " in " + quoted(literal)
                                    + " is a lone surrogate, which has no UTF-8 encoding");
                        }
                        out.codePoint(value);
                    }
                }
                case 'N' -> {
                    if (isBytes) {
                        out.codePoint('\\');
                        out.codePoint('N');
                    } else {
                        throw new IllegalArgumentException("named escapes \\N{...} are not supported (in " + quoted(literal) + ")");
                    }
                }
                default -> {
                    // Python keeps an unrecognised escape as it is, backslash included
                    if (isBytes && e > 0x7f) throw new IllegalArgumentException("bytes literal " + quoted(literal) + " holds a non-ASCII character");
                    out.codePoint('\\');
                    i--;    // the character after the backslash is read again as an ordinary character
                }
            }
        }
        if (i != n) {
            throw new IllegalArgumentException("unexpected text " + quoted(literal.substring(i)) + " after the closing quote of " + quoted(literal));
        }
        return out.toArray();
    }

    /** Exactly `digits` hex digits at `from`; the error names the escape. */
    private static int hex(String s, int from, int digits, String escape) {
        if (from + digits > s.length()) {
            throw new IllegalArgumentException("truncated " + escape + " escape in " + quoted(s) + ": expected " + digits + " hex digits");
        }
        int value = 0;
        for (int k = 0; k < digits; k++) {
            int d = Character.digit(s.charAt(from + k), 16);
            if (d < 0 || s.charAt(from + k) > 0x7f) {
                throw new IllegalArgumentException("bad " + escape + " escape in " + quoted(s) + ": expected " + digits
                        + " hex digits, got " + quoted(s.substring(from, from + digits)));
            }
            value = value * 16 + d;
        }
        return value;
    }

    private static String quoted(String s) {
        return "`" + s + "`";
    }

    /** A growing byte array; str characters go in as UTF-8, bytes-literal escapes as raw bytes. */
    private static final class ByteSink {
        private byte[] bytes = new byte[16];
        private int size;

        void rawByte(int b) {
            if (size == bytes.length) bytes = Arrays.copyOf(bytes, size * 2);
            bytes[size++] = (byte) b;
        }

        void codePoint(int c) {
            if (c < 0x80) {
                rawByte(c);
            } else if (c < 0x800) {
                rawByte(0xc0 | (c >> 6));
                rawByte(0x80 | (c & 0x3f));
            } else if (c < 0x10000) {
                rawByte(0xe0 | (c >> 12));
                rawByte(0x80 | ((c >> 6) & 0x3f));
                rawByte(0x80 | (c & 0x3f));
            } else {
                rawByte(0xf0 | (c >> 18));
                rawByte(0x80 | ((c >> 12) & 0x3f));
                rawByte(0x80 | ((c >> 6) & 0x3f));
                rawByte(0x80 | (c & 0x3f));
            }
        }

        byte[] toArray() {
            return Arrays.copyOf(bytes, size);
        }
    }
}
