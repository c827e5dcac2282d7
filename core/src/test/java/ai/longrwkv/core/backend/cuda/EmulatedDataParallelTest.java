package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.dist.Communicator;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.DataParallel;
import ai.longrwkv.core.train.LrSchedule;
import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.core.train.Trainer;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Data-parallel training on four emulated GPUs (four emulated devices in one process, the CUDA kernels and the emulated
 * device's NCCL) against one emulated GPU with the same global batch: sequences of different lengths per rank (the
 * ranks make 1 to 3 chunk backwards a step, one rank's sequence has no trained target), ZeRO 0 and 2.
 */
class EmulatedDataParallelTest {
    static final ModelConfig CFG = new ModelConfig(2, 32, 2, 16, 64, 40, ModelConfig.OFFICIAL_GROUP_NORM_EPS);
    static final ModelWeights W = TestModels.random(CFG, 12);

    static Trainer.SequenceSource data() {
        int[] lengths = {24, 8, 16, 9, 20, 12, 8, 24};
        List<TokenSequence> seqs = new ArrayList<>();
        Random rnd = new Random(4);
        for (int i = 0; i < lengths.length; i++) {
            int[] t = new int[lengths[i] + 1];
            for (int j = 0; j < t.length; j++) t[j] = rnd.nextInt(CFG.vocabSize());
            TokenSequence s = TokenSequence.nextToken(t);
            if (i == 3) s = new TokenSequence(s.tokens(), s.targets(), new float[s.length()]);
            seqs.add(s);
        }
        return new Trainer.SequenceSource() {
            @Override public TokenSequence sequence(long index) { return seqs.get((int) (index % seqs.size())); }
            @Override public String fingerprint() { return "varied"; }
        };
    }

    record Outcome(List<Double> losses, Map<String, HostTensor> result) { }

    static List<Outcome> train(int ranks, int zero, int micro) throws Exception {
        byte[] id;
        try (CudaBackend b = CudaBackend.emulated()) {
            id = b.newCommunicatorId();
        }
        ExecutorService pool = Executors.newFixedThreadPool(ranks);
        try {
            List<Future<Outcome>> fs = new ArrayList<>();
            for (int r = 0; r < ranks; r++) {
                int rank = r;
                fs.add(pool.submit(() -> {
                    try (CudaBackend be = CudaBackend.emulated();
                         Communicator comm = ranks == 1 ? null : be.communicator(id, rank, ranks, 60_000);
                         Rwkv5Model m = Rwkv5Model.load(be, W, CFG.groupNormEps())) {
                        Trainer.Config cfg = new Trainer.Config(Trainer.Mode.FULL, 8, BpttMode.FULL, micro, 1, 2,
                                new LrSchedule(3e-3, 3e-4, 0, 2, LrSchedule.Kind.COSINE), 0.01, 1.0, true, 0);
                        try (Trainer t = new Trainer(m, cfg, data(), null, Set.of(), comm == null ? null : new DataParallel(comm, zero))) {
                            List<Double> losses = new ArrayList<>();
                            while (!t.done()) losses.add(t.trainStep().loss());
                            return new Outcome(losses, t.gatherTrainables());
                        }
                    }
                }));
            }
            List<Outcome> out = new ArrayList<>();
            for (Future<Outcome> f : fs) out.add(f.get(5, TimeUnit.MINUTES));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void fourEmulatedGpusTrainLikeOneWithTheSameGlobalBatch() throws Exception {
        Outcome one = train(1, 0, 4).get(0);
        for (int zero : new int[]{0, 2}) {
            List<Outcome> four = train(4, zero, 1);
            for (int r = 1; r < 4; r++) assertNull(four.get(r).result(), "only rank 0 gathers the result");
            for (int s = 0; s < 2; s++) {
                assertEquals(one.losses().get(s), four.get(0).losses().get(s), 1e-6 * one.losses().get(s), "ZeRO " + zero + " step " + (s + 1));
            }
            // within fp32 rounding, not bit for bit (the association of the per-rank sums; see DataParallelTrainerTest):
            // every weight within 1e-6 of the model's largest
            double scale = 0, worst = 0;
            for (String k : one.result().keySet()) {
                float[] a = one.result().get(k).data(), b = four.get(0).result().get(k).data();
                for (int i = 0; i < a.length; i++) {
                    scale = Math.max(scale, Math.abs(a[i]));
                    worst = Math.max(worst, Math.abs(a[i] - b[i]));
                }
            }
            assertTrue(worst <= 1e-6 * scale, "ZeRO " + zero + ": 4 emulated GPUs vs 1 differ by " + worst + " (scale " + scale + ")");
        }
    }
}
