package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.Precision;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static ai.longrwkv.core.train.BpttTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The memory-saving ways of running a chunk must give the gradients of the plain way: per-layer recomputation
 * (--grad-cp) bit for bit, the sliced head and loss up to fp32 summation order, bf16 weights on the CPU within a derived
 * bound of fp32 weights holding the same (rounded) values, and of the unrounded fp32 model.
 */
class MemorySavingTest {
    static final int T = 17;
    static Backend be;
    static ModelWeights weights;
    static TokenSequence seq;

    @BeforeAll
    static void setUp() {
        be = new CpuBackend();
        weights = TestModels.random(TINY, 31);
        seq = randomSequence(T, TINY.vocabSize(), 32);
    }

    @AfterAll
    static void tearDown() {
        be.close();
    }

    private static Grads grads(Rwkv5Model model, int chunk, BpttMode mode) {
        return grads(be, model, chunk, mode);
    }

    private static Grads grads(Backend on, Rwkv5Model model, int chunk, BpttMode mode) {
        try (RwkvState s0 = TestModels.randomState(on, TINY, 33)) {
            return BpttTestSupport.grads(model, seq, s0, chunk, mode, true);
        }
    }

    @Test
    void gradCheckpointingGivesTheSameGradientsBitForBit() {
        try (Rwkv5Model m = Rwkv5Model.load(be, weights, TINY.groupNormEps())) {
            for (BpttMode mode : BpttMode.values()) {
                Grads plain = grads(m, 5, mode);
                m.setRecompute(true);
                long live = be.liveBytes();
                Grads cp = grads(m, 5, mode);
                m.setRecompute(false);
                assertEquals(live, be.liveBytes(), "everything --grad-cp allocated is freed");
                assertEquals(plain.loss(), cp.loss(), 0.0, mode + " loss");
                for (String k : plain.byName().keySet()) assertArrayEquals(plain.byName().get(k), cp.byName().get(k), mode + " " + k);
            }
        }
    }

    @Test
    void slicedHeadAndLossMatchTheWholeChunk() {
        try (Rwkv5Model m = Rwkv5Model.load(be, weights, TINY.groupNormEps())) {
            assertTrue(m.headSliceRows() >= T, "the default slice of a 23-token vocabulary covers a whole chunk");
            Grads whole = grads(m, 8, BpttMode.FULL);
            for (int rows : new int[]{1, 3, 7}) {
                m.setHeadSliceRows(rows);
                Grads sliced = grads(m, 8, BpttMode.FULL);
                // per row the same ops, but not always the same sgemm kernel: OpenBLAS may multiply a 1-row slice with
                // another kernel (on an AMD Zen 3 the loss differed by 2.1e-9 relative), so the logits can differ by
                // fp32 roundings (~6e-8 relative each); the order of the sums over rows changes too
                assertEquals(whole.loss(), sliced.loss(), 1e-7 * Math.abs(whole.loss()), "loss, slices of " + rows);
                for (String k : whole.byName().keySet()) {
                    double rel = relMaxDiff(whole.byName().get(k), sliced.byName().get(k));
                    assertTrue(rel <= 1e-6, k + ", slices of " + rows + ": relative difference " + rel);
                }
            }
        }
    }

    /** The weights with every matrix rounded to bf16 (what a bf16 model holds), still in fp32. */
    private static ModelWeights roundedMatrices() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (ParamSpec spec : ParamSpec.all(TINY)) {
            HostTensor t = weights.get(spec.key()).copy();
            if (Precision.isMatrix(spec)) {
                float[] d = t.data();
                for (int i = 0; i < d.length; i++) d[i] = Float16.bf16ToFloat(Float16.floatToBf16(d[i]));
            }
            out.put(spec.key(), t);
        }
        return new ModelWeights(out, "rounded", TINY.groupNormEps());
    }

    /**
     * Against fp32 weights holding the same rounded values, where the CPU widens bf16 weights exactly into the same
     * sgemm ({@code WIDEN}, the path of a CPU without bf16 instructions): what the forward changes is only the rounding
     * of the WKV's inputs r, k, v, u to bf16 (Precision): 4 inputs per block, each moved by at most 2^-9 of itself, so to
     * first order the logits move by at most 4L 2^-9 of their scale and the loss by as much relative. A gradient passes
     * each rounding site twice (its forward value, and the backward re-reading the rounded input): 8L 2^-9; and it is a
     * sum over positions whose terms partly cancel, which raises its relative error by the ratio of the terms'
     * magnitude to the sum's. That ratio is not derived here: we allow 2 (measured: time_mix_r of block 0 reached
     * 1.04 x 8L 2^-9 on this model), i.e. 16L 2^-9 in L2. A trained bf16 matrix's gradient dOut^T x is also a bf16
     * product (Rwkv5Model.weightAndInputGradients: both factors rounded, at the 8L + 1 products): 2 x 2 (8L + 1) 2^-9
     * more for those.
     *
     * <p>With {@code ONEDNN} (a CPU with bf16 instructions, and the GPU's contract) every product also rounds its fp32
     * operand: the input of each of the 8 projections per block and of the head, 8L + 1 more sites in the forward
     * (loss bound (12L + 1) 2^-9, gradient 4 x that), and in the backward the output gradient dOut of each product with
     * a bf16 weight (8L + 1 again, once: 2 x (8L + 1) 2^-9 with the same allowance for cancellation).
     */
    @ParameterizedTest
    @EnumSource(CpuBackend.Bf16Products.class)
    void bf16ModelIsTheRoundedWeightsModelUpToTheRoundingOfWhatItMultiplies(CpuBackend.Bf16Products products) {
        org.junit.jupiter.api.Assumptions.assumeTrue(products != CpuBackend.Bf16Products.ONEDNN || CpuBackend.oneDnnBf16Runs(),
                "oneDNN has no bf16 matrix product on this CPU (AVX2 only): only WIDEN runs here");
        int L = TINY.nLayer();
        boolean widen = products == CpuBackend.Bf16Products.WIDEN;
        double bound = (widen ? 4 * L : 12 * L + 1) * Math.pow(2, -9);
        double gradBound = 4 * bound + (widen ? 4 : 2) * (8 * L + 1) * Math.pow(2, -9);
        try (CpuBackend pb = new CpuBackend(products);
             Rwkv5Model bf = Rwkv5Model.load(pb, weights, TINY.groupNormEps(), DType.BF16);
             Rwkv5Model ref = Rwkv5Model.load(pb, roundedMatrices(), TINY.groupNormEps())) {
            assertEquals(DType.BF16, bf.params().get("blocks.0.att.key.weight").dtype());
            assertEquals(DType.F32, bf.params().get("blocks.0.att.time_decay").dtype(), "time_decay stays fp32");
            assertWithin(grads(pb, ref, 6, BpttMode.FULL), grads(pb, bf, 6, BpttMode.FULL), bound, gradBound);
        }
    }

    private static void assertWithin(Grads ref, Grads got, double bound, double gradBound) {
        assertTrue(got.loss() != ref.loss(), "bf16 rounding must change something");
        assertTrue(Math.abs(got.loss() - ref.loss()) <= bound * Math.abs(ref.loss()), "loss " + got.loss() + " vs " + ref.loss() + ", bound " + bound);
        for (String k : ref.byName().keySet()) {
            float[] g = ref.byName().get(k), h = got.byName().get(k);
            double diff = 0, norm = 0;
            for (int i = 0; i < g.length; i++) { diff += (g[i] - h[i]) * (double) (g[i] - h[i]); norm += g[i] * (double) g[i]; }
            assertTrue(Math.sqrt(diff) <= gradBound * Math.sqrt(norm), k + ": relative error " + Math.sqrt(diff / norm) + " > " + gradBound);
        }
    }

    /**
     * Against the unrounded fp32 model: rounding to bf16 moves each weight and each WKV input by at most 2^-9 of
     * itself, and (on the default path where the CPU has bf16 instructions, as on a GPU) the fp32 input of each
     * product; to first order a logit then moves by at most 2^-9 times the sum, over the matrices on its path (8 per
     * block, emb and head), the four WKV inputs per block and the 8L + 1 product inputs, of that factor's contribution,
     * which for these unit-scale models is at most the logits' own scale: max |logit error| <= (20L + 3) 2^-9
     * max |logit|; the loss moves by the same relative order and the gradients by twice it (each site passed twice, as
     * above), plus the rounding of each bf16 product's output gradient dOut in the backward (8L + 1 sites, with the
     * allowance of 2 for cancellation).
     */
    @Test
    void bf16WeightsStayWithinTheDerivedBoundOfFp32() {
        double bound = (20 * TINY.nLayer() + 3) * Math.pow(2, -9);
        int[] tokens = seq.tokens();
        try (Rwkv5Model bf = Rwkv5Model.load(be, weights, TINY.groupNormEps(), DType.BF16);
             Rwkv5Model fp = Rwkv5Model.load(be, weights, TINY.groupNormEps());
             RwkvState s1 = TestModels.randomState(be, TINY, 34); RwkvState s2 = TestModels.randomState(be, TINY, 34);
             var a = bf.forward(tokens, s1, false, true); var b = fp.forward(tokens, s2, false, true)) {
            float[] la = be.download(a.logits()).data(), lb = be.download(b.logits()).data();
            double err = relMaxDiff(lb, la);
            assertTrue(err > 0, "bf16 rounding must change something");
            assertTrue(err <= bound, "logits relative error " + err + " > " + bound);
        }
        try (Rwkv5Model bf = Rwkv5Model.load(be, weights, TINY.groupNormEps(), DType.BF16);
             Rwkv5Model fp = Rwkv5Model.load(be, weights, TINY.groupNormEps())) {
            assertWithin(grads(fp, 6, BpttMode.FULL), grads(bf, 6, BpttMode.FULL), bound, 2 * bound + 2 * (8 * TINY.nLayer() + 1) * Math.pow(2, -9));
        }
    }

    /**
     * Full-BPTT gradients of a bf16 model do not depend on the chunk length: the bf16 roundings are per position (a
     * weight, or one token's r, k, v), the same in every chunking, so only fp32 summation order changes: the fp32
     * engine's own tolerance holds (ChunkConsistencyTest), also with --grad-cp.
     */
    @Test
    void bf16FullBpttGradientsDoNotDependOnTheChunkLength() {
        try (Rwkv5Model bf = Rwkv5Model.load(be, weights, TINY.groupNormEps(), DType.BF16)) {
            Grads ref = grads(bf, T, BpttMode.FULL);
            bf.setRecompute(true);
            for (int c : new int[]{1, 4, 6}) {
                Grads g = grads(bf, c, BpttMode.FULL);
                assertEquals(ref.loss(), g.loss(), 1e-6 * Math.abs(ref.loss()), "loss, chunk " + c);
                for (String k : ref.byName().keySet()) {
                    double rel = relMaxDiff(ref.byName().get(k), g.byName().get(k));
                    assertTrue(rel <= 1e-5, k + " chunk " + c + ": relative difference " + rel);
                }
            }
        }
    }

    @Test
    void mixedPrecisionTrainingUpdatesTheFp32MasterAndRefreshesTheBf16Copy() {
        try (Rwkv5Model m = Rwkv5Model.load(be, weights, TINY.groupNormEps())) {
            m.useWorkingCopy(DType.BF16);
            assertEquals(DType.BF16, m.computeDtype());
            assertEquals(DType.F32, m.params().matrixDtype(), "the master stays fp32");
            float[] before = be.download(m.params().get("head.weight")).data();
            Trainer.Config cfg = new Trainer.Config(Trainer.Mode.FULL, 8, BpttMode.FULL, 1, 1, 2,
                    new LrSchedule(1e-3, 1e-3, 0, 2, LrSchedule.Kind.CONSTANT), 0.0, 1.0, true, 0);
            try (Trainer tr = new Trainer(m, cfg, new Trainer.SequenceSource() {
                @Override public TokenSequence sequence(long index) { return seq; }
                @Override public String fingerprint() { return "seq"; }
            }, null, java.util.Set.of())) {
                tr.trainStep();
                float[] master = be.download(m.params().get("head.weight")).data();
                assertFalse(java.util.Arrays.equals(before, master), "the step moved the master");
                // what the model reads now: the master rounded, as a bf16 model loaded from the master's values holds it
                Map<String, HostTensor> masterValues = new LinkedHashMap<>();
                for (ParamSpec spec : ParamSpec.all(TINY)) masterValues.put(spec.key(), be.download(m.params().get(spec.key())));
                try (Rwkv5Model ref = Rwkv5Model.load(be, new ModelWeights(masterValues, "master", TINY.groupNormEps()), TINY.groupNormEps(), DType.BF16);
                     RwkvState s1 = RwkvState.zeros(be, TINY); RwkvState s2 = RwkvState.zeros(be, TINY);
                     var a = m.forward(seq.tokens(), s1, false, true); var b = ref.forward(seq.tokens(), s2, false, true)) {
                    assertArrayEquals(be.download(b.logits()).data(), be.download(a.logits()).data());
                }
            }
        }
    }
}
