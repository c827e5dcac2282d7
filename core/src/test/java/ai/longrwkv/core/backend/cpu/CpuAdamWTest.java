package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** The gradient-clipping factor folded into the AdamW pass computes what a separate scaling pass did, bit for bit. */
class CpuAdamWTest {

    private static Tensor random(CpuBackend be, Random rnd, int n, double scale) {
        float[] d = new float[n];
        for (int i = 0; i < n; i++) d[i] = (float) (rnd.nextGaussian() * scale);
        return be.upload(new HostTensor(new int[]{n}, d));
    }

    @Test
    void gradScaleInsideTheStepEqualsScalingTheGradientFirst() {
        long seed = new Random().nextLong();
        int n = 3 * Blocks.SIZE + 13;
        try (CpuBackend be = new CpuBackend()) {
            Random rnd = new Random(seed);
            Tensor p1 = random(be, rnd, n, 1), g = random(be, rnd, n, 3), m1 = random(be, rnd, n, 0.1), v1 = be.zeros(n);
            Tensor p2 = be.zeros(n), g2 = be.zeros(n), m2 = be.zeros(n), v2 = be.zeros(n);
            be.copy(p1, p2);
            be.copy(g, g2);
            be.copy(m1, m2);
            float f = 0.3172f;
            double sq = be.adamwStep(p1, g, f, m1, v1, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f, 2);
            be.scale(g2, f);
            be.adamwStep(p2, g2, 1f, m2, v2, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f, 2);
            assertArrayEquals(be.download(p2).data(), be.download(p1).data(), "param, seed " + seed);
            assertArrayEquals(be.download(m2).data(), be.download(m1).data(), "exp_avg, seed " + seed);
            assertArrayEquals(be.download(v2).data(), be.download(v1).data(), "exp_avg_sq, seed " + seed);
            assertEquals(be.sumOfSquares(p1), sq, 0.0, "returns the updated parameter's sum of squares");
            // an update that overflows the parameter says so through the returned sum
            assertFalse(Double.isFinite(be.adamwStep(p1, g, 1f, m1, v1, 3e38f, 0.9f, 0.99f, 1e-8f, 0f, 3)));
        }
    }

    /**
     * Moments that decay below the smallest normal float are stored as 0, in the vector lanes and the scalar tail alike;
     * moments above it are untouched (subnormal operands made AdamW 20x slower over rows whose gradient had stopped).
     */
    @Test
    void subnormalMomentsAreStoredAsZero() {
        int n = 3 * Blocks.SIZE + 13;
        try (CpuBackend be = new CpuBackend()) {
            float[] mm = new float[n], vv = new float[n];
            for (int i = 0; i < n; i++) {
                boolean tiny = i % 3 != 0;   // every third element stays normal after the decay
                mm[i] = (i % 2 == 0 ? 1 : -1) * (tiny ? 1.25e-38f : 1e-30f);
                vv[i] = tiny ? 1.18e-38f : 1e-30f;   // times 0.99: 1.168e-38, below 1.1755e-38
            }
            Tensor p = random(be, new Random(3), n, 1), g = be.zeros(n);
            Tensor m = be.upload(new HostTensor(new int[]{n}, mm)), v = be.upload(new HostTensor(new int[]{n}, vv));
            be.adamwStep(p, g, 1f, m, v, 1e-3f, 0.9f, 0.99f, 1e-8f, 0f, 5);
            float[] m2 = be.download(m).data(), v2 = be.download(v).data();
            for (int i = 0; i < n; i++) {
                if (i % 3 != 0) {
                    assertEquals(0f, m2[i], 0f, "m[" + i + "]");
                    assertEquals(0f, v2[i], 0f, "v[" + i + "]");
                } else {
                    assertEquals(0.9f * mm[i], m2[i], 0f, "m[" + i + "]");
                    assertEquals(0.99f * vv[i], v2[i], 0f, "v[" + i + "]");
                }
            }
        }
    }
}
