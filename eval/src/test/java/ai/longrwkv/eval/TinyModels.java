package ai.longrwkv.eval;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/** Small byte-level models for tests. */
final class TinyModels {
    private TinyModels() { }

    static ModelConfig config() {
        return ModelConfig.forInit(2, 32, 16, 256);
    }

    /**
     * The x052 init, with the output projections it zeroes (att.output, ffn.value) filled with small random values:
     * otherwise nothing the state carries reaches the logits, and prefill and chat tests would prove nothing.
     */
    static ModelWeights withMemory(ModelConfig cfg, long seed) {
        ModelWeights init = ModelInit.x052(cfg, seed);
        SplittableRandom rnd = new SplittableRandom(seed * 31 + 7);
        Map<String, HostTensor> out = new LinkedHashMap<>();
        init.tensors().forEach((key, t) -> {
            HostTensor copy = t.copy();
            if (key.endsWith("att.output.weight") || key.endsWith("ffn.value.weight")) {
                float[] d = copy.data();
                for (int i = 0; i < d.length; i++) d[i] = (float) ((rnd.nextDouble() * 2 - 1) * 0.3);
            }
            out.put(key, copy);
        });
        return new ModelWeights(out, "tiny(seed=" + seed + ")", cfg.groupNormEps());
    }
}
