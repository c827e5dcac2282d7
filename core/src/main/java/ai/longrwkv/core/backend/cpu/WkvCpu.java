package ai.longrwkv.core.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.nio.FloatBuffer;

/**
 * The WKV5 recurrence for one head, forward and backward with an initial state and a final-state gradient
 * (rwkv5-spec.md §5, general form). Index convention: i = key channel, j = value channel, S[i][j] at i*N + j.
 * Each call works on head h of [T, H*N] tensors and owns that head's slices, so heads run in parallel safely.
 */
final class WkvCpu {
    private WkvCpu() { }

    /**
     * States S_t are needed again in backward (for dr and dw). Instead of keeping all T of them (T*N*N floats per head)
     * the backward pass stores one every BLOCK steps and recomputes the block it is working on.
     */
    static final int BLOCK = 32;

    /** 8 lanes covers the oracle's N = 8 in one vector and N = 64 in eight; wider species would leave N = 8 scalar. */
    private static final VectorSpecies<Float> SPECIES = CpuMath.SPECIES;   // the backend's one vector shape (see there)

    static void forwardHead(int h, int n, int c, int steps, FloatBuffer r, FloatBuffer k, FloatBuffer v, FloatBuffer w,
                            FloatBuffer u, FloatBuffer state, FloatBuffer y) {
        float[] s = new float[n * n];
        state.get(h * n * n, s, 0, n * n);
        float[] ww = new float[n], uu = new float[n], rr = new float[n], kk = new float[n], vv = new float[n], yy = new float[n];
        w.get(h * n, ww, 0, n);
        u.get(h * n, uu, 0, n);
        for (int t = 0; t < steps; t++) {
            int base = t * c + h * n;
            r.get(base, rr, 0, n);
            k.get(base, kk, 0, n);
            v.get(base, vv, 0, n);
            java.util.Arrays.fill(yy, 0f);
            step(n, s, ww, uu, rr, kk, vv, yy);
            y.put(base, yy, 0, n);
        }
        state.put(h * n * n, s, 0, n * n);
    }

    /** One step: y += r^T (diag(u) k v^T + S); S = diag(w) S + k v^T. */
    private static void step(int n, float[] s, float[] w, float[] u, float[] r, float[] k, float[] v, float[] y) {
        int upper = SPECIES.loopBound(n);
        for (int i = 0; i < n; i++) {
            float ri = r[i], ki = k[i], uki = u[i] * ki, wi = w[i];
            FloatVector riV = FloatVector.broadcast(SPECIES, ri), kiV = FloatVector.broadcast(SPECIES, ki);
            FloatVector ukiV = FloatVector.broadcast(SPECIES, uki);
            int row = i * n;
            int j = 0;
            for (; j < upper; j += SPECIES.length()) {
                FloatVector sv = FloatVector.fromArray(SPECIES, s, row + j);
                FloatVector vv = FloatVector.fromArray(SPECIES, v, j);
                FloatVector yv = FloatVector.fromArray(SPECIES, y, j);
                vv.fma(ukiV, sv).fma(riV, yv).intoArray(y, j);
                vv.fma(kiV, sv.mul(wi)).intoArray(s, row + j);
            }
            for (; j < n; j++) {
                float sij = s[row + j];
                y[j] = Math.fma(ri, Math.fma(uki, v[j], sij), y[j]);
                s[row + j] = Math.fma(ki, v[j], wi * sij);
            }
        }
    }

    /** Advances S by one step without producing y (used to rebuild states in backward). */
    private static void advance(int n, float[] s, float[] w, float[] k, float[] v) {
        advanceInto(n, s, 0, w, k, v);
    }

    static void backwardHead(int h, int n, int c, int steps, FloatBuffer r, FloatBuffer k, FloatBuffer v, FloatBuffer w,
                             FloatBuffer u, FloatBuffer state0, FloatBuffer dy, FloatBuffer dState,
                             FloatBuffer dr, FloatBuffer dk, FloatBuffer dv, FloatBuffer dw, FloatBuffer du) {
        int nn = n * n;
        float[] ww = new float[n], uu = new float[n];
        w.get(h * n, ww, 0, n);
        u.get(h * n, uu, 0, n);
        float[] rr = new float[n], kk = new float[n], vv = new float[n], gy = new float[n];
        float[] gr = new float[n], gk = new float[n], gv = new float[n];
        double[] dwAcc = new double[n], duAcc = new double[n];

        // Pass 1: checkpoints of S_t at t = 0, BLOCK, 2*BLOCK, ...
        int blocks = (steps + BLOCK - 1) / BLOCK;
        float[] checkpoints = new float[Math.max(blocks, 1) * nn];
        float[] s = new float[nn];
        state0.get(h * nn, s, 0, nn);
        for (int t = 0; t < steps; t++) {
            if (t % BLOCK == 0) System.arraycopy(s, 0, checkpoints, (t / BLOCK) * nn, nn);
            int base = t * c + h * n;
            k.get(base, kk, 0, n);
            v.get(base, vv, 0, n);
            advance(n, s, ww, kk, vv);
        }

        // Pass 2: reverse scan. a = dL/dS_{t+1} on entry to step t.
        float[] a = new float[nn];
        dState.get(h * nn, a, 0, nn);
        float[] blockStates = new float[BLOCK * nn];
        for (int blk = blocks - 1; blk >= 0; blk--) {
            int t0 = blk * BLOCK, t1 = Math.min(steps, t0 + BLOCK);
            System.arraycopy(checkpoints, blk * nn, blockStates, 0, nn);
            for (int t = t0; t < t1 - 1; t++) {
                System.arraycopy(blockStates, (t - t0) * nn, blockStates, (t - t0 + 1) * nn, nn);
                int base = t * c + h * n;
                k.get(base, kk, 0, n);
                v.get(base, vv, 0, n);
                advanceInto(n, blockStates, (t - t0 + 1) * nn, ww, kk, vv);
            }
            for (int t = t1 - 1; t >= t0; t--) {
                int base = t * c + h * n;
                r.get(base, rr, 0, n);
                k.get(base, kk, 0, n);
                v.get(base, vv, 0, n);
                dy.get(base, gy, 0, n);
                backwardStep(n, a, blockStates, (t - t0) * nn, rr, kk, vv, gy, uu, ww, gr, gk, gv, dwAcc, duAcc);
                dr.put(base, gr, 0, n);
                dk.put(base, gk, 0, n);
                dv.put(base, gv, 0, n);
            }
        }
        dState.put(h * nn, a, 0, nn);
        for (int i = 0; i < n; i++) {
            dw.put(h * n + i, dw.get(h * n + i) + (float) dwAcc[i]);
            du.put(h * n + i, du.get(h * n + i) + (float) duAcc[i]);
        }
    }

    /**
     * One reverse step at time t (a = dL/dS_{t+1} on entry, dL/dS_t on return; states[sOff..] = S_t).
     * Kept in its own small method: inside one large method C2 ran out of inlining budget and left the Vector API
     * calls un-intrinsified, which measured 25x slower.
     */
    private static void backwardStep(int n, float[] a, float[] states, int sOff, float[] r, float[] k, float[] v,
                                     float[] gy, float[] u, float[] w, float[] gr, float[] gk, float[] gv,
                                     double[] dwAcc, double[] duAcc) {
        int upper = SPECIES.loopBound(n);
        float vgy = 0, rku = 0;
        for (int j = 0; j < n; j++) vgy += v[j] * gy[j];
        for (int i = 0; i < n; i++) rku += r[i] * u[i] * k[i];
        for (int j = 0; j < n; j++) gv[j] = rku * gy[j];
        for (int i = 0; i < n; i++) {
            int row = i * n;
            float ki = k[i], ri = r[i], wi = w[i];
            FloatVector kiV = FloatVector.broadcast(SPECIES, ki), riV = FloatVector.broadcast(SPECIES, ri);
            FloatVector avv = FloatVector.zero(SPECIES), sgyv = avv, asv = avv;
            int j = 0;
            for (; j < upper; j += SPECIES.length()) {
                FloatVector aij = FloatVector.fromArray(SPECIES, a, row + j);
                FloatVector sij = FloatVector.fromArray(SPECIES, states, sOff + row + j);
                FloatVector gyj = FloatVector.fromArray(SPECIES, gy, j);
                avv = aij.fma(FloatVector.fromArray(SPECIES, v, j), avv);
                sgyv = sij.fma(gyj, sgyv);
                asv = aij.fma(sij, asv);
                aij.fma(kiV, FloatVector.fromArray(SPECIES, gv, j)).intoArray(gv, j);
                gyj.fma(riV, aij.mul(wi)).intoArray(a, row + j);   // becomes dL/dS_t
            }
            float av = CpuMath.sumLanes(avv), sgy = CpuMath.sumLanes(sgyv), as = CpuMath.sumLanes(asv);
            for (; j < n; j++) {
                float aij = a[row + j];
                float sij = states[sOff + row + j];
                av += aij * v[j];
                sgy += sij * gy[j];
                as += aij * sij;
                gv[j] += aij * ki;
                a[row + j] = ri * gy[j] + wi * aij;
            }
            gk[i] = u[i] * ri * vgy + av;
            gr[i] = u[i] * ki * vgy + sgy;
            duAcc[i] += ri * ki * vgy;
            dwAcc[i] += as;
        }
    }

    /** states[off..off+N*N) = diag(w) states[off..] + k v^T, in place. */
    private static void advanceInto(int n, float[] states, int off, float[] w, float[] k, float[] v) {
        int upper = SPECIES.loopBound(n);
        for (int i = 0; i < n; i++) {
            float ki = k[i], wi = w[i];
            FloatVector kiV = FloatVector.broadcast(SPECIES, ki);
            int row = off + i * n;
            int j = 0;
            for (; j < upper; j += SPECIES.length()) {
                FloatVector sv = FloatVector.fromArray(SPECIES, states, row + j);
                FloatVector.fromArray(SPECIES, v, j).fma(kiV, sv.mul(wi)).intoArray(states, row + j);
            }
            for (; j < n; j++) states[row + j] = Math.fma(ki, v[j], wi * states[row + j]);
        }
    }
}
