package ai.longrwkv.core.model;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * All parameters of an x052 model on one backend, by .pth key and by role. The same class holds the parameters and
 * their gradients, so that the backward pass writes into exactly the structure the forward pass reads.
 */
public final class ParamSet implements AutoCloseable {

    /** The tensors of one block, named after their keys. */
    public static final class Layer {
        public Tensor ln1W, ln1B, ln2W, ln2B;
        public Tensor attMixK, attMixV, attMixR, attMixG, timeDecay, timeFaaaa;
        public Tensor attR, attK, attV, attO, attG, lnxW, lnxB;
        public Tensor ffnMixK, ffnMixR, ffnK, ffnR, ffnV;
    }

    private final ModelConfig config;
    private final LinkedHashMap<String, Tensor> byKey = new LinkedHashMap<>();
    /** Keys whose tensor belongs to another set (a working copy shares the master's small parameters). */
    private final java.util.Set<String> borrowed = new java.util.HashSet<>();
    public Tensor emb, ln0W, ln0B, lnOutW, lnOutB, head;
    public final Layer[] layers;

    private ParamSet(ModelConfig config) {
        this.config = config;
        this.layers = new Layer[config.nLayer()];
        for (int l = 0; l < layers.length; l++) layers[l] = new Layer();
    }

    /** Uploads weights (already validated by {@link ModelConfig#fromWeights}) in fp32. */
    public static ParamSet upload(Backend be, ModelConfig config, ModelWeights weights) {
        return upload(be, config, weights, DType.F32);
    }

    /**
     * Uploads weights with the weight matrices in {@code matrices} (fp32 or bf16) and the rest in fp32
     * ({@link Precision}), one tensor at a time and each a block at a time ({@link ModelWeights#upload}), so a lazily
     * read 15 GB checkpoint never sits in Java memory whole, nor any of its tensors.
     */
    public static ParamSet upload(Backend be, ModelConfig config, ModelWeights weights, DType matrices) {
        ParamSet p = new ParamSet(config);
        float[] buffer = new float[ModelWeights.UPLOAD_BLOCK_VALUES];
        try {
            for (ParamSpec spec : ParamSpec.all(config)) p.put(spec, weights.upload(be, spec.key(), Precision.storage(spec, matrices), buffer));
        } catch (RuntimeException | Error e) {
            p.close();
            throw e;
        }
        return p;
    }

    /**
     * A working copy of an fp32 master for mixed-precision training: the weight matrices copied into new tensors of
     * {@code matrices} dtype, every other parameter the master's own tensor (shared, not copied; fp32 either way).
     * {@link #refreshFrom} brings it up to date after an optimizer step; closing it frees only its own copies.
     */
    public static ParamSet workingCopy(Backend be, ParamSet master, DType matrices) {
        ParamSet p = new ParamSet(master.config);
        for (ParamSpec spec : ParamSpec.all(master.config)) {
            Tensor m = master.get(spec.key());
            if (Precision.isMatrix(spec)) {
                Tensor t = be.zeros(matrices, spec.shape());
                be.copy(m, t);
                p.put(spec, t);
            } else {
                p.put(spec, m);
                p.borrowed.add(spec.key());
            }
        }
        return p;
    }

    /** Copies (rounding) the master's values of every tensor this set owns; see {@link #workingCopy}. */
    public void refreshFrom(Backend be, ParamSet master) {
        refreshFrom(be, master, byKey.keySet());
    }

    /** As {@link #refreshFrom(Backend, ParamSet)}, for the tensors named in {@code keys} only. */
    public void refreshFrom(Backend be, ParamSet master, java.util.Set<String> keys) {
        for (Map.Entry<String, Tensor> e : byKey.entrySet()) {
            if (!borrowed.contains(e.getKey()) && keys.contains(e.getKey())) be.copy(master.get(e.getKey()), e.getValue());
        }
    }

    /** The dtype of the weight matrices (the head's, which every model has). */
    public DType matrixDtype() {
        return head.dtype();
    }

    /** A zero tensor for every parameter (gradient accumulators). */
    public static ParamSet zeros(Backend be, ModelConfig config) {
        return zeros(be, config, spec -> true);
    }

    /**
     * Zero tensors for the selected parameters only; the others stay null, and the backward pass skips their
     * gradients (LoRA and state tuning never pay for the big weight gradients they do not use).
     */
    public static ParamSet zeros(Backend be, ModelConfig config, java.util.function.Predicate<ParamSpec> which) {
        ParamSet p = new ParamSet(config);
        for (ParamSpec spec : ParamSpec.all(config)) if (which.test(spec)) p.put(spec, be.zeros(spec.shape()));
        return p;
    }

    /**
     * A set of tensors the caller provides ({@code tensorFor} null: none for that parameter); the set closes none of
     * them (ZeRO 2's gradients: owned accumulators and shared scratch, closed by the trainer that made them).
     */
    public static ParamSet of(ModelConfig config, java.util.function.Function<ParamSpec, Tensor> tensorFor) {
        ParamSet p = new ParamSet(config);
        for (ParamSpec spec : ParamSpec.all(config)) {
            Tensor t = tensorFor.apply(spec);
            if (t == null) continue;
            p.put(spec, t);
            p.borrowed.add(spec.key());
        }
        return p;
    }

    private void put(ParamSpec spec, Tensor t) {
        byKey.put(spec.key(), t);
        Layer L = spec.layer() >= 0 ? layers[spec.layer()] : null;
        switch (spec.kind()) {
            case EMB -> emb = t;
            case LN0_W -> ln0W = t;
            case LN0_B -> ln0B = t;
            case LN_OUT_W -> lnOutW = t;
            case LN_OUT_B -> lnOutB = t;
            case HEAD -> head = t;
            case LN1_W -> L.ln1W = t;
            case LN1_B -> L.ln1B = t;
            case LN2_W -> L.ln2W = t;
            case LN2_B -> L.ln2B = t;
            case ATT_MIX_K -> L.attMixK = t;
            case ATT_MIX_V -> L.attMixV = t;
            case ATT_MIX_R -> L.attMixR = t;
            case ATT_MIX_G -> L.attMixG = t;
            case ATT_DECAY -> L.timeDecay = t;
            case ATT_FAAAA -> L.timeFaaaa = t;
            case ATT_R -> L.attR = t;
            case ATT_K -> L.attK = t;
            case ATT_V -> L.attV = t;
            case ATT_O -> L.attO = t;
            case ATT_G -> L.attG = t;
            case ATT_LNX_W -> L.lnxW = t;
            case ATT_LNX_B -> L.lnxB = t;
            case FFN_MIX_K -> L.ffnMixK = t;
            case FFN_MIX_R -> L.ffnMixR = t;
            case FFN_K -> L.ffnK = t;
            case FFN_R -> L.ffnR = t;
            case FFN_V -> L.ffnV = t;
        }
    }

    public ModelConfig config() { return config; }

    public Map<String, Tensor> byKey() { return Collections.unmodifiableMap(byKey); }

    public boolean has(String key) { return byKey.containsKey(key); }

    public Tensor get(String key) {
        Tensor t = byKey.get(key);
        if (t == null) throw new IllegalArgumentException("no parameter '" + key + "'");
        return t;
    }

    public List<String> keys() { return List.copyOf(byKey.keySet()); }

    /** Downloads every tensor to host memory, in state-dict order. */
    public ModelWeights download(Backend be, String source) {
        LinkedHashMap<String, HostTensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : byKey.entrySet()) out.put(e.getKey(), be.download(e.getValue()));
        return new ModelWeights(out, source, config.groupNormEps());
    }

    public void zeroAll(Backend be) {
        for (Tensor t : byKey.values()) be.fill(t, 0f);
    }

    /** Bytes of the tensors this set owns. */
    public long bytes() {
        long n = 0;
        for (Map.Entry<String, Tensor> e : byKey.entrySet()) if (!borrowed.contains(e.getKey())) n += e.getValue().bytes();
        return n;
    }

    @Override
    public void close() {
        for (Map.Entry<String, Tensor> e : byKey.entrySet()) if (!borrowed.contains(e.getKey())) e.getValue().close();
    }
}
