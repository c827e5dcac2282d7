package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.nio.FloatBuffer;

/**
 * The WKV5 recurrence in chunked form (rwkv5-spec.md §6), forward and backward, with the same contract as
 * {@link WkvCpu} (initial state in, final state out, dL/dS_T in, dL/dS_0 out; dr, dk, dv overwritten, dw, du
 * accumulated). Index convention: i = key channel, j = value channel, S[i][j] at i*N + j.
 *
 * <p>Inside a chunk of L tokens starting from state S (local times t, s = 0..L-1):
 * <pre>
 *   y_t   = (r_t (.) w^t)^T S  +  sum_{s<=t} A[t][s] v_s,     A[t][s] = sum_i r_t[i] k_s[i] w_i^(t-1-s)  (s < t)
 *                                                               A[t][t] = sum_i r_t[i] u_i k_t[i]
 *   S_L   = diag(w^L) S  +  sum_s (k_s (.) w^(L-1-s)) v_s^T
 * </pre>
 * so a chunk is a few small matrix products and only S passes from chunk to chunk. Every power of w that appears has
 * an exponent in 0..L (and the derivative d w^d / dw = d w^(d-1) one in 0..L-1): nothing is divided by w, so decays
 * from w ~ 1e-9 (time_decay +3) to w ~ 1 (time_decay -8) are all safe. The intra-chunk matrix A is built pair by pair
 * from a table of powers instead of the factorised (r w^t)(k w^-s) form, whose w^-s overflows for fast decays
 * (flash-linear-attention splits its chunk into sub-chunks for the same reason; at L = 16 the pairwise part is a small
 * share of the work). Powers below the smallest normal float are flushed to zero: they multiply terms that are at
 * least 1e38 times smaller than the leading ones, and subnormal arithmetic is slow.
 *
 * <p>All sums run in a fixed order in every code path (vector lanes hold different output elements, or partial sums
 * that are then added lane by lane in a fixed order: never reduceLanes), so the results are bit-identical across runs,
 * thread counts and JIT warm-up.
 *
 * <p>Where the time goes (N = 64, L = 16): per token the state products cost 2 N^2 fused multiply-adds forward and
 * 5 N^2 backward (the backward recomputes the chunk-start states); they run as register-tiled micro-kernels
 * ({@link #gemm}) at about 85% of the FMA units' peak, and are about half of the time. The rest is the pairwise
 * intra-chunk part, the per-token terms and the few transposes of chunk-sized blocks.
 */
final class WkvChunkedCpu {
    private WkvChunkedCpu() { }

    /**
     * Tokens per chunk. Measured at N = 64, T = 1024, one head, best of 40 runs (AMD EPYC, 256-bit vectors): forward +
     * backward 1.76 ms at 16, 1.74-1.84 at 32, 2.2-2.4 at 64 (the pairwise intra-chunk part grows with L, the state
     * products do not).
     */
    static final int CHUNK = 16;

    /** With -Dlongrwkv.wkv=auto the backend runs this form from this many tokens on (measured: see CpuBackend). */
    static final int AUTO_MIN_STEPS = 64;

    private static final VectorSpecies<Float> SPECIES = CpuMath.SPECIES;   // the backend's one vector shape (see there)
    private static final int LANES = SPECIES.length();

    /** Decay powers of one head for chunks of at most {@code chunk} tokens; w is constant over time. */
    static final class Powers {
        final int n, chunk;
        /** pow[d*n + i] = w_i^d, d = 0..chunk. */
        final float[] pow;
        /** dpow[d*n + i] = d w_i^(d-1) (the derivative of w_i^d), d = 0..chunk. */
        final float[] dpow;
        /** rev[i*revLd + x] = w_i^(chunk-1-x) for x < chunk, 0 for x >= chunk (so that A's upper triangle comes out 0). */
        final float[] rev;
        final int revLd;

        Powers(float[] w, int n, int chunk) {
            this.n = n;
            this.chunk = chunk;
            pow = new float[(chunk + 1) * n];
            dpow = new float[(chunk + 1) * n];
            revLd = chunk + 2 * LANES;           // attentionLanes4 reads up to 3 + LANES - 1 past the chunk
            rev = new float[n * revLd];
            for (int i = 0; i < n; i++) {
                double p = 1.0, prev = 0.0;      // w^d and w^(d-1) in double: each table entry is one rounding
                for (int d = 0; d <= chunk; d++) {
                    pow[d * n + i] = normal(p);
                    dpow[d * n + i] = normal(d * prev);
                    if (d < chunk) rev[i * revLd + chunk - 1 - d] = normal(p);
                    prev = p;
                    p *= w[i];
                }
            }
        }

        private static float normal(double x) {
            float f = (float) x;
            return Math.abs(f) < Float.MIN_NORMAL ? 0f : f;
        }
    }

    /** Scratch arrays for one head, sized for the longest chunk. */
    private static final class Work {
        final int n, chunk, ld;
        final float[] rc, kc, vc, gy, yc, rt, kt, kT, att, dA, vT, gv, gr, gk;
        /** This chunk's parts of dw and du, summed in double: dw is a sum of many terms that largely cancel. */
        final double[] dwChunk, duChunk;
        final float[] dwRow = new float[LANES], lanes = new float[LANES];
        /** gTt[t][i] = (S gy_t)[i], hTt[t][i] = (D v_t)[i]; gvT, ktT: gv and kt transposed ([j or i][t], row length ld). */
        final float[] gTt, hTt, gvT, ktT;
        /** Row sums of D (.) S. */
        final double[] dsRow;

        Work(int n, int chunk) {
            this.n = n;
            this.chunk = chunk;
            ld = chunk + LANES;                          // row length of every [.][chunk] array, padded for vector reads
            int ln = chunk * n;
            rc = new float[ln]; kc = new float[ln]; vc = new float[ln]; gy = new float[ln]; yc = new float[ln];
            rt = new float[ln]; kt = new float[ln]; gv = new float[ln];
            gr = new float[ln]; gk = new float[ln];
            kT = new float[n * ld]; vT = new float[n * ld];
            gvT = new float[n * ld]; ktT = new float[n * ld];
            att = new float[chunk * ld]; dA = new float[chunk * ld];
            dwChunk = new double[n]; duChunk = new double[n];
            gTt = new float[ln]; hTt = new float[ln]; dsRow = new double[n];
        }

        void load(FloatBuffer src, float[] dst, int t0, int len, int c, int col) {
            for (int t = 0; t < len; t++) src.get((t0 + t) * c + col, dst, t * n, n);
        }
    }

    static void forwardHead(int h, int n, int c, int steps, FloatBuffer r, FloatBuffer k, FloatBuffer v, FloatBuffer w,
                            FloatBuffer u, FloatBuffer state, FloatBuffer y) {
        forwardHead(h, n, c, steps, r, k, v, w, u, state, y, CHUNK);
    }

    static void forwardHead(int h, int n, int c, int steps, FloatBuffer r, FloatBuffer k, FloatBuffer v, FloatBuffer w,
                            FloatBuffer u, FloatBuffer state, FloatBuffer y, int chunk) {
        int nn = n * n, col = h * n;
        float[] s = new float[nn];
        state.get(h * nn, s, 0, nn);
        float[] ww = new float[n], uu = new float[n];
        w.get(col, ww, 0, n);
        u.get(col, uu, 0, n);
        Powers p = new Powers(ww, n, chunk);
        Work wk = new Work(n, chunk);
        for (int t0 = 0; t0 < steps; t0 += chunk) {
            int len = Math.min(chunk, steps - t0);
            wk.load(r, wk.rc, t0, len, c, col);
            wk.load(k, wk.kc, t0, len, c, col);
            wk.load(v, wk.vc, t0, len, c, col);
            scaledInputs(wk, p, len);
            attention(wk, p, uu, len);
            gemmSet(len, n, n, wk.rt, n, s, n, wk.yc, n);             // y  = (r (.) w^t) S
            gemmAcc(len, n, len, wk.att, wk.ld, wk.vc, n, wk.yc, n);   // y += A v
            for (int t = 0; t < len; t++) y.put((t0 + t) * c + col, wk.yc, t * n, n);
            advanceState(wk, p, s, len);
        }
        state.put(h * nn, s, 0, nn);
    }

    static void backwardHead(int h, int n, int c, int steps, FloatBuffer r, FloatBuffer k, FloatBuffer v, FloatBuffer w,
                             FloatBuffer u, FloatBuffer state0, FloatBuffer dy, FloatBuffer dState,
                             FloatBuffer dr, FloatBuffer dk, FloatBuffer dv, FloatBuffer dw, FloatBuffer du) {
        backwardHead(h, n, c, steps, r, k, v, w, u, state0, dy, dState, dr, dk, dv, dw, du, CHUNK);
    }

    static void backwardHead(int h, int n, int c, int steps, FloatBuffer r, FloatBuffer k, FloatBuffer v, FloatBuffer w,
                             FloatBuffer u, FloatBuffer state0, FloatBuffer dy, FloatBuffer dState,
                             FloatBuffer dr, FloatBuffer dk, FloatBuffer dv, FloatBuffer dw, FloatBuffer du, int chunk) {
        int nn = n * n, col = h * n;
        float[] ww = new float[n], uu = new float[n];
        w.get(col, ww, 0, n);
        u.get(col, uu, 0, n);
        Powers p = new Powers(ww, n, chunk);
        Work wk = new Work(n, chunk);
        double[] dwAcc = new double[n], duAcc = new double[n];

        // Pass 1: the state at the start of every chunk (T/L states of N*N floats: 16 MiB for T = 32768, N = 64), kept
        // transposed, S^T[j][i]: the backward multiplies by S^T and D^T from the right (results in the chunk's own [t][i]
        // layout, no transposes of N x N matrices or of results). S^T's elements are the same fused multiply-add chains
        // as S's in the forward (fma is symmetric in its factors), so they are the same bits.
        int chunks = (steps + chunk - 1) / chunk;
        float[] starts = new float[Math.max(chunks, 1) * nn];
        float[] s = new float[nn], st = new float[nn];
        state0.get(h * nn, s, 0, nn);
        transpose(s, n, n, n, st, n);
        for (int ci = 0; ci < chunks; ci++) {
            int t0 = ci * chunk, len = Math.min(chunk, steps - t0);
            System.arraycopy(st, 0, starts, ci * nn, nn);
            if (ci == chunks - 1) break;                     // the final state is not needed
            wk.load(k, wk.kc, t0, len, c, col);
            wk.load(v, wk.vc, t0, len, c, col);
            scaledKeys(wk, p, len);
            // S^T <- S^T diag(w^L) + v^T (k (.) w^(L-1-s))
            scaleColumns(st, n, n, p.pow, len * n);
            gemmAccTransA(n, n, len, wk.vc, n, wk.kt, n, st, n);
        }

        // Pass 2: chunks in reverse; dt = D^T, D = dL/dS at the end of the chunk on entry, at its start on exit.
        float[] d = new float[nn], dt = new float[nn];
        dState.get(h * nn, d, 0, nn);
        transpose(d, n, n, n, dt, n);
        for (int ci = chunks - 1; ci >= 0; ci--) {
            int t0 = ci * chunk, len = Math.min(chunk, steps - t0);
            wk.load(r, wk.rc, t0, len, c, col);
            wk.load(k, wk.kc, t0, len, c, col);
            wk.load(v, wk.vc, t0, len, c, col);
            wk.load(dy, wk.gy, t0, len, c, col);
            System.arraycopy(starts, ci * nn, st, 0, nn);
            chunkBackward(wk, p, uu, st, dt, len);
            for (int t = 0; t < len; t++) {
                dr.put((t0 + t) * c + col, wk.gr, t * n, n);
                dk.put((t0 + t) * c + col, wk.gk, t * n, n);
                dv.put((t0 + t) * c + col, wk.gv, t * n, n);
            }
            for (int i = 0; i < n; i++) {
                dwAcc[i] += wk.dwChunk[i];
                duAcc[i] += wk.duChunk[i];
            }
        }
        transpose(dt, n, n, n, d, n);
        dState.put(h * nn, d, 0, nn);
        for (int i = 0; i < n; i++) {
            dw.put(col + i, dw.get(col + i) + (float) dwAcc[i]);
            du.put(col + i, du.get(col + i) + (float) duAcc[i]);
        }
    }

    /**
     * Gradients of one chunk: gr, gk, gv (overwritten), dwChunk, duChunk (this chunk's parts), and dt replaced by
     * (dL/dS at the chunk's start)^T. st is the transposed state at the chunk's start.
     */
    private static void chunkBackward(Work wk, Powers p, float[] uu, float[] st, float[] dt, int len) {
        int n = wk.n, ld = wk.ld;
        scaledInputs(wk, p, len);
        attention(wk, p, uu, len);
        transpose(wk.vc, len, n, n, wk.vT, ld);

        // dA[t][s] = gy_t . v_s (only s <= t is read)
        gemmSet(len, len, n, wk.gy, n, wk.vT, ld, wk.dA, ld);
        // gTt[t][i] = (S gy_t)[i] = (gy S^T)[t][i],  hTt[s][i] = (D v_s)[i] = (v D^T)[s][i]
        gemmSet(len, n, n, wk.gy, n, st, n, wk.gTt, n);
        gemmSet(len, n, n, wk.vc, n, dt, n, wk.hTt, n);
        // gv = A^T gy + (k (.) w^(L-1-s)) D, made transposed (D^T times the transposed scaled keys, which come from kT)
        // and transposed back: gvT[j][s] = (gy^T A)[j][s] + (D^T kt^T)[j][s], the same chains as gv's
        transposedScaledKeys(wk, p, len);
        gemmSetTransA(n, len, len, wk.gy, n, wk.att, ld, wk.gvT, ld);
        gemmAcc(n, len, n, dt, n, wk.ktT, ld, wk.gvT, ld);
        transpose(wk.gvT, n, len, ld, wk.gv, n);

        double[] dwc = wk.dwChunk, duc = wk.duChunk;
        java.util.Arrays.fill(dwc, 0.0);
        java.util.Arrays.fill(duc, 0.0);
        if (n % LANES == 0) {
            stateTermsVector(wk, p, uu, st, dt, len);
            intraVector(wk, p, len);
        } else {
            stateTermsScalar(wk, p, uu, st, dt, len);
            intraScalar(wk, p, len);
        }

        // D <- diag(w^L) D + (r (.) w^t)^T gy, i.e. D^T <- D^T diag(w^L) + gy^T (r (.) w^t)
        scaleColumns(dt, n, n, p.pow, len * n);
        gemmAccTransA(n, n, len, wk.gy, n, wk.rt, n, dt, n);
    }

    /** a[r][c] *= scale[so + c] for a rows x cols matrix (row length cols). */
    private static void scaleColumns(float[] a, int rows, int cols, float[] scale, int so) {
        int c = 0;
        for (; c + LANES <= cols; c += LANES) {
            FloatVector sc = FloatVector.fromArray(SPECIES, scale, so + c);
            for (int r = 0; r < rows; r++) FloatVector.fromArray(SPECIES, a, r * cols + c).mul(sc).intoArray(a, r * cols + c);
        }
        for (; c < cols; c++) for (int r = 0; r < rows; r++) a[r * cols + c] *= scale[so + c];
    }

    /** ktT[i][s] = k_s[i] w_i^(L-1-s) = kt[s][i], from kT and the reversed powers (0 for s >= len, up to a whole vector). */
    private static void transposedScaledKeys(Work wk, Powers p, int len) {
        int n = wk.n, ld = wk.ld, off = p.chunk - len;
        for (int i = 0; i < n; i++) {
            for (int sb = 0; sb < len; sb += LANES) {
                FloatVector.fromArray(SPECIES, wk.kT, i * ld + sb).mul(FloatVector.fromArray(SPECIES, p.rev, i * p.revLd + off + sb))
                        .intoArray(wk.ktT, i * ld + sb);
            }
        }
    }

    /**
     * The terms of each token through the chunk-start state S, the chunk-end state gradient D and A's diagonal:
     * gr_t = w^t (.) (S gy_t) + dA[t][t] u (.) k_t,  gk_t = w^(L-1-t) (.) (D v_t) + dA[t][t] u (.) r_t,
     * du += dA[t][t] r_t (.) k_t,  dw += (d w^L) (.) rowsum(D (.) S) + r_t (.) (d w^t) (.) (S gy_t) + k_t (.) (d w^(L-1-t)) (.) (D v_t).
     */
    private static void stateTermsScalar(Work wk, Powers p, float[] uu, float[] st, float[] dt, int len) {
        int n = wk.n, ld = wk.ld;
        float[] pow = p.pow, dpow = p.dpow;
        double[] dwc = wk.dwChunk, duc = wk.duChunk;
        for (int i = 0; i < n; i++) {
            double ds = 0;
            for (int j = 0; j < n; j++) ds += (double) dt[j * n + i] * st[j * n + i];
            dwc[i] = dpow[len * n + i] * ds;
        }
        for (int t = 0; t < len; t++) {
            float diag = wk.dA[t * ld + t];
            int tr = t * n, pt = t * n, pe = (len - 1 - t) * n;
            for (int i = 0; i < n; i++) {
                float rti = wk.rc[tr + i], kti = wk.kc[tr + i], gti = wk.gTt[tr + i], hti = wk.hTt[tr + i];
                wk.gr[tr + i] = Math.fma(pow[pt + i], gti, diag * uu[i] * kti);
                wk.gk[tr + i] = Math.fma(pow[pe + i], hti, diag * uu[i] * rti);
                duc[i] += (double) diag * rti * kti;
                dwc[i] += (double) rti * dpow[pt + i] * gti;
                dwc[i] += (double) kti * dpow[pe + i] * hti;
            }
        }
    }

    /**
     * {@link #stateTermsScalar} with the key channel i in vector lanes (N a multiple of them). The du and dw terms of
     * the chunk are summed in float lanes (each lane one i: a fixed order over t), then added in double; the row sums
     * of D (.) S likewise (each lane a fixed subset of j, the lanes then added in order in double).
     */
    private static void stateTermsVector(Work wk, Powers p, float[] uu, float[] st, float[] dt, int len) {
        int n = wk.n, ld = wk.ld;
        float[] pow = p.pow, dpow = p.dpow, lanes = wk.lanes;
        double[] dwc = wk.dwChunk, duc = wk.duChunk, ds = wk.dsRow;
        // rowsum(D (.) S)[i] = sum_j D^T[j][i] S^T[j][i]: float chains over eight j at a time, added in double
        java.util.Arrays.fill(ds, 0.0);
        for (int i = 0; i < n; i += LANES) {
            for (int jb = 0; jb < n; jb += LANES) {
                FloatVector acc = FloatVector.zero(SPECIES);
                for (int j = jb; j < jb + LANES; j++) {
                    acc = FloatVector.fromArray(SPECIES, dt, j * n + i).fma(FloatVector.fromArray(SPECIES, st, j * n + i), acc);
                }
                acc.intoArray(lanes, 0);
                for (int l = 0; l < LANES; l++) ds[i + l] += lanes[l];
            }
        }
        for (int i = 0; i < n; i++) dwc[i] = dpow[len * n + i] * ds[i];
        for (int i = 0; i < n; i += LANES) {
            FloatVector u = FloatVector.fromArray(SPECIES, uu, i), duAcc = FloatVector.zero(SPECIES), dwAcc = duAcc;
            for (int t = 0; t < len; t++) {
                int x = t * n + i, pt = t * n + i, pe = (len - 1 - t) * n + i;
                FloatVector diag = FloatVector.broadcast(SPECIES, wk.dA[t * ld + t]), du = diag.mul(u);
                FloatVector r = FloatVector.fromArray(SPECIES, wk.rc, x), k = FloatVector.fromArray(SPECIES, wk.kc, x);
                FloatVector g = FloatVector.fromArray(SPECIES, wk.gTt, x), h = FloatVector.fromArray(SPECIES, wk.hTt, x);
                FloatVector.fromArray(SPECIES, pow, pt).fma(g, du.mul(k)).intoArray(wk.gr, x);
                FloatVector.fromArray(SPECIES, pow, pe).fma(h, du.mul(r)).intoArray(wk.gk, x);
                duAcc = diag.mul(r).fma(k, duAcc);
                dwAcc = r.mul(FloatVector.fromArray(SPECIES, dpow, pt)).fma(g, dwAcc);
                dwAcc = k.mul(FloatVector.fromArray(SPECIES, dpow, pe)).fma(h, dwAcc);
            }
            duAcc.intoArray(lanes, 0);
            for (int l = 0; l < LANES; l++) duc[i + l] += lanes[l];
            dwAcc.intoArray(lanes, 0);
            for (int l = 0; l < LANES; l++) dwc[i + l] += lanes[l];
        }
    }

    /**
     * The pairs s < t inside the chunk, with A's gradient dA[t][s]:
     * gr_t += dA k_s (.) w^(t-1-s),  gk_s += dA r_t (.) w^(t-1-s),  dw += dA r_t (.) k_s (.) (t-1-s) w^(t-2-s).
     */
    private static void intraScalar(Work wk, Powers p, int len) {
        int n = wk.n, ld = wk.ld;
        for (int t = 1; t < len; t++) {
            for (int s = 0; s < t; s++) {
                float a = wk.dA[t * ld + s];
                int pd = (t - 1 - s) * n;
                for (int i = 0; i < n; i++) {
                    float pw = p.pow[pd + i], rt = wk.rc[t * n + i], ks = wk.kc[s * n + i];
                    wk.gr[t * n + i] = Math.fma(a, ks * pw, wk.gr[t * n + i]);
                    wk.gk[s * n + i] = Math.fma(a, rt * pw, wk.gk[s * n + i]);
                    wk.dwChunk[i] += (double) a * rt * ks * p.dpow[pd + i];
                }
            }
        }
    }

    /**
     * {@link #intraScalar} with the key channel in vector lanes; the dw terms of one t are summed in float lanes, then
     * added in double.
     */
    private static void intraVector(Work wk, Powers p, int len) {
        int n = wk.n;
        for (int i = 0; i < n; i += LANES) intraLanes(wk, p, len, i);
    }

    /**
     * Rows t and t + 1 at once (two independent chains each for gr and dw, one load and store of gk_s for both); every
     * sum in the same order as row by row: gr_t and the dw terms of a row over s, gk_s over t.
     */
    private static void intraLanes(Work wk, Powers p, int len, int i) {
        int n = wk.n, ld = wk.ld;
        int t = 1;
        for (; t + 1 < len; t += 2) {
            FloatVector dw0 = FloatVector.zero(SPECIES), dw1 = dw0;
            FloatVector r0 = FloatVector.fromArray(SPECIES, wk.rc, t * n + i), r1 = FloatVector.fromArray(SPECIES, wk.rc, (t + 1) * n + i);
            FloatVector gr0 = FloatVector.fromArray(SPECIES, wk.gr, t * n + i), gr1 = FloatVector.fromArray(SPECIES, wk.gr, (t + 1) * n + i);
            for (int s = 0; s < t; s++) {
                FloatVector a0 = FloatVector.broadcast(SPECIES, wk.dA[t * ld + s]);
                FloatVector a1 = FloatVector.broadcast(SPECIES, wk.dA[(t + 1) * ld + s]);
                int pd0 = (t - 1 - s) * n + i, pd1 = pd0 + n;
                FloatVector pw0 = FloatVector.fromArray(SPECIES, p.pow, pd0), pw1 = FloatVector.fromArray(SPECIES, p.pow, pd1);
                FloatVector ks = FloatVector.fromArray(SPECIES, wk.kc, s * n + i);
                gr0 = a0.fma(ks.mul(pw0), gr0);
                gr1 = a1.fma(ks.mul(pw1), gr1);
                FloatVector gk = FloatVector.fromArray(SPECIES, wk.gk, s * n + i);
                gk = a0.fma(r0.mul(pw0), gk);
                a1.fma(r1.mul(pw1), gk).intoArray(wk.gk, s * n + i);
                dw0 = a0.mul(r0.mul(ks)).fma(FloatVector.fromArray(SPECIES, p.dpow, pd0), dw0);
                dw1 = a1.mul(r1.mul(ks)).fma(FloatVector.fromArray(SPECIES, p.dpow, pd1), dw1);
            }
            // row t + 1 at s = t (distance 0)
            FloatVector a1 = FloatVector.broadcast(SPECIES, wk.dA[(t + 1) * ld + t]);
            FloatVector pw1 = FloatVector.fromArray(SPECIES, p.pow, i), ks = FloatVector.fromArray(SPECIES, wk.kc, t * n + i);
            gr1 = a1.fma(ks.mul(pw1), gr1);
            FloatVector gk = FloatVector.fromArray(SPECIES, wk.gk, t * n + i);
            a1.fma(r1.mul(pw1), gk).intoArray(wk.gk, t * n + i);
            dw1 = a1.mul(r1.mul(ks)).fma(FloatVector.fromArray(SPECIES, p.dpow, i), dw1);
            gr0.intoArray(wk.gr, t * n + i);
            gr1.intoArray(wk.gr, (t + 1) * n + i);
            dw0.intoArray(wk.dwRow, 0);
            for (int l = 0; l < LANES; l++) wk.dwChunk[i + l] += wk.dwRow[l];
            dw1.intoArray(wk.dwRow, 0);
            for (int l = 0; l < LANES; l++) wk.dwChunk[i + l] += wk.dwRow[l];
        }
        for (; t < len; t++) {
            FloatVector dwv = FloatVector.zero(SPECIES);
            FloatVector rt = FloatVector.fromArray(SPECIES, wk.rc, t * n + i);
            FloatVector gr = FloatVector.fromArray(SPECIES, wk.gr, t * n + i);
            for (int s = 0; s < t; s++) {
                FloatVector a = FloatVector.broadcast(SPECIES, wk.dA[t * ld + s]);
                int pd = (t - 1 - s) * n + i;
                FloatVector pw = FloatVector.fromArray(SPECIES, p.pow, pd);
                FloatVector ks = FloatVector.fromArray(SPECIES, wk.kc, s * n + i);
                gr = a.fma(ks.mul(pw), gr);
                FloatVector gk = FloatVector.fromArray(SPECIES, wk.gk, s * n + i);
                a.fma(rt.mul(pw), gk).intoArray(wk.gk, s * n + i);
                dwv = a.mul(rt.mul(ks)).fma(FloatVector.fromArray(SPECIES, p.dpow, pd), dwv);
            }
            gr.intoArray(wk.gr, t * n + i);
            dwv.intoArray(wk.dwRow, 0);
            for (int l = 0; l < LANES; l++) wk.dwChunk[i + l] += wk.dwRow[l];
        }
    }

    /** kt[s] = k_s (.) w^(L-1-s) for a chunk of len tokens (what the state update needs). */
    private static void scaledKeys(Work wk, Powers p, int len) {
        int n = wk.n;
        for (int t = 0; t < len; t++) {
            int pe = (len - 1 - t) * n, i = 0;
            for (; i + LANES <= n; i += LANES) {
                FloatVector.fromArray(SPECIES, wk.kc, t * n + i).mul(FloatVector.fromArray(SPECIES, p.pow, pe + i)).intoArray(wk.kt, t * n + i);
            }
            for (; i < n; i++) wk.kt[t * n + i] = wk.kc[t * n + i] * p.pow[pe + i];
        }
    }

    /** rt[t] = r_t (.) w^t and kt[s] = k_s (.) w^(L-1-s) for a chunk of len tokens. */
    private static void scaledInputs(Work wk, Powers p, int len) {
        int n = wk.n;
        for (int t = 0; t < len; t++) {
            int pt = t * n, pe = (len - 1 - t) * n, i = 0;
            for (; i + LANES <= n; i += LANES) {            // one rounding per element either way: the same bits
                FloatVector.fromArray(SPECIES, wk.rc, t * n + i).mul(FloatVector.fromArray(SPECIES, p.pow, pt + i)).intoArray(wk.rt, t * n + i);
                FloatVector.fromArray(SPECIES, wk.kc, t * n + i).mul(FloatVector.fromArray(SPECIES, p.pow, pe + i)).intoArray(wk.kt, t * n + i);
            }
            for (; i < n; i++) {
                wk.rt[t * n + i] = wk.rc[t * n + i] * p.pow[pt + i];
                wk.kt[t * n + i] = wk.kc[t * n + i] * p.pow[pe + i];
            }
        }
    }

    /**
     * att[t][s] = A[t][s] for s <= t (0 above the diagonal, up to the padded row length): the strictly lower part
     * with the time index s in vector lanes, reading the powers w^(t-1-s) from the reversed table, which is 0 where
     * s >= t.
     */
    private static void attention(Work wk, Powers p, float[] uu, int len) {
        int n = wk.n, ld = wk.ld, chunk = p.chunk;
        transpose(wk.kc, len, n, n, wk.kT, ld);
        for (int i = 0; i < n; i++) java.util.Arrays.fill(wk.kT, i * ld + len, i * ld + ld, 0f);
        int t = 0;
        for (; t + 3 < len; t += 4) {                   // four rows at once: four independent fma chains per block
            java.util.Arrays.fill(wk.att, t * ld, t * ld + 4 * ld, 0f);
            for (int sb = 0; sb < t + 3; sb += LANES) attentionLanes4(wk, p, t, sb, chunk - t + sb);
            for (int q = 0; q < 4; q++) attentionDiagonal(wk, uu, t + q);
        }
        for (; t + 1 < len; t += 2) {                   // two rows at once: two independent fma chains per block
            java.util.Arrays.fill(wk.att, t * ld, t * ld + 2 * ld, 0f);
            int sb = 0;
            for (; sb < t; sb += LANES) attentionLanes2(wk, p, t, sb, chunk - t + sb);
            for (; sb < t + 1; sb += LANES) attentionLanes(wk, p, t + 1, sb, chunk - t - 1 + sb);
            attentionDiagonal(wk, uu, t);
            attentionDiagonal(wk, uu, t + 1);
        }
        if (t < len) {
            java.util.Arrays.fill(wk.att, t * ld, t * ld + ld, 0f);
            for (int sb = 0; sb < t; sb += LANES) attentionLanes(wk, p, t, sb, chunk - t + sb);
            attentionDiagonal(wk, uu, t);
        }
    }

    /** A[t][t] = sum_i r_t[i] u_i k_t[i]: in vector lanes over i when N is a multiple of them, the lanes then in order. */
    private static void attentionDiagonal(Work wk, float[] uu, int t) {
        int n = wk.n, i = 0;
        float diag = 0f;
        if (n % LANES == 0) {
            FloatVector acc = FloatVector.zero(SPECIES);
            for (; i < n; i += LANES) {
                acc = FloatVector.fromArray(SPECIES, wk.rc, t * n + i).mul(FloatVector.fromArray(SPECIES, uu, i))
                        .fma(FloatVector.fromArray(SPECIES, wk.kc, t * n + i), acc);
            }
            acc.intoArray(wk.lanes, 0);
            for (int l = 0; l < LANES; l++) diag += wk.lanes[l];
        }
        for (; i < n; i++) diag = Math.fma(wk.rc[t * n + i] * uu[i], wk.kc[t * n + i], diag);
        wk.att[t * wk.ld + t] = diag;
    }

    /**
     * {@link #attentionLanes} for rows t .. t + 3 at the same block sb (each row's sum in the same order); lanes at
     * s >= their row read powers of 0 from the reversed table's padding, which the diagonal then overwrites.
     */
    private static void attentionLanes4(Work wk, Powers p, int t, int sb, int revOff) {
        int n = wk.n, ld = wk.ld, revLd = p.revLd;
        FloatVector acc0 = FloatVector.zero(SPECIES), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        for (int i = 0; i < n; i++) {
            FloatVector k = FloatVector.fromArray(SPECIES, wk.kT, i * ld + sb);
            int ro = i * revLd + revOff, rr = t * n + i;
            acc0 = k.mul(FloatVector.fromArray(SPECIES, p.rev, ro)).fma(FloatVector.broadcast(SPECIES, wk.rc[rr]), acc0);
            acc1 = k.mul(FloatVector.fromArray(SPECIES, p.rev, ro - 1)).fma(FloatVector.broadcast(SPECIES, wk.rc[rr + n]), acc1);
            acc2 = k.mul(FloatVector.fromArray(SPECIES, p.rev, ro - 2)).fma(FloatVector.broadcast(SPECIES, wk.rc[rr + 2 * n]), acc2);
            acc3 = k.mul(FloatVector.fromArray(SPECIES, p.rev, ro - 3)).fma(FloatVector.broadcast(SPECIES, wk.rc[rr + 3 * n]), acc3);
        }
        acc0.intoArray(wk.att, t * ld + sb);
        acc1.intoArray(wk.att, (t + 1) * ld + sb);
        acc2.intoArray(wk.att, (t + 2) * ld + sb);
        acc3.intoArray(wk.att, (t + 3) * ld + sb);
    }

    /** {@link #attentionLanes} for rows t and t + 1 at the same block sb (each row's sum in the same order). */
    private static void attentionLanes2(Work wk, Powers p, int t, int sb, int revOff) {
        int n = wk.n, ld = wk.ld, revLd = p.revLd;
        FloatVector acc0 = FloatVector.zero(SPECIES), acc1 = FloatVector.zero(SPECIES);
        for (int i = 0; i < n; i++) {
            FloatVector k = FloatVector.fromArray(SPECIES, wk.kT, i * ld + sb);
            FloatVector kw0 = k.mul(FloatVector.fromArray(SPECIES, p.rev, i * revLd + revOff));
            FloatVector kw1 = k.mul(FloatVector.fromArray(SPECIES, p.rev, i * revLd + revOff - 1));
            acc0 = kw0.fma(FloatVector.broadcast(SPECIES, wk.rc[t * n + i]), acc0);
            acc1 = kw1.fma(FloatVector.broadcast(SPECIES, wk.rc[(t + 1) * n + i]), acc1);
        }
        acc0.intoArray(wk.att, t * ld + sb);
        acc1.intoArray(wk.att, (t + 1) * ld + sb);
    }

    private static void attentionLanes(Work wk, Powers p, int t, int sb, int revOff) {
        int n = wk.n, ld = wk.ld, revLd = p.revLd;
        FloatVector acc = FloatVector.zero(SPECIES);
        for (int i = 0; i < n; i++) {
            FloatVector kw = FloatVector.fromArray(SPECIES, wk.kT, i * ld + sb)
                    .mul(FloatVector.fromArray(SPECIES, p.rev, i * revLd + revOff));
            acc = kw.fma(FloatVector.broadcast(SPECIES, wk.rc[t * n + i]), acc);
        }
        acc.intoArray(wk.att, t * ld + sb);
    }

    /** s = diag(w^len) s + kt^T v. */
    private static void advanceState(Work wk, Powers p, float[] s, int len) {
        int n = wk.n;
        gemmScaleTransA(n, n, len, wk.kt, n, wk.vc, n, s, n, p.pow, len * n);
    }

    /** dst[c][r] = src[r][c] for a rows x cols block. */
    private static void transpose(float[] src, int rows, int cols, int lds, float[] dst, int ldd) {
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
    }

    // ---------------------------------------------------------------- small matrix products
    /**
     * c[m][j] += sum_p a[m][p] b[p][j] (m < rows, j < cols, p < depth; row strides lda, ldb, ldc). Every element is
     * one chain of fused multiply-adds in increasing p, starting from its old value, whichever path computes it.
     */
    static void gemmAcc(int rows, int cols, int depth, float[] a, int lda, float[] b, int ldb, float[] c, int ldc) {
        gemm(rows, cols, depth, a, lda, 1, b, ldb, c, ldc, null, 0);
    }

    /** c[m][j] = sum_p a[m][p] b[p][j]: {@link #gemmAcc} on a c of zeros, without reading c. */
    static void gemmSet(int rows, int cols, int depth, float[] a, int lda, float[] b, int ldb, float[] c, int ldc) {
        gemm(rows, cols, depth, a, lda, 1, b, ldb, c, ldc, OVERWRITE, 0);
    }

    /** c[m][j] = sum_p a[p][m] b[p][j]: {@link #gemmAccTransA} on a c of zeros, without reading c. */
    static void gemmSetTransA(int rows, int cols, int depth, float[] a, int lda, float[] b, int ldb, float[] c, int ldc) {
        gemm(rows, cols, depth, a, 1, lda, b, ldb, c, ldc, OVERWRITE, 0);
    }

    /**
     * c[m][j] += sum_p a[p][m] b[p][j]: {@link #gemmAcc} with a given transposed (a is depth x rows, row stride lda),
     * so that no transposed copy is made; the same chains of fused multiply-adds.
     */
    static void gemmAccTransA(int rows, int cols, int depth, float[] a, int lda, float[] b, int ldb, float[] c, int ldc) {
        gemm(rows, cols, depth, a, 1, lda, b, ldb, c, ldc, null, 0);
    }

    /**
     * c[m][j] = c[m][j] * scale[so + m] + sum_p a[p][m] b[p][j]: {@link #gemmAccTransA} on c scaled row by row (one
     * rounding, then the same chain as if c had been scaled in a pass of its own).
     */
    static void gemmScaleTransA(int rows, int cols, int depth, float[] a, int lda, float[] b, int ldb, float[] c, int ldc,
                                float[] scale, int so) {
        gemm(rows, cols, depth, a, 1, lda, b, ldb, c, ldc, scale, so);
    }

    /**
     * c[m][j] = c[m][j] (* scale[so + m] when scale is not null; 0 when it is OVERWRITE) + sum_p A(m, p) b[p][j] with A(m, p) = a[m * ars + p * acs].
     * Register tiles of 4 x 32 and 8 x 16 outputs (16 accumulators: the 32 vector registers of AVX-512 hold them with
     * the operands; four b loads and four broadcasts per 16 fused multiply-adds), smaller tiles at the edges.
     */
    private static void gemm(int rows, int cols, int depth, float[] a, int ars, int acs, float[] b, int ldb, float[] c, int ldc,
                             float[] scale, int so) {
        int j = 0;
        for (; j + 4 * LANES <= cols; j += 4 * LANES) {
            int m = 0;
            for (; m + 4 <= rows; m += 4) kernel4x4(depth, a, m * ars, ars, acs, b, j, ldb, c, m * ldc + j, ldc, scale, so + m);
            for (; m < rows; m++) {
                kernel1x2(depth, a, m * ars, acs, b, j, ldb, c, m * ldc + j, scale, so + m);
                kernel1x2(depth, a, m * ars, acs, b, j + 2 * LANES, ldb, c, m * ldc + j + 2 * LANES, scale, so + m);
            }
        }
        for (; j + 2 * LANES <= cols; j += 2 * LANES) {
            int m = 0;
            for (; m + 8 <= rows; m += 8) kernel8x2(depth, a, m * ars, ars, acs, b, j, ldb, c, m * ldc + j, ldc, scale, so + m);
            for (; m < rows; m++) kernel1x2(depth, a, m * ars, acs, b, j, ldb, c, m * ldc + j, scale, so + m);
        }
        for (; j + LANES <= cols; j += LANES) {
            for (int m = 0; m < rows; m++) kernel1x1(depth, a, m * ars, acs, b, j, ldb, c, m * ldc + j, scale, so + m);
        }
        for (; j < cols; j++) {
            for (int m = 0; m < rows; m++) {
                float acc = scale == OVERWRITE ? 0f : c[m * ldc + j];
                if (scale != null && scale != OVERWRITE) acc *= scale[so + m];
                for (int q = 0; q < depth; q++) acc = Math.fma(a[m * ars + q * acs], b[q * ldb + j], acc);
                c[m * ldc + j] = acc;
            }
        }
    }

    /** The scale argument of {@link #gemm} that makes it overwrite c (start every chain from 0) instead of adding to it. */
    private static final float[] OVERWRITE = new float[0];

    /** The start of an accumulator of {@link #gemm}: 0, or c's old value, scaled when there is a scale. */
    private static FloatVector start(float[] c, int at, float[] scale, int row) {
        if (scale == OVERWRITE) return FloatVector.zero(SPECIES);
        FloatVector old = FloatVector.fromArray(SPECIES, c, at);
        return scale == null ? old : old.mul(scale[row]);
    }

    private static void kernel4x4(int depth, float[] a, int a0, int lda, int acs, float[] b, int b0, int ldb, float[] c, int c0, int ldc,
                                  float[] scale, int so) {
        int r1 = c0 + ldc, r2 = c0 + 2 * ldc, r3 = c0 + 3 * ldc;
        FloatVector c00 = start(c, c0, scale, so), c01 = start(c, c0 + LANES, scale, so);
        FloatVector c02 = start(c, c0 + 2 * LANES, scale, so), c03 = start(c, c0 + 3 * LANES, scale, so);
        FloatVector c10 = start(c, r1, scale, so + 1), c11 = start(c, r1 + LANES, scale, so + 1);
        FloatVector c12 = start(c, r1 + 2 * LANES, scale, so + 1), c13 = start(c, r1 + 3 * LANES, scale, so + 1);
        FloatVector c20 = start(c, r2, scale, so + 2), c21 = start(c, r2 + LANES, scale, so + 2);
        FloatVector c22 = start(c, r2 + 2 * LANES, scale, so + 2), c23 = start(c, r2 + 3 * LANES, scale, so + 2);
        FloatVector c30 = start(c, r3, scale, so + 3), c31 = start(c, r3 + LANES, scale, so + 3);
        FloatVector c32 = start(c, r3 + 2 * LANES, scale, so + 3), c33 = start(c, r3 + 3 * LANES, scale, so + 3);
        for (int q = 0; q < depth; q++) {
            int bq = q * ldb + b0, aq = a0 + q * acs;
            FloatVector b0v = FloatVector.fromArray(SPECIES, b, bq), b1v = FloatVector.fromArray(SPECIES, b, bq + LANES);
            FloatVector b2v = FloatVector.fromArray(SPECIES, b, bq + 2 * LANES), b3v = FloatVector.fromArray(SPECIES, b, bq + 3 * LANES);
            FloatVector x = FloatVector.broadcast(SPECIES, a[aq]);
            c00 = x.fma(b0v, c00); c01 = x.fma(b1v, c01); c02 = x.fma(b2v, c02); c03 = x.fma(b3v, c03);
            x = FloatVector.broadcast(SPECIES, a[aq + lda]);
            c10 = x.fma(b0v, c10); c11 = x.fma(b1v, c11); c12 = x.fma(b2v, c12); c13 = x.fma(b3v, c13);
            x = FloatVector.broadcast(SPECIES, a[aq + 2 * lda]);
            c20 = x.fma(b0v, c20); c21 = x.fma(b1v, c21); c22 = x.fma(b2v, c22); c23 = x.fma(b3v, c23);
            x = FloatVector.broadcast(SPECIES, a[aq + 3 * lda]);
            c30 = x.fma(b0v, c30); c31 = x.fma(b1v, c31); c32 = x.fma(b2v, c32); c33 = x.fma(b3v, c33);
        }
        c00.intoArray(c, c0); c01.intoArray(c, c0 + LANES); c02.intoArray(c, c0 + 2 * LANES); c03.intoArray(c, c0 + 3 * LANES);
        c10.intoArray(c, r1); c11.intoArray(c, r1 + LANES); c12.intoArray(c, r1 + 2 * LANES); c13.intoArray(c, r1 + 3 * LANES);
        c20.intoArray(c, r2); c21.intoArray(c, r2 + LANES); c22.intoArray(c, r2 + 2 * LANES); c23.intoArray(c, r2 + 3 * LANES);
        c30.intoArray(c, r3); c31.intoArray(c, r3 + LANES); c32.intoArray(c, r3 + 2 * LANES); c33.intoArray(c, r3 + 3 * LANES);
    }

    private static void kernel8x2(int depth, float[] a, int a0, int lda, int acs, float[] b, int b0, int ldb, float[] c, int c0, int ldc,
                                  float[] scale, int so) {
        FloatVector c00 = start(c, c0, scale, so), c01 = start(c, c0 + LANES, scale, so);
        FloatVector c10 = start(c, c0 + ldc, scale, so + 1), c11 = start(c, c0 + ldc + LANES, scale, so + 1);
        FloatVector c20 = start(c, c0 + 2 * ldc, scale, so + 2), c21 = start(c, c0 + 2 * ldc + LANES, scale, so + 2);
        FloatVector c30 = start(c, c0 + 3 * ldc, scale, so + 3), c31 = start(c, c0 + 3 * ldc + LANES, scale, so + 3);
        FloatVector c40 = start(c, c0 + 4 * ldc, scale, so + 4), c41 = start(c, c0 + 4 * ldc + LANES, scale, so + 4);
        FloatVector c50 = start(c, c0 + 5 * ldc, scale, so + 5), c51 = start(c, c0 + 5 * ldc + LANES, scale, so + 5);
        FloatVector c60 = start(c, c0 + 6 * ldc, scale, so + 6), c61 = start(c, c0 + 6 * ldc + LANES, scale, so + 6);
        FloatVector c70 = start(c, c0 + 7 * ldc, scale, so + 7), c71 = start(c, c0 + 7 * ldc + LANES, scale, so + 7);
        for (int q = 0; q < depth; q++) {
            int bq = q * ldb + b0, aq = a0 + q * acs;
            FloatVector b0v = FloatVector.fromArray(SPECIES, b, bq), b1v = FloatVector.fromArray(SPECIES, b, bq + LANES);
            FloatVector x = FloatVector.broadcast(SPECIES, a[aq]);
            c00 = x.fma(b0v, c00); c01 = x.fma(b1v, c01);
            x = FloatVector.broadcast(SPECIES, a[aq + lda]);
            c10 = x.fma(b0v, c10); c11 = x.fma(b1v, c11);
            x = FloatVector.broadcast(SPECIES, a[aq + 2 * lda]);
            c20 = x.fma(b0v, c20); c21 = x.fma(b1v, c21);
            x = FloatVector.broadcast(SPECIES, a[aq + 3 * lda]);
            c30 = x.fma(b0v, c30); c31 = x.fma(b1v, c31);
            x = FloatVector.broadcast(SPECIES, a[aq + 4 * lda]);
            c40 = x.fma(b0v, c40); c41 = x.fma(b1v, c41);
            x = FloatVector.broadcast(SPECIES, a[aq + 5 * lda]);
            c50 = x.fma(b0v, c50); c51 = x.fma(b1v, c51);
            x = FloatVector.broadcast(SPECIES, a[aq + 6 * lda]);
            c60 = x.fma(b0v, c60); c61 = x.fma(b1v, c61);
            x = FloatVector.broadcast(SPECIES, a[aq + 7 * lda]);
            c70 = x.fma(b0v, c70); c71 = x.fma(b1v, c71);
        }
        c00.intoArray(c, c0); c01.intoArray(c, c0 + LANES);
        c10.intoArray(c, c0 + ldc); c11.intoArray(c, c0 + ldc + LANES);
        c20.intoArray(c, c0 + 2 * ldc); c21.intoArray(c, c0 + 2 * ldc + LANES);
        c30.intoArray(c, c0 + 3 * ldc); c31.intoArray(c, c0 + 3 * ldc + LANES);
        c40.intoArray(c, c0 + 4 * ldc); c41.intoArray(c, c0 + 4 * ldc + LANES);
        c50.intoArray(c, c0 + 5 * ldc); c51.intoArray(c, c0 + 5 * ldc + LANES);
        c60.intoArray(c, c0 + 6 * ldc); c61.intoArray(c, c0 + 6 * ldc + LANES);
        c70.intoArray(c, c0 + 7 * ldc); c71.intoArray(c, c0 + 7 * ldc + LANES);
    }

    private static void kernel1x2(int depth, float[] a, int a0, int acs, float[] b, int b0, int ldb, float[] c, int c0,
                                  float[] scale, int so) {
        FloatVector c00 = start(c, c0, scale, so), c01 = start(c, c0 + LANES, scale, so);
        for (int q = 0; q < depth; q++) {
            FloatVector x0 = FloatVector.broadcast(SPECIES, a[a0 + q * acs]);
            c00 = x0.fma(FloatVector.fromArray(SPECIES, b, q * ldb + b0), c00);
            c01 = x0.fma(FloatVector.fromArray(SPECIES, b, q * ldb + b0 + LANES), c01);
        }
        c00.intoArray(c, c0);
        c01.intoArray(c, c0 + LANES);
    }

    private static void kernel1x1(int depth, float[] a, int a0, int acs, float[] b, int b0, int ldb, float[] c, int c0,
                                  float[] scale, int so) {
        FloatVector c00 = start(c, c0, scale, so);
        for (int q = 0; q < depth; q++) {
            c00 = FloatVector.broadcast(SPECIES, a[a0 + q * acs]).fma(FloatVector.fromArray(SPECIES, b, q * ldb + b0), c00);
        }
        c00.intoArray(c, c0);
    }
}
