package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.DType;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The plan against measurement: a real training step's peak live bytes on the CPU backend, for several shapes, every
 * mode, both precisions and both --grad-cp settings, within 10% of what {@link MemoryPlan} predicts.
 */
class MemoryPlanTest {

    private static final java.util.Map<ModelConfig, ModelWeights> WEIGHTS = new java.util.HashMap<>();

    private static long measuredPeak(ModelConfig cfg, MemoryPlan.Spec s) {
        ModelWeights w = WEIGHTS.computeIfAbsent(cfg, c -> ModelInit.x052(c, 3));
        try (CpuBackend be = new CpuBackend()) {
            trainOneStep(be, cfg, w, s, 5, null);
            return be.peakBytes();
        }
    }

    /**
     * One training step of the run {@code s} describes, on random tokens from {@code seed}: what the plan predicts
     * the peak of ({@code dp}: this rank's group, or null on one device).
     */
    static void trainOneStep(CpuBackend be, ModelConfig cfg, ModelWeights w, MemoryPlan.Spec s, long seed, DataParallel dp) {
        Trainer.Mode mode = Trainer.Mode.valueOf(s.mode().name());
        boolean full = s.mode() == MemoryPlan.Mode.FULL;
        try (Rwkv5Model m = Rwkv5Model.load(be, w, cfg.groupNormEps(), ai.longrwkv.core.model.Precision.loadDtype(s.precision(), full))) {
            ai.longrwkv.core.model.Precision.configure(m, s.precision(), full, s.gradCp());
            LoraSet lora = s.mode() == MemoryPlan.Mode.LORA ? LoraSet.create(be, cfg, List.of("all"), s.loraRank(), 32, 1) : null;
            m.setLora(lora);
            Random rnd = new Random(seed);
            int[] tokens = new int[s.ctxLen()];
            for (int i = 0; i < tokens.length; i++) tokens[i] = rnd.nextInt(cfg.vocabSize());
            TokenSequence seq = TokenSequence.nextToken(tokens);
            Trainer.Config tc = new Trainer.Config(mode, s.chunkLen(), s.bptt(), 1, 1, 1,
                    new LrSchedule(1e-4, 1e-4, 0, 1, LrSchedule.Kind.CONSTANT), 0, 1, true, 0);
            try (Trainer tr = new Trainer(m, tc, new Trainer.SequenceSource() {
                @Override public TokenSequence sequence(long index) { return seq; }
                @Override public String fingerprint() { return "x"; }
            }, lora, Set.of(), dp)) {
                tr.trainStep();
            } finally {
                if (lora != null) lora.close();
            }
        }
    }

    @Test
    void predictedPeakIsWithinTenPercentOfTheMeasuredPeak() {
        List<String> report = new ArrayList<>();
        boolean ok = true;
        ModelConfig[] shapes = {
                ModelConfig.forInit(2, 64, 32, 256),       // byte-level, everything small
                ModelConfig.forInit(3, 128, 64, 1000),
                ModelConfig.forInit(2, 64, 64, 65536),     // a world-sized vocabulary: the head runs in slices
        };
        for (ModelConfig cfg : shapes) {
            for (MemoryPlan.Mode mode : MemoryPlan.Mode.values()) {
                for (DType precision : DType.values()) {
                    for (boolean cp : new boolean[]{false, true}) {
                        MemoryPlan.Spec s = new MemoryPlan.Spec(cfg, mode, precision, cp, 64, 16, BpttMode.FULL, 4, 8);
                        long predicted = MemoryPlan.of(s).peakBytes(), measured = measuredPeak(cfg, s);
                        double err = (predicted - measured) / (double) measured;
                        String line = String.format("%s %s %s grad-cp=%s: predicted %,d measured %,d (%+.1f%%)", cfg, mode, precision, cp,
                                predicted, measured, 100 * err);
                        report.add(line);
                        if (Math.abs(err) > 0.10) ok = false;
                    }
                }
            }
        }
        assertTrue(ok, String.join("\n", report));
        report.forEach(System.out::println);
    }
}
