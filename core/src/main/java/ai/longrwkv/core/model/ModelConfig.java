package ai.longrwkv.core.model;

import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Dimensions of an x052 model, derived from its weights, never assumed: the head size N is C / H with H read from
 * {@code time_decay}'s first dimension (the rwkv.cpp oracle model has N = 8, official models N = 64).
 *
 * @param nLayer     L
 * @param nEmbd      C (dim_att is C in every x052 release; a different dim_att is refused)
 * @param nHead      H
 * @param headSize   N = C / H
 * @param dimFfn     F
 * @param vocabSize  V
 * @param groupNormEps eps of the ln_x GroupNorm: 64e-5 for official x052 checkpoints, 1e-5 for rwkv.cpp files
 */
public record ModelConfig(int nLayer, int nEmbd, int nHead, int headSize, int dimFfn, int vocabSize, double groupNormEps) {

    /** LayerNorm eps of ln0, ln1, ln2, ln_out (torch default). */
    public static final double LAYER_NORM_EPS = 1e-5;
    /** ln_x eps of official x052 checkpoints: RWKV-LM's ln_x(x / head_size_divisor=8) with eps 1e-5 = eps 64e-5 on x. */
    public static final double OFFICIAL_GROUP_NORM_EPS = 64e-5;
    /** ln_x eps of rwkv.cpp's v5 graph (ggml_norm 1e-5), which its tiny test models reproduce. */
    public static final double RWKV_CPP_GROUP_NORM_EPS = 1e-5;

    public ModelConfig {
        if (nLayer < 1 || nEmbd < 1 || nHead < 1 || headSize < 1 || dimFfn < 1 || vocabSize < 1) {
            // (not `this`: the fields are not assigned yet in a compact constructor and would all print as 0)
            throw new IllegalArgumentException("every model dimension must be positive, got L=" + nLayer + " C=" + nEmbd
                    + " H=" + nHead + " N=" + headSize + " F=" + dimFfn + " V=" + vocabSize);
        }
        if (nHead * headSize != nEmbd) {
            throw new IllegalArgumentException("n_head " + nHead + " x head_size " + headSize + " != n_embd " + nEmbd);
        }
        if (!(groupNormEps > 0)) throw new IllegalArgumentException("groupNormEps must be > 0, got " + groupNormEps);
    }

    /** x052 defaults for a model built from scratch: F = int(C*3.5)//32*32. */
    public static ModelConfig forInit(int nLayer, int nEmbd, int headSize, int vocabSize) {
        if (nLayer < 1) throw new IllegalArgumentException("--layers must be >= 1, got " + nLayer);
        if (nEmbd < 1) throw new IllegalArgumentException("--embd must be >= 1, got " + nEmbd);
        if (headSize < 1) throw new IllegalArgumentException("--head-size must be >= 1, got " + headSize);
        if (vocabSize < 1) throw new IllegalArgumentException("--vocab must be >= 1, got " + vocabSize);
        if (nEmbd % headSize != 0) {
            throw new IllegalArgumentException("n_embd " + nEmbd + " is not a multiple of head_size " + headSize);
        }
        int ffn = (int) ((long) (nEmbd * 3.5) / 32 * 32);
        return new ModelConfig(nLayer, nEmbd, nEmbd / headSize, headSize, Math.max(ffn, 32), vocabSize, OFFICIAL_GROUP_NORM_EPS);
    }

    public ModelConfig withGroupNormEps(double eps) {
        return new ModelConfig(nLayer, nEmbd, nHead, headSize, dimFfn, vocabSize, eps);
    }

    /**
     * Derives the dimensions from the weights and checks that every tensor an x052 model needs is there with a shape
     * that fits. Any problem is reported with the file (weights.source()) and the key.
     */
    public static ModelConfig fromWeights(ModelWeights weights, double groupNormEps) {
        String src = weights.source();
        checkArchitecture(weights);
        int[] emb = weights.shape("emb.weight");
        if (emb.length != 2) throw bad(src, "emb.weight", "[V, C]", emb);
        int vocab = emb[0], c = emb[1];
        int layers = 0;
        while (weights.has("blocks." + layers + ".ln1.weight")) layers++;
        if (layers == 0) throw new ModelFormatException(src + ": no 'blocks.0.ln1.weight' tensor; this is not an RWKV model");
        int[] td = weights.shape("blocks.0.att.time_decay");
        if (td.length != 2) throw bad(src, "blocks.0.att.time_decay", "[H, N]", td);
        int h = td[0], n = td[1];
        if (h * n != c) {
            throw new ModelFormatException(src + ": blocks.0.att.time_decay has shape " + HostTensor.shapeString(td)
                    + " but H*N must equal n_embd = " + c + " (from emb.weight); dim_att != n_embd is not supported");
        }
        int[] ffnKey = weights.shape("blocks.0.ffn.key.weight");
        if (ffnKey.length != 2) throw bad(src, "blocks.0.ffn.key.weight", "[F, C]", ffnKey);
        int f = ffnKey[0];
        ModelConfig cfg = new ModelConfig(layers, c, h, n, f, vocab, groupNormEps);
        List<String> problems = new ArrayList<>();
        for (ParamSpec p : ParamSpec.all(cfg)) {
            if (!weights.has(p.key())) {
                problems.add("missing '" + p.key() + "' " + Arrays.toString(p.shape()));
            } else if (!Arrays.equals(weights.shape(p.key()), p.shape())) {
                problems.add("'" + p.key() + "' has shape " + Arrays.toString(weights.shape(p.key()))
                        + ", expected " + Arrays.toString(p.shape()));
            }
        }
        if (!problems.isEmpty()) {
            int shown = Math.min(problems.size(), 8);
            throw new ModelFormatException(src + ": tensors do not fit an x052 model with L=" + layers + " C=" + c
                    + " H=" + h + " N=" + n + " F=" + f + " V=" + vocab + ": " + String.join("; ", problems.subList(0, shown))
                    + (problems.size() > shown ? "; and " + (problems.size() - shown) + " more" : ""));
        }
        return cfg;
    }

    /** Refuses other RWKV generations with a message saying what was found. */
    public static void checkArchitecture(ModelWeights w) {
        String src = w.source();
        boolean lnx = w.has("blocks.0.att.ln_x.weight");
        boolean gate = w.has("blocks.0.att.gate.weight");
        boolean v6 = w.has("blocks.0.att.time_maa_x") || w.has("blocks.0.att.time_decay_w1");
        boolean v7 = w.has("blocks.0.att.x_r") || w.has("blocks.0.att.w0");
        String found;
        if (v7) found = "RWKV-7 (x070) keys such as att.x_r / att.w0";
        else if (v6) found = "RWKV-6 (x060) keys such as att.time_maa_x";
        else if (!w.has("blocks.0.att.time_decay") && !v7) found = "no blocks.0.att.time_decay";
        else if (!lnx) found = "no att.ln_x (an RWKV-4 model)";
        else if (!gate) found = "att.ln_x but no att.gate (an RWKV-5.0/5.1 model)";
        else {
            int[] td = w.shape("blocks.0.att.time_decay");
            if (td.length == 2 && td[1] > 1) return;
            found = "att.gate with one time_decay per head, shape " + HostTensor.shapeString(td) + " (RWKV-5.1)";
        }
        throw new ModelFormatException(src + ": not an RWKV-5.2 (x052) model: found " + found
                + "; x052 needs att.gate.weight and att.time_decay of shape [H, N]");
    }

    private static ModelFormatException bad(String src, String key, String expected, int[] shape) {
        return new ModelFormatException(src + ": '" + key + "' has shape " + HostTensor.shapeString(shape) + ", expected " + expected);
    }

    /** Parameter count of the model these dimensions describe. */
    public long parameterCount() {
        long n = 0;
        for (ParamSpec p : ParamSpec.all(this)) n += HostTensor.numel(p.shape());
        return n;
    }

    @Override
    public String toString() {
        return "L" + nLayer + "-C" + nEmbd + " (H=" + nHead + " N=" + headSize + " F=" + dimFfn + " V=" + vocabSize
                + " ln_x eps=" + groupNormEps + ")";
    }
}
