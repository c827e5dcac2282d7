package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * rwkv.cpp oracle -> .pth -> safetensors -> .pth keeps every value (up to the rounding asked for) and the model's
 * logits; and .pth files of other RWKV generations are refused by ModelFiles.load with what was found.
 */
class PthRoundTripTest {
    private static final int[] TOKENS = {34, 105, 110};
    private static final double RWKV_CPP_EPS = 1e-5;

    @TempDir
    Path tmp;

    @Test
    void oracleSurvivesPthSafetensorsPth() {
        ModelWeights original = ModelFiles.load(TestModels.oracle("tiny-rwkv-5v2-730K-FP32.bin"));
        float[] originalLogits = logits(original);
        for (PthWriter.Dtype dtype : PthWriter.Dtype.values()) {
            Path pth1 = tmp.resolve("oracle-" + dtype + ".pth");
            Path st = tmp.resolve("oracle-" + dtype + ".safetensors");
            Path pth2 = tmp.resolve("oracle-" + dtype + "-again.pth");
            PthWriter.write(pth1, original, dtype, null);
            ModelWeights fromPth = ModelFiles.load(pth1);
            Safetensors.write(st, fromPth.tensors(), Map.of());
            ModelWeights fromSafetensors = ModelFiles.load(st);
            PthWriter.write(pth2, fromSafetensors, dtype, null);
            ModelWeights again = ModelFiles.load(pth2);

            // the values: exactly what the dtype's rounding makes of the original, at every stage
            Map<String, HostTensor> expected = new LinkedHashMap<>();
            for (String key : original.keys()) {
                HostTensor t = original.get(key);
                expected.put(key, new HostTensor(t.shape(), PthTorchInteropTest.rounded(t.data(), dtype)));
            }
            for (ModelWeights w : List.of(fromPth, fromSafetensors, again)) {
                assertEquals(original.keys(), w.keys(), dtype + ": " + w.source());
                for (String key : original.keys()) {
                    HostTensor got = w.get(key);
                    assertArrayEquals(expected.get(key).shape(), got.shape(), dtype + ": " + key);
                    PthTorchInteropTest.assertSameValues(expected.get(key).data(), got.data(), dtype + ": " + w.source() + ": " + key);
                }
            }
            assertEquals(dtype.storage.safetensorsName, again.entries().get("emb.weight").dtype());

            // the logits: identical to those of the rounded weights (for fp32: of the original)
            float[] got = logits(again);
            float[] want = dtype == PthWriter.Dtype.FP32 ? originalLogits
                    : logits(new ModelWeights(expected, "rounded", RWKV_CPP_EPS));
            assertArrayEquals(want, got, dtype + ": logits after .pth -> safetensors -> .pth");
            ModelConfig cfg = ModelConfig.fromWeights(again, RWKV_CPP_EPS);
            assertEquals(12, cfg.nLayer());
            assertEquals(8, cfg.headSize());
        }
    }

    @Test
    void forwardModulePrefixIsStrippedForModels() {
        ModelWeights original = ModelFiles.load(TestModels.oracle("tiny-rwkv-5v2-730K-FP32.bin"));
        Map<String, HostTensor> prefixed = new LinkedHashMap<>();
        original.tensors().forEach((k, v) -> prefixed.put(PthReader.FORWARD_MODULE_PREFIX + k, v));
        Path f = tmp.resolve("lightning.pth");
        PthWriter.write(f, prefixed, PthWriter.Dtype.FP32);
        ModelWeights w = ModelFiles.load(f);
        assertEquals(original.keys(), w.keys());
        assertArrayEquals(logits(original), logits(w));
    }

    private static float[] logits(ModelWeights w) {
        try (CpuBackend be = new CpuBackend(); Rwkv5Model model = Rwkv5Model.load(be, w, RWKV_CPP_EPS);
             var state = model.newState(); var acts = model.forward(TOKENS, state, false, true)) {
            return be.download(acts.logits()).data();
        }
    }

    // --- other RWKV generations are refused, saying what they are ------------------------------------------------

    @Test
    void otherGenerationsAreRefused() {
        int c = 8, h = 2, n = 4;
        Map<String, HostTensor> v4 = common(c);
        v4.put("blocks.0.att.time_decay", HostTensor.zeros(c));
        v4.put("blocks.0.att.time_first", HostTensor.zeros(c));
        refused("rwkv4.pth", v4, "RWKV-4");

        Map<String, HostTensor> v50 = common(c);
        v50.put("blocks.0.att.time_decay", HostTensor.zeros(h));
        v50.put("blocks.0.att.time_first", HostTensor.zeros(h));
        v50.put("blocks.0.att.ln_x.weight", HostTensor.zeros(c));
        refused("rwkv50.pth", v50, "RWKV-5.0/5.1");

        Map<String, HostTensor> v51 = common(c);
        v51.put("blocks.0.att.time_decay", HostTensor.zeros(h));
        v51.put("blocks.0.att.time_faaaa", HostTensor.zeros(h));
        v51.put("blocks.0.att.ln_x.weight", HostTensor.zeros(c));
        v51.put("blocks.0.att.gate.weight", HostTensor.zeros(c, c));
        refused("rwkv51.pth", v51, "RWKV-5.1", "one time_decay per head");

        Map<String, HostTensor> v6 = common(c);
        v6.put("blocks.0.att.time_maa_x", HostTensor.zeros(1, 1, c));
        v6.put("blocks.0.att.time_decay", HostTensor.zeros(1, 1, c));
        v6.put("blocks.0.att.time_decay_w1", HostTensor.zeros(c, 64));
        v6.put("blocks.0.att.ln_x.weight", HostTensor.zeros(c));
        v6.put("blocks.0.att.gate.weight", HostTensor.zeros(c, c));
        refused("rwkv6.pth", v6, "RWKV-6");

        Map<String, HostTensor> v7 = common(c);
        v7.put("blocks.0.att.x_r", HostTensor.zeros(1, 1, c));
        v7.put("blocks.0.att.w0", HostTensor.zeros(1, 1, c));
        v7.put("blocks.0.att.ln_x.weight", HostTensor.zeros(c));
        refused("rwkv7.pth", v7, "RWKV-7");

        Map<String, HostTensor> stateOnly = new LinkedHashMap<>();
        stateOnly.put("blocks.0.att.time_state", HostTensor.zeros(h, n, n));
        refused("state.pth", stateOnly, "no blocks.0.att.time_decay");
    }

    private static Map<String, HostTensor> common(int c) {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        m.put("emb.weight", HostTensor.zeros(16, c));
        m.put("blocks.0.ln0.weight", HostTensor.zeros(c));
        m.put("blocks.0.ln1.weight", HostTensor.zeros(c));
        m.put("blocks.0.att.receptance.weight", HostTensor.zeros(c, c));
        m.put("head.weight", HostTensor.zeros(16, c));
        return m;
    }

    private void refused(String name, Map<String, HostTensor> tensors, String... words) {
        Path f = tmp.resolve(name);
        PthWriter.write(f, tensors, PthWriter.Dtype.BF16);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelFiles.load(f));
        String msg = e.getMessage();
        assertTrue(msg.contains(name), "names the file: " + msg);
        assertTrue(msg.contains("not an RWKV-5.2 (x052) model: found"), "says what was found: " + msg);
        for (String w : words) assertTrue(msg.contains(w), "message contains '" + w + "': " + msg);
    }
}
