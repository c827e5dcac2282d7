package ai.longrwkv.cli;

import ai.longrwkv.core.util.Progress;
import me.tongfei.progressbar.ProgressBar;

import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.io.RwkvCppModelReader;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.io.pth.PthReader;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.Checkpoints;
import ai.longrwkv.core.train.StateFile;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/** Converts model (or state) files between .pth and safetensors; also reads rwkv.cpp files. */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = {"Convert a model or state file between PyTorch .pth and safetensors; rwkv.cpp .bin files (FP32/FP16) "
                + "can be read too. The input format is recognised from the file's first bytes, the output format from OUT's "
                + "extension: .pth or .pt, or .safetensors. Keys, shapes and values are kept; the architecture is not checked.",
                "",
                ".pth output is bf16 by default, like official releases (--dtype fp16 or fp32 on request) and is read by "
                        + "torch.load, also with weights_only=True. safetensors output is always F32 (--dtype applies to .pth "
                        + "output only). Output files are written atomically. Progress goes to stderr.",
                "",
                "IN may also be a training checkpoint: a run's output directory (its latest checkpoint), its checkpoints "
                        + "directory, or one step-NNNNNNNN directory; it is verified, the parts of a sharded (--zero 1/2) checkpoint "
                        + "are merged, and its trained tensors are written: the whole model (full finetuning), the LoRA adapter, "
                        + "or the tuned states (in state-final.pth's layout)."})
final class ConvertCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "IN", description = "Input: .pth (torch zip), .safetensors, rwkv.cpp .bin, or a training checkpoint directory.")
    Path in;

    @Parameters(index = "1", paramLabel = "OUT", description = "Output: .pth / .pt or .safetensors.")
    Path out;

    @Option(names = "--dtype", paramLabel = "bf16|fp16|fp32",
            description = "Element type of .pth output (default: bf16). safetensors output is always F32.")
    String dtype;

    @Option(names = "--keep-receptance",
            description = "From an rwkv.cpp .bin: keep att.receptance.weight as stored (the file then needs ln_x eps 1e-5, "
                    + "which .pth cannot record). By default it is multiplied by 8, which makes the output compute exactly as "
                    + "rwkv.cpp does under the official eps 64e-5 every other loader uses.")
    boolean keepEps;

    @Spec
    CommandSpec spec;

    private enum OutputFormat { PTH, SAFETENSORS }

    @Override
    public Integer call() {
        OutputFormat format = outputFormat(out);
        PthWriter.Dtype pthDtype = PthWriter.Dtype.BF16;
        if (dtype != null) {
            pthDtype = PthWriter.Dtype.parse(dtype);
            if (format == OutputFormat.SAFETENSORS && pthDtype != PthWriter.Dtype.FP32) {
                throw new IllegalArgumentException("--dtype " + dtype + ": safetensors output is always F32; --dtype applies to .pth output");
            }
        }
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter stderr = spec.commandLine().getErr();
        boolean fromCheckpoint = java.nio.file.Files.isDirectory(in);
        ModelWeights weights = fromCheckpoint ? checkpoint(in, stdout) : readAnyFormat(in);
        int rescaled = 0;
        if (!fromCheckpoint && ModelFiles.detectFormat(in) == ModelFiles.Format.RWKV_CPP && !keepEps) {
            // rwkv.cpp computes ln_x with eps 1e-5; every official loader uses 64e-5. y = r.S is linear in r, and
            // GroupNorm(8y, 64e-5) = (8y - 8m) / sqrt(64 var + 64e-5) = GroupNorm(y, 1e-5) exactly, so receptance x 8
            // (exact in every float format) makes the file compute with 64e-5 what rwkv.cpp computes with 1e-5.
            Map<String, HostTensor> scaled = new LinkedHashMap<>();
            for (String key : weights.keys()) {
                HostTensor t = weights.get(key);
                if (key.startsWith("blocks.") && key.endsWith(".att.receptance.weight")) {
                    float[] d = t.data().clone();
                    for (int i = 0; i < d.length; i++) d[i] *= 8f;
                    t = new HostTensor(t.shape(), d);
                    rescaled++;
                }
                scaled.put(key, t);
            }
            if (rescaled > 0) weights = new ModelWeights(scaled, weights.source(), ModelConfig.OFFICIAL_GROUP_NORM_EPS);
        }
        int count = weights.keys().size();
        long params = weights.parameterCount();
        double eps = weights.impliedGroupNormEps();
        String written;
        if (format == OutputFormat.PTH) {
            try (ProgressBar bar = Progress.bar("convert " + in.getFileName(), count, "tensors")) {
                PthWriter.write(out, weights, pthDtype, (done, total, key, bytes, totalBytes) -> bar.stepTo(done));
            }
            written = ".pth " + pthDtype;
            if (!Double.isNaN(eps) && eps != ModelConfig.OFFICIAL_GROUP_NORM_EPS) {
                stderr.println("note: " + in + " implies ln_x GroupNorm eps " + eps + "; .pth files cannot record it, so pass "
                        + "--gn-eps " + eps + " when using " + out + " (the default for .pth files is 64e-5)");
            }
        } else {
            Map<String, String> metadata = new LinkedHashMap<>();
            metadata.put("format", "pt");
            if (!Double.isNaN(eps)) metadata.put(Safetensors.GROUP_NORM_EPS_KEY, Double.toString(eps));
            // Safetensors.write goes over the tensors twice (header, then data): count both passes
            try (ProgressBar bar = Progress.bar("convert " + in.getFileName(), 2L * count, "tensors")) {
                LoadingMap tensors = new LoadingMap(weights, n -> bar.stepTo(n));
                Safetensors.write(out, tensors, metadata);
            }
            written = "safetensors F32";
        }
        stdout.printf(Locale.ROOT, "wrote %s (%s): %d tensors, %,d parameters, from %s%n", out, written, count, params, in);
        if (rescaled > 0) {
            stdout.printf(Locale.ROOT, "rwkv.cpp's ln_x eps 1e-5 -> the official 64e-5: %d att.receptance.weight tensors multiplied by 8 "
                    + "(exact: GroupNorm(8y, 64e-5) = GroupNorm(y, 1e-5)); --keep-receptance keeps them as stored%n", rescaled);
        }
        stdout.flush();
        return 0;
    }

    /**
     * A training checkpoint's trained tensors (shards merged): the whole model in state-dict order (full finetuning),
     * the LoRA adapter, or the tuned states in RWKV-PEFT's layout (as state-tune writes state-final.pth).
     */
    static ModelWeights checkpoint(Path dir, PrintWriter stdout) {
        Checkpoints.Contents c = Checkpoints.read(dir);
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        switch (c.mode()) {
            case FULL -> {
                ModelWeights w = new ModelWeights(c.trainables(), dir.toString(), Double.NaN);
                ModelConfig cfg = ModelConfig.fromWeights(w, ModelConfig.OFFICIAL_GROUP_NORM_EPS);
                for (ParamSpec spec : ParamSpec.all(cfg)) tensors.put(spec.key(), c.trainables().get(spec.key()));
            }
            case LORA -> tensors.putAll(c.trainables());
            case STATE -> {
                HostTensor[] states = new HostTensor[c.trainables().size()];
                for (int l = 0; l < states.length; l++) {
                    states[l] = c.trainables().get(StateFile.key(l));
                    if (states[l] == null) throw new IllegalArgumentException(c.dir() + ": a state-tuning checkpoint without '" + StateFile.key(l) + "'");
                }
                tensors.putAll(StateFile.toFileTensors(states));
            }
        }
        stdout.printf(Locale.ROOT, "checkpoint %s: step %d, %s, %d trained tensors%n", c.dir(), c.step(),
                switch (c.mode()) { case FULL -> "full finetuning (the whole model)"; case LORA -> "LoRA (the adapter)";
                    case STATE -> "state tuning (the tuned states, RWKV-PEFT layout)"; }, tensors.size());
        return new ModelWeights(tensors, dir.toString(), Double.NaN);
    }

    private static OutputFormat outputFormat(Path out) {
        return ModelFiles.outputFormat(out, "OUT") == ModelFiles.OutputFormat.PTH ? OutputFormat.PTH : OutputFormat.SAFETENSORS;
    }

    /**
     * Reads a model or state file of any supported format without the x052 architecture check. .pth files are read
     * lazily (shapes now, values when a tensor is loaded); the other readers load everything.
     */
    static ModelWeights readAnyFormat(Path file) {
        return switch (ModelFiles.detectFormat(file)) {
            case PYTORCH_ZIP -> PthReader.read(file);
            case SAFETENSORS -> Safetensors.readModel(file);
            case RWKV_CPP -> RwkvCppModelReader.read(file);
            case UNKNOWN -> throw new ModelFormatException(file + ": unrecognised file format; expected a PyTorch .pth zip "
                    + "(starts with 50 4b 03 04), a .safetensors file or an rwkv.cpp .bin (starts with 66 6d 67 67)");
        };
    }

    /**
     * Model weights seen as a Map of tensors that loads each tensor only when its value is asked for and keeps just the
     * latest one, so that writing safetensors from a lazily read .pth never holds the whole model in memory.
     * Read-only; iteration follows the weights' key order.
     */
    static final class LoadingMap extends AbstractMap<String, HostTensor> {
        interface LoadListener { void loaded(int loadsSoFar); }

        private final ModelWeights weights;
        private final LoadListener listener;
        private String cachedKey;
        private HostTensor cached;
        private int loads;

        LoadingMap(ModelWeights weights, LoadListener listener) {
            this.weights = weights;
            this.listener = listener;
        }

        private HostTensor load(String key) {
            if (!key.equals(cachedKey)) {
                cached = null; // let the previous tensor go before the next is read
                cached = weights.get(key);
                cachedKey = key;
                listener.loaded(++loads);
            }
            return cached;
        }

        @Override
        public Set<Map.Entry<String, HostTensor>> entrySet() {
            return new AbstractSet<>() {
                @Override public int size() { return weights.keys().size(); }

                @Override
                public Iterator<Map.Entry<String, HostTensor>> iterator() {
                    Iterator<String> keys = weights.keys().iterator();
                    return new Iterator<>() {
                        @Override public boolean hasNext() { return keys.hasNext(); }

                        @Override
                        public Map.Entry<String, HostTensor> next() {
                            String key = keys.next();
                            return new Map.Entry<>() {
                                @Override public String getKey() { return key; }
                                @Override public HostTensor getValue() { return load(key); }
                                @Override public HostTensor setValue(HostTensor v) { throw new UnsupportedOperationException(); }
                            };
                        }
                    };
                }
            };
        }

        @Override public boolean containsKey(Object key) { return weights.keys().contains(key); }

        @Override public HostTensor get(Object key) { return key instanceof String k && weights.has(k) ? load(k) : null; }
    }
}
