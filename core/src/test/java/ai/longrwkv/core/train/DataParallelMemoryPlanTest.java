package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.backend.cpu.TestGroup;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.DType;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The per-GPU plan of a data-parallel run ({@link MemoryPlan#forRank}) against each rank's measured peak live bytes
 * in a real step of the sharded trainer: two ranks (threads on the CPU backend, {@link TestGroup}), ZeRO 0, 1 and 2,
 * fp32 and bf16, with and without --grad-cp, every mode; within 10% as for one device ({@link MemoryPlanTest}).
 */
class DataParallelMemoryPlanTest {

    private static long[] measuredPeaks(ModelConfig cfg, ModelWeights w, MemoryPlan.Spec s) {
        TestGroup group = new TestGroup(s.ranks());
        List<Long> peaks = TestGroup.run(s.ranks(), rank -> {
            try (CpuBackend be = new CpuBackend()) {
                MemoryPlanTest.trainOneStep(be, cfg, w, s, 5 + rank, new DataParallel(group.rank(rank, be), s.zero()));
                return be.peakBytes();
            }
        });
        return peaks.stream().mapToLong(Long::longValue).toArray();
    }

    @Test
    void predictedPerRankPeakIsWithinTenPercentOfTheMeasuredPeak() {
        List<String> report = new ArrayList<>();
        boolean ok = true;
        ModelConfig[] shapes = {
                ModelConfig.forInit(4, 64, 32, 256),       // four blocks: ZeRO 2's two-block scratch is half of them
                ModelConfig.forInit(3, 64, 64, 65536),     // a world-sized vocabulary: embedding and head dominate
        };
        for (ModelConfig cfg : shapes) {
            ModelWeights w = ModelInit.x052(cfg, 3);
            for (MemoryPlan.Mode mode : MemoryPlan.Mode.values()) {
                for (DType precision : mode == MemoryPlan.Mode.FULL ? DType.values() : new DType[]{DType.BF16}) {
                    for (boolean cp : new boolean[]{false, true}) {
                        for (int zero = 0; zero <= 2; zero++) {
                            MemoryPlan.Spec s = new MemoryPlan.Spec(cfg, mode, precision, cp, 64, 16, BpttMode.FULL, 4, 8).withSharding(2, zero, 1);
                            long[] measured = measuredPeaks(cfg, w, s);
                            for (int r = 0; r < measured.length; r++) {
                                long predicted = MemoryPlan.forRank(s, r).peakBytes();
                                double err = (predicted - measured[r]) / (double) measured[r];
                                report.add(String.format("%s %s %s grad-cp=%s zero=%d rank %d: predicted %,d measured %,d (%+.1f%%)", cfg, mode,
                                        precision, cp, zero, r, predicted, measured[r], 100 * err));
                                if (Math.abs(err) > 0.10) ok = false;
                            }
                        }
                    }
                }
            }
        }
        assertTrue(ok, String.join("\n", report));
        report.forEach(System.out::println);
    }
}
