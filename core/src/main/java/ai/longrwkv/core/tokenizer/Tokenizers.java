package ai.longrwkv.core.tokenizer;

import java.nio.file.Path;

/** Picks a tokenizer from a command-line spec. */
public final class Tokenizers {
    private Tokenizers() { }

    /** "bytes" (id = byte value, vocab 256) or "world:PATH" (PATH = rwkv_vocab_v20230424.txt). */
    public static Tokenizer parse(String spec) {
        if (spec == null) throw new IllegalArgumentException("no tokenizer given: expected 'bytes' or 'world:PATH'");
        String s = spec.trim();
        if (s.equals("bytes")) return ByteTokenizer.INSTANCE;
        if (s.startsWith("world:")) {
            String path = s.substring("world:".length());
            if (path.isEmpty()) {
                throw new IllegalArgumentException("tokenizer 'world:' needs the vocab file after the colon, e.g. world:rwkv_vocab_v20230424.txt");
            }
            return WorldTokenizer.load(Path.of(path));
        }
        throw new IllegalArgumentException("unknown tokenizer '" + spec + "': expected 'bytes' or 'world:PATH' "
                + "(PATH = the RWKV World vocab file rwkv_vocab_v20230424.txt)");
    }
}
