package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.ChunkedBptt;
import ai.longrwkv.core.train.TokenSequence;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * GPU benchmarks for scripts/gpu-check.sh, one "| name | value |" row per measurement on stdout (medians of several
 * runs after a warm-up, each timed up to a device synchronisation):
 * <ul>
 *   <li>{@code wkv}: the WKV forward and backward kernels, sequential (wkv5.cu), chunked fp32 FMA and chunked on tensor
 *       cores (wkv5_chunked.cu; bf16 inputs, launched directly) side by side, at T=4096 and 32768, H=64, N=64 (the 7B
 *       shape's heads), ms;</li>
 *   <li>{@code gemm}: TFLOP/s of the matrix products of the L24-C1024 and L32-C4096 shapes for a 4096-token chunk
 *       (the r/k/v/g/o projections, the FFN's key and value, the head), fp32 (sgemm) and with bf16 weights
 *       (cublasGemmEx; fp32 activations rounded per call, and bf16 activations) side by side;</li>
 *   <li>{@code train}: a full-BPTT forward+backward step, tokens/s, at the L24-C1024 (ctx 16384, chunk 4096) and
 *       L32-C4096 (ctx 4096, chunk 2048) shapes with random weights, and the peak device memory.</li>
 * </ul>
 * Usage: {@code CudaBench [--device cuda|emulated] [--quick] [wkv] [gemm] [train | train-l24 | train-l32]} (all parts
 * when none is named);
 * --quick uses tiny shapes (for checking the script on the emulated device). Exit code 3 when the device cannot be used.
 */
public final class CudaBench {
    /** Dense bf16 tensor-core peak of an H100 SXM, the usual MFU denominator (the fp32 path cannot approach it). */
    static final double H100_BF16_PEAK = 989e12;
    private static boolean quick;

    private CudaBench() { }

    public static void main(String[] args) {
        List<String> what = new ArrayList<>();
        String device = "cuda";
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--device")) device = args[++i];
            else if (args[i].equals("--quick")) quick = true;
            else if (args[i].equals("--full")) quick = false;
            else what.add(args[i]);
        }
        if (what.isEmpty()) what = List.of("wkv", "gemm", "train");
        if (what.contains("train")) { what = new ArrayList<>(what); what.add("train-l24"); what.add("train-l32"); }
        Backend be;
        try {
            be = Backends.create(device);
        } catch (IllegalArgumentException e) {
            System.out.println("| " + device + " | unavailable: " + e.getMessage() + " |");
            System.exit(3);
            return;
        }
        try (Backend b = be) {
            CudaBackend gpu = (CudaBackend) b;
            System.out.println("| device | " + gpu.device.description() + " |");
            if (what.contains("wkv")) {
                // the sequential and the chunked kernels side by side, each through a backend that forces it
                CudaBackend sequential = forcing(gpu, WkvImpl.SEQUENTIAL), chunked = forcing(gpu, WkvImpl.CHUNKED);
                for (int steps : quick ? new int[]{64, 100} : new int[]{4096, 32768}) {
                    int heads = quick ? 2 : 64;
                    double seq = wkv(sequential, steps, heads, 64, "sequential");
                    sequential.trimPool();
                    double chk = wkv(chunked, steps, heads, 64, "chunked");
                    chunked.trimPool();
                    System.out.printf("| wkv fwd+bwd T=%d H=%d N=64 chunked vs sequential | %.2fx faster (%.3f vs %.3f ms; target <= 15 ms at T=32768) |%n",
                            steps, heads, seq / chk, chk * 1e3, seq * 1e3);
                    double tc = wkvTensorCores(gpu, steps, heads, 64);
                    gpu.trimPool();
                    System.out.printf("| wkv fwd+bwd T=%d H=%d N=64 tensor cores (bf16 inputs) vs chunked fp32 FMA | %.2fx faster (%.3f vs %.3f ms; target <= 15 ms at T=32768) |%n",
                            steps, heads, chk / tc, tc * 1e3, chk * 1e3);
                }
            }
            if (what.contains("gemm")) gemm(gpu);
            if (quick && (what.contains("train-l24") || what.contains("train-l32"))) {
                train(gpu, new ModelConfig(2, 128, 2, 64, 448, 256, ModelConfig.OFFICIAL_GROUP_NORM_EPS), "L2-C128", new int[]{64}, 32);
            } else {
                if (what.contains("train-l24")) {
                    train(gpu, new ModelConfig(24, 1024, 16, 64, 3584, 65536, ModelConfig.OFFICIAL_GROUP_NORM_EPS), "L24-C1024",
                            new int[]{4096, 16384}, 4096);
                }
                if (what.contains("train-l32")) {
                    train(gpu, new ModelConfig(32, 4096, 64, 64, 14336, 65536, ModelConfig.OFFICIAL_GROUP_NORM_EPS), "L32-C4096",
                            new int[]{4096}, 2048);
                }
            }
        }
    }

    /** The products of one chunk of T tokens of a C-wide model with FFN width F and vocabulary V, forward only. */
    static void gemm(CudaBackend be) {
        int t = quick ? 64 : 4096;
        int[][] shapes = quick ? new int[][]{{128, 448, 256}} : new int[][]{{1024, 3584, 65536}, {4096, 14336, 65536}};
        SplittableRandom rnd = new SplittableRandom(3);
        for (int[] s : shapes) {
            int c = s[0], f = s[1], v = s[2];
            // name, M (=T), N (out features), K (in features)
            Object[][] products = {{"att r/k/v/g/o [T,C]x[C,C]^T", c, c}, {"ffn key [T,C]x[F,C]^T", f, c},
                    {"ffn value [T,F]x[C,F]^T", c, f}, {"head [T,C]x[V,C]^T", v, c}};
            for (Object[] p : products) {
                int n = (Integer) p[1], k = (Integer) p[2];
                try (Tensor x = random(be, rnd, 1, t, k); Tensor w = random(be, rnd, 0.02, n, k); Tensor y = be.zeros(t, n);
                     Tensor w16 = be.zeros(DType.BF16, n, k); Tensor x16 = be.zeros(DType.BF16, t, k)) {
                    be.copy(w, w16);
                    be.copy(x, x16);
                    double flops = 2.0 * t * n * k;
                    double sec = medianSeconds(() -> be.matmul(x, false, w, true, y, 1f, 0f), be, 5);
                    System.out.printf("| gemm C=%d %s T=%d | %.3f ms, %.1f TFLOP/s |%n", c, p[0], t, sec * 1e3, flops / sec / 1e12);
                    // bf16 weights as the model keeps them: the fp32 activations are rounded into a workspace per call
                    double mixed = medianSeconds(() -> be.matmul(x, false, w16, true, y, 1f, 0f), be, 5);
                    double both = medianSeconds(() -> be.matmul(x16, false, w16, true, y, 1f, 0f), be, 5);
                    System.out.printf("| gemm C=%d %s T=%d, bf16 weights (fp32 x rounded per call / bf16 x) | %.3f / %.3f ms, "
                                    + "%.1f / %.1f TFLOP/s, %.2fx / %.2fx the fp32 rate |%n", c, p[0], t, mixed * 1e3, both * 1e3,
                            flops / mixed / 1e12, flops / both / 1e12, sec / mixed, sec / both);
                }
            }
        }
    }

    private static Tensor random(Backend be, SplittableRandom rnd, double scale, int... shape) {
        HostTensor h = HostTensor.zeros(shape);
        float[] d = h.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) (scale * (rnd.nextDouble() * 2 - 1));
        return be.upload(h);
    }

    private static double medianSeconds(Runnable work, CudaBackend be, int reps) {
        work.run();              // warm-up (first launch, caches)
        be.synchronize();
        double[] s = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            work.run();
            be.synchronize();
            s[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(s);
        return s[reps / 2];
    }

    /** A second backend on gpu's device whose WKV is forced to impl (it shares the device, so it is never closed). */
    static CudaBackend forcing(CudaBackend gpu, WkvImpl impl) {
        String saved = System.getProperty(WkvImpl.PROPERTY);
        System.setProperty(WkvImpl.PROPERTY, impl.label());
        try {
            return new CudaBackend(gpu.device);
        } finally {
            if (saved == null) System.clearProperty(WkvImpl.PROPERTY);
            else System.setProperty(WkvImpl.PROPERTY, saved);
        }
    }

    /** Forward and backward of one layer's WKV; returns the forward+backward seconds. */
    static double wkv(CudaBackend be, int steps, int heads, int n, String impl) {
        SplittableRandom rnd = new SplittableRandom(1);
        int c = heads * n;
        List<Tensor> all = new ArrayList<>();
        Tensor r = random(be, rnd, 0.5, steps, c), k = random(be, rnd, 0.5, steps, c), v = random(be, rnd, 0.5, steps, c);
        Tensor td = random(be, rnd, 1, heads, n), w = be.zeros(heads, n), u = random(be, rnd, 0.5, heads, n);
        Tensor state = random(be, rnd, 0.5, heads, n, n), s0 = be.zeros(heads, n, n), y = be.zeros(steps, c), dy = random(be, rnd, 1, steps, c);
        Tensor dState = be.zeros(heads, n, n), dr = be.zeros(steps, c), dk = be.zeros(steps, c), dv = be.zeros(steps, c);
        Tensor dw = be.zeros(heads, n), du = be.zeros(heads, n);
        all.addAll(List.of(r, k, v, td, w, u, state, s0, y, dy, dState, dr, dk, dv, dw, du));
        be.decay(td, w);
        be.copy(state, s0);
        double fwd = medianSeconds(() -> be.wkvForward(r, k, v, w, u, state, y), be, 5);
        double bwd = medianSeconds(() -> be.wkvBackward(r, k, v, w, u, s0, dy, dState, dr, dk, dv, dw, du), be, 5);
        double act = (double) steps * c * 4;            // bytes of one [T, C] fp32 tensor (the same nominal traffic
                                                        // for both implementations: an effective bandwidth)
        double fwdBytes = 4 * act;                      // r, k, v read, y written
        double bwdBytes = 11 * act;                     // state scan: r k v dy + dr; reverse scan: r k v dy + dk dv
        String shape = "T=" + steps + " H=" + heads + " N=" + n + " (" + impl + " kernels)";
        System.out.printf("| wkv fwd %s | %.3f ms, %.1f GB/s |%n", shape, fwd * 1e3, fwdBytes / fwd / 1e9);
        System.out.printf("| wkv bwd %s | %.3f ms, %.1f GB/s |%n", shape, bwd * 1e3, bwdBytes / bwd / 1e9);
        System.out.printf("| wkv fwd+bwd %s | %.3f ms, %.1f GB/s, %.0f tokens/s |%n", shape, (fwd + bwd) * 1e3,
                (fwdBytes + bwdBytes) / (fwd + bwd) / 1e9, steps / (fwd + bwd));
        for (Tensor t : all) t.close();
        return fwd + bwd;
    }

    /**
     * The tensor-core WKV kernels (wkv5t_*, bf16 r, k, v, u) launched directly, as the backend would for bf16 tensors:
     * forward, then backward = chunk-start states + tensor-core backward + tile reduction; returns forward+backward seconds.
     */
    static double wkvTensorCores(CudaBackend be, int steps, int heads, int n) {
        SplittableRandom rnd = new SplittableRandom(1);
        int c = heads * n, tiles = CudaBackend.wkvTiles(n), blocks = heads * tiles, threads = KernelSources.WKV_CHUNK_THREADS;
        int chunks = (steps + KernelSources.WKV_CHUNK_LEN - 1) / KernelSources.WKV_CHUNK_LEN;
        List<Tensor> all = new ArrayList<>();
        Tensor r = bf16(be, rnd, 0.5, steps * c), k = bf16(be, rnd, 0.5, steps * c), v = bf16(be, rnd, 0.5, steps * c), u = bf16(be, rnd, 0.5, c);
        Tensor td = random(be, rnd, 1, heads, n), w = be.zeros(heads, n), state = random(be, rnd, 0.5, heads, n, n), s0 = be.zeros(heads, n, n);
        Tensor y = be.zeros(steps, c), dy = random(be, rnd, 1, steps, c), dState = be.zeros(heads, n, n);
        Tensor dr = be.zeros(steps, c), dk = be.zeros(steps, c), dv = be.zeros(steps, c), dw = be.zeros(heads, n), du = be.zeros(heads, n);
        Tensor states = be.zeros(heads, chunks, n * n), grp = be.zeros(tiles, steps, c), gkp = be.zeros(tiles, steps, c);
        Tensor dwp = be.zeros(tiles, c), dup = be.zeros(tiles, c);
        all.addAll(List.of(r, k, v, u, td, w, state, s0, y, dy, dState, dr, dk, dv, dw, du, states, grp, gkp, dwp, dup));
        be.decay(td, w);
        be.copy(state, s0);
        Kernel fwd = new Kernel(be.device, be.device.function("wkv5_chunked", CudaBackend.wkvForwardKernel(n, true)));
        Kernel scan = new Kernel(be.device, be.device.function("wkv5_chunked", "wkv5c_states_n" + n + "_bf16"));
        Kernel back = new Kernel(be.device, be.device.function("wkv5_chunked", CudaBackend.wkvBackwardKernel(n, true)));
        Kernel reduce = new Kernel(be.device, be.device.function("wkv5_chunked", "wkv5c_reduce"));
        long tc = (long) steps * c;
        double f = medianSeconds(() -> fwd.launch(blocks, threads, 0, steps, c, r, k, v, w, u, state, y), be, 5);
        double b = medianSeconds(() -> {
            scan.launch(blocks, threads, 0, steps, c, k, v, w, s0, states);
            back.launch(blocks, threads, 0, steps, c, r, k, v, w, u, dy, states, dState, dv, grp, gkp, dwp, dup);
            reduce.launch((int) Math.min((tc + 255) / 256, 65535), 256, 0, tiles, tc, c, grp, gkp, dwp, dup, dr, dk, dw, du);
        }, be, 5);
        String shape = "T=" + steps + " H=" + heads + " N=" + n + " (tensor-core kernels, bf16 inputs)";
        System.out.printf("| wkv fwd %s | %.3f ms |%n", shape, f * 1e3);
        System.out.printf("| wkv bwd %s | %.3f ms |%n", shape, b * 1e3);
        System.out.printf("| wkv fwd+bwd %s | %.3f ms, %.0f tokens/s |%n", shape, (f + b) * 1e3, steps / (f + b));
        for (Tensor t : all) t.close();
        return f + b;
    }

    /** count bf16 values (uniform in +-scale, rounded to nearest even) packed two per fp32 slot, low half first. */
    private static Tensor bf16(Backend be, SplittableRandom rnd, double scale, int count) {
        HostTensor h = HostTensor.zeros((count + 1) / 2);
        for (int i = 0; i < h.size(); i++) {
            int lo = bf16Bits((float) (scale * (rnd.nextDouble() * 2 - 1))), hi = bf16Bits((float) (scale * (rnd.nextDouble() * 2 - 1)));
            h.data()[i] = Float.intBitsToFloat(lo | hi << 16);
        }
        return be.upload(h);
    }

    private static int bf16Bits(float x) {
        int b = Float.floatToRawIntBits(x);
        return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }

    /** Random weights drawn fast (the x052 init's orthogonal matrices would take minutes on the host for V=65536). */
    static ModelWeights randomWeights(ModelConfig cfg) {
        SplittableRandom rnd = new SplittableRandom(7);
        Map<String, HostTensor> m = new LinkedHashMap<>();
        for (ParamSpec p : ParamSpec.all(cfg)) {
            HostTensor t = HostTensor.zeros(p.shape());
            float[] d = t.data();
            double scale = p.shape().length == 2 ? 1.0 / Math.sqrt(p.shape()[1]) : 0.5;
            for (int i = 0; i < d.length; i++) d[i] = (float) (scale * (rnd.nextDouble() * 2 - 1));
            switch (p.kind()) {
                case ATT_DECAY -> Arrays.fill(d, -1f);
                case LN0_W, LN1_W, LN2_W, LN_OUT_W, ATT_LNX_W -> Arrays.fill(d, 1f);
                default -> { }
            }
            m.put(p.key(), t);
        }
        return new ModelWeights(m, "bench-random", cfg.groupNormEps());
    }

    static void train(CudaBackend be, ModelConfig cfg, String label, int[] contexts, int chunk) {
        try (Rwkv5Model model = Rwkv5Model.load(be, randomWeights(cfg), cfg.groupNormEps());
             ParamSet grads = ParamSet.zeros(be, cfg)) {
            for (int ctx : contexts) {
                SplittableRandom rnd = new SplittableRandom(ctx);
                int[] tokens = new int[ctx];
                for (int t = 0; t < ctx; t++) tokens[t] = rnd.nextInt(cfg.vocabSize());
                TokenSequence seq = TokenSequence.nextToken(tokens);
                Runnable step = () -> {
                    try (RwkvState s0 = model.newState()) {
                        ChunkedBptt.Result r = ChunkedBptt.run(model, seq, s0, grads, new ChunkedBptt.Options(chunk, BpttMode.FULL, true), false, null);
                        r.finalState().close();
                    }
                };
                be.trimPool();
                be.resetPeakBytes();
                double s = medianSeconds(step, be, ctx <= 4096 && cfg.nEmbd() <= 1024 ? 3 : 1);
                double flops = 6.0 * cfg.parameterCount() * ctx;   // the usual 6 N T; full BPTT recomputes more
                System.out.printf("| train %s ctx %d chunk %d full BPTT | %.2f s/step, %.0f tokens/s, %.1f TFLOP/s, MFU %.1f%% (H100 bf16 peak) |%n",
                        label, ctx, chunk, s, ctx / s, flops / s / 1e12, 100 * flops / s / H100_BF16_PEAK);
                System.out.printf("| peak device memory %s ctx %d | %.2f GiB (tensors), %.2f GiB in pool |%n", label, ctx,
                        be.peakBytes() / (double) (1L << 30), be.pooledBytes() / (double) (1L << 30));
            }
        }
    }
}
