package ai.longrwkv.core.tokenizer;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Utf8StreamDecoderTest {
    private static byte[] b(int... values) {
        byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) out[i] = (byte) values[i];
        return out;
    }

    @Test
    void charactersSplitAcrossTokensAreHeldBack() {
        Utf8StreamDecoder d = new Utf8StreamDecoder();
        // 世 = e4 b8 96, 😀 = f0 9f 98 80
        assertEquals("a", d.feed(b('a', 0xe4)));
        assertTrue(d.hasPendingBytes());
        assertEquals("", d.feed(b(0xb8)));
        assertEquals("世b", d.feed(b(0x96, 'b')));
        assertFalse(d.hasPendingBytes());
        assertEquals("", d.feed(b(0xf0)));
        assertEquals("", d.feed(b(0x9f, 0x98)));
        assertEquals("😀", d.feed(b(0x80)));
        assertEquals("", d.feed(new byte[0]));
        assertEquals("", d.finish());
    }

    @Test
    void invalidBytesBecomeReplacementCharactersOnlyWhenTheyCannotBeCompleted() {
        Utf8StreamDecoder d = new Utf8StreamDecoder();
        assertEquals("\uFFFD", d.feed(b(0xff)));                 // never valid
        assertEquals("\uFFFDa", d.feed(b(0x80, 'a')));           // lone continuation byte
        assertEquals("", d.feed(b(0xe4)));                       // could still be completed
        assertEquals("\uFFFDx", d.feed(b('x')));                 // now it cannot
        assertEquals("\uFFFD\uFFFD", d.feed(b(0xc0, 0x80)));     // overlong: C0 never starts a character
        assertEquals("", d.feed(b(0xed)));
        assertEquals("\uFFFD\uFFFD\uFFFD", d.feed(b(0xa0, 0x80))); // ED A0 80 would be a surrogate
        assertEquals("", d.feed(b(0xf0, 0x9f)));
        assertEquals("\uFFFD😀", d.feed(b(0xf0, 0x9f, 0x98, 0x80))); // a new lead byte ends the unfinished one
        assertEquals("", d.feed(b(0xe4, 0xb8)));
        assertEquals("\uFFFD", d.finish());                      // unfinished at the end of the stream
        assertFalse(d.hasPendingBytes());
        assertEquals("ok", d.feed(b('o', 'k')));
    }

    @Test
    void anySplitGivesWhatDecodingEverythingAtOnceGives() {
        Random rnd = new Random(21);
        for (int trial = 0; trial < 2000; trial++) {
            byte[] bytes = trial % 2 == 0
                    ? TokenizerTestFiles.randomBytes(rnd, rnd.nextInt(64))
                    : mostlyValid(rnd);
            Utf8StreamDecoder d = new Utf8StreamDecoder();
            String expected = d.feed(bytes) + d.finish();
            // Java's decoder uses the same replacement rules, except for encoded surrogates (see the class comment)
            if (!hasEncodedSurrogate(bytes)) assertEquals(new String(bytes, StandardCharsets.UTF_8), expected);
            StringBuilder got = new StringBuilder();
            for (int pos = 0; pos < bytes.length; ) {
                int len = Math.min(bytes.length - pos, rnd.nextInt(5));
                got.append(d.feed(bytes, pos, len));
                pos += len;
            }
            got.append(d.finish());
            assertEquals(expected, got.toString(), "trial " + trial);
        }
    }

    private static boolean hasEncodedSurrogate(byte[] b) {
        for (int i = 0; i + 1 < b.length; i++) {
            if ((b[i] & 0xff) == 0xed && (b[i + 1] & 0xff) >= 0xa0 && (b[i + 1] & 0xff) <= 0xbf) return true;
        }
        return false;
    }

    @Test
    void replacementsMatchPython() {
        // what bytes.decode("utf-8", "replace") gives in Python 3.11
        Object[][] cases = {
                {b(0xed, 0xb2, 0x85, 0x8d), "\uFFFD\uFFFD\uFFFD\uFFFD"}, {b(0xed, 0xa2, 'w'), "\uFFFD\uFFFDw"},
                {b(0xed, 0xa1), "\uFFFD\uFFFD"}, {b(0xf0, 0x9f, 0x98), "\uFFFD"}, {b(0xe0, 0x80), "\uFFFD\uFFFD"},
                {b(0xf4, 0x90, 0x80, 0x80), "\uFFFD\uFFFD\uFFFD\uFFFD"}, {b(0xc0, 0xaf), "\uFFFD\uFFFD"},
                {b(0xf0, 0x80, 0x80, 0x80), "\uFFFD\uFFFD\uFFFD\uFFFD"},
        };
        for (Object[] c : cases) {
            Utf8StreamDecoder d = new Utf8StreamDecoder();
            assertEquals((String) c[1], d.feed((byte[]) c[0]) + d.finish());
        }
    }

    /** Valid UTF-8 text with a few bytes dropped, flipped or inserted. */
    private static byte[] mostlyValid(Random rnd) {
        byte[] valid = TokenizerTestFiles.randomText(rnd, rnd.nextInt(30)).getBytes(StandardCharsets.UTF_8);
        if (valid.length == 0) return valid;
        for (int k = rnd.nextInt(3); k > 0; k--) {
            int i = rnd.nextInt(valid.length);
            valid[i] = (byte) (rnd.nextBoolean() ? rnd.nextInt(256) : 0x80 + rnd.nextInt(0x40));
        }
        int cut = rnd.nextInt(valid.length + 1);
        return java.util.Arrays.copyOf(valid, cut);
    }

    @Test
    void worldTokensStreamedOneByOneGiveTheText() {
        WorldTokenizer t = TokenizerTestFiles.world();
        Random rnd = new Random(22);
        for (int trial = 0; trial < 100; trial++) {
            String s = TokenizerTestFiles.randomText(rnd, rnd.nextInt(200));
            Utf8StreamDecoder d = new Utf8StreamDecoder();
            StringBuilder got = new StringBuilder();
            for (int id : t.encode(s)) {
                String piece = d.feed(t.tokenBytes(id));
                assertFalse(piece.contains("\uFFFD"), "no replacement characters in valid text");
                got.append(piece);
            }
            got.append(d.finish());
            assertEquals(s, got.toString());
        }
    }
}
