package ai.longrwkv.core.model;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * LoRA adapters on Linear weights: for an adapted {@code X.weight} [out, in], {@code X.lora_A} [r, in] (Kaiming-uniform
 * init, as RWKV-PEFT / peft do) and {@code X.lora_B} [out, r] (zeros), so y = x W^T + (alpha / r) (x A^T) B^T and the
 * adapter starts as the identity change. Gradients of A and B live here too.
 */
public final class LoraSet implements AutoCloseable {
    /** The targets users name and the weight keys they stand for in each block. */
    public static final Map<String, String> TARGETS = Map.of(
            "att.receptance", "att.receptance.weight", "att.key", "att.key.weight", "att.value", "att.value.weight",
            "att.gate", "att.gate.weight", "att.output", "att.output.weight",
            "ffn.key", "ffn.key.weight", "ffn.value", "ffn.value.weight", "ffn.receptance", "ffn.receptance.weight");

    public static final class Adapter {
        public final Tensor a, b, gradA, gradB;

        Adapter(Tensor a, Tensor b, Tensor gradA, Tensor gradB) {
            this.a = a;
            this.b = b;
            this.gradA = gradA;
            this.gradB = gradB;
        }
    }

    private final Backend be;
    private final int rank;
    private final double alpha;
    private final LinkedHashMap<String, Adapter> byWeightKey = new LinkedHashMap<>();

    private LoraSet(Backend be, int rank, double alpha) {
        if (rank < 1) throw new IllegalArgumentException("--lora-r must be >= 1, got " + rank);
        this.be = be;
        this.rank = rank;
        this.alpha = alpha;
    }

    /**
     * New adapters on the given targets (e.g. "att.receptance", "ffn.key", or "all") of every block, deterministic
     * for a seed.
     */
    public static LoraSet create(Backend be, ModelConfig cfg, List<String> targets, int rank, double alpha, long seed) {
        LoraSet set = new LoraSet(be, rank, alpha);
        List<String> names = targets.contains("all") ? List.copyOf(new java.util.TreeSet<>(TARGETS.keySet())) : targets;
        for (String t : names) {
            if (!TARGETS.containsKey(t)) {
                throw new IllegalArgumentException("unknown LoRA target '" + t + "'; choose from " + new java.util.TreeSet<>(TARGETS.keySet()) + " or all");
            }
        }
        Map<String, int[]> shapes = new LinkedHashMap<>();
        for (ParamSpec p : ParamSpec.all(cfg)) shapes.put(p.key(), p.shape());
        for (int l = 0; l < cfg.nLayer(); l++) {
            for (String t : names) {
                String key = "blocks." + l + "." + TARGETS.get(t);
                int[] shape = shapes.get(key);
                int out = shape[0], in = shape[1];
                // kaiming_uniform_(a=sqrt(5)) on [r, in] gives U(-1/sqrt(in), 1/sqrt(in))
                Random rnd = new Random(seed * 31 + key.hashCode());
                HostTensor a = HostTensor.zeros(rank, in);
                double bound = 1.0 / Math.sqrt(in);
                for (int i = 0; i < a.size(); i++) a.data()[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
                set.byWeightKey.put(key, new Adapter(be.upload(a), be.zeros(out, rank), be.zeros(rank, in), be.zeros(out, rank)));
            }
        }
        return set;
    }

    /** Adapters from tensors named {@code X.lora_A} / {@code X.lora_B} (an adapter file). */
    public static LoraSet fromTensors(Backend be, Map<String, HostTensor> tensors, double alpha) {
        Integer rank = null;
        LoraSet set = null;
        for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
            if (!e.getKey().endsWith(".lora_A")) continue;
            String base = e.getKey().substring(0, e.getKey().length() - ".lora_A".length());
            HostTensor a = e.getValue(), b = tensors.get(base + ".lora_B");
            if (b == null) throw new IllegalArgumentException("adapter has '" + e.getKey() + "' but no '" + base + ".lora_B'");
            if (rank == null) {
                rank = a.dim(0);
                set = new LoraSet(be, rank, alpha);
            }
            if (a.dim(0) != rank || b.dim(1) != rank) throw new IllegalArgumentException("adapter '" + base + "' has rank " + a.dim(0) + ", others " + rank);
            set.byWeightKey.put(base + ".weight", new Adapter(be.upload(a), be.upload(b), be.zeros(a.shape()), be.zeros(b.shape())));
        }
        if (set == null) throw new IllegalArgumentException("no '.lora_A' tensors found in the adapter");
        return set;
    }

    public int rank() { return rank; }
    public double alpha() { return alpha; }
    public float scale() { return (float) (alpha / rank); }

    /** The adapter of a weight key such as "blocks.3.att.key.weight", or null. */
    public Adapter get(String weightKey) { return byWeightKey.get(weightKey); }

    public Map<String, Adapter> adapters() { return java.util.Collections.unmodifiableMap(byWeightKey); }

    /** Adapter tensors named as RWKV-PEFT saves them: X.lora_A, X.lora_B. */
    public Map<String, HostTensor> toHost() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        byWeightKey.forEach((k, ad) -> {
            String base = k.substring(0, k.length() - ".weight".length());
            out.put(base + ".lora_A", be.download(ad.a));
            out.put(base + ".lora_B", be.download(ad.b));
        });
        return out;
    }

    /** W += (alpha / r) B A for every adapted weight. */
    public void mergeInto(ParamSet params) {
        byWeightKey.forEach((k, ad) -> be.matmul(ad.b, false, ad.a, false, params.get(k), scale(), 1f));
    }

    @Override
    public void close() {
        for (Adapter ad : byWeightKey.values()) {
            ad.a.close();
            ad.b.close();
            ad.gradA.close();
            ad.gradB.close();
        }
    }
}
