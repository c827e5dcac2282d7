package ai.longrwkv.cli;

import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;

/** Writes a freshly initialised x052 model. */
@Command(name = "init", mixinStandardHelpOptions = true,
        description = "Create an x052 model with RWKV-LM's initialisation (deterministic per seed) and write it as safetensors.")
final class InitCommand implements Callable<Integer> {
    @Option(names = "--layers", required = true, description = "Number of blocks L.") int layers;
    @Option(names = "--embd", required = true, description = "Embedding size C.") int embd;
    @Option(names = "--head-size", defaultValue = "64", description = "Head size N (default: ${DEFAULT-VALUE}).") int headSize;
    @Option(names = "--vocab", defaultValue = "65536", description = "Vocabulary size V (default: ${DEFAULT-VALUE}; 256 for bytes).") int vocab;
    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default: ${DEFAULT-VALUE}).") long seed;
    @Option(names = "--out", required = true, description = "Output .safetensors file (written atomically).") Path out;

    @Override
    public Integer call() {
        ModelConfig cfg = ModelConfig.forInit(layers, embd, headSize, vocab);
        ModelWeights w = ModelInit.x052(cfg, seed);
        Safetensors.write(out, w.tensors(), Map.of(Safetensors.GROUP_NORM_EPS_KEY, Double.toString(cfg.groupNormEps()),
                "format", "pt", "source", w.source()));
        System.out.printf("wrote %s: %s, %,d parameters%n", out, cfg, cfg.parameterCount());
        return 0;
    }
}
