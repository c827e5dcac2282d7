package ai.longrwkv.core.backend.cpu;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.tensor.HostTensor;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;

/**
 * CPU backend: matrix products through OpenBLAS sgemm, everything else in plain Java loops over native memory.
 * The WKV recurrence runs one head per task in parallel (heads are independent); cross-entropy runs rows in parallel.
 */
public final class CpuBackend implements Backend {
    private final AtomicLong live = new AtomicLong();
    private final AtomicLong peak = new AtomicLong();
    /**
     * Freed native buffers by element count, handed out again by {@link #zeros}. Every chunk allocates the same
     * activation shapes, and fresh native memory costs a page fault per 4 KiB on first touch: without this pool,
     * allocation took 20% of a forward+backward step of a 0.1B model.
     */
    private final java.util.Map<Long, java.util.ArrayDeque<FloatPointer>> pool = new java.util.HashMap<>();
    private long pooledBytes;

    public CpuBackend() {
        // Loading the native library early turns a missing binary into one clear error at start-up.
        openblas.blas_get_num_threads();
    }

    @Override public String name() { return "cpu (OpenBLAS " + openblas.OPENBLAS_VERSION.trim() + ", " + Runtime.getRuntime().availableProcessors() + " cores)"; }

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
    @Override public Tensor zeros(int... shape) { return new CpuTensor(this, shape); }

    @Override
    public Tensor upload(HostTensor host) {
        CpuTensor c = new CpuTensor(this, host.shape());
        c.buf().put(0, host.data(), 0, host.size());
        return c;
    }

    @Override
    public HostTensor download(Tensor x) {
        float[] data = new float[(int) x.size()];
        b(x).get(0, data, 0, data.length);
        return new HostTensor(x.shape(), data);
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        sameSize(src, dst, "copy");
        org.bytedeco.javacpp.Pointer.memcpy(t(dst).ptr(), t(src).ptr(), src.size() * 4L);
    }

    @Override
    public void fill(Tensor x, float value) {
        FloatBuffer o = b(x);
        int n = (int) x.size();
        for (int i = 0; i < n; i++) o.put(i, value);
    }

    // ---------------------------------------------------------------- linear algebra
    @Override
    public void matmul(Tensor a, boolean transA, Tensor bm, boolean transB, Tensor c, float alpha, float beta) {
        int aRows = a.rows(), aCols = a.cols(), bRows = bm.rows(), bCols = bm.cols();
        int m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        int kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (k != kb || c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException("matmul shapes: a" + a.shapeString() + (transA ? "^T" : "") + " @ b"
                    + bm.shapeString() + (transB ? "^T" : "") + " -> c" + c.shapeString());
        }
        openblas.cblas_sgemm(openblas.CblasRowMajor, transA ? openblas.CblasTrans : openblas.CblasNoTrans,
                transB ? openblas.CblasTrans : openblas.CblasNoTrans, m, n, k, alpha,
                t(a).ptr(), aCols, t(bm).ptr(), bCols, beta, t(c).ptr(), n);
    }

    // ---------------------------------------------------------------- embedding
    @Override
    public void embedding(Tensor table, int[] ids, Tensor out) {
        int c = table.cols(), v = table.rows();
        FloatBuffer src = b(table), dst = b(out);
        for (int t = 0; t < ids.length; t++) {
            int id = ids[t];
            if (id < 0 || id >= v) throw new IllegalArgumentException("token id " + id + " at position " + t + " is outside the vocabulary 0.." + (v - 1));
            for (int i = 0; i < c; i++) dst.put(t * c + i, src.get(id * c + i));
        }
    }

    @Override
    public void embeddingBackward(Tensor dOut, int[] ids, Tensor dTable) {
        int c = dTable.cols();
        FloatBuffer src = b(dOut), dst = b(dTable);
        for (int t = 0; t < ids.length; t++) {
            int base = ids[t] * c;
            for (int i = 0; i < c; i++) dst.put(base + i, dst.get(base + i) + src.get(t * c + i));
        }
    }

    // ---------------------------------------------------------------- normalisation
    @Override
    public void norm(Tensor x, Tensor w, Tensor bias, int groups, float eps, Tensor out, Tensor mean, Tensor rstd) {
        int rows = x.rows(), c = x.cols(), g = c / groups;
        FloatBuffer xi = b(x), o = b(out), mu = b(mean), rs = b(rstd);
        float[] wa = array(w), ba = array(bias), row = new float[c];
        for (int r = 0; r < rows; r++) {
            xi.get(r * c, row, 0, c);
            for (int q = 0; q < groups; q++) {
                int base = q * g;
                double sum = 0;
                for (int i = 0; i < g; i++) sum += row[base + i];
                double m = sum / g;
                double var = 0;
                for (int i = 0; i < g; i++) { double d = row[base + i] - m; var += d * d; }
                float s = (float) (1.0 / Math.sqrt(var / g + eps));
                float mf = (float) m;
                for (int i = base; i < base + g; i++) row[i] = (row[i] - mf) * s * wa[i] + ba[i];
                mu.put(r * groups + q, mf);
                rs.put(r * groups + q, s);
            }
            o.put(r * c, row, 0, c);
        }
    }

    @Override
    public void normBackward(Tensor dOut, Tensor x, Tensor w, int groups, Tensor mean, Tensor rstd, Tensor dx, Tensor dw, Tensor db) {
        int rows = x.rows(), c = x.cols(), g = c / groups;
        FloatBuffer dy = b(dOut), xi = b(x), mu = b(mean), rs = b(rstd), dxo = b(dx);
        float[] wa = array(w), dwa = array(dw), dba = array(db);
        float[] xr = new float[c], dyr = new float[c], dxr = new float[c];
        for (int r = 0; r < rows; r++) {
            xi.get(r * c, xr, 0, c);
            dy.get(r * c, dyr, 0, c);
            dxo.get(r * c, dxr, 0, c);
            for (int q = 0; q < groups; q++) {
                int base = q * g;
                float m = mu.get(r * groups + q), s = rs.get(r * groups + q);
                // xhat = (x - m) s; dxhat = dy * w; dx = s * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
                double sumD = 0, sumDX = 0;
                for (int i = base; i < base + g; i++) {
                    float xhat = (xr[i] - m) * s;
                    float dxhat = dyr[i] * wa[i];
                    sumD += dxhat;
                    sumDX += dxhat * xhat;
                    dwa[i] += dyr[i] * xhat;
                    dba[i] += dyr[i];
                }
                float meanD = (float) (sumD / g), meanDX = (float) (sumDX / g);
                for (int i = base; i < base + g; i++) {
                    float xhat = (xr[i] - m) * s;
                    dxr[i] += s * (dyr[i] * wa[i] - meanD - xhat * meanDX);
                }
            }
            dxo.put(r * c, dxr, 0, c);
        }
        b(dw).put(0, dwa, 0, dwa.length);
        b(db).put(0, dba, 0, dba.length);
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
        float[] m = array(mix), shifted = array(prev), cur = new float[c], res = new float[c];
        for (int r = 0; r < rows; r++) {
            x.get(r * c, cur, 0, c);
            for (int i = 0; i < c; i++) res[i] = cur[i] * m[i] + shifted[i] * (1 - m[i]);
            o.put(r * c, res, 0, c);
            float[] t = shifted;
            shifted = cur;
            cur = t;
        }
    }

    @Override
    public void tokenShiftMixBackward(Tensor dOut, Tensor xx, Tensor prev, Tensor mix, Tensor dxx, Tensor dPrev, Tensor dMix) {
        int rows = xx.rows(), c = xx.cols();
        FloatBuffer d = b(dOut), x = b(xx), dx = b(dxx);
        float[] m = array(mix), dm = array(dMix), dp = array(dPrev);
        float[] shifted = array(prev), cur = new float[c], g = new float[c], dxCur = new float[c], dxPrev = new float[c];
        double[] dmAcc = new double[c];
        // row r: out = xx[r] m + sx[r] (1 - m); sx[r] = xx[r-1] (prev for r = 0)
        for (int r = 0; r < rows; r++) {
            x.get(r * c, cur, 0, c);
            d.get(r * c, g, 0, c);
            dx.get(r * c, dxCur, 0, c);
            for (int i = 0; i < c; i++) {
                dmAcc[i] += g[i] * (cur[i] - shifted[i]);
                dxCur[i] += g[i] * m[i];
            }
            if (r == 0) {
                for (int i = 0; i < c; i++) dp[i] += g[i] * (1 - m[i]);
            } else {
                for (int i = 0; i < c; i++) dxPrev[i] += g[i] * (1 - m[i]);
                dx.put((r - 1) * c, dxPrev, 0, c);
            }
            float[] t = dxPrev;
            dxPrev = dxCur;
            dxCur = t;
            t = shifted;
            shifted = cur;
            cur = t;
        }
        dx.put((rows - 1) * c, dxPrev, 0, c);
        for (int i = 0; i < c; i++) dm[i] += (float) dmAcc[i];
        b(dMix).put(0, dm, 0, c);
        b(dPrev).put(0, dp, 0, c);
    }

    @Override
    public void copyRow(Tensor src, int row, Tensor dst) {
        int c = src.cols();
        FloatBuffer s = b(src), o = b(dst);
        for (int i = 0; i < c; i++) o.put(i, s.get(row * c + i));
    }

    @Override
    public void addToRow(Tensor dst, int row, Tensor src) {
        int c = dst.cols();
        FloatBuffer s = b(src), o = b(dst);
        for (int i = 0; i < c; i++) o.put(row * c + i, o.get(row * c + i) + s.get(i));
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

    @Override
    public void wkvForward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state, Tensor y) {
        int heads = w.dim(0), n = w.dim(1), steps = r.rows();
        checkWkv(r, k, v, w, u, state, y);
        boolean chunked = wkvImpl.chunked(steps, WkvChunkedCpu.AUTO_MIN_STEPS);
        IntStream.range(0, heads).parallel().forEach(h -> {
            if (chunked) WkvChunkedCpu.forwardHead(h, n, r.cols(), steps, b(r), b(k), b(v), b(w), b(u), b(state), b(y));
            else WkvCpu.forwardHead(h, n, r.cols(), steps, b(r), b(k), b(v), b(w), b(u), b(state), b(y));
        });
    }

    @Override
    public void wkvBackward(Tensor r, Tensor k, Tensor v, Tensor w, Tensor u, Tensor state0, Tensor dy,
                            Tensor dState, Tensor dr, Tensor dk, Tensor dv, Tensor dw, Tensor du) {
        int heads = w.dim(0), n = w.dim(1), steps = r.rows();
        checkWkv(r, k, v, w, u, state0, dy);
        boolean chunked = wkvImpl.chunked(steps, WkvChunkedCpu.AUTO_MIN_STEPS);
        IntStream.range(0, heads).parallel().forEach(h -> {
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
        Blocks.map(b(x), b(out), x.size(), (xs, o, n) -> {
            for (int i = 0; i < n; i++) {
                float a = Math.max(xs[i], 0f);
                o[i] = a * a;
            }
        });
    }

    @Override
    public void reluSquareBackward(Tensor x, Tensor dOut, Tensor dx) {
        sameSize(x, dOut, "reluSquareBackward");
        Blocks.map(b(x), b(dOut), b(dx), x.size(), (xs, d, o, n) -> {
            for (int i = 0; i < n; i++) o[i] = d[i] * 2f * Math.max(xs[i], 0f);
        });
    }

    @Override
    public void mul(Tensor a, Tensor bt, Tensor out) {
        sameSize(a, bt, "mul");
        sameSize(a, out, "mul");
        Blocks.map(b(a), b(bt), b(out), a.size(), (x, y, o, n) -> {
            for (int i = 0; i < n; i++) o[i] = x[i] * y[i];
        });
    }

    @Override
    public void add(Tensor a, Tensor bt, Tensor out) {
        sameSize(a, bt, "add");
        sameSize(a, out, "add");
        Blocks.map(b(a), b(bt), b(out), a.size(), (x, y, o, n) -> {
            for (int i = 0; i < n; i++) o[i] = x[i] + y[i];
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
        double[] total = {0};
        Blocks.map(b(x), b(x), x.size(), (xs, o, n) -> {
            double part = 0;
            for (int i = 0; i < n; i++) part += (double) xs[i] * xs[i];
            total[0] += part;
            System.arraycopy(xs, 0, o, 0, n);
        });
        return total[0];
    }

    // ---------------------------------------------------------------- optimizer
    @Override
    public void adamwStep(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                          float weightDecay, long step) {
        sameSize(param, grad, "adamw");
        sameSize(param, m, "adamw");
        sameSize(param, v, "adamw");
        double bc1 = 1 - Math.pow(beta1, step), bc2 = 1 - Math.pow(beta2, step);
        float stepSize = (float) (lr / bc1), bc2Sqrt = (float) Math.sqrt(bc2), decay = 1f - lr * weightDecay;
        FloatBuffer pb = b(param), gb = b(grad), mb = b(m), vb = b(v);
        long size = param.size();
        float[] p = new float[Blocks.SIZE], g = new float[Blocks.SIZE], mm = new float[Blocks.SIZE], vv = new float[Blocks.SIZE];
        for (long off = 0; off < size; off += Blocks.SIZE) {
            int n = (int) Math.min(Blocks.SIZE, size - off), o = (int) off;
            pb.get(o, p, 0, n);
            gb.get(o, g, 0, n);
            mb.get(o, mm, 0, n);
            vb.get(o, vv, 0, n);
            for (int i = 0; i < n; i++) {
                float gi = g[i];
                mm[i] = beta1 * mm[i] + (1 - beta1) * gi;
                vv[i] = beta2 * vv[i] + (1 - beta2) * gi * gi;
                float denom = (float) Math.sqrt(vv[i]) / bc2Sqrt + eps;
                p[i] = p[i] * decay - stepSize * mm[i] / denom;
            }
            pb.put(o, p, 0, n);
            mb.put(o, mm, 0, n);
            vb.put(o, vv, 0, n);
        }
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
        IntStream.range(0, rows).parallel().forEach(r ->
                perRow[r] = CrossEntropyCpu.row(in, out, r * vocab, vocab, targets[r], weights[r], l2WrapFactor));
        return Arrays.stream(perRow).sum();
    }
}
