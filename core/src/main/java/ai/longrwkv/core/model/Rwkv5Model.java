package ai.longrwkv.core.model;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;

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

    private final Backend be;
    private final ModelConfig cfg;
    private final ParamSet p;
    /** LoRA adapters applied on top of the weights, or null. */
    private LoraSet lora;

    public Rwkv5Model(Backend be, ModelConfig cfg, ParamSet params) {
        this.be = be;
        this.cfg = cfg;
        this.p = params;
    }

    /** Validates the weights, derives the config and uploads the parameters. */
    public static Rwkv5Model load(Backend be, ModelWeights weights, double groupNormEps) {
        ModelConfig cfg = ModelConfig.fromWeights(weights, groupNormEps);
        return new Rwkv5Model(be, cfg, ParamSet.upload(be, cfg, weights));
    }

    public ModelConfig config() { return cfg; }
    public Backend backend() { return be; }
    public ParamSet params() { return p; }

    public RwkvState newState() { return RwkvState.zeros(be, cfg); }

    /** Applies these adapters from now on (null removes them); the model does not own them. */
    public void setLora(LoraSet lora) { this.lora = lora; }

    public LoraSet lora() { return lora; }

    // ======================================================================================== activations

    /** Saved values of one block for one chunk. */
    static final class LayerActs implements AutoCloseable {
        final Tensor xIn, xx1, mean1, rstd1, r, k, v, gPre, y, x1, xx2, mean2, rstd2, kPre, rPre, vOut;

        LayerActs(Backend be, int T, ModelConfig c) {
            int C = c.nEmbd(), F = c.dimFfn();
            xIn = be.zeros(T, C); xx1 = be.zeros(T, C); mean1 = be.zeros(T); rstd1 = be.zeros(T);
            r = be.zeros(T, C); k = be.zeros(T, C); v = be.zeros(T, C); gPre = be.zeros(T, C); y = be.zeros(T, C);
            x1 = be.zeros(T, C); xx2 = be.zeros(T, C); mean2 = be.zeros(T); rstd2 = be.zeros(T);
            kPre = be.zeros(T, F); rPre = be.zeros(T, C); vOut = be.zeros(T, C);
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[]{xIn, xx1, mean1, rstd1, r, k, v, gPre, y, x1, xx2, mean2, rstd2, kPre, rPre, vOut}) t.close();
        }
    }

    /** Work buffers of one chunk that nothing reads after the op that fills them. */
    static final class Scratch implements AutoCloseable {
        final Tensor mixC, yn, g, z, gnMean, gnRstd, kAct, rSig, w;
        // backward only (null in forward-only mode)
        final Tensor dC1, dC2, dMix, dxx, dY, dR, dK, dV, dF, dw;
        /** Sinks for the gradients of parameters that are not being trained ([C] and [H, N]). */
        final Tensor sinkA, sinkB, sinkHN;

        Scratch(Backend be, int T, ModelConfig c, boolean backward) {
            int C = c.nEmbd(), F = c.dimFfn(), H = c.nHead(), N = c.headSize();
            mixC = be.zeros(T, C); yn = be.zeros(T, C); g = be.zeros(T, C); z = be.zeros(T, C);
            gnMean = be.zeros(T * H); gnRstd = be.zeros(T * H); kAct = be.zeros(T, F); rSig = be.zeros(T, C);
            w = be.zeros(H, N);
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
            for (Tensor t : new Tensor[]{mixC, yn, g, z, gnMean, gnRstd, kAct, rSig, w, dC1, dC2, dMix, dxx, dY, dR, dK, dV, dF, dw,
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
        final RwkvState start;
        final Tensor embRows, ln0Mean, ln0Rstd, xFinal, lnOut, lnOutMean, lnOutRstd;
        final LayerActs[] layers;
        Tensor logits;

        private Activations(int[] tokens, boolean keep, RwkvState state) {
            int T = tokens.length, C = cfg.nEmbd();
            this.tokens = tokens.clone();
            this.kept = keep;
            this.start = keep ? state.copy(be) : null;
            embRows = be.zeros(T, C); ln0Mean = be.zeros(T); ln0Rstd = be.zeros(T);
            xFinal = be.zeros(T, C); lnOut = be.zeros(T, C); lnOutMean = be.zeros(T); lnOutRstd = be.zeros(T);
            // Without backward two sets are enough: block l reads one and writes its output into the other's xIn.
            layers = new LayerActs[keep ? cfg.nLayer() : Math.min(2, cfg.nLayer())];
            for (int i = 0; i < layers.length; i++) layers[i] = new LayerActs(be, T, cfg);
        }

        public int length() { return tokens.length; }

        /** Logits [T, V], or null if the forward pass was asked not to compute them. Owned by this object. */
        public Tensor logits() { return logits; }

        LayerActs layer(int l) { return layers[l % layers.length]; }

        @Override
        public void close() {
            if (start != null) start.close();
            for (Tensor t : new Tensor[]{embRows, ln0Mean, ln0Rstd, xFinal, lnOut, lnOutMean, lnOutRstd, logits}) {
                if (t != null) t.close();
            }
            for (LayerActs a : layers) a.close();
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
        Activations acts = new Activations(tokens, keepForBackward, state);
        try (Scratch s = new Scratch(be, T, cfg, false)) {
            be.embedding(p.emb, tokens, acts.embRows);
            be.norm(acts.embRows, p.ln0W, p.ln0B, 1, LN_EPS, acts.layer(0).xIn, acts.ln0Mean, acts.ln0Rstd);
            for (int l = 0; l < cfg.nLayer(); l++) {
                Tensor out = l + 1 < cfg.nLayer() ? acts.layer(l + 1).xIn : acts.xFinal;
                forwardBlock(l, acts.layer(l), out, state, s);
            }
            if (computeLogits) {
                be.norm(acts.xFinal, p.lnOutW, p.lnOutB, 1, LN_EPS, acts.lnOut, acts.lnOutMean, acts.lnOutRstd);
                acts.logits = be.zeros(T, cfg.vocabSize());
                be.matmul(acts.lnOut, false, p.head, true, acts.logits, 1f, 0f);
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

    private void forwardBlock(int l, LayerActs a, Tensor xOut, RwkvState st, Scratch s) {
        ParamSet.Layer P = p.layers[l];
        int T = a.xIn.rows();
        // ---- time mix
        be.norm(a.xIn, P.ln1W, P.ln1B, 1, LN_EPS, a.xx1, a.mean1, a.rstd1);
        String blk = "blocks." + l + ".";
        linearOfMix(a.xx1, st.attX[l], P.attMixR, P.attR, blk + "att.receptance.weight", a.r, s.mixC);
        linearOfMix(a.xx1, st.attX[l], P.attMixK, P.attK, blk + "att.key.weight", a.k, s.mixC);
        linearOfMix(a.xx1, st.attX[l], P.attMixV, P.attV, blk + "att.value.weight", a.v, s.mixC);
        linearOfMix(a.xx1, st.attX[l], P.attMixG, P.attG, blk + "att.gate.weight", a.gPre, s.mixC);
        be.copyRow(a.xx1, T - 1, st.attX[l]);
        be.decay(P.timeDecay, s.w);
        be.wkvForward(a.r, a.k, a.v, s.w, P.timeFaaaa, st.wkv[l], a.y);
        be.norm(a.y, P.lnxW, P.lnxB, cfg.nHead(), (float) cfg.groupNormEps(), s.yn, s.gnMean, s.gnRstd);
        be.silu(a.gPre, s.g);
        be.mul(s.yn, s.g, s.z);
        linear(s.z, P.attO, blk + "att.output.weight", a.x1);
        be.add(a.x1, a.xIn, a.x1);
        // ---- channel mix
        be.norm(a.x1, P.ln2W, P.ln2B, 1, LN_EPS, a.xx2, a.mean2, a.rstd2);
        linearOfMix(a.xx2, st.ffnX[l], P.ffnMixK, P.ffnK, blk + "ffn.key.weight", a.kPre, s.mixC);
        linearOfMix(a.xx2, st.ffnX[l], P.ffnMixR, P.ffnR, blk + "ffn.receptance.weight", a.rPre, s.mixC);
        be.copyRow(a.xx2, T - 1, st.ffnX[l]);
        be.reluSquare(a.kPre, s.kAct);
        linear(s.kAct, P.ffnV, blk + "ffn.value.weight", a.vOut);
        be.sigmoid(a.rPre, s.rSig);
        be.mul(s.rSig, a.vOut, xOut);
        be.add(xOut, a.x1, xOut);
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
        if (gradW != null) be.matmul(dOut, true, x, false, gradW, 1f, 1f);
        be.matmul(dOut, false, weight, false, dx, 1f, 0f);
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
        if (!acts.kept) throw new IllegalStateException("forward was run without keepForBackward");
        int T = acts.length();
        try (Scratch s = new Scratch(be, T, cfg, true); Tensor dx = be.zeros(T, cfg.nEmbd())) {
            if (dLogits != null) {
                // logits = lnOut head^T
                if (grads.head != null) be.matmul(dLogits, true, acts.lnOut, false, grads.head, 1f, 1f);
                be.matmul(dLogits, false, p.head, false, s.dC1, 1f, 0f);
                be.normBackward(s.dC1, acts.xFinal, p.lnOutW, 1, acts.lnOutMean, acts.lnOutRstd, dx,
                        orSink(grads.lnOutW, s.sinkA), orSink(grads.lnOutB, s.sinkB));
            }
            for (int l = cfg.nLayer() - 1; l >= 0; l--) {
                backwardChannelMix(l, acts.layer(l), dx, acts.start, dState, grads, s);
                backwardTimeMix(l, acts.layer(l), dx, acts.start, dState, grads, s);
            }
            // dx is now dL/d(LN0 output)
            be.fill(s.dC1, 0f);
            if (grads.emb != null || grads.ln0W != null || grads.ln0B != null) {
                be.normBackward(dx, acts.embRows, p.ln0W, 1, acts.ln0Mean, acts.ln0Rstd, s.dC1,
                        orSink(grads.ln0W, s.sinkA), orSink(grads.ln0B, s.sinkB));
                if (grads.emb != null) be.embeddingBackward(s.dC1, acts.tokens, grads.emb);
            }
        }
    }

    /** dx: dL/d(block output) on entry, dL/d(x1) on return. */
    private void backwardChannelMix(int l, LayerActs a, Tensor dx, RwkvState start, RwkvState dState, ParamSet grads, Scratch s) {
        ParamSet.Layer P = p.layers[l], G = grads.layers[l];
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
        ParamSet.Layer P = p.layers[l], G = grads.layers[l];
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
        be.wkvBackward(a.r, a.k, a.v, s.w, P.timeFaaaa, start.wkv[l], s.dY, dState.wkv[l], s.dR, s.dK, s.dV, s.dw,
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
        p.close();
    }
}
