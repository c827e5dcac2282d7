package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** bf16 tensors on the CPU backend: storage, conversion, row views, and the ops that read bf16 (matmul, embedding). */
class CpuBf16Test {
    private static final CpuBackend be = new CpuBackend();
    private final Random rnd = new Random();

    @AfterAll
    static void close() { be.close(); }

    private HostTensor random(int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        float[] d = h.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) rnd.nextGaussian();
        return h;
    }

    /** The values a bf16 tensor made from h holds, computed on the host. */
    private static float[] rounded(HostTensor h) {
        float[] out = h.data().clone();
        for (int i = 0; i < out.length; i++) out[i] = Float16.bf16ToFloat(Float16.floatToBf16(out[i]));
        return out;
    }

    @Test
    void uploadRoundsToNearestEvenAndDownloadWidensExactly() {
        HostTensor h = random(37, 41);
        h.data()[0] = Float.intBitsToFloat(0x3f808000);   // a tie: rounds to even (down)
        h.data()[1] = Float.intBitsToFloat(0x3f818000);   // a tie: rounds to even (up)
        try (Tensor t = be.upload(h, DType.BF16)) {
            assertEquals(DType.BF16, t.dtype());
            assertEquals(37L * 41 * 2, t.bytes());
            float[] back = be.download(t).data();
            assertArrayEquals(rounded(h), back);
            assertEquals(Float.intBitsToFloat(0x3f800000), back[0]);
            assertEquals(Float.intBitsToFloat(0x3f820000), back[1]);
        }
    }

    /** write(): values land at the offset given, converted to the tensor's dtype; the rest stays as it was; read() gives them back; bounds are checked. */
    @Test
    void writeFillsPartOfATensorInItsDtype() {
        HostTensor h = random(1003);
        for (DType dt : DType.values()) {
            try (Tensor t = be.zeros(dt, 17, 59)) {
                be.write(t, 100, h.data(), 3, 600);
                be.write(t, 700, h.data(), 0, 303);   // an odd offset: a bf16 value in the upper half of a 32-bit word
                float[] back = be.download(t).data();
                for (int i = 0; i < back.length; i++) {
                    float want = i < 100 ? 0f : i < 700 ? h.data()[3 + i - 100] : i < 1003 ? h.data()[i - 700] : 0f;
                    if (dt == DType.BF16) want = Float16.bf16ToFloat(Float16.floatToBf16(want));
                    assertEquals(want, back[i], dt.label() + " element " + i);
                }
                float[] part = new float[510];
                be.read(t, 490, part, 7, 500);   // read(), the reverse: a range of the tensor into part of an array
                for (int i = 0; i < part.length; i++) assertEquals(i < 7 || i >= 507 ? 0f : back[490 + i - 7], part[i], dt.label() + " read " + i);
                assertThrows(IllegalArgumentException.class, () -> be.read(t, 17 * 59 - 2, part, 0, 3));
                assertThrows(IllegalArgumentException.class, () -> be.write(t, 17 * 59 - 2, h.data(), 0, 3));
                assertThrows(IllegalArgumentException.class, () -> be.write(t, 0, h.data(), 1001, 3));
                assertThrows(IllegalArgumentException.class, () -> be.write(t, -1, h.data(), 0, 1));
            }
        }
    }

    @Test
    void liveBytesCountTwoBytesPerBf16Element() {
        long before = be.liveBytes();
        try (Tensor t = be.zeros(DType.BF16, 1001, 3)) {
            assertEquals(before + 1001 * 3 * 2, be.liveBytes());
        }
        assertEquals(before, be.liveBytes());
    }

    @Test
    void copyConvertsBothWays() {
        HostTensor h = random(100_003);   // several conversion blocks and a ragged tail
        try (Tensor f = be.upload(h); Tensor b = be.zeros(DType.BF16, 100_003); Tensor f2 = be.zeros(100_003);
             Tensor b2 = be.zeros(DType.BF16, 100_003)) {
            be.copy(f, b);
            assertArrayEquals(rounded(h), be.download(b).data());
            be.copy(b, f2);
            assertArrayEquals(rounded(h), be.download(f2).data());
            be.copy(b, b2);
            assertArrayEquals(rounded(h), be.download(b2).data());
        }
    }

    @Test
    void rowViewsShareTheParentsMemory() {
        HostTensor h = random(10, 6);
        for (DType dt : DType.values()) {
            try (Tensor t = be.upload(h, dt)) {
                Tensor v = be.rows(t, 3, 4);
                assertArrayEquals(new int[]{4, 6}, v.shape());
                assertEquals(dt, v.dtype());
                float[] all = be.download(t).data(), part = be.download(v).data();
                for (int i = 0; i < part.length; i++) assertEquals(all[18 + i], part[i]);
                long live = be.liveBytes();
                v.close();
                assertEquals(live, be.liveBytes(), "closing a view frees nothing");
                if (dt == DType.F32) {
                    Tensor w = be.rows(t, 9, 1);
                    be.fill(w, 2.5f);
                    float[] after = be.download(t).data();
                    for (int i = 54; i < 60; i++) assertEquals(2.5f, after[i]);
                    assertEquals(all[53], after[53]);
                }
            }
        }
        try (Tensor t = be.zeros(4, 4)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.rows(t, 2, 3));
            assertTrue(e.getMessage().contains("rows 2..5"), e.getMessage());
        }
    }

    @Test
    void rowViewIsUnusableAfterItsParentCloses() {
        Tensor t = be.zeros(4, 4);
        Tensor v = be.rows(t, 1, 2);
        t.close();
        assertThrows(IllegalStateException.class, () -> be.fill(v, 1f));
    }

    /**
     * matmul with bf16 operands equals the fp32 matmul of the values it multiplies (up to fp32 summation order): with
     * {@code WIDEN} the bf16 operand's values and the fp32 operand as it is; with {@code ONEDNN} (the default where the
     * CPU has bf16 instructions) both operands rounded to bf16, the CUDA backend's contract. Every transpose, bf16 or
     * fp32 a, alpha and beta other than 1 and 0; the WIDEN weight spans more than one widening block.
     */
    @ParameterizedTest
    @EnumSource(CpuBackend.Bf16Products.class)
    void matmulWithBf16OperandsMatchesFp32OnTheValuesMultiplied(CpuBackend.Bf16Products products) {
        org.junit.jupiter.api.Assumptions.assumeTrue(products != CpuBackend.Bf16Products.ONEDNN || CpuBackend.oneDnnBf16Runs(),
                "oneDNN has no bf16 matrix product on this CPU (AVX2 only): only WIDEN runs here");
        try (CpuBackend be = new CpuBackend(products)) {
            int m = 7;
            // bCols x bRows above BF16_BLOCK_ELEMENTS, so that the weight is widened in more than one block
            int k = 1700, n = CpuBackend.BF16_BLOCK_ELEMENTS / 1700 + 300;
            for (boolean transA : new boolean[]{false, true}) {
                for (boolean transB : new boolean[]{false, true}) {
                    HostTensor a = transA ? random(k, m) : random(m, k);
                    HostTensor b = transB ? random(n, k) : random(k, n);
                    HostTensor c0 = random(m, n);
                    for (boolean aBf16 : new boolean[]{false, true}) {
                        boolean roundA = aBf16 || products == CpuBackend.Bf16Products.ONEDNN;
                        HostTensor aR = roundA ? new HostTensor(a.shape(), rounded(a)) : a;
                        HostTensor bR = new HostTensor(b.shape(), rounded(b));
                        try (Tensor ta = be.upload(a, aBf16 ? DType.BF16 : DType.F32); Tensor tb = be.upload(b, DType.BF16);
                             Tensor ra = be.upload(aR); Tensor rb = be.upload(bR);
                             Tensor c = be.upload(c0); Tensor ref = be.upload(c0)) {
                            be.matmul(ta, transA, tb, transB, c, 0.5f, 0.25f);
                            be.matmul(ra, transA, rb, transB, ref, 0.5f, 0.25f);
                            float[] got = be.download(c).data(), want = be.download(ref).data();
                            for (int i = 0; i < got.length; i++) {
                                // |error| of an fp32 sum of k products of N(0,1) values is well below 1e-5 * k
                                assertEquals(want[i], got[i], 1e-5 * k, products + " transA=" + transA + " transB=" + transB + " aBf16=" + aBf16 + " at " + i);
                            }
                        }
                    }
                }
            }
        }
    }

    /** Where oneDNN cannot multiply bf16 (an AVX2-only CPU), asking for it is refused up front with the fix. */
    @Test
    void oneDnnProductsAreRefusedWithTheFixWhereOneDnnHasNoBf16Product() {
        org.junit.jupiter.api.Assumptions.assumeFalse(CpuBackend.oneDnnBf16Runs(), "oneDNN multiplies bf16 on this CPU");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CpuBackend(CpuBackend.Bf16Products.ONEDNN));
        assertTrue(e.getMessage().contains(CpuBackend.BF16_PRODUCTS_ENV + "=widen"), e.getMessage());
        assertEquals(CpuBackend.Bf16Products.WIDEN, CpuBackend.defaultBf16Products(), "auto picks WIDEN here");
    }

    /** A bf16 product reads only its operands' elements: row views of bf16 tensors that start mid-float, and beta = 0 over NaN. */
    @ParameterizedTest
    @EnumSource(CpuBackend.Bf16Products.class)
    void matmulReadsBf16RowViewsAndIgnoresTheOldOutputWhenBetaIsZero(CpuBackend.Bf16Products products) {
        org.junit.jupiter.api.Assumptions.assumeTrue(products != CpuBackend.Bf16Products.ONEDNN || CpuBackend.oneDnnBf16Runs(),
                "oneDNN has no bf16 matrix product on this CPU (AVX2 only): only WIDEN runs here");
        try (CpuBackend be = new CpuBackend(products)) {
            int m = 5, k = 33, n = 19;   // odd sizes: row 1 of a [*, 33] bf16 tensor starts in the middle of a float
            HostTensor a = random(m + 1, k), b = random(n, k);
            HostTensor nan = new HostTensor(new int[]{m, n}, new float[m * n]);
            java.util.Arrays.fill(nan.data(), Float.NaN);
            try (Tensor ta = be.upload(a, DType.BF16); Tensor tb = be.upload(b, DType.BF16); Tensor c = be.upload(nan)) {
                Tensor rows = be.rows(ta, 1, m);
                be.matmul(rows, false, tb, true, c, 1f, 0f);
                float[] got = be.download(c).data(), ar = rounded(a), br = rounded(b);
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double want = 0;
                        for (int p = 0; p < k; p++) want += (double) ar[(i + 1) * k + p] * br[j * k + p];
                        assertEquals(want, got[i * n + j], 1e-5 * k, products + " at " + i + "," + j);
                    }
                }
            }
        }
    }

    /**
     * The vectorised narrowing gives Float16.floatToBf16's bits for every kind of float: random bit patterns (NaNs with
     * payloads in either half, infinities, subnormals), ties that round to even either way, values that round up to
     * infinity, at every offset and tail length.
     */
    @Test
    void vectorNarrowingEqualsTheScalarRoundingBitForBit() {
        int n = 50_000;
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            int kind = i % 8;
            int bits = rnd.nextInt();
            if (kind == 1) bits = (bits & 0xffff0000) | 0x8000;                  // an exact tie
            if (kind == 2) bits = 0x7f800000 | (bits & 0x8000ffff) | 1;          // NaN, payload only in the dropped half
            if (kind == 3) bits = 0x7f7f8000 | (bits & 0x80007fff);              // rounds up to infinity or stays max
            if (kind == 4) bits = bits & 0x807fffff;                              // subnormal
            f[i] = Float.intBitsToFloat(bits);
        }
        f[7] = Float.POSITIVE_INFINITY;
        f[8] = Float.NEGATIVE_INFINITY;
        f[9] = -0f;
        for (int off : new int[]{0, 1, 5}) {
            for (int len : new int[]{n - off, 13, 7, 0}) {
                short[] got = new short[len];
                Bf16Cpu.narrow(f, off, got, len);
                for (int i = 0; i < len; i++) {
                    assertEquals(Float16.floatToBf16(f[off + i]), got[i], "bits 0x" + Integer.toHexString(Float.floatToRawIntBits(f[off + i])) + " at " + (off + i));
                }
            }
        }
    }

    @Test
    void embeddingReadsABf16Table() {
        HostTensor table = random(50, 33);
        int[] ids = {3, 49, 0, 3};
        try (Tensor t = be.upload(table, DType.BF16); Tensor out = be.zeros(ids.length, 33)) {
            be.embedding(t, ids, out);
            float[] got = be.download(out).data(), r = rounded(table);
            for (int i = 0; i < ids.length; i++) {
                for (int j = 0; j < 33; j++) assertEquals(r[ids[i] * 33 + j], got[i * 33 + j]);
            }
        }
    }

    @Test
    void fp32OnlyOpsRejectBf16WithTheOpsName() {
        try (Tensor x = be.zeros(DType.BF16, 4, 8); Tensor out = be.zeros(4, 8)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.silu(x, out));
            assertEquals("silu takes fp32 tensors, got [4, 8] bf16", e.getMessage());
        }
    }
}
