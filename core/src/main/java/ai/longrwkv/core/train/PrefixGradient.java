package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;

/**
 * {@code --prefix-grad stationary}: an estimate of the gradient that {@code --carry-state stop} cuts off.
 *
 * <p>A piece of a long document starts from the state its prefix left, and the gradient stops there, so the writes
 * the prefix made into the state get none. When the prefix is like the part of the piece before its trained tokens
 * (filler before a question: the same kind of text, so the same expected write and the same expected Jacobian per
 * token), the full-BPTT gradient of the prefix's writes is that of the piece's own writes times the decayed count of
 * writes: a key channel with per-token decay w sees, from a boundary b tokens into the piece, sum_{t<b} w^(b-1-t)
 * writes in the piece and sum_{-P<=t<b} w^(b-1-t) with a prefix of P tokens. So at that boundary the WKV state
 * gradient of channel (h, i) (row i of S[h], every value column j) is multiplied by
 * {@code (1 - w^(b+P)) / (1 - w^b)}: b+P over b for a channel that does not decay, 1 for one that forgets within the
 * piece. Everything after the boundary (the question and the trained answer) is backpropagated as it is; the
 * token-shift part of the state gradient (one token back) is left alone.
 *
 * <p>This is an approximation (exact only when the prefix's per-token writes and their Jacobians average to the
 * piece's), not a gradient of anything; it exists because a key channel that never decays accumulates every filler
 * token ever written into it, and the only way to learn to write less of it is a gradient as large as that sum.
 */
public record PrefixGradient(int boundary, float[][] factor) {

    /**
     * The scaling for one piece: its first {@code boundary} tokens are like its {@code prefixTokens}-token prefix
     * (boundary a multiple of the chunk length, > 0), decays from {@code model}'s time_decay ([H, N] per layer, w =
     * exp(-exp(d))). Null when there is nothing to scale (no prefix, or no boundary inside the piece).
     */
    public static PrefixGradient stationary(Rwkv5Model model, long prefixTokens, int boundary) {
        if (prefixTokens <= 0 || boundary <= 0) return null;
        ModelConfig c = model.config();
        Backend be = model.backend();
        float[][] factor = new float[c.nLayer()][];
        for (int l = 0; l < c.nLayer(); l++) {
            float[] d = be.download(model.params().get("blocks." + l + ".att.time_decay")).data();
            factor[l] = new float[d.length];
            for (int i = 0; i < d.length; i++) factor[l][i] = (float) factor(Math.exp(d[i]), boundary, prefixTokens);
        }
        return new PrefixGradient(boundary, factor);
    }

    /**
     * (1 - w^(b+P)) / (1 - w^b) with w = exp(-a), a = exp(time_decay) >= 0 the per-token decay rate; (b+P)/b as a
     * goes to 0 (computed with expm1 so that a channel with w within 1e-9 of 1 gets it to full precision).
     */
    static double factor(double a, long b, long prefix) {
        if (a * b < 1e-12) return (double) (b + prefix) / b;
        return Math.expm1(-a * (b + prefix)) / Math.expm1(-a * b);
    }

    /**
     * The boundary for a piece whose first trained token is at {@code firstTrained}: the last chunk boundary at or
     * before {@code firstTrained - margin} (so that the {@code margin} tokens before the trained ones, the question,
     * are not counted as prefix-like); 0 when there is none.
     */
    public static int boundaryBefore(int firstTrained, int margin, int chunkLen) {
        int b = firstTrained - margin;
        return b <= 0 ? 0 : b / chunkLen * chunkLen;
    }

    /** dState.wkv[l][h, i, j] *= factor[l][h * N + i]. */
    void apply(Backend be, ModelConfig c, RwkvState dState) {
        int n = c.headSize();
        for (int l = 0; l < factor.length; l++) {
            float[] full = new float[factor[l].length * n];
            for (int row = 0; row < factor[l].length; row++) java.util.Arrays.fill(full, row * n, (row + 1) * n, factor[l][row]);
            try (Tensor f = be.upload(new HostTensor(new int[]{c.nHead(), n, n}, full))) {
                be.mul(dState.wkv[l], f, dState.wkv[l]);
            }
        }
    }
}
