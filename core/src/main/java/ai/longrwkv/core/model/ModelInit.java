package ai.longrwkv.core.model;

import ai.longrwkv.core.tensor.HostTensor;
import org.bytedeco.openblas.global.openblas;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * RWKV-LM's x052 initialisation for training from scratch (rwkv5-spec.md §4), deterministic for a given seed: each
 * tensor draws from its own generator seeded by (seed, key), so values do not depend on the order tensors are made.
 */
public final class ModelInit {
    private ModelInit() { }

    public static ModelWeights x052(ModelConfig cfg, long seed) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (ParamSpec p : ParamSpec.all(cfg)) out.put(p.key(), tensor(cfg, p, seed, false));
        return new ModelWeights(out, "init(x052, seed=" + seed + ")", cfg.groupNormEps());
    }

    /**
     * The same initialisation, made one tensor at a time when read (a writer streams it to a file, so a 7.5B model is
     * never in memory whole), with the long-memory channels and heads of {@link #setMemoryChannels} applied (0: none).
     * {@code gaussianMatrices}: for memory and speed tests of large shapes, the orthogonal matrices replaced by Gaussian
     * ones of the same scale (each value N(0, gain^2 / max(out, in)), the variance of an orthogonal matrix's entries:
     * the QR factorisations of a 7B shape take tens of minutes on a small machine), and the output projections x052
     * starts at zero (att.output, ffn.value, ffn.receptance) Gaussian with gain 0.5, so that every block, and with it
     * the state, changes the logits: with them at zero the state's gradient is exactly 0 and state tuning would only
     * time a no-op.
     */
    public static ModelWeights x052Lazy(ModelConfig cfg, long seed, int memoryChannels, double memoryDecay, boolean gaussianMatrices) {
        return x052Lazy(cfg, seed, memoryChannels, 0, memoryDecay, gaussianMatrices);
    }

    /** As {@link #x052Lazy(ModelConfig, long, int, double, boolean)}, with the last {@code memoryHeads} heads all long-memory. */
    public static ModelWeights x052Lazy(ModelConfig cfg, long seed, int memoryChannels, int memoryHeads, double memoryDecay,
                                        boolean gaussianMatrices) {
        checkMemory(cfg, memoryChannels, memoryHeads, memoryDecay);
        Map<String, ModelWeights.Entry> entries = new LinkedHashMap<>();
        for (ParamSpec p : ParamSpec.all(cfg)) {
            entries.put(p.key(), new ModelWeights.Entry() {
                @Override public int[] shape() { return p.shape(); }
                @Override public String dtype() { return "F32"; }
                @Override public HostTensor load() {
                    HostTensor t = tensor(cfg, p, seed, gaussianMatrices);
                    if (p.kind() == ParamSpec.Kind.ATT_DECAY) memoryChannels(t, cfg, memoryChannels, memoryHeads, memoryDecay);
                    return t;
                }
            });
        }
        return ModelWeights.lazy(entries, "init(x052" + (gaussianMatrices ? ", gaussian matrices" : "") + ", seed=" + seed + ")", cfg.groupNormEps());
    }

    private static HostTensor tensor(ModelConfig cfg, ParamSpec p, long seed, boolean gaussianMatrices) {
        int L = cfg.nLayer(), C = cfg.nEmbd(), V = cfg.vocabSize();
        HostTensor t = HostTensor.zeros(p.shape());
        float[] d = t.data();
        Random rnd = new Random(seed * 0x9E3779B97F4A7C15L ^ p.key().hashCode());
        int l = p.layer();
        // ratio_0_to_1 = l/(L-1) (RWKV-LM divides by zero for L = 1; we take 0) and ratio_1_to_almost0 = 1 - l/L
        double r0 = L > 1 && l >= 0 ? (double) l / (L - 1) : 0.0;
        double r1 = l >= 0 ? 1.0 - (double) l / L : 1.0;
        switch (p.kind()) {
            case ATT_MIX_K, FFN_MIX_K, FFN_MIX_R -> fillDdd(d, C, r1, 0.0);
            case ATT_MIX_V -> fillDdd(d, C, r1, 0.3 * r0);
            case ATT_MIX_R, ATT_MIX_G -> fillDdd(d, C, 0.5 * r1, 0.0);
            case ATT_DECAY -> {
                for (int n = 0; n < C; n++) d[n] = (float) (-6 + 5 * Math.pow(n / (double) (C - 1), 0.7 + 1.3 * r0));
            }
            case ATT_FAAAA -> {
                for (int n = 0; n < C; n++) d[n] = (float) (r0 * (1 - n / (double) (C - 1)) + ((n + 1) % 3 - 1) * 0.1);
            }
            case LN0_W, LN1_W, LN2_W, LN_OUT_W -> java.util.Arrays.fill(d, 1f);
            case ATT_LNX_W -> java.util.Arrays.fill(d, (float) Math.pow((1.0 + l) / L, 0.7));
            case LN0_B, LN1_B, LN2_B, LN_OUT_B, ATT_LNX_B -> { }
            case EMB -> {
                for (int i = 0; i < d.length; i++) d[i] = (float) (rnd.nextDouble() * 2e-4 - 1e-4);
            }
            case HEAD -> matrix(t, V > C ? 0.5 * Math.sqrt((double) V / C) : 0.5, rnd, gaussianMatrices);
            case ATT_R, ATT_V, FFN_K -> matrix(t, 1.0, rnd, gaussianMatrices);
            case ATT_K, ATT_G -> matrix(t, 0.1, rnd, gaussianMatrices);
            case ATT_O, FFN_V, FFN_R -> {
                // zeros in x052; the shape-test variant gives them values too, so that every block (and the state) moves the output
                if (gaussianMatrices) matrix(t, 0.5, rnd, true);
            }
        }
        return t;
    }

    private static void matrix(HostTensor t, double gain, Random rnd, boolean gaussian) {
        if (!gaussian) {
            orthogonal(t, gain, rnd);
            return;
        }
        double sd = gain / Math.sqrt(Math.max(t.dim(0), t.dim(1)));
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) (rnd.nextGaussian() * sd);
    }

    /**
     * Long-memory channels: sets time_decay of the first {@code channels} key channels of every head, in every layer,
     * to {@code decay}. The per-token decay is w = exp(-exp(decay)); x052's init spans decay -6..-1 (w 0.9975..0.69,
     * a memory of at most a few hundred tokens), so a model trained from it on short sequences has no channel that
     * keeps a pass key for 100k tokens. decay -16 gives w = 1 - 1.1e-7: 98.6% of what was written survives 131072 tokens.
     */
    public static void setMemoryChannels(ModelWeights w, ModelConfig cfg, int channels, double decay) {
        setMemoryChannels(w, cfg, channels, 0, decay);
    }

    /**
     * As {@link #setMemoryChannels(ModelWeights, ModelConfig, int, double)}, and every key channel of the last
     * {@code heads} heads of every layer too: memory heads. Why heads of their own: a channel that never forgets sums
     * every write, so its part of the state grows with the prompt (linearly with filler), and ln_x normalises each
     * head as one group; long channels inside a head with short ones swamp the short channels' output at some length
     * (README, "Where 128k fails"), while a head of only long channels is normalised on its own.
     */
    public static void setMemoryChannels(ModelWeights w, ModelConfig cfg, int channels, int heads, double decay) {
        checkMemory(cfg, channels, heads, decay);
        for (int l = 0; l < cfg.nLayer(); l++) {
            HostTensor t = w.tensors().get("blocks." + l + ".att.time_decay");
            if (t == null) throw new IllegalArgumentException("the model has no blocks." + l + ".att.time_decay");
            memoryChannels(t, cfg, channels, heads, decay);
        }
    }

    private static void checkMemory(ModelConfig cfg, int channels, int heads, double decay) {
        if (channels < 0 || channels > cfg.headSize()) {
            throw new IllegalArgumentException("memory channels must be 0.." + cfg.headSize() + " (the head size), got " + channels);
        }
        if (heads < 0 || heads > cfg.nHead()) {
            throw new IllegalArgumentException("memory heads must be 0.." + cfg.nHead() + " (the heads per layer), got " + heads);
        }
        if (!Double.isFinite(decay)) throw new IllegalArgumentException("memory decay must be a finite number, got " + decay);
    }

    private static void memoryChannels(HostTensor timeDecay, ModelConfig cfg, int channels, int heads, double decay) {
        int n = cfg.headSize();
        float[] d = timeDecay.data();
        for (int h = 0; h < cfg.nHead(); h++) {
            int longChannels = h >= cfg.nHead() - heads ? n : channels;
            for (int i = 0; i < longChannels; i++) d[h * n + i] = (float) decay;
        }
    }

    /** d[i] = (i/C)^power + add. */
    private static void fillDdd(float[] d, int c, double power, double add) {
        for (int i = 0; i < c; i++) d[i] = (float) (Math.pow(i / (double) c, power) + add);
    }

    /**
     * Like torch.nn.init.orthogonal_ on an [out, in] matrix: QR of a Gaussian matrix (the taller orientation),
     * Q's columns sign-corrected by diag(R) so the result is uniformly distributed, times gain.
     */
    static void orthogonal(HostTensor t, double gain, Random rnd) {
        int rows = t.dim(0), cols = t.dim(1);
        boolean transpose = rows < cols;
        int m = transpose ? cols : rows, n = transpose ? rows : cols;   // m >= n
        float[] a = new float[m * n];   // row-major [m, n]
        for (int i = 0; i < a.length; i++) a[i] = (float) rnd.nextGaussian();
        float[] tau = new float[n];
        check(openblas.LAPACKE_sgeqrf(openblas.LAPACK_ROW_MAJOR, m, n, a, n, tau), "sgeqrf");
        float[] sign = new float[n];
        for (int j = 0; j < n; j++) sign[j] = a[j * n + j] < 0 ? -1f : 1f;
        check(openblas.LAPACKE_sorgqr(openblas.LAPACK_ROW_MAJOR, m, n, n, a, n, tau), "sorgqr");
        float[] out = t.data();
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                float q = (float) (a[i * n + j] * sign[j] * gain);
                if (transpose) out[j * cols + i] = q; else out[i * cols + j] = q;
            }
        }
    }

    private static void check(int info, String what) {
        if (info != 0) throw new IllegalStateException("LAPACK " + what + " failed with info " + info);
    }
}
