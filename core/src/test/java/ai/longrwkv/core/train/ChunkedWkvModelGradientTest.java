package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.WkvImpl;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

import static ai.longrwkv.core.train.BpttTestSupport.randomSequence;
import static ai.longrwkv.core.train.BpttTestSupport.relMaxDiff;
import static ai.longrwkv.core.train.BpttTestSupport.stateNames;
import static ai.longrwkv.core.train.BpttTestSupport.stateTensors;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A whole model's full-BPTT gradients (every parameter and dL/dS0) and its final state with the chunked WKV forced on
 * (-Dlongrwkv.wkv=chunked) against the sequential WKV: the same within fp32 rounding. The sequence is long enough for
 * several WKV chunks per BPTT chunk, the last ones short, and the BPTT chunks carry the state and its gradient.
 */
class ChunkedWkvModelGradientTest {
    /** L=2, C=128, H=2 heads of N=64 (the released head size), F=256, V=37. */
    static final ModelConfig SHAPE = new ModelConfig(2, 128, 2, 64, 256, 37, ModelConfig.OFFICIAL_GROUP_NORM_EPS);
    static final int T = 150, BPTT_CHUNK = 75;

    static <X> X withWkv(WkvImpl impl, Supplier<X> make) {
        String saved = System.getProperty(WkvImpl.PROPERTY);
        System.setProperty(WkvImpl.PROPERTY, impl.label());
        try {
            return make.get();
        } finally {
            if (saved == null) System.clearProperty(WkvImpl.PROPERTY);
            else System.setProperty(WkvImpl.PROPERTY, saved);
        }
    }

    static Map<String, float[]> gradients(Backend be, TokenSequence seq) {
        try (Rwkv5Model model = Rwkv5Model.load(be, TestModels.random(SHAPE, 31), SHAPE.groupNormEps());
             RwkvState s0 = TestModels.randomState(be, SHAPE, 32); ParamSet g = ParamSet.zeros(be, SHAPE)) {
            ChunkedBptt.Result r = ChunkedBptt.run(model, seq, s0, g, new ChunkedBptt.Options(BPTT_CHUNK, BpttMode.FULL, false), true, null);
            Map<String, float[]> out = new LinkedHashMap<>();
            out.put("loss", new float[]{(float) r.loss()});
            for (String k : g.keys()) out.put(k, be.download(g.get(k)).data());
            List<Tensor> st = stateTensors(r.initialStateGrad());
            List<String> names = stateNames(SHAPE.nLayer());
            for (int i = 0; i < st.size(); i++) out.put("d" + names.get(i), be.download(st.get(i)).data());
            List<Tensor> fin = stateTensors(r.finalState());
            for (int i = 0; i < fin.size(); i++) out.put("final " + names.get(i), be.download(fin.get(i)).data());
            r.finalState().close();
            r.initialStateGrad().close();
            return out;
        }
    }

    @Test
    void fullBpttGradientsUnchangedWithChunkedWkv() {
        TokenSequence seq = randomSequence(T, SHAPE.vocabSize(), 33);
        Map<String, float[]> ref, got;
        try (CpuBackend seqBe = withWkv(WkvImpl.SEQUENTIAL, CpuBackend::new)) {
            ref = gradients(seqBe, seq);
        }
        try (CpuBackend chunkBe = withWkv(WkvImpl.CHUNKED, CpuBackend::new)) {
            got = gradients(chunkBe, seq);
        }
        assertEquals(ref.keySet(), got.keySet());
        double worst = 0;
        for (String k : ref.keySet()) {
            double rel = relMaxDiff(ref.get(k), got.get(k));
            worst = Math.max(worst, rel);
            // 1e-5: the WKV ops agree to a few 1e-6 (WkvChunkedCpuTest); the rest of the model adds no amplification
            assertTrue(rel <= 1e-5, k + ": relative difference " + rel + " between sequential and chunked WKV");
        }
        System.out.printf("ChunkedWkvModelGradientTest worst relative difference %.3g%n", worst);
    }
}
