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

        /** What must match for a resume: everything that changes the numbers. */
        String fingerprint() {
            return mode + " chunk=" + chunkLen + " bptt=" + bptt + " micro=" + microBatch + " accum=" + gradAccum + " lr=" + lr
                    + " wd=" + weightDecay + " clip=" + gradClip + " l2wrap=" + l2Wrap;
        }
    }

    /** What one optimizer step did. */
    public record StepResult(long step, double loss, double lr, double gradNorm, long tokens, double seconds, boolean skipped) { }

    /** A step whose loss or gradient is NaN or infinite. */
    public static final class NonFiniteException extends RuntimeException {
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
        for (int i = 0; i < micro; i++) {
            TokenSequence seq = data.sequence(step * micro + i);
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
        double loss = lossSum / micro;
        if (micro > 1) for (Trainable t : optimizer.trainables()) be.scale(t.grad(), 1f / micro);
        double lr = cfg.lr().at(step);
        String bad = Double.isFinite(loss) ? optimizer.firstNonFiniteGrad() : "the loss";
        if (bad != null) {
            String msg = String.format("step %d: non-finite %s (loss %s)", step + 1, bad.equals("the loss") ? "loss" : "gradient of " + bad, loss);
            if (nonFiniteSkipped >= cfg.skipNonFinite()) {
                throw new NonFiniteException(msg + "; stopping (the last checkpoint is intact; --skip-nonfinite N skips up to N such steps)");
            }
            nonFiniteSkipped++;
            step++;
            return new StepResult(step, loss, lr, Double.NaN, tokens, (System.nanoTime() - t0) / 1e9, true);
        }
        double norm = optimizer.clipGradNorm(cfg.gradClip());
        optimizer.update(lr);
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

    /**
     * Writes a checkpoint into {@code dir/step-NNNNNNNN} atomically: everything goes into a temporary directory that
     * is renamed when complete, then the {@code latest} pointer is replaced atomically. A kill at any moment leaves the
     * previous checkpoint loadable.
     */
    public Path saveCheckpoint(Path dir, String runFingerprint) {
        try {
            Files.createDirectories(dir);
            String name = String.format("step-%08d", step);
            Path tmp = Files.createTempDirectory(dir, ".tmp-" + name + "-");
            Safetensors.write(tmp.resolve("trainable.safetensors"), trainablesToHost(), Map.of());
            Safetensors.write(tmp.resolve("optimizer.safetensors"), optimizer.stateToHost(), Map.of());
            JsonObject meta = new JsonObject();
            meta.addProperty("step", step);
            meta.addProperty("tokens", tokensSeen);
            meta.addProperty("non_finite_skipped", nonFiniteSkipped);
            meta.addProperty("run", runFingerprint);
            meta.addProperty("config", cfg.fingerprint());
            meta.addProperty("data", data.fingerprint());
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

    /** Loads the checkpoint {@code dir/latest} points to; refuses one made with other data, config or model. */
    public void resume(Path dir, String runFingerprint) {
        Path latest = dir.resolve("latest");
        try {
            if (!Files.isRegularFile(latest)) throw new IllegalArgumentException("--resume " + dir + ": no checkpoint there (no 'latest' file)");
            Path ck = dir.resolve(Files.readString(latest, StandardCharsets.UTF_8).trim());
            JsonObject meta = GSON.fromJson(Files.readString(ck.resolve("trainer.json"), StandardCharsets.UTF_8), JsonObject.class);
            List<String> diffs = new ArrayList<>();
            compare(diffs, "model/run", meta.get("run").getAsString(), runFingerprint);
            compare(diffs, "training config", meta.get("config").getAsString(), cfg.fingerprint());
            compare(diffs, "data", meta.get("data").getAsString(), data.fingerprint());
            if (!diffs.isEmpty()) throw new IllegalArgumentException("--resume " + ck + " does not match this run: " + String.join("; ", diffs));
            Map<String, HostTensor> saved = Safetensors.readTensors(ck.resolve("trainable.safetensors"));
            for (Trainable t : optimizer.trainables()) {
                HostTensor h = saved.get(t.key());
                if (h == null || h.size() != t.param().size()) throw new IllegalArgumentException("checkpoint " + ck + " lacks or misshapes '" + t.key() + "'");
                try (Tensor u = be.upload(h)) {
                    be.copy(u, t.param());
                }
            }
            step = meta.get("step").getAsLong();
            tokensSeen = meta.get("tokens").getAsLong();
            nonFiniteSkipped = meta.get("non_finite_skipped").getAsInt();
            optimizer.loadState(Safetensors.readTensors(ck.resolve("optimizer.safetensors")), step - nonFiniteSkipped);
        } catch (IOException e) {
            throw new UncheckedIOException("reading checkpoint in " + dir + ": " + e.getMessage(), e);
        }
    }

    private static void compare(List<String> diffs, String what, String saved, String now) {
        if (!saved.equals(now)) diffs.add(what + " was [" + saved + "], now [" + now + "]");
    }

    private static final Gson GSON = new GsonBuilder().setPrettyPrinting().create();

    static void writeAtomically(Path file, String text) {
        ai.longrwkv.core.io.AtomicFiles.writeString(file, text);
    }

    private static void deleteRecursively(Path p) throws IOException {
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
