package ai.longrwkv.core.tokenizer;

/**
 * The byte-level tokenizer of tiny models (such as the rwkv.cpp test model): the id of a byte is its value. Id 0 is
 * both the NUL byte and end-of-text here; it decodes to the NUL byte so that any bytes round-trip exactly.
 */
public final class ByteTokenizer implements Tokenizer {
    public static final ByteTokenizer INSTANCE = new ByteTokenizer();

    private ByteTokenizer() { }

    @Override
    public int[] encode(byte[] utf8) {
        int[] ids = new int[utf8.length];
        for (int i = 0; i < utf8.length; i++) ids[i] = utf8[i] & 0xff;
        return ids;
    }

    @Override
    public byte[] decode(int[] ids) {
        byte[] out = new byte[ids.length];
        for (int i = 0; i < ids.length; i++) {
            int id = ids[i];
            if (id < 0 || id > 255) {
                throw new IllegalArgumentException("token id " + id + " at position " + i + " is not a byte (the bytes tokenizer has ids 0..255)");
            }
            out[i] = (byte) id;
        }
        return out;
    }

    @Override
    public int vocabSize() {
        return 256;
    }

    @Override
    public String name() {
        return "bytes";
    }

    @Override
    public String toString() {
        return name();
    }
}
