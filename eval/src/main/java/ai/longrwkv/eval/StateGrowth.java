package ai.longrwkv.eval;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.LongConsumer;

/**
 * How much of a key is left in the WKV state after T tokens of filler, as a share of the state: the measurement behind
 * "why retrieval stops at length L". Two prompts that differ only in the key (the same intro, the needle with key A or
 * key B) are followed by the same filler; at each checkpoint, per layer and per group of key channels (long memory:
 * {@code w^maxLength} near 1; short: the rest), it records the state's norm |S_A| and the norm of the difference
 * |S_A - S_B|, which is what the key left in the state. RWKV-5's state only adds and decays (S = diag(w) S + k v^T), so
 * in long-memory channels the key's trace stays while everything the filler writes accumulates: the key's share falls
 * as 1/T unless the model writes (almost) nothing of the filler into those channels.
 */
public final class StateGrowth {
    private StateGrowth() { }

    /**
     * One checkpoint of one layer, of one head or (head -1) of all. Norms are Frobenius norms over the channels of the
     * group. A head's share is the one its readout sees: ln_x normalises each head on its own.
     */
    public record Row(int tokens, int layer, int head, double longNorm, double longKey, double shortNorm, double shortKey) {
        /** The key's trace as a share of the long-memory state (NaN with no long channel). */
        public double longShare() { return longKey / longNorm; }
        public double shortShare() { return shortKey / shortNorm; }
    }

    /**
     * @param promptA    intro and needle with key A
     * @param promptB    the same with key B (the same length)
     * @param filler     the filler after the needle; checkpoints count tokens from the prompt's start
     * @param checkpoints total tokens (prompt + filler) at which to measure, ascending, each in (prompt, prompt + filler]
     * @param longChannel per layer, per key channel of the state (H x N, head-major): true for long memory
     * @param progress   told how many tokens each fed chunk had (both prompts count), may be null
     * @return per checkpoint and layer the row of all heads (head -1)
     */
    public static List<Row> measure(Rwkv5Model model, RwkvState initial, int[] promptA, int[] promptB, int[] filler,
                                    int[] checkpoints, boolean[][] longChannel, int chunkLen, LongConsumer progress) {
        return measure(model, initial, promptA, promptB, filler, checkpoints, longChannel, chunkLen, progress, false);
    }

    /** As above; with {@code perHead} each layer's row of all heads is followed by one row per head (0..H-1). */
    public static List<Row> measure(Rwkv5Model model, RwkvState initial, int[] promptA, int[] promptB, int[] filler,
                                    int[] checkpoints, boolean[][] longChannel, int chunkLen, LongConsumer progress, boolean perHead) {
        if (promptA.length != promptB.length) {
            throw new IllegalArgumentException("the two prompts must have the same length, got " + promptA.length + " and " + promptB.length);
        }
        Backend be = model.backend();
        int layers = model.config().nLayer(), n = model.config().headSize(), heads = model.config().nHead();
        List<Row> rows = new ArrayList<>();
        try (RwkvState a = initial.copy(be); RwkvState b = initial.copy(be)) {
            Prefill.run(model, promptA, a, chunkLen, progress);
            Prefill.run(model, promptB, b, chunkLen, progress);
            int at = promptA.length, used = 0;
            for (int cp : checkpoints) {
                if (cp <= at || cp - promptA.length > filler.length) {
                    throw new IllegalArgumentException("checkpoint " + cp + " is outside (" + at + ", " + (promptA.length + filler.length) + "]");
                }
                int[] piece = Arrays.copyOfRange(filler, used, cp - promptA.length);
                Prefill.run(model, piece, a, chunkLen, progress);   // advances the state; its logits are not needed
                Prefill.run(model, piece, b, chunkLen, progress);
                used += piece.length;
                at = cp;
                for (int l = 0; l < layers; l++) {
                    float[] sa = be.download(a.wkv[l]).data(), sb = be.download(b.wkv[l]).data();
                    double[][] sum = new double[heads][4];   // per head: long |S|^2, long |dS|^2, short |S|^2, short |dS|^2
                    for (int ch = 0; ch < longChannel[l].length; ch++) {
                        int g = longChannel[l][ch] ? 0 : 2;
                        double[] hs = sum[ch / n];
                        for (int j = ch * n; j < (ch + 1) * n; j++) {   // row ch of head ch / n: its n value channels
                            double d = sa[j] - sb[j];
                            hs[g] += (double) sa[j] * sa[j];
                            hs[g + 1] += d * d;
                        }
                    }
                    double[] all = new double[4];
                    for (double[] hs : sum) for (int g = 0; g < 4; g++) all[g] += hs[g];
                    rows.add(row(cp, l, -1, all));
                    if (perHead) for (int h = 0; h < heads; h++) rows.add(row(cp, l, h, sum[h]));
                }
            }
        }
        return rows;
    }

    private static Row row(int tokens, int layer, int head, double[] squares) {
        return new Row(tokens, layer, head, Math.sqrt(squares[0]), Math.sqrt(squares[1]), Math.sqrt(squares[2]), Math.sqrt(squares[3]));
    }

    /**
     * Long-memory key channels from x052 time_decay values d ([H, N] per layer, as stored): w = exp(-exp(d)) per token,
     * long when at least half of a value survives {@code length} tokens (w^length >= 1/2).
     */
    public static boolean[][] longChannels(float[][] timeDecay, int length) {
        boolean[][] out = new boolean[timeDecay.length][];
        for (int l = 0; l < timeDecay.length; l++) {
            out[l] = new boolean[timeDecay[l].length];
            for (int c = 0; c < out[l].length; c++) out[l][c] = Math.exp(timeDecay[l][c]) * length <= Math.log(2);
        }
        return out;
    }
}
