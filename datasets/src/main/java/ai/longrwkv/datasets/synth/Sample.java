package ai.longrwkv.datasets.synth;

import java.util.Arrays;
import java.util.List;

/**
 * One synthetic retrieval sample: exactly {@code tokens.length} tokens (the requested length), of which the last
 * {@code answerTokens.length} are the answer, trained (flag 1), and everything before them the prompt (flag 0).
 *
 * @param task         passkey, niah or multikey
 * @param tokens       prompt then answer; the prompt ends just before answerStart
 * @param flags        one loss flag per token: 1 on the answer, 0 elsewhere
 * @param answerStart  position of the first answer token
 * @param answerTokens the answer's tokens (= tokens[answerStart..])
 * @param answer       the answer as text, without its leading space ("12345"): what an eval looks for in the output
 * @param key          what is asked for: the pass key itself for passkey, the needle's key ("rare-falcon") for RULER
 * @param depth        where the queried needle sits in the filler, 0 = right after the intro, 1 = right before the
 *                     question (the depth actually used, after moving to a sentence start)
 * @param needles      every needle, in prompt order; the queried one has queried() = true
 */
public record Sample(String task, int[] tokens, byte[] flags, int answerStart, int[] answerTokens, String answer,
                     String key, double depth, List<Needle> needles) {

    /** A needle sentence in the prompt: its key and value, and its token span [start, start + length). */
    public record Needle(String key, String value, int start, int length, boolean queried) { }

    public int length() {
        return tokens.length;
    }

    /** The tokens an eval feeds before generating (everything before the answer). */
    public int[] promptTokens() {
        return Arrays.copyOf(tokens, answerStart);
    }

    public Needle queriedNeedle() {
        for (Needle n : needles) if (n.queried()) return n;
        throw new IllegalStateException("no queried needle");
    }
}
