package ai.longrwkv.core.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * Turns text into token ids and back. Tokenizers work on bytes: text is UTF-8 encoded first, and decoding gives
 * bytes, because a token can end in the middle of a UTF-8 character (use {@link Utf8StreamDecoder} to print tokens as
 * they come).
 */
public interface Tokenizer {
    /** Id 0 ends a document: training data puts it after each document and generation stops on it. */
    int END_OF_TEXT = 0;

    /** The token ids of these bytes (any bytes, valid UTF-8 or not). */
    int[] encode(byte[] utf8);

    /** The token ids of the UTF-8 encoding of this text (a lone surrogate becomes '?', as in String.getBytes). */
    default int[] encode(String text) {
        return encode(text.getBytes(StandardCharsets.UTF_8));
    }

    /** The bytes these ids stand for, concatenated; an id that is not a token gives an IllegalArgumentException. */
    byte[] decode(int[] ids);

    /** Size of the model vocabulary the ids fit in (the embedding rows): 65536 for World, 256 for bytes. */
    int vocabSize();

    /** A short name; {@link Tokenizers#parse} accepts it back. */
    String name();
}
