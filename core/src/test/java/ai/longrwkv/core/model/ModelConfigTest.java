package ai.longrwkv.core.model;

import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.testing.TestModels;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class ModelConfigTest {
    static final ModelConfig CFG = new ModelConfig(2, 16, 2, 8, 32, 23, 1e-5);

    private static Map<String, HostTensor> tensors() {
        return new LinkedHashMap<>(TestModels.random(CFG, 1).tensors());
    }

    @Test
    void derivesDimensionsFromTheWeights() {
        ModelConfig c = ModelConfig.fromWeights(new ModelWeights(tensors(), "m", Double.NaN), 64e-5);
        assertEquals(new ModelConfig(2, 16, 2, 8, 32, 23, 64e-5), c);
        assertEquals(TestModels.random(CFG, 1).parameterCount(), c.parameterCount());
    }

    @Test
    void shapesThatDoNotFitAreNamed() {
        Map<String, HostTensor> t = tensors();
        t.put("blocks.1.att.key.weight", HostTensor.zeros(16, 15));
        t.remove("blocks.0.ffn.value.weight");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> ModelConfig.fromWeights(new ModelWeights(t, "bad.safetensors", Double.NaN), 1e-5));
        assertTrue(e.getMessage().startsWith("bad.safetensors: "), e.getMessage());
        assertTrue(e.getMessage().contains("'blocks.1.att.key.weight' has shape [16, 15], expected [16, 16]"), e.getMessage());
        assertTrue(e.getMessage().contains("missing 'blocks.0.ffn.value.weight'"), e.getMessage());
    }

    @Test
    void headCountMustDivideTheEmbedding() {
        Map<String, HostTensor> t = tensors();
        t.put("blocks.0.att.time_decay", HostTensor.zeros(3, 8));
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> ModelConfig.fromWeights(new ModelWeights(t, "m.bin", Double.NaN), 1e-5));
        assertTrue(e.getMessage().contains("H*N must equal n_embd = 16"), e.getMessage());
    }

    @Test
    void otherRwkvGenerationsAreRefusedWithWhatWasFound() {
        Map<String, HostTensor> v4 = tensors();
        v4.remove("blocks.0.att.ln_x.weight");
        v4.remove("blocks.0.att.gate.weight");
        assertRefused(v4, "RWKV-4");
        Map<String, HostTensor> v51 = tensors();
        v51.remove("blocks.0.att.gate.weight");
        assertRefused(v51, "RWKV-5.0/5.1");
        Map<String, HostTensor> v51b = tensors();
        v51b.put("blocks.0.att.time_decay", HostTensor.zeros(2, 1));
        assertRefused(v51b, "RWKV-5.1");
        Map<String, HostTensor> v6 = tensors();
        v6.put("blocks.0.att.time_maa_x", HostTensor.zeros(1, 1, 16));
        assertRefused(v6, "RWKV-6");
        Map<String, HostTensor> v7 = tensors();
        v7.put("blocks.0.att.x_r", HostTensor.zeros(1, 1, 16));
        assertRefused(v7, "RWKV-7");
    }

    private static void assertRefused(Map<String, HostTensor> t, String word) {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> ModelConfig.checkArchitecture(new ModelWeights(t, "old.pth", Double.NaN)));
        assertTrue(e.getMessage().contains("old.pth: not an RWKV-5.2 (x052) model"), e.getMessage());
        assertTrue(e.getMessage().contains(word), e.getMessage());
    }
}
