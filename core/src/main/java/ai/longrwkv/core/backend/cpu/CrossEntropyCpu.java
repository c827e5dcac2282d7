package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.nio.FloatBuffer;

/**
 * Cross-entropy of one row of logits, with its gradient and RWKV-LM's L2Wrap term, on a thread-local copy of the row
 * (rows run in parallel). Max, exponentials and the gradient's scaling are Vector API loops ({@link CpuMath#exp(float[], float[], int, float, float)});
 * the sum of exponentials is in double, in a fixed order, so the loss is the same bits in every run.
 */
final class CrossEntropyCpu {
    private CrossEntropyCpu() { }

    private static final VectorSpecies<Float> S = CpuMath.SPECIES;
    private static final ThreadLocal<float[]> ROW = ThreadLocal.withInitial(() -> new float[0]);

    static double row(FloatBuffer in, FloatBuffer out, int offset, int vocab, int target, float weight, float l2WrapFactor) {
        float[] x = ROW.get();
        if (x.length < vocab) {
            x = new float[vocab];
            ROW.set(x);
        }
        in.get(offset, x, 0, vocab);
        float max = max(x, vocab);
        int argmax = firstEqual(x, vocab, max);   // the first maximum, as a strict > scan finds
        boolean hasTarget = target >= 0 && weight != 0f;
        if (target >= vocab) throw new IllegalArgumentException("target id " + target + " is outside the vocabulary 0.." + (vocab - 1));
        float targetLogit = hasTarget ? x[target] : 0f;
        // x is this thread's copy of the row: it now receives exp(x - max), the unnormalised softmax
        double sum = expMinusInPlace(x, vocab, max);
        double lse = max + Math.log(sum);
        double loss = hasTarget ? weight * (lse - targetLogit) : 0.0;
        if (out != null) {
            if (hasTarget) {
                // x[i] <- weight * softmax_i
                scale(x, vocab, (float) (weight / sum));
                x[target] -= weight;
            } else {
                java.util.Arrays.fill(x, 0, vocab, 0f);
            }
            if (l2WrapFactor > 0f) x[argmax] += l2WrapFactor * max;
            out.put(offset, x, 0, vocab);
        }
        return loss;
    }

    private static float max(float[] x, int n) {
        int i = 0;
        float max = Float.NEGATIVE_INFINITY;
        if (n >= S.length()) {
            FloatVector m = FloatVector.fromArray(S, x, 0);
            for (i = S.length(); i <= n - S.length(); i += S.length()) m = m.max(FloatVector.fromArray(S, x, i));
            for (int l = 0; l < S.length(); l++) max = Math.max(max, m.lane(l));
        }
        for (; i < n; i++) max = Math.max(max, x[i]);
        return max;
    }

    /** The first i with x[i] == value (n - 1 if none: a row of NaNs), a vector compare per 8 floats. */
    private static int firstEqual(float[] x, int n, float value) {
        int i = 0;
        for (int end = S.loopBound(n); i < end; i += S.length()) {
            int lane = FloatVector.fromArray(S, x, i).eq(value).firstTrue();
            if (lane < S.length()) return i + lane;
        }
        for (; i < n - 1; i++) if (x[i] == value) return i;
        return n - 1;
    }

    /** x[i] = exp(x[i] - shift); returns their sum, in double ({@link CpuMath#sum}: a fixed order). */
    private static double expMinusInPlace(float[] x, int n, float shift) {
        CpuMath.exp(x, x, n, 1f, shift);
        return CpuMath.sum(x, n);
    }

    private static void scale(float[] x, int n, float s) {
        int i = 0;
        for (int end = S.loopBound(n); i < end; i += S.length()) FloatVector.fromArray(S, x, i).mul(s).intoArray(x, i);
        for (; i < n; i++) x[i] *= s;
    }
}
