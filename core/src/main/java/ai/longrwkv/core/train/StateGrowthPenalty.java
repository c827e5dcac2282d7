package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;

/**
 * {@code --state-growth-penalty λ}: adds {@code λ · Σ_{layer, head} ln(||S_end|| / ||S_start||)} to a trained
 * sequence's loss, S_start the head's N x N WKV state the sequence starts from and S_end the one after its last token
 * (Frobenius norms). Heads whose start state is zero (a document's first piece, from the zero state) add nothing.
 *
 * <p>Why: a key channel that does not decay (w ~ 1) sums every write ever made into it, RWKV-5 cannot erase, and after
 * GroupNorm (ln_x) only the direction of a head's readout counts, so a filler text that writes a little into such a
 * channel at every token buries a key written once, by a share that falls as 1/T. With {@code --carry-state stop} the
 * filler's writes before the trained piece get no gradient, and the answer's gradient on the piece's own writes is
 * weak. This term reaches every write of the piece directly, along what dominates the state (at a long prompt the
 * filler's accumulated write, not the key), and asks a piece that continues a document not to grow the state it was
 * handed; the answer's loss keeps the key's own write. It is a ratio, so scaling every write by the same factor does
 * not change it (a penalty on ||S_end|| alone would shrink all writes until ln_x's eps bites), and it is zero for a
 * piece that adds nothing. The penalty's value is not part of the reported loss (as L2Wrap's is not).
 */
public final class StateGrowthPenalty {

    private StateGrowthPenalty() { }

    /** Refuses a weight that is negative, NaN or infinite (the one check of Options, Trainer.Config and the CLI). */
    public static void checkWeight(double lambda) {
        if (!(lambda >= 0) || Double.isInfinite(lambda)) {
            throw new IllegalArgumentException("--state-growth-penalty must be a finite number >= 0, got " + lambda);
        }
    }

    /** The penalty's value: λ Σ ln(||S_end|| / ||S_start||) over the heads where both norms are above zero. */
    public static double value(Backend be, RwkvState start, RwkvState end, double lambda) {
        double total = 0;
        for (int l = 0; l < end.wkv.length; l++) {
            double[] s0 = headSquares(be.download(start.wkv[l])), s1 = headSquares(be.download(end.wkv[l]));
            for (int h = 0; h < s0.length; h++) if (s0[h] > 0 && s1[h] > 0) total += 0.5 * Math.log(s1[h] / s0[h]);
        }
        return lambda * total;
    }

    /** dEnd.wkv[l][h] += λ S_end / ||S_end||² (the gradient of {@link #value} with respect to the end state). */
    static void addEndGradient(Backend be, RwkvState start, RwkvState end, double lambda, RwkvState dEnd) {
        addGradient(be, start, end, end, lambda, dEnd);
    }

    /** dStart.wkv[l][h] -= λ S_start / ||S_start||² (the gradient of {@link #value} with respect to the start state). */
    static void addStartGradient(Backend be, RwkvState start, RwkvState end, double lambda, RwkvState dStart) {
        addGradient(be, start, end, start, -lambda, dStart);
    }

    /** d.wkv[l][h] += factor S / ||S||² with S = of's state, for the heads where {@link #value} has a term. */
    private static void addGradient(Backend be, RwkvState start, RwkvState end, RwkvState of, double factor, RwkvState d) {
        for (int l = 0; l < end.wkv.length; l++) {
            HostTensor s = be.download(of.wkv[l]);
            double[] s0 = headSquares(be.download(start.wkv[l])), s1 = headSquares(be.download(end.wkv[l]));
            double[] sq = of == start ? s0 : s1;
            int n2 = s.size() / s0.length;
            float[] g = new float[s.size()];
            for (int h = 0; h < s0.length; h++) {
                if (!(s0[h] > 0 && s1[h] > 0)) continue;
                double f = factor / sq[h];
                for (int i = h * n2; i < (h + 1) * n2; i++) g[i] = (float) (f * s.data()[i]);
            }
            try (Tensor t = be.upload(new HostTensor(s.shape(), g))) {
                be.add(d.wkv[l], t, d.wkv[l]);
            }
        }
    }

    /** Each head's sum of squares of a [H, N, N] state. */
    private static double[] headSquares(HostTensor s) {
        int heads = s.dim(0), n2 = s.size() / heads;
        double[] out = new double[heads];
        for (int h = 0; h < heads; h++) {
            double sq = 0;
            for (int i = h * n2; i < (h + 1) * n2; i++) sq += (double) s.data()[i] * s.data()[i];
            out[h] = sq;
        }
        return out;
    }
}
