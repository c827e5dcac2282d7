package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;

import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;

/**
 * CPU backend: matrix products through OpenBLAS sgemm, everything else in plain Java loops over native memory.
 * The WKV recurrence runs one head per task in parallel (heads are independent); cross-entropy runs rows in parallel;
 * all of it on the backend's threads ({@link CpuPool}).
 */
public final class CpuBackend implements Backend {
    /**
     * Byte order of {@link CpuTensor#direct()}: the ops that load and store vectors straight from native memory
     * (AdamW, mul, add, relu^2 and the token-shift mix) use it; measured 20-30% faster than copying blocks into arrays
     * first (mul on [1024, 768]: 0.24 against 0.30 ns per element; AdamW from DRAM 1.7 against 2.4 on one core).
     * Each of them writes its own block loop rather than passing a vector lambda to a shared one: a lambda over
     * FloatVector called from one loop for many ops is megamorphic, C2 does not inline it, and every vector is boxed.
     */
    static final java.nio.ByteOrder NATIVE = java.nio.ByteOrder.nativeOrder();

    private final AtomicLong live = new AtomicLong();
    private final AtomicLong peak = new AtomicLong();
    /**
     * Freed native buffers by element count, handed out again by {@link #zeros}. Every chunk allocates the same
     * activation shapes, and fresh native memory costs a page fault per 4 KiB on first touch: without this pool,
     * allocation took 20% of a forward+backward step of a 0.1B model.
     */
    private final java.util.Map<Long, java.util.ArrayDeque<FloatPointer>> pool = new java.util.HashMap<>();
    private long pooledBytes;

    /**
     * How a product with a bf16 operand runs: {@code ONEDNN} rounds an fp32 operand to bf16 and multiplies bf16 by bf16
     * with fp32 accumulation in oneDNN ({@link Bf16Matmul}; what the CUDA backend's cublasGemmEx does); {@code WIDEN}
     * widens the bf16 operand exactly into the fp32 sgemm, a block at a time. ONEDNN is the faster where the CPU has
     * bf16 instructions (about 2x sgemm with AVX512-BF16), WIDEN elsewhere, where oneDNN would emulate bf16.
     */
    public enum Bf16Products { ONEDNN, WIDEN }

    /** Environment variable that overrides the choice by CPU: auto (default), onednn or widen. */
    public static final String BF16_PRODUCTS_ENV = "LONGRWKV_BF16_MATMUL";

    private final Bf16Products bf16Products;

    /** A CPU backend with bf16 products chosen by CPU ({@link #defaultBf16Products}). */
    public CpuBackend() {
        this(defaultBf16Products());
    }

    public CpuBackend(Bf16Products bf16Products) {
        // Loading the native library early turns a missing binary into one clear error at start-up.
        openblas.blas_get_num_threads();
        if (bf16Products == Bf16Products.ONEDNN && !Bf16Matmul.runs()) {
            String isa;
            try {
                isa = Bf16Matmul.isa();
            } catch (LinkageError e) {
                isa = "oneDNN does not load";
            }
            throw new IllegalArgumentException("bf16 products in oneDNN: oneDNN has no bf16 matrix product on this CPU ("
                    + isa + "); set " + BF16_PRODUCTS_ENV + "=widen or auto");
        }
        this.bf16Products = bf16Products;
    }

    /**
     * {@value #BF16_PRODUCTS_ENV} when set, else ONEDNN where oneDNN finds bf16 instructions on this CPU, else WIDEN.
     * An unknown value is refused with the accepted ones.
     */
    public static Bf16Products defaultBf16Products() {
        String v = System.getenv(BF16_PRODUCTS_ENV);
        String choice = v == null || v.isBlank() ? "auto" : v.trim().toLowerCase(java.util.Locale.ROOT);
        switch (choice) {
            case "onednn": return Bf16Products.ONEDNN;
            case "widen": return Bf16Products.WIDEN;
            case "auto": return Bf16Matmul.native_() ? Bf16Products.ONEDNN : Bf16Products.WIDEN;
            default: throw new IllegalArgumentException(BF16_PRODUCTS_ENV + "=" + v + ": expected auto, onednn or widen");
        }
    }

    /** Whether {@link Bf16Products#ONEDNN} can run on this CPU (natively or emulated); where not, only WIDEN. */
    public static boolean oneDnnBf16Runs() { return Bf16Matmul.runs(); }

    /** How this backend runs products with a bf16 operand. */
    public Bf16Products bf16Products() { return bf16Products; }

    @Override public String name() {
        return "cpu (" + openblas.OPENBLAS_VERSION.trim() + ", " + CpuPool.threads() + " threads, bf16 products: "
                + (bf16Products == Bf16Products.ONEDNN ? "oneDNN " + Bf16Matmul.isa() : "widened into sgemm") + ")";
    }

    void track(long bytes) {
        long now = live.addAndGet(bytes);
        peak.accumulateAndGet(now, Math::max);
    }

    synchronized FloatPointer acquire(long floats) {
        java.util.ArrayDeque<FloatPointer> q = pool.get(floats);
        if (q != null && !q.isEmpty()) {
            pooledBytes -= floats * 4L;
            return q.pop();
        }
        return new FloatPointer(floats);
    }

    synchronized void release(FloatPointer p) {
        pool.computeIfAbsent(p.capacity(), k -> new java.util.ArrayDeque<>()).push(p);
        pooledBytes += p.capacity() * 4L;
    }

    /** Bytes held in the reuse pool (freed tensors' memory kept for the next allocation of the same size). */
    public synchronized long pooledBytes() { return pooledBytes; }

    /** Returns the pool's memory to the system. */
    public synchronized void trimPool() {
        for (java.util.ArrayDeque<FloatPointer> q : pool.values()) for (FloatPointer p : q) p.close();
        pool.clear();
        pooledBytes = 0;
    }

    @Override public long liveBytes() { return live.get(); }
    @Override public long peakBytes() { return peak.get(); }
    @Override public void resetPeakBytes() { peak.set(live.get()); }
    @Override public void close() { trimPool(); }

    private static CpuTensor t(Tensor x) {
        if (!(x instanceof CpuTensor c)) throw new IllegalArgumentException("not a CPU tensor: " + x);
        return c;
    }

    private static FloatBuffer b(Tensor x) { return t(x).buf(); }

    private static void sameSize(Tensor a, Tensor b, String op) {
        if (a.size() != b.size()) throw new IllegalArgumentException(op + ": sizes differ " + a.shapeString() + " vs " + b.shapeString());
    }

    // ---------------------------------------------------------------- memory
    @Override public Tensor zeros(DType dtype, int... shape) { return new CpuTensor(this, dtype, shape); }

    /** -Dlongrwkv.cpu.poisonEmpty=true (the test suite): {@link #empty} fills its tensors with NaN. */
    static final boolean POISON_EMPTY = Boolean.getBoolean("longrwkv.cpu.poisonEmpty");

    /**
     * Not cleared: what the pool's buffer held (or fresh memory). Clearing the activations and logits that every chunk
     * allocates and its ops then overwrite took ~55 ms of a 4 s L12-C768 training step (~1.3 GB a step).
     */
    @Override
    public Tensor empty(DType dtype, int... shape) {
        CpuTensor t = new CpuTensor(this, dtype, shape, false);
        if (POISON_EMPTY) {
            if (dtype == DType.F32) fill(t, Float.NaN);
            else for (int i = 0; i < t.size(); i++) t.bf16().put(i, (short) 0x7FC0);
        }
        return t;
    }

    @Override
    public Tensor upload(HostTensor host, DType dtype) {
        CpuTensor c = new CpuTensor(this, dtype, host.shape());
        if (dtype == DType.F32) {
            c.buf().put(0, host.data(), 0, host.size());
        } else {
            // straight from the host array: no fp32 native copy (1 GiB for a 65536 x 4096 embedding, kept by the pool after)
            Bf16Cpu.narrow(host.data(), c.bf16(), host.size());
        }
        return c;
    }

    @Override
    public void write(Tensor dst, long dstOffset, float[] src, int srcOffset, int count) {
        Backend.checkTransfer(dst, dstOffset, src, srcOffset, count);
        if (dst.dtype() == DType.F32) {
            b(dst).put((int) dstOffset, src, srcOffset, count);
        } else {
            Bf16Cpu.narrow(src, srcOffset, t(dst).bf16(), dstOffset, count);
        }
    }

    @Override
    public void read(Tensor src, long srcOffset, float[] dst, int dstOffset, int count) {
        Backend.checkTransfer(src, srcOffset, dst, dstOffset, count);
        if (src.dtype() == DType.F32) {
            b(src).get((int) srcOffset, dst, dstOffset, count);
        } else {
            ShortBuffer bits = t(src).bf16();
            for (int i = 0; i < count; i++) dst[dstOffset + i] = Float.intBitsToFloat(bits.get((int) srcOffset + i) << 16);
        }
    }

    @Override
    public HostTensor download(Tensor x) {
        float[] data = new float[(int) x.size()];
        if (x.dtype() == DType.F32) {
            b(x).get(0, data, 0, data.length);
        } else {
            Bf16Cpu.widen(t(x).bf16(), data, data.length);
        }
        return new HostTensor(x.shape(), data);
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        sameSize(src, dst, "copy");
        DType from = src.dtype(), to = dst.dtype();
        if (from == DType.F32 && to == DType.F32) {
            org.bytedeco.javacpp.Pointer.memcpy(t(dst).ptr(), t(src).ptr(), src.size() * 4L);
        } else if (from == DType.BF16 && to == DType.BF16) {
            t(dst).bf16().put(0, t(src).bf16(), 0, (int) src.size());
        } else if (from == DType.F32) {
            Bf16Cpu.narrow(b(src), 0, t(dst).bf16(), 0, src.size());
        } else {
            Bf16Cpu.widen(t(src).bf16(), 0, b(dst), 0, src.size());
        }
    }

    @Override
    public Tensor rows(Tensor x, int first, int count) {
        int rows = x.rows(), cols = x.cols();
        if (first < 0 || count < 0 || first + count > rows) {
            throw new IllegalArgumentException("rows " + first + ".." + (first + count) + " of a tensor with " + rows + " rows " + x.describe());
        }
        return t(x).view((long) first * cols, new int[]{count, cols});
    }

    @Override
    public void fill(Tensor x, float value) {
        if (Float.floatToRawIntBits(value) == 0) {
            Blocks.zero(t(x).ptr(), x.size());
            return;
        }
        Blocks.map(b(x), b(x), x.size(), (xs, o, n) -> Arrays.fill(o, 0, n, value));
    }

    // ---------------------------------------------------------------- linear algebra
    /**
     * Elements of a bf16 operand widened to fp32 per sgemm call: 16 MiB of workspace, and at least 1024 rows of a
     * 4096-wide weight, so the sgemm calls stay large enough to run at full speed.
     */
    public static final int BF16_BLOCK_ELEMENTS = 4 << 20;

    /**
     * fp32 sgemm. A bf16 operand is widened to fp32 on the way in (exact; OpenBLAS 0.3.31 as bytedeco ships it has no
     * bf16 GEMM entry point, see README "CPU and bf16"): a bf16 a as a whole (an activation: small), a bf16 b (a
     * weight: up to 65536 x 4096) in blocks of {@link #BF16_BLOCK_ELEMENTS} so that it never exists in fp32 whole.
     */
    @Override
    public void matmul(Tensor a, boolean transA, Tensor bm, boolean transB, Tensor c, float alpha, float beta) {
        int aRows = a.rows(), aCols = a.cols(), bRows = bm.rows(), bCols = bm.cols();
        int m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        int kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (k != kb || c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException("matmul shapes: a" + a.shapeString() + (transA ? "^T" : "") + " @ b"
                    + bm.shapeString() + (transB ? "^T" : "") + " -> c" + c.shapeString());
        }
        if (bf16Products == Bf16Products.ONEDNN && (a.dtype() == DType.BF16 || bm.dtype() == DType.BF16)) {
            matmulBf16(a, transA, bm, transB, c, alpha, beta, m, n, k);
            return;
        }
        if (a.dtype() == DType.BF16) {
            try (CpuTensor a32 = new CpuTensor(this, DType.F32, a.shape())) {
                copy(a, a32);
                matmul(a32, transA, bm, transB, c, alpha, beta);
            }
            return;
        }
        FloatPointer pa = t(a).ptr(), pc = t(c).ptr();
        if (bm.dtype() == DType.F32) {
            Sgemm.gemm(transA, transB, m, n, k, alpha, pa, aCols, t(bm).ptr(), bCols, beta, pc, n);
            return;
        }
        // b is stored [bRows, bCols]; widen it a block of whole stored rows at a time
        int blockRows = Math.max(1, Math.min(bRows, BF16_BLOCK_ELEMENTS / Math.max(1, bCols)));
        java.nio.ShortBuffer bits = t(bm).bf16();
        try (CpuTensor blk = new CpuTensor(this, DType.F32, new int[]{blockRows, bCols})) {
            for (int r0 = 0; r0 < bRows; r0 += blockRows) {
                int rb = Math.min(blockRows, bRows - r0);
                Bf16Cpu.widen(bits, (long) r0 * bCols, blk.buf(), 0, (long) rb * bCols);
                if (transB) {
                    // b^T's columns r0..r0+rb are c's columns r0..r0+rb
                    Sgemm.gemm(transA, true, m, rb, k, alpha, pa, aCols, blk.ptr(), bCols, beta, pc.getPointer(r0), n);
                } else {
                    // b's rows r0..r0+rb meet a's columns (or, transposed, rows) r0..r0+rb; accumulate over blocks
                    FloatPointer aPart = transA ? pa.getPointer((long) r0 * aCols) : pa.getPointer(r0);
                    Sgemm.gemm(transA, false, m, n, rb, alpha, aPart, aCols, blk.ptr(), bCols, r0 == 0 ? beta : 1f, pc, n);
                }
            }
        }
    }

    /**
     * A product with a bf16 operand in oneDNN: an fp32 operand is rounded to nearest even into a bf16 workspace of its
     * size first (counted in the live bytes while it exists), so the product is exactly that of bf16 inputs with fp32
     * accumulation, the same contract as the CUDA backend's.
     */
    private void matmulBf16(Tensor a, boolean transA, Tensor bm, boolean transB, Tensor c, float alpha, float beta, int m, int n, int k) {
        if (m == 0 || n == 0) return;
        if (k == 0) {   // nothing to multiply: C = beta C (and with beta = 0, C is not read, as in BLAS)
            if (beta == 0f) fill(c, 0f);
            else scale(c, beta);
            return;
        }
        try (CpuTensor a16 = asBf16(t(a)); CpuTensor b16 = asBf16(t(bm))) {
            CpuTensor ta = a16 != null ? a16 : t(a), tb = b16 != null ? b16 : t(bm);
            Bf16Matmul.gemm(transA, transB, m, n, k, alpha, ta.data(), a.cols(), tb.data(), bm.cols(), beta, t(c).ptr(), n);
        }
    }

    /** A bf16 copy of an fp32 matmul operand (the caller closes it), or null when x is bf16 already. */
    private CpuTensor asBf16(CpuTensor x) {
        if (x.dtype() == DType.BF16) return null;
        CpuTensor r = new CpuTensor(this, DType.BF16, x.shape());
        copy(x, r);
        return r;
    }

    // ---------------------------------------------------------------- embedding
    @Override
    public void embedding(Tensor table, int[] ids, Tensor out) {
        int c = table.cols(), v = table.rows();
        FloatBuffer dst = b(out);
        boolean bf16 = table.dtype() == DType.BF16;
        for (int t = 0; t < ids.length; t++) {
            int id = ids[t];
            if (id < 0 || id >= v) throw new IllegalArgumentException("token id " + id + " at position " + t + " is outside the vocabulary 0.." + (v - 1));
            if (bf16) Bf16Cpu.widen(t(table).bf16(), (long) id * c, dst, (long) t * c, c);
            else dst.put(t * c, b(table), id * c, c);
        }
    }

    @Override
    public void embeddingBackward(Tensor dOut, int[] ids, Tensor dTable) {
        int c = dTable.cols();
        FloatBuffer src = b(dOut), dst = b(dTable);
        float[] row = new float[c], g = new float[c];
        // in position order, so a token that occurs twice sums its gradients in the same order every run
        for (int t = 0; t < ids.length; t++) {
            int base = ids[t] * c;
            dst.get(base, row, 0, c);
            src.get(t * c, g, 0, c);
            for (int i = 0; i < c; i++) row[i] += g[i];
            dst.put(base, row, 0, c);
        }
    }

    // ---------------------------------------------------------------- normalisation
    /** Rows per parallel task of the row-wise ops; fixed, so per-task partial sums do not depend on the thread count. */
    private static final int ROWS_PER_TASK = 16;

    private static int rowTasks(int rows) {
        return (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    }

    @Override
    public void norm(Tensor x, Tensor w, Tensor bias, int groups, float eps, Tensor out, Tensor mean, Tensor rstd) {
        int rows = x.rows(), c = x.cols(), g = c / groups;
        FloatBuffer xi = b(x), o = b(out), mu = b(mean), rs = b(rstd);
        float[] wa = array(w), ba = array(bias);
        Blocks.parallelFor(rowTasks(rows), task -> {
            float[] row = new float[c], meanRstd = new float[2];
            for (int r = task * ROWS_PER_TASK, end = Math.min(rows, r + ROWS_PER_TASK); r < end; r++) {
                xi.get(r * c, row, 0, c);
                for (int q = 0; q < groups; q++) {
                    NormCpu.forward(row, q * g, g, wa, ba, eps, meanRstd);
                    mu.put(r * groups + q, meanRstd[0]);
                    rs.put(r * groups + q, meanRstd[1]);
                }
                o.put(r * c, row, 0, c);
            }
        });
    }

    @Override
    public void normBackward(Tensor dOut, Tensor x, Tensor w, int groups, Tensor mean, Tensor rstd, Tensor dx, Tensor dw, Tensor db) {
        int rows = x.rows(), c = x.cols(), g = c / groups;
        FloatBuffer dy = b(dOut), xi = b(x), mu = b(mean), rs = b(rstd), dxo = b(dx);
        float[] wa = array(w);
        int tasks = rowTasks(rows);
        float[][] dwPart = new float[tasks][], dbPart = new float[tasks][];
        Blocks.parallelFor(tasks, task -> {
            float[] xr = new float[c], dyr = new float[c], dxr = new float[c], dwa = new float[c], dba = new float[c];
            for (int r = task * ROWS_PER_TASK, end = Math.min(rows, r + ROWS_PER_TASK); r < end; r++) {
                xi.get(r * c, xr, 0, c);
                dy.get(r * c, dyr, 0, c);
                dxo.get(r * c, dxr, 0, c);
                for (int q = 0; q < groups; q++) {
                    NormCpu.backward(xr, dyr, dxr, q * g, g, wa, mu.get(r * groups + q), rs.get(r * groups + q), dwa, dba);
                }
                dxo.put(r * c, dxr, 0, c);
            }
            dwPart[task] = dwa;
            dbPart[task] = dba;
        });
        addInTaskOrder(dw, dwPart);
        addInTaskOrder(db, dbPart);
    }

    /** t += parts[0] + parts[1] + ..., in that order (per-task partial sums of a parameter gradient). */
    private static void addInTaskOrder(Tensor t, float[][] parts) {
        float[] a = array(t);
        for (float[] part : parts) for (int i = 0; i < a.length; i++) a[i] += part[i];
        b(t).put(0, a, 0, a.length);
    }

    /** A small tensor (a parameter vector) copied into a Java array. */
    private static float[] array(Tensor t) {
        float[] a = new float[(int) t.size()];
        b(t).get(0, a, 0, a.length);
        return a;
    }

    // ---------------------------------------------------------------- token shift
    @Override
    public void tokenShiftMix(Tensor xx, Tensor prev, Tensor mix, Tensor out) {
        int rows = xx.rows(), c = xx.cols();
        FloatBuffer x = b(xx), o = b(out);
        java.nio.ByteBuffer xd = t(xx).direct(), od = t(out).direct();
        float[] m = array(mix), om = oneMinus(m), first = array(prev);
        Blocks.parallelFor(rowTasks(rows), task -> {
            int r = task * ROWS_PER_TASK;
            if (r == 0) {
                // the first row's shifted input is prev, not a row of xx
                float[] cur = new float[c], res = new float[c];
                x.get(0, cur, 0, c);
                TokenShiftCpu.mix(cur, first, m, om, res, c);
                o.put(0, res, 0, c);
                r++;
            }
            for (int end = Math.min(rows, task * ROWS_PER_TASK + ROWS_PER_TASK); r < end; r++) {
                TokenShiftCpu.mix(xd, 4 * r * c, 4 * (r - 1) * c, m, om, od, 4 * r * c, c);
            }
        });
    }

    @Override
    public void tokenShiftMixBackward(Tensor dOut, Tensor xx, Tensor prev, Tensor mix, Tensor dxx, Tensor dPrev, Tensor dMix) {
        int rows = xx.rows(), c = xx.cols();
        FloatBuffer d = b(dOut), x = b(xx), dx = b(dxx);
        float[] m = array(mix), om = oneMinus(m), first = array(prev);
        int tasks = rowTasks(rows);
        float[][] dmPart = new float[tasks][];
        // row r: out = xx[r] m + sx[r] (1 - m) with sx[r] = xx[r-1] (prev for r = 0), so
        // dxx[r] += dOut[r] m + dOut[r+1] (1 - m), dPrev += dOut[0] (1 - m), dMix += dOut[r] (xx[r] - sx[r])
        java.nio.ByteBuffer dd = t(dOut).direct(), xd = t(xx).direct(), dxd = t(dxx).direct();
        Blocks.parallelFor(tasks, task -> {
            float[] dmAcc = new float[c];
            int r = task * ROWS_PER_TASK, end = Math.min(rows, r + ROWS_PER_TASK);
            if (r == 0) {
                // the first row's shifted input is prev, not a row of xx
                float[] cur = new float[c], g = new float[c], gNext = new float[c], dxr = new float[c];
                x.get(0, cur, 0, c);
                d.get(0, g, 0, c);
                dx.get(0, dxr, 0, c);
                boolean last = rows == 1;
                if (!last) d.get(c, gNext, 0, c);
                TokenShiftCpu.backwardRow(g, last ? null : gNext, cur, first, m, om, dxr, dmAcc, c);
                dx.put(0, dxr, 0, c);
                r++;
            }
            for (; r < end; r++) {
                int at = 4 * r * c;
                TokenShiftCpu.backwardRow(dd, at, r + 1 == rows ? -1 : at + 4 * c, xd, at, at - 4 * c, m, om, dxd, at, dmAcc, c);
            }
            dmPart[task] = dmAcc;
        });
        float[] dm = array(dMix), dp = array(dPrev), g0 = new float[c];
        d.get(0, g0, 0, c);
        for (int i = 0; i < c; i++) dp[i] += g0[i] * om[i];
        double[] dmAcc = new double[c];
        for (float[] part : dmPart) for (int i = 0; i < c; i++) dmAcc[i] += part[i];   // in task order
        for (int i = 0; i < c; i++) dm[i] += (float) dmAcc[i];
        b(dMix).put(0, dm, 0, c);
        b(dPrev).put(0, dp, 0, c);
    }

    private static float[] oneMinus(float[] m) {
        float[] r = new float[m.length];
        for (int i = 0; i < m.length; i++) r[i] = 1 - m[i];
        return r;
    }

    @Override
    public void copyRow(Tensor src, int row, Tensor dst) {
        int c = src.cols();
        b(dst).put(0, b(src), row * c, c);
    }

    @Override
    public void addToRow(Tensor dst, int row, Tensor src) {
        int c = dst.cols();
        FloatBuffer o = b(dst);
        float[] a = new float[c], s = array(src);
        o.get(row * c, a, 0, c);
        for (int i = 0; i < c; i++) a[i] += s[i];
        o.put(row * c, a, 0, c);
    }

    // ---------------------------------------------------------------- WKV
    /** Sequential scan (WkvCpu, the reference) or chunked form (WkvChunkedCpu): -Dlongrwkv.wkv, chosen by T when auto. */
    private final WkvImpl wkvImpl = WkvImpl.fromProperty();

    @Override
    public void decay(Tensor timeDecay, Tensor w) {
        FloatBuffer td = b(timeDecay), o = b(w);
        for (int i = 0; i < timeDecay.size(); i++) o.put(i, (float) Math.exp(-Math.exp(td.get(i))));
    }

    @Override
    public void decayBackward(Tensor timeDecay, Tensor w, Tensor dw, Tensor dTimeDecay) {
        FloatBuffer td = b(timeDecay), wi = b(w), g = b(dw), o = b(dTimeDecay);
        for (int i = 0; i < timeDecay.size(); i++) {
            o.put(i, o.get(i) + (float) (g.get(i) * wi.get(i) * -Math.exp(td.get(i))));
        }
    }

    /** r, k, v, u widened to fp32 (exact) when they are bf16: the CPU's WKV computes in fp32 from their values. */
    private Tensor[] wkvInputs(Tensor r, Tensor k, Tensor v, Tensor u) {
        Tensor[] in = {r, k, v, u};
        if (r.dtype() == DType.F32) return in;
        Tensor[] out = new Tensor[4];
        for (int i = 0; i < 4; i++) {
            if (in[i].dtype() != DType.BF16) throw new IllegalArgumentException("wkv takes r, k, v, u all fp32 or all bf16, got r " + r.describe() + " and " + in[i].describe());
            out[i] = new CpuTensor(this, DType.F32, in[i].shape());
            copy(in[i], out[i]);
        }
        return out;
    }

    private static void closeWidened(Tensor[] in, Tensor r) {
        if (in[0] != r) for (Tensor t : in) t.close();
    }

    @Override
    public void wkvForward(Tensor r0, Tensor k0, Tensor v0, Tensor w, Tensor u0, Tensor state, Tensor y) {
        Tensor[] in = wkvInputs(r0, k0, v0, u0);
        try {
            wkvForward32(in[0], in[1], in[2], w, in[3], state, y);
        } finally {
            closeWidened(in, r0);
        }
    }

    private void wkvForward32(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state, Tensor y) {
        int heads = w.dim(0), n = w.dim(1), steps = r.rows();
        checkWkv(r, k, v, w, u, state, y);
        boolean chunked = wkvImpl.chunked(steps, n, WkvChunkedCpu.AUTO_MIN_STEPS);
        Blocks.parallelFor(heads, h -> {
            if (chunked) WkvChunkedCpu.forwardHead(h, n, r.cols(), steps, b(r), b(k), b(v), b(w), b(u), b(state), b(y));
            else WkvCpu.forwardHead(h, n, r.cols(), steps, b(r), b(k), b(v), b(w), b(u), b(state), b(y));
        });
    }

    @Override
    public void wkvBackward(Tensor r0, Tensor k0, Tensor v0, Tensor w, Tensor u0, Tensor state0, Tensor dy,
                            Tensor dState, Tensor dr, Tensor dk, Tensor dv, Tensor dw, Tensor du) {
        Tensor[] in = wkvInputs(r0, k0, v0, u0);
        try {
            wkvBackward32(in[0], in[1], in[2], w, in[3], state0, dy, dState, dr, dk, dv, dw, du);
        } finally {
            closeWidened(in, r0);
        }
    }

    private void wkvBackward32(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state0, Tensor dy,
                               Tensor dState, Tensor dr, Tensor dk, Tensor dv, Tensor dw, Tensor du) {
        int heads = w.dim(0), n = w.dim(1), steps = r.rows();
        checkWkv(r, k, v, w, u, state0, dy);
        boolean chunked = wkvImpl.chunked(steps, n, WkvChunkedCpu.AUTO_MIN_STEPS);
        Blocks.parallelFor(heads, h -> {
            if (chunked) WkvChunkedCpu.backwardHead(h, n, r.cols(), steps, b(r), b(k), b(v), b(w), b(u), b(state0), b(dy),
                        b(dState), b(dr), b(dk), b(dv), b(dw), b(du));
            else WkvCpu.backwardHead(h, n, r.cols(), steps, b(r), b(k), b(v), b(w), b(u), b(state0), b(dy),
                        b(dState), b(dr), b(dk), b(dv), b(dw), b(du));
        });
    }

    private static void checkWkv(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state, Tensor y) {
        int heads = w.dim(0), n = w.dim(1);
        if (r.cols() != heads * n || k.size() != r.size() || v.size() != r.size() || y.size() != r.size()
                || u.size() != w.size() || state.size() != (long) heads * n * n) {
            throw new IllegalArgumentException("wkv shapes: r" + r.shapeString() + " k" + k.shapeString() + " v" + v.shapeString()
                    + " w" + w.shapeString() + " u" + u.shapeString() + " state" + state.shapeString() + " y" + y.shapeString());
        }
    }

    // ---------------------------------------------------------------- elementwise
    @Override
    public void silu(Tensor x, Tensor out) {
        sameSize(x, out, "silu");
        Blocks.map(b(x), b(out), x.size(), (xs, o, n) -> {
            Blocks.sigmoid(xs, o, n);
            for (int i = 0; i < n; i++) o[i] *= xs[i];
        });
    }

    @Override
    public void siluBackward(Tensor x, Tensor dOut, Tensor dx) {
        sameSize(x, dOut, "siluBackward");
        Blocks.map(b(x), b(dOut), b(dx), x.size(), (xs, d, o, n) -> {
            Blocks.sigmoid(xs, o, n);
            for (int i = 0; i < n; i++) {
                float s = o[i];
                o[i] = d[i] * s * (1f + xs[i] * (1f - s));
            }
        });
    }

    @Override
    public void sigmoid(Tensor x, Tensor out) {
        sameSize(x, out, "sigmoid");
        Blocks.map(b(x), b(out), x.size(), Blocks::sigmoid);
    }

    @Override
    public void sigmoidBackward(Tensor s, Tensor dOut, Tensor dx) {
        sameSize(s, dOut, "sigmoidBackward");
        Blocks.map(b(s), b(dOut), b(dx), s.size(), (ss, d, o, n) -> {
            for (int i = 0; i < n; i++) o[i] = d[i] * ss[i] * (1f - ss[i]);
        });
    }

    @Override
    public void reluSquare(Tensor x, Tensor out) {
        sameSize(x, out, "reluSquare");
        // Vector API loops: C2 does not vectorise Math.max(float) loops here (1.6 ms per [1024, 2688] call before);
        // lanewise max has Math.max's semantics (NaN stays NaN), so lanes and tail give the same bits
        java.nio.ByteBuffer xs = t(x).direct(), o = t(out).direct();
        long size = x.size();
        Blocks.parallelFor(Blocks.count(size), blk -> {
            int off = blk * Blocks.SIZE, n = (int) Math.min(Blocks.SIZE, size - off);
            int i = 0;
            for (int end = Blocks.SPECIES.loopBound(n); i < end; i += Blocks.SPECIES.length()) {
                int at = 4 * (off + i);
                FloatVector a = FloatVector.fromByteBuffer(Blocks.SPECIES, xs, at, NATIVE).max(0f);
                a.mul(a).intoByteBuffer(o, at, NATIVE);
            }
            for (; i < n; i++) {
                int at = 4 * (off + i);
                float a = Math.max(xs.getFloat(at), 0f);
                o.putFloat(at, a * a);
            }
        });
    }

    @Override
    public void reluSquareBackward(Tensor x, Tensor dOut, Tensor dx) {
        sameSize(x, dOut, "reluSquareBackward");
        java.nio.ByteBuffer xs = t(x).direct(), d = t(dOut).direct(), o = t(dx).direct();
        long size = x.size();
        Blocks.parallelFor(Blocks.count(size), blk -> {
            int off = blk * Blocks.SIZE, n = (int) Math.min(Blocks.SIZE, size - off);
            int i = 0;
            for (int end = Blocks.SPECIES.loopBound(n); i < end; i += Blocks.SPECIES.length()) {
                int at = 4 * (off + i);
                FloatVector.fromByteBuffer(Blocks.SPECIES, d, at, NATIVE).mul(2f)
                        .mul(FloatVector.fromByteBuffer(Blocks.SPECIES, xs, at, NATIVE).max(0f)).intoByteBuffer(o, at, NATIVE);
            }
            for (; i < n; i++) {
                int at = 4 * (off + i);
                o.putFloat(at, d.getFloat(at) * 2f * Math.max(xs.getFloat(at), 0f));
            }
        });
    }

    @Override
    public void mul(Tensor a, Tensor bt, Tensor out) {
        sameSize(a, bt, "mul");
        sameSize(a, out, "mul");
        mulOrAdd(a, bt, out, true);
    }

    @Override
    public void add(Tensor a, Tensor bt, Tensor out) {
        sameSize(a, bt, "add");
        sameSize(a, out, "add");
        mulOrAdd(a, bt, out, false);
    }

    /** out = a * b (product) or a + b, elementwise, loaded and stored straight from native memory. */
    private static void mulOrAdd(Tensor a, Tensor bt, Tensor out, boolean product) {
        java.nio.ByteBuffer x = t(a).direct(), y = t(bt).direct(), o = t(out).direct();
        long size = a.size();
        Blocks.parallelFor(Blocks.count(size), blk -> {
            int off = blk * Blocks.SIZE, n = (int) Math.min(Blocks.SIZE, size - off);
            int i = 0;
            for (int end = Blocks.SPECIES.loopBound(n); i < end; i += Blocks.SPECIES.length()) {
                int at = 4 * (off + i);
                FloatVector xv = FloatVector.fromByteBuffer(Blocks.SPECIES, x, at, NATIVE), yv = FloatVector.fromByteBuffer(Blocks.SPECIES, y, at, NATIVE);
                (product ? xv.mul(yv) : xv.add(yv)).intoByteBuffer(o, at, NATIVE);
            }
            for (; i < n; i++) {
                int at = 4 * (off + i);
                o.putFloat(at, product ? x.getFloat(at) * y.getFloat(at) : x.getFloat(at) + y.getFloat(at));
            }
        });
    }

    @Override
    public void scale(Tensor x, float s) {
        Blocks.map(b(x), b(x), x.size(), (xs, o, n) -> {
            for (int i = 0; i < n; i++) o[i] = xs[i] * s;
        });
    }

    @Override
    public double sumOfSquares(Tensor x) {
        long size = x.size();
        FloatBuffer in = b(x);
        double[] part = new double[Blocks.count(size)];
        // copied into an array block by block: loaded straight from native memory (as adamwStep does) this pass
        // measured slower, 24 against 14-20 ms per 50M floats on 2 threads
        Blocks.parallelFor(part.length, blk -> {
            float[] xs = Blocks.buffers()[0];
            int off = blk * Blocks.SIZE, n = (int) Math.min(Blocks.SIZE, size - off);
            in.get(off, xs, 0, n);
            part[blk] = CpuMath.sumOfSquares(xs, n);
        });
        double total = 0;
        for (double p : part) total += p;   // in block order: the same bits on any number of threads
        return total;
    }

    // ---------------------------------------------------------------- optimizer
    @Override
    public double adamwStep(Tensor param, Tensor grad, float gradScale, Tensor m, Tensor v, float lr, float beta1, float beta2,
                            float eps, float weightDecay, long step) {
        sameSize(param, grad, "adamw");
        sameSize(param, m, "adamw");
        sameSize(param, v, "adamw");
        double bc1 = 1 - Math.pow(beta1, step), bc2 = 1 - Math.pow(beta2, step);
        float stepSize = (float) (lr / bc1), bc2Sqrt = (float) Math.sqrt(bc2), decay = 1f - lr * weightDecay;
        float oneMinusB1 = 1 - beta1, oneMinusB2 = 1 - beta2;
        java.nio.ByteBuffer pb = t(param).direct(), gb = t(grad).direct(), mb = t(m).direct(), vb = t(v).direct();
        long size = param.size();
        double[] squares = new double[Blocks.count(size)];
        // Moments below the smallest normal float are stored as 0 (torch keeps them subnormal): a parameter whose
        // gradient stops (an embedding row of a token that no longer appears) has m and v decay geometrically through
        // the subnormal range (m for ~150 steps, v for ~1600 at beta2 0.99), and every subnormal operand costs the CPU
        // a microcode assist: AdamW measured 11.2 against 0.54 ns per element over such rows. The update they would
        // have made is below lr * 1e-38 / eps, beneath float resolution of any parameter above ~1e-25.
        // Vectors loaded and stored straight from native memory, not copied into arrays first: the four operands come
        // from DRAM (0.77 GB of them at L12-C768), and with the copies the pass ran at 2.4 ns per element on one
        // core against 1.7 without. Each block's sum of squares of the updated param is CpuMath.sumOfSquares's, the
        // same bits, summed as it goes.
        Blocks.parallelFor(squares.length, blk -> {
            int o = blk * Blocks.SIZE, n = (int) Math.min(Blocks.SIZE, size - o);
            DoubleVector lo = DoubleVector.zero(DoubleVector.SPECIES_256), hi = DoubleVector.zero(DoubleVector.SPECIES_256);
            int i = 0;
            // the vector lanes do exactly the scalar tail's float operations, in the same order (no fused multiply-add)
            for (int end = Blocks.SPECIES.loopBound(n); i < end; i += Blocks.SPECIES.length()) {
                int at = 4 * (o + i);
                FloatVector gi = FloatVector.fromByteBuffer(Blocks.SPECIES, gb, at, NATIVE).mul(gradScale);
                FloatVector mi = FloatVector.fromByteBuffer(Blocks.SPECIES, mb, at, NATIVE).mul(beta1).add(gi.mul(oneMinusB1));
                FloatVector vi = FloatVector.fromByteBuffer(Blocks.SPECIES, vb, at, NATIVE).mul(beta2).add(gi.mul(oneMinusB2).mul(gi));
                mi = mi.blend(0f, mi.abs().lt(Float.MIN_NORMAL));
                vi = vi.blend(0f, vi.lt(Float.MIN_NORMAL));
                FloatVector denom = vi.lanewise(VectorOperators.SQRT).div(bc2Sqrt).add(eps);
                FloatVector pi = FloatVector.fromByteBuffer(Blocks.SPECIES, pb, at, NATIVE).mul(decay).sub(mi.mul(stepSize).div(denom));
                pi.intoByteBuffer(pb, at, NATIVE);
                mi.intoByteBuffer(mb, at, NATIVE);
                vi.intoByteBuffer(vb, at, NATIVE);
                DoubleVector a = (DoubleVector) pi.convertShape(VectorOperators.F2D, DoubleVector.SPECIES_256, 0);
                DoubleVector c = (DoubleVector) pi.convertShape(VectorOperators.F2D, DoubleVector.SPECIES_256, 1);
                lo = lo.add(a.mul(a));
                hi = hi.add(c.mul(c));
            }
            double s = 0;
            for (int l = 0; l < lo.length(); l++) s += lo.lane(l);
            for (int l = 0; l < hi.length(); l++) s += hi.lane(l);
            for (; i < n; i++) {
                int at = 4 * (o + i);
                float gi = gb.getFloat(at) * gradScale;
                float mi = beta1 * mb.getFloat(at) + oneMinusB1 * gi;
                float vi = beta2 * vb.getFloat(at) + oneMinusB2 * gi * gi;
                if (Math.abs(mi) < Float.MIN_NORMAL) mi = 0f;
                if (vi < Float.MIN_NORMAL) vi = 0f;
                float denom = (float) Math.sqrt(vi) / bc2Sqrt + eps;
                float pi = pb.getFloat(at) * decay - stepSize * mi / denom;
                pb.putFloat(at, pi);
                mb.putFloat(at, mi);
                vb.putFloat(at, vi);
                s += (double) pi * pi;
            }
            squares[blk] = s;
        });
        double total = 0;
        for (double q : squares) total += q;   // in block order, as sumOfSquares(Tensor)
        return total;
    }

    // ---------------------------------------------------------------- loss
    @Override
    public double crossEntropy(Tensor logits, int[] targets, float[] weights, float l2WrapFactor, Tensor dLogits) {
        int rows = logits.rows(), vocab = logits.cols();
        if (targets.length != rows || weights.length != rows) {
            throw new IllegalArgumentException("crossEntropy: " + rows + " rows, " + targets.length + " targets, " + weights.length + " weights");
        }
        FloatBuffer in = b(logits);
        FloatBuffer out = dLogits == null ? null : b(dLogits);
        double[] perRow = new double[rows];
        Blocks.parallelFor(rows, r ->
                perRow[r] = CrossEntropyCpu.row(in, out, r * vocab, vocab, targets[r], weights[r], l2WrapFactor));
        return Arrays.stream(perRow).sum();
    }
}
