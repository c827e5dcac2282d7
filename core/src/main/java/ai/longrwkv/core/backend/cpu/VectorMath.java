package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * Vector exp and lane sums built only from exactly rounded IEEE operations (add, mul, fma, compare, convert).
 *
 * <p>Why not VectorOperators.EXP and reduceLanes(ADD): their results differ between interpreted code (a Java
 * fallback: Math.exp per lane, lanes summed in order) and C2-compiled code (SVML exp, a tree of adds), so the same
 * computation gave different last bits before and after JIT warm-up, and a training run resumed in a fresh process no
 * longer reproduced the uninterrupted run bit for bit. These give the same bits in every execution mode.
 */
final class VectorMath {
    private VectorMath() { }

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    private static final float MAX_ARG = 88.0f, MIN_ARG = -87.3365447504019f;
    // Cephes expf minimax polynomial for exp(r) - 1 - r on |r| <= ln2/2 (relative error about 1e-7)
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
            P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /** exp(x) lane-wise; inputs below -87.3 give about 1e-38 (never a subnormal), above 88 give exp(88) (no overflow to infinity). */
    static FloatVector exp(FloatVector x) {
        x = x.max(MIN_ARG).min(MAX_ARG);
        FloatVector fx = x.mul(LOG2E).add(0.5f);
        // floor(fx) from truncation: truncation rounds negative values up, so subtract one where it did
        FloatVector t = ((IntVector) fx.convert(VectorOperators.F2I, 0)).convert(VectorOperators.I2F, 0).reinterpretAsFloats();
        VectorMask<Float> tooBig = t.compare(VectorOperators.GT, fx);
        FloatVector k = t.sub(1f, tooBig);
        FloatVector r = x.sub(k.mul(LN2_HI)).sub(k.mul(LN2_LO));
        FloatVector z = r.mul(r);
        FloatVector y = r.mul(P0).add(P1).mul(r).add(P2).mul(r).add(P3).mul(r).add(P4).mul(r).add(P5).mul(z).add(r).add(1f);
        IntVector bits = ((IntVector) k.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
        return y.mul(bits.reinterpretAsFloats());
    }

    /** The same function for one value (tails of vector loops), with the same operations in the same order. */
    static float exp(float x) {
        x = Math.min(Math.max(x, MIN_ARG), MAX_ARG);
        float fx = x * LOG2E + 0.5f;
        float t = (float) (int) fx;
        float k = t > fx ? t - 1f : t;
        float r = x - k * LN2_HI - k * LN2_LO;
        float z = r * r;
        float y = (((((r * P0 + P1) * r + P2) * r + P3) * r + P4) * r + P5) * z + r + 1f;
        return y * Float.intBitsToFloat(((int) k + 127) << 23);
    }

    /** Sum of the lanes, in lane order. */
    static float sumLanes(FloatVector v) {
        float s = 0f;
        for (int i = 0; i < v.length(); i++) s += v.lane(i);
        return s;
    }
}
