package ai.longrwkv.datasets.build;

import ai.longrwkv.core.tokenizer.ByteTokenizer;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.WorldTokenizer;

/**
 * What streaming tokenization needs to know about a greedy longest-match tokenizer: the byte length of every token
 * and the longest one. With it a text of any size can be tokenized piece by piece with exactly the tokens of the
 * whole (see {@link StreamingTextEncoder}).
 */
final class GreedyTokenizers {
    private GreedyTokenizers() { }

    /** Byte length of each id (index = id), or null when the tokenizer is not one we know to be greedy. */
    static int[] tokenByteLengths(Tokenizer tokenizer) {
        if (tokenizer instanceof ByteTokenizer) {
            int[] lengths = new int[256];
            java.util.Arrays.fill(lengths, 1);
            return lengths;
        }
        if (tokenizer instanceof WorldTokenizer world) {
            int[] lengths = new int[world.maxId() + 1];
            for (int id = 1; id < lengths.length; id++) {
                try {
                    lengths[id] = world.tokenBytes(id).length;
                } catch (IllegalArgumentException gapInIds) {
                    lengths[id] = 0;    // never produced by encode
                }
            }
            return lengths;
        }
        return null;
    }

    static int maxTokenBytes(int[] lengths) {
        int max = 1;
        for (int l : lengths) max = Math.max(max, l);
        return max;
    }
}
