package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static ai.longrwkv.core.backend.cuda.CudaChunkedWkvTest.Problem;
import static ai.longrwkv.core.backend.cuda.CudaChunkedWkvTest.bf16;
import static ai.longrwkv.core.backend.cuda.CudaChunkedWkvTest.packBf16;
import static ai.longrwkv.core.backend.cuda.CudaChunkedWkvTest.with;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tensor-core WKV kernels (wkv5t_* in wkv5_chunked.cu, mma.sync m16n8k16 with bf16 operands and fp32 accumulate)
 * on the device -Dlongrwkv.parity.device names (default emulated), fresh seed each run (-Dlongrwkv.parity.seed=S):
 * first the fragment layout and the product itself (wkv5t_mma_probe) against a scalar reference, with matrices read
 * and written row- and column-major at leading dimensions other than the matrix's width; then the forward and backward
 * against the sequential CPU reference (extreme decays, T = 1, T below, at and not a multiple of the 16-token chunk,
 * nonzero initial state and dL/dS_T) within the error budget derived in the kernels' comments and in {@link #bound}.
 */
class CudaTensorCoreWkvTest {
    static CudaBackend gpu;
    static CpuBackend cpu;
    static long seed;

    @BeforeAll
    static void start() {
        seed = Long.getLong("longrwkv.parity.seed", System.nanoTime());
        cpu = CudaChunkedWkvTest.withWkv(WkvImpl.SEQUENTIAL, CpuBackend::new);
        gpu = (CudaBackend) Backends.create(System.getProperty("longrwkv.parity.device", "emulated"));
        System.out.println("CudaTensorCoreWkvTest on " + gpu.name() + ", seed " + seed);
    }

    @AfterAll
    static void stop() {
        if (gpu != null) gpu.close();
        if (cpu != null) cpu.close();
    }

    Kernel kernel(String name) { return new Kernel(gpu.device, gpu.device.function("wkv5_chunked", name)); }

    // ---------------------------------------------------------------- the mma itself
    /** A rows x cols matrix laid out with strides (rs, cs) in a buffer of `size` elements; the rest is filler. */
    record Layout(String name, int rs, int cs, int size) {
        static Layout rowMajor(int rows, int cols, int ld) { return new Layout("row-major ld " + ld, ld, 1, (rows - 1) * ld + cols); }
        static Layout colMajor(int rows, int cols, int ld) { return new Layout("col-major ld " + ld, 1, ld, (cols - 1) * ld + rows); }
        int at(int row, int col) { return row * rs + col * cs; }
    }

    /**
     * D = A B + C for one warp, A 16x16 and B 16x8 bf16, C and D 16x8 fp32, through every combination of layouts. The
     * filler between rows is a large value (1e30 in bf16, NaN in D's buffer), so reading or writing a wrong element
     * shows. The reference sums in double; the allowed error is that of any fp32 summation order of the 17 terms
     * (the products of two bf16 values are exact in fp32): 17 * 2^-24 * (|C| + sum |A B|).
     */
    @Test
    void mmaFragmentsFollowThePtxLayoutAtAnyLeadingDimension() {
        Random rnd = new Random(seed);
        Layout[] as = {Layout.rowMajor(16, 16, 16), Layout.rowMajor(16, 16, 24), Layout.colMajor(16, 16, 20)};
        Layout[] bs = {Layout.rowMajor(16, 8, 8), Layout.rowMajor(16, 8, 12), Layout.colMajor(16, 8, 16), Layout.colMajor(16, 8, 18)};
        Layout[] cs = {Layout.rowMajor(16, 8, 8), Layout.colMajor(16, 8, 20)};
        Layout[] ds = {Layout.rowMajor(16, 8, 11), Layout.colMajor(16, 8, 16)};
        int cases = 0;
        for (Layout la : as) for (Layout lb : bs) for (int ci = 0; ci < cs.length; ci++) {
            Layout lc = cs[ci], ld = ds[(ci + cases) % ds.length];
            float[][] a = new float[16][16], b = new float[16][8], c = new float[16][8];
            for (float[] row : a) for (int j = 0; j < row.length; j++) row[j] = bf16((float) rnd.nextGaussian());
            for (float[] row : b) for (int j = 0; j < row.length; j++) row[j] = bf16((float) rnd.nextGaussian());
            for (float[] row : c) for (int j = 0; j < row.length; j++) row[j] = (float) rnd.nextGaussian();
            float[] ab = filled(la.size, 1e30f), bb = filled(lb.size, 1e30f), cb = filled(lc.size, Float.NaN);
            for (int r = 0; r < 16; r++) for (int k = 0; k < 16; k++) ab[la.at(r, k)] = a[r][k];
            for (int k = 0; k < 16; k++) for (int n = 0; n < 8; n++) bb[lb.at(k, n)] = b[k][n];
            for (int r = 0; r < 16; r++) for (int n = 0; n < 8; n++) cb[lc.at(r, n)] = c[r][n];
            float[] got;
            try (Tensor ta = gpu.upload(packBf16(new HostTensor(new int[]{ab.length}, ab)));
                 Tensor tb = gpu.upload(packBf16(new HostTensor(new int[]{bb.length}, bb)));
                 Tensor tc = gpu.upload(new HostTensor(new int[]{cb.length}, cb));
                 Tensor td = gpu.upload(new HostTensor(new int[]{ld.size}, filled(ld.size, Float.NaN)))) {
                kernel("wkv5t_mma_probe").launch(1, 32, 0, ta, la.rs, la.cs, tb, lb.rs, lb.cs, tc, lc.rs, lc.cs, td, ld.rs, ld.cs);
                got = gpu.download(td).data();
            }
            String tag = "A " + la.name + ", B " + lb.name + ", C " + lc.name + ", D " + ld.name + " (seed " + seed + ")";
            for (int r = 0; r < 16; r++) for (int n = 0; n < 8; n++) {
                double want = c[r][n], mag = Math.abs(c[r][n]);
                for (int k = 0; k < 16; k++) { want += (double) a[r][k] * b[k][n]; mag += Math.abs((double) a[r][k] * b[k][n]); }
                double g = got[ld.at(r, n)], err = Math.abs(g - want), allowed = 17 * Math.pow(2, -24) * mag;
                assertTrue(err <= allowed, "D[" + r + "][" + n + "] = " + g + ", want " + want + " (off " + err + " > " + allowed + "): " + tag);
            }
            for (int x = 0; x < got.length; x++) {
                boolean inside = false;
                for (int r = 0; r < 16 && !inside; r++) for (int n = 0; n < 8 && !inside; n++) inside = ld.at(r, n) == x;
                if (!inside) assertTrue(Float.isNaN(got[x]), "D's buffer written outside the matrix at " + x + ": " + tag);
            }
            cases++;
        }
        System.out.println("mma m16n8k16 bf16: " + cases + " layout combinations match the scalar reference");
    }

    static float[] filled(int n, float value) {
        float[] f = new float[n];
        java.util.Arrays.fill(f, value);
        return f;
    }

    // ---------------------------------------------------------------- the forward
    /**
     * The tensor-core kernels on p's r, k, v, u rounded to bf16: y, final state, dr, dk, dv, dw, du, dS0 (dw and du
     * accumulated from zero), through the backend's own choice of kernel names for bf16 inputs; the chunk-start
     * states and the tile reduction are the kernels the fp32 path shares.
     */
    static float[][] runTensorCore(Problem p) {
        int n = p.n, h = p.h, c = h * n, steps = p.t;
        int tiles = CudaBackend.wkvTiles(n), blocks = h * tiles, threads = KernelSources.WKV_CHUNK_THREADS;
        int chunks = (steps + KernelSources.WKV_CHUNK_LEN - 1) / KernelSources.WKV_CHUNK_LEN;
        java.util.function.Function<String, Kernel> kern = name -> new Kernel(gpu.device, gpu.device.function("wkv5_chunked", name));
        java.util.function.DoubleUnaryOperator round = x -> bf16((float) x);
        try (Tensor r = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.r, round))); Tensor k = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.k, round)));
             Tensor v = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.v, round))); Tensor u = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.u, round)));
             Tensor w = gpu.upload(p.w); Tensor s = gpu.upload(p.s0); Tensor s0 = gpu.upload(p.s0); Tensor y = gpu.zeros(steps, c);
             Tensor dy = gpu.upload(p.dy); Tensor ds = gpu.upload(p.dsT); Tensor dr = gpu.zeros(steps, c); Tensor dk = gpu.zeros(steps, c);
             Tensor dv = gpu.zeros(steps, c); Tensor dw = gpu.zeros(h, n); Tensor du = gpu.zeros(h, n);
             Tensor states = gpu.zeros(h, chunks, n * n); Tensor grp = gpu.zeros(tiles, steps, c); Tensor gkp = gpu.zeros(tiles, steps, c);
             Tensor dwp = gpu.zeros(tiles, c); Tensor dup = gpu.zeros(tiles, c)) {
            kern.apply(CudaBackend.wkvForwardKernel(n, true)).launch(blocks, threads, 0, steps, c, r, k, v, w, u, s, y);
            kern.apply("wkv5c_states_n" + n + "_bf16").launch(blocks, threads, 0, steps, c, k, v, w, s0, states);
            kern.apply(CudaBackend.wkvBackwardKernel(n, true)).launch(blocks, threads, 0, steps, c, r, k, v, w, u, dy, states, ds, dv,
                    grp, gkp, dwp, dup);
            long tc = (long) steps * c;
            kern.apply("wkv5c_reduce").launch((int) ((tc + 255) / 256), 256, 0, tiles, tc, c, grp, gkp, dwp, dup, dr, dk, dw, du);
            return new float[][]{gpu.download(y).data(), gpu.download(s).data(), gpu.download(dr).data(), gpu.download(dk).data(),
                    gpu.download(dv).data(), gpu.download(dw).data(), gpu.download(du).data(), gpu.download(ds).data()};
        }
    }

    /** The CPU's sequential reference: y, final state, dr, dk, dv, dw, du, dS0. */
    static float[][] reference(Problem p) { return CudaChunkedWkvTest.run(cpu, p); }

    /**
     * The bound of one output element: ((1 + 2^-8)^m - 1) * mag + 1e-5 * max|ref|, mag = the same output computed on
     * absolute values (every term of the sum with its magnitude: the sequential reference run on |inputs|), 2^-8 =
     * bf16's unit roundoff (8 significant bits, round to nearest). m = the most bf16 roundings any term of the output
     * passes through, beyond those of the inputs (the kernels' comments in wkv5_chunked.cu list them):
     * <ul>
     * <li>y 3: a term r_t k_s w^.. v_s of an earlier chunk is rounded in bf16(k_s w^..) when it enters the fp32 state,
     *     then as part of bf16(S) and of bf16(r_t w^t); an intra-chunk term once, in bf16(A);
     * <li>final state 1: bf16(k_s w^..) (the fp32 state is never rounded on its way from chunk to chunk);
     * <li>dr 2: bf16(S) and bf16(gy) in S gy (the chunk-start states come from the fp32 state kernel), or bf16(gy) in dA;
     * <li>dk 3: a term of D entered through bf16(r w^t) and bf16(gy), then bf16(D) in D v;
     * <li>dv 4: bf16(k w^..) and bf16(D) times D's two; dw 3 (through D v); du 1 (dA); dL/dS_0 2 (D's entry).
     * </ul>
     * Against the reference on the unrounded fp32 inputs add the inputs' own roundings (CudaChunkedWkvTest's counts:
     * y 4, final state 2, dr dk dv dw du 3, dS0 1). The 1e-5 of the largest element is the fp32 slack every fp32 path
     * gets (summation order).
     */
    static double bound(int m, double mag, double maxRef) { return (Math.pow(1 + Math.pow(2, -8), m) - 1) * mag + 1e-5 * maxRef; }

    @Test
    void tensorCoreKernelsStayWithinTheirDerivedBound() {
        Random rnd = new Random(seed + 1);
        String[] names = CudaChunkedWkvTest.NAMES;
        int[] mRounded = {3, 1, 2, 3, 4, 3, 1, 2}, mInputs = {4, 2, 3, 3, 3, 3, 3, 1};
        double[] worstRounded = new double[names.length], worstFp32 = new double[names.length];
        for (int[] hn : new int[][]{{2, 64}, {3, 32}}) {
            for (int steps : new int[]{1, 5, 16, 17, 40, 77}) {
                Problem p = new Problem(rnd, hn[0], hn[1], steps);
                Problem exactIn = with(p, x -> x, x -> x), rounded = with(p, x -> bf16((float) x), x -> x);
                Problem absRounded = with(p, x -> Math.abs(bf16((float) x)), Math::abs), abs = with(p, Math::abs, Math::abs);
                float[][] onRounded = reference(rounded), exact = reference(exactIn), magRounded = reference(absRounded), mag = reference(abs);
                float[][] got = runTensorCore(p);
                String tag = " H=" + hn[0] + " N=" + hn[1] + " T=" + steps + " (seed " + seed + ")";
                for (int o = 0; o < names.length; o++) {
                    double maxR = maxAbs(onRounded[o]), maxE = maxAbs(exact[o]);
                    for (int i = 0; i < got[o].length; i++) {
                        double g = got[o][i];
                        double e1 = Math.abs(g - onRounded[o][i]), b1 = bound(mRounded[o], magRounded[o][i], maxR);
                        assertTrue(e1 <= b1, "tensor-core " + names[o] + "[" + i + "] = " + g + " vs " + onRounded[o][i]
                                + " (fp32 reference on the same bf16 inputs): off " + e1 + " > " + b1 + tag);
                        double e2 = Math.abs(g - exact[o][i]), b2 = bound(mRounded[o] + mInputs[o], mag[o][i], maxE);
                        assertTrue(e2 <= b2, "tensor-core " + names[o] + "[" + i + "] = " + g + " vs " + exact[o][i]
                                + " (fp32 reference on the fp32 inputs): off " + e2 + " > " + b2 + tag);
                        worstRounded[o] = Math.max(worstRounded[o], e1 / b1);
                        worstFp32[o] = Math.max(worstFp32[o], e2 / b2);
                    }
                }
            }
        }
        for (int o = 0; o < names.length; o++) {
            System.out.printf("tensor-core %-18s error/bound worst %.3f (same bf16 inputs, m = %d), %.3f (fp32 inputs, m = %d)%n",
                    names[o], worstRounded[o], mRounded[o], worstFp32[o], mRounded[o] + mInputs[o]);
        }
    }

    /** y, final state, dr, dk, dv, dw, du, dS0 through the Backend seam with r, k, v, u uploaded as bf16 (dw, du from zero). */
    static float[][] runSeamBf16(ai.longrwkv.core.backend.Backend be, Problem p) {
        int c = p.h * p.n;
        try (Tensor r = be.upload(p.r, DType.BF16); Tensor k = be.upload(p.k, DType.BF16); Tensor v = be.upload(p.v, DType.BF16);
             Tensor u = be.upload(p.u, DType.BF16); Tensor w = be.upload(p.w); Tensor s = be.upload(p.s0); Tensor s0 = be.upload(p.s0);
             Tensor y = be.zeros(p.t, c); Tensor dy = be.upload(p.dy); Tensor ds = be.upload(p.dsT); Tensor dr = be.zeros(p.t, c);
             Tensor dk = be.zeros(p.t, c); Tensor dv = be.zeros(p.t, c); Tensor dw = be.zeros(p.h, p.n); Tensor du = be.zeros(p.h, p.n)) {
            be.wkvForward(r, k, v, w, u, s, y);
            be.wkvBackward(r, k, v, w, u, s0, dy, ds, dr, dk, dv, dw, du);
            return new float[][]{be.download(y).data(), be.download(s).data(), be.download(dr).data(), be.download(dk).data(),
                    be.download(dv).data(), be.download(dw).data(), be.download(du).data(), be.download(ds).data()};
        }
    }

    /**
     * bf16 r, k, v, u through the Backend seam: the CUDA backend runs exactly the tensor-core kernels (same bits as the
     * direct launch), and the CPU computes in fp32 on their values (same bits as fp32 inputs holding the rounded values).
     */
    @Test
    void bf16InputsThroughTheSeamRunTheTensorCoreKernels() {
        Random rnd = new Random(seed + 2);
        for (int[] hn : new int[][]{{2, 64}, {3, 32}}) {
            for (int steps : new int[]{1, 17, 40}) {
                Problem p = new Problem(rnd, hn[0], hn[1], steps);
                float[][] direct = runTensorCore(p), seam = runSeamBf16(gpu, p);
                Problem rounded = with(p, x -> bf16((float) x), x -> x);
                float[][] cpuSeam = runSeamBf16(cpu, p), cpuRounded = CudaChunkedWkvTest.run(cpu, withZeroAccumulators(rounded));
                for (int o = 0; o < direct.length; o++) {
                    String tag = CudaChunkedWkvTest.NAMES[o] + " H=" + hn[0] + " N=" + hn[1] + " T=" + steps;
                    org.junit.jupiter.api.Assertions.assertArrayEquals(direct[o], seam[o], "CUDA seam vs kernels: " + tag);
                    org.junit.jupiter.api.Assertions.assertArrayEquals(cpuRounded[o], cpuSeam[o], "CPU seam vs rounded fp32: " + tag);
                }
            }
        }
    }

    private static Problem withZeroAccumulators(Problem p) {
        java.util.Arrays.fill(p.dw0.data(), 0f);
        java.util.Arrays.fill(p.du0.data(), 0f);
        return p;
    }

    static double maxAbs(float[] x) {
        double m = 0;
        for (float f : x) m = Math.max(m, Math.abs(f));
        return m;
    }
}
