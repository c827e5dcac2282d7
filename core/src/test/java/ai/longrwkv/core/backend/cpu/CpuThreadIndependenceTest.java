package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The CPU backend's parallel ops split their work into fixed blocks and add per-block partial sums in block order, so a
 * run gives the same bits on one thread as on many (the exact-resume guarantee and the single-threaded demo rely on
 * it). Runs every op with a partial reduction, and the elementwise ones, on a 1-thread and a 5-thread pool. Not the
 * matrix products: they are cut by the thread count (Sgemm), so a run is reproducible for a given thread count.
 */
class CpuThreadIndependenceTest {

    private static HostTensor random(Random rnd, int... shape) {
        float[] d = new float[(int) HostTensor.numel(shape)];
        for (int i = 0; i < d.length; i++) d[i] = (float) rnd.nextGaussian();
        return new HostTensor(shape, d);
    }

    /** Every output of the ops, downloaded, in a fixed order. */
    private static List<float[]> runAll(long seed) {
        Random rnd = new Random(seed);
        int T = 203, C = 96, H = 3, V = 1000;   // T not a multiple of the row block, V not of the vector length
        List<float[]> out = new ArrayList<>();
        try (CpuBackend be = new CpuBackend()) {
            Tensor x = be.upload(random(rnd, T, C)), w = be.upload(random(rnd, C)), bias = be.upload(random(rnd, C));
            Tensor y = be.zeros(T, C), mean = be.zeros(T * H), rstd = be.zeros(T * H);
            be.norm(x, w, bias, H, 1e-5f, y, mean, rstd);
            Tensor dOut = be.upload(random(rnd, T, C)), dx = be.upload(random(rnd, T, C));
            Tensor dw = be.upload(random(rnd, C)), db = be.upload(random(rnd, C));
            be.normBackward(dOut, x, w, H, mean, rstd, dx, dw, db);
            Tensor prev = be.upload(random(rnd, C)), mix = be.upload(random(rnd, C)), mixed = be.zeros(T, C);
            be.tokenShiftMix(x, prev, mix, mixed);
            Tensor dxx = be.upload(random(rnd, T, C)), dPrev = be.upload(random(rnd, C)), dMix = be.upload(random(rnd, C));
            be.tokenShiftMixBackward(dOut, x, prev, mix, dxx, dPrev, dMix);
            Tensor s = be.zeros(T, C), sb = be.zeros(T, C);
            be.silu(x, s);
            be.siluBackward(x, dOut, sb);
            Tensor p = be.upload(random(rnd, 40_000)), g = be.upload(random(rnd, 40_000)), m = be.zeros(40_000), v = be.zeros(40_000);
            double pSq = be.adamwStep(p, g, 0.7f, m, v, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f, 3);
            double sq = be.sumOfSquares(g) + pSq;
            Tensor logits = be.upload(random(rnd, T, V)), dLogits = be.zeros(T, V);
            int[] targets = new int[T];
            float[] weights = new float[T];
            for (int t = 0; t < T; t++) { targets[t] = t % 7 == 0 ? -1 : rnd.nextInt(V); weights[t] = 1f; }
            double loss = be.crossEntropy(logits, targets, weights, 1e-4f, dLogits);
            for (Tensor t : new Tensor[]{y, mean, rstd, dx, dw, db, mixed, dxx, dPrev, dMix, s, sb, p, m, v, dLogits}) out.add(be.download(t).data());
            out.add(new float[]{(float) sq, (float) (sq - (float) sq), (float) loss, (float) (loss - (float) loss)});
        }
        return out;
    }

    @Test
    void oneThreadAndManyThreadsGiveTheSameBits() throws Exception {
        long seed = new Random().nextLong();
        List<float[]> one = CpuPool.withThreads(1, () -> runAll(seed)), many = CpuPool.withThreads(5, () -> runAll(seed));
        for (int i = 0; i < one.size(); i++) assertArrayEquals(one.get(i), many.get(i), "output " + i + ", seed " + seed);
    }
}
