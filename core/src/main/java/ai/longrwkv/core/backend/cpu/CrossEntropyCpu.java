package ai.longrwkv.core.backend.cpu;

import java.nio.FloatBuffer;

/**
 * Cross-entropy of one row of logits, with its gradient and RWKV-LM's L2Wrap term, on a thread-local copy of the row
 * (rows run in parallel); exponentials by {@link CpuMath#exp}.
 */
final class CrossEntropyCpu {
    private CrossEntropyCpu() { }

    private static final ThreadLocal<float[]> ROW = ThreadLocal.withInitial(() -> new float[0]);

    static double row(FloatBuffer in, FloatBuffer out, int offset, int vocab, int target, float weight, float l2WrapFactor) {
        float[] x = ROW.get();
        if (x.length < vocab) {
            x = new float[vocab];
            ROW.set(x);
        }
        in.get(offset, x, 0, vocab);
        float max = Float.NEGATIVE_INFINITY;
        int argmax = 0;
        for (int i = 0; i < vocab; i++) {
            if (x[i] > max) { max = x[i]; argmax = i; }
        }
        boolean hasTarget = target >= 0 && weight != 0f;
        if (target >= vocab) throw new IllegalArgumentException("target id " + target + " is outside the vocabulary 0.." + (vocab - 1));
        float targetLogit = hasTarget ? x[target] : 0f;
        // one pass of exponentials: kept in x when the gradient is wanted, as softmax = exp(x - max) / sum
        boolean keep = out != null && hasTarget;
        double sum = expMinus(x, vocab, max, keep);
        double lse = max + Math.log(sum);
        double loss = hasTarget ? weight * (lse - targetLogit) : 0.0;
        if (out != null) {
            if (hasTarget) {
                // x[i] <- weight * softmax_i
                float scale = (float) (weight / sum);
                for (int i = 0; i < vocab; i++) x[i] *= scale;
                x[target] -= weight;
            } else {
                java.util.Arrays.fill(x, 0, vocab, 0f);
            }
            if (l2WrapFactor > 0f) x[argmax] += l2WrapFactor * max;
            out.put(offset, x, 0, vocab);
        }
        return loss;
    }

    /** Sum of exp(x - shift), accumulated in double in index order; if store, also x[i] = exp(x[i] - shift). */
    private static double expMinus(float[] x, int n, float shift, boolean store) {
        double total = 0;
        for (int i = 0; i < n; i++) {
            float e = CpuMath.exp(x[i] - shift);
            if (store) x[i] = e;
            total += e;
        }
        return total;
    }
}
