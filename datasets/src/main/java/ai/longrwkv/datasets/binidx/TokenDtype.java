package ai.longrwkv.datasets.binidx;

/**
 * Element types of a binidx .bin file that hold token ids, with Megatron's dtype codes. RWKV-LM and Megatron pick
 * uint16 for vocabularies that fit 16 bits and int32 above; the RWKV World vocab (65536) is uint16.
 */
public enum TokenDtype {
    UINT8(1, 1, 0xff),
    INT32(4, 4, Integer.MAX_VALUE),
    UINT16(8, 2, 0xffff);

    /** The code in the .idx header. */
    public final int code;
    /** Bytes per token. */
    public final int bytes;
    /** The largest id this type holds. */
    public final int maxId;

    TokenDtype(int code, int bytes, int maxId) {
        this.code = code;
        this.bytes = bytes;
        this.maxId = maxId;
    }

    /** uint16 for vocabularies up to 65536 ids (the byte tokenizer's 256 included), int32 above. */
    public static TokenDtype forVocabulary(int vocabSize) {
        return vocabSize <= 65536 ? UINT16 : INT32;
    }

    /** The type of a Megatron dtype code, or null for codes that do not hold token ids here (floats, int8, ...). */
    public static TokenDtype ofCode(int code) {
        for (TokenDtype t : values()) if (t.code == code) return t;
        return null;
    }

    public String numpyName() {
        return switch (this) {
            case UINT8 -> "uint8";
            case INT32 -> "int32";
            case UINT16 -> "uint16";
        };
    }
}
