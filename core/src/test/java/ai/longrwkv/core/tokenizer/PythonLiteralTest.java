package ai.longrwkv.core.tokenizer;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Python literal reader against values worked out by hand from the Python language reference. */
class PythonLiteralTest {
    private static void assertStr(String expectedText, String literal) {
        assertArrayEquals(expectedText.getBytes(StandardCharsets.UTF_8), PythonLiteral.parse(literal), literal);
    }

    private static void assertBytes(byte[] expected, String literal) {
        assertArrayEquals(expected, PythonLiteral.parse(literal), literal);
    }

    @Test
    void strLiterals() {
        assertStr("abc", "'abc'");
        assertStr("abc", "\"abc\"");
        assertStr("abc", "u'abc'");
        assertStr("", "''");
        assertStr("it's", "\"it's\"");
        assertStr("say \"hi\"", "'say \"hi\"'");
        assertStr("\t\n\r\\'\"", "'\\t\\n\\r\\\\\\'\\\"'");
        assertStr("\u0007\b\f\u000b", "'\\a\\b\\f\\v'");
        assertStr("\u0000A\u0001\u01ff", "'\\0\\101\\1\\777'");        // octal: 1 to 3 digits, up to 0o777 in str
        assertStr("\u00008", "'\\08'");                                  // 8 is not an octal digit
        assertStr("\u0080\u00ff", "'\\x80\\xFF'");                       // \x in str is a code point: 2 UTF-8 bytes each
        assertStr("\u2002\uffff", "'\\u2002\\uFFFF'");
        assertStr("😀\u0000", "'\\U0001f600\\U00000000'");
        assertStr("\\q\\ ", "'\\q\\ '");                                 // unknown escapes keep the backslash
        assertStr("世界 👋", "'世界 👋'");
    }

    @Test
    void bytesLiterals() {
        assertBytes(new byte[]{(byte) 0xfe}, "b'\\xfe'");
        assertBytes(new byte[]{(byte) 0xe4, (byte) 0xb8, 'a'}, "B\"\\xe4\\xb8a\"");
        assertBytes(new byte[]{(byte) 0xff, 0, 7}, "b'\\377\\0\\a'");
        assertBytes("\\u1234\\N".getBytes(StandardCharsets.US_ASCII), "b'\\u1234\\N'");   // not escapes in bytes
    }

    @Test
    void badLiterals() {
        String[][] cases = {
                {"abc", "expected a Python literal in quotes"},
                {"", "expected a Python literal in quotes"},
                {"r'abc'", "expected a Python literal in quotes"},
                {"'abc", "unterminated"},
                {"'abc\"", "unterminated"},
                {"'abc\\'", "unterminated"},
                {"'abc\\", "unterminated"},
                {"'a' 'b'", "after the closing quote"},
                {"'\\x4'", "\\x"},
                {"'\\xg0'", "hex digits"},
                {"'\\u12'", "\\u"},
                {"'\\U00110000'", "above U+10FFFF"},
                {"'\\udc00'", "surrogate"},
                {"'\\N{BULLET}'", "\\N"},
                {"b'\\400'", "above \\377"},
                {"b'é'", "non-ASCII"},
        };
        for (String[] c : cases) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PythonLiteral.parse(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), c[0] + " -> " + e.getMessage());
        }
    }
}
