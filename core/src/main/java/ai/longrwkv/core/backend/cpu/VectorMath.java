package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;

/**
 * Lane sums in a fixed order.
 *
 * <p>Why not reduceLanes(ADD): its result differs between interpreted code (a Java fallback adding lanes in order) and
 * C2-compiled code (a tree of adds), so the same computation gave different last bits before and after JIT warm-up,
 * and a training run resumed in a fresh process no longer reproduced the uninterrupted run bit for bit. For the same
 * reason exponentials use Math.exp (one implementation in interpreter and JIT, checked) rather than
 * VectorOperators.EXP (a Java fallback or SVML): a vector exp built from basic lane operations was tried and measured
 * no faster than Math.exp on Java 17 (8 ns per value), whose Vector API does not compile its conversions.
 */
final class VectorMath {
    private VectorMath() { }

    /** Sum of the lanes, in lane order. */
    static float sumLanes(FloatVector v) {
        float s = 0f;
        for (int i = 0; i < v.length(); i++) s += v.lane(i);
        return s;
    }
}
