package ai.longrwkv.core.train;

import java.util.Arrays;

/**
 * One training sequence: input tokens, the target of each position (negative = no target), a loss mask
 * (1 = this position's target counts in the loss, 0 = it does not; e.g. prompt or user turns), and the positions
 * where the recurrent state is reset to the initial state (document starts in a packed sequence whose documents must
 * not see each other; empty = the state runs through the whole sequence).
 */
public record TokenSequence(int[] tokens, int[] targets, float[] mask, int[] resets) {

    public TokenSequence(int[] tokens, int[] targets, float[] mask) {
        this(tokens, targets, mask, new int[0]);
    }

    public TokenSequence {
        if (tokens.length == 0) throw new IllegalArgumentException("empty token sequence");
        for (int i = 0; i < resets.length; i++) {
            if (resets[i] <= 0 || resets[i] >= tokens.length || (i > 0 && resets[i] <= resets[i - 1])) {
                throw new IllegalArgumentException("state resets must be increasing positions inside 1.." + (tokens.length - 1)
                        + ", got " + Arrays.toString(resets));
            }
        }
        if (targets.length != tokens.length) {
            throw new IllegalArgumentException(tokens.length + " tokens but " + targets.length + " targets");
        }
        if (mask.length != tokens.length) {
            throw new IllegalArgumentException(tokens.length + " tokens but " + mask.length + " mask values");
        }
    }

    /** Language-model targets: position t predicts token t+1; the last position has no target; mask all ones. */
    public static TokenSequence nextToken(int[] tokens) {
        int[] targets = new int[tokens.length];
        for (int t = 0; t + 1 < tokens.length; t++) targets[t] = tokens[t + 1];
        targets[tokens.length - 1] = -1;
        float[] mask = new float[tokens.length];
        Arrays.fill(mask, 1f);
        return new TokenSequence(tokens.clone(), targets, mask);
    }

    public int length() { return tokens.length; }

    /**
     * The same sequence with the last position's target set (a window of T + 1 tokens gives T inputs whose last
     * target is the extra token); {@code flag} 1 counts it in the loss.
     */
    public TokenSequence withLastTarget(int target, float flag) {
        int[] t = targets.clone();
        float[] m = mask.clone();
        t[t.length - 1] = target;
        m[m.length - 1] = flag;
        return new TokenSequence(tokens, t, m, resets);
    }

    /** Start positions of the segments the state runs through: 0 and every reset. */
    public int[] segmentStarts() {
        int[] out = new int[resets.length + 1];
        System.arraycopy(resets, 0, out, 1, resets.length);
        return out;
    }

    /** Refuses token or target ids outside 0..vocab-1, naming the first bad one and its position. */
    public void checkVocabulary(int vocab) {
        for (int t = 0; t < tokens.length; t++) {
            if (tokens[t] < 0 || tokens[t] >= vocab) {
                throw new IllegalArgumentException("token " + tokens[t] + " at position " + t + " is outside the model's vocabulary 0.." + (vocab - 1));
            }
        }
        for (int t = 0; t < targets.length; t++) {
            if (targets[t] >= vocab) {
                throw new IllegalArgumentException("target " + targets[t] + " at position " + t + " is outside the model's vocabulary 0.." + (vocab - 1));
            }
        }
    }

    /** Number of positions whose loss counts: a target and mask 1. */
    public long lossPositions() {
        long n = 0;
        for (int t = 0; t < tokens.length; t++) if (targets[t] >= 0 && mask[t] != 0f) n++;
        return n;
    }

    /** The first position whose loss counts (see {@link #lossPositions}); the length when there is none. */
    public int firstLossPosition() {
        for (int t = 0; t < tokens.length; t++) if (targets[t] >= 0 && mask[t] != 0f) return t;
        return tokens.length;
    }

    /**
     * Per-position weights of the mean cross-entropy over the whole sequence: mask / (number of loss positions),
     * so that summing chunk losses gives the sequence mean whatever the chunk length.
     */
    public float[] lossWeights() {
        long n = lossPositions();
        float[] w = new float[tokens.length];
        if (n == 0) return w;
        for (int t = 0; t < tokens.length; t++) if (targets[t] >= 0) w[t] = (float) (mask[t] / (double) n);
        return w;
    }
}
