package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class VectorMathTest {
    @Test
    void laneSumsAddInLaneOrder() {
        float[] v = new float[Blocks.SPECIES.length()];
        for (int i = 0; i < v.length; i++) v[i] = (i % 2 == 0 ? 1e8f : 1f);
        float expected = 0f;
        for (float f : v) expected += f;
        assertEquals(expected, VectorMath.sumLanes(FloatVector.fromArray(Blocks.SPECIES, v, 0)));
    }
}
