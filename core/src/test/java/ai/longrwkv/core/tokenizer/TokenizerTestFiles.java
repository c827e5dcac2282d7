package ai.longrwkv.core.tokenizer;


import java.nio.file.Path;
import java.util.Random;

/** The shared World vocab file, and random inputs for tokenizer tests. */
final class TokenizerTestFiles {
    private TokenizerTestFiles() { }

    /** shared/oracle/rwkv_vocab_v20230424.txt found by walking up from the working directory; skips the test if absent. */
    static Path worldVocab() {
        return ai.longrwkv.core.testing.TestModels.oracle("rwkv_vocab_v20230424.txt");
    }

    /** The World tokenizer, loaded once for all tests of a run. */
    static WorldTokenizer world() {
        Path file = worldVocab();
        synchronized (TokenizerTestFiles.class) {
            if (world == null || !world.name().equals("world:" + file)) world = WorldTokenizer.load(file);
            return world;
        }
    }

    private static WorldTokenizer world;

    /** Code points from many scripts: ASCII, Latin, Cyrillic, CJK, kana, Hangul, emoji, combining marks, joiners. */
    static String randomText(Random rnd, int codePoints) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < codePoints; i++) {
            int kind = rnd.nextInt(12);
            int cp = switch (kind) {
                case 0, 1, 2 -> 32 + rnd.nextInt(95);                       // printable ASCII
                case 3 -> " \n\t\r".charAt(rnd.nextInt(4));
                case 4 -> 0xa0 + rnd.nextInt(0x250 - 0xa0);                  // Latin-1 and Latin Extended
                case 5 -> 0x400 + rnd.nextInt(0x100);                        // Cyrillic
                case 6 -> 0x4e00 + rnd.nextInt(0x9fff - 0x4e00);             // CJK ideographs
                case 7 -> 0x3040 + rnd.nextInt(0x100);                       // hiragana, katakana
                case 8 -> 0x1f300 + rnd.nextInt(0x1fad0 - 0x1f300);          // emoji (4 UTF-8 bytes)
                case 9 -> 0x300 + rnd.nextInt(0x70);                         // combining marks
                case 10 -> new int[]{0x200d, 0xfe0f, 0x200b, 0x1f3fb, 0xac00 + rnd.nextInt(11172)}[rnd.nextInt(5)];
                default -> {
                    int c;
                    do c = rnd.nextInt(Character.MAX_CODE_POINT + 1); while (c >= Character.MIN_SURROGATE && c <= Character.MAX_SURROGATE);
                    yield c;
                }
            };
            sb.appendCodePoint(cp);
        }
        return sb.toString();
    }

    static byte[] randomBytes(Random rnd, int n) {
        byte[] b = new byte[n];
        rnd.nextBytes(b);
        return b;
    }
}
