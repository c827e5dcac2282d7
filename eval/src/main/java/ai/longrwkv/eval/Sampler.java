package ai.longrwkv.eval;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedy at temperature 0 (the lowest id among equal maxima, so the choice never
 * depends on anything but the logits), otherwise softmax(logits / temperature) cut to the smallest set of most likely
 * tokens whose probability reaches top-p (nucleus sampling), drawn with a seeded generator.
 */
public final class Sampler {
    private final double temperature;
    private final double topP;
    private final SplittableRandom rng;

    public Sampler(double temperature, double topP, long seed) {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("--temperature must be >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("--top-p must be in (0, 1], got " + topP);
        this.temperature = temperature;
        this.topP = topP;
        this.rng = new SplittableRandom(seed);
    }

    public static Sampler greedy() {
        return new Sampler(0, 1, 0);
    }

    public boolean isGreedy() {
        return temperature == 0;
    }

    public int next(float[] logits) {
        if (temperature == 0) return argmax(logits);
        // probabilities at this temperature, stabilised by the maximum
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) max = Math.max(max, l);
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            p[i] = Math.exp((logits[i] - max) / temperature);
            sum += p[i];
        }
        if (topP >= 1) return draw(p, sum);
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> p[b] != p[a] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        // the nucleus: most likely tokens until their mass reaches top-p (always at least one)
        int keep = 0;
        double mass = 0;
        while (keep < order.length && (keep == 0 || mass < topP * sum)) mass += p[order[keep++]];
        double u = rng.nextDouble() * mass;
        for (int i = 0; i < keep; i++) {
            u -= p[order[i]];
            if (u < 0) return order[i];
        }
        return order[keep - 1];
    }

    /** A draw from unnormalised probabilities p summing to sum. */
    private int draw(double[] p, double sum) {
        double u = rng.nextDouble() * sum;
        for (int i = 0; i < p.length; i++) {
            u -= p[i];
            if (u < 0) return i;
        }
        for (int i = p.length - 1; i >= 0; i--) if (p[i] > 0) return i;   // rounding left u just above 0
        return p.length - 1;
    }

    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
