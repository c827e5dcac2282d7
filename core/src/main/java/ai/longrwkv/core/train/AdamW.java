package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW over a list of {@link Trainable}s, with the moments on the backend next to the parameters. Defaults are the
 * RWKV trainers': betas (0.9, 0.99), eps 1e-8.
 */
public final class AdamW implements AutoCloseable {
    public record Hyper(double beta1, double beta2, double eps, double weightDecay) {
        public static Hyper rwkvDefaults(double weightDecay) { return new Hyper(0.9, 0.99, 1e-8, weightDecay); }
    }

    private final Backend be;
    private final List<Trainable> trainables;
    private final Hyper hyper;
    private final Map<String, Tensor[]> moments = new LinkedHashMap<>();
    private long step;

    public AdamW(Backend be, List<Trainable> trainables, Hyper hyper) {
        this.be = be;
        this.trainables = List.copyOf(trainables);
        this.hyper = hyper;
        for (Trainable t : trainables) moments.put(t.key(), new Tensor[]{be.zeros(t.param().shape()), be.zeros(t.param().shape())});
    }

    public long step() { return step; }

    public List<Trainable> trainables() { return trainables; }

    /**
     * Applies one update with base learning rate {@code lr} from the gradients now in the trainables times
     * {@code gradScale} (see {@link #clipFactor}). Returns the first trainable the update made non-finite, or null.
     */
    public String update(double lr, float gradScale) {
        step++;
        String firstNonFinite = null;
        for (Trainable t : trainables) {
            Tensor[] mv = moments.get(t.key());
            double squares = be.adamwStep(t.param(), t.grad(), gradScale, mv[0], mv[1], (float) (lr * t.lrScale()), (float) hyper.beta1(),
                    (float) hyper.beta2(), (float) hyper.eps(), t.weightDecay() ? (float) hyper.weightDecay() : 0f, step);
            if (firstNonFinite == null && !Double.isFinite(squares)) firstNonFinite = t.key();
        }
        return firstNonFinite;
    }

    public void zeroGrads() {
        for (Trainable t : trainables) be.fill(t.grad(), 0f);
    }

    /**
     * Each trainable's sum of squared gradient values, in {@link #trainables()} order: one pass over the gradients
     * that both the non-finite check and the clipping use (each pass over a 0.2B model's gradients costs ~0.1 s on CPU).
     */
    public double[] gradSquares() {
        double[] s = new double[trainables.size()];
        for (int i = 0; i < s.length; i++) s[i] = be.sumOfSquares(trainables.get(i).grad());
        return s;
    }

    /** Global L2 norm of all gradients (double accumulation) from {@link #gradSquares()}. */
    public static double gradNorm(double[] squares) {
        double s = 0;
        for (double q : squares) s += q;
        return Math.sqrt(s);
    }

    /**
     * The factor that brings the gradients' global norm to at most maxNorm (1 if it is below, or maxNorm <= 0),
     * as torch.nn.utils.clip_grad_norm_ computes it; {@link #update} applies it inside the AdamW pass.
     */
    public static float clipFactor(double maxNorm, double norm) {
        return maxNorm > 0 && norm > maxNorm ? (float) (maxNorm / (norm + 1e-6)) : 1f;
    }

    /** The first trainable whose gradient is not finite (by its {@link #gradSquares()} entry), or null. */
    public String firstNonFiniteGrad(double[] squares) {
        for (int i = 0; i < squares.length; i++) if (!Double.isFinite(squares[i])) return trainables.get(i).key();
        return null;
    }

    /** Moments as host tensors named {@code <key>.exp_avg} and {@code <key>.exp_avg_sq}, for checkpoints. */
    public Map<String, HostTensor> stateToHost() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        moments.forEach((k, mv) -> {
            out.put(k + ".exp_avg", be.download(mv[0]));
            out.put(k + ".exp_avg_sq", be.download(mv[1]));
        });
        return out;
    }

    /** Restores moments and the step count written by {@link #stateToHost}. */
    public void loadState(Map<String, HostTensor> state, long step) {
        moments.forEach((k, mv) -> {
            for (int i = 0; i < 2; i++) {
                String name = k + (i == 0 ? ".exp_avg" : ".exp_avg_sq");
                HostTensor h = state.get(name);
                if (h == null) throw new IllegalArgumentException("optimizer state has no '" + name + "'");
                if (h.size() != mv[i].size()) throw new IllegalArgumentException("optimizer state '" + name + "' has " + h.size() + " values, expected " + mv[i].size());
                try (Tensor u = be.upload(h)) {
                    be.copy(u, mv[i]);
                }
            }
        });
        this.step = step;
    }

    @Override
    public void close() {
        for (Tensor[] mv : moments.values()) {
            mv[0].close();
            mv[1].close();
        }
    }
}
