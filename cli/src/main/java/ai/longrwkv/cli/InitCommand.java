package ai.longrwkv.cli;

import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** Writes a freshly initialised x052 model. */
@Command(name = "init", mixinStandardHelpOptions = true,
        description = "Create an x052 model with RWKV-LM's initialisation (deterministic per seed) and write it as safetensors or .pth (by the extension of --out).")
final class InitCommand implements Callable<Integer> {
    @Option(names = "--layers", required = true, description = "Number of blocks L.") int layers;
    @Option(names = "--embd", required = true, description = "Embedding size C.") int embd;
    @Option(names = "--head-size", defaultValue = "64", description = "Head size N (default: ${DEFAULT-VALUE}).") int headSize;
    @Option(names = "--vocab", defaultValue = "65536", description = "Vocabulary size V (default: ${DEFAULT-VALUE}; 256 for bytes).") int vocab;
    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default: ${DEFAULT-VALUE}).") long seed;
    @Option(names = "--out", required = true, description = "Output model: .safetensors (F32) or .pth / .pt (torch zip, --dtype), by extension; written atomically.") Path out;
    @Option(names = "--memory-channels", defaultValue = "0", paramLabel = "K",
            description = "Long-memory channels: the first K key channels of every head get time_decay --memory-decay (default: ${DEFAULT-VALUE} = x052 as is).") int memoryChannels;
    @Option(names = "--memory-heads", defaultValue = "0", paramLabel = "K",
            description = "Memory heads: every key channel of the last K heads of every layer gets time_decay --memory-decay, so that long"
                    + " memory is normalised (ln_x) apart from the short channels (default: ${DEFAULT-VALUE}; README: what it bought).") int memoryHeads;
    @Option(names = "--memory-decay", defaultValue = "-16", paramLabel = "D",
            description = "time_decay of the long-memory channels; the decay per token is exp(-exp(D)): -16 keeps 98.6%% after 128k tokens (default: ${DEFAULT-VALUE}).") double memoryDecay;
    @Option(names = "--matrices", defaultValue = "orthogonal", paramLabel = "orthogonal|gaussian",
            description = "orthogonal (RWKV-LM's init) | gaussian (for memory and speed tests of large shapes: Gaussian matrices of the same"
                    + " scale without the QR factorisations, which take tens of minutes for a 7B shape on a small machine, and the output"
                    + " projections x052 starts at zero given values too, so that the state and every gradient are non-trivial) (default: ${DEFAULT-VALUE}).") String matrices;
    @Option(names = "--dtype", defaultValue = "bf16", description = "bf16 | fp16 | fp32 for .pth output (default: ${DEFAULT-VALUE}; safetensors output is F32).") String dtype;

    @Override
    public Integer call() {
        ModelFiles.OutputFormat format = ModelFiles.outputFormat(out, "--out");
        PthWriter.Dtype pthDtype = PthWriter.Dtype.parse(dtype);
        if (layers < 1) throw new IllegalArgumentException("--layers " + layers + ": expected at least 1 block");
        if (embd < 1) throw new IllegalArgumentException("--embd " + embd + ": expected a positive embedding size");
        if (headSize < 1) throw new IllegalArgumentException("--head-size " + headSize + ": expected a positive head size (official models: 64)");
        if (vocab < 1) throw new IllegalArgumentException("--vocab " + vocab + ": expected a positive vocabulary size (65536 for World, 256 for bytes)");
        if (embd % headSize != 0) throw new IllegalArgumentException("--embd " + embd + " is not a multiple of --head-size " + headSize);
        if (embd > (1 << 24)) throw new IllegalArgumentException("--embd " + embd + " is absurdly large (at most " + (1 << 24) + ")");
        ModelConfig cfg = ModelConfig.forInit(layers, embd, headSize, vocab);
        checkFits(cfg);
        if (memoryChannels < 0 || memoryChannels > headSize) {
            throw new IllegalArgumentException("--memory-channels must be 0.." + headSize + " (the head size), got " + memoryChannels);
        }
        if (memoryHeads < 0 || memoryHeads > cfg.nHead()) {
            throw new IllegalArgumentException("--memory-heads must be 0.." + cfg.nHead() + " (the heads per layer, --embd / --head-size), got " + memoryHeads);
        }
        if (!Double.isFinite(memoryDecay) || memoryDecay > 0) {
            throw new IllegalArgumentException("--memory-decay must be a finite number <= 0 (decay per token exp(-exp(D))), got " + memoryDecay);
        }
        if (!matrices.equals("orthogonal") && !matrices.equals("gaussian")) {
            throw new IllegalArgumentException("--matrices must be orthogonal or gaussian, got '" + matrices + "'");
        }
        // made one tensor at a time as the writer reads it (safetensors writes from memory: its header needs every tensor first)
        ModelWeights w = ModelInit.x052Lazy(cfg, seed, memoryChannels, memoryHeads, memoryDecay, matrices.equals("gaussian"));
        if (format == ModelFiles.OutputFormat.PTH) {
            try (me.tongfei.progressbar.ProgressBar bar = ai.longrwkv.core.util.Progress.bar("init " + out.getFileName(), w.keys().size(), "tensors")) {
                PthWriter.write(out, w, pthDtype, (done, total, key, bytes, totalBytes) -> bar.stepTo(done));
            }
        } else {
            Safetensors.write(out, w.tensors(), Map.of(Safetensors.GROUP_NORM_EPS_KEY, Double.toString(cfg.groupNormEps()),
                    "format", "pt", "source", w.source()));
        }
        System.out.printf("wrote %s: %s, %,d parameters%n", out, cfg, cfg.parameterCount());
        return 0;
    }

    /**
     * Refuses, before allocating anything, a model that cannot be built in this JVM: a tensor with more values than
     * one Java array holds, or parameters (4 bytes each, plus the largest matrix again for the orthogonal init) that
     * do not fit the heap.
     */
    private void checkFits(ModelConfig cfg) {
        // from one- and two-layer configs (listing the tensors of 2^31 layers would itself exhaust memory)
        ModelConfig one = new ModelConfig(1, cfg.nEmbd(), cfg.nHead(), cfg.headSize(), cfg.dimFfn(), cfg.vocabSize(), cfg.groupNormEps());
        ModelConfig two = new ModelConfig(2, cfg.nEmbd(), cfg.nHead(), cfg.headSize(), cfg.dimFfn(), cfg.vocabSize(), cfg.groupNormEps());
        long perLayer = two.parameterCount() - one.parameterCount();
        long params = one.parameterCount() + (cfg.nLayer() - 1L) * perLayer;
        long largest = 0;
        for (ParamSpec p : ParamSpec.all(one)) {
            long n = HostTensor.numel(p.shape());
            largest = Math.max(largest, n);
            if (n > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException(String.format(Locale.ROOT, "--layers %d --embd %d --vocab %d: tensor '%s' %s would hold %,d values, "
                        + "more than one Java array can (%,d)", layers, embd, vocab, p.key(), java.util.Arrays.toString(p.shape()), n, Integer.MAX_VALUE - 8));
            }
        }
        // .pth output makes one tensor at a time (the largest twice over, for its QR); safetensors holds them all
        boolean streamed = ModelFiles.outputFormat(out, "--out") == ModelFiles.OutputFormat.PTH;
        long needed = 4 * ((streamed ? largest : params) + largest) + (64L << 20);
        long heap = Runtime.getRuntime().maxMemory();
        if (needed > heap) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--layers %d --embd %d --vocab %d: the model has %,d parameters and needs "
                    + "about %.1f GB of Java heap to build, but the heap limit is %.1f GB (raise it with LONGRWKV_JAVA_OPTS=-Xmx...)",
                    layers, embd, vocab, params, needed / 1e9, heap / 1e9));
        }
    }
}
