package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs on every machine: a plain-Java emulation of wkv5.cu's backward (the forward "state scan" with the Q_t
 * accumulator for dw, and the state-free reverse scan), thread by thread with the kernels' index arithmetic, against
 * the CPU backend's §5 reference. It checks the kernels' decomposition of the math, not the GPU.
 */
class WkvKernelEmulationTest {
    @Test
    void kernelDecompositionMatchesCpuReference() {
        Random rnd = new Random(System.nanoTime());
        int h = 3, n = 8, steps = 41, c = h * n;
        float[] r = g(rnd, steps * c, 0.5), k = g(rnd, steps * c, 0.5), v = g(rnd, steps * c, 0.5), dy = g(rnd, steps * c, 1);
        float[] w = new float[h * n], u = g(rnd, h * n, 0.5), s0 = g(rnd, h * n * n, 0.5), dS = g(rnd, h * n * n, 0.3);
        for (int i = 0; i < w.length; i++) w[i] = (float) Math.exp(-Math.exp(-3 + 3.5 * rnd.nextDouble()));
        float[] dr = new float[steps * c], dk = new float[steps * c], dv = new float[steps * c], dw = new float[h * n], du = new float[h * n];
        float[] dState = dS.clone();
        for (int head = 0; head < h; head++) {
            // state scan: thread i owns row i of S and Q
            for (int i = 0; i < n; i++) {
                float[] s = new float[n], q = new float[n];
                for (int j = 0; j < n; j++) s[j] = s0[head * n * n + i * n + j];
                float wi = w[head * n + i], ui = u[head * n + i];
                double dwAcc = 0, duAcc = 0;
                for (int t = 0; t < steps; t++) {
                    int base = t * c + head * n;
                    float ri = r[base + i], ki = k[base + i], vgy = 0, sgy = 0, qgy = 0;
                    for (int j = 0; j < n; j++) {
                        vgy = Math.fma(v[base + j], dy[base + j], vgy);
                        sgy = Math.fma(s[j], dy[base + j], sgy);
                        qgy = Math.fma(q[j], dy[base + j], qgy);
                    }
                    dr[base + i] = ui * ki * vgy + sgy;
                    duAcc += ri * ki * vgy;
                    dwAcc += ri * qgy;
                    for (int j = 0; j < n; j++) {
                        q[j] = Math.fma(wi, q[j], s[j]);
                        s[j] = Math.fma(ki, v[base + j], wi * s[j]);
                    }
                }
                float tail = 0;
                for (int j = 0; j < n; j++) tail = Math.fma(q[j], dS[head * n * n + i * n + j], tail);
                dw[head * n + i] += (float) (dwAcc + tail);
                du[head * n + i] += (float) duAcc;
            }
            // reverse scan: row owners (gk) and column owners (gv), each with its own copy of A
            float[][] rows = new float[n][n], cols = new float[n][n];
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) rows[i][j] = cols[j][i] = dS[head * n * n + i * n + j];
            for (int t = steps - 1; t >= 0; t--) {
                int base = t * c + head * n;
                for (int i = 0; i < n; i++) {
                    float ri = r[base + i], vgy = 0, av = 0;
                    for (int j = 0; j < n; j++) { vgy = Math.fma(v[base + j], dy[base + j], vgy); av = Math.fma(rows[i][j], v[base + j], av); }
                    dk[base + i] = u[head * n + i] * ri * vgy + av;
                    for (int j = 0; j < n; j++) rows[i][j] = Math.fma(dy[base + j], ri, rows[i][j] * w[head * n + i]);
                }
                for (int j = 0; j < n; j++) {
                    float rku = 0;
                    for (int i = 0; i < n; i++) rku = Math.fma(r[base + i] * u[head * n + i], k[base + i], rku);
                    float gv = rku * dy[base + j];
                    for (int i = 0; i < n; i++) gv = Math.fma(cols[j][i], k[base + i], gv);
                    dv[base + j] = gv;
                    for (int i = 0; i < n; i++) cols[j][i] = Math.fma(dy[base + j], r[base + i], cols[j][i] * w[head * n + i]);
                }
            }
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) dState[head * n * n + i * n + j] = rows[i][j];
        }
        try (CpuBackend cpu = new CpuBackend()) {
            Tensor tr = up(cpu, r, steps, c), tk = up(cpu, k, steps, c), tv = up(cpu, v, steps, c), tdy = up(cpu, dy, steps, c);
            Tensor tw = up(cpu, w, h, n), tu = up(cpu, u, h, n), ts0 = up(cpu, s0, h, n, n), tdS = up(cpu, dS, h, n, n);
            Tensor tdr = cpu.zeros(steps, c), tdk = cpu.zeros(steps, c), tdv = cpu.zeros(steps, c), tdw = cpu.zeros(h, n), tdu = cpu.zeros(h, n);
            cpu.wkvBackward(tr, tk, tv, tw, tu, ts0, tdy, tdS, tdr, tdk, tdv, tdw, tdu);
            check("dr", cpu.download(tdr).data(), dr);
            check("dk", cpu.download(tdk).data(), dk);
            check("dv", cpu.download(tdv).data(), dv);
            check("dw", cpu.download(tdw).data(), dw);
            check("du", cpu.download(tdu).data(), du);
            check("dS0", cpu.download(tdS).data(), dState);
        }
    }

    private static Tensor up(CpuBackend be, float[] d, int... shape) { return be.upload(new HostTensor(shape, d.clone())); }

    private static float[] g(Random rnd, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (scale * rnd.nextGaussian());
        return a;
    }

    private static void check(String what, float[] ref, float[] got) {
        double e = CudaParityTest.relErr(ref, got);
        assertTrue(e <= 1e-5, what + ": relative error " + e);
    }
}
