package ai.longrwkv.core.tokenizer;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Tokenizers.parse and the byte tokenizer. */
class TokenizersTest {
    @Test
    void parsesSpecs() {
        assertSame(ByteTokenizer.INSTANCE, Tokenizers.parse("bytes"));
        String[][] bad = {{"world", "unknown tokenizer 'world'"}, {"world:", "needs the vocab file"},
                {"gpt2", "expected 'bytes' or 'world:PATH'"}, {"world:/no/such/vocab.txt", "not found: /no/such/vocab.txt"}};
        for (String[] c : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.parse(c[0]));
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
    }

    @Test
    void parsesWorldSpec() {
        String spec = "world:" + TokenizerTestFiles.worldVocab();
        Tokenizer t = Tokenizers.parse(spec);
        assertEquals(spec, t.name());
        assertEquals(65536, t.vocabSize());
        assertArrayEquals(new int[]{33155, 40213}, t.encode("Hello world"));
    }

    @Test
    void byteTokenizer() {
        Tokenizer t = Tokenizers.parse("bytes");
        assertEquals(256, t.vocabSize());
        assertEquals("bytes", t.name());
        assertArrayEquals(new int[]{34, 105, 110}, t.encode("\"in"));       // the rwkv.cpp tiny model's test input
        assertArrayEquals(new int[]{0xe4, 0xb8, 0x96, 0}, t.encode("世\0"));
        Random rnd = new Random(31);
        for (int trial = 0; trial < 50; trial++) {
            byte[] b = TokenizerTestFiles.randomBytes(rnd, rnd.nextInt(100));
            assertArrayEquals(b, t.decode(t.encode(b)));
        }
        String s = TokenizerTestFiles.randomText(rnd, 100);
        assertEquals(s, new String(t.decode(t.encode(s)), StandardCharsets.UTF_8));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.decode(new int[]{1, 256}));
        assertTrue(e.getMessage().contains("token id 256 at position 1"), e.getMessage());
    }
}
