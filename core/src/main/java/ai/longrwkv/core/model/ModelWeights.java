package ai.longrwkv.core.model;

import ai.longrwkv.core.tensor.HostTensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The parameters of an x052 model as a .pth state dict names and shapes them (rwkv5-spec.md §1):
 * {@code time_decay} is the raw parameter (w = exp(-exp(time_decay))), time_mix_* are [1,1,C], Linear weights [out,in].
 * Readers of other formats convert into this form, writers convert out of it.
 */
public final class ModelWeights {
    private final LinkedHashMap<String, HostTensor> tensors;
    /** Where these weights came from (a file path or "init(seed=...)"), for error messages. */
    private final String source;
    /** The ln_x GroupNorm eps the file's producer used, if the format implies one (rwkv.cpp: 1e-5); NaN if unknown. */
    private final double impliedGroupNormEps;

    public ModelWeights(Map<String, HostTensor> tensors, String source, double impliedGroupNormEps) {
        this.tensors = new LinkedHashMap<>(tensors);
        this.source = source;
        this.impliedGroupNormEps = impliedGroupNormEps;
    }

    public Map<String, HostTensor> tensors() { return Collections.unmodifiableMap(tensors); }
    public String source() { return source; }
    public double impliedGroupNormEps() { return impliedGroupNormEps; }
    public boolean has(String key) { return tensors.containsKey(key); }

    public HostTensor get(String key) {
        HostTensor t = tensors.get(key);
        if (t == null) {
            throw new ai.longrwkv.core.io.ModelFormatException(source + ": missing tensor '" + key + "'");
        }
        return t;
    }

    /** Total number of parameters. */
    public long parameterCount() {
        long n = 0;
        for (HostTensor t : tensors.values()) n += t.size();
        return n;
    }
}
