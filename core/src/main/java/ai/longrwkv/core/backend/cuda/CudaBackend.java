package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.javacpp.FloatPointer;

import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

import static org.bytedeco.cuda.global.cublas.*;

/**
 * The {@link Backend} on one NVIDIA GPU: fp32 tensors in device memory, matrix products through cuBLAS sgemm (fp32
 * math, no TF32, so results stay within 1e-4 of the CPU backend), every other op a kernel from this package's
 * {@code .cu} sources (see {@link CudaKernels}). All work goes to the legacy default stream, so operations run in
 * call order and a download sees every earlier write.
 *
 * <p>Create it through {@link ai.longrwkv.core.backend.Backends}, never directly from code that must also run on
 * machines without a driver: loading this class loads the CUDA libraries.
 */
public final class CudaBackend implements Backend {
    /** Head sizes with a compiled WKV kernel (wkv5.cu instantiates these). */
    static final Set<Integer> WKV_HEAD_SIZES = Set.of(1, 2, 4, 8, 16, 32, 64);
    private static final int THREADS = 256;
    private static final int SUMSQ_BLOCKS = 256;
    private static final int CE_THREADS = 1024;

    final CudaContext cx;
    private final CudaKernels kernels;
    private final cublasContext blas = new cublasContext();
    private final FloatPointer alphaCell = new FloatPointer(1), betaCell = new FloatPointer(1);
    private final AtomicLong live = new AtomicLong(), peak = new AtomicLong();
    private boolean closed;

    /** Device 0 (or -Dlongrwkv.cuda.device=N). */
    public CudaBackend() {
        this(Integer.getInteger("longrwkv.cuda.device", 0));
    }

    public CudaBackend(int ordinal) {
        cx = new CudaContext(ordinal);
        kernels = new CudaKernels(cx);
        check(cublasCreate_v2(blas), "cublasCreate");
        // Pedantic fp32: no TF32 tensor-core shortcut, whatever NVIDIA_TF32_OVERRIDE says, so parity with the CPU holds.
        check(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    }

    private static void check(int cublasStatus, String what) {
        if (cublasStatus != CUBLAS_STATUS_SUCCESS) {
            throw new IllegalStateException(what + " failed: cuBLAS status " + cublasStatus + " (" + cublasGetStatusString(cublasStatus).getString() + ")");
        }
    }

    @Override
    public String name() {
        return "cuda (" + cx.deviceName + ", " + cx.arch() + ", " + cx.smCount + " SMs, " + (cx.totalMemory >> 20) + " MiB, driver "
                + cx.driverVersion / 1000 + "." + (cx.driverVersion % 1000) / 10 + ", NVRTC " + CudaKernels.nvrtcVersionString()
                + ", kernels " + kernels.origin + ")";
    }

    /** Waits until the device has finished all queued work (for timing). */
    public void synchronize() { cx.synchronize("synchronize()"); }

    void track(long bytes) {
        long now = live.addAndGet(bytes);
        peak.accumulateAndGet(now, Math::max);
    }

    @Override public long liveBytes() { return live.get(); }
    @Override public long peakBytes() { return peak.get(); }
    @Override public void resetPeakBytes() { peak.set(live.get()); }

    /** Device bytes held in the reuse pool. */
    public long pooledBytes() { return cx.pooledBytes(); }

    /** Returns the pool's memory to the driver. */
    public void trimPool() { cx.trimPool(); }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        cx.makeCurrent();
        cublasDestroy_v2(blas);
        alphaCell.close();
        betaCell.close();
        cx.close();
    }

    private static CudaTensor t(Tensor x) {
        if (!(x instanceof CudaTensor c)) throw new IllegalArgumentException("not a CUDA tensor: " + x);
        return c;
    }

    private static void sameSize(Tensor a, Tensor b, String op) {
        if (a.size() != b.size()) throw new IllegalArgumentException(op + ": sizes differ " + a.shapeString() + " vs " + b.shapeString());
    }

    private CudaKernels.Kernel k(String module, String fn) { return kernels.get(module, fn); }

    private static int blocks(long n) { return (int) Math.max(1, Math.min((n + THREADS - 1) / THREADS, 1L << 20)); }

    /** A grid-stride elementwise kernel over n elements. */
    private void elementwise(String fn, long n, Object... args) {
        if (n == 0) return;
        k("elementwise", fn).launch(blocks(n), THREADS, 0, args);
    }

    // ---------------------------------------------------------------- memory
    @Override
    public Tensor zeros(int... shape) {
        CudaTensor c = new CudaTensor(this, shape);
        cx.zero(c.ptr(), c.size());
        return c;
    }

    @Override
    public Tensor upload(HostTensor host) {
        CudaTensor c = new CudaTensor(this, host.shape());
        cx.upload(host.data(), 0, host.size(), c.ptr());
        return c;
    }

    @Override
    public HostTensor download(Tensor x) {
        float[] data = new float[Math.toIntExact(x.size())];
        cx.download(t(x).ptr(), data, 0, data.length);
        return new HostTensor(x.shape(), data);
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        sameSize(src, dst, "copy");
        cx.copy(t(src).ptr(), t(dst).ptr(), src.size() * 4L);
    }

    @Override
    public void fill(Tensor x, float value) {
        elementwise("fill_f32", x.size(), t(x), value, x.size());
    }

    /** Scratch device memory for int or float side inputs (ids, targets); freed to the pool after the op's launch. */
    private long uploadInts(int[] values) {
        long p = cx.alloc(Math.max(values.length, 1) * 4L);
        cx.upload(values, p);
        return p;
    }

    // ---------------------------------------------------------------- linear algebra
    /**
     * Row-major C[m,n] = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a row-major matrix with leading dimension
     * cols is, read column-major, its own transpose. So B goes first with its own transpose flag, then A.
     */
    @Override
    public synchronized void matmul(Tensor a, boolean transA, Tensor bm, boolean transB, Tensor c, float alpha, float beta) {
        int aRows = a.rows(), aCols = a.cols(), bRows = bm.rows(), bCols = bm.cols();
        int m = transA ? aCols : aRows, kk = transA ? aRows : aCols;
        int kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (kk != kb || c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException("matmul shapes: a" + a.shapeString() + (transA ? "^T" : "") + " @ b"
                    + bm.shapeString() + (transB ? "^T" : "") + " -> c" + c.shapeString());
        }
        if (m == 0 || n == 0) return;
        if (kk == 0) {   // cuBLAS would still apply beta; do the same explicitly
            scale(c, beta);
            return;
        }
        cx.makeCurrent();
        alphaCell.put(0, alpha);
        betaCell.put(0, beta);
        check(cublasSgemm_v2(blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, kk,
                alphaCell, new CudaContext.DeviceFloats(t(bm).ptr()), bCols,
                new CudaContext.DeviceFloats(t(a).ptr()), aCols, betaCell,
                new CudaContext.DeviceFloats(t(c).ptr()), n), "cublasSgemm");
    }

    // ---------------------------------------------------------------- embedding
    @Override
    public void embedding(Tensor table, int[] ids, Tensor out) {
        int c = table.cols(), v = table.rows();
        for (int t = 0; t < ids.length; t++) {
            int id = ids[t];
            if (id < 0 || id >= v) throw new IllegalArgumentException("token id " + id + " at position " + t + " is outside the vocabulary 0.." + (v - 1));
        }
        if (out.size() < (long) ids.length * c) throw new IllegalArgumentException("embedding: out " + out.shapeString() + " too small for " + ids.length + " x " + c);
        if (ids.length == 0) return;
        long dIds = uploadInts(ids);
        try {
            k("elementwise", "embedding_f32").launch(blocks((long) ids.length * c), THREADS, 0, t(table), dIds, t(out), ids.length, c);
        } finally {
            cx.free(dIds, Math.max(ids.length, 1) * 4L);
        }
    }

    @Override
    public void embeddingBackward(Tensor dOut, int[] ids, Tensor dTable) {
        int c = dTable.cols(), v = dTable.rows();
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] < 0 || ids[t] >= v) throw new IllegalArgumentException("token id " + ids[t] + " at position " + t + " is outside the vocabulary 0.." + (v - 1));
        }
        if (ids.length == 0) return;
        long dIds = uploadInts(ids);
        try {
            k("elementwise", "embedding_backward_f32").launch(blocks(c), THREADS, 0, t(dOut), dIds, t(dTable), ids.length, c);
        } finally {
            cx.free(dIds, Math.max(ids.length, 1) * 4L);
        }
    }

    // ---------------------------------------------------------------- normalisation
    /** Threads per (row, group) block: a power of two (the kernels' tree reduction needs one), at most 256. */
    private static int normThreads(int groupSize) {
        int t = 32;
        while (t < groupSize && t < 256) t <<= 1;
        return t;
    }

    @Override
    public void norm(Tensor x, Tensor w, Tensor b, int groups, float eps, Tensor out, Tensor mean, Tensor rstd) {
        int rows = x.rows(), c = x.cols();
        if (c % groups != 0) throw new IllegalArgumentException("norm: " + c + " columns do not split into " + groups + " groups");
        if ((long) rows * groups == 0) return;
        k("norm", "norm_forward_f32").launch(rows * groups, normThreads(c / groups), 0,
                t(x), t(w), t(b), t(out), t(mean), t(rstd), c, groups, eps);
    }

    @Override
    public void normBackward(Tensor dOut, Tensor x, Tensor w, int groups, Tensor mean, Tensor rstd, Tensor dx, Tensor dw, Tensor db) {
        int rows = x.rows(), c = x.cols();
        if (c % groups != 0) throw new IllegalArgumentException("norm: " + c + " columns do not split into " + groups + " groups");
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
        elementwise("token_shift_mix_f32", (long) rows * c, t(xx), t(prev), t(mix), t(out), rows, c);
    }

    @Override
    public void tokenShiftMixBackward(Tensor dOut, Tensor xx, Tensor prev, Tensor mix, Tensor dxx, Tensor dPrev, Tensor dMix) {
        int rows = xx.rows(), c = xx.cols();
        if (rows == 0) return;
        k("elementwise", "token_shift_mix_backward_params_f32").launch(blocks(c), THREADS, 0,
                t(dOut), t(xx), t(prev), t(mix), t(dPrev), t(dMix), rows, c);
        elementwise("token_shift_mix_backward_dx_f32", (long) rows * c, t(dOut), t(mix), t(dxx), rows, c);
    }

    @Override
    public void copyRow(Tensor src, int row, Tensor dst) {
        int c = src.cols();
        cx.copy(t(src).ptr((long) row * c), t(dst).ptr(), c * 4L);
    }

    @Override
    public void addToRow(Tensor dst, int row, Tensor src) {
        int c = dst.cols();
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

    @Override
    public void wkvForward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state, Tensor y) {
        int n = checkWkv(r, k, v, w, u, state, y);
        int steps = r.rows();
        if (steps == 0) return;
        k("wkv5", "wkv5_forward_n" + n).launch(w.dim(0), n, 0, steps, r.cols(), t(r), t(k), t(v), t(w), t(u), t(state), t(y));
    }

    @Override
    public void wkvBackward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state0, Tensor dy,
                            Tensor dState, Tensor dr, Tensor dk, Tensor dv, Tensor dw, Tensor du) {
        int n = checkWkv(r, k, v, w, u, state0, dy);
        int steps = r.rows(), heads = w.dim(0), c = r.cols();
        if (steps == 0) return;
        // The state scan reads dState = dL/dS_T, so it runs before the reverse scan turns dState into dL/dS_0.
        k("wkv5", "wkv5_backward_state_scan_n" + n).launch(heads, n, 0, steps, c,
                t(r), t(k), t(v), t(w), t(u), t(state0), t(dy), t(dState), t(dr), t(dw), t(du));
        k("wkv5", "wkv5_backward_reverse_scan_n" + n).launch(heads, 2 * n, 0, steps, c,
                t(r), t(k), t(v), t(w), t(u), t(dy), t(dState), t(dk), t(dv));
    }

    // ---------------------------------------------------------------- elementwise
    @Override public void silu(Tensor x, Tensor out) { sameSize(x, out, "silu"); elementwise("silu_f32", x.size(), t(x), t(out), x.size()); }

    @Override
    public void siluBackward(Tensor x, Tensor dOut, Tensor dx) {
        sameSize(x, dOut, "siluBackward");
        elementwise("silu_backward_f32", x.size(), t(x), t(dOut), t(dx), x.size());
    }

    @Override public void sigmoid(Tensor x, Tensor out) { sameSize(x, out, "sigmoid"); elementwise("sigmoid_f32", x.size(), t(x), t(out), x.size()); }

    @Override
    public void sigmoidBackward(Tensor s, Tensor dOut, Tensor dx) {
        sameSize(s, dOut, "sigmoidBackward");
        elementwise("sigmoid_backward_f32", s.size(), t(s), t(dOut), t(dx), s.size());
    }

    @Override
    public void reluSquare(Tensor x, Tensor out) {
        sameSize(x, out, "reluSquare");
        elementwise("relu_square_f32", x.size(), t(x), t(out), x.size());
    }

    @Override
    public void reluSquareBackward(Tensor x, Tensor dOut, Tensor dx) {
        sameSize(x, dOut, "reluSquareBackward");
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
        int grid = (int) Math.min(SUMSQ_BLOCKS, (n + THREADS - 1) / THREADS);
        long partial = cx.alloc(grid * 8L);
        try {
            k("elementwise", "sum_squares_partial_f32").launch(grid, THREADS, 0, t(x), partial, n);
            double total = 0;
            for (double p : cx.downloadDoubles(partial, grid)) total += p;
            return total;
        } finally {
            cx.free(partial, grid * 8L);
        }
    }

    // ---------------------------------------------------------------- optimizer
    @Override
    public void adamwStep(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                          float weightDecay, long step) {
        sameSize(param, grad, "adamw");
        sameSize(param, m, "adamw");
        sameSize(param, v, "adamw");
        // the same host-side constants as CpuBackend.adamwStep
        double bc1 = 1 - Math.pow(beta1, step), bc2 = 1 - Math.pow(beta2, step);
        float stepSize = (float) (lr / bc1), bc2Sqrt = (float) Math.sqrt(bc2), decay = 1f - lr * weightDecay;
        elementwise("adamw_f32", param.size(), t(param), t(grad), t(m), t(v), beta1, beta2, eps, stepSize, bc2Sqrt, decay, param.size());
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
        if (rows == 0) return 0;
        long dTargets = uploadInts(targets);
        long dWeights = cx.alloc(rows * 4L);
        long dLoss = cx.alloc(rows * 8L);
        try {
            cx.upload(weights, 0, rows, dWeights);
            k("loss", "cross_entropy_f32").launch(rows, CE_THREADS, 0, t(logits), dLogits == null ? null : t(dLogits),
                    dTargets, dWeights, l2WrapFactor, vocab, dLoss);
            double total = 0;
            for (double d : cx.downloadDoubles(dLoss, rows)) total += d;
            return total;
        } finally {
            cx.free(dTargets, Math.max(rows, 1) * 4L);
            cx.free(dWeights, rows * 4L);
            cx.free(dLoss, rows * 8L);
        }
    }
}
