package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuMathTest {
    @Test
    void expIsAccurateAndStaysFinite() {
        Random rnd = new Random(1);
        double worst = 0;
        for (int i = 0; i < 2_000_000; i++) {
            float x = (float) ((rnd.nextDouble() * 2 - 1) * (i % 2 == 0 ? 87 : 3));
            double rel = Math.abs(CpuMath.exp(x) - Math.exp(x)) / Math.exp(x);
            worst = Math.max(worst, rel);
        }
        assertTrue(worst < 2e-7, "max relative error " + worst);
        assertEquals(1f, CpuMath.exp(0f), 0f);
        assertTrue(Float.isFinite(CpuMath.exp(1000f)));
        assertTrue(CpuMath.exp(-1000f) > 0f && CpuMath.exp(-1000f) < 1e-37f);
        assertEquals(0f, 1f / (1f + CpuMath.exp(1000f)), 1e-30f);
    }

    /** The cross-entropy's sum of exponentials: every float widened exactly, so a double sum of 65537 of them is exact to ~1e-12. */
    @Test
    void doubleSumOfFloatsMatchesAnExactReference() {
        java.util.Random rnd = new java.util.Random(3);
        float[] x = new float[65537];
        for (int i = 0; i < x.length; i++) x[i] = (float) Math.exp(rnd.nextGaussian() * 4);
        java.math.BigDecimal exact = java.math.BigDecimal.ZERO;
        for (float f : x) exact = exact.add(new java.math.BigDecimal(f));
        for (int n : new int[]{x.length, 13, 8, 0}) {
            java.math.BigDecimal e = java.math.BigDecimal.ZERO;
            for (int i = 0; i < n; i++) e = e.add(new java.math.BigDecimal(x[i]));
            assertEquals(e.doubleValue(), CpuMath.sum(x, n), 1e-12 * Math.max(1, e.doubleValue()), "n = " + n);
        }
    }

    @Test
    void laneSumsAddInLaneOrder() {
        float[] v = new float[Blocks.SPECIES.length()];
        for (int i = 0; i < v.length; i++) v[i] = (i % 2 == 0 ? 1e8f : 1f);
        float expected = 0f;
        for (float f : v) expected += f;
        assertEquals(expected, CpuMath.sumLanes(FloatVector.fromArray(Blocks.SPECIES, v, 0)));
    }

    @Test
    void vectorExpAndSigmoidEqualTheScalarFormulasBitForBit() {
        Random rnd = new Random();
        long seed = rnd.nextLong();
        rnd.setSeed(seed);
        int n = 50_000 + Blocks.SPECIES.length() / 2;   // a tail that the vector loop leaves to scalar code
        float[] x = new float[n], e = new float[n], s = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = switch (i % 5) {
                case 0 -> (float) ((rnd.nextDouble() * 2 - 1) * 100);
                case 1 -> (float) ((rnd.nextDouble() * 2 - 1) * 3);
                case 2 -> (float) ((rnd.nextDouble() * 2 - 1) * 1e-6);
                case 3 -> new float[]{1000f, -1000f, 0f, -0f, 88f, -87.3365447504019f, Float.MIN_VALUE, 0.5f}[rnd.nextInt(8)];
                default -> Float.intBitsToFloat(rnd.nextInt() & 0x7fffffff) * (rnd.nextBoolean() ? 1 : -1);
            };
            if (Float.isNaN(x[i])) x[i] = 1f;
        }
        float[] shifted = new float[n];
        CpuMath.exp(x, e, n, 1f, 0f);
        CpuMath.exp(x, shifted, n, 1f, 3.25f);
        Blocks.sigmoid(x, s, n);
        for (int i = 0; i < n; i++) {
            assertEquals(Float.floatToRawIntBits(CpuMath.exp(x[i])), Float.floatToRawIntBits(e[i]), "exp(" + x[i] + "), seed " + seed);
            assertEquals(Float.floatToRawIntBits(CpuMath.exp(x[i] - 3.25f)), Float.floatToRawIntBits(shifted[i]), "exp(" + x[i] + " - 3.25), seed " + seed);
            assertEquals(Float.floatToRawIntBits(1f / (1f + CpuMath.exp(-x[i]))), Float.floatToRawIntBits(s[i]), "sigmoid(" + x[i] + "), seed " + seed);
        }
    }
}
