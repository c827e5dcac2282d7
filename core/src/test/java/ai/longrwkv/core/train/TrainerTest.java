package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static ai.longrwkv.core.train.BpttTestSupport.TINY;
import static ai.longrwkv.core.train.BpttTestSupport.randomSequence;
import static org.junit.jupiter.api.Assertions.*;

class TrainerTest {
    /** A fixed pool of sequences, cycled: learnable, so the loss must fall. */
    static Trainer.SequenceSource pool(int n, int len) {
        List<TokenSequence> seqs = new ArrayList<>();
        for (int i = 0; i < n; i++) seqs.add(randomSequence(len, TINY.vocabSize(), 100 + i));
        return new Trainer.SequenceSource() {
            @Override public TokenSequence sequence(long index) { return seqs.get((int) (index % n)); }
            @Override public String fingerprint() { return "pool(" + n + "," + len + ")"; }
        };
    }

    static Trainer.Config config(Trainer.Mode mode, long steps, double lr) {
        return new Trainer.Config(mode, 4, BpttMode.FULL, 2, 1, steps, new LrSchedule(lr, lr / 10, 2, steps, LrSchedule.Kind.COSINE),
                0.01, 1.0, true, 0);
    }

    private static List<Double> run(Backend be, ModelWeights w, long steps, Path ckDir, long stopAt, boolean resume) {
        List<Double> losses = new ArrayList<>();
        try (Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps());
             Trainer t = new Trainer(m, config(Trainer.Mode.FULL, steps, 3e-3), pool(3, 12), null, Set.of())) {
            if (resume) t.resume(ckDir, "test");
            while (!t.done() && t.step() < stopAt) {
                losses.add(t.trainStep().loss());
            }
            if (ckDir != null && !resume) t.saveCheckpoint(ckDir, "test");
        }
        return losses;
    }

    @Test
    void resumeReproducesTheUninterruptedLossSequenceExactly(@TempDir Path dir) {
        ModelWeights w = TestModels.random(TINY, 71);
        try (Backend be = new CpuBackend()) {
            List<Double> whole = run(be, w, 6, null, Long.MAX_VALUE, false);
            List<Double> first = run(be, w, 6, dir, 3, false);
            List<Double> rest = run(be, w, 6, dir, Long.MAX_VALUE, true);
            List<Double> joined = new ArrayList<>(first);
            joined.addAll(rest);
            assertEquals(whole, joined, "losses after resume must be bit-identical");
            assertTrue(whole.get(3) < whole.get(0), "loss on the same two sequences (steps 1 and 4) falls: " + whole);
            assertTrue(Files.isRegularFile(dir.resolve("step-00000003/trainable.safetensors")));
            assertEquals("step-00000003", readLatest(dir));
            // a resume with other settings is refused with what differs
            try (Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps());
                 Trainer t = new Trainer(m, config(Trainer.Mode.FULL, 6, 1e-2), pool(3, 12), null, Set.of())) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.resume(dir, "test"));
                assertTrue(e.getMessage().contains("training config was"), e.getMessage());
            }
        }
    }

    private static String readLatest(Path dir) {
        try {
            return Files.readString(dir.resolve("latest")).trim();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void stateTuningChangesOnlyTheStateAndLowersTheLoss() {
        ModelWeights w = TestModels.random(TINY, 72);
        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps());
             Trainer t = new Trainer(m, new Trainer.Config(Trainer.Mode.STATE, 4, BpttMode.FULL, 1, 1, 30,
                     new LrSchedule(0.1, 0.01, 3, 30, LrSchedule.Kind.COSINE), 0, 1.0, false, 0), pool(1, 12), null, Set.of())) {
            double first = 0, last = 0;
            for (int i = 0; i < 30; i++) {
                double l = t.trainStep().loss();
                if (i == 0) first = l;
                last = l;
            }
            assertTrue(last < first - 0.05, "loss " + first + " -> " + last);
            Map<String, HostTensor> after = m.toWeights("after").tensors();
            for (String k : w.keys()) assertArrayEquals(w.get(k).data(), after.get(k).data(), k + " must be untouched");
            float[] s = be.download(t.timeState()[0]).data();
            assertTrue(java.util.stream.IntStream.range(0, s.length).anyMatch(i -> s[i] != 0f), "the state was trained");
        }
    }

    @Test
    void loraTrainingMovesOnlyAdaptersAndChosenExtras() {
        ModelWeights w = TestModels.random(TINY, 73);
        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps());
             LoraSet lora = LoraSet.create(be, TINY, List.of("att.receptance", "ffn.key"), 4, 8, 1)) {
            m.setLora(lora);
            try (Trainer t = new Trainer(m, config(Trainer.Mode.LORA, 5, 1e-2), pool(2, 12), lora, Set.of("time"))) {
                for (int i = 0; i < 5; i++) t.trainStep();
            }
            Map<String, HostTensor> after = m.toWeights("after").tensors();
            for (String k : w.keys()) {
                boolean changed = !java.util.Arrays.equals(w.get(k).data(), after.get(k).data());
                assertEquals(k.contains(".time_"), changed, k);
            }
            HostTensor b = be.download(lora.get("blocks.0.att.receptance.weight").b);
            assertTrue(java.util.stream.IntStream.range(0, b.size()).anyMatch(i -> b.data()[i] != 0f), "B left zero");
        }
    }

    @Test
    void nonFiniteGradientsStopWithTheStepOrAreSkipped() {
        ModelWeights w = TestModels.random(TINY, 74);
        w.get("blocks.1.ffn.key.weight").data()[3] = Float.NaN;
        try (Backend be = new CpuBackend(); Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps())) {
            try (Trainer t = new Trainer(m, config(Trainer.Mode.FULL, 3, 1e-3), pool(1, 8), null, Set.of())) {
                Trainer.NonFiniteException e = assertThrows(Trainer.NonFiniteException.class, t::trainStep);
                assertTrue(e.getMessage().startsWith("step 1: non-finite"), e.getMessage());
            }
            Trainer.Config skip = new Trainer.Config(Trainer.Mode.FULL, 4, BpttMode.FULL, 1, 1, 3,
                    new LrSchedule(1e-3, 1e-4, 0, 3, LrSchedule.Kind.COSINE), 0, 1, true, 2);
            try (Trainer t = new Trainer(m, skip, pool(1, 8), null, Set.of())) {
                assertTrue(t.trainStep().skipped());
                assertTrue(t.trainStep().skipped());
                assertThrows(Trainer.NonFiniteException.class, t::trainStep);
            }
        }
    }
}
