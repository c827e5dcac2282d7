package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class VectorMathTest {
    @Test
    void expIsAccurateAndTheVectorAndScalarFormsAgreeBitForBit() {
        Random rnd = new Random(1);
        int lanes = Blocks.SPECIES.length();
        float[] x = new float[lanes], out = new float[lanes];
        double worst = 0;
        for (int rep = 0; rep < 20000; rep++) {
            for (int i = 0; i < lanes; i++) x[i] = (float) ((rnd.nextDouble() * 2 - 1) * (rep % 2 == 0 ? 87 : 5));
            VectorMath.exp(FloatVector.fromArray(Blocks.SPECIES, x, 0)).intoArray(out, 0);
            for (int i = 0; i < lanes; i++) {
                assertEquals(Float.floatToIntBits(VectorMath.exp(x[i])), Float.floatToIntBits(out[i]), "x = " + x[i]);
                double rel = Math.abs(out[i] - Math.exp(x[i])) / Math.exp(x[i]);
                worst = Math.max(worst, rel);
            }
        }
        assertTrue(worst < 3e-7, "max relative error " + worst);
        assertEquals(0f, 1f / (1f + VectorMath.exp(1000f)), 1e-30f);
        assertTrue(Float.isFinite(VectorMath.exp(1000f)));
        assertTrue(VectorMath.exp(-1000f) > 0f && VectorMath.exp(-1000f) < 1e-37f);
    }

    @Test
    void laneSumsAddInLaneOrder() {
        float[] v = new float[Blocks.SPECIES.length()];
        for (int i = 0; i < v.length; i++) v[i] = (i % 2 == 0 ? 1e8f : 1f);
        float expected = 0f;
        for (float f : v) expected += f;
        assertEquals(expected, VectorMath.sumLanes(FloatVector.fromArray(Blocks.SPECIES, v, 0)));
    }
}
