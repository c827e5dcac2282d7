package ai.longrwkv.core.train;

import ai.longrwkv.core.dist.ZeroShards;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.Precision;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.DType;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

/**
 * The memory of a training step, term by term, and its FLOPs: what `longrwkv plan` prints and what finetune and
 * state-tune check before they allocate anything. Every term counts the tensors the code allocates (the sizes of
 * {@code Rwkv5Model}'s activations and scratch, ChunkedBptt's boundary states, the optimizer's moments), so the total
 * is the backend's peak live bytes of a step; MemoryPlanTest holds it to the measured peak.
 *
 * <p>Data-parallel runs ({@link Spec#ranks} GPUs): every GPU holds what its forward reads (the working weights, the
 * trained LoRA / state tensors) and its own sequences' states and activations, as one device does; ZeRO stage 1
 * shards the optimizer state by whole tensor ({@link ZeroShards}): the AdamW moments and, in mixed precision, the fp32
 * master of the matrices, only for the tensors a GPU owns; stage 2 also keeps the gradient accumulators only for owned
 * tensors, plus a scratch of two layers' gradients (and the head's and embedding's, each a bucket of its own) that
 * each chunk's backward reduces to the owners as soon as a layer is done. The plan is the GPU that owns the most.
 */
public final class MemoryPlan {

    /** What is trained. */
    public enum Mode { FULL, LORA, STATE }

    /**
     * One run's shape. {@code loraTargets} = adapted projections per block (LoRA only), {@code precision} the
     * weight-matrix dtype ({@link Precision}); {@code ranks} = GPUs training together (data parallel), {@code zero} the
     * ZeRO stage (0, 1, 2; no effect on one GPU), {@code sequencesPerRank} = sequences each GPU trains per optimizer step
     * (only the communication depends on it: stage 2 reduces once per chunk of each).
     */
    public record Spec(ModelConfig cfg, Mode mode, DType precision, boolean gradCp, int ctxLen, int chunkLen, BpttMode bptt,
                       int loraRank, int loraTargets, int ranks, int zero, int sequencesPerRank) {
        public Spec {
            if (ranks < 1) throw new IllegalArgumentException("the number of GPUs must be >= 1, got " + ranks);
            if (zero < 0 || zero > 2) throw new IllegalArgumentException("--zero must be 0, 1 or 2, got " + zero);
            if (sequencesPerRank < 1) throw new IllegalArgumentException("sequences per GPU must be >= 1, got " + sequencesPerRank);
        }

        /** One device (today's single-GPU or CPU run). */
        public Spec(ModelConfig cfg, Mode mode, DType precision, boolean gradCp, int ctxLen, int chunkLen, BpttMode bptt,
                    int loraRank, int loraTargets) {
            this(cfg, mode, precision, gradCp, ctxLen, chunkLen, bptt, loraRank, loraTargets, 1, 0, 1);
        }

        public Spec withChunkLen(int c) { return new Spec(cfg, mode, precision, gradCp, ctxLen, c, bptt, loraRank, loraTargets, ranks, zero, sequencesPerRank); }
        public Spec withGradCp(boolean on) { return new Spec(cfg, mode, precision, on, ctxLen, chunkLen, bptt, loraRank, loraTargets, ranks, zero, sequencesPerRank); }
        public Spec withPrecision(DType d) { return new Spec(cfg, mode, d, gradCp, ctxLen, chunkLen, bptt, loraRank, loraTargets, ranks, zero, sequencesPerRank); }
        /** The same run on {@code n} GPUs at ZeRO stage {@code z}, each GPU training {@code seqs} sequences per step. */
        public Spec withSharding(int n, int z, int seqs) { return new Spec(cfg, mode, precision, gradCp, ctxLen, chunkLen, bptt, loraRank, loraTargets, n, z, seqs); }
        public Spec withZero(int z) { return withSharding(ranks, z, sequencesPerRank); }

        /** The stage that takes effect: {@code zero} on several GPUs, 0 on one. */
        public int effectiveZero() { return ranks > 1 ? zero : 0; }
    }

    /**
     * One term: a name, its bytes on this GPU, and how it was counted; {@code shards} > 1 when the term is this GPU's
     * share of a whole sharded over that many GPUs (the shares over all GPUs add up to the whole).
     */
    public record Term(String name, long bytes, String detail, int shards) {
        public Term(String name, long bytes, String detail) { this(name, bytes, detail, 1); }

        /** The name with "/8" where the term is one GPU's share. */
        public String label() { return shards > 1 ? name + " /" + shards : name; }
    }

    /**
     * One collective of a data-parallel step, on each GPU: the bytes of the buffers given to it per optimizer step and
     * nccl-tests' bus factor for it (all-reduce 2(n-1)/n, reduce and broadcast 1: the bytes a GPU's busiest link carries
     * are bytes x factor), so that at a bus bandwidth B it takes about bytes x factor / B.
     */
    public record Collective(String name, long bytes, double busFactor, String detail) { }

    /** One trainable tensor, as the trainer lists them: its key, elements, block (-1: outside the blocks), whether a weight matrix. */
    private record TrainedTensor(String key, long elements, int layer, boolean matrix) { }

    private final Spec spec;
    private final int rank;
    private final long trainedValues;
    private final List<Term> terms = new ArrayList<>();
    private final List<Collective> collectives = new ArrayList<>();
    private final double flopsPerStepToken;

    /** {@code shards}: the ownership of the trainable tensors over the spec's ranks, or null at stage 0 / one GPU. */
    private MemoryPlan(Spec s, List<TrainedTensor> trainables, ZeroShards shards, int rank) {
        this.spec = s;
        this.rank = rank;
        ModelConfig c = s.cfg();
        int L = c.nLayer(), C = c.nEmbd(), H = c.nHead(), N = c.headSize(), F = c.dimFfn(), V = c.vocabSize();
        long T = s.chunkLen();
        long matrices = 0, small = 0;
        for (ParamSpec p : ParamSpec.all(c)) {
            long n = numel(p.shape());
            if (Precision.isMatrix(p)) matrices += n; else small += n;
        }
        int world = s.ranks(), zero = s.effectiveZero();
        boolean mixed = s.mode() == Mode.FULL && s.precision() == DType.BF16;
        long trained = 0;
        for (TrainedTensor t : trainables) trained += t.elements();
        this.trainedValues = trained;
        long owned = shards != null ? shards.elements(rank) : trained;
        DType stored = s.mode() == Mode.FULL ? DType.F32 : s.precision();
        if (mixed && zero >= 1) {
            // the forward reads the small parameters in fp32 and the matrices in bf16: the fp32 master of a matrix lives on its owner only
            add("weights", small * 4, String.format(Locale.ROOT, "%,d others in fp32, on every GPU (the forward reads them)", small));
            long ownedMatrices = ownedMatrixElements(trainables, shards, rank);
            addShare("fp32 master", ownedMatrices * 4, String.format(Locale.ROOT, "the fp32 master of the matrices this GPU owns: %,d of %,d values",
                    ownedMatrices, matrices), world);
        } else {
            add("weights", matrices * stored.bytes() + small * 4, String.format(Locale.ROOT, "%,d matrix values in %s + %,d others in fp32%s",
                    matrices, stored.label(), small, mixed ? " (the fp32 master)" : ""));
        }
        if (mixed) {
            add("bf16 working copy", matrices * 2, "the matrices the products read; refreshed from the master after each step");
        }
        if (s.mode() != Mode.FULL) add("trained parameters", trained * 4, s.mode() == Mode.LORA ? "LoRA A and B, fp32" : "the tuned state, fp32");
        if (zero == 2) {
            // LoRA adapters and tuned states are not reported by the blocks' backward: their gradients stay whole, reduced at the step end
            long accumulators = 0;
            for (TrainedTensor t : trainables) {
                boolean whole = DataParallel.reducedAtStepEnd(t.key());
                if (whole || shards == null || shards.owner(t.key()) == rank) accumulators += t.elements();
            }
            if (s.mode() == Mode.FULL) {
                addShare("gradients", accumulators * 4, String.format(Locale.ROOT, "fp32 accumulators of the tensors this GPU owns: %,d of %,d values",
                        accumulators, trained), world);
            } else {
                add("gradients", accumulators * 4, "fp32, one per trained value");   // LoRA adapters and tuned states: whole, reduced once per step
            }
            // as the trainer allocates it: for a block parameter this GPU does not own, one tensor per kind and parity of
            // the block (shared by the even blocks, and by the odd); for one outside the blocks, its own
            long layer = 0, outside = 0;
            Map<String, Long> byKindAndParity = new HashMap<>();
            for (TrainedTensor t : trainables) {
                if (DataParallel.reducedAtStepEnd(t.key()) || shards != null && shards.owner(t.key()) == rank) continue;
                if (t.layer() < 0) outside += t.elements();
                else byKindAndParity.put(t.key().substring(t.key().indexOf('.', "blocks.".length())) + "/" + (t.layer() % 2), t.elements());
            }
            for (long n : byKindAndParity.values()) layer += n;
            add("gradient scratch", (layer + outside) * 4, String.format(Locale.ROOT, "fp32: the other GPUs' tensors of two blocks (%,d values)%s,"
                    + " reduced to their owners as each block's backward ends", layer,
                    outside > 0 ? String.format(Locale.ROOT, " + of the embedding, head and outer norms (%,d)", outside) : ""));
        } else {
            add("gradients", trained * 4, "fp32, one per trained value");
        }
        if (zero >= 1) {
            addShare("AdamW moments", owned * 8, String.format(Locale.ROOT, "exp_avg and exp_avg_sq of the tensors this GPU owns (%,d of %,d values), fp32",
                    owned, trained), world);
        } else {
            add("AdamW moments", trained * 8, "exp_avg and exp_avg_sq, fp32");
        }
        int chunks = (int) ((s.ctxLen() + T - 1) / T);
        long state = RwkvState.bytes(c);
        int states = (s.bptt() == BpttMode.FULL ? chunks : 1) + 3;
        add("states", (long) states * state, String.format(Locale.ROOT, "%d x %s: %s + the initial state, its gradient and the chunk's start",
                states, human(state), s.bptt() == BpttMode.FULL ? chunks + " chunk-boundary states (ctx / chunk)" : "the running state"));
        // one chunk's activations (Rwkv5Model.Activations kept for backward), in bytes; r, k, v in the WKV's input dtype
        int wkvBytes = s.precision().bytes();
        long perLayer = 4 * (7 * T * C + T * F + 4 * T) + 3 * T * C * wkvBytes;   // xx1 gPre y x1 xx2 rPre vOut, kPre, mean/rstd; r k v
        long acts = 4 * (3 * T * C + 4 * T);                                        // embRows, xFinal, lnOut and their norm statistics
        if (s.gradCp()) {
            acts += 4 * L * T * C + perLayer;          // each layer's input, one working set
        } else {
            acts += L * (4 * T * C + perLayer);
        }
        add("activations", acts, s.gradCp()
                ? String.format(Locale.ROOT, "--grad-cp: %d layer inputs [%d, %d] + one layer's working set", L, T, C)
                : String.format(Locale.ROOT, "%d layers x (8 [%d, %d] fp32 + r, k, v in %s + [%d, %d] fp32)", L, T, C, s.precision().label(), T, F));
        // backward scratch (Rwkv5Model.Scratch with backward, and dx)
        long scratch = 4 * (14 * T * C + 2 * T * F + 2 * T * H + 3L * H * N + 2L * C + T * C);
        if (s.gradCp()) scratch += 4 * (2L * C + (long) H * N * N + T * C);   // the layer's state copies and the recomputed output
        if (s.precision() == DType.BF16) scratch += 4 * T * C + 2L * H * N;   // the fp32 projection before rounding into r, k, v; u in bf16
        if (s.precision() == DType.BF16 && s.mode() == Mode.FULL) scratch += 2L * T * (C + F);   // dOut and x rounded for a trained bf16 matrix's products
        add("backward scratch", scratch, "work buffers of one chunk's backward (14 [T, C] + 2 [T, F] + ...)");
        long sliceRows = Math.min(T, Math.max(1, Rwkv5Model.HEAD_SLICE_ELEMENTS / V));
        add("logits slice", sliceRows * V * 4, String.format(Locale.ROOT, "[%d, %d] fp32: the head and loss run in slices, never [%d, %d]", sliceRows, V, T, V));
        if (s.precision() == DType.BF16) {
            // a product with a bf16 operand rounds its fp32 operand into a bf16 workspace (GPU, and a CPU with bf16
            // instructions: oneDNN), the largest being the logits slice's gradient in the head's backward; a CPU
            // without bf16 instructions widens the bf16 weight into the fp32 sgemm a block at a time instead
            if (ai.longrwkv.core.backend.cpu.CpuBackend.defaultBf16Products() == ai.longrwkv.core.backend.cpu.CpuBackend.Bf16Products.WIDEN) {
                long block = Math.min((long) V * C, (long) ai.longrwkv.core.backend.cpu.CpuBackend.BF16_BLOCK_ELEMENTS);
                add("bf16 workspace", block * 4, "a bf16 weight block widened to fp32 for one sgemm call (CPU without bf16 instructions)");
            } else {
                add("bf16 workspace", sliceRows * V * 2, String.format(Locale.ROOT, "[%d, %d] bf16: the logits slice's gradient rounded for the head's backward product", sliceRows, V));
            }
        }
        if (s.mode() == Mode.LORA) add("LoRA temporaries", 2 * T * s.loraRank() * 4, "x A^T and dOut B of one projection");
        // FLOPs per token of a step: 2 per matrix value per token for each pass that multiplies by it
        double head = (double) V * C, body = matrices - 2.0 * V * C;
        double fwd = 2 * (body + head);
        double sweep = s.bptt() == BpttMode.FULL ? 2 * body * (chunks - 1) / (double) chunks : 0;   // boundary-state sweep, no head
        double dx = 2 * (body + head);
        double dw = s.mode() == Mode.FULL ? 2 * (body + head) : 0;
        double cp = s.gradCp() ? 2 * body : 0;
        // LoRA: x A^T and u B^T forward (2 r (in + out) per adapter), four products of the same size backward
        double lora = s.mode() == Mode.LORA ? 2.0 * trained * (3 + (sweep > 0 ? (chunks - 1) / (double) chunks : 0) + (s.gradCp() ? 1 : 0)) : 0;
        this.flopsPerStepToken = fwd + sweep + dx + dw + cp + lora;
        // what each GPU hands to the collectives per optimizer step
        if (world > 1) {
            long gradients = trained * 4;
            if (zero == 0) {
                collectives.add(new Collective("gradient all-reduce", gradients, 2.0 * (world - 1) / world,
                        "the fp32 gradients summed on every GPU, once per step"));
            } else {
                long times = zero == 2 ? (long) chunks * s.sequencesPerRank() : 1;
                collectives.add(new Collective("gradient reduce", gradients * times, 1, zero == 2
                        ? String.format(Locale.ROOT, "each chunk's fp32 gradients summed on their owners: %s x %d chunks x %d sequence%s",
                                human(gradients), chunks, s.sequencesPerRank(), s.sequencesPerRank() > 1 ? "s" : "")
                        : "each fp32 gradient summed on its owner, once per step"));
                collectives.add(new Collective("weight broadcast", mixed ? matrices * 2 + small * 4 : trained * 4, 1, mixed
                        ? "each owner's updated values to every GPU (matrices in bf16, others in fp32), once per step"
                        : "each owner's updated fp32 values to every GPU, once per step"));
            }
        }
    }

    /** The plan of one GPU: on several GPUs with ZeRO, the one with the highest peak (the peak of the group). */
    public static MemoryPlan of(Spec s) {
        List<TrainedTensor> trainables = trainedTensors(s);
        ZeroShards shards = shards(s, trainables);
        return new MemoryPlan(s, trainables, shards, shards == null ? 0 : fullestRank(s, trainables, shards));
    }

    /** The plan of GPU {@code rank} (0 .. ranks-1); every GPU's is the same at stage 0. */
    public static MemoryPlan forRank(Spec s, int rank) {
        if (rank < 0 || rank >= s.ranks()) throw new IllegalArgumentException("rank " + rank + " of " + s.ranks());
        List<TrainedTensor> trainables = trainedTensors(s);
        return new MemoryPlan(s, trainables, shards(s, trainables), rank);
    }

    /**
     * The tensors a run trains, by the trainer's keys and sizes (what {@link ZeroShards#assign} shards): every model
     * parameter (full), the A and B of each adapted projection (LoRA; with fewer than eight targets, each an average
     * C x C projection, as the plan cannot know which), or each block's time_state (state tuning).
     */
    public static List<ZeroShards.Entry> trainableTensors(Spec s) {
        List<ZeroShards.Entry> out = new ArrayList<>();
        for (TrainedTensor t : trainedTensors(s)) out.add(new ZeroShards.Entry(t.key(), t.elements()));
        return out;
    }

    private static List<TrainedTensor> trainedTensors(Spec s) {
        ModelConfig c = s.cfg();
        List<TrainedTensor> out = new ArrayList<>();
        switch (s.mode()) {
            case FULL -> {
                for (ParamSpec p : ParamSpec.all(c)) out.add(new TrainedTensor(p.key(), numel(p.shape()), p.layer(), Precision.isMatrix(p)));
            }
            case LORA -> {
                Map<String, int[]> shapes = new HashMap<>();
                for (ParamSpec p : ParamSpec.all(c)) shapes.put(p.key(), p.shape());
                long r = s.loraRank();
                for (int l = 0; l < c.nLayer(); l++) {
                    if (s.loraTargets() >= 8) {
                        for (String target : new TreeSet<>(LoraSet.TARGETS.keySet())) {
                            String weight = "blocks." + l + "." + LoraSet.TARGETS.get(target);
                            int[] outIn = shapes.get(weight);
                            String base = weight.substring(0, weight.length() - ".weight".length());
                            out.add(new TrainedTensor(base + ".lora_A", r * outIn[1], l, false));
                            out.add(new TrainedTensor(base + ".lora_B", outIn[0] * r, l, false));
                        }
                    } else {
                        for (int j = 0; j < s.loraTargets(); j++) {
                            out.add(new TrainedTensor("blocks." + l + ".target" + j + ".lora_A", r * c.nEmbd(), l, false));
                            out.add(new TrainedTensor("blocks." + l + ".target" + j + ".lora_B", c.nEmbd() * r, l, false));
                        }
                    }
                }
            }
            case STATE -> {
                for (int l = 0; l < c.nLayer(); l++) {
                    out.add(new TrainedTensor("blocks." + l + ".att.time_state", (long) c.nHead() * c.headSize() * c.headSize(), l, false));
                }
            }
        }
        return out;
    }

    private static ZeroShards shards(Spec s, List<TrainedTensor> trainables) {
        if (s.effectiveZero() == 0) return null;
        List<ZeroShards.Entry> entries = new ArrayList<>();
        for (TrainedTensor t : trainables) entries.add(new ZeroShards.Entry(t.key(), t.elements()));
        return ZeroShards.assign(entries, s.ranks());
    }

    private static long ownedMatrixElements(List<TrainedTensor> trainables, ZeroShards shards, int rank) {
        long n = 0;
        for (TrainedTensor t : trainables) if (t.matrix() && shards.owner(t.key()) == rank) n += t.elements();
        return n;
    }

    /** The rank whose sharded terms are the largest (the lowest among equals): the group's peak. */
    /** The rank whose peak is the highest (the lowest such rank): what a run must fit. */
    private static int fullestRank(Spec s, List<TrainedTensor> trainables, ZeroShards shards) {
        int best = 0;
        long bestPeak = -1;
        for (int r = 0; r < s.ranks(); r++) {
            long peak = new MemoryPlan(s, trainables, shards, r).peakBytes();
            if (peak > bestPeak) {
                best = r;
                bestPeak = peak;
            }
        }
        return best;
    }

    private void add(String name, long bytes, String detail) { terms.add(new Term(name, bytes, detail)); }

    private void addShare(String name, long bytes, String detail, int shards) { terms.add(new Term(name, bytes, detail, shards)); }

    private static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) n *= d;
        return n;
    }

    public Spec spec() { return spec; }
    public List<Term> terms() { return List.copyOf(terms); }

    /** The GPU this plan is of (0 on one GPU). */
    public int rank() { return rank; }

    /** Values the run trains, over all GPUs together (the size of its checkpoint's trainable tensors). */
    public long trainedValues() { return trainedValues; }

    /** The collectives of a step, per GPU (none on one GPU). */
    public List<Collective> collectives() { return List.copyOf(collectives); }

    /** Seconds the collectives of a step take at a bus bandwidth of {@code bytesPerSecond}: bytes x bus factor / bandwidth. */
    public double collectiveSeconds(double bytesPerSecond) {
        double s = 0;
        for (Collective c : collectives) s += c.bytes() * c.busFactor() / bytesPerSecond;
        return s;
    }

    /** Predicted peak bytes of a step (the sum of the terms). */
    public long peakBytes() {
        long n = 0;
        for (Term t : terms) n += t.bytes();
        return n;
    }

    /**
     * The young generation's most, {@code -XX:MaxNewSize=128m} in scripts/jvm-opts.sh (which every command gets from
     * scripts/longrwkv): the training loop's short-lived arrays fill it between collections, so all of it is resident.
     * Without the cap ParallelGC grew it to 0.4-0.9 GiB on the same runs.
     */
    public static final long JVM_YOUNG_GEN_BYTES = 128L << 20;

    /**
     * What else a CPU process keeps resident beside its tensors and the young generation, measured, not derived: the
     * JVM's own memory (compiled code ~13 MiB, metaspace and classes ~22 MiB, the GC's tables, thread stacks, arenas),
     * the mapped libraries (libjvm, OpenBLAS, JavaCPP: ~30 MiB of RssFile), OpenBLAS's work buffers, the old
     * generation's live objects (~6 MiB: the dataset index, the loader's 4 MiB block buffer) and malloc's slack.
     * Measured as peak RSS (VmHWM) - backend peak bytes - {@link #JVM_YOUNG_GEN_BYTES} on ten one-step runs at ctx 2048,
     * chunk 1024 (state-tune of L6-C512, L12-C768, L24-C2048 in bf16 with and without --grad-cp, of L12-C768 in fp32;
     * full finetunes of L6-C512 in bf16 and fp32): 98 to 189 MiB, with no trend in the model's size (L24-C2048 114 and
     * 158 MiB), the full finetunes highest (177-189 MiB); the printed tensor peak's rounding (10 MiB at GiB scale)
     * is part of that spread. 160 MiB puts all ten within -1% to +7% of their RSS. Not counted: a larger dataset's
     * index (12 bytes per document). To re-measure: {@code /usr/bin/time -v longrwkv state-tune ...} and take its
     * maximum resident size minus the "peak tensor memory" the command prints minus 128 MiB.
     */
    public static final long JVM_BASE_BYTES = 160L << 20;

    /**
     * Host memory a CPU run holds beside its tensors: the young generation ({@link #JVM_YOUNG_GEN_BYTES}) and the
     * rest of the JVM ({@link #JVM_BASE_BYTES}), the same for every model. Nothing scales with the model because the
     * model is loaded a block at a time ({@link ai.longrwkv.core.model.ModelWeights#upload}: before, each tensor
     * passed through a whole fp32 Java array and the old generation kept the dead ones until a full collection,
     * 2.9 GiB at L24-C2048). On a GPU this is host memory, not device memory.
     */
    public long hostHeapBytes() {
        return JVM_YOUNG_GEN_BYTES + JVM_BASE_BYTES;
    }

    /** What a CPU run's process holds at its peak: the tensors and the heap. */
    public long cpuProcessBytes() {
        return peakBytes() + hostHeapBytes();
    }

    /** FLOPs of one training sequence of ctx-len tokens. */
    public double flopsPerSequence() { return flopsPerStepToken * spec.ctxLen(); }

    /** The most GPUs the advice considers. */
    static final int MAX_RANKS = 1024;

    /**
     * When the plan does not fit {@code capacity} (per GPU): the largest chunk length (a divisor of ctx-len) that does,
     * else the options that do, cheapest first: on several GPUs a higher --zero stage, then --grad-cp, --precision bf16,
     * both (each with the largest chunk length that fits); else the least this run needs on these GPUs and how many
     * GPUs with --zero 2 it fits on; as one line of advice; null when it fits.
     */
    public String advice(long capacity) {
        if (peakBytes() <= capacity) return null;
        String fix = firstFit(spec, capacity);
        if (fix != null) return fix;
        // the smallest this run can be here: --grad-cp, bf16, --zero 2, and the best chunk length (short chunks keep more boundary states)
        Spec least = spec.withGradCp(true).withPrecision(DType.BF16);
        if (spec.ranks() > 1) least = least.withZero(2);
        long min = Long.MAX_VALUE;
        int minChunk = 1;
        for (int c = 1; c <= spec.ctxLen(); c++) {
            if (spec.ctxLen() % c != 0) continue;
            long p = of(least.withChunkLen(c)).peakBytes();
            if (p < min) { min = p; minChunk = c; }
        }
        String nothing = "nothing fits" + (spec.ranks() > 1 ? " on " + spec.ranks() + " GPUs" : "") + ": the least this run needs is " + human(min)
                + (spec.ranks() > 1 ? " per GPU" : "") + " (--grad-cp --precision bf16" + (spec.ranks() > 1 ? " --zero 2" : "") + " --chunk-len " + minChunk + ")";
        for (int n = Math.max(2, 2 * spec.ranks()); n <= MAX_RANKS; n *= 2) {
            String more = firstFit(spec.withSharding(n, 2, spec.sequencesPerRank()), capacity);
            if (more != null) return nothing + "; on " + n + " GPUs" + (spec.ranks() > 1 ? " (--devices x --nnodes)" : "") + ": " + more;
        }
        if (spec.mode() != Mode.FULL) return nothing + "; a smaller --ctx-len or model";
        // tensors are owned whole, so more GPUs cannot shrink a GPU below the state of the largest tensor
        long largest = 0;
        boolean largestIsMatrix = false;
        for (TrainedTensor t : trainedTensors(spec)) {
            if (t.elements() > largest) { largest = t.elements(); largestIsMatrix = t.matrix(); }
        }
        long largestState = largest * (8 + 4 + (spec.precision() == DType.BF16 && largestIsMatrix ? 4 : 0));
        return nothing + "; not even --zero 2 on " + MAX_RANKS + " GPUs fits full finetuning of this model (each GPU holds the weights its"
                + " forward reads and its activations whole, and tensors are sharded whole: the largest one's owner keeps " + human(largestState)
                + " of its gradient and optimizer state): LoRA or state tuning";
    }

    /**
     * The first of base's variants that fits, cheapest first, as advice relative to this plan's spec: as base, with
     * --grad-cp, with --precision bf16, with both; within each, on several GPUs, each --zero stage from base's up to 2
     * as it is, then each with the largest chunk length that fits. Null if none does.
     */
    private String firstFit(Spec base, long capacity) {
        List<Spec> options = new ArrayList<>();
        options.add(base);
        if (!base.gradCp()) options.add(base.withGradCp(true));
        if (base.precision() != DType.BF16) options.add(base.withPrecision(DType.BF16));
        if (!base.gradCp() && base.precision() != DType.BF16) options.add(base.withGradCp(true).withPrecision(DType.BF16));
        int lastZero = base.ranks() > 1 ? 2 : base.zero();
        for (Spec o : options) {
            for (int z = base.zero(); z <= lastZero; z++) {
                MemoryPlan p = of(o.withZero(z));
                if (p.peakBytes() <= capacity) return advise(o.withZero(z), p);
            }
            for (int z = base.zero(); z <= lastZero; z++) {
                int c = largestFittingChunk(o.withZero(z), capacity);
                if (c > 0) return advise(o.withZero(z).withChunkLen(c), of(o.withZero(z).withChunkLen(c)));
            }
        }
        return null;
    }

    /** "use --grad-cp --zero 2 --chunk-len 2048 (61.20 GiB per GPU)": the flags of {@code t} that differ from this plan's. */
    private String advise(Spec t, MemoryPlan p) {
        String flags = (t.ranks() != spec.ranks() && spec.ranks() == 1 ? " --devices " + t.ranks() : "")
                + (t.effectiveZero() != spec.effectiveZero() ? " --zero " + t.zero() : "")
                + (t.gradCp() && !spec.gradCp() ? " --grad-cp" : "") + (t.precision() != spec.precision() ? " --precision bf16" : "")
                + (t.chunkLen() != spec.chunkLen() ? " --chunk-len " + t.chunkLen() : "");
        return "use" + (flags.isEmpty() ? " it as it is" : flags) + " (" + human(p.peakBytes()) + (t.ranks() > 1 ? " per GPU" : "") + ")";
    }

    /** The largest divisor of ctx-len not above the spec's chunk length whose plan fits; 0 if none. */
    public static int largestFittingChunk(Spec s, long capacity) {
        for (int c = Math.min(s.chunkLen(), s.ctxLen()); c >= 1; c--) {
            if (s.ctxLen() % c == 0 && of(s.withChunkLen(c)).peakBytes() <= capacity) return c;
        }
        return 0;
    }

    /** The plan as a table: one line per term, the total, FLOPs, and the verdict against capacity (if > 0). */
    public String table(long capacity) { return table(capacity, 0); }

    /**
     * The plan as a table, with the collectives of a multi-GPU step and, if {@code busBytesPerSecond} > 0, the time
     * they take at that bus bandwidth.
     */
    public String table(long capacity, double busBytesPerSecond) {
        StringBuilder sb = new StringBuilder();
        for (Term t : terms) sb.append(String.format(Locale.ROOT, "  %-20s %10s   %s%n", t.label(), human(t.bytes()), t.detail()));
        if (spec.ranks() > 1) {
            sb.append(String.format(Locale.ROOT, "  %-20s %10s   the tensors at the step's peak on one GPU (%s)%n", "peak per GPU", human(peakBytes()),
                    spec.effectiveZero() > 0 ? "GPU " + rank + " of " + spec.ranks() + ", the fullest" : "every GPU of " + spec.ranks() + " alike"));
        } else {
            sb.append(String.format(Locale.ROOT, "  %-20s %10s   the tensors at the step's peak (a GPU's memory, or native memory on the CPU)%n", "peak", human(peakBytes())));
            sb.append(String.format(Locale.ROOT, "  %-20s %10s   on the CPU backend: the peak + %s of JVM (a %s young generation + %s"
                    + " of JVM, libraries and buffers, measured)%n", "cpu process", human(cpuProcessBytes()), human(hostHeapBytes()),
                    human(JVM_YOUNG_GEN_BYTES), human(JVM_BASE_BYTES)));
        }
        sb.append(String.format(Locale.ROOT, "  %-20s %10s   per %d-token sequence (%.2f TFLOP)%n", "compute", "", spec.ctxLen(), flopsPerSequence() / 1e12));
        for (Collective c : collectives) {
            sb.append(String.format(Locale.ROOT, "  %-20s %10s   per GPU per step: %s%n", c.name(), human(c.bytes()), c.detail()));
        }
        if (!collectives.isEmpty() && busBytesPerSecond > 0) {
            sb.append(String.format(Locale.ROOT, "  %-20s %10s   per step at an assumed bus bandwidth of %.0f GB/s: bytes x nccl-tests' bus factor"
                    + " (all-reduce %.2f, reduce and broadcast 1) / bandwidth; no latency, no overlap with compute%n", "collective time",
                    String.format(Locale.ROOT, "%.2f s", collectiveSeconds(busBytesPerSecond)), busBytesPerSecond / 1e9, 2.0 * (spec.ranks() - 1) / spec.ranks()));
        }
        if (capacity > 0) {
            String a = advice(capacity);
            sb.append(String.format(Locale.ROOT, "  %-20s %10s   %s%n", "device memory", human(capacity), a == null ? "fits" : "does not fit: " + a));
        }
        return sb.toString();
    }

    /** 1.5 GiB, 300.0 MiB, 12.0 KiB. */
    public static String human(long bytes) {
        if (bytes >= 1L << 30) return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
        if (bytes >= 1L << 20) return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
        return String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0);
    }

    /** Parses 80GiB, 16GB, 16G, 500MiB, 1024 (bytes): G/GB/GiB are all 2^30 (as GPU memory is quoted), M 2^20, K 2^10. */
    public static long parseSize(String option, String text) {
        String t = text.trim().toLowerCase(Locale.ROOT).replace(" ", "");
        long unit = 1;
        for (String[] u : new String[][]{{"gib", "30"}, {"gb", "30"}, {"g", "30"}, {"mib", "20"}, {"mb", "20"}, {"m", "20"}, {"kib", "10"}, {"kb", "10"}, {"k", "10"}, {"b", "0"}}) {
            if (t.endsWith(u[0])) {
                unit = 1L << Integer.parseInt(u[1]);
                t = t.substring(0, t.length() - u[0].length());
                break;
            }
        }
        try {
            double v = Double.parseDouble(t);
            if (!(v > 0) || !Double.isFinite(v)) throw new NumberFormatException();
            return (long) (v * unit);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + " must be a memory size such as 80GiB, 16GB or 500MiB, got '" + text + "'");
        }
    }

    /**
     * Memory this process may still use on this machine: MemAvailable from /proc/meminfo (what Linux can give without
     * swapping), or -1 where that is unknown.
     */
    public static long availableMemory() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (java.io.IOException | RuntimeException ignored) {
            // unknown
        }
        return -1;
    }
}
