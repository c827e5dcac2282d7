package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.backend.cpu.CpuBackend;
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
 * The tensor-core WKV forward (wkv5t_* in wkv5_chunked.cu, mma.sync m16n8k16 with bf16 operands and fp32 accumulate)
 * on the device -Dlongrwkv.parity.device names (default emulated), fresh seed each run (-Dlongrwkv.parity.seed=S):
 * first the fragment layout and the product itself (wkv5t_mma_probe) against a scalar reference, with matrices read
 * and written row- and column-major at leading dimensions other than the matrix's width; then the forward against the
 * sequential CPU reference within the error budget derived in the kernel's comment and in {@link #bound}.
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
    /** y and the final state of the tensor-core forward on p's r, k, v, u rounded to bf16 (p.s0 is the initial state). */
    static float[][] runTensorCore(Problem p) {
        int c = p.h * p.n;
        java.util.function.DoubleUnaryOperator round = x -> bf16((float) x);
        try (Tensor r = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.r, round))); Tensor k = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.k, round)));
             Tensor v = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.v, round))); Tensor u = gpu.upload(packBf16(CudaChunkedWkvTest.map(p.u, round)));
             Tensor w = gpu.upload(p.w); Tensor s = gpu.upload(p.s0); Tensor y = gpu.zeros(p.t, c)) {
            new Kernel(gpu.device, gpu.device.function("wkv5_chunked", CudaBackend.wkvForwardKernel(p.n, true)))
                    .launch(p.h * CudaBackend.wkvTiles(p.n), KernelSources.WKV_CHUNK_THREADS, 0, p.t, c, r, k, v, w, u, s, y);
            return new float[][]{gpu.download(y).data(), gpu.download(s).data()};
        }
    }

    static float[][] forward(Problem p) {
        try (Tensor r = cpu.upload(p.r); Tensor k = cpu.upload(p.k); Tensor v = cpu.upload(p.v); Tensor w = cpu.upload(p.w);
             Tensor u = cpu.upload(p.u); Tensor s = cpu.upload(p.s0); Tensor y = cpu.zeros(p.t, p.h * p.n)) {
            cpu.wkvForward(r, k, v, w, u, s, y);
            return new float[][]{cpu.download(y).data(), cpu.download(s).data()};
        }
    }

    /**
     * The bound of one output element: ((1 + 2^-8)^m - 1) * mag + 1e-5 * max|ref|, mag = the same output computed on
     * absolute values (every term of the sum with its magnitude), 2^-8 = bf16's unit roundoff (8 significant bits,
     * round to nearest). m = the most bf16 roundings any term of the output passes through. Against the fp32
     * reference on the same bf16 inputs: y m = 3 (a term r_t k_s w^.. v_s of an earlier chunk is rounded as
     * bf16(k_s w^..) when it enters the state, then as part of bf16(S) and of bf16(r_t w^t); an intra-chunk term once,
     * in bf16(A)), the final state m = 1 (bf16(k_s w^..); the fp32 state is never rounded to bf16 on its way from chunk
     * to chunk, and w^L S is fp32). Against the reference on the unrounded fp32 inputs add the inputs' own roundings:
     * y's terms r u k v and r k v have up to 4 bf16 inputs (m = 7), the final state's k v 2 (m = 3). The 1e-5 of the
     * largest element is the fp32 slack every fp32 path gets (summation order).
     */
    static double bound(int m, double mag, double maxRef) { return (Math.pow(1 + Math.pow(2, -8), m) - 1) * mag + 1e-5 * maxRef; }

    static final String[] OUTPUTS = {"y", "final state"};

    @Test
    void tensorCoreForwardStaysWithinItsDerivedBound() {
        Random rnd = new Random(seed + 1);
        int[] mRounded = {3, 1}, mFp32 = {7, 3};
        double worstRounded = 0, worstFp32 = 0;
        for (int[] hn : new int[][]{{2, 64}, {3, 32}}) {
            for (int steps : new int[]{1, 5, 16, 17, 40, 77}) {
                Problem p = new Problem(rnd, hn[0], hn[1], steps);
                Problem rounded = with(p, x -> bf16((float) x), x -> x);
                Problem absRounded = with(p, x -> Math.abs(bf16((float) x)), Math::abs), abs = with(p, Math::abs, Math::abs);
                float[][] onRounded = forward(rounded), exact = forward(p), magRounded = forward(absRounded), mag = forward(abs);
                float[][] got = runTensorCore(p);
                String tag = " H=" + hn[0] + " N=" + hn[1] + " T=" + steps + " (seed " + seed + ")";
                for (int o = 0; o < OUTPUTS.length; o++) {
                    double maxR = maxAbs(onRounded[o]), maxE = maxAbs(exact[o]);
                    for (int i = 0; i < got[o].length; i++) {
                        double g = got[o][i];
                        double e1 = Math.abs(g - onRounded[o][i]), b1 = bound(mRounded[o], magRounded[o][i], maxR);
                        assertTrue(e1 <= b1, "tensor-core " + OUTPUTS[o] + "[" + i + "] = " + g + " vs " + onRounded[o][i]
                                + " (fp32 reference on the same bf16 inputs): off " + e1 + " > " + b1 + tag);
                        double e2 = Math.abs(g - exact[o][i]), b2 = bound(mFp32[o], mag[o][i], maxE);
                        assertTrue(e2 <= b2, "tensor-core " + OUTPUTS[o] + "[" + i + "] = " + g + " vs " + exact[o][i]
                                + " (fp32 reference on the fp32 inputs): off " + e2 + " > " + b2 + tag);
                        worstRounded = Math.max(worstRounded, e1 / b1);
                        worstFp32 = Math.max(worstFp32, e2 / b2);
                    }
                }
            }
        }
        System.out.printf("tensor-core forward: error/bound worst %.3f (same bf16 inputs), %.3f (fp32 inputs)%n", worstRounded, worstFp32);
    }

    static double maxAbs(float[] x) {
        double m = 0;
        for (float f : x) m = Math.max(m, Math.abs(f));
        return m;
    }
}
