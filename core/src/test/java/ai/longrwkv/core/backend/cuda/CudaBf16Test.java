package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.function.Executable;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * bf16 tensors on the CUDA backend (the CPU backend's CpuBf16Test, on the device): storage, conversion, row views, the
 * ops that read bf16 (matmul through cublasGemmEx, embedding), and parity with the CPU backend. Runs on the device
 * {@code -Dlongrwkv.parity.device} names, like CudaParityTest: {@code emulated} by default, {@code cuda} on a GPU
 * (scripts/gpu-check.sh), where the same assertions check the real cublasGemmEx and tensor cores. (Host-only
 * checks: Bf16RoundingTest against the toolkit's __float2bfloat16_rn; the emulated gemmEx's own checks in
 * EmulatorChecksTest.)
 *
 * <p>Error bounds of matmul, derived, not tuned (u = 2^-24, fp32's unit roundoff; S = sum_k |a_ik| |b_kj| of the
 * values the products are formed from):
 * <ul>
 *   <li>The device's result against the exact (double) product of the values it multiplies, the bf16-rounded ones:
 *       every bf16 x bf16 product is exact in fp32 (8 + 8 significant bits), so the only error is fp32 summation,
 *       at most gamma_k S with gamma_k = k u / (1 - k u), whatever the order or blocking (tensor cores, split-K,
 *       OpenBLAS), plus the rounding of alpha * sum + beta * c (2 u of |alpha| S + |beta c|). Tested with
 *       2 (k + 2) u (|alpha| S + |beta c|): the factor 2 also covers an accumulator that truncates instead of
 *       rounding (an error of up to 2 u per addition, as tensor cores' multi-term adders may).</li>
 *   <li>Against the CPU backend, which keeps an fp32 operand next to a bf16 one unrounded where the device rounds it:
 *       rounding to nearest changes each factor by at most 2^-8 relative (bf16 has 8 significant bits: its spacing is
 *       2^-7 of the leading power of two, half of that is the largest rounding error), so each product by at most
 *       2^-8 |a| |b| and the sum by 2^-8 |alpha| S; plus both sides' fp32 summation errors (tested
 *       with 4 (k + 2) u (|alpha| S + |beta c|): the CPU's gamma_k and the device's 2 gamma_k).</li>
 * </ul>
 * A wrong index, transpose or dtype changes an element by about sqrt(k) for these N(0, 1) inputs (16 at k = 256),
 * against bounds of at most 2^-8 S + 4 (k + 2) u S, about 0.65 there (S ~ 2k / pi).
 */
class CudaBf16Test {
    static final double U = 0x1p-24;
    static Backend gpu;
    static final CpuBackend cpu = new CpuBackend();
    Random rnd;
    double maxRatio;

    @BeforeAll
    static void start() {
        String device = System.getProperty("longrwkv.parity.device", "emulated");
        gpu = Backends.create(device);
        assertTrue(gpu instanceof CudaBackend, "needs a CUDA backend, got " + gpu.name());
    }

    @AfterAll
    static void stop() {
        if (gpu != null) gpu.close();
        cpu.close();
    }

    @BeforeEach
    void seed(TestInfo info) {
        long seed = Long.getLong("longrwkv.parity.seed", System.nanoTime());
        rnd = new Random(seed ^ info.getDisplayName().hashCode());
        maxRatio = 0;
        System.out.println(info.getDisplayName() + ": seed " + seed);
    }

    private HostTensor random(int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        float[] d = h.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) rnd.nextGaussian();
        return h;
    }

    private static float bf(float f) { return Float16.bf16ToFloat(Float16.floatToBf16(f)); }

    /** The values a bf16 tensor made from h holds, computed on the host (Float16, the Java reference). */
    private static float[] rounded(HostTensor h) {
        float[] out = h.data().clone();
        for (int i = 0; i < out.length; i++) out[i] = bf(out[i]);
        return out;
    }

    /** The bits __float2bfloat16_rn gives: Float16.floatToBf16's, except that every NaN is the canonical 0x7fff. */
    private static int cudaBits(float f) {
        return Float.isNaN(f) ? 0x7fff : Float16.floatToBf16(f) & 0xffff;
    }

    private static int[] bitsOf(float[] widened) {
        int[] b = new int[widened.length];
        for (int i = 0; i < b.length; i++) {
            int raw = Float.floatToRawIntBits(widened[i]);
            assertEquals(0, raw & 0xffff, "a widened bf16 has a zero low half");
            b[i] = raw >>> 16;
        }
        return b;
    }

    // ---------------------------------------------------------------- storage and conversion
    @Test
    void uploadRoundsToNearestEvenAndDownloadWidensExactly() {
        HostTensor h = random(37, 41);
        h.data()[0] = Float.intBitsToFloat(0x3f808000);   // a tie: rounds to even (down)
        h.data()[1] = Float.intBitsToFloat(0x3f818000);   // a tie: rounds to even (up)
        try (Tensor t = gpu.upload(h, DType.BF16)) {
            assertEquals(DType.BF16, t.dtype());
            assertEquals(37L * 41 * 2, t.bytes());
            float[] back = gpu.download(t).data();
            assertArrayEquals(rounded(h), back);
            assertEquals(Float.intBitsToFloat(0x3f800000), back[0]);
            assertEquals(Float.intBitsToFloat(0x3f820000), back[1]);
        }
    }

    /**
     * The kernel's rounding against Float16.floatToBf16 bit for bit on the cases that decide a rounding (ties both
     * ways, carries into the exponent, overflow to infinity, subnormals, signed zeros) and on random bit patterns of
     * every class, through both paths that round (upload and copy). NaN: the canonical 0x7fff of __float2bfloat16_rn.
     */
    @Test
    void roundingMatchesFloat16BitForBitAndNaNIsCanonical() {
        int[] special = {
                0x00000000, 0x80000000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf808000, 0xbf818000,
                0x3fffffff, 0x3fff8000, 0x3ffe8000, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0xff7fffff, 0xff7f8000,
                0x00000001, 0x00008000, 0x00018000, 0x00010000, 0x007fffff, 0x007f8000, 0x807f8000, 0x00800000,
                0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff800001, 0x7fffffff};
        int n = special.length + 200_000;
        float[] values = new float[n];
        for (int i = 0; i < special.length; i++) values[i] = Float.intBitsToFloat(special[i]);
        for (int i = special.length; i < n; i++) {
            int bits = rnd.nextInt();
            // every tenth one a tie or a near-tie, which uniform bits almost never are
            if (i % 10 == 0) bits = (bits & 0xffff0000) | (0x8000 + rnd.nextInt(3) - 1);
            values[i] = Float.intBitsToFloat(bits);
        }
        HostTensor h = new HostTensor(new int[]{n}, values);
        try (Tensor up = gpu.upload(h, DType.BF16); Tensor f = gpu.upload(h); Tensor viaCopy = gpu.zeros(DType.BF16, n)) {
            gpu.copy(f, viaCopy);
            int[] a = bitsOf(gpu.download(up).data()), b = bitsOf(gpu.download(viaCopy).data());
            for (int i = 0; i < n; i++) {
                int want = cudaBits(values[i]);
                String at = "input 0x" + Integer.toHexString(Float.floatToRawIntBits(values[i]));
                assertEquals(want, a[i], "upload, " + at);
                assertEquals(want, b[i], "copy, " + at);
            }
        }
    }

    /** Uploads larger than the staging block go through it in several steps; the ragged tail too. */
    @Test
    void largeUploadsAreStagedInBlocks() {
        int n = CudaBackend.UPLOAD_BLOCK_ELEMENTS + 12_345;
        HostTensor h = random(n);
        long before = gpu.liveBytes();
        gpu.resetPeakBytes();
        try (Tensor t = gpu.upload(h, DType.BF16)) {
            assertArrayEquals(rounded(h), gpu.download(t).data());
            assertEquals(before + 2L * n, gpu.liveBytes());
            // the fp32 staging buffer is one block, not the whole tensor
            assertEquals(before + 2L * n + 4L * CudaBackend.UPLOAD_BLOCK_ELEMENTS, gpu.peakBytes());
        }
    }

    /** write(): values land at the offset given, converted to the tensor's dtype; the rest stays as it was; read() gives them back; bounds are checked. */
    @Test
    void writeFillsPartOfATensorInItsDtype() {
        HostTensor h = random(1003);
        for (DType dt : DType.values()) {
            try (Tensor t = gpu.zeros(dt, 17, 59)) {
                gpu.write(t, 100, h.data(), 3, 600);
                gpu.write(t, 700, h.data(), 0, 303);   // an odd offset: a bf16 value in the upper half of a 32-bit word
                float[] back = gpu.download(t).data();
                for (int i = 0; i < back.length; i++) {
                    float want = i < 100 ? 0f : i < 700 ? h.data()[3 + i - 100] : i < 1003 ? h.data()[i - 700] : 0f;
                    if (dt == DType.BF16) want = Float16.bf16ToFloat(Float16.floatToBf16(want));
                    assertEquals(want, back[i], dt.label() + " element " + i);
                }
                float[] part = new float[510];
                gpu.read(t, 490, part, 7, 500);   // read(), the reverse: a range of the tensor into part of an array
                for (int i = 0; i < part.length; i++) assertEquals(i < 7 || i >= 507 ? 0f : back[490 + i - 7], part[i], dt.label() + " read " + i);
                assertThrows(IllegalArgumentException.class, () -> gpu.read(t, 17 * 59 - 2, part, 0, 3));
                assertThrows(IllegalArgumentException.class, () -> gpu.write(t, 17 * 59 - 2, h.data(), 0, 3));
                assertThrows(IllegalArgumentException.class, () -> gpu.write(t, 0, h.data(), 1001, 3));
                assertThrows(IllegalArgumentException.class, () -> gpu.write(t, -1, h.data(), 0, 1));
            }
        }
    }

    @Test
    void liveBytesCountTwoBytesPerBf16Element() {
        long before = gpu.liveBytes();
        try (Tensor t = gpu.zeros(DType.BF16, 1001, 3)) {
            assertEquals(before + 1001 * 3 * 2, gpu.liveBytes());
            for (float v : gpu.download(t).data()) assertEquals(0f, v, "zeros(bf16)");
        }
        assertEquals(before, gpu.liveBytes());
    }

    @Test
    void copyConvertsBothWays() {
        HostTensor h = random(100_003);
        try (Tensor f = gpu.upload(h); Tensor b = gpu.zeros(DType.BF16, 100_003); Tensor f2 = gpu.zeros(100_003);
             Tensor b2 = gpu.zeros(DType.BF16, 100_003)) {
            gpu.copy(f, b);
            assertArrayEquals(rounded(h), gpu.download(b).data());
            gpu.copy(b, f2);
            assertArrayEquals(rounded(h), gpu.download(f2).data());
            gpu.copy(b, b2);
            assertArrayEquals(rounded(h), gpu.download(b2).data());
        }
    }

    // ---------------------------------------------------------------- row views
    @Test
    void rowViewsShareTheParentsMemory() {
        HostTensor h = random(10, 7);   // odd width: a bf16 view of an odd row starts at an address that is 2 mod 4
        for (DType dt : DType.values()) {
            try (Tensor t = gpu.upload(h, dt)) {
                Tensor v = gpu.rows(t, 3, 4);
                assertArrayEquals(new int[]{4, 7}, v.shape());
                assertEquals(dt, v.dtype());
                float[] all = gpu.download(t).data(), part = gpu.download(v).data();
                for (int i = 0; i < part.length; i++) assertEquals(all[21 + i], part[i]);
                float[] inner = gpu.download(gpu.rows(v, 1, 2)).data();   // a view of a view: rows 4 and 5
                for (int i = 0; i < inner.length; i++) assertEquals(all[28 + i], inner[i]);
                long live = gpu.liveBytes();
                v.close();
                assertEquals(live, gpu.liveBytes(), "closing a view frees nothing");
                assertArrayEquals(all, gpu.download(t).data(), "closing a view leaves the parent as it was");
                // writes through a view land in the parent: a conversion into it, and (fp32) a kernel
                Tensor w = gpu.rows(t, 9, 1);
                try (Tensor src = gpu.upload(new HostTensor(new int[]{1, 7}, new float[]{1, 2, 3, 4, 5, 6, 7}))) {
                    gpu.copy(src, w);
                }
                float[] after = gpu.download(t).data();
                for (int i = 0; i < 7; i++) assertEquals(i + 1f, after[63 + i]);
                assertEquals(all[62], after[62]);
                if (dt == DType.F32) {
                    gpu.fill(gpu.rows(t, 0, 1), 2.5f);
                    after = gpu.download(t).data();
                    for (int i = 0; i < 7; i++) assertEquals(2.5f, after[i]);
                    assertEquals(all[7], after[7]);
                }
            }
        }
        try (Tensor t = gpu.zeros(4, 4)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> gpu.rows(t, 2, 3));
            assertTrue(e.getMessage().contains("rows 2..5"), e.getMessage());
        }
    }

    @Test
    void rowViewIsUnusableAfterItsParentCloses() {
        for (DType dt : DType.values()) {
            Tensor t = gpu.zeros(dt, 4, 4);
            Tensor v = gpu.rows(t, 1, 2);
            t.close();
            // the parent's memory is back in the pool (the next allocation of that size gets it): the view must not reach it
            try (Tensor reuse = gpu.zeros(dt, 4, 4)) {
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> gpu.download(v));
                assertTrue(e.getMessage().contains("after its parent was closed"), e.getMessage());
                assertThrows(IllegalStateException.class, () -> gpu.copy(gpu.rows(reuse, 0, 2), v));
                assertThrows(IllegalStateException.class, () -> gpu.rows(t, 0, 1));
            }
        }
    }

    // ---------------------------------------------------------------- matmul
    /** S[i][j] = sum_k |op(a)_ik| |op(b)_kj| and the exact product in double, row-major [m, n]. */
    private static double[][] exact(float[] a, boolean ta, float[] b, boolean tb, int m, int k, int n) {
        double[] prod = new double[m * n], abs = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0, sa = 0;
                for (int p = 0; p < k; p++) {
                    double x = ta ? a[p * m + i] : a[i * k + p], y = tb ? b[j * k + p] : b[p * n + j];
                    s += x * y;
                    sa += Math.abs(x * y);
                }
                prod[i * n + j] = s;
                abs[i * n + j] = sa;
            }
        }
        return new double[][]{prod, abs};
    }

    /** |got - want| <= relBound * (|alpha| S + |beta c0|) + absSlack for every element. */
    private void within(String what, float[] got, double[] want, double[] abs, float[] c0, float alpha, float beta, double rel,
                        double relToS) {
        for (int i = 0; i < got.length; i++) {
            double scale = Math.abs(alpha) * abs[i] + Math.abs(beta * c0[i]);
            double bound = rel * scale + relToS * Math.abs(alpha) * abs[i];
            double err = Math.abs(got[i] - want[i]);
            maxRatio = Math.max(maxRatio, err / bound);
            assertTrue(err <= bound, what + " at " + i + ": got " + got[i] + ", want " + want[i] + ", error " + err + " > bound " + bound);
        }
    }

    /**
     * The device's product of bf16 operands (and of an fp32 operand next to a bf16 one, which it rounds to bf16 first)
     * is the exact product of the rounded values up to fp32 summation, for every transpose and dtype pairing.
     */
    @Test
    void matmulWithBf16OperandsIsTheProductOfTheRoundedValues() {
        int m = 37, k = 300, n = 53;
        float alpha = 0.5f, beta = 0.25f;
        for (boolean ta : new boolean[]{false, true}) {
            for (boolean tb : new boolean[]{false, true}) {
                HostTensor a = ta ? random(k, m) : random(m, k), b = tb ? random(n, k) : random(k, n), c0 = random(m, n);
                double[][] ref = exact(rounded(a), ta, rounded(b), tb, m, k, n);
                double[] want = new double[m * n];
                for (int i = 0; i < want.length; i++) want[i] = alpha * ref[0][i] + beta * (double) c0.data()[i];
                for (DType da : DType.values()) {
                    for (DType db : DType.values()) {
                        if (da == DType.F32 && db == DType.F32) continue;
                        try (Tensor ga = gpu.upload(a, da); Tensor gb = gpu.upload(b, db); Tensor gc = gpu.upload(c0)) {
                            long live = gpu.liveBytes();
                            gpu.resetPeakBytes();
                            gpu.matmul(ga, ta, gb, tb, gc, alpha, beta);
                            assertEquals(live, gpu.liveBytes(), "the bf16 workspace is freed");
                            long workspace = (da == DType.F32 ? 2L * m * k : 0) + (db == DType.F32 ? 2L * k * n : 0);
                            assertEquals(live + workspace, gpu.peakBytes(), "the bf16 workspace of an fp32 operand counts in the peak");
                            within("ta=" + ta + " tb=" + tb + " a " + da + " b " + db, gpu.download(gc).data(), want, ref[1],
                                    c0.data(), alpha, beta, 2 * (k + 2) * U, 0);
                        }
                    }
                }
            }
        }
        System.out.printf("bf16 matmul vs the exact product of the rounded values: largest error %.3g of its bound%n", maxRatio);
    }

    /**
     * The model's case, x W^T with fp32 activations x and bf16 weights W, and the other pairings, against the CPU
     * backend: within 2^-8 |alpha| S where one side rounds an fp32 operand that the other keeps, within fp32 summation
     * where both multiply the same values.
     */
    @Test
    void matmulMatchesTheCpuBackendWithinTheBf16Bound() {
        int m = 29, k = 256, n = 96;
        float alpha = 1f, beta = 0f;
        for (boolean tb : new boolean[]{true, false}) {
            HostTensor x = random(m, k), w = tb ? random(n, k) : random(k, n), c0 = HostTensor.zeros(m, n);
            for (DType dx : DType.values()) {
                for (DType dw : DType.values()) {
                    if (dx == DType.F32 && dw == DType.F32) continue;
                    float[] xv = dx == DType.BF16 ? rounded(x) : x.data(), wv = dw == DType.BF16 ? rounded(w) : w.data();
                    // S over the values the CPU multiplies (an unrounded fp32 operand differs from its rounding by 2^-8 relative)
                    double[] abs = exact(xv, false, wv, tb, m, k, n)[1];
                    try (Tensor cx = cpu.upload(x, dx); Tensor cw = cpu.upload(w, dw); Tensor cc = cpu.zeros(m, n);
                         Tensor gx = gpu.upload(x, dx); Tensor gw = gpu.upload(w, dw); Tensor gc = gpu.zeros(m, n)) {
                        cpu.matmul(cx, false, cw, tb, cc, alpha, beta);
                        gpu.matmul(gx, false, gw, tb, gc, alpha, beta);
                        float[] ref = cpu.download(cc).data();
                        double[] want = new double[ref.length];
                        for (int i = 0; i < ref.length; i++) want[i] = ref[i];
                        // both bf16: the same products on both sides; else the device rounded the fp32 operand
                        double rounding = dx == DType.BF16 && dw == DType.BF16 ? 0 : 0x1p-8;
                        within("x " + dx + " W " + dw + (tb ? "^T" : ""), gpu.download(gc).data(), want, abs, c0.data(),
                                alpha, beta, 4 * (k + 2) * U, rounding);
                    }
                }
            }
        }
        System.out.printf("bf16 matmul vs the CPU backend: largest error %.3g of its bound%n", maxRatio);
    }

    /** A bf16 operand that is a row view (an address 2 mod 4) multiplies like the same rows as a tensor of their own. */
    @Test
    void matmulReadsBf16RowViews() {
        HostTensor w = random(11, 33), x = random(5, 33);
        try (Tensor gw = gpu.upload(w, DType.BF16); Tensor gx = gpu.upload(x); Tensor c = gpu.zeros(5, 4); Tensor ref = gpu.zeros(5, 4)) {
            float[] rows = new float[4 * 33];
            System.arraycopy(w.data(), 3 * 33, rows, 0, rows.length);
            try (Tensor own = gpu.upload(new HostTensor(new int[]{4, 33}, rows), DType.BF16)) {
                gpu.matmul(gx, false, gpu.rows(gw, 3, 4), true, c, 1f, 0f);
                gpu.matmul(gx, false, own, true, ref, 1f, 0f);
                assertArrayEquals(gpu.download(ref).data(), gpu.download(c).data());
            }
        }
    }

    // ---------------------------------------------------------------- embedding
    @Test
    void embeddingReadsABf16TableLikeTheCpu() {
        HostTensor table = random(50, 33);
        int[] ids = {3, 49, 0, 3};
        try (Tensor t = gpu.upload(table, DType.BF16); Tensor out = gpu.zeros(ids.length, 33);
             Tensor ct = cpu.upload(table, DType.BF16); Tensor cout = cpu.zeros(ids.length, 33)) {
            gpu.embedding(t, ids, out);
            cpu.embedding(ct, ids, cout);
            float[] got = gpu.download(out).data(), r = rounded(table);
            for (int i = 0; i < ids.length; i++) {
                for (int j = 0; j < 33; j++) assertEquals(r[ids[i] * 33 + j], got[i * 33 + j]);
            }
            assertArrayEquals(cpu.download(cout).data(), got, "widening is exact: the same floats as the CPU");
            // a bf16 table that is a row view (odd start)
            Tensor part = gpu.rows(t, 1, 49);
            gpu.embedding(part, new int[]{2}, gpu.rows(out, 0, 1));
            for (int j = 0; j < 33; j++) assertEquals(r[3 * 33 + j], gpu.download(out).data()[j]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> gpu.embedding(t, new int[]{50}, out));
            assertTrue(e.getMessage().contains("outside the vocabulary"), e.getMessage());
        }
    }

    @Test
    void copyAgreesWithTheCpuBackend() {
        HostTensor h = random(3001);
        try (Tensor g = gpu.upload(h); Tensor gb = gpu.zeros(DType.BF16, 3001); Tensor c = cpu.upload(h); Tensor cb = cpu.zeros(DType.BF16, 3001)) {
            gpu.copy(g, gb);
            cpu.copy(c, cb);
            assertArrayEquals(cpu.download(cb).data(), gpu.download(gb).data());
        }
    }

    // ---------------------------------------------------------------- dtype checks
    @Test
    void fp32OnlyOpsRejectBf16WithTheOpsName() {
        try (Tensor x = gpu.zeros(DType.BF16, 4, 8); Tensor f = gpu.zeros(4, 8); Tensor w = gpu.zeros(8); Tensor st = gpu.zeros(4)) {
            String got = "[4, 8] bf16";
            expect("silu takes fp32 tensors, got " + got, () -> gpu.silu(x, f));
            expect("silu takes fp32 tensors, got " + got, () -> gpu.silu(f, x));
            expect("fill takes fp32 tensors, got " + got, () -> gpu.fill(x, 1f));
            expect("scale takes fp32 tensors, got " + got, () -> gpu.scale(x, 2f));
            expect("add takes fp32 tensors, got " + got, () -> gpu.add(f, x, f));
            expect("sumOfSquares takes fp32 tensors, got " + got, () -> gpu.sumOfSquares(x));
            expect("copyRow takes fp32 tensors, got " + got, () -> gpu.copyRow(x, 1, w));
            expect("norm takes fp32 tensors, got " + got, () -> gpu.norm(x, w, w, 1, 1e-5f, f, st, st));
            expect("matmul takes fp32 tensors, got " + got, () -> gpu.matmul(f, true, f, false, x, 1f, 0f));
            expect("embedding takes fp32 tensors, got [4, 8] bf16", () -> gpu.embedding(f, new int[]{0, 1, 2, 3}, x));
            expect("crossEntropy takes fp32 tensors, got " + got, () -> gpu.crossEntropy(x, new int[4], new float[4], 0f, null));
        }
    }

    private static void expect(String message, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertEquals(message, e.getMessage());
    }
}
