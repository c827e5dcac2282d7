package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.ShortPointer;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The {@link Backend} on one CUDA device: fp32 and bf16 tensors in device memory, matrix products through the
 * device's GEMM (fp32 operands: cuBLAS sgemm, fp32 math, no TF32, so results stay within 1e-4 of the CPU backend;
 * a bf16 operand: cublasGemmEx on tensor cores, see {@link #matmul}), every other op a kernel from this package's
 * {@code .cu} sources (fp32 only, except the conversions and the embedding gather of bf16.cu; an op given a bf16
 * tensor it does not take says so, naming itself). The device is a real GPU ({@link DriverDevice}) or the emulated
 * one ({@link EmulatedDevice}); this class is the same code above both. All work runs in call order on one stream, so a
 * download sees every earlier write.
 *
 * <p>Create it through {@link ai.longrwkv.core.backend.Backends}, never directly from code that must also run on
 * machines without a driver: the driver device loads the CUDA libraries.
 */
public final class CudaBackend implements Backend {
    /** Head sizes with a compiled WKV kernel (wkv5.cu instantiates these). */
    static final Set<Integer> WKV_HEAD_SIZES = Set.of(1, 2, 4, 8, 16, 32, 64);
    private static final int THREADS = KernelSources.ELEMENTWISE_THREADS;

    final Device device;
    final DeviceMemory memory;
    private final Map<String, Kernel> kernels = new HashMap<>();
    private final AtomicLong live = new AtomicLong(), peak = new AtomicLong();
    private boolean closed;

    /** GPU 0 (or -Dlongrwkv.cuda.device=N) through the NVIDIA driver. */
    public CudaBackend() {
        this(new DriverDevice(Integer.getInteger("longrwkv.cuda.device", 0)));
    }

    CudaBackend(Device device) {
        this.device = device;
        this.memory = new DeviceMemory(device, device.description());
    }

    /** GPU {@code ordinal} through the NVIDIA driver (one of several: --devices). */
    public static CudaBackend onDevice(int ordinal) {
        return new CudaBackend(new DriverDevice(ordinal));
    }

    /** The emulated CUDA device: the real kernels on the CPU (see {@link EmulatedDevice}). */
    public static CudaBackend emulated() {
        return new CudaBackend(new EmulatedDevice());
    }

    @Override
    public long memoryCapacity() { return device.totalMemory(); }

    @Override
    public String name() {
        return "cuda (" + device.description() + ", kernels " + device.moduleOrigins() + ")";
    }

    /** Waits until the device has finished all queued work (for timing). */
    public void synchronize() { device.synchronize("synchronize()"); }

    void track(long bytes) {
        long now = live.addAndGet(bytes);
        peak.accumulateAndGet(now, Math::max);
    }

    @Override public long liveBytes() { return live.get(); }
    @Override public long peakBytes() { return peak.get(); }
    @Override public void resetPeakBytes() { peak.set(live.get()); }

    /** Device bytes held in the reuse pool. */
    public long pooledBytes() { return memory.pooledBytes(); }

    /** Returns the pool's memory to the device. */
    public void trimPool() { memory.trimPool(); }

    // ---------------------------------------------------------------- several devices
    /** ncclGetUniqueId on this device (the emulated device makes ids for its own emulation of NCCL). */
    @Override
    public byte[] newCommunicatorId() {
        return device.ncclUniqueId();
    }

    /**
     * ncclCommInitRank on this backend's device; the collectives of the returned communicator take this backend's
     * tensors (see {@link NcclCommunicator}). Blocks until all {@code size} ranks have joined.
     */
    @Override
    public ai.longrwkv.core.dist.Communicator communicator(byte[] id, int rank, int size, long timeoutMillis) {
        return new NcclCommunicator(this, device.ncclCommInitRank(id, rank, size, timeoutMillis));
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        memory.close();
        device.close();
    }

    /** x as an fp32 CUDA tensor: what every op takes except the few that say otherwise (they use {@link #anyDtype}). */
    private static CudaTensor t(Tensor x) {
        CudaTensor c = anyDtype(x);
        if (c.dtype() != DType.F32) throw new IllegalArgumentException(callerOp() + " takes fp32 tensors, got " + x.describe());
        return c;
    }

    private static CudaTensor anyDtype(Tensor x) {
        if (!(x instanceof CudaTensor c)) throw new IllegalArgumentException("not a CUDA tensor: " + x);
        return c;
    }

    private static String callerOp() {
        return ai.longrwkv.core.backend.OpNames.callerOp(CudaBackend.class);
    }

    private static void sameSize(Tensor a, Tensor b, String op) {
        if (a.size() != b.size()) throw new IllegalArgumentException(op + ": sizes differ " + a.shapeString() + " vs " + b.shapeString());
    }

    /** The kernel of that name in that module, looked up once (on whichever thread asks first). */
    private synchronized Kernel k(String module, String fn) {
        Kernel kernel = kernels.get(fn);
        if (kernel == null) {
            kernel = new Kernel(device, device.function(module, fn));
            kernels.put(fn, kernel);
        }
        return kernel;
    }

    /** Fails before a launch when a tensor the kernel writes or reads is smaller than the launch will touch. */
    private static void atLeast(Tensor x, long elements, String op, String what) {
        if (x.size() < elements) {
            throw new IllegalArgumentException(op + ": " + what + " " + x.shapeString() + " has " + x.size() + " elements, needs " + elements);
        }
    }

    private static int blocks(long n) { return (int) Math.max(1, Math.min((n + THREADS - 1) / THREADS, 1L << 20)); }

    /** A grid-stride elementwise kernel over n elements. */
    private void elementwise(String fn, long n, Object... args) {
        if (n == 0) return;
        k("elementwise", fn).launch(blocks(n), THREADS, 0, args);
    }

    // ---------------------------------------------------------------- memory
    /**
     * Elements converted per step when a bf16 tensor is uploaded: the fp32 staging buffer on the device is at most
     * 16 MiB, whatever the tensor's size (a [65536, 4096] embedding would otherwise need a 1 GiB fp32 copy).
     */
    static final int UPLOAD_BLOCK_ELEMENTS = 4 << 20;

    @Override
    public Tensor zeros(DType dtype, int... shape) {
        CudaTensor c = new CudaTensor(this, dtype, shape);
        if (c.size() > 0) {
            if (dtype == DType.F32) device.memsetD32(c.ptr(), 0, c.size());
            else device.memsetD16(c.ptr(), (short) 0, c.size());
        }
        return c;
    }

    /** fp32: copied as it is; bf16: staged through the device in blocks and rounded there by f32_to_bf16 (bf16.cu). */
    @Override
    public Tensor upload(HostTensor host, DType dtype) {
        CudaTensor c = new CudaTensor(this, dtype, host.shape());
        try {
            write(c, 0, host.data(), 0, host.size());
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    /** As {@link #upload}: fp32 copied as it is, bf16 staged in blocks of {@link #UPLOAD_BLOCK_ELEMENTS} and rounded on the device. */
    @Override
    public void write(Tensor dst, long dstOffset, float[] src, int srcOffset, int count) {
        Backend.checkTransfer(dst, dstOffset, src, srcOffset, count);
        CudaTensor c = anyDtype(dst);
        if (count == 0) return;
        if (c.dtype() == DType.F32) {
            for (int off = 0; off < count; off += UPLOAD_BLOCK_ELEMENTS) {   // bounded host staging too
                uploadFloats(src, srcOffset + off, Math.min(UPLOAD_BLOCK_ELEMENTS, count - off), c.ptr(dstOffset + off));
            }
            return;
        }
        try (CudaTensor stage = new CudaTensor(this, new int[]{Math.min(count, UPLOAD_BLOCK_ELEMENTS)})) {
            for (int off = 0; off < count; off += UPLOAD_BLOCK_ELEMENTS) {
                int len = Math.min(UPLOAD_BLOCK_ELEMENTS, count - off);
                uploadFloats(src, srcOffset + off, len, stage.ptr());
                k("bf16", "f32_to_bf16").launch(blocks(len), THREADS, 0, stage, c.ptr(dstOffset + off), (long) len);
            }
        }
    }

    /** As {@link #download}, for a range: in blocks of {@link #UPLOAD_BLOCK_ELEMENTS} through host staging of that size. */
    @Override
    public void read(Tensor src, long srcOffset, float[] dst, int dstOffset, int count) {
        Backend.checkTransfer(src, srcOffset, dst, dstOffset, count);
        CudaTensor s = anyDtype(src);
        for (int off = 0; off < count; off += UPLOAD_BLOCK_ELEMENTS) {
            int len = Math.min(UPLOAD_BLOCK_ELEMENTS, count - off);
            if (s.dtype() == DType.F32) {
                try (FloatPointer h = new FloatPointer(len)) {
                    device.copyDtoH(h, s.ptr(srcOffset + off), len * 4L);
                    h.get(dst, dstOffset + off, len);
                }
            } else {
                short[] bits = new short[len];
                try (ShortPointer h = new ShortPointer(len)) {
                    device.copyDtoH(h, s.ptr(srcOffset + off), len * 2L);
                    h.get(bits);
                }
                for (int i = 0; i < len; i++) dst[dstOffset + off + i] = Float.intBitsToFloat(bits[i] << 16);
            }
        }
    }

    /** fp32 values; a bf16 tensor's bits are copied to the host and widened there (exact, half the transfer). */
    @Override
    public HostTensor download(Tensor x) {
        CudaTensor src = anyDtype(x);
        float[] data = new float[Math.toIntExact(x.size())];
        if (data.length > 0 && src.dtype() == DType.F32) {
            try (FloatPointer h = new FloatPointer(data.length)) {
                device.copyDtoH(h, src.ptr(), data.length * 4L);
                h.get(data);
            }
        } else if (data.length > 0) {
            short[] bits = new short[data.length];
            try (ShortPointer h = new ShortPointer(data.length)) {
                device.copyDtoH(h, src.ptr(), data.length * 2L);
                h.get(bits);
            }
            for (int i = 0; i < data.length; i++) data[i] = Float.intBitsToFloat(bits[i] << 16);
        }
        return new HostTensor(x.shape(), data);
    }

    /** Same dtypes: a device copy; fp32 -> bf16 rounds to nearest even and bf16 -> fp32 widens (bf16.cu). */
    @Override
    public void copy(Tensor src, Tensor dst) {
        sameSize(src, dst, "copy");
        CudaTensor s = anyDtype(src), d = anyDtype(dst);
        long n = src.size();
        if (n == 0) return;
        if (s.dtype() == d.dtype()) {
            device.copyDtoD(d.ptr(), s.ptr(), s.bytes());
        } else if (s.dtype() == DType.F32) {
            k("bf16", "f32_to_bf16").launch(blocks(n), THREADS, 0, s, d, n);
        } else {
            k("bf16", "bf16_to_f32").launch(blocks(n), THREADS, 0, s, d, n);
        }
    }

    @Override
    public Tensor rows(Tensor x, int first, int count) {
        int rows = x.rows(), cols = x.cols();
        if (first < 0 || count < 0 || first + count > rows) {
            throw new IllegalArgumentException("rows " + first + ".." + (first + count) + " of a tensor with " + rows + " rows " + x.describe());
        }
        return anyDtype(x).view((long) first * cols, new int[]{count, cols});
    }

    @Override
    public void fill(Tensor x, float value) {
        elementwise("fill_f32", x.size(), t(x), value, x.size());
    }

    /** Scratch device memory for int or float side inputs (ids, targets); freed to the pool after the op's launch. */
    private long uploadInts(int[] values) {
        long p = memory.alloc(Math.max(values.length, 1) * 4L);
        if (values.length > 0) {
            try (IntPointer h = new IntPointer(values)) {
                device.copyHtoD(p, h, values.length * 4L);
            }
        }
        return p;
    }

    private void uploadFloats(float[] src, int offset, int count, long dst) {
        if (count == 0) return;
        try (FloatPointer h = new FloatPointer(count)) {
            h.put(src, offset, count);
            device.copyHtoD(dst, h, count * 4L);
        }
    }

    private double[] downloadDoubles(long src, int count) {
        double[] out = new double[count];
        if (count == 0) return out;
        try (DoublePointer h = new DoublePointer(count)) {
            device.copyDtoH(h, src, count * 8L);
            h.get(out);
        }
        return out;
    }

    // ---------------------------------------------------------------- linear algebra
    /**
     * Row-major C[m,n] = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a row-major matrix with leading dimension
     * cols is, read column-major, its own transpose. So B goes first with its own transpose flag, then A.
     *
     * <p>fp32 a and b: sgemm. A bf16 operand: cublasGemmEx with bf16 A and B, fp32 C and fp32 accumulation (tensor
     * cores). cuBLAS takes A and B only of one type, so an fp32 operand next to a bf16 one is first rounded to nearest
     * even into a bf16 workspace of its size (counted in the live bytes while it exists): the product is then exactly
     * that of bf16 inputs, as {@link Backend#matmul} allows.
     */
    @Override
    public synchronized void matmul(Tensor a, boolean transA, Tensor bm, boolean transB, Tensor c, float alpha, float beta) {
        CudaTensor ta = anyDtype(a), tb = anyDtype(bm), tc = t(c);
        int aRows = a.rows(), aCols = a.cols(), bRows = bm.rows(), bCols = bm.cols();
        int m = transA ? aCols : aRows, kk = transA ? aRows : aCols;
        int kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (kk != kb || c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException("matmul shapes: a" + a.shapeString() + (transA ? "^T" : "") + " @ b"
                    + bm.shapeString() + (transB ? "^T" : "") + " -> c" + c.shapeString());
        }
        if (m == 0 || n == 0) return;
        if (kk == 0) {   // cuBLAS would still apply beta (and, for beta = 0, not read C, which may hold NaN)
            if (beta == 0f) fill(c, 0f);
            else scale(c, beta);
            return;
        }
        if (ta.dtype() == DType.F32 && tb.dtype() == DType.F32) {
            long pa = ta.ptr(), pb = tb.ptr(), pc = tc.ptr();
            gemmOrFail(() -> device.sgemm(transB, transA, n, m, kk, alpha, pb, bCols, pa, aCols, beta, pc, n), m, kk, n);
            return;
        }
        try (CudaTensor a16 = asBf16(ta); CudaTensor b16 = asBf16(tb)) {
            long pa = (a16 != null ? a16 : ta).ptr(), pb = (b16 != null ? b16 : tb).ptr(), pc = tc.ptr();
            gemmOrFail(() -> device.gemmEx(transB, transA, n, m, kk, alpha, pb, DType.BF16, bCols, pa, DType.BF16, aCols,
                    beta, pc, n), m, kk, n);
        }
    }

    /** A bf16 copy of an fp32 matmul operand (the caller closes it), or null when x is bf16 already. */
    private CudaTensor asBf16(CudaTensor x) {
        if (x.dtype() == DType.BF16) return null;
        CudaTensor r = new CudaTensor(this, DType.BF16, x.shape());
        copy(x, r);
        return r;
    }

    private void gemmOrFail(java.util.function.BooleanSupplier gemm, int m, int kk, int n) {
        if (!memory.retryAfterTrim(gemm)) {
            throw new IllegalStateException("CUDA out of memory: cuBLAS could not allocate its workspace for a " + m + " x " + kk
                    + " x " + n + " product (" + memory.allocatedBytes() + " bytes allocated by this backend)");
        }
    }

    // ---------------------------------------------------------------- embedding
    @Override
    public void embedding(Tensor table, int[] ids, Tensor out) {
        CudaTensor tab = anyDtype(table), o = t(out);
        int c = table.cols(), v = table.rows();
        for (int t = 0; t < ids.length; t++) {
            int id = ids[t];
            if (id < 0 || id >= v) throw new IllegalArgumentException("token id " + id + " at position " + t + " is outside the vocabulary 0.." + (v - 1));
        }
        if (out.size() < (long) ids.length * c) throw new IllegalArgumentException("embedding: out " + out.shapeString() + " too small for " + ids.length + " x " + c);
        if (ids.length == 0) return;
        long dIds = uploadInts(ids);
        try {
            if (tab.dtype() == DType.F32) {
                k("elementwise", "embedding_f32").launch(blocks((long) ids.length * c), THREADS, 0, tab, dIds, o, ids.length, c);
            } else {
                k("bf16", "embedding_bf16").launch(blocks((long) ids.length * c), THREADS, 0, tab, dIds, o, ids.length, c);
            }
        } finally {
            memory.free(dIds, Math.max(ids.length, 1) * 4L);
        }
    }

    @Override
    public void embeddingBackward(Tensor dOut, int[] ids, Tensor dTable) {
        int c = dTable.cols(), v = dTable.rows();
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] < 0 || ids[t] >= v) throw new IllegalArgumentException("token id " + ids[t] + " at position " + t + " is outside the vocabulary 0.." + (v - 1));
        }
        atLeast(dOut, (long) ids.length * c, "embeddingBackward", "dOut");
        if (ids.length == 0) return;
        long dIds = uploadInts(ids);
        try {
            k("elementwise", "embedding_backward_f32").launch(blocks(c), THREADS, 0, t(dOut), dIds, t(dTable), ids.length, c);
        } finally {
            memory.free(dIds, Math.max(ids.length, 1) * 4L);
        }
    }

    // ---------------------------------------------------------------- normalisation
    /** Threads per (row, group) block: a power of two (the kernels' tree reduction needs one), at most the kernels' limit. */
    private static int normThreads(int groupSize) {
        int t = 32;
        while (t < groupSize && t < KernelSources.NORM_MAX_THREADS) t <<= 1;
        return t;
    }

    private static void checkNorm(String op, Tensor x, Tensor w, int groups, Tensor mean, Tensor rstd, Tensor... sameAsX) {
        int rows = x.rows(), c = x.cols();
        if (groups <= 0 || c % groups != 0) throw new IllegalArgumentException(op + ": " + c + " columns do not split into " + groups + " groups");
        atLeast(w, c, op, "w");
        atLeast(mean, (long) rows * groups, op, "mean");
        atLeast(rstd, (long) rows * groups, op, "rstd");
        for (Tensor o : sameAsX) if (o != null) atLeast(o, x.size(), op, "tensor");
    }

    @Override
    public void norm(Tensor x, Tensor w, Tensor b, int groups, float eps, Tensor out, Tensor mean, Tensor rstd) {
        int rows = x.rows(), c = x.cols();
        checkNorm("norm", x, w, groups, mean, rstd, out);
        atLeast(b, c, "norm", "b");
        if ((long) rows * groups == 0) return;
        k("norm", "norm_forward_f32").launch(rows * groups, normThreads(c / groups), 0,
                t(x), t(w), t(b), t(out), t(mean), t(rstd), c, groups, eps);
    }

    @Override
    public void normBackward(Tensor dOut, Tensor x, Tensor w, int groups, Tensor mean, Tensor rstd, Tensor dx, Tensor dw, Tensor db) {
        int rows = x.rows(), c = x.cols();
        checkNorm("normBackward", x, w, groups, mean, rstd, dOut, dx);
        atLeast(dw, c, "normBackward", "dw");
        atLeast(db, c, "normBackward", "db");
        if ((long) rows * groups == 0) return;
        k("norm", "norm_backward_dx_f32").launch(rows * groups, normThreads(c / groups), 0,
                t(dOut), t(x), t(w), t(mean), t(rstd), t(dx), c, groups);
        k("norm", "norm_backward_params_f32").launch(blocks(c), THREADS, 0,
                t(dOut), t(x), t(mean), t(rstd), t(dw), t(db), rows, c, groups);
    }

    // ---------------------------------------------------------------- token shift
    @Override
    public void tokenShiftMix(Tensor xx, Tensor prev, Tensor mix, Tensor out) {
        if (xx == out) throw new IllegalArgumentException("tokenShiftMix: out must not be xx on the CUDA backend");
        int rows = xx.rows(), c = xx.cols();
        atLeast(prev, c, "tokenShiftMix", "prev");
        atLeast(mix, c, "tokenShiftMix", "mix");
        atLeast(out, xx.size(), "tokenShiftMix", "out");
        elementwise("token_shift_mix_f32", (long) rows * c, t(xx), t(prev), t(mix), t(out), rows, c);
    }

    @Override
    public void tokenShiftMixBackward(Tensor dOut, Tensor xx, Tensor prev, Tensor mix, Tensor dxx, Tensor dPrev, Tensor dMix) {
        int rows = xx.rows(), c = xx.cols();
        for (Tensor small : new Tensor[]{prev, mix, dPrev, dMix}) atLeast(small, c, "tokenShiftMixBackward", "prev/mix/dPrev/dMix");
        atLeast(dOut, xx.size(), "tokenShiftMixBackward", "dOut");
        atLeast(dxx, xx.size(), "tokenShiftMixBackward", "dxx");
        if (rows == 0) return;
        k("elementwise", "token_shift_mix_backward_params_f32").launch(blocks(c), THREADS, 0,
                t(dOut), t(xx), t(prev), t(mix), t(dPrev), t(dMix), rows, c);
        elementwise("token_shift_mix_backward_dx_f32", (long) rows * c, t(dOut), t(mix), t(dxx), rows, c);
    }

    @Override
    public void copyRow(Tensor src, int row, Tensor dst) {
        int c = src.cols();
        if (row < 0 || row >= src.rows()) throw new IllegalArgumentException("copyRow: row " + row + " of " + src.shapeString());
        atLeast(dst, c, "copyRow", "dst");
        if (c > 0) device.copyDtoD(t(dst).ptr(), t(src).ptr((long) row * c), c * 4L);
    }

    @Override
    public void addToRow(Tensor dst, int row, Tensor src) {
        int c = dst.cols();
        if (row < 0 || row >= dst.rows()) throw new IllegalArgumentException("addToRow: row " + row + " of " + dst.shapeString());
        atLeast(src, c, "addToRow", "src");
        elementwise("add_to_row_f32", c, t(dst), t(src), row, c);
    }

    // ---------------------------------------------------------------- WKV
    @Override
    public void decay(Tensor timeDecay, Tensor w) {
        sameSize(timeDecay, w, "decay");
        elementwise("decay_f32", w.size(), t(timeDecay), t(w), w.size());
    }

    @Override
    public void decayBackward(Tensor timeDecay, Tensor w, Tensor dw, Tensor dTimeDecay) {
        sameSize(timeDecay, w, "decayBackward");
        sameSize(dw, w, "decayBackward");
        sameSize(dTimeDecay, w, "decayBackward");
        elementwise("decay_backward_f32", w.size(), t(timeDecay), t(w), t(dw), t(dTimeDecay), w.size());
    }

    private static int checkWkv(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state, Tensor y) {
        int heads = w.dim(0), n = w.dim(1);
        if (r.cols() != heads * n || k.size() != r.size() || v.size() != r.size() || y.size() != r.size()
                || u.size() != w.size() || state.size() != (long) heads * n * n) {
            throw new IllegalArgumentException("wkv shapes: r" + r.shapeString() + " k" + k.shapeString() + " v" + v.shapeString()
                    + " w" + w.shapeString() + " u" + u.shapeString() + " state" + state.shapeString() + " y" + y.shapeString());
        }
        if (!WKV_HEAD_SIZES.contains(n)) {
            throw new IllegalArgumentException("head size " + n + " has no CUDA WKV kernel (compiled for " + new java.util.TreeSet<>(WKV_HEAD_SIZES) + ")");
        }
        return n;
    }

    /** Whether r, k, v, u are bf16 (all four: anything else is refused). */
    private static boolean bf16Wkv(Tensor r, Tensor k, Tensor v, Tensor u) {
        if (r.dtype() == DType.F32) return false;
        for (Tensor x : new Tensor[]{r, k, v, u}) {
            if (x.dtype() != DType.BF16) throw new IllegalArgumentException("wkv takes r, k, v, u all fp32 or all bf16, got r " + r.describe() + " and " + x.describe());
        }
        return true;
    }

    /** r, k, v, u widened to fp32 copies, for shapes with no bf16 kernel (or a forced sequential scan). */
    private Tensor[] widenWkv(Tensor r, Tensor k, Tensor v, Tensor u) {
        Tensor[] out = new Tensor[4];
        Tensor[] in = {r, k, v, u};
        for (int i = 0; i < 4; i++) {
            out[i] = new CudaTensor(this, in[i].shape());
            copy(in[i], out[i]);
        }
        return out;
    }

    /** bf16 inputs go to the tensor-core kernels (head sizes 32 and 64, the chunked form). */
    private boolean tensorCoreWkv(int n) {
        return (n == 32 || n == 64) && wkvImpl != WkvImpl.SEQUENTIAL;
    }

    @Override
    public void wkvForward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state, Tensor y) {
        int n = checkWkv(r, k, v, w, u, state, y);
        int steps = r.rows();
        if (steps == 0) return;
        if (bf16Wkv(r, k, v, u)) {
            if (tensorCoreWkv(n)) {
                k("wkv5_chunked", wkvForwardKernel(n, true)).launch(w.dim(0) * wkvTiles(n), KernelSources.WKV_CHUNK_THREADS, 0,
                        steps, r.cols(), anyDtype(r), anyDtype(k), anyDtype(v), t(w), anyDtype(u), t(state), t(y));
                return;
            }
            Tensor[] in = widenWkv(r, k, v, u);
            try {
                wkvForward(in[0], in[1], in[2], w, in[3], state, y);
            } finally {
                for (Tensor x : in) x.close();
            }
            return;
        }
        if (wkvImpl.chunked(steps, n, WKV_CHUNKED_MIN_STEPS)) {
            k("wkv5_chunked", wkvForwardKernel(n, false)).launch(w.dim(0) * wkvTiles(n), KernelSources.WKV_CHUNK_THREADS, 0,
                    steps, r.cols(), t(r), t(k), t(v), t(w), t(u), t(state), t(y));
            return;
        }
        k("wkv5", "wkv5_forward_n" + n).launch(w.dim(0), n, 0, steps, r.cols(), t(r), t(k), t(v), t(w), t(u), t(state), t(y));
    }

    /** Sequential scan (wkv5.cu) or chunked form (wkv5_chunked.cu): -Dlongrwkv.wkv, chosen by T when auto. */
    private final WkvImpl wkvImpl = WkvImpl.fromProperty();
    /**
     * With -Dlongrwkv.wkv=auto the chunked kernels run from this many tokens on. Not measured on a GPU yet: one chunk
     * (16 tokens) is where the chunked form starts to shorten the sequential depth.
     */
    static final int WKV_CHUNKED_MIN_STEPS = 2 * 16;

    /**
     * The chunked forward kernel for head size n: with bf16 inputs at n = 32 or 64 the tensor-core one (wkv5t_*: bf16
     * mma operands, fp32 accumulation and state, error budget in wkv5_chunked.cu), otherwise the fp32-FMA one (wkv5c_*,
     * the reference path, for fp32 r, k, v, u; bf16 ones, which the model passes with --precision bf16, go to the
     * tensor-core kernels). Both take the same arguments and
     * launch configuration (heads x {@link #wkvTiles} blocks of WKV_CHUNK_THREADS).
     */
    static String wkvForwardKernel(int n, boolean bf16Inputs) {
        if (bf16Inputs && (n == 32 || n == 64)) return "wkv5t_forward_n" + n + "_bf16";
        return "wkv5c_forward_n" + n + (bf16Inputs ? "_bf16" : "_f32");
    }

    /** The chunked backward kernel, chosen as {@link #wkvForwardKernel} is (the states and reduce kernels are shared). */
    static String wkvBackwardKernel(int n, boolean bf16Inputs) {
        if (bf16Inputs && (n == 32 || n == 64)) return "wkv5t_backward_n" + n + "_bf16";
        return "wkv5c_backward_n" + n + (bf16Inputs ? "_bf16" : "_f32");
    }

    /** A WKV input: bf16 where the kernel takes bf16, else fp32. */
    private static CudaTensor in(Tensor x, boolean bf16) {
        return bf16 ? anyDtype(x) : t(x);
    }

    /** Blocks per head of the chunked kernels: one per tile of min(N, 16) value columns (Wkv5cTile in wkv5_chunked.cu). */
    static int wkvTiles(int n) { return n / Math.min(n, 16); }

    @Override
    public void wkvBackward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state0, Tensor dy,
                            Tensor dState, Tensor dr, Tensor dk, Tensor dv, Tensor dw, Tensor du) {
        int n = checkWkv(r, k, v, w, u, state0, dy);
        sameSize(state0, dState, "wkvBackward dState");
        for (Tensor g : new Tensor[]{dr, dk, dv}) sameSize(r, g, "wkvBackward dr/dk/dv");
        sameSize(w, dw, "wkvBackward dw");
        sameSize(w, du, "wkvBackward du");
        int steps = r.rows(), heads = w.dim(0), c = r.cols();
        if (steps == 0) return;
        if (bf16Wkv(r, k, v, u)) {
            if (tensorCoreWkv(n)) {
                wkvBackwardChunked(n, true, steps, heads, c, r, k, v, w, u, state0, dy, dState, dr, dk, dv, dw, du);
                return;
            }
            Tensor[] in = widenWkv(r, k, v, u);
            try {
                wkvBackward(in[0], in[1], in[2], w, in[3], state0, dy, dState, dr, dk, dv, dw, du);
            } finally {
                for (Tensor x : in) x.close();
            }
            return;
        }
        if (wkvImpl.chunked(steps, n, WKV_CHUNKED_MIN_STEPS)) {
            wkvBackwardChunked(n, false, steps, heads, c, r, k, v, w, u, state0, dy, dState, dr, dk, dv, dw, du);
            return;
        }
        // The state scan reads dState = dL/dS_T, so it runs before the reverse scan turns dState into dL/dS_0.
        k("wkv5", "wkv5_backward_state_scan_n" + n).launch(heads, n, 0, steps, c,
                t(r), t(k), t(v), t(w), t(u), t(state0), t(dy), t(dState), t(dr), t(dw), t(du));
        k("wkv5", "wkv5_backward_reverse_scan_n" + n).launch(heads, 2 * n, 0, steps, c,
                t(r), t(k), t(v), t(w), t(u), t(dy), t(dState), t(dk), t(dv));
    }

    /**
     * Chunked backward: the state at every chunk's start, then the chunks in reverse per (head, value tile), then the
     * per-tile parts of dr, dk, dw, du summed in tile order (deterministic: no atomics). Scratch: the states are N/16
     * times one [T, C] activation and the parts 2 N/16 times (at N = 64: 4 and 8 activations, 6 GiB at T = 32768, C = 4096).
     */
    private void wkvBackwardChunked(int n, boolean bf16, int steps, int heads, int c, Tensor r, Tensor k, Tensor v, Tensor w, Tensor u,
                                    Tensor state0, Tensor dy, Tensor dState, Tensor dr, Tensor dk, Tensor dv, Tensor dw, Tensor du) {
        int tiles = wkvTiles(n), chunks = (steps + KernelSources.WKV_CHUNK_LEN - 1) / KernelSources.WKV_CHUNK_LEN;
        int blocks = heads * tiles, threads = KernelSources.WKV_CHUNK_THREADS;
        try (Tensor states = new CudaTensor(this, new int[]{heads, chunks, n * n});
             Tensor grp = new CudaTensor(this, new int[]{tiles, steps, c}); Tensor gkp = new CudaTensor(this, new int[]{tiles, steps, c});
             Tensor dwp = new CudaTensor(this, new int[]{tiles, c}); Tensor dup = new CudaTensor(this, new int[]{tiles, c})) {
            k("wkv5_chunked", "wkv5c_states_n" + n + (bf16 ? "_bf16" : "_f32")).launch(blocks, threads, 0, steps, c,
                    in(k, bf16), in(v, bf16), t(w), t(state0), t(states));
            k("wkv5_chunked", wkvBackwardKernel(n, bf16)).launch(blocks, threads, 0, steps, c, in(r, bf16), in(k, bf16), in(v, bf16),
                    t(w), in(u, bf16), t(dy), t(states), t(dState), t(dv), t(grp), t(gkp), t(dwp), t(dup));
            long tc = (long) steps * c;
            int grid = (int) Math.min((tc + THREADS - 1) / THREADS, 65535);
            k("wkv5_chunked", "wkv5c_reduce").launch(grid, THREADS, 0, tiles, tc, c, t(grp), t(gkp), t(dwp), t(dup),
                    t(dr), t(dk), t(dw), t(du));
        }
    }

    // ---------------------------------------------------------------- elementwise
    @Override public void silu(Tensor x, Tensor out) { sameSize(x, out, "silu"); elementwise("silu_f32", x.size(), t(x), t(out), x.size()); }

    @Override
    public void siluBackward(Tensor x, Tensor dOut, Tensor dx) {
        sameSize(x, dOut, "siluBackward"); sameSize(x, dx, "siluBackward dx");
        elementwise("silu_backward_f32", x.size(), t(x), t(dOut), t(dx), x.size());
    }

    @Override public void sigmoid(Tensor x, Tensor out) { sameSize(x, out, "sigmoid"); elementwise("sigmoid_f32", x.size(), t(x), t(out), x.size()); }

    @Override
    public void sigmoidBackward(Tensor s, Tensor dOut, Tensor dx) {
        sameSize(s, dOut, "sigmoidBackward"); sameSize(s, dx, "sigmoidBackward dx");
        elementwise("sigmoid_backward_f32", s.size(), t(s), t(dOut), t(dx), s.size());
    }

    @Override
    public void reluSquare(Tensor x, Tensor out) {
        sameSize(x, out, "reluSquare");
        elementwise("relu_square_f32", x.size(), t(x), t(out), x.size());
    }

    @Override
    public void reluSquareBackward(Tensor x, Tensor dOut, Tensor dx) {
        sameSize(x, dOut, "reluSquareBackward"); sameSize(x, dx, "reluSquareBackward dx");
        elementwise("relu_square_backward_f32", x.size(), t(x), t(dOut), t(dx), x.size());
    }

    @Override
    public void mul(Tensor a, Tensor b, Tensor out) {
        sameSize(a, b, "mul");
        sameSize(a, out, "mul");
        elementwise("mul_f32", a.size(), t(a), t(b), t(out), a.size());
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        sameSize(a, b, "add");
        sameSize(a, out, "add");
        elementwise("add_f32", a.size(), t(a), t(b), t(out), a.size());
    }

    @Override public void scale(Tensor x, float s) { elementwise("scale_f32", x.size(), t(x), s, x.size()); }

    /** Deterministic: fixed per-block partial sums in double on the device, added in block order on the host. */
    @Override
    public double sumOfSquares(Tensor x) {
        long n = x.size();
        if (n == 0) return 0;
        int grid = (int) Math.min(KernelSources.SUMSQ_MAX_BLOCKS, (n + KernelSources.SUMSQ_THREADS - 1) / KernelSources.SUMSQ_THREADS);
        long partial = memory.alloc(grid * 8L);
        try {
            k("elementwise", "sum_squares_partial_f32").launch(grid, KernelSources.SUMSQ_THREADS, 0, t(x), partial, n);
            double total = 0;
            for (double p : downloadDoubles(partial, grid)) total += p;
            return total;
        } finally {
            memory.free(partial, grid * 8L);
        }
    }

    // ---------------------------------------------------------------- optimizer
    @Override
    public double adamwStep(Tensor param, Tensor grad, float gradScale, Tensor m, Tensor v, float lr, float beta1, float beta2,
                            float eps, float weightDecay, long step) {
        sameSize(param, grad, "adamw");
        sameSize(param, m, "adamw");
        sameSize(param, v, "adamw");
        // the same host-side constants as CpuBackend.adamwStep
        double bc1 = 1 - Math.pow(beta1, step), bc2 = 1 - Math.pow(beta2, step);
        float stepSize = (float) (lr / bc1), bc2Sqrt = (float) Math.sqrt(bc2), decay = 1f - lr * weightDecay;
        elementwise("adamw_f32", param.size(), t(param), t(grad), gradScale, t(m), t(v), beta1, beta2, eps, stepSize, bc2Sqrt, decay, param.size());
        return sumOfSquares(param);
    }

    // ---------------------------------------------------------------- loss
    @Override
    public double crossEntropy(Tensor logits, int[] targets, float[] weights, float l2WrapFactor, Tensor dLogits) {
        int rows = logits.rows(), vocab = logits.cols();
        if (targets.length != rows || weights.length != rows) {
            throw new IllegalArgumentException("crossEntropy: " + rows + " rows, " + targets.length + " targets, " + weights.length + " weights");
        }
        for (int target : targets) {
            if (target >= vocab) throw new IllegalArgumentException("target id " + target + " is outside the vocabulary 0.." + (vocab - 1));
        }
        if (dLogits != null) sameSize(logits, dLogits, "crossEntropy");
        for (int t = 0; t < rows; t++) {
            if (!Float.isFinite(weights[t])) throw new IllegalArgumentException("crossEntropy: weight " + weights[t] + " at row " + t);
        }
        if (rows == 0) return 0;
        long dTargets = uploadInts(targets);
        long dWeights = memory.alloc(rows * 4L);
        long dLoss = memory.alloc(rows * 8L);
        try {
            uploadFloats(weights, 0, rows, dWeights);
            k("loss", "cross_entropy_f32").launch(rows, KernelSources.CE_THREADS, 0, t(logits), dLogits == null ? null : t(dLogits),
                    dTargets, dWeights, l2WrapFactor, vocab, dLoss);
            double total = 0;
            for (double d : downloadDoubles(dLoss, rows)) total += d;
            return total;
        } finally {
            memory.free(dTargets, Math.max(rows, 1) * 4L);
            memory.free(dWeights, rows * 4L);
            memory.free(dLoss, rows * 8L);
        }
    }
}
