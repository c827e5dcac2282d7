package ai.longrwkv.core.train;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.Precision;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.DType;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The memory of a training step, term by term, and its FLOPs: what `longrwkv plan` prints and what finetune and
 * state-tune check before they allocate anything. Every term counts the tensors the code allocates (the sizes of
 * {@code Rwkv5Model}'s activations and scratch, ChunkedBptt's boundary states, the optimizer's moments), so the total
 * is the backend's peak live bytes of a step; MemoryPlanTest holds it to the measured peak.
 */
public final class MemoryPlan {

    /** What is trained. */
    public enum Mode { FULL, LORA, STATE }

    /**
     * One run's shape. {@code loraTargets} = adapted projections per block (LoRA only), {@code precision} the
     * weight-matrix dtype ({@link Precision}).
     */
    public record Spec(ModelConfig cfg, Mode mode, DType precision, boolean gradCp, int ctxLen, int chunkLen, BpttMode bptt,
                       int loraRank, int loraTargets) {
        public Spec withChunkLen(int c) { return new Spec(cfg, mode, precision, gradCp, ctxLen, c, bptt, loraRank, loraTargets); }
        public Spec withGradCp(boolean on) { return new Spec(cfg, mode, precision, on, ctxLen, chunkLen, bptt, loraRank, loraTargets); }
        public Spec withPrecision(DType d) { return new Spec(cfg, mode, d, gradCp, ctxLen, chunkLen, bptt, loraRank, loraTargets); }
    }

    /** One term: a name, its bytes, and how it was counted. */
    public record Term(String name, long bytes, String detail) { }

    private final Spec spec;
    private final List<Term> terms = new ArrayList<>();
    private final double flopsPerStepToken;

    private MemoryPlan(Spec s) {
        this.spec = s;
        ModelConfig c = s.cfg();
        int L = c.nLayer(), C = c.nEmbd(), H = c.nHead(), N = c.headSize(), F = c.dimFfn(), V = c.vocabSize();
        long T = s.chunkLen();
        long matrices = 0, small = 0;
        for (ParamSpec p : ParamSpec.all(c)) {
            long n = numel(p.shape());
            if (Precision.isMatrix(p)) matrices += n; else small += n;
        }
        DType stored = s.mode() == Mode.FULL ? DType.F32 : s.precision();
        add("weights", matrices * stored.bytes() + small * 4, String.format(Locale.ROOT, "%,d matrix values in %s + %,d others in fp32%s",
                matrices, stored.label(), small, s.mode() == Mode.FULL && s.precision() == DType.BF16 ? " (the fp32 master)" : ""));
        if (s.mode() == Mode.FULL && s.precision() == DType.BF16) {
            add("bf16 working copy", matrices * 2, "the matrices the products read; refreshed from the master after each step");
        }
        long trained = switch (s.mode()) {
            case FULL -> matrices + small;
            case LORA -> (long) L * s.loraTargets() * s.loraRank() * loraInOut(c, s.loraTargets());
            case STATE -> (long) L * H * N * N;
        };
        if (s.mode() != Mode.FULL) add("trained parameters", trained * 4, s.mode() == Mode.LORA ? "LoRA A and B, fp32" : "the tuned state, fp32");
        add("gradients", trained * 4, "fp32, one per trained value");
        add("AdamW moments", trained * 8, "exp_avg and exp_avg_sq, fp32");
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
        add("backward scratch", scratch, "work buffers of one chunk's backward (14 [T, C] + 2 [T, F] + ...)");
        long sliceRows = Math.min(T, Math.max(1, Rwkv5Model.HEAD_SLICE_ELEMENTS / V));
        add("logits slice", sliceRows * V * 4, String.format(Locale.ROOT, "[%d, %d] fp32: the head and loss run in slices, never [%d, %d]", sliceRows, V, T, V));
        if (s.precision() == DType.BF16) {
            long block = Math.min((long) V * C, (long) ai.longrwkv.core.backend.cpu.CpuBackend.BF16_BLOCK_ELEMENTS);
            add("bf16 workspace", block * 4, "the bf16 block widened to fp32 for one sgemm call (CPU) / rounded operand (GPU)");
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
    }

    public static MemoryPlan of(Spec s) { return new MemoryPlan(s); }

    private static long loraInOut(ModelConfig c, int targets) {
        // the eight projections: five C x C in att, ffn.receptance C x C, ffn.key F x C, ffn.value C x F: mean (in + out)
        long all = 6L * 2 * c.nEmbd() + 2L * (c.nEmbd() + c.dimFfn());
        return targets >= 8 ? all / 8 : 2L * c.nEmbd();
    }

    private void add(String name, long bytes, String detail) { terms.add(new Term(name, bytes, detail)); }

    private static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) n *= d;
        return n;
    }

    public Spec spec() { return spec; }
    public List<Term> terms() { return List.copyOf(terms); }

    /** Predicted peak bytes of a step (the sum of the terms). */
    public long peakBytes() {
        long n = 0;
        for (Term t : terms) n += t.bytes();
        return n;
    }

    /**
     * Java memory a CPU run needs beside its tensors: a model is loaded one tensor at a time through an fp32 host copy,
     * and the old generation keeps about two of the largest before a full collection frees them; plus 1 GiB for the
     * rest of the JVM (the young generation the training loop's short-lived arrays use, compiled code, classes,
     * threads), a figure measured, not derived: 0.8-1.0 GiB on L12-C768 and 7B-shaped runs on the dev machine.
     * On a GPU this is host memory, not device memory.
     */
    public long hostHeapBytes() {
        long largest = 0;
        for (ParamSpec p : ParamSpec.all(spec.cfg())) largest = Math.max(largest, numel(p.shape()));
        return 2 * 4 * largest + (1L << 30);
    }

    /** What a CPU run's process holds at its peak: the tensors and the heap. */
    public long cpuProcessBytes() {
        return peakBytes() + hostHeapBytes();
    }

    /** FLOPs of one training sequence of ctx-len tokens. */
    public double flopsPerSequence() { return flopsPerStepToken * spec.ctxLen(); }

    /**
     * When the plan does not fit {@code capacity}: the largest chunk length (a divisor of ctx-len) that does, else the
     * options that do (--grad-cp, --precision bf16, both), as one line of advice; null when it fits.
     */
    public String advice(long capacity) {
        if (peakBytes() <= capacity) return null;
        int best = largestFittingChunk(spec, capacity);
        if (best > 0) return "use --chunk-len " + best + " (" + human(of(spec.withChunkLen(best)).peakBytes()) + ")";
        List<Spec> tries = new ArrayList<>();
        if (!spec.gradCp()) tries.add(spec.withGradCp(true));
        if (spec.precision() != DType.BF16) tries.add(spec.withPrecision(DType.BF16));
        if (!spec.gradCp() && spec.precision() != DType.BF16) tries.add(spec.withGradCp(true).withPrecision(DType.BF16));
        for (Spec t : tries) {
            String flags = (t.gradCp() && !spec.gradCp() ? " --grad-cp" : "") + (t.precision() != spec.precision() ? " --precision bf16" : "");
            MemoryPlan p = of(t);
            if (p.peakBytes() <= capacity) return "use" + flags + " (" + human(p.peakBytes()) + ")";
            int c = largestFittingChunk(t, capacity);
            if (c > 0) return "use" + flags + " --chunk-len " + c + " (" + human(of(t.withChunkLen(c)).peakBytes()) + ")";
        }
        // the smallest this run can be: --grad-cp, bf16, and the best chunk length (short chunks keep more boundary states)
        Spec least = spec.withGradCp(true).withPrecision(DType.BF16);
        long min = Long.MAX_VALUE;
        int minChunk = 1;
        for (int c = 1; c <= spec.ctxLen(); c++) {
            if (spec.ctxLen() % c != 0) continue;
            long p = of(least.withChunkLen(c)).peakBytes();
            if (p < min) { min = p; minChunk = c; }
        }
        return "nothing fits: the least this run needs is " + human(min) + " (--grad-cp --precision bf16 --chunk-len " + minChunk + ")"
                + (spec.mode() == Mode.FULL ? "; full finetuning of this model needs its optimizer state sharded over several GPUs, or LoRA / state tuning"
                : "; a smaller --ctx-len or model");
    }

    /** The largest divisor of ctx-len not above the spec's chunk length whose plan fits; 0 if none. */
    public static int largestFittingChunk(Spec s, long capacity) {
        for (int c = Math.min(s.chunkLen(), s.ctxLen()); c >= 1; c--) {
            if (s.ctxLen() % c == 0 && of(s.withChunkLen(c)).peakBytes() <= capacity) return c;
        }
        return 0;
    }

    /** The plan as a table: one line per term, the total, FLOPs, and the verdict against capacity (if > 0). */
    public String table(long capacity) {
        StringBuilder sb = new StringBuilder();
        for (Term t : terms) sb.append(String.format(Locale.ROOT, "  %-20s %10s   %s%n", t.name(), human(t.bytes()), t.detail()));
        sb.append(String.format(Locale.ROOT, "  %-20s %10s   the tensors at the step's peak (a GPU's memory, or native memory on the CPU)%n", "peak", human(peakBytes())));
        sb.append(String.format(Locale.ROOT, "  %-20s %10s   on the CPU backend: the peak + %s of Java heap (two of the largest tensors"
                + " in fp32 while loading, + 1 GiB of JVM)%n", "cpu process", human(cpuProcessBytes()), human(hostHeapBytes())));
        sb.append(String.format(Locale.ROOT, "  %-20s %10s   per %d-token sequence (%.2f TFLOP)%n", "compute", "", spec.ctxLen(), flopsPerSequence() / 1e12));
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
