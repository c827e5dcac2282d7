package ai.longrwkv.cli;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.MemoryPlan;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** {@code longrwkv plan}: the memory and FLOPs of a training step, term by term, before anything is allocated. */
@Command(name = "plan", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Print the memory of a training step term by term (weights, trained parameters and moments, boundary states,"
                + " one chunk's activations, the logits slice, workspaces) and its FLOPs; when it does not fit --device-memory, the"
                + " largest --chunk-len or the options that do. finetune and state-tune check the same plan before they start.",
                "", "On several GPUs (--devices, --nnodes) the memory is per GPU: each GPU holds the working weights and its own"
                + " sequences' activations; --zero 1 shards the AdamW moments and the fp32 master weights by whole tensor, --zero 2"
                + " also the gradients (terms marked /N are one GPU's share of N). It also prints the bytes each GPU hands to the"
                + " collectives per step, and their time at a --bus-bandwidth you give.",
                "", "Example: longrwkv plan --shape L32-C4096-V65536 --mode lora --ctx-len 131072 --chunk-len 4096 --precision bf16 --device-memory 80GiB",
                "", "Example: longrwkv plan --shape L32-C4096-V65536 --ctx-len 131072 --chunk-len 4096 --precision bf16 --grad-cp --devices 8 --zero 2 --device-memory 80GiB"})
final class PlanCommand implements Callable<Integer> {
    @Option(names = "--model", description = "A model file (only its tensor shapes are read).") Path model;
    @Option(names = "--shape", paramLabel = "L32-C4096-V65536[-N64]", description = "A model shape instead: layers, width, vocabulary, head size (default 64).")
    String shape;
    @Option(names = "--mode", defaultValue = "full", description = "full | lora | state (default: ${DEFAULT-VALUE}).") String mode;
    @Option(names = "--ctx-len", required = true, description = "Tokens per training sequence, e.g. 131072.") int ctxLen;
    @Option(names = "--chunk-len", defaultValue = "1024", description = "Tokens per BPTT chunk (default: ${DEFAULT-VALUE}).") int chunkLen;
    @Option(names = {"--precision", "--dtype"}, defaultValue = "fp32", paramLabel = "fp32|bf16", description = "Weight matrices' arithmetic, as finetune --precision (default: ${DEFAULT-VALUE}).")
    String precision;
    @Option(names = "--grad-cp", description = "Per-layer recomputation, as finetune --grad-cp.") boolean gradCp;
    @Option(names = "--bptt", defaultValue = "full", description = "full | truncated (default: ${DEFAULT-VALUE}).") String bptt;
    @Option(names = "--lora-r", defaultValue = "16", description = "LoRA rank, for --mode lora (default: ${DEFAULT-VALUE}).") int loraR;
    @Option(names = "--device-memory", paramLabel = "SIZE", description = "Memory to fit in, per GPU, e.g. 80GiB or 24GB (default: what this machine has available).")
    String deviceMemory;
    @Option(names = "--devices", defaultValue = "1", paramLabel = "N|0,1,...", description = "GPUs per node: a count, or a list of GPU ids as"
            + " finetune takes them (only how many matters here; a single 0 is GPU 0) (default: ${DEFAULT-VALUE}).")
    String devices;
    @Option(names = "--nnodes", defaultValue = "1", paramLabel = "N", description = "Machines training together, each with --devices GPUs (default: ${DEFAULT-VALUE}).")
    int nnodes;
    @Option(names = "--zero", defaultValue = "0", paramLabel = "0|1|2", description = "ZeRO stage: 0 every GPU holds all optimizer state; 1 shards"
            + " the AdamW moments and fp32 master weights over the GPUs; 2 also the gradients. No effect on one GPU (default: ${DEFAULT-VALUE}).")
    int zero;
    @Option(names = "--sequences-per-gpu", defaultValue = "1", paramLabel = "N", description = "Sequences each GPU trains per optimizer step; --zero 2 reduces"
            + " the gradients once per chunk of each, so its communication grows with this (default: ${DEFAULT-VALUE}).")
    int sequencesPerGpu;
    @Option(names = "--bus-bandwidth", paramLabel = "GB/s", description = "The collectives' bus bandwidth, as nccl-tests reports busbw (e.g. what"
            + " all_reduce_perf measures on these GPUs), to print their time per step; without it, only their bytes.")
    Double busBandwidth;

    private static final Pattern SHAPE = Pattern.compile("L(\\d+)-C(\\d+)-V(\\d+)(?:-N(\\d+))?");

    @Override
    public Integer call() {
        if ((model == null) == (shape == null)) throw new IllegalArgumentException("give exactly one of --model FILE or --shape L32-C4096-V65536");
        MemoryPlan.Mode m = switch (mode.toLowerCase(Locale.ROOT)) {
            case "full" -> MemoryPlan.Mode.FULL;
            case "lora" -> MemoryPlan.Mode.LORA;
            case "state" -> MemoryPlan.Mode.STATE;
            default -> throw new IllegalArgumentException("--mode must be full, lora or state, got '" + mode + "'");
        };
        Cli.range("--ctx-len", ctxLen, 1, Integer.MAX_VALUE);
        Cli.range("--chunk-len", chunkLen, 1, ctxLen);
        Cli.range("--lora-r", loraR, 1, 65536);
        int perNode = deviceCount(devices);
        Cli.range("--nnodes", nnodes, 1, 65536);
        Cli.range("--zero", zero, 0, 2);
        Cli.range("--sequences-per-gpu", sequencesPerGpu, 1, Integer.MAX_VALUE);
        if (busBandwidth != null && !(busBandwidth > 0 && Double.isFinite(busBandwidth))) {
            throw new IllegalArgumentException("--bus-bandwidth must be a positive number of GB/s, got " + busBandwidth);
        }
        long world = (long) perNode * nnodes;
        if (world > 65536) throw new IllegalArgumentException("--devices x --nnodes must be at most 65536 GPUs, got " + world);
        DType dtype = Cli.precision(precision);
        BpttMode b = BpttMode.parse(bptt);
        ModelConfig cfg;
        if (shape != null) {
            Matcher mt = SHAPE.matcher(shape.trim());
            if (!mt.matches()) throw new IllegalArgumentException("--shape must look like L32-C4096-V65536 (optionally -N64 for the head size), got '" + shape + "'");
            int L = Integer.parseInt(mt.group(1)), C = Integer.parseInt(mt.group(2)), V = Integer.parseInt(mt.group(3));
            int N = mt.group(4) != null ? Integer.parseInt(mt.group(4)) : Math.min(64, C);
            Cli.modelShape(L, C, N, V);
            cfg = ModelConfig.forInit(L, C, N, V);
        } else {
            ModelWeights w = Cli.load(model);
            cfg = ModelConfig.fromWeights(w, ModelConfig.OFFICIAL_GROUP_NORM_EPS);
        }
        long capacity = deviceMemory != null ? MemoryPlan.parseSize("--device-memory", deviceMemory) : MemoryPlan.availableMemory();
        MemoryPlan plan = MemoryPlan.of(new MemoryPlan.Spec(cfg, m, dtype, gradCp, ctxLen, chunkLen, b, loraR, 8, (int) world, zero, sequencesPerGpu));
        System.out.printf("plan: %s (%,d params), %s, %s%s, ctx %d, chunk %d (%d chunks), bptt %s%s%n", cfg, cfg.parameterCount(), mode,
                dtype.label(), gradCp ? ", grad-cp" : "", ctxLen, chunkLen, (ctxLen + chunkLen - 1) / chunkLen, b.name().toLowerCase(Locale.ROOT),
                world > 1 ? String.format(Locale.ROOT, ", %d GPUs (%d per node x %d node%s), ZeRO stage %d, %d sequence%s per GPU per step", world,
                        perNode, nnodes, nnodes > 1 ? "s" : "", zero, sequencesPerGpu, sequencesPerGpu > 1 ? "s" : "") : "");
        if (world == 1 && zero > 0) System.out.printf("  (--zero %d has no effect on one GPU: there is nothing to shard over)%n", zero);
        System.out.print(plan.table(capacity, busBandwidth != null ? busBandwidth * 1e9 : 0));
        return 0;
    }

    /** --devices: how many GPUs per node ({@link ai.longrwkv.core.dist.Devices#parse}). */
    static int deviceCount(String text) {
        return ai.longrwkv.core.dist.Devices.parse(text).size();
    }
}
