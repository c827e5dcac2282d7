package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static ai.longrwkv.core.train.BpttTestSupport.TINY;
import static org.junit.jupiter.api.Assertions.*;

/** --carry-state: the final state of sequence i is sequence i + 1's initial state; with flow the gradient crosses too. */
class CarryStateTest {
    static final int LEN = 10, CHUNK = 4;
    /** An update of ~1e-30 leaves every weight (of size ~0.01..1) bit for bit as it is (the schedule refuses lr 0). */
    static final double TINY_LR = 1e-30;

    /** Random token sequences, every target trained (so each has LEN - 1 loss positions and the step mean is a plain mean). */
    static List<int[]> tokens(int n, long seed) {
        Random rnd = new Random(seed);
        List<int[]> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] t = new int[LEN];
            for (int j = 0; j < LEN; j++) t[j] = rnd.nextInt(TINY.vocabSize());
            out.add(t);
        }
        return out;
    }

    static Trainer.SequenceSource source(List<int[]> seqs) {
        return new Trainer.SequenceSource() {
            @Override public TokenSequence sequence(long index) { return TokenSequence.nextToken(seqs.get((int) (index % seqs.size()))); }
            @Override public String fingerprint() { return "carry-test " + seqs.size(); }
        };
    }

    static Trainer.Config config(CarryState carry, int micro, long steps, double lr) {
        return new Trainer.Config(Trainer.Mode.FULL, CHUNK, BpttMode.FULL, micro, 1, steps, new LrSchedule(lr, lr, 0, steps, LrSchedule.Kind.CONSTANT),
                0, 0, false, 0, carry);
    }

    private static ChunkedBptt.Options opts() {
        return new ChunkedBptt.Options(CHUNK, BpttMode.FULL, false);
    }

    @Test
    void stopPassesTheFinalStateOfEachSequenceIntoTheNext() {
        ModelWeights w = TestModels.random(TINY, 81);
        List<int[]> seqs = tokens(4, 5);
        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps())) {
            // what the stream must give, by hand: sequence 0 from zeros, then 1 from 0's final state, then 2 from 1's
            double[] expected = new double[3];
            RwkvState s = m.newState();
            for (int i = 0; i < 3; i++) {
                ChunkedBptt.Result r = ChunkedBptt.run(m, TokenSequence.nextToken(seqs.get(i)), s, null, opts(), false, null);
                s.close();
                s = r.finalState();
                expected[i] = r.loss();
            }
            double fromZeros;
            try (RwkvState z = m.newState()) {
                ChunkedBptt.Result r = ChunkedBptt.run(m, TokenSequence.nextToken(seqs.get(1)), z, null, opts(), false, null);
                r.finalState().close();
                fromZeros = r.loss();
            }
            assertNotEquals(fromZeros, expected[1], 1e-6, "the test needs a state that changes the loss");
            // a learning rate far below a float ulp of the weights keeps them, so that each step's loss is that of the same model
            try (Trainer t = new Trainer(m, config(CarryState.STOP, 1, 3, TINY_LR), source(seqs), null, Set.of())) {
                for (int i = 0; i < 3; i++) assertEquals(expected[i], t.trainStep().loss(), 1e-12, "step " + (i + 1));
                assertArrayEquals(be.download(s.wkv[1]).data(), be.download(t.carriedState().wkv[1]).data(), "the carried state is sequence 2's final state");
                assertArrayEquals(be.download(s.attX[0]).data(), be.download(t.carriedState().attX[0]).data());
            } finally {
                s.close();
            }
            // two sequences per step: the second starts from the first's final state within the step too
            try (Trainer t = new Trainer(m, config(CarryState.STOP, 2, 1, TINY_LR), source(seqs), null, Set.of())) {
                assertEquals((expected[0] + expected[1]) / 2, t.trainStep().loss(), 1e-12);
            }
            try (Trainer t = new Trainer(m, config(CarryState.OFF, 2, 1, TINY_LR), source(seqs), null, Set.of())) {
                assertEquals((expected[0] + fromZeros) / 2, t.trainStep().loss(), 1e-12, "off: every sequence from zeros");
            }
        }
    }

    @Test
    void withinADocumentStreamTheStateIsCarriedOnlyIntoTheNextPieceOfTheSameDocument() {
        ModelWeights w = TestModels.random(TINY, 84);
        List<int[]> seqs = tokens(3, 8);
        Trainer.SequenceSource pieces = new Trainer.SequenceSource() {   // 0 and 1 one document, 2 a new one
            @Override public TokenSequence sequence(long index) { return TokenSequence.nextToken(seqs.get((int) index)); }
            @Override public String fingerprint() { return "pieces"; }
            @Override public boolean continuesPrevious(long index) { return index == 1; }
        };
        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps())) {
            double[] fromZeros = new double[3];
            double carriedInto1 = Double.NaN;
            try (RwkvState z = m.newState()) {
                for (int i = 0; i < 3; i++) {
                    ChunkedBptt.Result r = ChunkedBptt.run(m, TokenSequence.nextToken(seqs.get(i)), z, null, opts(), false, null);
                    if (i == 0) {
                        ChunkedBptt.Result r1 = ChunkedBptt.run(m, TokenSequence.nextToken(seqs.get(1)), r.finalState(), null, opts(), false, null);
                        carriedInto1 = r1.loss();
                        r1.finalState().close();
                    }
                    r.finalState().close();
                    fromZeros[i] = r.loss();
                }
            }
            for (CarryState carry : new CarryState[]{CarryState.STOP, CarryState.FLOW}) {
                Trainer.Config c = new Trainer.Config(Trainer.Mode.FULL, CHUNK, BpttMode.FULL, 3, 1, 1,
                        new LrSchedule(TINY_LR, TINY_LR, 0, 1, LrSchedule.Kind.CONSTANT), 0, 0, false, 0, carry, false);
                try (Trainer t = new Trainer(m, c, pieces, null, Set.of())) {
                    assertEquals((fromZeros[0] + carriedInto1 + fromZeros[2]) / 3, t.trainStep().loss(), 1e-12, carry.cliName());
                }
            }
        }
    }

    /** The parameter gradients a one-step trainer leaves in its trainables (clipping off, lr 0). */
    private static List<float[]> stepGradients(Backend be, Rwkv5Model m, CarryState carry, List<int[]> seqs) {
        try (Trainer t = new Trainer(m, config(carry, 2, 1, TINY_LR), source(seqs), null, Set.of())) {
            t.trainStep();
            List<float[]> g = new ArrayList<>();
            for (Trainable tr : t.trainables()) g.add(be.download(tr.grad()).data());
            return g;
        }
    }

    @Test
    void flowGivesTheGradientOfTheWholeStreamAndStopDoesNot() {
        ModelWeights w = TestModels.random(TINY, 82);
        List<int[]> seqs = tokens(2, 6);
        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps())) {
            // the reference: both sequences as one sequence of 2 x LEN tokens, trained by chunked BPTT, where the
            // gradient crosses from the second half into the first. The last position of the first half has no
            // target (as in the stream), so both halves have LEN - 1 loss positions and the mean is the step mean.
            int[] joined = new int[2 * LEN];
            System.arraycopy(seqs.get(0), 0, joined, 0, LEN);
            System.arraycopy(seqs.get(1), 0, joined, LEN, LEN);
            TokenSequence whole = TokenSequence.nextToken(joined);
            int[] targets = whole.targets().clone();
            targets[LEN - 1] = -1;
            whole = new TokenSequence(joined, targets, whole.mask());
            List<float[]> reference = new ArrayList<>();
            try (ParamSet grads = ParamSet.zeros(be, TINY); RwkvState s0 = m.newState()) {
                ChunkedBptt.run(m, whole, s0, grads, opts(), false, null).finalState().close();
                try (Trainer keys = new Trainer(m, config(CarryState.OFF, 1, 1, TINY_LR), source(seqs), null, Set.of())) {
                    for (Trainable tr : keys.trainables()) reference.add(be.download(grads.get(tr.key())).data());
                }
            }
            List<float[]> flow = stepGradients(be, m, CarryState.FLOW, seqs);
            List<float[]> stop = stepGradients(be, m, CarryState.STOP, seqs);
            double flowErr = 0, stopErr = 0;
            for (int i = 0; i < reference.size(); i++) {
                flowErr = Math.max(flowErr, BpttTestSupport.relMaxDiff(reference.get(i), flow.get(i)));
                stopErr = Math.max(stopErr, BpttTestSupport.relMaxDiff(reference.get(i), stop.get(i)));
            }
            assertTrue(flowErr < 1e-4, "flow: gradient of the joined stream, max relative difference " + flowErr);
            assertTrue(stopErr > 1e-2, "stop: the gradient does not cross the boundary, so it must differ (" + stopErr + ")");
            // and the part that crossed: the first sequence's tokens get gradient from the second's loss only with flow
            int emb = 0;
            List<String> keys = new ArrayList<>();
            try (Trainer k = new Trainer(m, config(CarryState.OFF, 1, 1, TINY_LR), source(seqs), null, Set.of())) {
                for (Trainable tr : k.trainables()) keys.add(tr.key());
            }
            emb = keys.indexOf("emb.weight");
            assertFalse(Arrays.equals(flow.get(emb), stop.get(emb)));
        }
    }

    private static List<Double> run(Backend be, ModelWeights w, CarryState carry, Path ckDir, long stopAt, boolean resume) {
        List<Double> losses = new ArrayList<>();
        try (Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps());
             Trainer t = new Trainer(m, config(carry, 2, 6, 3e-3), source(tokens(5, 9)), null, Set.of())) {
            if (resume) t.resume(ckDir, "test");
            while (!t.done() && t.step() < stopAt) losses.add(t.trainStep().loss());
            if (ckDir != null && !resume) t.saveCheckpoint(ckDir, "test");
        }
        return losses;
    }

    /**
     * --state-growth-penalty in the Trainer: the first sequence starts from zeros (no term: the same update as without
     * it, bit for bit); the second starts from the carried state, and the penalty changes its update.
     */
    @Test
    void stateGrowthPenaltyActsOnlyOnSequencesThatStartFromACarriedState() {
        ModelWeights w = TestModels.random(TINY, 85);
        List<int[]> seqs = tokens(2, 10);
        try (Backend be = new CpuBackend()) {
            float[][] without = new float[2][], with = new float[2][];
            for (int run = 0; run < 2; run++) {
                Trainer.Config c = new Trainer.Config(Trainer.Mode.FULL, CHUNK, BpttMode.FULL, 1, 1, 2,
                        new LrSchedule(3e-3, 3e-3, 0, 2, LrSchedule.Kind.CONSTANT), 0, 0, false, 0, CarryState.STOP, true, -1, run == 0 ? 0 : 0.5);
                try (Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps()); Trainer t = new Trainer(m, c, source(seqs), null, Set.of())) {
                    float[][] after = run == 0 ? without : with;
                    for (int step = 0; step < 2; step++) {
                        t.trainStep();
                        after[step] = be.download(m.params().get("blocks.0.att.key.weight")).data();
                    }
                }
            }
            assertArrayEquals(without[0], with[0], "step 1 starts from zeros: no penalty term");
            assertFalse(Arrays.equals(without[1], with[1]), "step 2 starts from step 1's final state: the penalty moves the update");
        }
    }

    @Test
    void resumeContinuesTheStreamOfStatesExactly(@TempDir Path dir) {
        ModelWeights w = TestModels.random(TINY, 83);
        try (Backend be = new CpuBackend()) {
            for (CarryState carry : new CarryState[]{CarryState.STOP, CarryState.FLOW}) {
                Path ck = dir.resolve(carry.cliName());
                List<Double> whole = run(be, w, carry, null, Long.MAX_VALUE, false);
                List<Double> joined = new ArrayList<>(run(be, w, carry, ck, 3, false));
                assertTrue(java.nio.file.Files.isRegularFile(ck.resolve("step-00000003").resolve(Trainer.CARRY_FILE)), "the checkpoint holds the carried state");
                joined.addAll(run(be, w, carry, ck, Long.MAX_VALUE, true));
                assertEquals(whole, joined, carry + ": losses after resume must be bit-identical");
            }
            // a checkpoint of a run without state passing is refused by a carrying run (the config differs)
            Path off = dir.resolve("off");
            run(be, w, CarryState.OFF, off, 3, false);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> run(be, w, CarryState.STOP, off, Long.MAX_VALUE, true));
            assertTrue(e.getMessage().contains("carry=stop"), e.getMessage());
        }
    }

    @Test
    void flowNeedsFullBptt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Trainer.Config(Trainer.Mode.FULL, CHUNK, BpttMode.TRUNCATED,
                1, 1, 1, new LrSchedule(1e-3, 1e-3, 0, 1, LrSchedule.Kind.CONSTANT), 0, 0, false, 0, CarryState.FLOW));
        assertTrue(e.getMessage().startsWith("--carry-state flow needs --bptt full"), e.getMessage());
    }
}
