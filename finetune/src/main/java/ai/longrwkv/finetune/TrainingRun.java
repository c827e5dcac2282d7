package ai.longrwkv.finetune;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.train.ContentFingerprint;
import ai.longrwkv.core.train.MemoryPlan;
import ai.longrwkv.core.train.Trainer;
import ai.longrwkv.core.train.TrainingJob;

import java.nio.file.Path;
import java.util.List;

/** The steps every training command shares: load the model, open the data, check they fit, run the job. */
public final class TrainingRun {
    private TrainingRun() { }

    /** --model FILE or --init L,C[,vocab] (head size 64, or C if C < 64). */
    public static ModelWeights loadOrInit(Path model, String init, long seed) {
        if ((model == null) == (init == null)) throw new IllegalArgumentException("give exactly one of --model FILE or --init L,C[,vocab]");
        if (model != null) return ModelFiles.load(model);
        ModelConfig cfg = initConfig(init);
        long params = cfg.parameterCount();
        // the new weights are made on the Java heap, then trained with gradients and two Adam moments in native memory
        checkMemory("--init " + init + " (" + String.format("%,d", params) + " parameters)", 16 * params, 4 * params);
        return ModelInit.x052(cfg, seed);
    }

    /** Parses and checks --init L,C[,vocab]: 1..4096 layers, C 1..65536 (a multiple of 64 above 64), vocab 2..16M. */
    public static ModelConfig initConfig(String init) {
        String[] p = init.split(",", -1);
        if (p.length < 2 || p.length > 3) throw new IllegalArgumentException("--init must be L,C or L,C,vocab (layers, embedding size, vocabulary), got '" + init + "'");
        int layers, embd, vocab;
        try {
            layers = Integer.parseInt(p[0].trim());
            embd = Integer.parseInt(p[1].trim());
            vocab = p.length == 3 ? Integer.parseInt(p[2].trim()) : 65536;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--init must be numbers L,C[,vocab], got '" + init + "'");
        }
        if (layers < 1 || layers > 4096) throw new IllegalArgumentException("--init " + init + ": layers must be 1..4096, got " + layers);
        if (embd < 1 || embd > 65536) throw new IllegalArgumentException("--init " + init + ": the embedding size C must be 1..65536, got " + embd);
        if (embd > 64 && embd % 64 != 0) {
            throw new IllegalArgumentException("--init " + init + ": C = " + embd + " must be a multiple of the head size 64 (or at most 64: one head of size C)");
        }
        if (vocab < 2 || vocab > (1 << 24)) throw new IllegalArgumentException("--init " + init + ": the vocabulary must be 2.." + (1 << 24) + ", got " + vocab);
        if ((long) vocab * embd > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("--init " + init + ": the embedding (" + vocab + " x " + embd + ") is too large for one tensor");
        }
        return ModelConfig.forInit(layers, embd, Math.min(64, embd), vocab);
    }

    /**
     * Refuses work that cannot fit, before it starts, instead of dying of an out-of-memory error halfway:
     * {@code nativeBytes} (tensors) against the machine's physical memory, {@code heapBytes} (host copies) against
     * the Java heap limit.
     */
    public static void checkMemory(String what, long nativeBytes, long heapBytes) {
        long physical = physicalMemory();
        long heap = Runtime.getRuntime().maxMemory();
        if (physical > 0 && nativeBytes > physical) {
            throw new IllegalArgumentException(what + " needs about " + gb(nativeBytes) + " of memory (weights, gradients and optimizer moments)"
                    + " but this machine has " + gb(physical));
        }
        if (heapBytes > heap * 0.9) {
            throw new IllegalArgumentException(what + " needs about " + gb(heapBytes) + " of Java heap but it is limited to " + gb(heap)
                    + " (raise it with LONGRWKV_JAVA_OPTS=-Xmx...)");
        }
    }

    /**
     * The memory check of a training run, before the model is loaded: the {@link MemoryPlan} of the step against the
     * backend's memory (a GPU's, or what this machine has available; --device-memory overrides), with the chunk
     * length or options that would fit when it does not; and the host copies a checkpoint makes of the two Adam
     * moments (8 bytes per trained value) against the Java heap.
     */
    public static MemoryPlan checkPlan(String what, MemoryPlan.Spec spec, Backend be, TrainingOptions o) {
        MemoryPlan plan = MemoryPlan.of(spec);
        long capacity = capacity(be, o);
        // on the CPU the tensors share the machine with the Java heap
        long forTensors = be.memoryCapacity() > 0 ? capacity : capacity - plan.hostHeapBytes();
        String advice = capacity > 0 ? plan.advice(forTensors) : null;
        if (advice != null) {
            throw new IllegalArgumentException(what + " needs about " + MemoryPlan.human(plan.peakBytes()) + " per step (" + summary(plan)
                    + ") but " + (o.deviceMemory != null ? "--device-memory is " : be.memoryCapacity() > 0 ? "the GPU has " : "this machine has ")
                    + MemoryPlan.human(capacity) + (o.deviceMemory != null || be.memoryCapacity() > 0 ? "" : " available") + ": " + advice
                    + "; `longrwkv plan` prints every term");
        }
        long trained = plan.trainedValues();
        long heap = Runtime.getRuntime().maxMemory();
        if (8 * trained > heap * 0.9) {
            throw new IllegalArgumentException(what + " needs about " + gb(8 * trained) + " of Java heap for its checkpoints but it is limited to "
                    + gb(heap) + " (raise it with LONGRWKV_JAVA_OPTS=-Xmx...)");
        }
        return plan;
    }

    /** --device-memory, else the backend's memory, else what this machine has available (-1: unknown). */
    public static long capacity(Backend be, TrainingOptions o) {
        if (o.deviceMemory != null) return MemoryPlan.parseSize("--device-memory", o.deviceMemory);
        return be.memoryCapacity() > 0 ? be.memoryCapacity() : MemoryPlan.availableMemory();
    }

    /** The three largest terms, for one-line messages. */
    static String summary(MemoryPlan plan) {
        return plan.terms().stream().sorted((a, b) -> Long.compare(b.bytes(), a.bytes())).limit(3)
                .map(t -> t.name() + " " + MemoryPlan.human(t.bytes())).collect(java.util.stream.Collectors.joining(", "));
    }

    /**
     * An out-of-memory error that the plan did not foresee (other processes took memory, fragmentation): one line with
     * the plan's total and the chunk length that fits in what is available now.
     */
    public static IllegalStateException outOfMemory(String what, MemoryPlan plan, Backend be, TrainingOptions o, Throwable cause) {
        long capacity = capacity(be, o);
        int fits = capacity > 0 ? MemoryPlan.largestFittingChunk(plan.spec(), capacity / 10 * 9) : 0;
        return new IllegalStateException(what + " ran out of memory (" + cause.getMessage() + "); the plan predicted "
                + MemoryPlan.human(plan.peakBytes()) + " (" + summary(plan) + ") with " + MemoryPlan.human(capacity) + " available now"
                + (fits > 0 && fits < plan.spec().chunkLen() ? ": try --chunk-len " + fits : ": try --grad-cp, --precision bf16 or a smaller --chunk-len"), cause);
    }

    private static long physicalMemory() {
        try {
            if (java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
                return os.getTotalMemorySize();
            }
        } catch (RuntimeException | LinkageError ignored) {
            // no estimate then
        }
        return -1;
    }

    private static String gb(long bytes) {
        return String.format(java.util.Locale.ROOT, bytes >= 1L << 30 ? "%.1f GB" : "%.0f MB", bytes / (bytes >= 1L << 30 ? (double) (1L << 30) : 1 << 20));
    }

    /**
     * What identifies the base model for a resume: its content (size and SHA-256 of the first and last MiB, see
     * {@link ContentFingerprint}), not the path it was given by; for --init the shape and seed.
     */
    public static String modelIdentity(Path model, String init, long seed) {
        if (model != null) return "model " + ContentFingerprint.of(model);
        return "init " + init.replace(" ", "") + " seed=" + seed;
    }

    public static double groupNormEps(ModelWeights w, Double user) {
        return user != null ? user : ModelFiles.defaultGroupNormEps(w);
    }

    /** Refuses data whose tokenizer does not fit the model's vocabulary, before any work. */
    public static void checkVocab(DatasetSequences data, ModelConfig cfg, Path prefix) {
        data.requireVocabulary(cfg.vocabSize());
        int hint = data.vocabHint();
        if (hint > 0 && hint != cfg.vocabSize()) {
            throw new IllegalArgumentException(prefix + " was tokenized for a vocabulary of " + hint + " but the model has "
                    + cfg.vocabSize() + " (use the model's tokenizer in `data build`)");
        }
    }

    /** A description of what a resume must match: the base model (see {@link #modelIdentity}) and how it is trained. */
    public static String runFingerprint(String modelIdentity, ModelConfig cfg, String extra) {
        return modelIdentity + " " + cfg + " " + extra;
    }

    /**
     * The backend for --device cpu|cuda|auto|emulated; says which one runs and, if the GPU is not used, why: on stdout
     * with the other progress lines of the run, so that stderr carries only errors (one line each).
     */
    public static Backend backend(String device) {
        Backend be = Backends.create(device);
        System.out.println(Backends.describe(be));
        return be;
    }

    /** Runs to the end (resuming first if asked); prints a one-line summary per 10% and at the end. */
    public static List<Trainer.StepResult> run(Trainer trainer, TrainingOptions o, String runFingerprint) {
        return run(trainer, o, runFingerprint, true);
    }

    /** @param primary false on the ranks of a data-parallel group other than 0: they train and checkpoint, and print nothing */
    public static List<Trainer.StepResult> run(Trainer trainer, TrainingOptions o, String runFingerprint, boolean primary) {
        Path dir = o.outDir();
        TrainingJob job = new TrainingJob(trainer, dir, o.saveEvery, runFingerprint, primary);
        if (o.resume != null) {
            trainer.resume(o.resume.resolve("checkpoints"), runFingerprint);
            if (primary) System.out.printf("resumed %s at step %d%n", o.resume, trainer.step());
        }
        List<Trainer.StepResult> results = job.run(o.totalSteps());
        if (!results.isEmpty() && primary) {
            Trainer.StepResult last = results.get(results.size() - 1);
            double secs = results.stream().mapToDouble(Trainer.StepResult::seconds).sum();
            long toks = results.stream().mapToLong(Trainer.StepResult::tokens).sum();
            System.out.printf("trained %d steps to step %d: last loss %.4f, %.0f tokens/s, peak tensor memory %s; logs in %s%n",
                    results.size(), last.step(), last.loss(), toks / Math.max(secs, 1e-9),
                    MemoryPlan.human(trainer.model().backend().peakBytes()), dir);
        }
        return results;
    }
}
