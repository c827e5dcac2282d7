package ai.longrwkv.core.model;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.DType;

/**
 * The RWKV-5.2 (x052) model: forward over a chunk of T tokens from a given state, and its hand-written backward
 * (llm.c style: one explicit forward and backward per block, every op a {@link Backend} call).
 *
 * <p>Forward of block l on a chunk (rwkv5-spec.md §2), x [T, C]:
 * <pre>
 *   xx = LN1(x); xk,xv,xr,xg = token-shift mixes of xx with the carried att_x
 *   r,k,v = W xk..; g = silu(Wg xg); y = WKV(r,k,v, w=exp(-exp(time_decay)), u=time_faaaa, S)
 *   x1 = x + Wo (GroupNorm_H(y) * g)
 *   xx = LN2(x1); fk, fr = mixes with the carried ffn_x
 *   x2 = x1 + sigmoid(Wfr fr) * Wfv relu(Wfk fk)^2
 * </pre>
 * The backward pass keeps only what the weight gradients and the nonlinearities need and recomputes the cheap rest
 * (token-shift mixes, silu, the GroupNorm output), which keeps one chunk's saved activations at about 16 [T, C].
 */
public final class Rwkv5Model implements AutoCloseable {
    private static final float LN_EPS = (float) ModelConfig.LAYER_NORM_EPS;

    /**
     * Rows of logits computed at a time by the sliced head and loss: [rows, V] fp32 is at most this many elements
     * (256 MiB: 1024 rows at V = 65536), so that a chunk's [T, V] logits (1 GiB at T = 4096) never exist whole in
     * training. Not smaller: with 256-row slices the head's three products ran at 65-85% of the sgemm peak on 2 cores
     * (the input gradient, [256, 65536] x [65536, 768], at 52-71%), with 1024-row slices at 96% (`bench matmul
     * --head-rows`, AMX Xeon, 2026-12-03); the head is a third of an L12-C768 step's product FLOPs.
     */
    public static final int HEAD_SLICE_ELEMENTS = 64 << 20;

    private final Backend be;
    private final ModelConfig cfg;
    /** The parameters: what is saved and what the optimizer updates (the fp32 master in mixed precision). */
    private final ParamSet p;
    /** What forward and backward read: p itself, or a bf16 working copy of p's matrices ({@link #useWorkingCopy}). */
    private ParamSet w;
    /** LoRA adapters applied on top of the weights, or null. */
    private LoraSet lora;
    /** --grad-cp: keep only each layer's input for backward and recompute the layer there. */
    private boolean recompute;
    private GradientHook gradientHook;
    private int headSliceRows;

    public Rwkv5Model(Backend be, ModelConfig cfg, ParamSet params) {
        this.be = be;
        this.cfg = cfg;
        this.p = params;
        this.w = params;
    }

    /** Validates the weights, derives the config and uploads the parameters in fp32. */
    public static Rwkv5Model load(Backend be, ModelWeights weights, double groupNormEps) {
        return load(be, weights, groupNormEps, DType.F32);
    }

    /** As {@link #load(Backend, ModelWeights, double)} with the weight matrices stored in {@code matrices} ({@link Precision}). */
    public static Rwkv5Model load(Backend be, ModelWeights weights, double groupNormEps, DType matrices) {
        ModelConfig cfg = ModelConfig.fromWeights(weights, groupNormEps);
        return new Rwkv5Model(be, cfg, ParamSet.upload(be, cfg, weights, matrices));
    }

    public ModelConfig config() { return cfg; }
    public Backend backend() { return be; }
    public ParamSet params() { return p; }

    /**
     * Mixed precision: from now on forward and backward read a copy of the matrices in {@code dtype}, made from the
     * (fp32) parameters now and refreshed by {@link #refreshWorkingCopy} after each optimizer step.
     */
    public void useWorkingCopy(DType dtype) {
        if (w != p) w.close();
        w = dtype == p.matrixDtype() ? p : ParamSet.workingCopy(be, p, dtype);
    }

    /** Copies the parameters into the working copy (after the optimizer changed them); nothing without one. */
    public void refreshWorkingCopy() {
        if (w != p) w.refreshFrom(be, p);
    }

    /** As {@link #refreshWorkingCopy()}, for the tensors named in {@code keys} only (ZeRO: the ones this rank updated). */
    public void refreshWorkingCopy(java.util.Set<String> keys) {
        if (w != p) w.refreshFrom(be, p, keys);
    }

    /** The tensor forward and backward read for parameter {@code key} (its working copy, or itself); null: not a parameter. */
    public Tensor readTensor(String key) {
        return w.has(key) ? w.get(key) : null;
    }

    /** The dtype the matrix products read the weights in. */
    public DType computeDtype() { return w.matrixDtype(); }

    /** --grad-cp: recompute each layer in backward from its input instead of keeping its activations. */
    public void setRecompute(boolean on) { this.recompute = on; }

    /**
     * Told where each chunk's backward stands, so that a data-parallel trainer can reduce a layer's gradients as soon
     * as they are complete, while the layers below are still being computed (bucketed reduction).
     */
    public interface GradientHook {
        /** A chunk's backward begins (nothing accumulated yet). */
        void beforeBackward();

        /** Layer l's backward begins (l = L-1 down to 0). */
        void beforeLayer(int l);

        /** Layer l's gradients for this chunk are all accumulated. */
        void afterLayer(int l);

        /** The chunk's backward is done: the head, ln_out, ln0 and embedding gradients too. */
        void afterBackward();
    }

    /** The hook every backward reports to (null: none). */
    public void setGradientHook(GradientHook hook) { this.gradientHook = hook; }

    public boolean recompute() { return recompute; }

    /** Rows per slice of the sliced head and loss: {@link #HEAD_SLICE_ELEMENTS} / V unless set. */
    public int headSliceRows() {
        return headSliceRows > 0 ? headSliceRows : Math.max(1, HEAD_SLICE_ELEMENTS / cfg.vocabSize());
    }

    /** Sets the rows per head slice (0: the default); results do not depend on it beyond fp32 summation order. */
    public void setHeadSliceRows(int rows) {
        if (rows < 0) throw new IllegalArgumentException("head slice rows must be >= 0, got " + rows);
        this.headSliceRows = rows;
    }

    public RwkvState newState() { return RwkvState.zeros(be, cfg); }

    /** Applies these adapters from now on (null removes them); the model does not own them. */
    public void setLora(LoraSet lora) { this.lora = lora; }

    public LoraSet lora() { return lora; }

    // ======================================================================================== activations

    /** Saved values of one block for one chunk. */
    static final class LayerActs implements AutoCloseable {
        /** The block's input: owned, or (with --grad-cp) one of the per-layer inputs the chunk keeps, set per layer. */
        Tensor xIn;
        private final boolean ownsInput;
        final Tensor xx1, mean1, rstd1, r, k, v, gPre, y, x1, xx2, mean2, rstd2, kPre, rPre, vOut;

        /** @param wkvInputs the dtype of r, k, v: bf16 with --precision bf16 (what the WKV kernels read), else fp32 */
        LayerActs(Backend be, int T, ModelConfig c, boolean ownsInput, DType wkvInputs) {
            int C = c.nEmbd(), F = c.dimFfn();
            this.ownsInput = ownsInput;
            // not cleared: forwardBlock writes every one of them before anything reads it
            xIn = ownsInput ? be.empty(T, C) : null;
            xx1 = be.empty(T, C); mean1 = be.empty(T); rstd1 = be.empty(T);
            r = be.empty(wkvInputs, T, C); k = be.empty(wkvInputs, T, C); v = be.empty(wkvInputs, T, C);
            gPre = be.empty(T, C); y = be.empty(T, C);
            x1 = be.empty(T, C); xx2 = be.empty(T, C); mean2 = be.empty(T); rstd2 = be.empty(T);
            kPre = be.empty(T, F); rPre = be.empty(T, C); vOut = be.empty(T, C);
        }

        @Override
        public void close() {
            if (ownsInput) xIn.close();
            for (Tensor t : new Tensor[]{xx1, mean1, rstd1, r, k, v, gPre, y, x1, xx2, mean2, rstd2, kPre, rPre, vOut}) t.close();
        }
    }

    /** Work buffers of one chunk that nothing reads after the op that fills them. */
    static final class Scratch implements AutoCloseable {
        final Tensor mixC, yn, g, z, gnMean, gnRstd, kAct, rSig, w;
        /** With bf16 WKV inputs: the fp32 product a projection writes before it is rounded into r, k or v; u in bf16. */
        final Tensor proj, uIn;
        // backward only (null in forward-only mode)
        final Tensor dC1, dC2, dMix, dxx, dY, dR, dK, dV, dF, dw;
        /** Sinks for the gradients of parameters that are not being trained ([C] and [H, N]). */
        final Tensor sinkA, sinkB, sinkHN;

        Scratch(Backend be, int T, ModelConfig c, boolean backward, DType wkvInputs) {
            int C = c.nEmbd(), F = c.dimFfn(), H = c.nHead(), N = c.headSize();
            // the forward's work buffers, each written by its op before it is read: not cleared
            mixC = be.empty(T, C); yn = be.empty(T, C); g = be.empty(T, C); z = be.empty(T, C);
            gnMean = be.empty(T * H); gnRstd = be.empty(T * H); kAct = be.empty(T, F); rSig = be.empty(T, C);
            w = be.empty(H, N);
            boolean low = wkvInputs != DType.F32;
            proj = low ? be.empty(T, C) : null;
            uIn = low ? be.empty(wkvInputs, H, N) : null;
            if (backward) {
                dC1 = be.zeros(T, C); dC2 = be.zeros(T, C); dMix = be.zeros(T, C); dxx = be.zeros(T, C);
                dY = be.zeros(T, C); dR = be.zeros(T, C); dK = be.zeros(T, C); dV = be.zeros(T, C);
                dF = be.zeros(T, F); dw = be.zeros(H, N);
                sinkA = be.zeros(C); sinkB = be.zeros(C); sinkHN = be.zeros(H, N);
            } else {
                dC1 = dC2 = dMix = dxx = dY = dR = dK = dV = dF = dw = null;
                sinkA = sinkB = sinkHN = null;
            }
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[]{mixC, yn, g, z, gnMean, gnRstd, kAct, rSig, w, proj, uIn, dC1, dC2, dMix, dxx, dY, dR, dK, dV, dF, dw,
                    sinkA, sinkB, sinkHN}) {
                if (t != null) t.close();
            }
        }
    }

    /**
     * What a forward pass over one chunk leaves: the logits (if asked for) and, when kept for backward, every saved
     * activation and a copy of the state the chunk started from.
     */
    public final class Activations implements AutoCloseable {
        final int[] tokens;
        final boolean kept;
        /** --grad-cp: layers holds one working set, and inputs[l] is layer l's input. */
        final boolean recomputed;
        final RwkvState start;
        final Tensor embRows, ln0Mean, ln0Rstd, xFinal, lnOut, lnOutMean, lnOutRstd;
        final LayerActs[] layers;
        final Tensor[] inputs;
        Tensor logits;

        private Activations(int[] tokens, boolean keep, boolean recompute, RwkvState state) {
            int T = tokens.length, C = cfg.nEmbd();
            this.tokens = tokens.clone();
            this.kept = keep;
            this.recomputed = keep && recompute;
            this.start = keep ? state.copy(be) : null;
            // outputs of the embedding, the last block and the norms, written before they are read: not cleared
            embRows = be.empty(T, C); ln0Mean = be.empty(T); ln0Rstd = be.empty(T);
            xFinal = be.empty(T, C); lnOut = be.empty(T, C); lnOutMean = be.empty(T); lnOutRstd = be.empty(T);
            if (recomputed) {
                inputs = new Tensor[cfg.nLayer()];
                for (int l = 0; l < inputs.length; l++) inputs[l] = be.zeros(T, C);
                layers = new LayerActs[]{new LayerActs(be, T, cfg, false, computeDtype())};
            } else {
                inputs = null;
                // Without backward two sets are enough: block l reads one and writes its output into the other's xIn.
                layers = new LayerActs[keep ? cfg.nLayer() : Math.min(2, cfg.nLayer())];
                for (int i = 0; i < layers.length; i++) layers[i] = new LayerActs(be, T, cfg, true, computeDtype());
            }
        }

        public int length() { return tokens.length; }

        /** Logits [T, V], or null if the forward pass was asked not to compute them. Owned by this object. */
        public Tensor logits() { return logits; }

        /** Layer l's activations (with --grad-cp: the one working set, its input pointed at layer l's). */
        LayerActs layer(int l) {
            if (recomputed) {
                layers[0].xIn = inputs[l];
                return layers[0];
            }
            return layers[l % layers.length];
        }

        /** Where layer l's output goes: the next layer's input, or xFinal. */
        Tensor output(int l) {
            if (l + 1 == cfg.nLayer()) return xFinal;
            return recomputed ? inputs[l + 1] : layers[(l + 1) % layers.length].xIn;
        }

        @Override
        public void close() {
            if (start != null) start.close();
            for (Tensor t : new Tensor[]{embRows, ln0Mean, ln0Rstd, xFinal, lnOut, lnOutMean, lnOutRstd, logits}) {
                if (t != null) t.close();
            }
            for (LayerActs a : layers) a.close();
            if (inputs != null) for (Tensor t : inputs) t.close();
        }
    }

    // ======================================================================================== forward

    /**
     * Runs the model over {@code tokens} starting from {@code state}, which is advanced in place to the state after
     * the last token. With {@code keepForBackward} the result holds what {@link #backward} needs.
     */
    public Activations forward(int[] tokens, RwkvState state, boolean keepForBackward, boolean computeLogits) {
        if (tokens.length == 0) throw new IllegalArgumentException("forward needs at least one token");
        for (int t = 0; t < tokens.length; t++) {
            if (tokens[t] < 0 || tokens[t] >= cfg.vocabSize()) {
                throw new IllegalArgumentException("token " + tokens[t] + " at position " + t
                        + " is outside the model's vocabulary 0.." + (cfg.vocabSize() - 1));
            }
        }
        int T = tokens.length;
        Activations acts = new Activations(tokens, keepForBackward, recompute, state);
        try (Scratch s = new Scratch(be, T, cfg, false, computeDtype())) {
            be.embedding(w.emb, tokens, acts.embRows);
            be.norm(acts.embRows, w.ln0W, w.ln0B, 1, LN_EPS, acts.layer(0).xIn, acts.ln0Mean, acts.ln0Rstd);
            for (int l = 0; l < cfg.nLayer(); l++) {
                LayerActs a = acts.layer(l);
                forwardBlock(l, a, acts.output(l), state.attX[l], state.ffnX[l], state.wkv[l], s);
            }
            // always (it costs one [T, C] norm): the sliced head and loss of backward and of loss() read it
            be.norm(acts.xFinal, w.lnOutW, w.lnOutB, 1, LN_EPS, acts.lnOut, acts.lnOutMean, acts.lnOutRstd);
            if (computeLogits) {
                acts.logits = be.empty(T, cfg.vocabSize());
                be.matmul(acts.lnOut, false, w.head, true, acts.logits, 1f, 0f);
            }
        } catch (RuntimeException e) {
            acts.close();
            throw e;
        }
        return acts;
    }

    /** One token of generation: advances the state and returns the V logits. */
    public float[] step(int token, RwkvState state) {
        try (Activations a = forward(new int[]{token}, state, false, true)) {
            return be.download(a.logits).data();
        }
    }

    /** Block l from its input a.xIn into xOut, advancing the layer's state (attX, ffnX, wkv) in place. */
    private void forwardBlock(int l, LayerActs a, Tensor xOut, Tensor attX, Tensor ffnX, Tensor wkv, Scratch s) {
        ParamSet.Layer P = w.layers[l];
        int T = a.xIn.rows();
        // ---- time mix
        be.norm(a.xIn, P.ln1W, P.ln1B, 1, LN_EPS, a.xx1, a.mean1, a.rstd1);
        String blk = "blocks." + l + ".";
        wkvInput(a.xx1, attX, P.attMixR, P.attR, blk + "att.receptance.weight", a.r, s);
        wkvInput(a.xx1, attX, P.attMixK, P.attK, blk + "att.key.weight", a.k, s);
        wkvInput(a.xx1, attX, P.attMixV, P.attV, blk + "att.value.weight", a.v, s);
        linearOfMix(a.xx1, attX, P.attMixG, P.attG, blk + "att.gate.weight", a.gPre, s.mixC);
        be.copyRow(a.xx1, T - 1, attX);
        be.decay(P.timeDecay, s.w);
        be.wkvForward(a.r, a.k, a.v, s.w, wkvU(P, s), wkv, a.y);
        be.norm(a.y, P.lnxW, P.lnxB, cfg.nHead(), (float) cfg.groupNormEps(), s.yn, s.gnMean, s.gnRstd);
        be.silu(a.gPre, s.g);
        be.mul(s.yn, s.g, s.z);
        linear(s.z, P.attO, blk + "att.output.weight", a.x1);
        be.add(a.x1, a.xIn, a.x1);
        // ---- channel mix
        be.norm(a.x1, P.ln2W, P.ln2B, 1, LN_EPS, a.xx2, a.mean2, a.rstd2);
        linearOfMix(a.xx2, ffnX, P.ffnMixK, P.ffnK, blk + "ffn.key.weight", a.kPre, s.mixC);
        linearOfMix(a.xx2, ffnX, P.ffnMixR, P.ffnR, blk + "ffn.receptance.weight", a.rPre, s.mixC);
        be.copyRow(a.xx2, T - 1, ffnX);
        be.reluSquare(a.kPre, s.kAct);
        linear(s.kAct, P.ffnV, blk + "ffn.value.weight", a.vOut);
        be.sigmoid(a.rPre, s.rSig);
        be.mul(s.rSig, a.vOut, xOut);
        be.add(xOut, a.x1, xOut);
    }

    /**
     * r, k or v: the projection, rounded to bf16 when the WKV reads bf16 (--precision bf16, as RWKV-LM's bf16 kernel
     * takes them; the state and w stay fp32), so that forward, recomputation and backward all see the same values.
     */
    private void wkvInput(Tensor xx, Tensor prev, Tensor mix, Tensor weight, String weightKey, Tensor out, Scratch s) {
        if (out.dtype() == DType.F32) {
            linearOfMix(xx, prev, mix, weight, weightKey, out, s.mixC);
        } else {
            linearOfMix(xx, prev, mix, weight, weightKey, s.proj, s.mixC);
            be.copy(s.proj, out);
        }
    }

    /** time_faaaa in the dtype the WKV reads (a bf16 copy in the scratch when r, k, v are bf16). */
    private Tensor wkvU(ParamSet.Layer P, Scratch s) {
        if (s.uIn == null) return P.timeFaaaa;
        be.copy(P.timeFaaaa, s.uIn);
        return s.uIn;
    }

    /** out = mix(xx, prev, mix) W^T (+ LoRA). */
    private void linearOfMix(Tensor xx, Tensor prev, Tensor mix, Tensor weight, String weightKey, Tensor out, Tensor mixBuf) {
        be.tokenShiftMix(xx, prev, mix, mixBuf);
        linear(mixBuf, weight, weightKey, out);
    }

    /** out = x W^T, plus (alpha/r) (x A^T) B^T when the weight has a LoRA adapter. */
    private void linear(Tensor x, Tensor weight, String weightKey, Tensor out) {
        be.matmul(x, false, weight, true, out, 1f, 0f);
        LoraSet.Adapter ad = lora == null ? null : lora.get(weightKey);
        if (ad != null) {
            try (Tensor u = be.zeros(x.rows(), lora.rank())) {
                be.matmul(x, false, ad.a, true, u, 1f, 0f);
                be.matmul(u, false, ad.b, true, out, lora.scale(), 1f);
            }
        }
    }

    /**
     * Backward of out = x W^T (+ LoRA): gradW += dOut^T x (when W is trained), dx = dOut W (overwritten), and the
     * adapter's gradients: u = x A^T, gradB += s dOut^T u, q = dOut B, gradA += s q^T x, dx += s q A.
     */
    private void backwardLinear(Tensor dOut, Tensor x, Tensor weight, String weightKey, Tensor gradW, Tensor dx) {
        weightAndInputGradients(dOut, x, weight, gradW, dx);
        LoraSet.Adapter ad = lora == null ? null : lora.get(weightKey);
        if (ad != null) {
            float sc = lora.scale();
            try (Tensor u = be.zeros(x.rows(), lora.rank()); Tensor q = be.zeros(x.rows(), lora.rank())) {
                be.matmul(x, false, ad.a, true, u, 1f, 0f);
                be.matmul(dOut, true, u, false, ad.gradB, sc, 1f);
                be.matmul(dOut, false, ad.b, false, q, 1f, 0f);
                be.matmul(q, true, x, false, ad.gradA, sc, 1f);
                be.matmul(q, false, ad.a, false, dx, sc, 1f);
            }
        }
    }

    /**
     * gradW += dOut^T x (when W is trained) and dx = dOut W (overwritten). With a bf16 weight that is trained (the
     * working copy of mixed-precision full finetuning) all three products of the layer run in bf16 with fp32
     * accumulation, as PyTorch's autocast and DeepSpeed's bf16 mode run them (Precision): dOut and x are rounded to
     * bf16 once here, and the rounded dOut serves both products (a bf16 product would round it anyway).
     */
    private void weightAndInputGradients(Tensor dOut, Tensor x, Tensor weight, Tensor gradW, Tensor dx) {
        if (gradW == null || weight.dtype() != DType.BF16) {
            if (gradW != null) be.matmul(dOut, true, x, false, gradW, 1f, 1f);
            be.matmul(dOut, false, weight, false, dx, 1f, 0f);
            return;
        }
        try (Tensor d16 = bf16Copy(dOut); Tensor x16 = x.dtype() == DType.BF16 ? null : bf16Copy(x)) {
            be.matmul(d16, true, x16 != null ? x16 : x, false, gradW, 1f, 1f);
            be.matmul(d16, false, weight, false, dx, 1f, 0f);
        }
    }

    private Tensor bf16Copy(Tensor x) {
        Tensor r = be.zeros(DType.BF16, x.shape());
        be.copy(x, r);
        return r;
    }

    private static Tensor orSink(Tensor grad, Tensor sink) {
        return grad != null ? grad : sink;
    }

    // ======================================================================================== backward

    /**
     * Backward through one chunk. {@code dLogits} [T, V] is the loss gradient w.r.t. the logits (null if the chunk
     * contributes no loss). {@code dState} holds dL/d(state after the chunk) on entry (zeros if the gradient is
     * stopped there) and dL/d(state before the chunk) on return. Parameter gradients accumulate into {@code grads}.
     */
    public void backward(Activations acts, Tensor dLogits, RwkvState dState, ParamSet grads) {
        backward(acts, dState, grads, (s, dLnOut) -> {
            if (dLogits == null) return false;
            // logits = lnOut head^T
            weightAndInputGradients(dLogits, acts.lnOut, w.head, grads.head, dLnOut);
            return true;
        });
    }

    /** What a chunk's loss is measured against: per position a target (negative: none) and a weight. */
    public record Targets(int[] targets, float[] weights, float l2WrapFactor) { }

    /** Receives a slice of a chunk's logits: rows [first, first + logits.rows()) (a view, valid during the call). */
    public interface LogitsSlices {
        void accept(int first, Tensor logits);
    }

    /**
     * Backward through one chunk with its loss: the head and the cross-entropy (with L2Wrap) run in slices of
     * {@link #headSliceRows} rows, each slice's logits turned into their gradient in place and backpropagated at once,
     * so the chunk's [T, V] logits never exist whole. Returns the loss (sum over positions of weight * -log p).
     * Otherwise as {@link #backward(Activations, Tensor, RwkvState, ParamSet)}. {@code slices}, if not null, sees
     * each slice's logits before they become gradients.
     */
    public double backward(Activations acts, Targets loss, RwkvState dState, ParamSet grads, LogitsSlices slices) {
        double[] sum = {0};
        backward(acts, dState, grads, (s, dLnOut) -> {
            sum[0] = headAndLoss(acts, loss, slices, grads.head, dLnOut);
            return true;
        });
        return sum[0];
    }

    /**
     * The loss of a chunk run forward with keepForBackward (the head applied in slices; no gradient): the same
     * numbers as the loss {@link #backward(Activations, Targets, RwkvState, ParamSet, LogitsSlices)} returns.
     */
    public double loss(Activations acts, Targets loss, LogitsSlices slices) {
        return headAndLoss(acts, loss, slices, null, null);
    }

    private double headAndLoss(Activations acts, Targets loss, LogitsSlices slices, Tensor gradHead, Tensor dLnOut) {
        int T = acts.length(), rows = Math.min(T, headSliceRows());
        double sum = 0;
        try (Tensor buf = be.empty(rows, cfg.vocabSize())) {   // each slice's product overwrites it (beta 0)
            for (int r0 = 0; r0 < T; r0 += rows) {
                int n = Math.min(rows, T - r0);
                Tensor logits = n == rows ? buf : be.rows(buf, 0, n);
                Tensor x = be.rows(acts.lnOut, r0, n);
                be.matmul(x, false, w.head, true, logits, 1f, 0f);
                if (slices != null) slices.accept(r0, logits);
                sum += be.crossEntropy(logits, java.util.Arrays.copyOfRange(loss.targets(), r0, r0 + n),
                        java.util.Arrays.copyOfRange(loss.weights(), r0, r0 + n), loss.l2WrapFactor(), dLnOut == null ? null : logits);
                if (dLnOut != null) {
                    weightAndInputGradients(logits, x, w.head, gradHead, be.rows(dLnOut, r0, n));
                }
            }
        }
        return sum;
    }

    /** Fills dLnOut [T, C] with dL/d(ln_out output); returns false when the chunk has no loss. */
    private interface HeadBackward {
        boolean run(Scratch s, Tensor dLnOut);
    }

    private void backward(Activations acts, RwkvState dState, ParamSet grads, HeadBackward head) {
        if (!acts.kept) throw new IllegalStateException("forward was run without keepForBackward");
        int T = acts.length();
        GradientHook hook = gradientHook;
        try (Scratch s = new Scratch(be, T, cfg, true, computeDtype()); Tensor dx = be.zeros(T, cfg.nEmbd())) {
            if (hook != null) hook.beforeBackward();
            if (head.run(s, s.dC1)) {
                be.normBackward(s.dC1, acts.xFinal, w.lnOutW, 1, acts.lnOutMean, acts.lnOutRstd, dx,
                        orSink(grads.lnOutW, s.sinkA), orSink(grads.lnOutB, s.sinkB));
            }
            if (acts.recomputed) {
                backwardRecomputed(acts, dx, dState, grads, s);
            } else {
                for (int l = cfg.nLayer() - 1; l >= 0; l--) {
                    if (hook != null) hook.beforeLayer(l);
                    backwardChannelMix(l, acts.layer(l), dx, acts.start, dState, grads, s);
                    backwardTimeMix(l, acts.layer(l), dx, acts.start, dState, grads, s);
                    if (hook != null) hook.afterLayer(l);
                }
            }
            // dx is now dL/d(LN0 output)
            be.fill(s.dC1, 0f);
            if (grads.emb != null || grads.ln0W != null || grads.ln0B != null) {
                be.normBackward(dx, acts.embRows, w.ln0W, 1, acts.ln0Mean, acts.ln0Rstd, s.dC1,
                        orSink(grads.ln0W, s.sinkA), orSink(grads.ln0B, s.sinkB));
                if (grads.emb != null) be.embeddingBackward(s.dC1, acts.tokens, grads.emb);
            }
            if (hook != null) hook.afterBackward();
        }
    }

    /**
     * --grad-cp: each layer, last to first, is run forward again from its kept input and the layer's state at the
     * chunk start (the same ops on the same values, so the same activations as a kept forward), then backpropagated.
     */
    private void backwardRecomputed(Activations acts, Tensor dx, RwkvState dState, ParamSet grads, Scratch s) {
        int T = acts.length(), C = cfg.nEmbd();
        try (Tensor attX = be.zeros(C); Tensor ffnX = be.zeros(C); Tensor wkv = be.zeros(cfg.nHead(), cfg.headSize(), cfg.headSize());
             Tensor out = be.zeros(T, C)) {
            for (int l = cfg.nLayer() - 1; l >= 0; l--) {
                be.copy(acts.start.attX[l], attX);
                be.copy(acts.start.ffnX[l], ffnX);
                be.copy(acts.start.wkv[l], wkv);
                LayerActs a = acts.layer(l);
                forwardBlock(l, a, out, attX, ffnX, wkv, s);
                if (gradientHook != null) gradientHook.beforeLayer(l);
                backwardChannelMix(l, a, dx, acts.start, dState, grads, s);
                backwardTimeMix(l, a, dx, acts.start, dState, grads, s);
                if (gradientHook != null) gradientHook.afterLayer(l);
            }
        }
    }

    /** dx: dL/d(block output) on entry, dL/d(x1) on return. */
    private void backwardChannelMix(int l, LayerActs a, Tensor dx, RwkvState start, RwkvState dState, ParamSet grads, Scratch s) {
        ParamSet.Layer P = w.layers[l], G = grads.layers[l];
        int T = a.xIn.rows();
        Tensor prev = start.ffnX[l];
        // out = sigmoid(rPre) * vOut
        be.sigmoid(a.rPre, s.rSig);
        be.mul(dx, s.rSig, s.dC1);                 // d vOut
        be.mul(dx, a.vOut, s.dC2);                 // d sigmoid
        be.sigmoidBackward(s.rSig, s.dC2, s.dC2);  // d rPre
        // vOut = relu(kPre)^2 Wv^T
        be.reluSquare(a.kPre, s.kAct);
        String blk = "blocks." + l + ".";
        backwardLinear(s.dC1, s.kAct, P.ffnV, blk + "ffn.value.weight", G.ffnV, s.dF);
        be.reluSquareBackward(a.kPre, s.dF, s.dF);
        // the token-shift output of this block was xx2[T-1]
        be.fill(s.dxx, 0f);
        be.addToRow(s.dxx, T - 1, dState.ffnX[l]);
        be.fill(dState.ffnX[l], 0f);
        backwardLinearOfMix(s.dF, a.xx2, prev, P.ffnMixK, P.ffnK, blk + "ffn.key.weight", G.ffnMixK, G.ffnK, s.dxx, dState.ffnX[l], s);
        backwardLinearOfMix(s.dC2, a.xx2, prev, P.ffnMixR, P.ffnR, blk + "ffn.receptance.weight", G.ffnMixR, G.ffnR, s.dxx, dState.ffnX[l], s);
        be.normBackward(s.dxx, a.x1, P.ln2W, 1, a.mean2, a.rstd2, dx, orSink(G.ln2W, s.sinkA), orSink(G.ln2B, s.sinkB));
    }

    /** dx: dL/d(x1) on entry, dL/d(block input) on return. */
    private void backwardTimeMix(int l, LayerActs a, Tensor dx, RwkvState start, RwkvState dState, ParamSet grads, Scratch s) {
        ParamSet.Layer P = w.layers[l], G = grads.layers[l];
        int T = a.xIn.rows();
        Tensor prev = start.attX[l];
        // recompute z = GroupNorm(y) * silu(gPre)
        be.norm(a.y, P.lnxW, P.lnxB, cfg.nHead(), (float) cfg.groupNormEps(), s.yn, s.gnMean, s.gnRstd);
        be.silu(a.gPre, s.g);
        be.mul(s.yn, s.g, s.z);
        // x1 = x + z Wo^T
        String blk = "blocks." + l + ".";
        backwardLinear(dx, s.z, P.attO, blk + "att.output.weight", G.attO, s.dC1);   // dz
        be.mul(s.dC1, s.yn, s.dC2);                            // d silu(gPre)
        be.siluBackward(a.gPre, s.dC2, s.dC2);                 // d gPre
        be.mul(s.dC1, s.g, s.dC1);                             // d yn
        be.fill(s.dY, 0f);
        be.normBackward(s.dC1, a.y, P.lnxW, cfg.nHead(), s.gnMean, s.gnRstd, s.dY, orSink(G.lnxW, s.sinkA), orSink(G.lnxB, s.sinkB));
        // WKV, from the layer's state at chunk start; dState.wkv[l] goes from dL/dS_T to dL/dS_0
        be.decay(P.timeDecay, s.w);
        be.fill(s.dw, 0f);
        be.wkvBackward(a.r, a.k, a.v, s.w, wkvU(P, s), start.wkv[l], s.dY, dState.wkv[l], s.dR, s.dK, s.dV, s.dw,
                orSink(G.timeFaaaa, s.sinkHN));
        if (G.timeDecay != null) be.decayBackward(P.timeDecay, s.w, s.dw, G.timeDecay);
        // the four projections of token-shift mixes of xx1
        be.fill(s.dxx, 0f);
        be.addToRow(s.dxx, T - 1, dState.attX[l]);
        be.fill(dState.attX[l], 0f);
        backwardLinearOfMix(s.dR, a.xx1, prev, P.attMixR, P.attR, blk + "att.receptance.weight", G.attMixR, G.attR, s.dxx, dState.attX[l], s);
        backwardLinearOfMix(s.dK, a.xx1, prev, P.attMixK, P.attK, blk + "att.key.weight", G.attMixK, G.attK, s.dxx, dState.attX[l], s);
        backwardLinearOfMix(s.dV, a.xx1, prev, P.attMixV, P.attV, blk + "att.value.weight", G.attMixV, G.attV, s.dxx, dState.attX[l], s);
        backwardLinearOfMix(s.dC2, a.xx1, prev, P.attMixG, P.attG, blk + "att.gate.weight", G.attMixG, G.attG, s.dxx, dState.attX[l], s);
        be.normBackward(s.dxx, a.xIn, P.ln1W, 1, a.mean1, a.rstd1, dx, orSink(G.ln1W, s.sinkA), orSink(G.ln1B, s.sinkB));
    }

    /**
     * Backward of out = mix(xx, prev, mix) W^T given dOut; dxx, dPrev and the parameter gradients accumulate
     * (a null gradient is a parameter that is not trained).
     */
    private void backwardLinearOfMix(Tensor dOut, Tensor xx, Tensor prev, Tensor mix, Tensor weight, String weightKey,
                                     Tensor dMix, Tensor dWeight, Tensor dxx, Tensor dPrev, Scratch s) {
        be.tokenShiftMix(xx, prev, mix, s.mixC);
        backwardLinear(dOut, s.mixC, weight, weightKey, dWeight, s.dMix);
        be.tokenShiftMixBackward(s.dMix, xx, prev, mix, dxx, dPrev, orSink(dMix, s.sinkA));
    }

    /** Downloads the parameters. */
    public ModelWeights toWeights(String source) {
        return p.download(be, source);
    }

    @Override
    public void close() {
        if (w != p) w.close();
        p.close();
    }
}
