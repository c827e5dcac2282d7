package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * --prefix-grad stationary against the exact gradient. It is exact where its assumption holds exactly: a one-layer
 * model without token shift (every time_mix 1, so a token's write depends on that token alone and a token before the
 * boundary reaches the loss only through the WKV state) and a prefix that repeats the piece's text before the boundary
 * with a period dividing both lengths. Then every parameter's gradient but time_decay's (which reads the state
 * itself, and the state differs) and time_mix_k/v's (the document's first token mixes with the zero initial state) is
 * the full-BPTT gradient over prefix + piece.
 */
class PrefixGradientTest {
    static final ModelConfig ONE_LAYER = new ModelConfig(1, 16, 2, 8, 32, 23, ModelConfig.OFFICIAL_GROUP_NORM_EPS);
    static final int CHUNK = 8, PERIOD = 4, PREFIX = 48, BOUNDARY = 16, TAIL = 12;

    /** Random weights, no token shift, and half of each head's key channels never-forgetting (w = 1 - 3e-4). */
    static ModelWeights stationaryModel(long seed) {
        ModelWeights r = TestModels.random(ONE_LAYER, seed);
        Map<String, HostTensor> m = new LinkedHashMap<>();
        for (ParamSpec p : ParamSpec.all(ONE_LAYER)) {
            HostTensor t = r.get(p.key());
            switch (p.kind()) {
                case ATT_MIX_K, ATT_MIX_V, ATT_MIX_R, ATT_MIX_G, FFN_MIX_K, FFN_MIX_R -> Arrays.fill(t.data(), 1f);
                case ATT_DECAY -> { for (int i = 0; i < t.data().length; i += 2) t.data()[i] = -8f; }
                default -> { }
            }
            m.put(p.key(), t);
        }
        return new ModelWeights(m, "stationary(seed=" + seed + ")", ONE_LAYER.groupNormEps());
    }

    /** prefix + boundary tokens repeating a period of PERIOD, then tail random ones (the question and answer), trained. */
    static TokenSequence document(long seed, int prefix, int boundary, int tail) {
        Random rnd = new Random(seed);
        int[] period = new int[PERIOD];
        for (int i = 0; i < PERIOD; i++) period[i] = rnd.nextInt(ONE_LAYER.vocabSize());
        int[] doc = new int[prefix + boundary + tail];
        for (int t = 0; t < prefix + boundary; t++) doc[t] = period[t % PERIOD];
        for (int t = prefix + boundary; t < doc.length; t++) doc[t] = rnd.nextInt(ONE_LAYER.vocabSize());
        TokenSequence whole = TokenSequence.nextToken(doc);
        float[] mask = new float[doc.length];
        for (int t = prefix + boundary; t < doc.length; t++) mask[t] = 1f;
        return new TokenSequence(whole.tokens(), whole.targets(), mask);
    }

    static TokenSequence range(TokenSequence s, int from, int to) {
        return new TokenSequence(Arrays.copyOfRange(s.tokens(), from, to), Arrays.copyOfRange(s.targets(), from, to),
                Arrays.copyOfRange(s.mask(), from, to));
    }

    /** Whether a parameter's gradient is exact under the stationary estimate here (see the class comment). */
    static boolean exactHere(String key) {
        // not time_mix_k/v: their gradient reads x - x_prev, and x_prev of the document's first token is the zero
        // initial state, not the period's last token (the piece starts from a carried one)
        return !key.equals("blocks.0.att.time_decay") && !key.equals("blocks.0.att.time_mix_k") && !key.equals("blocks.0.att.time_mix_v");
    }

    @Test
    void onStationaryTextTheEstimateIsTheFullGradientOfPrefixAndPiece() {
        TokenSequence whole = document(3, PREFIX, BOUNDARY, TAIL);
        int[] doc = whole.tokens();
        float[] mask = whole.mask();
        TokenSequence prefix = new TokenSequence(Arrays.copyOf(whole.tokens(), PREFIX), Arrays.copyOf(whole.targets(), PREFIX), new float[PREFIX]);
        TokenSequence piece = new TokenSequence(Arrays.copyOfRange(whole.tokens(), PREFIX, doc.length),
                Arrays.copyOfRange(whole.targets(), PREFIX, doc.length), Arrays.copyOfRange(mask, PREFIX, doc.length));
        assertEquals(PREFIX + BOUNDARY, whole.firstLossPosition());
        assertEquals(BOUNDARY, PrefixGradient.boundaryBefore(piece.firstLossPosition(), 0, CHUNK));
        assertEquals(8, PrefixGradient.boundaryBefore(piece.firstLossPosition(), 1, CHUNK), "a margin moves it to the chunk start before");

        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, stationaryModel(11), ONE_LAYER.groupNormEps())) {
            ChunkedBptt.Options full = new ChunkedBptt.Options(CHUNK, BpttMode.FULL, false);
            Map<String, float[]> exact = gradients(be, m, whole, null, full);
            try (RwkvState s0 = m.newState()) {
                ChunkedBptt.Result r = ChunkedBptt.run(m, prefix, s0, null, full, false, null);
                try (RwkvState carried = r.finalState()) {
                    PrefixGradient pg = PrefixGradient.stationary(m, PREFIX, BOUNDARY);
                    Map<String, float[]> estimated = gradients(be, m, piece, carried, new ChunkedBptt.Options(CHUNK, BpttMode.FULL, false, pg));
                    Map<String, float[]> stopped = gradients(be, m, piece, carried, full);
                    String decay = "blocks.0.att.time_decay";
                    for (String key : exact.keySet()) {
                        double scale = maxAbs(exact.get(key));
                        double err = maxAbsDiff(exact.get(key), estimated.get(key));
                        if (!exactHere(key)) continue;
                        assertTrue(err <= 2e-5 * scale + 1e-7, key + ": estimate off by " + err + " of " + scale);
                    }
                    // the test has power: the plain stop misses the prefix's share of the write gradients, a lot
                    for (String key : List.of("blocks.0.att.key.weight", "blocks.0.att.value.weight", "emb.weight")) {
                        double scale = maxAbs(exact.get(key));
                        assertTrue(maxAbsDiff(exact.get(key), stopped.get(key)) > 0.3 * scale, key + ": the stop alone is already close");
                    }
                    // and time_decay, which reads the state itself, is where the estimate is only an estimate
                    assertTrue(maxAbsDiff(exact.get(decay), estimated.get(decay)) > 1e-3 * maxAbs(exact.get(decay)));
                }
            }
        }
    }

    @Test
    void theTrainerCountsTheDocumentsPrefixFromItsPieces() {
        // the document in four pieces of 16 tokens: three state-only ones (the prefix), then the trained one; one
        // sequence a step, as the demo trains, so the fourth step is the one with a gradient
        int piece = 16;
        TokenSequence whole = document(5, 3 * piece, CHUNK, piece - CHUNK);   // the trained piece: 8 period tokens, then 8 trained
        Trainer.SequenceSource pieces = new Trainer.SequenceSource() {
            @Override public TokenSequence sequence(long index) { return range(whole, (int) index * piece, (int) (index + 1) * piece); }
            @Override public String fingerprint() { return "pieces"; }
            @Override public boolean continuesPrevious(long index) { return index % 4 != 0; }
        };
        LrSchedule lr = new LrSchedule(CarryStateTest.TINY_LR, CarryStateTest.TINY_LR, 0, 4, LrSchedule.Kind.CONSTANT);
        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, stationaryModel(12), ONE_LAYER.groupNormEps())) {
            Map<String, float[]> exact = gradients(be, m, whole, null, new ChunkedBptt.Options(CHUNK, BpttMode.FULL, false));
            for (int margin : new int[]{0, -1}) {
                Trainer.Config c = new Trainer.Config(Trainer.Mode.FULL, CHUNK, BpttMode.FULL, 1, 1, 4, lr, 0, 0, false, 0,
                        CarryState.STOP, false, margin);
                try (Trainer t = new Trainer(m, c, pieces, null, Set.of())) {
                    for (int i = 0; i < 3; i++) assertTrue(t.trainStep().stateOnly(), "piece " + i + " has no trained token");
                    assertFalse(t.trainStep().stateOnly());
                    double worst = 0;
                    for (Trainable tr : t.trainables()) {
                        if (!exactHere(tr.key())) continue;
                        float[] e = exact.get(tr.key());
                        worst = Math.max(worst, maxAbsDiff(e, be.download(tr.grad()).data()) / Math.max(maxAbs(e), 1e-30));
                    }
                    if (margin == 0) assertTrue(worst < 2e-5, "with the estimate: the whole document's gradient, off by " + worst);
                    else assertTrue(worst > 0.3, "without it the prefix's share is missing, so it must differ (" + worst + ")");
                }
            }
        }
    }

    @Test
    void factorCountsDecayedWrites() {
        // (1 - w^(b+P)) / (1 - w^b) with w = exp(-a): by hand for w = 1/2, b = 2, P = 2: (1 - 1/16) / (1 - 1/4) = 1.25
        assertEquals(1.25, PrefixGradient.factor(Math.log(2), 2, 2), 1e-12);
        assertEquals(5.0, PrefixGradient.factor(0, 1000, 4000), 1e-12, "no decay: (b + P) / b");
        assertEquals(5.0, PrefixGradient.factor(1e-15, 1000, 4000), 1e-9);
        assertEquals(1.0, PrefixGradient.factor(1.0, 2048, 100_000), 1e-12, "forgets within the piece: nothing to add");
        double a = 1e-5;   // between: the sum of w^k over b + P terms over that over b, by brute force
        double num = 0, den = 0;
        for (int k = 0; k < 2048 + 126_976; k++) {
            num += Math.exp(-a * k);
            if (k < 2048) den += Math.exp(-a * k);
        }
        assertEquals(num / den, PrefixGradient.factor(a, 2048, 126_976), 1e-9 * num / den);
        assertNull(PrefixGradient.stationary(null, 0, 64), "no prefix: nothing to scale");
        assertEquals(0, PrefixGradient.boundaryBefore(40, 64, 32), "no boundary before the margin");
    }

    @Test
    void refusedWhereItMeansNothing() {
        LrSchedule lr = new LrSchedule(1e-3, 1e-3, 0, 1, LrSchedule.Kind.CONSTANT);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Trainer.Config(Trainer.Mode.FULL, CHUNK,
                BpttMode.TRUNCATED, 1, 1, 1, lr, 0, 0, false, 0, CarryState.STOP, false, 64));
        assertTrue(e.getMessage().contains("--prefix-grad stationary needs --carry-state stop and --bptt full"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Trainer.Config(Trainer.Mode.FULL, CHUNK,
                BpttMode.FULL, 1, 1, 1, lr, 0, 0, false, 0, CarryState.FLOW, false, 64));
        assertThrows(IllegalArgumentException.class, () -> new ChunkedBptt.Options(CHUNK, BpttMode.FULL, false,
                new PrefixGradient(12, new float[][]{{1f}})), "a boundary inside a chunk");
    }

    /** Parameter gradients of one ChunkedBptt run (lr-free), by key. */
    private static Map<String, float[]> gradients(Backend be, Rwkv5Model m, TokenSequence seq, RwkvState s0, ChunkedBptt.Options opt) {
        Map<String, float[]> out = new LinkedHashMap<>();
        try (ParamSet g = ParamSet.zeros(be, m.config()); RwkvState z = s0 == null ? m.newState() : s0.copy(be)) {
            ChunkedBptt.run(m, seq, z, g, opt, false, null).finalState().close();
            for (String k : g.keys()) out.put(k, be.download(g.get(k)).data());
        }
        return out;
    }

    private static double maxAbs(float[] a) {
        double m = 0;
        for (float x : a) m = Math.max(m, Math.abs(x));
        return m;
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }
}
