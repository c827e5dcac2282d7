package ai.longrwkv.cli;

import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.tensor.HostTensor;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/** Tiny byte-level model files for the eval, generate and chat command tests. */
final class EvalTestModels {
    private EvalTestModels() { }

    /**
     * L2-C32 (head size 16, vocab 256): the x052 init, whose slow decays keep a long memory, with the output
     * projections it zeroes (att.output, ffn.value) filled with small random values, so that what the state carries
     * reaches the logits (a plain init's predictions ignore the state; fully random weights forget within a few tokens).
     */
    static Path write(Path file, long seed) {
        ModelConfig cfg = ModelConfig.forInit(2, 32, 16, 256);
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        ModelInit.x052(cfg, seed).tensors().forEach((key, t) -> {
            HostTensor copy = t.copy();
            if (key.endsWith("att.output.weight") || key.endsWith("ffn.value.weight")) {
                float[] d = copy.data();
                for (int i = 0; i < d.length; i++) d[i] = (float) ((rnd.nextDouble() * 2 - 1) * 0.3);
            }
            tensors.put(key, copy);
        });
        Safetensors.write(file, tensors, Map.of(Safetensors.GROUP_NORM_EPS_KEY, Double.toString(cfg.groupNormEps())));
        return file;
    }
}
