package ai.longrwkv.core.model;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The parameters of an x052 model as a .pth state dict names and shapes them (rwkv5-spec.md §1):
 * {@code time_decay} is the raw parameter (w = exp(-exp(time_decay))), time_mix_* are [1,1,C], Linear weights [out,in].
 * Readers of other formats convert into this form, writers convert out of it.
 *
 * <p>Entries may be lazy: a reader of a 15 GB checkpoint gives shapes and dtypes at once and converts a tensor to
 * float32 only when {@link #get} asks for it, or a block at a time for {@link #upload}, so a model is uploaded one
 * tensor at a time and no tensor passes through Java memory whole.
 */
public final class ModelWeights {

    /** One tensor: its shape and stored dtype are known without reading the data. */
    public interface Entry {
        int[] shape();

        /** Stored element type as safetensors names it: F32, F16, BF16. */
        String dtype();

        /** Reads (and converts to float32) the data; may be called more than once. */
        HostTensor load();

        /**
         * Hands the values, in row-major order and as float32, to {@code sink} in consecutive blocks. An entry read
         * from a file fills {@code buffer} again for each block (at most its length), so that a tensor never exists
         * whole in Java memory; the default loads the tensor and hands it over as one block, its own array.
         */
        default void forEachBlock(float[] buffer, BlockSink sink) {
            float[] all = load().data();
            sink.accept(0, all, all.length);
        }
    }

    /** Receives one block of {@link Entry#forEachBlock}: the tensor's elements [first, first + count) are values[0, count). */
    @FunctionalInterface
    public interface BlockSink {
        void accept(long first, float[] values, int count);
    }

    /** An entry already in memory. */
    public record InMemory(HostTensor tensor) implements Entry {
        @Override public int[] shape() { return tensor.shape(); }
        @Override public String dtype() { return "F32"; }
        @Override public HostTensor load() { return tensor; }
    }

    /**
     * A backend tensor as an entry: fp32 values downloaded when it is loaded, or a block at a time by
     * {@link Entry#forEachBlock} ({@link Backend#read}), so that writing a checkpoint never holds a tensor, let alone
     * all of them, in Java memory. The tensor must stay open while the entry is used.
     */
    public static Entry ofTensor(Backend be, Tensor t) {
        return new Entry() {
            @Override public int[] shape() { return t.shape(); }
            @Override public String dtype() { return "F32"; }
            @Override public HostTensor load() { return be.download(t); }
            @Override public void forEachBlock(float[] buffer, BlockSink sink) {
                long n = t.size();
                if (buffer.length == 0 && n > 0) throw new IllegalArgumentException("empty buffer");
                for (long first = 0; first < n; first += buffer.length) {
                    int count = (int) Math.min(buffer.length, n - first);
                    be.read(t, first, buffer, 0, count);
                    sink.accept(first, buffer, count);
                }
            }
        };
    }

    private final LinkedHashMap<String, Entry> entries;
    /** Where these weights came from (a file path or "init(seed=...)"), for error messages. */
    private final String source;
    /** The ln_x GroupNorm eps the file's producer used, if the format implies one (rwkv.cpp: 1e-5); NaN if unknown. */
    private final double impliedGroupNormEps;

    /** Weights already in memory. */
    public ModelWeights(Map<String, HostTensor> tensors, String source, double impliedGroupNormEps) {
        this.entries = new LinkedHashMap<>();
        tensors.forEach((k, v) -> entries.put(k, new InMemory(v)));
        this.source = source;
        this.impliedGroupNormEps = impliedGroupNormEps;
    }

    private ModelWeights(LinkedHashMap<String, Entry> entries, String source, double impliedGroupNormEps, boolean lazy) {
        this.entries = entries;
        this.source = source;
        this.impliedGroupNormEps = impliedGroupNormEps;
    }

    /** Weights whose data is read on demand. */
    public static ModelWeights lazy(Map<String, ? extends Entry> entries, String source, double impliedGroupNormEps) {
        return new ModelWeights(new LinkedHashMap<>(entries), source, impliedGroupNormEps, true);
    }

    public Set<String> keys() { return Collections.unmodifiableSet(entries.keySet()); }
    public Map<String, Entry> entries() { return Collections.unmodifiableMap(entries); }
    public String source() { return source; }
    public double impliedGroupNormEps() { return impliedGroupNormEps; }
    public boolean has(String key) { return entries.containsKey(key); }

    private Entry entry(String key) {
        Entry e = entries.get(key);
        if (e == null) throw new ModelFormatException(source + ": missing tensor '" + key + "'");
        return e;
    }

    /** Shape of a tensor without reading its data. */
    public int[] shape(String key) { return entry(key).shape(); }

    /** The tensor as float32 (read from the file now if the entry is lazy). */
    public HostTensor get(String key) { return entry(key).load(); }

    /**
     * Values per block of {@link #upload}: 1 Mi, a 4 MiB fp32 buffer whatever the tensor (a 7B model's [65536, 4096]
     * embedding would otherwise pass through a 1 GiB Java array, which the heap then keeps until a full collection).
     */
    public static final int UPLOAD_BLOCK_VALUES = 1 << 20;

    /**
     * Tensor {@code key} on {@code be} in {@code dtype}, read from the file and written a block at a time through
     * {@code buffer} (reused from one tensor to the next; an entry already in memory is written from its own array).
     */
    public Tensor upload(Backend be, String key, DType dtype, float[] buffer) {
        Entry e = entry(key);
        Tensor t = be.zeros(dtype, e.shape());
        try {
            e.forEachBlock(buffer, (first, values, count) -> be.write(t, first, values, 0, count));
        } catch (RuntimeException | Error x) {
            t.close();
            throw x;
        }
        return t;
    }

    /** Every tensor, loaded, in order. Fine for small models; large ones should go key by key. */
    public Map<String, HostTensor> tensors() {
        LinkedHashMap<String, HostTensor> out = new LinkedHashMap<>();
        entries.forEach((k, e) -> out.put(k, e.load()));
        return out;
    }

    /** Total number of parameters (from shapes; reads nothing). */
    public long parameterCount() {
        long n = 0;
        for (Entry e : entries.values()) n += HostTensor.numel(e.shape());
        return n;
    }
}
