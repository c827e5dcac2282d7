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

    /** Options. {@code l2Wrap}: add RWKV-LM's L2Wrap gradient (factor 1e-4 / sequence length, as its 1e-4/(B*T)). */
    public record Options(int chunkLen, BpttMode mode, boolean l2Wrap) {
        public Options {
            if (chunkLen < 1) throw new IllegalArgumentException("chunk length must be >= 1, got " + chunkLen);
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
     * state are computed; otherwise parameter gradients accumulate into {@code grads}.
     */
    public static Result run(Rwkv5Model model, TokenSequence seq, RwkvState initialState, ParamSet grads,
                             Options opt, boolean wantInitialStateGrad, LogitsSink sink) {
        Backend be = model.backend();
        seq.checkVocabulary(model.config().vocabSize());
        int T = seq.length(), c = opt.chunkLen();
        int chunks = (T + c - 1) / c;
        float[] weights = seq.lossWeights();
        float l2 = opt.l2Wrap() ? (float) (1e-4 / T) : 0f;
        if (grads == null) {
            return forwardOnly(model, seq, initialState, c, chunks, weights, sink);
        }
        if (opt.mode() == BpttMode.TRUNCATED) {
            return truncated(model, seq, initialState, grads, c, chunks, weights, l2, wantInitialStateGrad, sink);
        }
        // ---- FULL: forward sweep keeping boundary states only
        RwkvState[] boundary = new RwkvState[chunks];
        boundary[0] = initialState.copy(be);
        try {
            try (RwkvState running = initialState.copy(be)) {
                for (int k = 0; k + 1 < chunks; k++) {
                    model.forward(slice(seq.tokens(), k, c), running, false, false).close();
                    boundary[k + 1] = running.copy(be);
                }
            }
            // ---- reverse sweep: recompute each chunk, backprop with the carried state gradient
            double loss = 0;
            RwkvState finalState = null;
            RwkvState dState = RwkvState.zeros(be, model.config());
            for (int k = chunks - 1; k >= 0; k--) {
                RwkvState st = boundary[k];
                boundary[k] = null;
                try (Rwkv5Model.Activations acts = model.forward(slice(seq.tokens(), k, c), st, true, true)) {
                    loss += lossAndGrad(be, acts, seq, weights, k, c, l2, sink);
                    model.backward(acts, acts.logits(), dState, grads);
                }
                if (k == chunks - 1) finalState = st; else st.close();
            }
            if (!wantInitialStateGrad) {
                dState.close();
                dState = null;
            }
            return new Result(loss, seq.lossPositions(), finalState, dState);
        } finally {
            for (RwkvState s : boundary) if (s != null) s.close();
        }
    }

    private static Result truncated(Rwkv5Model model, TokenSequence seq, RwkvState initialState, ParamSet grads, int c,
                                    int chunks, float[] weights, float l2, boolean wantInitialStateGrad, LogitsSink sink) {
        Backend be = model.backend();
        RwkvState state = initialState.copy(be);
        RwkvState initGrad = null;
        double loss = 0;
        for (int k = 0; k < chunks; k++) {
            try (Rwkv5Model.Activations acts = model.forward(slice(seq.tokens(), k, c), state, true, true)) {
                loss += lossAndGrad(be, acts, seq, weights, k, c, l2, sink);
                RwkvState dState = RwkvState.zeros(be, model.config());  // gradient stopped at the chunk end
                model.backward(acts, acts.logits(), dState, grads);
                if (k == 0 && wantInitialStateGrad) initGrad = dState; else dState.close();
            }
        }
        return new Result(loss, seq.lossPositions(), state, initGrad);
    }

    private static Result forwardOnly(Rwkv5Model model, TokenSequence seq, RwkvState initialState, int c, int chunks,
                                      float[] weights, LogitsSink sink) {
        Backend be = model.backend();
        RwkvState state = initialState.copy(be);
        double loss = 0;
        for (int k = 0; k < chunks; k++) {
            try (Rwkv5Model.Activations acts = model.forward(slice(seq.tokens(), k, c), state, false, true)) {
                if (sink != null) sink.accept(k * c, be.download(acts.logits()));
                int from = k * c;
                loss += be.crossEntropy(acts.logits(), Arrays.copyOfRange(seq.targets(), from, from + acts.length()),
                        Arrays.copyOfRange(weights, from, from + acts.length()), 0f, null);
            }
        }
        return new Result(loss, seq.lossPositions(), state, null);
    }

    /** Chunk loss (weighted so that chunks sum to the sequence mean); turns the logits into their gradient in place. */
    private static double lossAndGrad(Backend be, Rwkv5Model.Activations acts, TokenSequence seq, float[] weights,
                                      int k, int c, float l2, LogitsSink sink) {
        int from = k * c, to = from + acts.length();
        if (sink != null) sink.accept(from, be.download(acts.logits()));
        return be.crossEntropy(acts.logits(), Arrays.copyOfRange(seq.targets(), from, to),
                Arrays.copyOfRange(weights, from, to), l2, acts.logits());
    }

    static int[] slice(int[] tokens, int k, int c) {
        return Arrays.copyOfRange(tokens, k * c, Math.min(tokens.length, (k + 1) * c));
    }
}
