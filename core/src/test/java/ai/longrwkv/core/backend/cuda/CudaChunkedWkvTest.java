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
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The chunked WKV kernels (wkv5_chunked.cu) against the CPU's sequential reference (WkvCpu) on random inputs with a
 * fresh seed each run (printed; repeat with -Dlongrwkv.parity.seed=S), on the device -Dlongrwkv.parity.device names
 * (default emulated): extreme decays (time_decay -8 and +3 in every head), T = 1, T below, equal to and not a multiple
 * of the 16-token chunk, nonzero initial state and dL/dS_T, accumulated dw and du; fp32 within 1e-5 of the largest
 * element. Then the bf16-input variants, launched directly (the backend seam is fp32), against bounds derived from the
 * rounding of their inputs.
 */
class CudaChunkedWkvTest {
    static final double TOL = 1e-5;
    static CudaBackend gpu;
    static CpuBackend cpu;
    static long seed;

    static <X> X withWkv(WkvImpl impl, Supplier<X> make) {
        String saved = System.getProperty(WkvImpl.PROPERTY);
        System.setProperty(WkvImpl.PROPERTY, impl.label());
        try {
            return make.get();
        } finally {
            if (saved == null) System.clearProperty(WkvImpl.PROPERTY);
            else System.setProperty(WkvImpl.PROPERTY, saved);
        }
    }

    @BeforeAll
    static void start() {
        seed = Long.getLong("longrwkv.parity.seed", System.nanoTime());
        String device = System.getProperty("longrwkv.parity.device", "emulated");
        cpu = withWkv(WkvImpl.SEQUENTIAL, CpuBackend::new);
        gpu = (CudaBackend) withWkv(WkvImpl.CHUNKED, () -> Backends.create(device));
        System.out.println("CudaChunkedWkvTest on " + gpu.name() + ", seed " + seed);
    }

    @AfterAll
    static void stop() {
        if (gpu != null) gpu.close();
        if (cpu != null) cpu.close();
    }

    /** Inputs of one problem on the host; w from time_decay in [-8, 3] with both ends in every head. */
    static final class Problem {
        final int h, n, t;
        final HostTensor r, k, v, w, u, s0, dy, dsT, dw0, du0;

        Problem(Random rnd, int h, int n, int t) {
            this.h = h; this.n = n; this.t = t;
            int c = h * n;
            r = gauss(rnd, 0.5, t, c); k = gauss(rnd, 0.5, t, c); v = gauss(rnd, 0.5, t, c);
            u = gauss(rnd, 0.5, h, n); s0 = gauss(rnd, 0.5, h, n, n); dy = gauss(rnd, 1, t, c);
            dsT = gauss(rnd, 0.3, h, n, n); dw0 = gauss(rnd, 1, h, n); du0 = gauss(rnd, 1, h, n);
            w = HostTensor.zeros(h, n);
            for (int i = 0; i < c; i++) {
                double td = i % n == 0 ? -8 : i % n == 1 ? 3 : -8 + 11 * rnd.nextDouble();
                w.data()[i] = (float) Math.exp(-Math.exp(td));
            }
        }
    }

    static HostTensor gauss(Random rnd, double scale, int... shape) {
        HostTensor x = HostTensor.zeros(shape);
        for (int i = 0; i < x.size(); i++) x.data()[i] = (float) (scale * rnd.nextGaussian());
        return x;
    }

    /** y, final state, dr, dk, dv, dw, du, dS0 of the backend's wkvForward and wkvBackward. */
    static float[][] run(ai.longrwkv.core.backend.Backend be, Problem p) {
        int c = p.h * p.n;
        try (Tensor r = be.upload(p.r); Tensor k = be.upload(p.k); Tensor v = be.upload(p.v); Tensor w = be.upload(p.w);
             Tensor u = be.upload(p.u); Tensor s = be.upload(p.s0); Tensor s0 = be.upload(p.s0); Tensor y = be.zeros(p.t, c);
             Tensor dy = be.upload(p.dy); Tensor ds = be.upload(p.dsT); Tensor dr = be.zeros(p.t, c); Tensor dk = be.zeros(p.t, c);
             Tensor dv = be.zeros(p.t, c); Tensor dw = be.upload(p.dw0); Tensor du = be.upload(p.du0)) {
            be.wkvForward(r, k, v, w, u, s, y);
            be.wkvBackward(r, k, v, w, u, s0, dy, ds, dr, dk, dv, dw, du);
            return new float[][]{be.download(y).data(), be.download(s).data(), be.download(dr).data(), be.download(dk).data(),
                    be.download(dv).data(), be.download(dw).data(), be.download(du).data(), be.download(ds).data()};
        }
    }

    static final String[] NAMES = {"y", "final state", "dr", "dk", "dv", "dw (accumulated)", "du (accumulated)", "dS0"};

    @Test
    void chunkedKernelsMatchTheSequentialReference() {
        Random rnd = new Random(seed);
        double worst = 0;
        for (int[] hn : new int[][]{{2, 64}, {3, 8}, {1, 16}, {2, 1}}) {
            for (int steps : new int[]{1, 5, 16, 17, 40}) {
                Problem p = new Problem(rnd, hn[0], hn[1], steps);
                float[][] ref = run(cpu, p), got = run(gpu, p);
                for (int o = 0; o < NAMES.length; o++) {
                    double e = CudaParityTest.relErr(ref[o], got[o]);
                    worst = Math.max(worst, e);
                    assertTrue(e <= TOL, "chunked " + NAMES[o] + " H=" + hn[0] + " N=" + hn[1] + " T=" + steps
                            + ": relative error " + e + " > " + TOL + " (seed " + seed + ")");
                }
            }
        }
        System.out.printf("PARITY chunkedWkvVsSequential %.3g%n", worst);
    }

    // ---------------------------------------------------------------- bf16 inputs
    /** x rounded to bf16 (nearest, ties to even), as a float. */
    static float bf16(float x) {
        int b = Float.floatToRawIntBits(x);
        b += 0x7fff + ((b >>> 16) & 1);
        return Float.intBitsToFloat(b & 0xffff0000);
    }

    /** The bf16 bit patterns of x (already bf16-exact) packed two per float slot, low half first (little-endian). */
    static HostTensor packBf16(HostTensor x) {
        float[] d = x.data();
        HostTensor out = HostTensor.zeros((d.length + 1) / 2);
        for (int i = 0; i < d.length; i += 2) {
            int lo = Float.floatToRawIntBits(d[i]) >>> 16, hi = i + 1 < d.length ? Float.floatToRawIntBits(d[i + 1]) >>> 16 : 0;
            out.data()[i / 2] = Float.intBitsToFloat(lo | hi << 16);
        }
        return out;
    }

    static HostTensor map(HostTensor x, java.util.function.DoubleUnaryOperator f) {
        HostTensor out = HostTensor.zeros(x.shape());
        for (int i = 0; i < x.size(); i++) out.data()[i] = (float) f.applyAsDouble(x.data()[i]);
        return out;
    }

    /**
     * The bf16-input kernels (forward, state scan, backward; the reduction is shared) on bf16 copies of r, k, v, u:
     * y, final state, dr, dk, dv, dw, du, dS0 with dw and du accumulated from zero.
     */
    static float[][] runBf16(Problem p) {
        int n = p.n, h = p.h, c = h * n, steps = p.t;
        int tiles = CudaBackend.wkvTiles(n), blocks = h * tiles, threads = KernelSources.WKV_CHUNK_THREADS;
        int chunks = (steps + KernelSources.WKV_CHUNK_LEN - 1) / KernelSources.WKV_CHUNK_LEN;
        java.util.function.Function<String, Kernel> kern = name -> new Kernel(gpu.device, gpu.device.function("wkv5_chunked", name));
        try (Tensor r = gpu.upload(packBf16(map(p.r, x -> bf16((float) x)))); Tensor k = gpu.upload(packBf16(map(p.k, x -> bf16((float) x))));
             Tensor v = gpu.upload(packBf16(map(p.v, x -> bf16((float) x)))); Tensor u = gpu.upload(packBf16(map(p.u, x -> bf16((float) x))));
             Tensor w = gpu.upload(p.w); Tensor s = gpu.upload(p.s0); Tensor s0 = gpu.upload(p.s0); Tensor y = gpu.zeros(steps, c);
             Tensor dy = gpu.upload(p.dy); Tensor ds = gpu.upload(p.dsT); Tensor dr = gpu.zeros(steps, c); Tensor dk = gpu.zeros(steps, c);
             Tensor dv = gpu.zeros(steps, c); Tensor dw = gpu.zeros(h, n); Tensor du = gpu.zeros(h, n);
             Tensor states = gpu.zeros(h, chunks, n * n); Tensor grp = gpu.zeros(tiles, steps, c); Tensor gkp = gpu.zeros(tiles, steps, c);
             Tensor dwp = gpu.zeros(tiles, c); Tensor dup = gpu.zeros(tiles, c)) {
            kern.apply("wkv5c_forward_n" + n + "_bf16").launch(blocks, threads, 0, steps, c, r, k, v, w, u, s, y);
            kern.apply("wkv5c_states_n" + n + "_bf16").launch(blocks, threads, 0, steps, c, k, v, w, s0, states);
            kern.apply("wkv5c_backward_n" + n + "_bf16").launch(blocks, threads, 0, steps, c, r, k, v, w, u, dy, states, ds, dv, grp, gkp, dwp, dup);
            long tc = (long) steps * c;
            kern.apply("wkv5c_reduce").launch((int) ((tc + 255) / 256), 256, 0, tiles, tc, c, grp, gkp, dwp, dup, dr, dk, dw, du);
            return new float[][]{gpu.download(y).data(), gpu.download(s).data(), gpu.download(dr).data(), gpu.download(dk).data(),
                    gpu.download(dv).data(), gpu.download(dw).data(), gpu.download(du).data(), gpu.download(ds).data()};
        }
    }

    /** A copy of p with r, k, v, u replaced (f applied) and dw, du accumulating from zero. */
    static Problem with(Problem p, java.util.function.DoubleUnaryOperator onInputs, java.util.function.DoubleUnaryOperator onRest) {
        Problem q = new Problem(new Random(0), p.h, p.n, p.t);
        copy(map(p.r, onInputs), q.r); copy(map(p.k, onInputs), q.k); copy(map(p.v, onInputs), q.v); copy(map(p.u, onInputs), q.u);
        copy(p.w, q.w);
        copy(map(p.s0, onRest), q.s0); copy(map(p.dy, onRest), q.dy); copy(map(p.dsT, onRest), q.dsT);
        java.util.Arrays.fill(q.dw0.data(), 0f);
        java.util.Arrays.fill(q.du0.data(), 0f);
        return q;
    }

    static void copy(HostTensor from, HostTensor to) { System.arraycopy(from.data(), 0, to.data(), 0, (int) from.size()); }

    /**
     * Bound: every term of an output is a product in which at most m of the factors are bf16-rounded inputs (each off
     * by a relative 2^-8 at most): y has terms r u k v (m = 4), r k v and r S0 w^t; the final state k v (m = 2) and
     * w^T S0; dr, dk, dv, dw, du have at most three of r, k, v, u per term (e.g. dr: u k (v . gy); dw: r gy times
     * k v); dS0 has r gy (m = 1) and w^T dS_T. So |out_bf16 - out_fp32| <= ((1 + 2^-8)^m - 1) * out(|inputs|),
     * where out(|inputs|) is the same computation on absolute values (every term counted with its magnitude, which the
     * sequential reference computes exactly when run on |r|, |k|, |v|, |u|, |S0|, |gy|, |dS_T|), plus the fp32 slack
     * of 1e-5 of the largest element. The kernel on the rounded inputs must also match the fp32 reference run on the
     * same rounded inputs to 1e-5, which pins down the arithmetic; the bound checks the error budget of bf16 itself.
     */
    @Test
    void bf16InputKernelsStayWithinTheirRoundingBound() {
        Random rnd = new Random(seed + 1);
        int[] m = {4, 2, 3, 3, 3, 3, 3, 1};
        double u8 = Math.pow(2, -8);
        for (int[] hn : new int[][]{{2, 64}, {3, 8}}) {
            for (int steps : new int[]{1, 17, 40}) {
                Problem p = new Problem(rnd, hn[0], hn[1], steps);
                Problem zeroAcc = with(p, x -> x, x -> x);
                Problem rounded = with(p, x -> bf16((float) x), x -> x);
                Problem abs = with(p, Math::abs, Math::abs);
                float[][] exact = run(cpu, zeroAcc), onRounded = run(cpu, rounded), mag = run(cpu, abs), got = runBf16(p);
                String tag = " H=" + hn[0] + " N=" + hn[1] + " T=" + steps + " (seed " + seed + ")";
                for (int o = 0; o < NAMES.length; o++) {
                    double e = CudaParityTest.relErr(onRounded[o], got[o]);
                    assertTrue(e <= TOL, "bf16 " + NAMES[o] + " vs fp32 reference on the rounded inputs: " + e + tag);
                    double factor = Math.pow(1 + u8, m[o]) - 1, maxRef = 0, worst = 0, changed = 0;
                    for (float x : exact[o]) maxRef = Math.max(maxRef, Math.abs(x));
                    for (int i = 0; i < got[o].length; i++) {
                        double diff = Math.abs((double) got[o][i] - exact[o][i]), bound = factor * mag[o][i] + TOL * maxRef;
                        assertTrue(diff <= bound, "bf16 " + NAMES[o] + "[" + i + "]: " + got[o][i] + " vs " + exact[o][i]
                                + ", off by " + diff + " > bound " + bound + tag);
                        worst = Math.max(worst, diff / bound);
                        changed = Math.max(changed, diff);
                    }
                    assertTrue(changed > 0, "bf16 " + NAMES[o] + ": identical to fp32, so the inputs were not rounded" + tag);
                    System.out.printf("bf16 %-18s %-16s error/bound %.3f%n", NAMES[o], tag.substring(0, tag.indexOf(" (")), worst);
                }
            }
        }
    }
}
