package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.Arrays;

/**
 * Loss and gradients of a sequence of any length, processed in chunks of {@code chunkLen} tokens with the recurrent
 * state carried from chunk to chunk, so that activation memory is that of one chunk.
 *
 * <p>FULL mode gives the exact gradient of the whole-sequence loss: a forward sweep keeps only the state at each chunk
 * boundary ((2C + H N^2) floats per layer); then chunks are visited last to first, each is recomputed from its boundary
 * state with activations kept, and backpropagated with the gradient of its end state coming from the chunk after it.
 * The first sweep skips the head and the loss (they are computed once, in the reverse sweep).
 *
 * <p>TRUNCATED mode runs each chunk forward and backward once, in order, with the gradient stopped at chunk ends.
 */
public final class ChunkedBptt {

    /**
     * Options. {@code l2Wrap}: add RWKV-LM's L2Wrap gradient (factor 1e-4 / sequence length, as its 1e-4/(B*T)).
     * {@code prefixGradient}: scale the WKV state gradient at one chunk boundary ({@link PrefixGradient}; null: none;
     * FULL mode, a sequence without state resets). {@code stateGrowthPenalty}: {@link StateGrowthPenalty}'s weight (0: none).
     */
    public record Options(int chunkLen, BpttMode mode, boolean l2Wrap, PrefixGradient prefixGradient, double stateGrowthPenalty) {
        public Options {
            if (chunkLen < 1) throw new IllegalArgumentException("chunk length must be >= 1, got " + chunkLen);
            StateGrowthPenalty.checkWeight(stateGrowthPenalty);
            if (prefixGradient != null && (mode != BpttMode.FULL || prefixGradient.boundary() % chunkLen != 0)) {
                throw new IllegalArgumentException("a prefix gradient needs full BPTT and a boundary at a chunk start, got "
                        + mode + " and token " + prefixGradient.boundary() + " with chunks of " + chunkLen);
            }
        }

        public Options(int chunkLen, BpttMode mode, boolean l2Wrap, PrefixGradient prefixGradient) {
            this(chunkLen, mode, l2Wrap, prefixGradient, 0);
        }

        public Options(int chunkLen, BpttMode mode, boolean l2Wrap) {
            this(chunkLen, mode, l2Wrap, null, 0);
        }

        Options withPrefixGradient(PrefixGradient g) {
            return new Options(chunkLen, mode, l2Wrap, g, stateGrowthPenalty);
        }
    }

    /** Receives each chunk's logits [c, V] with the position of its first token (chunks may come in any order). */
    public interface LogitsSink {
        void accept(int start, HostTensor logits);
    }

    /**
     * @param loss             mean cross-entropy over the sequence's loss positions (without the L2Wrap term)
     * @param lossPositions    how many positions counted
     * @param finalState       the state after the last token (caller closes)
     * @param initialStateGrad dL/d(initial state), or null if not asked for (caller closes)
     */
    public record Result(double loss, long lossPositions, RwkvState finalState, RwkvState initialStateGrad) { }

    private ChunkedBptt() { }

    /**
     * Runs the sequence from {@code initialState} (left unchanged). With {@code grads} null only the loss and final
     * state are computed; otherwise parameter gradients accumulate into {@code grads}. Where the sequence resets the
     * state, each segment starts again from {@code initialState}; the initial-state gradient is then the sum over
     * segments, and the final state is the last segment's.
     */
    public static Result run(Rwkv5Model model, TokenSequence seq, RwkvState initialState, ParamSet grads,
                             Options opt, boolean wantInitialStateGrad, LogitsSink sink) {
        return run(model, seq, initialState, grads, opt, wantInitialStateGrad, sink, null);
    }

    /**
     * As above, with {@code finalStateGrad}: the gradient of a later loss with respect to this sequence's final state
     * (a sequence after this one that started from that state, {@code --carry-state flow}); null = zero, as when
     * nothing depends on the final state. It enters the reverse sweep at the last chunk, so the parameter gradients
     * and the initial-state gradient are those of (this loss + the later one). FULL mode only: truncated BPTT stops
     * the gradient at every chunk end, so a gradient at the sequence end could only reach its last chunk.
     */
    public static Result run(Rwkv5Model model, TokenSequence seq, RwkvState initialState, ParamSet grads,
                             Options opt, boolean wantInitialStateGrad, LogitsSink sink, RwkvState finalStateGrad) {
        if (finalStateGrad != null && (grads == null || opt.mode() != BpttMode.FULL)) {
            throw new IllegalArgumentException("a final-state gradient needs full BPTT with parameter gradients");
        }
        Backend be = model.backend();
        seq.checkVocabulary(model.config().vocabSize());
        float[] weights = seq.lossWeights();
        float l2 = opt.l2Wrap() ? (float) (1e-4 / seq.length()) : 0f;
        int[] starts = seq.segmentStarts();
        if (opt.prefixGradient() != null && starts.length > 1) {
            throw new IllegalArgumentException("a prefix gradient needs a sequence without state resets");
        }
        double loss = 0;
        RwkvState finalState = null, initGrad = null;
        for (int i = 0; i < starts.length; i++) {
            int from = starts[i], to = i + 1 < starts.length ? starts[i + 1] : seq.length();
            Segment segment = new Segment(Arrays.copyOfRange(seq.tokens(), from, to), Arrays.copyOfRange(seq.targets(), from, to),
                    Arrays.copyOfRange(weights, from, to), from);
            boolean last = i + 1 == starts.length;
            Result r = runSegment(model, segment, initialState, grads, opt, l2, wantInitialStateGrad, sink, last ? finalStateGrad : null);
            loss += r.loss();
            if (finalState != null) finalState.close();
            finalState = r.finalState();
            if (r.initialStateGrad() != null) {
                if (initGrad == null) {
                    initGrad = r.initialStateGrad();
                } else {
                    addInto(be, initGrad, r.initialStateGrad());
                    r.initialStateGrad().close();
                }
            }
        }
        return new Result(loss, seq.lossPositions(), finalState, initGrad);
    }

    /** How many chunk backwards {@link #run} makes for {@code seq} in chunks of {@code chunkLen} (each segment's chunks). */
    public static int backwardCount(TokenSequence seq, int chunkLen) {
        int[] starts = seq.segmentStarts();
        int n = 0;
        for (int i = 0; i < starts.length; i++) {
            int len = (i + 1 < starts.length ? starts[i + 1] : seq.length()) - starts[i];
            n += (len + chunkLen - 1) / chunkLen;
        }
        return n;
    }

    /** Positions [offset, offset + tokens.length) of a sequence, with the whole sequence's loss weights. */
    private record Segment(int[] tokens, int[] targets, float[] weights, int offset) {
        int length() { return tokens.length; }

        /** Whether any of its positions has a loss weight (a segment without one gets no penalty gradient either). */
        boolean trained() {
            for (float w : weights) if (w != 0) return true;
            return false;
        }
    }

    private static void addInto(Backend be, RwkvState acc, RwkvState x) {
        for (int l = 0; l < acc.attX.length; l++) {
            be.add(acc.attX[l], x.attX[l], acc.attX[l]);
            be.add(acc.ffnX[l], x.ffnX[l], acc.ffnX[l]);
            be.add(acc.wkv[l], x.wkv[l], acc.wkv[l]);
        }
    }

    private static Result runSegment(Rwkv5Model model, Segment seg, RwkvState initialState, ParamSet grads, Options opt,
                                     float l2, boolean wantInitialStateGrad, LogitsSink sink, RwkvState finalStateGrad) {
        Backend be = model.backend();
        int c = opt.chunkLen();
        int chunks = (seg.length() + c - 1) / c;
        if (grads == null) {
            return forwardOnly(model, seg, initialState, c, chunks, sink);
        }
        if (opt.mode() == BpttMode.TRUNCATED) {
            return truncated(model, seg, initialState, grads, c, chunks, l2, opt.stateGrowthPenalty(), wantInitialStateGrad, sink);
        }
        // ---- FULL: forward sweep keeping boundary states only
        RwkvState[] boundary = new RwkvState[chunks];
        boundary[0] = initialState.copy(be);
        try {
            try (RwkvState running = initialState.copy(be)) {
                for (int k = 0; k + 1 < chunks; k++) {
                    model.forward(slice(seg.tokens(), k, c), running, false, false).close();
                    boundary[k + 1] = running.copy(be);
                }
            }
            // ---- reverse sweep: recompute each chunk, backprop with the carried state gradient
            double loss = 0;
            RwkvState finalState = null;
            RwkvState dState = finalStateGrad != null ? finalStateGrad.copy(be) : RwkvState.zeros(be, model.config());
            boolean penalty = opt.stateGrowthPenalty() > 0 && seg.trained();
            for (int k = chunks - 1; k >= 0; k--) {
                RwkvState st = boundary[k];
                boundary[k] = null;
                try (Rwkv5Model.Activations acts = model.forward(slice(seg.tokens(), k, c), st, true, false)) {
                    // st is now the segment's final state: the penalty's gradient joins the one from after the segment
                    if (k == chunks - 1 && penalty) StateGrowthPenalty.addEndGradient(be, initialState, st, opt.stateGrowthPenalty(), dState);
                    loss += model.backward(acts, targets(seg, k, c, acts.length(), l2), dState, grads, slices(be, sink, seg, k, c, acts.length()));
                }
                // dState is now the gradient at token k*c: where the piece's prefix-like part ends, stand in for the prefix
                if (opt.prefixGradient() != null && k > 0 && k * c == opt.prefixGradient().boundary()) {
                    opt.prefixGradient().apply(be, model.config(), dState);
                }
                if (k == chunks - 1) finalState = st; else st.close();
            }
            if (!wantInitialStateGrad) {
                dState.close();
                dState = null;
            } else if (penalty) {
                StateGrowthPenalty.addStartGradient(be, initialState, finalState, opt.stateGrowthPenalty(), dState);
            }
            return new Result(loss, 0, finalState, dState);
        } finally {
            for (RwkvState s : boundary) if (s != null) s.close();
        }
    }

    private static Result truncated(Rwkv5Model model, Segment seg, RwkvState initialState, ParamSet grads, int c,
                                    int chunks, float l2, double stateGrowthPenalty, boolean wantInitialStateGrad, LogitsSink sink) {
        Backend be = model.backend();
        RwkvState state = initialState.copy(be);
        RwkvState initGrad = null;
        double loss = 0;
        boolean penalty = stateGrowthPenalty > 0 && seg.trained();
        for (int k = 0; k < chunks; k++) {
            try (Rwkv5Model.Activations acts = model.forward(slice(seg.tokens(), k, c), state, true, false)) {
                RwkvState dState = RwkvState.zeros(be, model.config());  // gradient stopped at the chunk end
                // the last chunk's end is the segment's: the penalty on it reaches that chunk's writes only
                if (k == chunks - 1 && penalty) StateGrowthPenalty.addEndGradient(be, initialState, state, stateGrowthPenalty, dState);
                loss += model.backward(acts, targets(seg, k, c, acts.length(), l2), dState, grads, slices(be, sink, seg, k, c, acts.length()));
                if (k == 0 && wantInitialStateGrad) initGrad = dState; else dState.close();
            }
        }
        if (initGrad != null && penalty) StateGrowthPenalty.addStartGradient(be, initialState, state, stateGrowthPenalty, initGrad);
        return new Result(loss, 0, state, initGrad);
    }

    private static Result forwardOnly(Rwkv5Model model, Segment seg, RwkvState initialState, int c, int chunks, LogitsSink sink) {
        Backend be = model.backend();
        RwkvState state = initialState.copy(be);
        double loss = 0;
        for (int k = 0; k < chunks; k++) {
            try (Rwkv5Model.Activations acts = model.forward(slice(seg.tokens(), k, c), state, false, false)) {
                loss += model.loss(acts, targets(seg, k, c, acts.length(), 0f), slices(be, sink, seg, k, c, acts.length()));
            }
        }
        return new Result(loss, 0, state, null);
    }

    /** Chunk k's targets and loss weights (weighted so that chunks sum to the sequence mean). */
    private static Rwkv5Model.Targets targets(Segment seg, int k, int c, int len, float l2) {
        int from = k * c, to = from + len;
        return new Rwkv5Model.Targets(Arrays.copyOfRange(seg.targets(), from, to), Arrays.copyOfRange(seg.weights(), from, to), l2);
    }

    /**
     * The sink's view of chunk k: its logits slices assembled on the host into one [len, V] tensor, handed over when
     * the last slice arrives (a sink is for tests and small evals; training passes none and never holds [len, V]).
     */
    private static Rwkv5Model.LogitsSlices slices(Backend be, LogitsSink sink, Segment seg, int k, int c, int len) {
        if (sink == null) return null;
        int[] filled = {0};
        HostTensor[] whole = {null};
        return (first, logits) -> {
            HostTensor part = be.download(logits);
            if (whole[0] == null) whole[0] = HostTensor.zeros(len, part.dim(1));
            System.arraycopy(part.data(), 0, whole[0].data(), first * part.dim(1), part.size());
            filled[0] += part.dim(0);
            if (filled[0] == len) sink.accept(seg.offset() + k * c, whole[0]);
        };
    }

    static int[] slice(int[] tokens, int k, int c) {
        return Arrays.copyOfRange(tokens, k * c, Math.min(tokens.length, (k + 1) * c));
    }
}
