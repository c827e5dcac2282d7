package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A float exp, scalar and vector, and lane sums that give the same bits in every execution mode.
 *
 * <p>Why not reduceLanes(ADD): its result differs between interpreted code (a Java fallback adding lanes in order) and
 * C2-compiled code (a tree of adds), so the same computation gave different last bits before and after JIT warm-up,
 * and a training run resumed in a fresh process no longer reproduced the uninterrupted run bit for bit. For the same
 * reason exponentials avoid VectorOperators.EXP (a Java fallback or SVML).
 *
 * <p>The scalar {@link #exp} and the vector loop {@link #exp(float[], float[], int, float, float)} are the same sequence of IEEE float operations (multiply, add, subtract,
 * min, max, and integer bit arithmetic; no fused multiply-add, no float-to-int conversion), so a lane of the vector
 * version equals the scalar version bit for bit, in the interpreter and after JIT compilation alike. The exponent is
 * taken from the "magic number" rounding x log2(e) + 1.5 * 2^23, whose low mantissa bits hold round(x log2(e)): Java
 * 17's Vector API compiles that bit arithmetic but not float-to-int lane conversions (an earlier vector exp built on
 * those was no faster than scalar code). Measured on the AMD EPYC dev machine with AVX-512: 0.6 ns per element for the
 * vector version against 5-6 ns for the scalar one.
 */
final class CpuMath {
    private CpuMath() { }

    /**
     * The one vector shape of the CPU backend (WkvCpu and WkvChunkedCpu take it from here). One shape, not the CPU's
     * preferred one: the JDK's shared FloatVector methods (intoArray, fromArray) collect one type profile for all
     * callers, and with 256- and 512-bit vectors both in use C2 stopped intrinsifying the store in the exp loop, which
     * then ran 8x slower than scalar code inside the model (found with JFR and -XX:+PrintInlining). 256 bits is native
     * on AVX2 and AVX-512.
     */
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_256;

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    private static final float MAX_ARG = 88.0f, MIN_ARG = -87.3365447504019f;
    /** 1.5 * 2^23: adding it rounds a float of magnitude below 2^22 to an integer held in the low mantissa bits. */
    private static final float MAGIC = 12582912f;
    /** The bits of MAGIC minus the float exponent bias: (bits(x log2e + MAGIC) - MAGIC_BIAS) << 23 is 2^round(x log2e). */
    private static final int MAGIC_BIAS = 0x4B400000 - 127;
    // Cephes expf minimax polynomial for exp(r) - 1 - r on |r| <= ln2/2 (relative error about 1e-7)
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
            P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /**
     * exp(x) in float, relative error below 2e-7 (tested against Math.exp). Inputs below -87.3 give about 1e-38
     * (never a subnormal), above 88 give exp(88) (never infinity).
     */
    static float exp(float x) {
        x = Math.min(Math.max(x, MIN_ARG), MAX_ARG);
        float t = x * LOG2E + MAGIC;
        float k = t - MAGIC;
        float r = x - k * LN2_HI - k * LN2_LO;
        float z = r * r;
        float y = (((((r * P0 + P1) * r + P2) * r + P3) * r + P4) * r + P5) * z + r + 1f;
        return y * Float.intBitsToFloat((Float.floatToRawIntBits(t) - MAGIC_BIAS) << 23);
    }

    /**
     * out[i] = {@link #exp}(x[i] * a - shift) for i < n (out may be x). One array loop rather than a FloatVector -> FloatVector
     * helper: C2 intrinsifies the bit reinterpretation only where it sees the vector's concrete species, and a helper
     * compiled on its own fell back to a Java loop (measured 8x slower than scalar code inside the model).
     */
    static void exp(float[] x, float[] out, int n, float a, float shift) {
        int i = 0;
        for (int end = SPECIES.loopBound(n); i < end; i += SPECIES.length()) {
            FloatVector v = FloatVector.fromArray(SPECIES, x, i).mul(a).sub(shift).max(MIN_ARG).min(MAX_ARG);
            FloatVector t = v.mul(LOG2E).add(MAGIC);
            FloatVector k = t.sub(MAGIC);
            FloatVector r = v.sub(k.mul(LN2_HI)).sub(k.mul(LN2_LO));
            FloatVector z = r.mul(r);
            FloatVector y = r.mul(P0).add(P1).mul(r).add(P2).mul(r).add(P3).mul(r).add(P4).mul(r).add(P5).mul(z).add(r).add(1f);
            IntVector pow2 = ((IntVector) t.reinterpretAsInts()).sub(MAGIC_BIAS).lanewise(VectorOperators.LSHL, 23);
            y.mul(pow2.reinterpretAsFloats()).intoArray(out, i);
        }
        for (; i < n; i++) out[i] = exp(x[i] * a - shift);
    }

    private static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_256;

    /**
     * Sum of xs[i] for i < n in double, in the order of {@link #sumOfSquares}: each float widened exactly, summed in 8
     * double lanes, the lanes added in lane order, then the scalar tail.
     */
    static double sum(float[] xs, int n) {
        DoubleVector lo = DoubleVector.zero(DOUBLES), hi = DoubleVector.zero(DOUBLES);
        int i = 0;
        for (int end = SPECIES.loopBound(n); i < end; i += SPECIES.length()) {
            FloatVector f = FloatVector.fromArray(SPECIES, xs, i);
            lo = lo.add((DoubleVector) f.convertShape(VectorOperators.F2D, DOUBLES, 0));
            hi = hi.add((DoubleVector) f.convertShape(VectorOperators.F2D, DOUBLES, 1));
        }
        double s = 0;
        for (int l = 0; l < DOUBLES.length(); l++) s += lo.lane(l);
        for (int l = 0; l < DOUBLES.length(); l++) s += hi.lane(l);
        for (; i < n; i++) s += xs[i];
        return s;
    }

    /**
     * Sum of xs[i]^2 for i < n in double: each float widened exactly to double, squared and summed in 8 double lanes
     * (two 4-lane vectors, the low and high halves of each 8-float load), the lanes added in lane order, then the
     * scalar tail; a fixed order, so the same bits in every run. Measured on the dev machine: 0.14 ns per element
     * against 0.34-0.41 for the four-chain scalar loop it replaces (a gradient-norm pass over a 0.2B model's
     * gradients is 193M elements).
     */
    static double sumOfSquares(float[] xs, int n) {
        assert 2 * DOUBLES.length() == SPECIES.length() : "the two double halves must cover one float load";
        DoubleVector lo = DoubleVector.zero(DOUBLES), hi = DoubleVector.zero(DOUBLES);
        int i = 0;
        for (int end = SPECIES.loopBound(n); i < end; i += SPECIES.length()) {
            FloatVector f = FloatVector.fromArray(SPECIES, xs, i);
            DoubleVector a = (DoubleVector) f.convertShape(VectorOperators.F2D, DOUBLES, 0);
            DoubleVector b = (DoubleVector) f.convertShape(VectorOperators.F2D, DOUBLES, 1);
            lo = lo.add(a.mul(a));
            hi = hi.add(b.mul(b));
        }
        double s = 0;
        for (int l = 0; l < DOUBLES.length(); l++) s += lo.lane(l);
        for (int l = 0; l < DOUBLES.length(); l++) s += hi.lane(l);
        for (; i < n; i++) s += (double) xs[i] * xs[i];
        return s;
    }

    /** Sum of the lanes, in lane order. */
    static float sumLanes(FloatVector v) {
        float s = 0f;
        for (int i = 0; i < v.length(); i++) s += v.lane(i);
        return s;
    }
}
