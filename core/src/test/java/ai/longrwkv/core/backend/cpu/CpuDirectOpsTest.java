package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The ops that load and store vectors straight from native memory (mul, add, relu^2 and its backward, the token-shift
 * mix) against plain scalar Java, bit for bit: sizes with a partial last block and a scalar tail, and tensors that are
 * views into the middle of a larger one (rows()), whose data does not start at their allocation's start.
 */
class CpuDirectOpsTest {

    private static float[] random(Random rnd, int n) {
        float[] d = new float[n];
        for (int i = 0; i < n; i++) d[i] = (float) rnd.nextGaussian();
        return d;
    }

    @Test
    void directOpsEqualScalarJava() {
        long seed = new Random().nextLong();
        Random rnd = new Random(seed);
        int rows = 2 * Blocks.SIZE / 64 + 3, c = 67;   // 67: an 8-lane loop and a tail per row; rows x c: a partial block
        int n = rows * c;
        try (CpuBackend be = new CpuBackend()) {
            // each operand is rows 1..rows of a [rows + 2, c] tensor: a view that starts c floats into its allocation
            float[] xa = random(rnd, n), ya = random(rnd, n), m = random(rnd, c), prev = random(rnd, c);
            Tensor xBig = be.upload(new HostTensor(new int[]{rows + 2, c}, pad(xa, c))), yBig = be.upload(new HostTensor(new int[]{rows + 2, c}, pad(ya, c)));
            Tensor x = be.rows(xBig, 1, rows), y = be.rows(yBig, 1, rows);
            Tensor outBig = be.zeros(rows + 2, c), out = be.rows(outBig, 1, rows);
            float[] want = new float[n];

            be.mul(x, y, out);
            for (int i = 0; i < n; i++) want[i] = xa[i] * ya[i];
            assertArrayEquals(want, be.download(out).data(), "mul, seed " + seed);

            be.add(x, y, out);
            for (int i = 0; i < n; i++) want[i] = xa[i] + ya[i];
            assertArrayEquals(want, be.download(out).data(), "add, seed " + seed);

            be.reluSquare(x, out);
            for (int i = 0; i < n; i++) { float a = Math.max(xa[i], 0f); want[i] = a * a; }
            assertArrayEquals(want, be.download(out).data(), "reluSquare, seed " + seed);

            be.reluSquareBackward(x, y, out);
            for (int i = 0; i < n; i++) want[i] = ya[i] * 2f * Math.max(xa[i], 0f);
            assertArrayEquals(want, be.download(out).data(), "reluSquareBackward, seed " + seed);

            be.tokenShiftMix(x, be.upload(new HostTensor(new int[]{c}, prev)), be.upload(new HostTensor(new int[]{c}, m)), out);
            for (int r = 0; r < rows; r++) {
                for (int i = 0; i < c; i++) {
                    float shifted = r == 0 ? prev[i] : xa[(r - 1) * c + i];
                    want[r * c + i] = xa[r * c + i] * m[i] + shifted * (1 - m[i]);
                }
            }
            assertArrayEquals(want, be.download(out).data(), "tokenShiftMix, seed " + seed);
            // backward: dxx[r] = (dxx[r] + dOut[r] m) + dOut[r+1] (1 - m) exactly; dMix = sum_r dOut[r] (xx[r] - shifted[r])
            float[] da = random(rnd, n), dxa = random(rnd, n);
            Tensor dBig = be.upload(new HostTensor(new int[]{rows + 2, c}, pad(da, c))), dOut = be.rows(dBig, 1, rows);
            Tensor dxBig = be.upload(new HostTensor(new int[]{rows + 2, c}, pad(dxa, c))), dxx = be.rows(dxBig, 1, rows);
            Tensor dPrev = be.zeros(c), dMix = be.zeros(c);
            be.tokenShiftMixBackward(dOut, x, be.upload(new HostTensor(new int[]{c}, prev)), be.upload(new HostTensor(new int[]{c}, m)), dxx, dPrev, dMix);
            double[] dm = new double[c];
            for (int r = 0; r < rows; r++) {
                for (int i = 0; i < c; i++) {
                    float om = 1 - m[i], shifted = r == 0 ? prev[i] : xa[(r - 1) * c + i];
                    float d = dxa[r * c + i] + da[r * c + i] * m[i];
                    if (r + 1 < rows) d += da[(r + 1) * c + i] * om;
                    want[r * c + i] = d;
                    dm[i] += (double) da[r * c + i] * (xa[r * c + i] - shifted);
                }
            }
            assertArrayEquals(want, be.download(dxx).data(), "tokenShiftMixBackward dxx, seed " + seed);
            float[] gotDm = be.download(dMix).data(), gotDp = be.download(dPrev).data();
            for (int i = 0; i < c; i++) {
                org.junit.jupiter.api.Assertions.assertEquals(dm[i], gotDm[i], 1e-4 * (1 + Math.abs(dm[i])), "dMix " + i + ", seed " + seed);
                org.junit.jupiter.api.Assertions.assertEquals(da[i] * (1 - m[i]), gotDp[i], 1e-6, "dPrev " + i + ", seed " + seed);
            }
            // nothing written outside the view
            float[] all = be.download(outBig).data();
            for (int i = 0; i < c; i++) {
                assertArrayEquals(new float[]{0f, 0f}, new float[]{all[i], all[(rows + 1) * c + i]}, "outside the view, column " + i);
            }
        }
    }

    private static float[] pad(float[] d, int c) {
        float[] p = new float[d.length + 2 * c];
        System.arraycopy(d, 0, p, c, d.length);
        return p;
    }

    /**
     * The suite runs with -Dlongrwkv.cpu.poisonEmpty=true (the parent pom's surefire argLine): every tensor the model
     * takes from empty() starts as NaN, so any test whose model reads an activation before writing it fails.
     */
    @Test
    void emptyTensorsAreNaNUnderTheTestSuite() {
        try (CpuBackend be = new CpuBackend()) {
            assertTrue(CpuBackend.POISON_EMPTY, "the test JVM sets longrwkv.cpu.poisonEmpty");
            be.zeros(17).close();   // the pool hands this zeroed buffer out again
            for (float f : be.download(be.empty(17)).data()) assertTrue(Float.isNaN(f));
            Tensor bf = be.empty(ai.longrwkv.core.tensor.DType.BF16, 5);
            for (float f : be.download(bf).data()) assertTrue(Float.isNaN(f));
        }
    }
}
