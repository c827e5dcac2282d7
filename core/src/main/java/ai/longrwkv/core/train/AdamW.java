package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.model.ModelWeights;
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
    /** Which trainables this optimizer steps (ZeRO: the ones this rank owns); moments exist only for those. */
    private final boolean[] stepped;
    private final Map<String, Tensor[]> moments = new LinkedHashMap<>();
    private long step;

    public AdamW(Backend be, List<Trainable> trainables, Hyper hyper) {
        this(be, trainables, null, hyper);
    }

    /**
     * @param stepped which of {@code trainables} this optimizer updates and keeps moments for (null: all); the others
     *                (ZeRO stage 1 and 2: another rank's) are left alone and their entries in the returned arrays are 0
     */
    public AdamW(Backend be, List<Trainable> trainables, boolean[] stepped, Hyper hyper) {
        this.be = be;
        this.trainables = List.copyOf(trainables);
        this.hyper = hyper;
        this.stepped = new boolean[trainables.size()];
        for (int i = 0; i < this.stepped.length; i++) {
            this.stepped[i] = stepped == null || stepped[i];
            Trainable t = trainables.get(i);
            if (this.stepped[i]) moments.put(t.key(), new Tensor[]{be.zeros(t.param().shape()), be.zeros(t.param().shape())});
        }
    }

    /** Whether trainable i is updated by this optimizer. */
    public boolean steps(int i) { return stepped[i]; }

    public long step() { return step; }

    public List<Trainable> trainables() { return trainables; }

    /**
     * Applies one update with base learning rate {@code lr} from the gradients now in the trainables times
     * {@code gradScale} (see {@link #clipFactor}). Returns the first trainable the update made non-finite, or null.
     */
    public String update(double lr, float gradScale) {
        return firstNonFinite(step(lr, gradScale));
    }

    /**
     * As {@link #update}, returning each trainable's sum of squares after the update ({@link #trainables()} order; 0
     * for one this optimizer does not step), not finite where the update overflowed it.
     */
    public double[] step(double lr, float gradScale) {
        step++;
        double[] squares = new double[trainables.size()];
        for (int i = 0; i < squares.length; i++) {
            if (!stepped[i]) continue;
            Trainable t = trainables.get(i);
            Tensor[] mv = moments.get(t.key());
            squares[i] = be.adamwStep(t.param(), t.grad(), gradScale, mv[0], mv[1], (float) (lr * t.lrScale()), (float) hyper.beta1(),
                    (float) hyper.beta2(), (float) hyper.eps(), t.weightDecay() ? (float) hyper.weightDecay() : 0f, step);
        }
        return squares;
    }

    /** The key of the first trainable whose entry in {@code squares} is not finite, or null. */
    public String firstNonFinite(double[] squares) {
        for (int i = 0; i < squares.length; i++) if (!Double.isFinite(squares[i])) return trainables.get(i).key();
        return null;
    }

    public void zeroGrads() {
        for (Trainable t : trainables) if (t.grad() != null) be.fill(t.grad(), 0f);
    }

    /**
     * Each trainable's sum of squared gradient values, in {@link #trainables()} order (0 for one this optimizer does not step): one pass over the gradients
     * that both the non-finite check and the clipping use (each pass over a 0.2B model's gradients costs ~0.1 s on CPU).
     */
    public double[] gradSquares() {
        double[] s = new double[trainables.size()];
        for (int i = 0; i < s.length; i++) if (stepped[i]) s[i] = be.sumOfSquares(trainables.get(i).grad());
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
        return firstNonFinite(squares);
    }

    /** Moments (of the trainables this optimizer steps) as host tensors named {@code <key>.exp_avg} and {@code <key>.exp_avg_sq}, for checkpoints. */
    public Map<String, HostTensor> stateToHost() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        moments.forEach((k, mv) -> {
            out.put(k + ".exp_avg", be.download(mv[0]));
            out.put(k + ".exp_avg_sq", be.download(mv[1]));
        });
        return out;
    }

    /** As {@link #stateToHost}, each moment read from the backend only while it is written ({@link ModelWeights#ofTensor}). */
    public Map<String, ModelWeights.Entry> stateEntries() {
        Map<String, ModelWeights.Entry> out = new LinkedHashMap<>();
        moments.forEach((k, mv) -> {
            out.put(k + ".exp_avg", ModelWeights.ofTensor(be, mv[0]));
            out.put(k + ".exp_avg_sq", ModelWeights.ofTensor(be, mv[1]));
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
