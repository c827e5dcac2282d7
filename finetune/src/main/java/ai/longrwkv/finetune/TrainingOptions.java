package ai.longrwkv.finetune;

import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.CarryState;
import ai.longrwkv.core.train.LrSchedule;
import ai.longrwkv.core.train.Trainer;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;

/**
 * The data and loop flags every training command shares (picocli mixin). Learning-rate defaults differ between
 * finetuning and state tuning, so those flags live in each command.
 */
public final class TrainingOptions {
    @Option(names = "--data", required = true, description = "Dataset prefix from `longrwkv data build | pack | synth` (PREFIX.bin/.idx[/.mask]).")
    public Path data;

    /** The longest training sequence (the whole run's length unless --ctx-len is a schedule). */
    public int ctxLen;

    /** --ctx-len as given; null: ctxLen for the whole run. */
    public LengthSchedule ctxSchedule;

    @Option(names = "--ctx-len", required = true, paramLabel = "L|L:STEPS,...",
            description = "Tokens per training sequence (e.g. 131072), or a length curriculum: 512:2000,1k/2k:1000,2k = 512 for 2000 steps, "
                    + "then 1k or 2k drawn per sequence for 1000 steps, then 2k (with documents sampling: documents of at most that length).")
    void ctxLen(String spec) {
        ctxSchedule = LengthSchedule.parse(spec);
        ctxLen = ctxSchedule.longest();
    }

    /** The length schedule: --ctx-len's, or ctxLen throughout. */
    public LengthSchedule schedule() {
        return ctxSchedule != null && ctxSchedule.longest() == ctxLen ? ctxSchedule : LengthSchedule.constant(ctxLen);
    }

    @Option(names = "--carry-state", defaultValue = "off", paramLabel = "off|stop|flow",
            description = "State passing: each sequence starts from the final state of the one before it (use --sampling stream for consecutive text)."
                    + " stop: no gradient crosses; flow: within a step the gradient flows back across (needs --bptt full). State tuning carries"
                    + " within a step only, each step starting from the tuned state (default: ${DEFAULT-VALUE}).")
    public String carryState;

    @Option(names = "--carry-across-documents", description = "With --carry-state: also start a new document from the state the one before left"
            + " (Buitrago and Gu's state passing; default: only a later piece of the same document, or the next slice of --sampling stream,"
            + " continues from it). Documents longer than --ctx-len are trained as consecutive pieces when the state is carried.")
    public boolean carryAcrossDocuments;

    @Option(names = "--prefix-grad", defaultValue = "none", paramLabel = "none|stationary",
            description = "With --carry-state stop --bptt full: stationary estimates the gradient the stop cuts off, for a piece that continues a"
                    + " document whose earlier part is like the piece's own text before its trained tokens (filler before a question): at the last"
                    + " chunk boundary --prefix-grad-margin tokens before the first trained token, each key channel's state gradient is multiplied by"
                    + " its decayed count of writes over the whole document so far over that over the piece, (1-w^(b+P))/(1-w^b): (b+P)/b where"
                    + " it never decays, 1 where it forgets within the piece. An approximation, exact only for stationary text (default: ${DEFAULT-VALUE}).")
    public String prefixGrad;

    @Option(names = "--prefix-grad-margin", defaultValue = "64", paramLabel = "TOKENS",
            description = "With --prefix-grad stationary: tokens before the first trained one that are not like the prefix (the question); the"
                    + " estimate starts at the last chunk boundary before them (default: ${DEFAULT-VALUE}).")
    public int prefixGradMargin;

    @Option(names = "--state-growth-penalty", defaultValue = "0", paramLabel = "LAMBDA",
            description = "Adds LAMBDA x the sum over layers and heads of ln(||S_end|| / ||S_start||) to each trained sequence's loss (S: the"
                    + " head's WKV state where the sequence starts and after its last token; heads that start from zero add nothing): a"
                    + " gradient on every write the sequence makes, asking a piece that continues a document not to grow the state it was"
                    + " handed. For long-context training with --carry-state stop, where a channel that does not decay sums every filler"
                    + " write before the piece and those writes get no gradient; the answer's loss keeps the writes it needs. Not in the"
                    + " reported loss; 0: off (default: ${DEFAULT-VALUE}).")
    public double stateGrowthPenalty;

    @Option(names = "--chunk-len", defaultValue = "1024", description = "Tokens per BPTT chunk; memory grows with this, not with --ctx-len (default: ${DEFAULT-VALUE}).")
    public int chunkLen;

    @Option(names = "--bptt", defaultValue = "full", description = "full (exact gradient across chunks) | truncated (default: ${DEFAULT-VALUE}).")
    public String bptt;

    @Option(names = "--sampling", description = "windows (random ctx-len windows of the token stream) | documents (one document or packed sequence per step) | stream (consecutive ctx-len slices, in order); default by dataset kind.")
    public String sampling;

    @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|bf16",
            description = "Arithmetic of the weight matrices: bf16 stores frozen weights in bf16 (LoRA, state tuning: half the memory) and, for full"
                    + " finetuning, keeps an fp32 master copy with a bf16 working copy for the matrix products; states, norms, losses and optimizer"
                    + " stay fp32 (default: ${DEFAULT-VALUE}).")
    public String precision;

    @Option(names = "--grad-cp", description = "Per-layer recomputation: keep only each layer's input for a chunk and recompute the layer in backward"
            + " (about 1/3 more compute; activation memory of one layer instead of all; RWKV-LM's name). `longrwkv plan` shows when it is needed.")
    public boolean gradCp;

    @Option(names = "--device-memory", paramLabel = "SIZE", description = "Memory the run may use, e.g. 80GiB (default: the GPU's memory, or what this"
            + " machine has available); the run stops before allocating, with the --chunk-len or options that fit, when its plan does not.")
    public String deviceMemory;

    @Option(names = "--micro-batch", defaultValue = "1", description = "Sequences per micro-batch (default: ${DEFAULT-VALUE}).")
    public int microBatch;

    @Option(names = "--grad-accum", defaultValue = "1", description = "Micro-batches per optimizer step (default: ${DEFAULT-VALUE}).")
    public int gradAccum;

    @Option(names = "--steps", description = "Optimizer steps (or give --tokens).")
    public Long steps;

    @Option(names = "--tokens", description = "Train on about this many tokens (steps = tokens / (ctx-len x micro-batch x grad-accum)).")
    public Long tokens;

    @Option(names = "--warmup", description = "Warmup steps (default: 10 for state tuning, else 0).")
    public Long warmup;

    @Option(names = "--schedule", defaultValue = "cosine", description = "cosine | exp | constant (default: ${DEFAULT-VALUE}).")
    public String schedule;

    @Option(names = "--weight-decay", defaultValue = "0", description = "AdamW weight decay, on >= 2-D .weight tensors only (default: ${DEFAULT-VALUE}).")
    public double weightDecay;

    @Option(names = "--grad-clip", defaultValue = "1.0", description = "Global gradient-norm clip, 0 = off (default: ${DEFAULT-VALUE}).")
    public double gradClip;

    @Option(names = "--no-l2wrap", description = "Turn off RWKV-LM's L2Wrap logit regulariser (on by default).")
    public boolean noL2wrap;

    @Option(names = "--skip-nonfinite", defaultValue = "0", description = "Skip up to N steps whose loss or gradient is NaN/Inf instead of stopping (default: ${DEFAULT-VALUE}).")
    public int skipNonFinite;

    @Option(names = "--seed", defaultValue = "1", description = "Seed for data order and new parameters (default: ${DEFAULT-VALUE}).")
    public long seed;

    @Option(names = "--save-every", defaultValue = "0", description = "Checkpoint every N steps, 0 = only at the end (default: ${DEFAULT-VALUE}).")
    public long saveEvery;

    @Option(names = "--out", description = "Output directory (default: the --resume directory).")
    public Path out;

    @Option(names = "--resume", description = "Continue the run whose output directory this is (its checkpoints/latest).")
    public Path resume;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu | cuda | auto | emulated (the CUDA kernels run on the CPU, for testing) (default: ${DEFAULT-VALUE}).")
    public String device;

    @Option(names = "--devices", paramLabel = "N|0,1,...", description = "Data-parallel training on this machine's GPUs: a count (the first N)"
            + " or a list of GPU ids (with --device cuda, or emulated for testing); one rank per GPU, each taking its share of every step's"
            + " sequences; the global batch is ranks x --micro-batch x --grad-accum (default: one device).")
    public String devices;

    @Option(names = "--zero", defaultValue = "0", paramLabel = "0|1|2", description = "ZeRO stage with several devices: 0 = every rank keeps"
            + " everything; 1 = AdamW moments and fp32 master weights sharded by tensor across ranks; 2 = also the gradients"
            + " (reduced to their owner after every chunk's layer backward) (default: ${DEFAULT-VALUE}).")
    public int zero;

    @Option(names = "--nnodes", defaultValue = "1", description = "Machines in the run, each with the same --devices count (default: ${DEFAULT-VALUE}).")
    public int nnodes;

    @Option(names = "--node-rank", defaultValue = "0", description = "This machine's number, 0 .. nnodes-1; node 0 is the master (default: ${DEFAULT-VALUE}).")
    public int nodeRank;

    @Option(names = "--master", paramLabel = "ADDR:PORT", description = "With --nnodes > 1: where node 0 listens for the other nodes (as torchrun's --master-addr/--master-port).")
    public String master;

    @Option(names = "--collective-timeout", defaultValue = "600", paramLabel = "SECONDS", description = "A collective (or the start-up of the"
            + " group) that takes longer fails with the rank that did not arrive, instead of hanging (default: ${DEFAULT-VALUE}).")
    public int collectiveTimeout;

    @Option(names = "--gn-eps", description = "ln_x GroupNorm eps (default: 1e-5 for rwkv.cpp files, else 64e-5).")
    public Double gnEps;

    @Option(names = "--config", description = "Properties file with the same keys as the flags (ctx-len=131072, lr=1e-5, ...); flags win.")
    public Path config;

    public Path outDir() {
        if (out != null) return out;
        if (resume != null) return resume;
        throw new IllegalArgumentException("give --out DIR (or --resume DIR)");
    }

    /** Creates the output directory now, so that a path that cannot be one is refused before any work. */
    public Path createOutDir() {
        Path dir = outDir();
        if (resume != null && !java.nio.file.Files.isDirectory(resume)) {
            throw new IllegalArgumentException("--resume " + resume + ": no checkpoint there (" + (java.nio.file.Files.exists(resume)
                    ? "not a directory" : "no such directory") + ")");
        }
        if (java.nio.file.Files.exists(dir) && !java.nio.file.Files.isDirectory(dir)) {
            throw new IllegalArgumentException((out != null ? "--out " : "--resume ") + dir + " is not a directory");
        }
        try {
            java.nio.file.Files.createDirectories(dir);
        } catch (java.io.IOException e) {
            String why = e instanceof java.nio.file.FileSystemException f && f.getReason() != null ? f.getReason() : e.getMessage();
            throw new IllegalArgumentException((out != null ? "--out " : "--resume ") + dir + ": cannot create the directory: " + why);
        }
        return dir;
    }

    /** Checks that need no files, before any work: every value in its range (named with the option), NaN/Infinity refused. */
    public void validate() {
        if (ctxLen < 1) throw new IllegalArgumentException("--ctx-len must be >= 1, got " + ctxLen);
        if (chunkLen < 1) throw new IllegalArgumentException("--chunk-len must be >= 1, got " + chunkLen);
        if (chunkLen > ctxLen) throw new IllegalArgumentException("--chunk-len " + chunkLen + " is longer than --ctx-len " + ctxLen);
        for (int len : schedule().allLengths()) {
            if (len % chunkLen != 0) {
                throw new IllegalArgumentException("--ctx-len " + len + " is not a multiple of --chunk-len " + chunkLen
                        + " (the last chunk would be " + (len % chunkLen) + " tokens); try --chunk-len " + largestDivisorAtMost(len, chunkLen));
            }
        }
        if (chunkLen > schedule().allLengths()[0]) {
            throw new IllegalArgumentException("--chunk-len " + chunkLen + " is longer than the --ctx-len phase of " + schedule().allLengths()[0]);
        }
        CarryState carry = CarryState.parse(carryState == null ? "off" : carryState);
        if (carryAcrossDocuments && carry == CarryState.OFF) {
            throw new IllegalArgumentException("--carry-across-documents needs --carry-state stop or flow");
        }
        if (carry == CarryState.FLOW && BpttMode.parse(bptt) != BpttMode.FULL) {
            throw new IllegalArgumentException("--carry-state flow needs --bptt full (truncated BPTT stops the gradient at every chunk end); use --carry-state stop");
        }
        boolean stationary = prefixGradStationary();
        if (stationary && (carry != CarryState.STOP || BpttMode.parse(bptt) != BpttMode.FULL)) {
            throw new IllegalArgumentException("--prefix-grad stationary needs --carry-state stop and --bptt full (it stands in for the gradient"
                    + " the stop cuts off), got --carry-state " + carry.cliName() + " --bptt " + bptt);
        }
        if (prefixGradMargin < 0) throw new IllegalArgumentException("--prefix-grad-margin must be >= 0, got " + prefixGradMargin);
        ai.longrwkv.core.train.StateGrowthPenalty.checkWeight(stateGrowthPenalty);
        if ((steps == null) == (tokens == null)) throw new IllegalArgumentException("give exactly one of --steps or --tokens");
        if (steps != null && steps < 1) throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        if (tokens != null && tokens < 1) throw new IllegalArgumentException("--tokens must be >= 1, got " + tokens);
        atLeast("--micro-batch", microBatch, 1, 1 << 20);
        atLeast("--grad-accum", gradAccum, 1, 1 << 20);
        if ((long) microBatch * gradAccum > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("--micro-batch x --grad-accum = " + (long) microBatch * gradAccum + " sequences per step is too many");
        }
        if (warmup != null && warmup < 0) throw new IllegalArgumentException("--warmup must be >= 0 steps, got " + warmup);
        finiteAtLeast("--weight-decay", weightDecay, 0);
        finiteAtLeast("--grad-clip", gradClip, 0);
        if (skipNonFinite < 0) throw new IllegalArgumentException("--skip-nonfinite must be >= 0, got " + skipNonFinite);
        if (saveEvery < 0) throw new IllegalArgumentException("--save-every must be >= 0 steps (0 = only at the end), got " + saveEvery);
        if (gnEps != null && !(gnEps > 0 && Double.isFinite(gnEps))) throw new IllegalArgumentException("--gn-eps must be a finite number > 0, got " + gnEps);
        BpttMode.parse(bptt);
        precision();
        if (deviceMemory != null) ai.longrwkv.core.train.MemoryPlan.parseSize("--device-memory", deviceMemory);
        LrSchedule.Kind.parse(schedule);
        DatasetSequences.parseSampling(sampling);
        validateDevices();
    }

    /** --devices, --zero, --nnodes, --node-rank, --master, --collective-timeout. */
    void validateDevices() {
        if (devices != null) ai.longrwkv.core.dist.Devices.parse(devices);
        if (zero < 0 || zero > 2) throw new IllegalArgumentException("--zero must be 0, 1 or 2, got " + zero);
        atLeast("--nnodes", nnodes, 1, 1 << 16);
        if (nodeRank < 0 || nodeRank >= nnodes) throw new IllegalArgumentException("--node-rank must be 0.." + (nnodes - 1) + " with --nnodes " + nnodes + ", got " + nodeRank);
        if (nnodes > 1 && master == null) throw new IllegalArgumentException("--nnodes " + nnodes + " needs --master ADDR:PORT (where node 0 listens)");
        if (master != null) ai.longrwkv.core.dist.Rendezvous.parseMaster(master);
        atLeast("--collective-timeout", collectiveTimeout, 1, 7 * 24 * 3600);
    }

    /** The devices of this node (--devices, or the one --device names). */
    public List<Integer> localDevices() {
        return devices == null ? List.of(0) : ai.longrwkv.core.dist.Devices.parse(devices);
    }

    /** Ranks in the run: nodes x local devices. */
    public int worldSize() {
        return nnodes * localDevices().size();
    }

    /**
     * What every node of a multi-machine run must agree on (checked at the rendezvous): the data and the options that
     * decide which sequences each rank trains and how.
     */
    public String groupFingerprint() {
        return "data=" + (data == null ? "" : data.getFileName()) + " ctx=" + ctxSchedule + " chunk=" + chunkLen + " bptt=" + bptt
                + " micro=" + microBatch + " accum=" + gradAccum + " steps=" + steps + " tokens=" + tokens + " seed=" + seed
                + " precision=" + precision + " zero=" + zero + " devices-per-node=" + localDevices().size();
    }

    /** --precision as a dtype (fp32 or bf16). */
    public DType precision() {
        return DType.parseOption("--precision", precision == null ? "fp32" : precision);
    }

    /** The dtype the weight matrices are loaded in: bf16 only where they are frozen (full finetuning loads the fp32 master). */
    public DType loadDtype(Trainer.Mode mode) {
        return ai.longrwkv.core.model.Precision.loadDtype(precision(), mode == Trainer.Mode.FULL);
    }

    /** The memory plan's description of this run. */
    public ai.longrwkv.core.train.MemoryPlan.Spec planSpec(ai.longrwkv.core.model.ModelConfig cfg, Trainer.Mode mode, int loraRank, int loraTargets) {
        return new ai.longrwkv.core.train.MemoryPlan.Spec(cfg, ai.longrwkv.core.train.MemoryPlan.Mode.valueOf(mode.name()), precision(), gradCp,
                ctxLen, chunkLen, BpttMode.parse(bptt), loraRank, loraTargets).withSharding(worldSize(), zero, microBatch * gradAccum);
    }

    /** Applies --precision (the bf16 working copy of full finetuning) and --grad-cp to a loaded model. */
    public void configure(Rwkv5Model model, Trainer.Mode mode) {
        ai.longrwkv.core.model.Precision.configure(model, precision(), mode == Trainer.Mode.FULL, gradCp);
    }

    /** An integer option in [min, max]. */
    public static void atLeast(String option, long value, long min, long max) {
        if (value < min || value > max) throw new IllegalArgumentException(option + " must be " + min + ".." + max + ", got " + value);
    }

    /** A finite double option >= min (NaN and Infinity refused). */
    public static void finiteAtLeast(String option, double value, double min) {
        if (!Double.isFinite(value)) throw new IllegalArgumentException(option + " must be a finite number >= " + fmt(min) + ", got " + value);
        if (value < min) throw new IllegalArgumentException(option + " must be >= " + fmt(min) + ", got " + value);
    }

    /** A finite double option > min. */
    public static void finiteAbove(String option, double value, double min) {
        if (!Double.isFinite(value) || !(value > min)) throw new IllegalArgumentException(option + " must be a finite number > " + fmt(min) + ", got " + value);
    }

    /** --lr and --lr-final: both finite, lr > 0, 0 <= lr-final <= lr (the schedule decays from one to the other). */
    public static void learningRates(double lr, double lrFinal) {
        finiteAbove("--lr", lr, 0);
        finiteAtLeast("--lr-final", lrFinal, 0);
        if (lrFinal > lr) {
            throw new IllegalArgumentException("--lr-final " + lrFinal + " is above --lr " + lr + ": the schedule decays from --lr to --lr-final, so 0 <= --lr-final <= --lr");
        }
    }

    private static String fmt(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }

    private static int largestDivisorAtMost(int n, int max) {
        for (int d = max; d >= 1; d--) if (n % d == 0) return d;
        return 1;
    }

    public long totalSteps() {
        if (steps != null) return steps;
        long perStep = (long) ctxLen * microBatch * gradAccum;
        return Math.max(1, (tokens + perStep - 1) / perStep);
    }

    public Trainer.Config trainerConfig(Trainer.Mode mode, double lr, double lrFinal, long defaultWarmup) {
        long total = totalSteps();
        long w = warmup != null ? warmup : defaultWarmup;
        return new Trainer.Config(mode, chunkLen, BpttMode.parse(bptt), microBatch, gradAccum, total,
                new LrSchedule(lr, lrFinal, Math.min(w, total), total, LrSchedule.Kind.parse(schedule)),
                weightDecay, gradClip, !noL2wrap, skipNonFinite, carry(), carryAcrossDocuments, prefixGradStationary() ? prefixGradMargin : -1,
                stateGrowthPenalty);
    }

    /** For the run's header line: ", carry stop, prefix-grad stationary (margin 64)" or what applies of it. */
    public String prefixGradLabel() {
        CarryState c = carry();
        return (c == CarryState.OFF ? "" : ", carry " + c.cliName())
                + (prefixGradStationary() ? ", prefix-grad stationary (margin " + prefixGradMargin + ")" : "")
                + (stateGrowthPenalty > 0 ? ", state-growth penalty " + stateGrowthPenalty : "");
    }

    private boolean prefixGradStationary() {
        String p = prefixGrad == null ? "none" : prefixGrad;
        return switch (p) {
            case "none" -> false;
            case "stationary" -> true;
            default -> throw new IllegalArgumentException("--prefix-grad must be none or stationary, got '" + p + "'");
        };
    }

    private CarryState carry() {
        return CarryState.parse(carryState == null ? "off" : carryState);
    }

    /** The training data with this run's length schedule and sequences per step. */
    public DatasetSequences openData() {
        return DatasetSequences.open(data, schedule(), microBatch * gradAccum, carry() != CarryState.OFF, seed, DatasetSequences.parseSampling(sampling));
    }
}
