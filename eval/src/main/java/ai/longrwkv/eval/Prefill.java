package ai.longrwkv.eval;

import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;

import java.util.Arrays;
import java.util.function.LongConsumer;

/**
 * Feeds a prompt of any length through the model in chunks, advancing the state in place. Memory is one chunk's
 * activations plus the state, whatever the prompt length: the 128k prompts of the evals cost what a 1k prompt costs.
 *
 * <p>Only the last position's logits are computed: the head is a [T, V] product (V = 65536 for World models), which
 * for a 4096-token chunk would be a 1 GiB buffer nobody reads.
 */
public final class Prefill {
    private Prefill() { }

    /** Default tokens per chunk for evaluation and generation. */
    public static final int DEFAULT_CHUNK_LEN = 1024;

    /**
     * Runs {@code tokens} from {@code state} (advanced to the state after the last token) and returns the logits
     * that predict the token after the last one.
     *
     * @param progress told how many tokens each chunk fed (may be null)
     */
    public static float[] run(Rwkv5Model model, int[] tokens, RwkvState state, int chunkLen, LongConsumer progress) {
        if (tokens.length == 0) throw new IllegalArgumentException("prefill needs at least one token");
        if (chunkLen < 1) throw new IllegalArgumentException("chunk length must be >= 1, got " + chunkLen);
        int body = tokens.length - 1;   // everything but the last token: no logits needed
        for (int from = 0; from < body; from += chunkLen) {
            int to = Math.min(body, from + chunkLen);
            model.forward(Arrays.copyOfRange(tokens, from, to), state, false, false).close();
            if (progress != null) progress.accept(to - from);
        }
        float[] logits = model.step(tokens[body], state);
        if (progress != null) progress.accept(1);
        return logits;
    }

    /** {@link #run} and how long it took. */
    public record Timed(float[] logits, double seconds) {
        public double tokensPerSecond(int tokens) {
            return tokens / Math.max(seconds, 1e-9);
        }
    }

    public static Timed timed(Rwkv5Model model, int[] tokens, RwkvState state, int chunkLen, LongConsumer progress) {
        long t0 = System.nanoTime();
        float[] logits = run(model, tokens, state, chunkLen, progress);
        return new Timed(logits, (System.nanoTime() - t0) / 1e9);
    }
}
