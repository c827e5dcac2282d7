package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.dist.ZeroShards;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.Precision;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.DType;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The plan of a data-parallel run, GPU by GPU: stage 0 (and any stage on one GPU) is the one-device plan term for term;
 * at stages 1 and 2 the shares of the sharded terms over the GPUs add up to the one-device term, each GPU's share is
 * what {@link ZeroShards} gives it, and everything else is the one-device term on every GPU.
 */
class MemoryPlanShardingTest {

    private static final ModelConfig[] SHAPES = {
            ModelConfig.forInit(2, 64, 32, 256), ModelConfig.forInit(3, 128, 64, 1000), ModelConfig.forInit(32, 4096, 64, 65536)};

    private static List<MemoryPlan.Spec> oneDeviceSpecs() {
        List<MemoryPlan.Spec> out = new ArrayList<>();
        for (ModelConfig cfg : SHAPES) {
            for (MemoryPlan.Mode mode : MemoryPlan.Mode.values()) {
                for (DType precision : DType.values()) {
                    for (boolean cp : new boolean[]{false, true}) {
                        for (int targets : mode == MemoryPlan.Mode.LORA ? new int[]{8, 3} : new int[]{8}) {
                            out.add(new MemoryPlan.Spec(cfg, mode, precision, cp, 256, 64, BpttMode.FULL, 4, targets));
                        }
                    }
                }
            }
        }
        return out;
    }

    private static Map<String, MemoryPlan.Term> byName(MemoryPlan p) {
        Map<String, MemoryPlan.Term> m = new HashMap<>();
        for (MemoryPlan.Term t : p.terms()) m.put(t.name(), t);
        return m;
    }

    @Test
    void stageZeroOnSeveralGpusAndEveryStageOnOneAreTheOneDevicePlan() {
        for (MemoryPlan.Spec one : oneDeviceSpecs()) {
            MemoryPlan ref = MemoryPlan.of(one);
            assertEquals(1, one.ranks());
            assertEquals(0, one.zero());
            List<MemoryPlan.Spec> same = new ArrayList<>();
            for (int n : new int[]{2, 8}) same.add(one.withSharding(n, 0, 3));
            for (int z = 1; z <= 2; z++) same.add(one.withSharding(1, z, 1));
            for (MemoryPlan.Spec s : same) {
                for (int r = 0; r < s.ranks(); r++) {
                    MemoryPlan p = MemoryPlan.forRank(s, r);
                    assertEquals(ref.terms(), p.terms(), s + " rank " + r);
                    assertEquals(ref.peakBytes(), p.peakBytes());
                    assertEquals(ref.flopsPerSequence(), p.flopsPerSequence());
                }
                assertEquals(ref.terms(), MemoryPlan.of(s).terms());
            }
            assertTrue(ref.collectives().isEmpty(), "one GPU: no collectives");
        }
    }

    @Test
    void shardedTermsAddUpOverTheGpusAndEachShareIsWhatZeroShardsGivesIt() {
        for (MemoryPlan.Spec one : oneDeviceSpecs()) {
            Map<String, MemoryPlan.Term> ref = byName(MemoryPlan.of(one));
            boolean mixed = one.mode() == MemoryPlan.Mode.FULL && one.precision() == DType.BF16;
            long small = 0, matrices = 0;
            for (ParamSpec p : ParamSpec.all(one.cfg())) {
                long n = 1;
                for (int d : p.shape()) n *= d;
                if (Precision.isMatrix(p)) matrices += n; else small += n;
            }
            Map<String, Boolean> isMatrix = new HashMap<>();
            for (ParamSpec p : ParamSpec.all(one.cfg())) isMatrix.put(p.key(), Precision.isMatrix(p));
            List<ZeroShards.Entry> tensors = MemoryPlan.trainableTensors(one);
            for (int n : new int[]{2, 3, 8}) {
                ZeroShards shards = ZeroShards.assign(tensors, n);
                for (int z = 1; z <= 2; z++) {
                    MemoryPlan.Spec s = one.withSharding(n, z, 1);
                    Map<String, Long> sums = new TreeMap<>();
                    long maxPeak = 0;
                    for (int r = 0; r < n; r++) {
                        MemoryPlan p = MemoryPlan.forRank(s, r);
                        maxPeak = Math.max(maxPeak, p.peakBytes());
                        Map<String, MemoryPlan.Term> terms = byName(p);
                        long owned = shards.elements(r), ownedMatrices = 0;
                        for (String k : shards.owned(r)) if (isMatrix.getOrDefault(k, false)) ownedMatrices += tensors.stream().filter(e -> e.key().equals(k)).findFirst().orElseThrow().elements();
                        assertEquals(owned * 8, terms.get("AdamW moments").bytes(), s + " rank " + r);
                        assertEquals(n, terms.get("AdamW moments").shards());
                        if (z == 2) {
                            // the model tensors it owns, and LoRA adapters or tuned states whole (reduced once per step)
                            long accumulators = 0;
                            for (ZeroShards.Entry e : tensors) {
                                boolean whole = e.key().contains(".lora_") || e.key().endsWith(".time_state");
                                if (whole || shards.owner(e.key()) == r) accumulators += e.elements();
                            }
                            assertEquals(accumulators * 4, terms.get("gradients").bytes(), s + " rank " + r);
                            assertEquals(one.mode() == MemoryPlan.Mode.FULL ? n : 1, terms.get("gradients").shards());
                        } else {
                            assertEquals(ref.get("gradients"), terms.get("gradients"), "stage 1: every GPU holds all gradients");
                        }
                        if (mixed) {
                            assertEquals(ownedMatrices * 4, terms.get("fp32 master").bytes(), s + " rank " + r);
                            assertEquals(small * 4, terms.get("weights").bytes(), "the small parameters on every GPU");
                        }
                        for (MemoryPlan.Term t : p.terms()) {
                            if (t.shards() > 1) sums.merge(t.name(), t.bytes(), Long::sum);
                            else if (!t.name().equals("gradient scratch") && !(mixed && t.name().equals("weights"))) {
                                assertEquals(ref.get(t.name()), t, s + " rank " + r + ": " + t.name() + " is not sharded");
                            }
                        }
                        assertEquals(ref.size() + (mixed ? 1 : 0) + (z == 2 ? 1 : 0), p.terms().size(), s + ": " + p.terms());
                    }
                    assertEquals(ref.get("AdamW moments").bytes(), sums.get("AdamW moments"), s + ": moments over the GPUs");
                    if (z == 2 && one.mode() == MemoryPlan.Mode.FULL) assertEquals(ref.get("gradients").bytes(), sums.get("gradients"), s + ": gradients over the GPUs");
                    if (mixed) assertEquals(matrices * 4, (long) sums.get("fp32 master"), s + ": the master over the GPUs");
                    assertEquals(ref.get("weights").bytes(), (mixed ? sums.get("fp32 master") + small * 4 : ref.get("weights").bytes()));
                    assertEquals(maxPeak, MemoryPlan.of(s).peakBytes(), s + ": the plan is the fullest GPU's");
                }
            }
        }
    }

    @Test
    void stageTwoKeepsTwoLayersOfGradientsAndTheHeadsAndEmbeddingsAsScratch() {
        ModelConfig c = ModelConfig.forInit(4, 128, 64, 1000);
        MemoryPlan.Spec full = new MemoryPlan.Spec(c, MemoryPlan.Mode.FULL, DType.BF16, true, 256, 64, BpttMode.FULL, 4, 8).withSharding(4, 2, 1);
        ZeroShards shards = ZeroShards.assign(MemoryPlan.trainableTensors(full), 4);
        for (int r = 0; r < 4; r++) {
            // Trainer.shardedGradients: another GPU's block tensor lands in one scratch per (kind, even/odd block), so at
            // most two blocks' worth; another GPU's embedding, head or outer norm in a scratch of its own
            Map<String, Long> perKindAndParity = new HashMap<>();
            long outside = 0;
            for (ParamSpec p : ParamSpec.all(c)) {
                if (shards.owner(p.key()) == r) continue;
                long n = 1;
                for (int d : p.shape()) n *= d;
                if (p.layer() < 0) outside += n;
                else perKindAndParity.put(p.kind() + "/" + p.layer() % 2, n);
            }
            long expected = outside;
            for (long n : perKindAndParity.values()) expected += n;
            assertEquals(expected * 4, byName(MemoryPlan.forRank(full, r)).get("gradient scratch").bytes(), "rank " + r);
            assertTrue(expected > 0);
        }
        // state tuning: the tuned states' gradients stay whole (no block reports them): no scratch
        MemoryPlan.Spec state = new MemoryPlan.Spec(c, MemoryPlan.Mode.STATE, DType.BF16, true, 256, 64, BpttMode.FULL, 4, 8).withSharding(4, 2, 1);
        MemoryPlan.Term scratch = byName(MemoryPlan.of(state)).get("gradient scratch");
        assertTrue(scratch == null || scratch.bytes() == 0, "state tuning has no scratch: " + scratch);
    }

    @Test
    void theCollectivesOfAStep() {
        MemoryPlan.Spec one = new MemoryPlan.Spec(ModelConfig.forInit(3, 128, 64, 1000), MemoryPlan.Mode.FULL, DType.BF16, false, 1000, 100,
                BpttMode.FULL, 4, 8);
        long gradients = byName(MemoryPlan.of(one)).get("gradients").bytes();
        assertEquals(gradients, MemoryPlan.of(one).trainedValues() * 4);
        MemoryPlan z0 = MemoryPlan.of(one.withSharding(4, 0, 3));
        assertEquals(1, z0.collectives().size());
        assertEquals(gradients, z0.collectives().get(0).bytes(), "stage 0: one all-reduce of the gradients per step");
        assertEquals(1.5, z0.collectives().get(0).busFactor(), 1e-12);
        MemoryPlan z1 = MemoryPlan.of(one.withSharding(4, 1, 3));
        assertEquals(gradients, z1.collectives().get(0).bytes(), "stage 1: one reduce per step");
        long bf16Weights = byName(MemoryPlan.of(one)).get("bf16 working copy").bytes()
                + byName(MemoryPlan.of(one.withSharding(4, 1, 3))).get("weights").bytes();
        assertEquals(bf16Weights, z1.collectives().get(1).bytes(), "the updated bf16 matrices and fp32 others");
        MemoryPlan z2 = MemoryPlan.of(one.withSharding(4, 2, 3));
        assertEquals(gradients * 10 * 3, z2.collectives().get(0).bytes(), "stage 2: a reduce per chunk: 10 chunks x 3 sequences");
        assertEquals((gradients * 30 + bf16Weights) / 100e9, z2.collectiveSeconds(100e9), 1e-12);
        assertEquals(gradients * 1.5 / 100e9, z0.collectiveSeconds(100e9), 1e-12);
    }

    @Test
    void theAdviceShardsBeforeItGivesUp() {
        MemoryPlan.Spec one = new MemoryPlan.Spec(ModelConfig.forInit(32, 4096, 64, 65536), MemoryPlan.Mode.FULL, DType.BF16, true, 131072, 4096,
                BpttMode.FULL, 16, 8);
        long cap = 80L << 30;
        String a = MemoryPlan.of(one).advice(cap);
        assertNotNull(a);
        assertTrue(a.contains("nothing fits") && a.contains("; on 2 GPUs: use --devices 2 --zero 2 ("), a);
        assertTrue(MemoryPlan.of(one.withSharding(2, 2, 1)).peakBytes() <= cap);
        String eight = MemoryPlan.of(one.withSharding(8, 0, 1)).advice(cap);
        assertTrue(eight.startsWith("use --zero 1 ("), eight);
        assertTrue(MemoryPlan.of(one.withSharding(8, 1, 1)).peakBytes() <= cap);
        assertEquals(null, MemoryPlan.of(one.withSharding(8, 2, 1)).advice(cap));
        // what does not fit even sharded: the replicated working copy alone is 14 GiB
        String none = MemoryPlan.of(one.withSharding(8, 2, 1)).advice(10L << 30);
        assertTrue(none.contains("nothing fits on 8 GPUs") && none.contains("not even --zero 2 on 1024 GPUs"), none);
    }

    /** The plan shards the tensors the trainer trains: the same keys and sizes. */
    @Test
    void theTrainableTensorsAreTheTrainersOwn() {
        ModelConfig cfg = ModelConfig.forInit(2, 64, 32, 256);
        ModelWeights w = ModelInit.x052(cfg, 3);
        for (MemoryPlan.Mode mode : MemoryPlan.Mode.values()) {
            MemoryPlan.Spec s = new MemoryPlan.Spec(cfg, mode, DType.F32, false, 64, 16, BpttMode.FULL, 4, 8);
            Map<String, Long> planned = new TreeMap<>(), trained = new TreeMap<>();
            for (ZeroShards.Entry e : MemoryPlan.trainableTensors(s)) planned.put(e.key(), e.elements());
            try (CpuBackend be = new CpuBackend();
                 Rwkv5Model m = Rwkv5Model.load(be, w, cfg.groupNormEps(), DType.F32)) {
                LoraSet lora = mode == MemoryPlan.Mode.LORA ? LoraSet.create(be, cfg, List.of("all"), 4, 32, 1) : null;
                m.setLora(lora);
                Trainer.Config tc = new Trainer.Config(Trainer.Mode.valueOf(mode.name()), 16, BpttMode.FULL, 1, 1, 1,
                        new LrSchedule(1e-4, 1e-4, 0, 1, LrSchedule.Kind.CONSTANT), 0, 1, true, 0);
                try (Trainer tr = new Trainer(m, tc, new Trainer.SequenceSource() {
                    @Override public TokenSequence sequence(long index) { return TokenSequence.nextToken(new int[64]); }
                    @Override public String fingerprint() { return "x"; }
                }, lora, Set.of())) {
                    for (Trainable t : tr.trainables()) {
                        long n = 1;
                        for (int d : t.param().shape()) n *= d;
                        trained.put(t.key(), n);
                    }
                } finally {
                    if (lora != null) lora.close();
                }
            }
            assertEquals(trained, planned, mode.name());
            assertEquals(trained.values().stream().mapToLong(Long::longValue).sum(), MemoryPlan.of(s).trainedValues());
        }
    }
}
