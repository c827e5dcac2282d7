package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.ChunkedBptt;
import ai.longrwkv.core.train.TokenSequence;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * CUDA parity suite: every CUDA kernel against the CPU backend on random inputs (a fresh seed each run, printed in
 * every failure so that a failing run can be repeated with -Dlongrwkv.parity.seed=S), then a whole model's forward and
 * full-BPTT backward over several chunks.
 *
 * <p>It runs on the device {@code -Dlongrwkv.parity.device} names: {@code emulated} (the default, so every CI run
 * executes the real kernels on the emulated device) or {@code cuda} (a real GPU; scripts/gpu-check.sh sets it, and
 * the suite then fails, not skips, when the GPU cannot be used). The test code is the same for both.
 *
 * <p>Tolerance: relative error = max|cpu - gpu| / max|cpu| per tensor, at most 1e-4. Both sides compute in fp32 with
 * fp32 or double accumulation but in different orders (cuBLAS/OpenBLAS blocking, tree reductions in the kernels,
 * the CPU's SIMD lanes) and with different expf/exp implementations (CUDA's libdevice, glibc; both within 2 ulp), so
 * bit equality is not expected; 1e-4 is ~800 ulp of the largest element, far below any indexing or algebra error
 * (those change results by O(1) relative), and it holds for the whole model's gradients across chunks too.
 */
class CudaParityTest {
    static final double TOL = 1e-4;
    static Backend gpu, cpu;
    /** The same device with the chunked WKV kernels (wkv5_chunked.cu); gpu runs the sequential ones (wkv5.cu). */
    static Backend gpuChunked;
    static long seed;
    Random rnd;
    /** Largest relative error this test saw (printed as "PARITY name error" for scripts/gpu-check.sh's table). */
    double maxErr;

    @BeforeAll
    static void start() {
        seed = Long.getLong("longrwkv.parity.seed", System.nanoTime());
        // the references and the WKV kernels are forced (-Dlongrwkv.wkv): CPU sequential, the GPU's sequential and chunked
        cpu = CudaChunkedWkvTest.withWkv(WkvImpl.SEQUENTIAL, CpuBackend::new);
        String device = System.getProperty("longrwkv.parity.device", "emulated");
        // a device that cannot start fails the suite: nothing is skipped
        gpu = CudaChunkedWkvTest.withWkv(WkvImpl.SEQUENTIAL, () -> Backends.create(device));
        assertTrue(gpu instanceof CudaBackend, "the parity suite needs a CUDA backend, got " + gpu.name());
        gpuChunked = CudaChunkedWkvTest.withWkv(WkvImpl.CHUNKED, () -> Backends.create(device));
        System.out.println("CudaParityTest on " + gpu.name() + ", seed " + seed);
    }

    @AfterAll
    static void stop() {
        if (gpu != null) gpu.close();
        if (gpuChunked != null) gpuChunked.close();
        cpu.close();
    }

    @BeforeEach
    void seedPerTest(org.junit.jupiter.api.TestInfo info) {
        maxErr = 0;
        // a different stream per test, all derived from the run's seed
        rnd = new Random(seed ^ info.getDisplayName().hashCode());
    }

    @org.junit.jupiter.api.AfterEach
    void report(org.junit.jupiter.api.TestInfo info) {
        System.out.printf("PARITY %s %.3g%n", info.getTestMethod().map(java.lang.reflect.Method::getName).orElse("?"), maxErr);
    }

    // ---------------------------------------------------------------- helpers
    /** Gaussian values times scale, never exactly zero. */
    HostTensor rand(double scale, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        float[] d = h.data();
        for (int i = 0; i < d.length; i++) {
            float x = (float) (scale * rnd.nextGaussian());
            d[i] = x == 0f ? 1e-3f : x;
        }
        return h;
    }

    HostTensor uniform(double lo, double hi, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        for (int i = 0; i < h.size(); i++) h.data()[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        return h;
    }

    /** The same host data on both backends: [cpu tensor, gpu tensor]. */
    static Tensor[] both(HostTensor h) {
        return both(gpu, h);
    }

    static Tensor[] both(Backend gpu, HostTensor h) {
        return new Tensor[]{cpu.upload(h), gpu.upload(h)};
    }

    static void closeAll(Tensor[]... pairs) {
        for (Tensor[] p : pairs) for (Tensor t : p) t.close();
    }

    static double relErr(float[] ref, float[] got) {
        assertEquals(ref.length, got.length);
        double m = 0, d = 0;
        for (int i = 0; i < ref.length; i++) {
            m = Math.max(m, Math.abs(ref[i]));
            double diff = Math.abs((double) ref[i] - got[i]);
            if (Double.isNaN(got[i]) || Double.isNaN(diff)) return Double.POSITIVE_INFINITY;
            d = Math.max(d, diff);
        }
        return m == 0 ? d : d / m;
    }

    void same(String what, Tensor[] pair) {
        same(gpu, what, pair);
    }

    void same(Backend gpu, String what, Tensor[] pair) {
        same(what, cpu.download(pair[0]).data(), gpu.download(pair[1]).data());
    }

    void same(String what, float[] ref, float[] got) {
        double e = relErr(ref, got);
        maxErr = Math.max(maxErr, e);
        assertTrue(e <= TOL, what + ": relative error " + e + " > " + TOL + " (seed " + seed + ")");
    }

    void sameScalar(String what, double ref, double got) {
        double e = Math.abs(ref - got) / Math.max(Math.abs(ref), 1e-30);
        maxErr = Math.max(maxErr, e);
        assertTrue(e <= TOL, what + ": " + ref + " vs " + got + " relative " + e + " (seed " + seed + ")");
    }

    // ---------------------------------------------------------------- memory
    @Test
    void uploadDownloadFillCopyAndByteTracking() {
        long before = gpu.liveBytes();
        HostTensor h = rand(1, 3, 5, 7);
        try (Tensor a = gpu.upload(h); Tensor b = gpu.zeros(3, 5, 7)) {
            assertEquals(before + 2 * 105 * 4, gpu.liveBytes());
            assertTrue(gpu.peakBytes() >= gpu.liveBytes());
            assertTrue(java.util.Arrays.equals(h.data(), gpu.download(a).data()), "upload/download round trip");
            for (float v : gpu.download(b).data()) assertEquals(0f, v, "zeros()");
            gpu.copy(a, b);
            assertTrue(java.util.Arrays.equals(h.data(), gpu.download(b).data()), "copy");
            gpu.fill(b, 2.5f);
            for (float v : gpu.download(b).data()) assertEquals(2.5f, v, "fill");
        }
        assertEquals(before, gpu.liveBytes(), "closed tensors no longer count");
    }

    // ---------------------------------------------------------------- matmul
    @Test
    void matmulAllTransposes() {
        int m = 37, k = 70, n = 53;
        for (boolean ta : new boolean[]{false, true}) {
            for (boolean tb : new boolean[]{false, true}) {
                Tensor[] a = both(rand(1, ta ? k : m, ta ? m : k)), b = both(rand(1, tb ? n : k, tb ? k : n)), c = both(rand(1, m, n));
                cpu.matmul(a[0], ta, b[0], tb, c[0], 0.7f, 0.3f);
                gpu.matmul(a[1], ta, b[1], tb, c[1], 0.7f, 0.3f);
                same("matmul ta=" + ta + " tb=" + tb, c);
                closeAll(a, b, c);
            }
        }
    }

    // ---------------------------------------------------------------- embedding
    @Test
    void embeddingGatherAndScatterAdd() {
        int v = 50, c = 24, t = 40;
        int[] ids = new int[t];
        for (int i = 0; i < t; i++) ids[i] = rnd.nextInt(v / 5);   // many repeats
        Tensor[] table = both(rand(1, v, c)), out = both(rand(1, t, c)), dOut = both(rand(1, t, c)), dTable = both(rand(1, v, c));
        cpu.embedding(table[0], ids, out[0]);
        gpu.embedding(table[1], ids, out[1]);
        same("embedding", out);
        cpu.embeddingBackward(dOut[0], ids, dTable[0]);
        gpu.embeddingBackward(dOut[1], ids, dTable[1]);
        same("embeddingBackward", dTable);
        closeAll(table, out, dOut, dTable);
    }

    // ---------------------------------------------------------------- norms
    @Test
    void layerNormAndGroupNormForwardBackward() {
        int rows = 19;
        // 100 and 60/4 = 15: widths that leave a scalar tail after the CPU's 8-lane vector loops
        for (int[] cg : new int[][]{{96, 1}, {96, 12}, {1024, 1}, {512, 8}, {100, 1}, {60, 4}}) {
            int c = cg[0], groups = cg[1];
            Tensor[] x = both(rand(2, rows, c)), w = both(rand(1, c)), b = both(rand(1, c)), out = both(rand(1, rows, c));
            Tensor[] mean = both(rand(1, rows * groups)), rstd = both(rand(1, rows * groups));
            cpu.norm(x[0], w[0], b[0], groups, 1e-5f, out[0], mean[0], rstd[0]);
            gpu.norm(x[1], w[1], b[1], groups, 1e-5f, out[1], mean[1], rstd[1]);
            String tag = " C=" + c + " groups=" + groups;
            same("norm out" + tag, out);
            same("norm mean" + tag, mean);
            same("norm rstd" + tag, rstd);
            Tensor[] dOut = both(rand(1, rows, c)), dx = both(rand(1, rows, c)), dw = both(rand(1, c)), db = both(rand(1, c));
            cpu.normBackward(dOut[0], x[0], w[0], groups, mean[0], rstd[0], dx[0], dw[0], db[0]);
            gpu.normBackward(dOut[1], x[1], w[1], groups, mean[1], rstd[1], dx[1], dw[1], db[1]);
            same("normBackward dx" + tag, dx);
            same("normBackward dw" + tag, dw);
            same("normBackward db" + tag, db);
            closeAll(x, w, b, out, mean, rstd, dOut, dx, dw, db);
        }
    }

    // ---------------------------------------------------------------- token shift and rows
    @Test
    void tokenShiftMixForwardBackwardAndRows() {
        tokenShiftMixForwardBackwardAndRows(23, 40);
        tokenShiftMixForwardBackwardAndRows(37, 43);   // 43: a scalar tail after the CPU's 8-lane loops; 37 rows: 3 row tasks
    }

    private void tokenShiftMixForwardBackwardAndRows(int t, int c) {
        Tensor[] xx = both(rand(1, t, c)), prev = both(rand(1, c)), mix = both(uniform(0, 1, c)), out = both(rand(1, t, c));
        cpu.tokenShiftMix(xx[0], prev[0], mix[0], out[0]);
        gpu.tokenShiftMix(xx[1], prev[1], mix[1], out[1]);
        same("tokenShiftMix", out);
        Tensor[] dOut = both(rand(1, t, c)), dxx = both(rand(1, t, c)), dPrev = both(rand(1, c)), dMix = both(rand(1, c));
        cpu.tokenShiftMixBackward(dOut[0], xx[0], prev[0], mix[0], dxx[0], dPrev[0], dMix[0]);
        gpu.tokenShiftMixBackward(dOut[1], xx[1], prev[1], mix[1], dxx[1], dPrev[1], dMix[1]);
        same("tokenShiftMixBackward dxx", dxx);
        same("tokenShiftMixBackward dPrev", dPrev);
        same("tokenShiftMixBackward dMix", dMix);
        Tensor[] row = both(rand(1, c));
        cpu.copyRow(xx[0], t - 1, row[0]);
        gpu.copyRow(xx[1], t - 1, row[1]);
        same("copyRow", row);
        cpu.addToRow(dxx[0], 5, row[0]);
        gpu.addToRow(dxx[1], 5, row[1]);
        same("addToRow", dxx);
        closeAll(xx, prev, mix, out, dOut, dxx, dPrev, dMix, row);
    }

    // ---------------------------------------------------------------- WKV
    @Test
    void decayAndDecayBackward() {
        Tensor[] td = both(uniform(-6, 1, 4, 64)), w = both(rand(1, 4, 64)), dw = both(rand(1, 4, 64)), dtd = both(rand(1, 4, 64));
        cpu.decay(td[0], w[0]);
        gpu.decay(td[1], w[1]);
        same("decay", w);
        cpu.decayBackward(td[0], w[0], dw[0], dtd[0]);
        gpu.decayBackward(td[1], w[1], dw[1], dtd[1]);
        same("decayBackward", dtd);
        closeAll(td, w, dw, dtd);
    }

    @Test
    void wkvForwardBackwardWithStateInAndOut() {
        for (int[] hn : new int[][]{{3, 8}, {2, 4}, {4, 64}, {2, 16}}) {
            int h = hn[0], n = hn[1];
            for (int steps : new int[]{1, 37, 300}) {
                wkvCase(gpu, h, n, steps);
                wkvCase(gpuChunked, h, n, steps);
            }
        }
    }

    private void wkvCase(Backend gpu, int h, int n, int steps) {
        int c = h * n;
        String tag = " H=" + h + " N=" + n + " T=" + steps + (gpu == gpuChunked ? " chunked" : " sequential");
        Tensor[] r = both(gpu, rand(0.5, steps, c)), k = both(gpu, rand(0.5, steps, c)), v = both(gpu, rand(0.5, steps, c));
        Tensor[] td = both(gpu, uniform(-3, 0.5, h, n)), w = both(gpu, rand(1, h, n)), u = both(gpu, rand(0.5, h, n));
        cpu.decay(td[0], w[0]);
        gpu.decay(td[1], w[1]);
        HostTensor s0 = rand(0.5, h, n, n);
        Tensor[] state = both(gpu, s0), y = both(gpu, rand(1, steps, c));
        cpu.wkvForward(r[0], k[0], v[0], w[0], u[0], state[0], y[0]);
        gpu.wkvForward(r[1], k[1], v[1], w[1], u[1], state[1], y[1]);
        same(gpu, "wkvForward y" + tag, y);
        same(gpu, "wkvForward final state" + tag, state);
        Tensor[] st0 = both(gpu, s0), dy = both(gpu, rand(1, steps, c)), dState = both(gpu, rand(0.3, h, n, n));
        Tensor[] dr = both(gpu, rand(1, steps, c)), dk = both(gpu, rand(1, steps, c)), dv = both(gpu, rand(1, steps, c));
        Tensor[] dw = both(gpu, rand(1, h, n)), du = both(gpu, rand(1, h, n));
        cpu.wkvBackward(r[0], k[0], v[0], w[0], u[0], st0[0], dy[0], dState[0], dr[0], dk[0], dv[0], dw[0], du[0]);
        gpu.wkvBackward(r[1], k[1], v[1], w[1], u[1], st0[1], dy[1], dState[1], dr[1], dk[1], dv[1], dw[1], du[1]);
        same(gpu, "wkvBackward dr" + tag, dr);
        same(gpu, "wkvBackward dk" + tag, dk);
        same(gpu, "wkvBackward dv" + tag, dv);
        same(gpu, "wkvBackward dw (accumulated)" + tag, dw);
        same(gpu, "wkvBackward du (accumulated)" + tag, du);
        same(gpu, "wkvBackward dState0" + tag, dState);
        same(gpu, "wkvBackward leaves state0 unchanged" + tag, st0);
        closeAll(r, k, v, td, w, u, state, y, st0, dy, dState, dr, dk, dv, dw, du);
    }

    // ---------------------------------------------------------------- elementwise
    @Test
    void activationsAndArithmetic() {
        int n = 100_003;   // not a multiple of any block size
        Tensor[] x = both(rand(3, n)), g = both(rand(1, n)), o = both(rand(1, n)), d = both(rand(1, n));
        cpu.silu(x[0], o[0]); gpu.silu(x[1], o[1]); same("silu", o);
        cpu.siluBackward(x[0], g[0], d[0]); gpu.siluBackward(x[1], g[1], d[1]); same("siluBackward", d);
        cpu.sigmoid(x[0], o[0]); gpu.sigmoid(x[1], o[1]); same("sigmoid", o);
        cpu.sigmoidBackward(o[0], g[0], d[0]); gpu.sigmoidBackward(o[1], g[1], d[1]); same("sigmoidBackward", d);
        cpu.reluSquare(x[0], o[0]); gpu.reluSquare(x[1], o[1]); same("reluSquare", o);
        cpu.reluSquareBackward(x[0], g[0], d[0]); gpu.reluSquareBackward(x[1], g[1], d[1]); same("reluSquareBackward", d);
        cpu.mul(x[0], g[0], o[0]); gpu.mul(x[1], g[1], o[1]); same("mul", o);
        cpu.mul(o[0], g[0], o[0]); gpu.mul(o[1], g[1], o[1]); same("mul in place", o);
        cpu.add(x[0], g[0], d[0]); gpu.add(x[1], g[1], d[1]); same("add", d);
        cpu.add(d[0], g[0], d[0]); gpu.add(d[1], g[1], d[1]); same("add in place", d);
        cpu.scale(d[0], -0.37f); gpu.scale(d[1], -0.37f); same("scale", d);
        sameScalar("sumOfSquares", cpu.sumOfSquares(x[0]), gpu.sumOfSquares(x[1]));
        assertEquals(gpu.sumOfSquares(x[1]), gpu.sumOfSquares(x[1]), 0.0, "sumOfSquares is deterministic");
        closeAll(x, g, o, d);
    }

    /** lr and weight decay large enough that every term of the update moves the result far beyond the tolerance. */
    @Test
    void adamwStepsLikeTorch() {
        int n = 5000;
        Tensor[] p = both(rand(1, n)), m = both(rand(0.01, n)), v = both(uniform(0, 1e-3, n)), g = both(rand(1, n));
        for (long step = 1; step <= 5; step++) {
            float gradScale = step % 2 == 0 ? 1f : 0.37f;   // clipping's factor, applied inside the step
            double cpuSq = cpu.adamwStep(p[0], g[0], gradScale, m[0], v[0], 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, step);
            double gpuSq = gpu.adamwStep(p[1], g[1], gradScale, m[1], v[1], 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, step);
            assertEquals(cpu.sumOfSquares(p[0]), cpuSq, 0.0, "the CPU step returns the updated parameter's sum of squares");
            assertEquals(gpu.sumOfSquares(p[1]), gpuSq, 0.0, "the CUDA step returns the updated parameter's sum of squares");
        }
        same("adamw param", p);
        same("adamw m", m);
        same("adamw v", v);
        closeAll(p, m, v, g);
        // no gradient, moments just above the smallest normal float: times beta they fall below it, and both store 0
        Tensor[] p2 = both(rand(1, n)), m2 = both(uniform(1.2e-38, 1.3e-38, n)), v2 = both(uniform(1.176e-38, 1.18e-38, n)), g2 = both(uniform(0, 0, n));
        cpu.adamwStep(p2[0], g2[0], 1f, m2[0], v2[0], 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 7);
        gpu.adamwStep(p2[1], g2[1], 1f, m2[1], v2[1], 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 7);
        same("adamw param, subnormal moments", p2);
        same("adamw m, subnormal moments", m2);
        same("adamw v, subnormal moments", v2);
        for (float x : cpu.download(m2[0]).data()) assertEquals(0f, x, 0f, "m below the smallest normal float is stored as 0");
        for (float x : cpu.download(v2[0]).data()) assertEquals(0f, x, 0f, "v below the smallest normal float is stored as 0");
        closeAll(p2, m2, v2, g2);
    }

    // ---------------------------------------------------------------- loss
    @Test
    void crossEntropyWithGradientAndL2Wrap() {
        for (int vocab : new int[]{23, 1000, 65536}) {
            int rows = vocab == 65536 ? 9 : 31;
            int[] targets = new int[rows];
            float[] weights = new float[rows];
            for (int t = 0; t < rows; t++) {
                targets[t] = t % 4 == 3 ? -1 : rnd.nextInt(vocab);
                weights[t] = t % 5 == 2 ? 0f : (float) (0.1 + rnd.nextDouble());
            }
            HostTensor logits = rand(3, rows, vocab);
            String tag = " V=" + vocab;
            Tensor[] lg = both(logits), dl = both(rand(1, rows, vocab));
            sameScalar("crossEntropy loss, no gradient" + tag, cpu.crossEntropy(lg[0], targets, weights, 0f, null),
                    gpu.crossEntropy(lg[1], targets, weights, 0f, null));
            sameScalar("crossEntropy loss" + tag, cpu.crossEntropy(lg[0], targets, weights, 2.5e-4f, dl[0]),
                    gpu.crossEntropy(lg[1], targets, weights, 2.5e-4f, dl[1]));
            same("crossEntropy dLogits with L2Wrap" + tag, dl);
            // in place (dLogits = logits), as ChunkedBptt uses it
            sameScalar("crossEntropy in place" + tag, cpu.crossEntropy(lg[0], targets, weights, 1e-4f, lg[0]),
                    gpu.crossEntropy(lg[1], targets, weights, 1e-4f, lg[1]));
            same("crossEntropy in-place gradient" + tag, lg);
            closeAll(lg, dl);
        }
    }

    // ---------------------------------------------------------------- whole model
    /** Forward + full-BPTT backward over several chunks: loss, every parameter gradient, dS0 and the final state. */
    @Test
    void wholeModelForwardAndFullBpttBackwardAcrossChunks() {
        for (ModelConfig cfg : new ModelConfig[]{
                new ModelConfig(2, 32, 4, 8, 64, 97, ModelConfig.OFFICIAL_GROUP_NORM_EPS),
                new ModelConfig(2, 128, 2, 64, 256, 1000, ModelConfig.OFFICIAL_GROUP_NORM_EPS)}) {
            int length = 60, chunk = 16;   // 4 chunks, the last one short
            long modelSeed = rnd.nextLong();
            ModelWeights weights = TestModels.random(cfg, modelSeed);
            int[] tokens = new int[length];
            for (int t = 0; t < length; t++) tokens[t] = rnd.nextInt(cfg.vocabSize());
            TokenSequence seq = TokenSequence.nextToken(tokens);
            long stateSeed = rnd.nextLong();
            Run ref = run(cpu, cfg, weights, seq, chunk, stateSeed);
            // the chunked WKV on the N = 64 shape only (the emulated device is slow; CudaChunkedWkvTest covers other N)
            for (Backend device : cfg.headSize() == 64 ? new Backend[]{gpu, gpuChunked} : new Backend[]{gpu}) {
                Run got = run(device, cfg, weights, seq, chunk, stateSeed);
                String tag = " (" + cfg + (device == gpuChunked ? ", chunked WKV)" : ", sequential WKV)");
                sameScalar("model loss" + tag, ref.loss, got.loss);
                assertEquals(ref.names, got.names);
                for (int i = 0; i < ref.names.size(); i++) same(ref.names.get(i) + tag, ref.values.get(i), got.values.get(i));
            }
        }
    }

    /**
     * The memory-saving paths on the device: --grad-cp in fp32 within TOL of the CPU's plain run, and bf16 weight
     * matrices against the CPU's bf16 run. The CPU widens bf16 weights exactly and multiplies fp32 activations; the
     * device rounds the activations to bf16 too (cublasGemmEx takes one type): each product's inputs then differ by at
     * most 2^-8 relative, and to first order a logit by (8L + 2) 2^-8 of its scale over the 8L + 2 matrices on its
     * path; the loss by the same relative amount, gradients (products of two perturbed factors) by twice that, in L2.
     */
    @Test
    void wholeModelWithGradCheckpointingAndBf16Weights() {
        Random rnd = new Random(seed + 7);
        ModelConfig cfg = new ModelConfig(2, 32, 4, 8, 64, 97, ModelConfig.OFFICIAL_GROUP_NORM_EPS);
        ModelWeights weights = TestModels.random(cfg, rnd.nextLong());
        int[] tokens = new int[40];
        for (int t = 0; t < tokens.length; t++) tokens[t] = rnd.nextInt(cfg.vocabSize());
        TokenSequence seq = TokenSequence.nextToken(tokens);
        long stateSeed = rnd.nextLong();
        Run ref = run(cpu, cfg, weights, seq, 16, stateSeed, DType.F32, false);
        Run cp = run(gpu, cfg, weights, seq, 16, stateSeed, DType.F32, true);
        sameScalar("model loss (--grad-cp)", ref.loss, cp.loss);
        for (int i = 0; i < ref.names.size(); i++) same(ref.names.get(i) + " (--grad-cp)", ref.values.get(i), cp.values.get(i));
        double bound = (8 * cfg.nLayer() + 2) * Math.pow(2, -8);
        Run cpuBf = run(cpu, cfg, weights, seq, 16, stateSeed, DType.BF16, false);
        Run gpuBf = run(gpu, cfg, weights, seq, 16, stateSeed, DType.BF16, true);
        assertTrue(Math.abs(cpuBf.loss - gpuBf.loss) <= bound * Math.abs(cpuBf.loss), "bf16 loss " + gpuBf.loss + " vs " + cpuBf.loss);
        for (int i = 0; i < cpuBf.names.size(); i++) {
            float[] a = cpuBf.values.get(i), b = gpuBf.values.get(i);
            double diff = 0, norm = 0;
            for (int j = 0; j < a.length; j++) { diff += (a[j] - b[j]) * (double) (a[j] - b[j]); norm += a[j] * (double) a[j]; }
            assertTrue(Math.sqrt(diff) <= 2 * bound * Math.sqrt(norm) + 1e-30, "bf16 " + cpuBf.names.get(i) + ": relative L2 error " + Math.sqrt(diff / norm));
        }
    }

    private record Run(double loss, List<String> names, List<float[]> values) { }

    private static Run run(Backend be, ModelConfig cfg, ModelWeights weights, TokenSequence seq, int chunk, long stateSeed) {
        return run(be, cfg, weights, seq, chunk, stateSeed, DType.F32, false);
    }

    private static Run run(Backend be, ModelConfig cfg, ModelWeights weights, TokenSequence seq, int chunk, long stateSeed,
                           DType matrices, boolean gradCp) {
        List<String> names = new ArrayList<>();
        List<float[]> values = new ArrayList<>();
        try (Rwkv5Model model = Rwkv5Model.load(be, weights, cfg.groupNormEps(), matrices);
             RwkvState s0 = TestModels.randomState(be, cfg, stateSeed);
             ParamSet grads = ParamSet.zeros(be, cfg)) {
            model.setRecompute(gradCp);
            ChunkedBptt.Result r = ChunkedBptt.run(model, seq, s0, grads, new ChunkedBptt.Options(chunk, BpttMode.FULL, true), true, null);
            try (RwkvState fin = r.finalState(); RwkvState dS0 = r.initialStateGrad()) {
                for (String k : grads.keys()) {
                    names.add("grad " + k);
                    values.add(be.download(grads.get(k)).data());
                }
                for (int l = 0; l < cfg.nLayer(); l++) {
                    names.add("dS0 att_x " + l); values.add(be.download(dS0.attX[l]).data());
                    names.add("dS0 ffn_x " + l); values.add(be.download(dS0.ffnX[l]).data());
                    names.add("dS0 wkv " + l); values.add(be.download(dS0.wkv[l]).data());
                    names.add("final att_x " + l); values.add(be.download(fin.attX[l]).data());
                    names.add("final ffn_x " + l); values.add(be.download(fin.ffnX[l]).data());
                    names.add("final wkv " + l); values.add(be.download(fin.wkv[l]).data());
                }
            }
            return new Run(r.loss(), names, values);
        }
    }
}
