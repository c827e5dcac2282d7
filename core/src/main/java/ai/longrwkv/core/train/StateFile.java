package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.io.pth.PthReader;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Tuned initial states ("state tuning") on disk: one tensor {@code blocks.{i}.att.time_state} of shape [H, N, N] per
 * layer, in a plain torch.save dict (bf16 by default), as RWKV-PEFT writes them.
 *
 * <p>Layout trap: in the file the matrix is indexed [head][value j][key i], the layout of the training kernels (and
 * what the rwkv pip package expects: its loader transposes the last two dimensions into its own [head][key][value]
 * inference state). Inside LongRWKV states are [head][key i][value j] ({@link RwkvState}); this class transposes on
 * the way in and out.
 */
public final class StateFile {
    private StateFile() { }

    public static String key(int layer) { return Trainer.stateKey(layer); }

    /** [H, N, N] transposed in its last two dimensions. */
    static HostTensor transposeLastTwo(HostTensor t) {
        int h = t.dim(0), n = t.dim(1);
        if (t.dim(2) != n) throw new IllegalArgumentException("state matrix must be square, got " + Arrays.toString(t.shape()));
        float[] out = new float[t.size()];
        float[] in = t.data();
        for (int q = 0; q < h; q++) {
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) out[q * n * n + j * n + i] = in[q * n * n + i * n + j];
            }
        }
        return new HostTensor(t.shape(), out);
    }

    /** The file's tensors for states given in LongRWKV's [head][key][value] layout. */
    public static Map<String, HostTensor> toFileTensors(HostTensor[] keyValueStates) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (int l = 0; l < keyValueStates.length; l++) out.put(key(l), transposeLastTwo(keyValueStates[l]));
        return out;
    }

    /** Writes a state file (.pth/.pt in the given dtype, or .safetensors in fp32, by extension; any other name is refused). */
    public static void save(Path file, HostTensor[] keyValueStates, PthWriter.Dtype dtype) {
        ModelFiles.OutputFormat format = ModelFiles.outputFormat(file, "state file");
        Map<String, HostTensor> tensors = toFileTensors(keyValueStates);
        if (format == ModelFiles.OutputFormat.SAFETENSORS) {
            Safetensors.write(file, tensors, Map.of("layout", "time_state [head][value][key]"));
        } else {
            PthWriter.write(file, tensors, dtype);
        }
    }

    /** Whether the weights hold a tuned state (any {@code blocks.N.att.time_state} key), as state-tune --merge-into writes. */
    public static boolean hasTunedState(ModelWeights w) {
        for (String k : w.keys()) if (isStateKey(k)) return true;
        return false;
    }

    public static boolean isStateKey(String key) {
        return key.startsWith("blocks.") && key.endsWith(".att.time_state");
    }

    /**
     * The tuned state stored inside a model file (one {@code blocks.N.att.time_state} [H, N, N] per layer, in the
     * file's [head][value][key] layout), transposed into LongRWKV's [head][key][value]; null if the file has none.
     * A partial or misshapen set is refused naming the key.
     */
    public static HostTensor[] fromModel(ModelWeights w, ModelConfig cfg) {
        if (!hasTunedState(w)) return null;
        String file = w.source();
        int[] expected = {cfg.nHead(), cfg.headSize(), cfg.headSize()};
        HostTensor[] out = new HostTensor[cfg.nLayer()];
        for (int l = 0; l < cfg.nLayer(); l++) {
            if (!w.has(key(l))) {
                throw new ModelFormatException(file + ": has a tuned state (blocks.*.att.time_state) but no '" + key(l)
                        + "': a tuned state has one per layer, " + cfg.nLayer() + " for this model");
            }
            if (!Arrays.equals(w.shape(key(l)), expected)) {
                throw new ModelFormatException(file + ": '" + key(l) + "' has shape " + Arrays.toString(w.shape(key(l)))
                        + ", this model needs " + Arrays.toString(expected));
            }
            out[l] = transposeLastTwo(w.get(key(l)));
        }
        for (String k : w.keys()) {
            if (!isStateKey(k)) continue;
            String layer = k.substring("blocks.".length(), k.length() - ".att.time_state".length());
            boolean ok;
            try {
                int n = Integer.parseInt(layer);
                ok = n >= 0 && n < cfg.nLayer() && k.equals(key(n));
            } catch (NumberFormatException e) {
                ok = false;
            }
            if (!ok) throw new ModelFormatException(file + ": '" + k + "' is not a state of one of the model's " + cfg.nLayer() + " layers");
        }
        return out;
    }

    /**
     * Reads the per-layer states of a state file (or of a model .pth that has time_state keys) for a model of this
     * shape, in LongRWKV's [head][key][value] layout.
     */
    public static HostTensor[] load(Path file, ModelConfig cfg) {
        Map<String, HostTensor> tensors = switch (ModelFiles.detectFormat(file)) {
            case PYTORCH_ZIP -> PthReader.readTensors(file);
            case SAFETENSORS -> Safetensors.readTensors(file);
            default -> throw new ModelFormatException(file + ": a state file must be a .pth (torch.save) or .safetensors file");
        };
        HostTensor[] out = new HostTensor[cfg.nLayer()];
        int[] expected = {cfg.nHead(), cfg.headSize(), cfg.headSize()};
        for (int l = 0; l < cfg.nLayer(); l++) {
            HostTensor t = tensors.get(key(l));
            if (t == null) throw new ModelFormatException(file + ": no '" + key(l) + "' (a state file has one per layer, " + cfg.nLayer() + " for this model)");
            if (!t.sameShape(expected)) {
                throw new ModelFormatException(file + ": '" + key(l) + "' has shape " + Arrays.toString(t.shape()) + ", this model needs " + Arrays.toString(expected));
            }
            out[l] = transposeLastTwo(t);
        }
        if (tensors.containsKey(key(cfg.nLayer()))) {
            throw new ModelFormatException(file + ": has states for more than the model's " + cfg.nLayer() + " layers");
        }
        return out;
    }

    /** A model state whose WKV matrices are these (token-shift parts zero), as state tuning starts every sequence. */
    public static RwkvState initialState(Backend be, ModelConfig cfg, HostTensor[] keyValueStates) {
        RwkvState s = RwkvState.zeros(be, cfg);
        for (int l = 0; l < cfg.nLayer(); l++) {
            try (var u = be.upload(keyValueStates[l])) {
                be.copy(u, s.wkv[l]);
            }
        }
        return s;
    }
}
