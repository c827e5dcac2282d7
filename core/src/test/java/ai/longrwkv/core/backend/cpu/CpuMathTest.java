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

    @Test
    void laneSumsAddInLaneOrder() {
        float[] v = new float[Blocks.SPECIES.length()];
        for (int i = 0; i < v.length; i++) v[i] = (i % 2 == 0 ? 1e8f : 1f);
        float expected = 0f;
        for (float f : v) expected += f;
        assertEquals(expected, CpuMath.sumLanes(FloatVector.fromArray(Blocks.SPECIES, v, 0)));
    }
}
