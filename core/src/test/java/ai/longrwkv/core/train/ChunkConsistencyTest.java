package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static ai.longrwkv.core.train.BpttTestSupport.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Chunking must not change results: forward with carried state, FULL-mode gradients, TRUNCATED = sum of chunks. */
class ChunkConsistencyTest {
    static final int T = 16;
    static Backend be;
    static Rwkv5Model model;
    static TokenSequence seq;

    @BeforeAll
    static void setUp() {
        be = new CpuBackend();
        model = Rwkv5Model.load(be, TestModels.random(TINY, 21), TINY.groupNormEps());
        seq = randomSequence(T, TINY.vocabSize(), 22);
    }

    @AfterAll
    static void tearDown() {
        model.close();
    }

    /** Logits of the whole sequence and the final state, forward in chunks of c with the state carried. */
    private static float[][] chunkedForward(int c, RwkvState s0) {
        float[] logits = new float[T * TINY.vocabSize()];
        try (RwkvState s = s0.copy(be)) {
            for (int from = 0; from < T; from += c) {
                int[] tok = Arrays.copyOfRange(seq.tokens(), from, Math.min(T, from + c));
                try (var acts = model.forward(tok, s, false, true)) {
                    float[] part = be.download(acts.logits()).data();
                    System.arraycopy(part, 0, logits, from * TINY.vocabSize(), part.length);
                }
            }
            return new float[][]{logits, flatten(s)};
        }
    }

    private static float[] flatten(RwkvState s) {
        List<Tensor> ts = stateTensors(s);
        int n = 0;
        for (Tensor t : ts) n += (int) t.size();
        float[] out = new float[n];
        int at = 0;
        for (Tensor t : ts) {
            float[] d = be.download(t).data();
            System.arraycopy(d, 0, out, at, d.length);
            at += d.length;
        }
        return out;
    }

    @Test
    void chunkedForwardEqualsOneShotAndTokenByToken() {
        try (RwkvState s0 = TestModels.randomState(be, TINY, 5)) {
            float[][] oneShot = chunkedForward(T, s0);
            for (int c : new int[]{1, 2, 3, 5, 7, 8}) {
                float[][] chunked = chunkedForward(c, s0);
                assertTrue(TestModels.maxAbsDiff(oneShot[0], chunked[0], 0) <= 1e-5, "logits, chunk " + c);
                assertTrue(TestModels.maxAbsDiff(oneShot[1], chunked[1], 0) <= 1e-5, "final state, chunk " + c);
            }
            // RNN steps
            try (RwkvState s = s0.copy(be)) {
                for (int t = 0; t < T; t++) {
                    float[] row = model.step(seq.tokens()[t], s);
                    double d = TestModels.maxAbsDiff(row, oneShot[0], t * TINY.vocabSize());
                    assertTrue(d <= 1e-5, "step " + t + ": " + d);
                }
                assertTrue(TestModels.maxAbsDiff(oneShot[1], flatten(s), 0) <= 1e-5, "state after steps");
            }
        }
    }

    private static Grads grads(int chunk, BpttMode mode, TokenSequence s, RwkvState s0) {
        return BpttTestSupport.grads(model, s, s0, chunk, mode, false);
    }

    @Test
    void fullModeGradientsDoNotDependOnChunkLength() {
        try (RwkvState s0 = TestModels.randomState(be, TINY, 6)) {
            Grads ref = grads(T, BpttMode.FULL, seq, s0);
            for (int c : new int[]{T / 2, T / 8, 1, 3}) {
                Grads g = grads(c, BpttMode.FULL, seq, s0);
                assertEquals(ref.loss(), g.loss(), 1e-6 * Math.abs(ref.loss()), "loss, chunk " + c);
                for (String k : ref.byName().keySet()) {
                    double rel = relMaxDiff(ref.byName().get(k), g.byName().get(k));
                    assertTrue(rel <= 1e-5, k + " chunk " + c + ": relative difference " + rel);
                }
            }
        }
    }

    @Test
    void truncatedModeEqualsSumOfDetachedChunks() {
        int c = 5;
        try (RwkvState s0 = TestModels.randomState(be, TINY, 8)) {
            Grads truncated = grads(c, BpttMode.TRUNCATED, seq, s0);
            java.util.Map<String, float[]> sum = new java.util.LinkedHashMap<>();
            double loss = 0;
            long total = seq.lossPositions();
            try (RwkvState running = s0.copy(be)) {
                for (int from = 0; from < T; from += c) {
                    int to = Math.min(T, from + c);
                    TokenSequence sub = GradientCheckTest.subSequence(seq, from, to, total);
                    if (sub != null) {
                        // an independent FULL-mode run of this chunk alone, from the carried (detached) state
                        Grads g = grads(to - from, BpttMode.FULL, sub, running);
                        loss += g.loss();
                        for (var e : g.byName().entrySet()) {
                            if (from > 0 && e.getKey().startsWith("state.")) continue;  // only chunk 0 reaches S0
                            float[] acc = sum.computeIfAbsent(e.getKey(), k -> new float[e.getValue().length]);
                            for (int i = 0; i < acc.length; i++) acc[i] += e.getValue()[i];
                        }
                    }
                    model.forward(Arrays.copyOfRange(seq.tokens(), from, to), running, false, false).close();
                }
            }
            assertEquals(loss, truncated.loss(), 1e-6 * Math.abs(loss));
            for (String k : truncated.byName().keySet()) {
                double rel = relMaxDiff(sum.get(k), truncated.byName().get(k));
                assertTrue(rel <= 1e-5, k + ": relative difference " + rel);
            }
            // and truncation really changes something versus the exact gradient
            Grads full = grads(c, BpttMode.FULL, seq, s0);
            assertTrue(relMaxDiff(full.byName().get("blocks.0.att.time_decay"), truncated.byName().get("blocks.0.att.time_decay")) > 1e-3);
        }
    }

    @Test
    void stateResetsMakeDocumentsIndependent() {
        int reset = 7;
        TokenSequence withReset = new TokenSequence(seq.tokens(), seq.targets(), seq.mask(), new int[]{reset});
        try (RwkvState s0 = TestModels.randomState(be, TINY, 9)) {
            Grads joined = grads(3, BpttMode.FULL, withReset, s0);
            long total = seq.lossPositions();
            TokenSequence a = GradientCheckTest.subSequence(seq, 0, reset, total), b = GradientCheckTest.subSequence(seq, reset, T, total);
            Grads ga = grads(3, BpttMode.FULL, a, s0), gb = grads(3, BpttMode.FULL, b, s0);
            assertEquals(ga.loss() + gb.loss(), joined.loss(), 1e-6 * Math.abs(joined.loss()));
            for (String k : joined.byName().keySet()) {
                float[] sum = ga.byName().get(k).clone();
                for (int i = 0; i < sum.length; i++) sum[i] += gb.byName().get(k)[i];   // both segments start from s0
                double rel = relMaxDiff(sum, joined.byName().get(k));
                assertTrue(rel <= 1e-5, k + ": relative difference " + rel);
            }
            assertThrows(IllegalArgumentException.class, () -> new TokenSequence(seq.tokens(), seq.targets(), seq.mask(), new int[]{0}));
        }
    }

    @Test
    void tokensOutsideTheVocabularyAreRefusedClearly() {
        try (RwkvState s = model.newState()) {
            IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> model.forward(new int[]{1, 2, 23}, s, false, true));
            assertTrue(e.getMessage().contains("token 23 at position 2"), e.getMessage());
            assertTrue(e.getMessage().contains("0..22"), e.getMessage());
        }
    }

    @Test
    void l2WrapAddsMaxLogitAtArgmaxOnly() {
        float[] logits = {0.5f, 3f, -1f, 2f, 0.1f, 0.2f};
        try (Tensor a = be.upload(new HostTensor(new int[]{2, 3}, logits.clone()));
             Tensor b = be.upload(new HostTensor(new int[]{2, 3}, logits.clone()))) {
            int[] targets = {0, -1};
            float[] w = {1f, 0f};
            double la = be.crossEntropy(a, targets, w, 0f, a);
            double lb = be.crossEntropy(b, targets, w, 0.25f, b);
            assertEquals(la, lb, 0.0, "L2Wrap does not change the loss value");
            double expectedLoss = Math.log(Math.exp(0.5) + Math.exp(3) + Math.exp(-1)) - 0.5;
            assertEquals(expectedLoss, la, 1e-6);
            float[] ga = be.download(a).data(), gb = be.download(b).data();
            float[] diff = new float[6];
            for (int i = 0; i < 6; i++) diff[i] = gb[i] - ga[i];
            assertEquals(0.25f * 3f, diff[1], 1e-6);   // row 0: argmax 1, max 3
            assertEquals(0.25f * 2f, diff[3], 1e-6);   // row 1 (no target): argmax 0, max 2
            assertEquals(0f, diff[0] + diff[2] + diff[4] + diff[5], 0f);
        }
    }
}
