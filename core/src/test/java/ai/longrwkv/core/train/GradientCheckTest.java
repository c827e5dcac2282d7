package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.DoubleSupplier;

import static ai.longrwkv.core.train.BpttTestSupport.*;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Finite-difference checks of the hand-written backward, for every parameter tensor and every part of the initial
 * state, in both BPTT modes. Each tensor is probed along a unit direction d: the analytic directional derivative
 * (g . d) must match the central difference (L(p + h d) - L(p - h d)) / 2h of the float32 loss.
 * h = 1e-2 balances the float32 rounding of the loss (about 1e-6, i.e. 1e-4 after dividing by 2h) against the
 * O(h^2) truncation error; a wrong gradient term gives an O(1) relative error.
 */
class GradientCheckTest {
    static final double H = 1e-2, RTOL = 1e-2, ATOL = 1e-4;
    static final int T = 12, CHUNK = 5;   // chunks of 5, 5, 2: state crosses two boundaries

    static Backend be;
    static Rwkv5Model model;
    static TokenSequence seq;

    @BeforeAll
    static void setUp() {
        be = new CpuBackend();
        model = Rwkv5Model.load(be, TestModels.random(TINY, 7), TINY.groupNormEps());
        seq = randomSequence(T, TINY.vocabSize(), 11);
    }

    @AfterAll
    static void tearDown() {
        model.close();
    }

    /** The state-growth penalty's weight in the checks that include it: large enough to move every gradient. */
    static final double PENALTY = 0.5;

    private static ChunkedBptt.Options opts(BpttMode mode) {
        return opts(mode, 0);
    }

    private static ChunkedBptt.Options opts(BpttMode mode, double penalty) {
        return new ChunkedBptt.Options(CHUNK, mode, false, null, penalty);
    }

    /**
     * The loss of FULL mode: the whole-sequence mean cross-entropy (+ the state-growth penalty on the final state), a
     * plain function of parameters and S0.
     */
    private static double fullLoss(RwkvState s0, double penalty) {
        ChunkedBptt.Result r = ChunkedBptt.run(model, seq, s0, null, opts(BpttMode.FULL), false, null);
        double p = penalty > 0 ? StateGrowthPenalty.value(be, s0, r.finalState(), penalty) : 0;
        r.finalState().close();
        return r.loss() + p;
    }

    /**
     * The objective whose gradient TRUNCATED mode computes: the sum over chunks of each chunk's loss with its start
     * state held fixed at the value the unperturbed model gives (the "detached" states).
     */
    private static double truncatedLoss(List<RwkvState> fixedStarts, RwkvState s0, double penalty) {
        double loss = 0;
        long total = seq.lossPositions();
        for (int k = 0; k * CHUNK < T; k++) {
            TokenSequence sub = subSequence(seq, k * CHUNK, Math.min(T, (k + 1) * CHUNK), total);
            if (sub == null) continue;
            RwkvState start = k == 0 ? s0 : fixedStarts.get(k);
            ChunkedBptt.Result r = ChunkedBptt.run(model, sub, start, null, opts(BpttMode.FULL), false, null);
            // the penalty is on the sequence's final state: the last chunk's end, from its fixed start
            if (penalty > 0 && (k + 1) * CHUNK >= T) loss += StateGrowthPenalty.value(be, s0, r.finalState(), penalty);
            r.finalState().close();
            loss += r.loss();
        }
        return loss;
    }

    /**
     * Positions [from, to) of a sequence as their own sequence whose loss weights equal the whole sequence's
     * (mask scaled by n_sub / n_total), so that the sub-sequence losses sum to the whole-sequence loss. Null if
     * the range has no loss position.
     */
    static TokenSequence subSequence(TokenSequence s, int from, int to, long total) {
        int[] tok = java.util.Arrays.copyOfRange(s.tokens(), from, to);
        int[] tgt = java.util.Arrays.copyOfRange(s.targets(), from, to);
        float[] mask = java.util.Arrays.copyOfRange(s.mask(), from, to);
        TokenSequence sub = new TokenSequence(tok, tgt, mask);
        long n = sub.lossPositions();
        if (n == 0) return null;
        for (int i = 0; i < mask.length; i++) mask[i] *= (float) ((double) n / total);
        return new TokenSequence(tok, tgt, mask);
    }

    /** Start states of each chunk when running the unperturbed model from s0. */
    private static List<RwkvState> chunkStarts(RwkvState s0) {
        List<RwkvState> out = new ArrayList<>();
        RwkvState running = s0.copy(be);
        for (int k = 0; k * CHUNK < T; k++) {
            out.add(running.copy(be));
            int[] tok = java.util.Arrays.copyOfRange(seq.tokens(), k * CHUNK, Math.min(T, (k + 1) * CHUNK));
            model.forward(tok, running, false, false).close();
        }
        running.close();
        return out;
    }

    @Test
    void fullModeGradientsMatchFiniteDifferences() {
        check(BpttMode.FULL);
    }

    @Test
    void truncatedModeGradientsMatchFiniteDifferences() {
        check(BpttMode.TRUNCATED);
    }

    /** --state-growth-penalty: the gradients are those of the cross-entropy + λ Σ ln(||S_end|| / ||S_start||), the initial
     * state's included (it enters through S_start too). */
    @Test
    void fullModeGradientsWithStateGrowthPenaltyMatchFiniteDifferences() {
        check(BpttMode.FULL, PENALTY);
    }

    @Test
    void truncatedModeGradientsWithStateGrowthPenaltyMatchFiniteDifferences() {
        check(BpttMode.TRUNCATED, PENALTY);
    }

    /** The penalty changes the gradients (so the two checks above test its term, not only the cross-entropy's). */
    @Test
    void stateGrowthPenaltyChangesTheGradient() {
        try (RwkvState s0 = TestModels.randomState(be, TINY, 3); ParamSet without = zeroGrads(model); ParamSet with = zeroGrads(model)) {
            ChunkedBptt.run(model, seq, s0, without, opts(BpttMode.FULL), false, null).finalState().close();
            ChunkedBptt.run(model, seq, s0, with, opts(BpttMode.FULL, PENALTY), false, null).finalState().close();
            String key = "blocks.0.att.key.weight";
            float[] a = be.download(without.get(key)).data(), b = be.download(with.get(key)).data();
            assertTrue(relMaxDiff(a, b) > 1e-2, "the penalty's term in " + key + ": " + relMaxDiff(a, b));
        }
    }

    private void check(BpttMode mode) {
        check(mode, 0);
    }

    private void check(BpttMode mode, double penalty) {
        try (RwkvState s0 = TestModels.randomState(be, TINY, 3); ParamSet grads = zeroGrads(model)) {
            ChunkedBptt.Result res = ChunkedBptt.run(model, seq, s0, grads, opts(mode, penalty), true, null);
            res.finalState().close();
            List<RwkvState> starts = mode == BpttMode.TRUNCATED ? chunkStarts(s0) : List.of();
            DoubleSupplier loss = mode == BpttMode.FULL ? () -> fullLoss(s0, penalty) : () -> truncatedLoss(starts, s0, penalty);
            Random rnd = new Random(5);
            List<String> failures = new ArrayList<>();
            int checked = 0;
            for (String key : model.params().keys()) {
                checked += probe(key, model.params().get(key), be.download(grads.get(key)).data(), loss, rnd, failures);
            }
            List<Tensor> st = stateTensors(s0), gst = stateTensors(res.initialStateGrad());
            List<String> names = stateNames(TINY.nLayer());
            for (int i = 0; i < st.size(); i++) {
                checked += probe(names.get(i), st.get(i), be.download(gst.get(i)).data(), loss, rnd, failures);
            }
            res.initialStateGrad().close();
            for (RwkvState s : starts) s.close();
            if (!failures.isEmpty()) fail(mode + (penalty > 0 ? " with state-growth penalty " + penalty : "") + ": " + failures.size() + " of " + checked + " gradients disagree:\n" + String.join("\n", failures));
            assertTrue(checked == model.params().keys().size() + 3 * TINY.nLayer());
        }
    }

    private static int probe(String name, Tensor t, float[] g, DoubleSupplier loss, Random rnd, List<String> failures) {
        float[] original = be.download(t).data();
        float[] d = probeDirection(g, rnd);
        double analytic = dot(g, d);
        addScaled(be, t, d, H);
        double plus = loss.getAsDouble();
        set(be, t, original);
        addScaled(be, t, d, -H);
        double minus = loss.getAsDouble();
        set(be, t, original);
        double numeric = (plus - minus) / (2 * H);
        double err = Math.abs(numeric - analytic);
        if (norm(g) < 1e-3) {
            failures.add(String.format("%s: gradient norm %.2e is too small for the check to mean anything", name, norm(g)));
        } else if (err > RTOL * Math.abs(numeric) + ATOL) {
            failures.add(String.format("%s: analytic %.6e numeric %.6e (|g| = %.3e)", name, analytic, numeric, norm(g)));
        }
        return 1;
    }
}
