package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ParamSet;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * The one training loop behind finetune (full or LoRA) and state tuning: sequences from a {@link SequenceSource} ->
 * chunked BPTT forward/backward -> gradient averaging, non-finite check, global-norm clipping -> AdamW. The three
 * modes differ only in what is trainable. Everything runs through the model's {@link Backend}, so the loop is the
 * same on CPU and GPU.
 *
 * <p>Determinism: micro-sequence i of step s is {@code source.sequence(s * microSteps + i)}, so a run resumed from a
 * checkpoint sees exactly the data an uninterrupted run would, and on CPU gives the same losses bit for bit.
 */
public final class Trainer implements AutoCloseable {

    /** Where training sequences come from; index -> sequence must be deterministic. */
    public interface SequenceSource {
        TokenSequence sequence(long index);

        /** Identifies the data (file names, sizes) so that a resume on other data is refused. */
        String fingerprint();
    }

    public enum Mode { FULL, LORA, STATE }

    public record Config(Mode mode, int chunkLen, BpttMode bptt, int microBatch, int gradAccum, long steps,
                         LrSchedule lr, double weightDecay, double gradClip, boolean l2Wrap, int skipNonFinite) {
        public Config {
            if (microBatch < 1 || gradAccum < 1) throw new IllegalArgumentException("--micro-batch and --grad-accum must be >= 1");
            if (steps < 1) throw new IllegalArgumentException("--steps must be >= 1");
        }

        int microSteps() { return microBatch * gradAccum; }

        /**
         * What must match for a resume: everything that changes the numbers, except the number of steps (a resume
         * may extend a run; the learning-rate schedule is then recomputed for the new total).
         */
        String fingerprint() {
            return mode + " chunk=" + chunkLen + " bptt=" + bptt + " micro=" + microBatch + " accum=" + gradAccum
                    + " lr=" + lr.lrInit() + " lr_final=" + lr.lrFinal() + " warmup=" + lr.warmupSteps() + " schedule=" + lr.kind()
                    + " wd=" + weightDecay + " clip=" + gradClip + " l2wrap=" + l2Wrap;
        }
    }

    /** What one optimizer step did. */
    public record StepResult(long step, double loss, double lr, double gradNorm, long tokens, double seconds, boolean skipped) { }

    /**
     * A step whose loss or gradient is NaN or infinite. An IllegalArgumentException: like bad input, the command
     * line reports it as one line naming the step and the parameter, with exit code 2.
     */
    public static final class NonFiniteException extends IllegalArgumentException {
        public NonFiniteException(String message) { super(message); }
    }

    private final Rwkv5Model model;
    private final Backend be;
    private final Config cfg;
    private final SequenceSource data;
    private final LoraSet lora;
    private final ParamSet grads;
    /** State tuning: the trained initial WKV state per layer, [H, N(key), N(value)], and its gradient. */
    private final Tensor[] timeState, timeStateGrad;
    private final AdamW optimizer;
    private long step;
    private long tokensSeen;
    private int nonFiniteSkipped;

    /**
     * @param lora        adapters to train (mode LORA), already set on the model; null otherwise
     * @param extraLoraTrain in LORA mode also train these small parameters: "time" (time_*), "ln" (LayerNorms, ln_x)
     */
    public Trainer(Rwkv5Model model, Config cfg, SequenceSource data, LoraSet lora, Set<String> extraLoraTrain) {
        this.model = model;
        this.be = model.backend();
        this.cfg = cfg;
        this.data = data;
        this.lora = lora;
        ModelConfig mc = model.config();
        List<Trainable> trainables = new ArrayList<>();
        switch (cfg.mode()) {
            case FULL -> {
                grads = ParamSet.zeros(be, mc);
                for (String k : model.params().keys()) trainables.add(Trainable.of(k, model.params().get(k), grads.get(k)));
                timeState = timeStateGrad = null;
            }
            case LORA -> {
                if (lora == null || model.lora() != lora) throw new IllegalArgumentException("LoRA mode needs the adapters set on the model");
                Predicate<ParamSpec> extra = spec -> (extraLoraTrain.contains("time") && spec.key().contains(".time_"))
                        || (extraLoraTrain.contains("ln") && (spec.key().contains(".ln") || spec.key().startsWith("ln_out")));
                grads = ParamSet.zeros(be, mc, extra);
                for (String k : grads.keys()) trainables.add(Trainable.of(k, model.params().get(k), grads.get(k)));
                lora.adapters().forEach((k, ad) -> {
                    String base = k.substring(0, k.length() - ".weight".length());
                    trainables.add(new Trainable(base + ".lora_A", ad.a, ad.gradA, 1.0, false));
                    trainables.add(new Trainable(base + ".lora_B", ad.b, ad.gradB, 1.0, false));
                });
                timeState = timeStateGrad = null;
            }
            case STATE -> {
                grads = ParamSet.zeros(be, mc, spec -> false);   // weights frozen: no weight gradients at all
                timeState = new Tensor[mc.nLayer()];
                timeStateGrad = new Tensor[mc.nLayer()];
                for (int l = 0; l < mc.nLayer(); l++) {
                    timeState[l] = be.zeros(mc.nHead(), mc.headSize(), mc.headSize());
                    timeStateGrad[l] = be.zeros(mc.nHead(), mc.headSize(), mc.headSize());
                    trainables.add(new Trainable(stateKey(l), timeState[l], timeStateGrad[l], 1.0, false));
                }
            }
            default -> throw new IllegalStateException();
        }
        this.optimizer = new AdamW(be, trainables, AdamW.Hyper.rwkvDefaults(cfg.weightDecay()));
    }

    /** The .pth key of layer l's tuned state. */
    public static String stateKey(int l) {
        return "blocks." + l + ".att.time_state";
    }

    public long step() { return step; }
    public long tokensSeen() { return tokensSeen; }
    public boolean done() { return step >= cfg.steps(); }
    public List<Trainable> trainables() { return optimizer.trainables(); }

    /** The tuned initial states (mode STATE), [H, N(key), N(value)] per layer. */
    public Tensor[] timeState() { return timeState; }

    /** Runs one optimizer step (micro-batch x grad-accum sequences). */
    public StepResult trainStep() {
        long t0 = System.nanoTime();
        optimizer.zeroGrads();
        int micro = cfg.microSteps();
        double lossSum = 0;
        long tokens = 0;
        int used = 0;
        for (int i = 0; i < micro; i++) {
            TokenSequence seq = data.sequence(step * micro + i);
            // a sequence with no trained target has no loss: training on it would move every weight through L2Wrap alone
            if (seq.lossPositions() == 0) continue;
            used++;
            tokens += seq.length();
            try (RwkvState s0 = initialState()) {
                ChunkedBptt.Result r = ChunkedBptt.run(model, seq, s0, grads,
                        new ChunkedBptt.Options(cfg.chunkLen(), cfg.bptt(), cfg.l2Wrap()), cfg.mode() == Mode.STATE, null);
                r.finalState().close();
                if (r.initialStateGrad() != null) {
                    for (int l = 0; l < timeStateGrad.length; l++) be.add(timeStateGrad[l], r.initialStateGrad().wkv[l], timeStateGrad[l]);
                    r.initialStateGrad().close();
                }
                lossSum += r.loss();
            }
        }
        if (used == 0) {
            throw new IllegalArgumentException(String.format("step %d: none of its %d sequences (data indices %d..%d) has a trained target "
                    + "(all loss-mask flags 0): nothing to learn from", step + 1, micro, step * micro, step * micro + micro - 1));
        }
        double loss = lossSum / used;
        if (used > 1) for (Trainable t : optimizer.trainables()) be.scale(t.grad(), 1f / used);
        double lr = cfg.lr().at(step);
        double[] squares = optimizer.gradSquares();
        String bad = Double.isFinite(loss) ? optimizer.firstNonFiniteGrad(squares) : "the loss";
        if (bad != null) {
            String msg = String.format("step %d: non-finite %s (loss %s)", step + 1, bad.equals("the loss") ? "loss" : "gradient of " + bad, loss);
            if (nonFiniteSkipped >= cfg.skipNonFinite()) {
                throw new NonFiniteException(msg + "; stopping (the last checkpoint is intact; --skip-nonfinite N skips up to N such steps)");
            }
            nonFiniteSkipped++;
            step++;
            return new StepResult(step, loss, lr, Double.NaN, tokens, (System.nanoTime() - t0) / 1e9, true);
        }
        double norm = AdamW.gradNorm(squares);
        String overflowed = optimizer.update(lr, AdamW.clipFactor(cfg.gradClip(), norm));
        // a finite gradient with a huge learning rate can still overflow the weights: stop at this step, naming them
        if (overflowed != null) {
            throw new NonFiniteException(String.format("step %d: the update made %s non-finite (lr %s, gradient norm %s); stopping"
                    + " (the last checkpoint is intact: resume from it with a lower --lr)", step + 1, overflowed, lr, norm));
        }
        step++;
        tokensSeen += tokens;
        return new StepResult(step, loss, lr, norm, tokens, (System.nanoTime() - t0) / 1e9, false);
    }

    private RwkvState initialState() {
        RwkvState s = model.newState();
        if (timeState != null) for (int l = 0; l < timeState.length; l++) be.copy(timeState[l], s.wkv[l]);
        return s;
    }

    // ------------------------------------------------------------------------------------------ checkpoints

    /** Trainable tensors by key (host copies), e.g. for saving the result. */
    public Map<String, HostTensor> trainablesToHost() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (Trainable t : optimizer.trainables()) out.put(t.key(), be.download(t.param()));
        return out;
    }

    /** Version of the checkpoint layout: 2 = trainer.json carries the SHA-256 of every file and of itself. */
    static final int CHECKPOINT_FORMAT = 2;
    static final String[] CHECKPOINT_FILES = {"trainable.safetensors", "optimizer.safetensors"};

    /**
     * Writes a checkpoint into {@code dir/step-NNNNNNNN} atomically: everything goes into a temporary directory that
     * is renamed when complete, then the {@code latest} pointer is replaced atomically. A kill at any moment leaves the
     * previous checkpoint loadable. trainer.json records the step (also stored in each safetensors file's metadata),
     * the size and SHA-256 of each file, and a SHA-256 of its own other fields; {@link #resume} verifies them all.
     */
    public Path saveCheckpoint(Path dir, String runFingerprint) {
        try {
            Files.createDirectories(dir);
            Checkpoints.removeStaleTemporaries(dir);
            String name = Checkpoints.dirName(step);
            Path tmp = Files.createTempDirectory(dir, Checkpoints.tempPrefix(name));
            Map<String, String> stepMeta = Map.of("step", Long.toString(step));
            Safetensors.write(tmp.resolve(CHECKPOINT_FILES[0]), trainablesToHost(), stepMeta);
            Safetensors.write(tmp.resolve(CHECKPOINT_FILES[1]), optimizer.stateToHost(), stepMeta);
            JsonObject meta = new JsonObject();
            meta.addProperty("format", CHECKPOINT_FORMAT);
            meta.addProperty("step", step);
            meta.addProperty("tokens", tokensSeen);
            meta.addProperty("non_finite_skipped", nonFiniteSkipped);
            meta.addProperty("total_steps", cfg.steps());
            meta.addProperty("run", runFingerprint);
            meta.addProperty("config", cfg.fingerprint());
            meta.addProperty("data", data.fingerprint());
            JsonObject files = new JsonObject();
            for (String f : CHECKPOINT_FILES) {
                JsonObject o = new JsonObject();
                o.addProperty("bytes", Files.size(tmp.resolve(f)));
                o.addProperty("sha256", ContentFingerprint.sha256(tmp.resolve(f)));
                files.add(f, o);
            }
            meta.add("files", files);
            meta.addProperty("sha256", ContentFingerprint.sha256(GSON.toJson(meta)));
            writeAtomically(tmp.resolve("trainer.json"), GSON.toJson(meta));
            Path finalDir = dir.resolve(name);
            if (Files.exists(finalDir)) deleteRecursively(finalDir);
            Files.move(tmp, finalDir, StandardCopyOption.ATOMIC_MOVE);
            writeAtomically(dir.resolve("latest"), name + "\n");
            return finalDir;
        } catch (IOException e) {
            throw new UncheckedIOException("writing checkpoint in " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Loads the checkpoint {@code dir/latest} points to, after verifying it (every file's size and SHA-256, the step
     * in the directory name, trainer.json and both safetensors files); refuses one made with other data, config or
     * model. The run may have more steps than the one that wrote the checkpoint (it is extended), not fewer.
     */
    public void resume(Path dir, String runFingerprint) {
        Checkpoints.Verified ck = Checkpoints.verify(dir);
        JsonObject meta = ck.meta();
        List<String> diffs = new ArrayList<>();
        compare(diffs, "model/run", Checkpoints.string(ck, "run"), runFingerprint);
        compare(diffs, "training config", Checkpoints.string(ck, "config"), cfg.fingerprint());
        compare(diffs, "data", Checkpoints.string(ck, "data"), data.fingerprint());
        if (!diffs.isEmpty()) throw new IllegalArgumentException("--resume " + ck.dir() + " does not match this run: " + String.join("; ", diffs));
        long savedStep = ck.step();
        if (savedStep > cfg.steps()) {
            throw new IllegalArgumentException("--resume " + ck.dir() + " is at step " + savedStep + ", beyond --steps " + cfg.steps()
                    + " (a resume can extend a run, not shorten it)");
        }
        long savedTokens = Checkpoints.number(ck, "tokens");
        long skipped = Checkpoints.number(ck, "non_finite_skipped");
        if (savedTokens < 0 || skipped < 0 || skipped > savedStep) {
            throw new IllegalArgumentException(ck.dir().resolve("trainer.json") + ": tokens " + savedTokens + " / non_finite_skipped " + skipped
                    + " do not fit step " + savedStep);
        }
        Map<String, HostTensor> saved = Safetensors.readTensors(ck.dir().resolve(CHECKPOINT_FILES[0]));
        for (Trainable t : optimizer.trainables()) {
            HostTensor h = saved.get(t.key());
            if (h == null || h.size() != t.param().size()) throw new IllegalArgumentException("checkpoint " + ck.dir() + " lacks or misshapes '" + t.key() + "'");
        }
        if (saved.size() != optimizer.trainables().size()) {
            throw new IllegalArgumentException("checkpoint " + ck.dir() + " holds " + saved.size() + " trainable tensors, this run trains "
                    + optimizer.trainables().size());
        }
        Map<String, HostTensor> moments = Safetensors.readTensors(ck.dir().resolve(CHECKPOINT_FILES[1]));
        long savedTotal = Checkpoints.number(ck, "total_steps");
        if (savedTotal != cfg.steps()) {
            System.err.printf("note: the run had %d steps, now %d: the learning-rate schedule is recomputed for %d from step %d on%n",
                    savedTotal, cfg.steps(), cfg.steps(), savedStep);
        }
        // everything checked: now change the trainer
        optimizer.loadState(moments, savedStep - skipped);
        for (Trainable t : optimizer.trainables()) {
            try (Tensor u = be.upload(saved.get(t.key()))) {
                be.copy(u, t.param());
            }
        }
        step = savedStep;
        tokensSeen = savedTokens;
        nonFiniteSkipped = (int) skipped;
    }

    private static void compare(List<String> diffs, String what, String saved, String now) {
        if (!saved.equals(now)) diffs.add(what + " was [" + saved + "], now [" + now + "]");
    }

    static final Gson GSON = new GsonBuilder().setPrettyPrinting().create();

    static void writeAtomically(Path file, String text) {
        ai.longrwkv.core.io.AtomicFiles.writeString(file, text);
    }

    static void deleteRecursively(Path p) throws IOException {
        try (var walk = Files.walk(p)) {
            for (Path x : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(x);
        }
    }

    @Override
    public void close() {
        optimizer.close();
        grads.close();
        if (timeState != null) {
            for (Tensor t : timeState) t.close();
            for (Tensor t : timeStateGrad) t.close();
        }
    }
}
