package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.dist.ZeroShards;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
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

        /**
         * Whether sequence {@code index} continues the text of sequence index - 1 (the next piece of the same document,
         * the next slice of a stream): --carry-state then starts it from that one's final state; otherwise from the
         * initial state, unless the state is carried across documents too.
         */
        default boolean continuesPrevious(long index) { return false; }
    }

    public enum Mode { FULL, LORA, STATE }

    /**
     * @param carry state passing between consecutive sequences ({@link CarryState}); in STATE mode the state is carried
     *              within a step only: each step's first sequence starts from the tuned state, which is what is trained
     * @param carryAcrossDocuments carry also into a sequence that does not continue the one before (a new document):
     *              Buitrago and Gu's state passing; false: only within a document stream ({@link SequenceSource#continuesPrevious})
     * @param prefixGradMargin {@code --prefix-grad stationary}: with --carry-state stop, a piece that continues a document
     *              has the gradient its prefix would have had estimated ({@link PrefixGradient}) at the last chunk boundary
     *              at least this many tokens before its first trained token; -1: off
     * @param stateGrowthPenalty {@code --state-growth-penalty}: {@link StateGrowthPenalty}'s weight on each trained sequence's
     *              WKV state growth (end over start); 0: off
     */
    public record Config(Mode mode, int chunkLen, BpttMode bptt, int microBatch, int gradAccum, long steps,
                         LrSchedule lr, double weightDecay, double gradClip, boolean l2Wrap, int skipNonFinite, CarryState carry,
                         boolean carryAcrossDocuments, int prefixGradMargin, double stateGrowthPenalty) {
        public Config {
            StateGrowthPenalty.checkWeight(stateGrowthPenalty);
            if (microBatch < 1 || gradAccum < 1) throw new IllegalArgumentException("--micro-batch and --grad-accum must be >= 1");
            if (steps < 1) throw new IllegalArgumentException("--steps must be >= 1");
            if (carry == null) carry = CarryState.OFF;
            if (carry == CarryState.FLOW && bptt != BpttMode.FULL) {
                throw new IllegalArgumentException("--carry-state flow needs --bptt full (truncated BPTT stops the gradient at every chunk end,"
                        + " so none could cross a sequence boundary); use --carry-state stop");
            }
            if (prefixGradMargin >= 0 && (carry != CarryState.STOP || bptt != BpttMode.FULL || mode == Mode.STATE)) {
                throw new IllegalArgumentException("--prefix-grad stationary needs --carry-state stop and --bptt full (it stands in for the"
                        + " gradient the stop cuts off; state tuning carries no state across steps), got --carry-state " + carry.cliName()
                        + " --bptt " + bptt.name().toLowerCase(java.util.Locale.ROOT) + (mode == Mode.STATE ? " in state tuning" : ""));
            }
        }

        /** Without a state-growth penalty. */
        public Config(Mode mode, int chunkLen, BpttMode bptt, int microBatch, int gradAccum, long steps,
                      LrSchedule lr, double weightDecay, double gradClip, boolean l2Wrap, int skipNonFinite, CarryState carry,
                      boolean carryAcrossDocuments, int prefixGradMargin) {
            this(mode, chunkLen, bptt, microBatch, gradAccum, steps, lr, weightDecay, gradClip, l2Wrap, skipNonFinite, carry, carryAcrossDocuments,
                    prefixGradMargin, 0);
        }

        /** Without a prefix-gradient estimate. */
        public Config(Mode mode, int chunkLen, BpttMode bptt, int microBatch, int gradAccum, long steps,
                      LrSchedule lr, double weightDecay, double gradClip, boolean l2Wrap, int skipNonFinite, CarryState carry,
                      boolean carryAcrossDocuments) {
            this(mode, chunkLen, bptt, microBatch, gradAccum, steps, lr, weightDecay, gradClip, l2Wrap, skipNonFinite, carry, carryAcrossDocuments, -1);
        }

        /** State passing across documents too (when carry is not OFF). */
        public Config(Mode mode, int chunkLen, BpttMode bptt, int microBatch, int gradAccum, long steps,
                      LrSchedule lr, double weightDecay, double gradClip, boolean l2Wrap, int skipNonFinite, CarryState carry) {
            this(mode, chunkLen, bptt, microBatch, gradAccum, steps, lr, weightDecay, gradClip, l2Wrap, skipNonFinite, carry, true);
        }

        /** Without state passing. */
        public Config(Mode mode, int chunkLen, BpttMode bptt, int microBatch, int gradAccum, long steps,
                      LrSchedule lr, double weightDecay, double gradClip, boolean l2Wrap, int skipNonFinite) {
            this(mode, chunkLen, bptt, microBatch, gradAccum, steps, lr, weightDecay, gradClip, l2Wrap, skipNonFinite, CarryState.OFF, false);
        }

        /** Whether a state crosses from one step to the next (and so must be in a checkpoint). */
        boolean carriesAcrossSteps() { return carry != CarryState.OFF && mode != Mode.STATE; }

        int microSteps() { return microBatch * gradAccum; }

        /**
         * What must match for a resume: everything that changes the numbers, except the number of steps (a resume
         * may extend a run; the learning-rate schedule is then recomputed for the new total).
         */
        String fingerprint() { return fingerprint(1); }

        /**
         * With {@code ranks} data-parallel ranks the micro-batch is the group's (ranks x micro-batch): the same data
         * and grouping as one device with that micro-batch (see {@link DataParallel}).
         */
        String fingerprint(int ranks) {
            return mode + " chunk=" + chunkLen + " bptt=" + bptt + " micro=" + (long) microBatch * ranks + " accum=" + gradAccum
                    + " lr=" + lr.lrInit() + " lr_final=" + lr.lrFinal() + " warmup=" + lr.warmupSteps() + " schedule=" + lr.kind()
                    + " wd=" + weightDecay + " clip=" + gradClip + " l2wrap=" + l2Wrap + (carry == CarryState.OFF ? "" : " carry=" + carry.cliName() + (carryAcrossDocuments ? "+documents" : ""))
                    + (prefixGradMargin < 0 ? "" : " prefix_grad=stationary/" + prefixGradMargin)
                    + (stateGrowthPenalty == 0 ? "" : " state_growth_penalty=" + stateGrowthPenalty);
        }
    }

    /** What one optimizer step did. */
    public record StepResult(long step, double loss, double lr, double gradNorm, long tokens, double seconds, boolean skipped, boolean stateOnly) {
        public StepResult(long step, double loss, double lr, double gradNorm, long tokens, double seconds, boolean skipped) {
            this(step, loss, lr, gradNorm, tokens, seconds, skipped, false);
        }
    }

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
    /** Data parallel: this rank's group and ZeRO stage (null: one device). */
    private final DataParallel dp;
    /** ZeRO 1/2: the rank that owns each trainable ({@link ZeroShards}); null when nothing is sharded. */
    private final int[] owners;
    /** Data parallel: when and how the gradients are reduced (null: one device). */
    private final GradientReduction reduction;
    /** ZeRO 2: the gradient tensors this trainer made (closed with it): owned accumulators and the others' scratch. */
    private final List<Tensor> zero2Owned = new ArrayList<>();
    /** ZeRO 1/2 in mixed precision: trainables whose fp32 master this rank freed (another rank owns them). */
    private final java.util.Set<String> releasedMasters = new java.util.HashSet<>();
    private final java.util.Set<Tensor> zero2Scratch = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
    /** --carry-state: the final state of the last sequence trained, the next sequence's initial state (null: none yet). */
    private RwkvState carried;
    private long step;
    private long tokensSeen;
    private int nonFiniteSkipped;

    /**
     * @param lora        adapters to train (mode LORA), already set on the model; null otherwise
     * @param extraLoraTrain in LORA mode also train these small parameters: "time" (time_*), "ln" (LayerNorms, ln_x)
     */
    public Trainer(Rwkv5Model model, Config cfg, SequenceSource data, LoraSet lora, Set<String> extraLoraTrain) {
        this(model, cfg, data, lora, extraLoraTrain, null);
    }

    /** @param dp this rank's data-parallel group (null: one device) */
    public Trainer(Rwkv5Model model, Config cfg, SequenceSource data, LoraSet lora, Set<String> extraLoraTrain, DataParallel dp) {
        if (dp != null && dp.world() > 1 && cfg.carry() != CarryState.OFF) {
            throw new IllegalArgumentException("--carry-state with several devices is not supported: each rank trains its own share of the sequences,"
                    + " so no rank sees the sequence before its own; use one device or --carry-state off");
        }
        this.dp = dp != null && dp.world() > 1 ? dp : null;
        this.model = model;
        this.be = model.backend();
        this.cfg = cfg;
        this.data = data;
        this.lora = lora;
        ModelConfig mc = model.config();
        // which model parameters train, and the sizes of everything trained (the order of the trainables below)
        Predicate<ParamSpec> trained = switch (cfg.mode()) {
            case FULL -> spec -> true;
            case LORA -> spec -> (extraLoraTrain.contains("time") && spec.key().contains(".time_"))
                    || (extraLoraTrain.contains("ln") && (spec.key().contains(".ln") || spec.key().startsWith("ln_out")));
            case STATE -> spec -> false;   // weights frozen: no weight gradients at all
        };
        if (cfg.mode() == Mode.LORA && (lora == null || model.lora() != lora)) throw new IllegalArgumentException("LoRA mode needs the adapters set on the model");
        List<ZeroShards.Entry> sizes = new ArrayList<>();
        for (ParamSpec spec : ParamSpec.all(mc)) if (trained.test(spec)) sizes.add(new ZeroShards.Entry(spec.key(), model.params().get(spec.key()).size()));
        if (cfg.mode() == Mode.LORA) {
            lora.adapters().forEach((k, ad) -> {
                String base = k.substring(0, k.length() - ".weight".length());
                sizes.add(new ZeroShards.Entry(base + ".lora_A", ad.a.size()));
                sizes.add(new ZeroShards.Entry(base + ".lora_B", ad.b.size()));
            });
        }
        if (cfg.mode() == Mode.STATE) for (int l = 0; l < mc.nLayer(); l++) sizes.add(new ZeroShards.Entry(stateKey(l), (long) mc.nHead() * mc.headSize() * mc.headSize()));
        if (this.dp != null && this.dp.sharded()) {   // the ownership the plan assumes (MemoryPlan uses the same ZeroShards)
            ZeroShards shards = ZeroShards.assign(sizes, this.dp.world());
            owners = sizes.stream().mapToInt(e -> shards.owner(e.key())).toArray();
        } else {
            owners = null;
        }
        grads = this.dp != null && this.dp.zero() == 2 ? shardedGradients(mc, trained) : ParamSet.zeros(be, mc, trained);
        List<Trainable> trainables = new ArrayList<>();
        for (String k : grads.keys()) trainables.add(Trainable.of(k, model.params().get(k), grads.get(k)));
        if (cfg.mode() == Mode.LORA) {
            lora.adapters().forEach((k, ad) -> {
                String base = k.substring(0, k.length() - ".weight".length());
                trainables.add(new Trainable(base + ".lora_A", ad.a, ad.gradA, 1.0, false));
                trainables.add(new Trainable(base + ".lora_B", ad.b, ad.gradB, 1.0, false));
            });
        }
        if (cfg.mode() == Mode.STATE) {
            timeState = new Tensor[mc.nLayer()];
            timeStateGrad = new Tensor[mc.nLayer()];
            for (int l = 0; l < mc.nLayer(); l++) {
                timeState[l] = be.zeros(mc.nHead(), mc.headSize(), mc.headSize());
                timeStateGrad[l] = be.zeros(mc.nHead(), mc.headSize(), mc.headSize());
                trainables.add(new Trainable(stateKey(l), timeState[l], timeStateGrad[l], 1.0, false));
            }
        } else {
            timeState = timeStateGrad = null;
        }
        boolean[] stepped = new boolean[trainables.size()];
        for (int i = 0; i < stepped.length; i++) stepped[i] = owners == null || owners[i] == this.dp.rank();
        this.optimizer = new AdamW(be, trainables, stepped, AdamW.Hyper.rwkvDefaults(cfg.weightDecay()));
        this.reduction = this.dp == null ? null : new GradientReduction(be, this.dp, trainables, owners, mc.nLayer(), zero2Scratch, Trainer::blockOf);
        if (owners != null) {
            // ZeRO 1/2 in mixed precision: the fp32 master of a matrix another rank owns is never read here (the forward
            // reads the bf16 copy its owner broadcasts), so it is freed: the master weights are sharded too
            for (int i = 0; i < trainables.size(); i++) {
                Trainable t = trainables.get(i);
                Tensor read = model.readTensor(t.key());
                if (owners[i] != this.dp.rank() && read != null && read != t.param()) {
                    t.param().close();
                    releasedMasters.add(t.key());
                }
            }
        }
    }

    /**
     * ZeRO 2's gradients: an accumulator for each trained parameter this rank owns; for the others a scratch tensor
     * that holds one chunk's gradient until it is reduced to its owner: per layer parameter, one of two tensors shared
     * by the even and the odd layers (layer l's is reduced while layer l-1 is computed); the embedding, head and the
     * norms outside the blocks each their own.
     */
    private ParamSet shardedGradients(ModelConfig mc, Predicate<ParamSpec> trained) {
        Map<String, Tensor> shared = new java.util.HashMap<>();
        int[] index = {0};
        return ParamSet.of(mc, spec -> {
            if (!trained.test(spec)) return null;
            if (owners[index[0]++] == dp.rank()) {
                Tensor acc = be.zeros(spec.shape());
                zero2Owned.add(acc);
                return acc;
            }
            Tensor scratch = spec.layer() >= 0
                    ? shared.computeIfAbsent(spec.kind() + "/" + (spec.layer() % 2), k -> be.zeros(spec.shape()))
                    : be.zeros(spec.shape());
            zero2Scratch.add(scratch);
            return scratch;
        });
    }

    /** Which block's backward completes the gradient of parameter {@code key}: see {@link GradientReduction}. */
    private static Integer blockOf(String key) {
        if (DataParallel.reducedAtStepEnd(key)) return null;
        if (key.contains(".ln0.") || !key.startsWith("blocks.")) return -1;
        return Integer.parseInt(key.substring("blocks.".length(), key.indexOf('.', "blocks.".length())));
    }

    /** This rank's share of the step's sequences: micro-sequence i of step s (see {@link DataParallel}). */
    private long dataIndex(long s, int micro, int i) {
        return dp == null ? s * micro + i : (s * dp.world() + dp.rank()) * micro + i;
    }

    /** The .pth key of layer l's tuned state. */
    public static String stateKey(int l) {
        return "blocks." + l + ".att.time_state";
    }

    public long step() { return step; }
    public Rwkv5Model model() { return model; }
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
        if (cfg.carry() == CarryState.OFF) {
            TokenSequence[] seqs = new TokenSequence[micro];
            int backwards = 0;
            for (int i = 0; i < micro; i++) {
                seqs[i] = data.sequence(dataIndex(step, micro, i));
                if (seqs[i].lossPositions() > 0) backwards += ChunkedBptt.backwardCount(seqs[i], cfg.chunkLen());
            }
            if (reduction != null) {
                reduction.beginStep(backwards);
                model.setGradientHook(reduction);
            }
            try {
            for (int i = 0; i < micro; i++) {
                TokenSequence seq = seqs[i];
                // a sequence with no trained target has no loss: training on it would move every weight through L2Wrap alone
                if (seq.lossPositions() == 0) continue;
                used++;
                tokens += seq.length();
                try (RwkvState s0 = initialState()) {
                    ChunkedBptt.Result r = ChunkedBptt.run(model, seq, s0, grads,
                            new ChunkedBptt.Options(cfg.chunkLen(), cfg.bptt(), cfg.l2Wrap(), null, cfg.stateGrowthPenalty()), cfg.mode() == Mode.STATE, null);
                    r.finalState().close();
                    addTimeStateGrad(r.initialStateGrad());
                    lossSum += r.loss();
                }
            }
            } finally {
                model.setGradientHook(null);
            }
            if (reduction != null) reduction.endStep();
        } else {
            StreamLoss sl = carriedStream(micro);
            lossSum = sl.lossSum;
            used = sl.used;
            tokens = sl.tokens;
        }
        if (dp != null) {   // the group's totals: every rank then takes the same decisions below
            double[] sums = dp.comm().allReduceSum(new double[]{lossSum, used, tokens});
            lossSum = sums[0];
            used = (int) sums[1];
            tokens = (long) sums[2];
        }
        if (used == 0 && cfg.carry() != CarryState.OFF) {
            // --carry-state: a step inside a long document's untrained part only carries the state on; no update
            step++;
            tokensSeen += tokens;
            return new StepResult(step, 0, cfg.lr().at(step - 1), 0, tokens, (System.nanoTime() - t0) / 1e9, false, true);
        }
        if (used == 0) {
            int world = dp == null ? 1 : dp.world();
            throw new IllegalArgumentException(String.format("step %d: none of its %d sequences (data indices %d..%d) has a trained target "
                    + "(all loss-mask flags 0): nothing to learn from", step + 1, micro * world, step * micro * world, (step + 1) * micro * world - 1));
        }
        double loss = lossSum / used;
        List<Trainable> ts = optimizer.trainables();
        if (used > 1) for (int i = 0; i < ts.size(); i++) if (optimizer.steps(i)) be.scale(ts.get(i).grad(), 1f / used);
        double lr = cfg.lr().at(step);
        double[] squares = optimizer.gradSquares();
        if (owners != null) squares = dp.comm().allReduceSum(squares);   // each entry from its owner alone: x + 0 + ... = x exactly
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
        double[] updated = optimizer.step(lr, AdamW.clipFactor(cfg.gradClip(), norm));
        if (owners != null) {
            updated = dp.comm().allReduceSum(updated);
            shareUpdatedTensors();
        } else {
            model.refreshWorkingCopy();   // mixed precision: the bf16 matrices the next step reads, from the updated fp32 master
        }
        String overflowed = optimizer.firstNonFinite(updated);
        // a finite gradient with a huge learning rate can still overflow the weights: stop at this step, naming them
        if (overflowed != null) {
            throw new NonFiniteException(String.format("step %d: the update made %s non-finite (lr %s, gradient norm %s); stopping"
                    + " (the last checkpoint is intact: resume from it with a lower --lr)", step + 1, overflowed, lr, norm));
        }
        step++;
        tokensSeen += tokens;
        return new StepResult(step, loss, lr, norm, tokens, (System.nanoTime() - t0) / 1e9, false);
    }

    /**
     * ZeRO 1 and 2, after the owners stepped their tensors: each owner refreshes what the forward reads (the bf16 working copy
     * of a matrix in mixed precision, else the tensor itself) and broadcasts it to the other ranks.
     */
    private void shareUpdatedTensors() {
        List<Trainable> ts = optimizer.trainables();
        java.util.Set<String> mine = new java.util.HashSet<>();
        for (int i = 0; i < ts.size(); i++) if (owners[i] == dp.rank()) mine.add(ts.get(i).key());
        model.refreshWorkingCopy(mine);
        for (int i = 0; i < ts.size(); i++) {
            Tensor read = model.readTensor(ts.get(i).key());
            dp.comm().broadcast(read != null ? read : ts.get(i).param(), owners[i]);
        }
    }

    private record StreamLoss(double lossSum, int used, long tokens) { }

    /**
     * --prefix-grad: how many tokens of its document come before sequence {@code index} (the lengths of the sequences it
     * continues, back to the document's first). Counted from the data, so a resumed run gets the same numbers.
     */
    private long prefixTokens(long index) {
        long tokens = 0;
        for (long i = index; i > 0 && data.continuesPrevious(i); i--) {
            tokens += data.sequence(i - 1).length();
        }
        return tokens;
    }

    /**
     * --carry-state: the step's sequences as one stream, each starting from the final state of the one before (the
     * first from the state the previous step left, or the initial state). A sequence with no trained target still
     * passes its state on. FLOW: a forward pass finds each sequence's initial state, then the sequences are trained
     * last to first, the initial-state gradient of each entering the one before as its final-state gradient.
     */
    private StreamLoss carriedStream(int micro) {
        ChunkedBptt.Options opt = new ChunkedBptt.Options(cfg.chunkLen(), cfg.bptt(), cfg.l2Wrap(), null, cfg.stateGrowthPenalty());
        TokenSequence[] seqs = new TokenSequence[micro];
        for (int i = 0; i < micro; i++) {
            seqs[i] = data.sequence(dataIndex(step, micro, i));
            if (seqs[i].resets().length > 0) {
                throw new IllegalArgumentException("training sequence " + (step * micro + i) + " resets the state at document starts (a pack made with"
                        + " --state-at-boundary reset): --carry-state passes the state from one sequence into the next, use a pack without resets or --carry-state off");
            }
        }
        // which sequences start from the state before them: within a document stream, or always (across documents)
        boolean[] continues = new boolean[micro];
        for (int i = 0; i < micro; i++) continues[i] = cfg.carryAcrossDocuments() || data.continuesPrevious(step * micro + i);
        RwkvState start = carried != null && cfg.mode() != Mode.STATE && continues[0] ? carried : initialState();
        if (carried != null && start != carried) carried.close();
        carried = null;
        double lossSum = 0;
        int used = 0;
        long tokens = 0;
        boolean stateGrad = cfg.mode() == Mode.STATE;
        if (cfg.carry() == CarryState.STOP) {
            for (int i = 0; i < micro; i++) {
                boolean trained = seqs[i].lossPositions() > 0;
                if (i > 0 && !continues[i]) {   // a new document: from the initial state
                    start.close();
                    start = initialState();
                }
                if (!trained) {   // nothing to learn here: only the state moves on
                    advance(seqs[i], start);
                    tokens += seqs[i].length();
                    continue;
                }
                ChunkedBptt.Options o = opt;
                if (cfg.prefixGradMargin() >= 0) {   // within a document only: a new one's state says nothing of this one
                    long index = step * micro + i;
                    o = opt.withPrefixGradient(PrefixGradient.stationary(model, prefixTokens(index),
                            PrefixGradient.boundaryBefore(seqs[i].firstLossPosition(), cfg.prefixGradMargin(), cfg.chunkLen())));
                }
                ChunkedBptt.Result r = ChunkedBptt.run(model, seqs[i], start, grads, o, stateGrad && (i == 0 || !continues[i]), null);
                start.close();
                start = r.finalState();
                if (trained) {
                    used++;
                    tokens += seqs[i].length();
                    lossSum += r.loss();
                    addTimeStateGrad(r.initialStateGrad());
                } else if (r.initialStateGrad() != null) {
                    r.initialStateGrad().close();
                }
            }
            carried = start;
            return new StreamLoss(lossSum, used, tokens);
        }
        // FLOW: initial states by a forward pass, then backward through the stream
        RwkvState[] starts = new RwkvState[micro + 1];
        starts[0] = start;
        try {
            for (int i = 0; i < micro; i++) {
                RwkvState end = starts[i].copy(be);
                advance(seqs[i], end);
                if (i + 1 < micro && !continues[i + 1]) {   // a new document: from the initial state
                    end.close();
                    end = initialState();
                }
                starts[i + 1] = end;
            }
            RwkvState dNext = null;   // gradient of the later sequences' losses w.r.t. the final state of sequence i
            for (int i = micro - 1; i >= 0; i--) {
                boolean trained = seqs[i].lossPositions() > 0;
                ChunkedBptt.Result r;
                if (trained || dNext != null) {
                    r = ChunkedBptt.run(model, seqs[i], starts[i], grads, opt, (i > 0 && continues[i]) || stateGrad, null, dNext);
                } else {
                    r = new ChunkedBptt.Result(0, 0, null, null);   // nothing after it depends on it yet: no gradient
                }
                if (r.finalState() != null) r.finalState().close();
                if (dNext != null) dNext.close();
                dNext = null;
                tokens += seqs[i].length();
                if (trained) {
                    used++;
                    lossSum += r.loss();
                }
                if (i > 0 && continues[i]) {
                    dNext = r.initialStateGrad();
                } else if (i > 0) {
                    addTimeStateGrad(r.initialStateGrad());   // it started from the initial state: state tuning trains that
                } else {
                    addTimeStateGrad(r.initialStateGrad());
                }
            }
            carried = starts[micro];
            starts[micro] = null;
            return new StreamLoss(lossSum, used, tokens);
        } finally {
            for (RwkvState s : starts) if (s != null) s.close();
        }
    }

    /** Chunks of at least this many tokens when the state only has to move on (no head, no loss, no gradient). */
    static final int ADVANCE_CHUNK = 1024;

    /**
     * Runs a sequence's tokens through the model from {@code state}, updating it in place: no logits, no loss. For
     * sequences that only pass their state on (a document's pieces before its trained part), at eval speed.
     */
    private void advance(TokenSequence seq, RwkvState state) {
        int c = Math.max(cfg.chunkLen(), ADVANCE_CHUNK);
        int[] t = seq.tokens();
        for (int from = 0; from < t.length; from += c) {
            model.forward(java.util.Arrays.copyOfRange(t, from, Math.min(t.length, from + c)), state, false, false).close();
        }
    }

    /** Adds an initial-state gradient into the tuned state's gradient (STATE mode) and closes it; null: nothing. */
    private void addTimeStateGrad(RwkvState g) {
        if (g == null) return;
        if (timeStateGrad != null) for (int l = 0; l < timeStateGrad.length; l++) be.add(timeStateGrad[l], g.wkv[l], timeStateGrad[l]);
        g.close();
    }

    /** The state the next training sequence starts from under --carry-state (null before the first step, or when none is carried). */
    public RwkvState carriedState() { return carried; }

    private RwkvState initialState() {
        RwkvState s = model.newState();
        if (timeState != null) for (int l = 0; l < timeState.length; l++) be.copy(timeState[l], s.wkv[l]);
        return s;
    }

    // ------------------------------------------------------------------------------------------ checkpoints

    /**
     * The trained tensors, for writing the result: on one device and on rank 0 of a group every trainable by key (host
     * copies; with ZeRO 1/2 each from its owner, the only rank holding its current fp32 value), null on the other ranks.
     * A collective: every rank of a group calls it.
     */
    public Map<String, HostTensor> gatherTrainables() {
        if (owners == null) return dp == null || dp.rank() == 0 ? trainablesToHost() : null;
        Map<String, HostTensor> out = dp.rank() == 0 ? new LinkedHashMap<>() : null;
        List<Trainable> ts = optimizer.trainables();
        for (int i = 0; i < ts.size(); i++) {
            Trainable t = ts.get(i);
            boolean freed = releasedMasters.contains(t.key());
            Tensor buf = freed ? be.zeros(t.param().shape()) : t.param();
            try {
                dp.comm().broadcast(buf, owners[i]);
                if (out != null) out.put(t.key(), be.download(buf));
            } finally {
                if (freed) buf.close();
            }
        }
        return out;
    }

    /**
     * As {@link #gatherTrainables}, as entries: on one device or at ZeRO 0 each read from this rank's tensor only while
     * it is written (a full finetune's result is not held in Java memory whole; {@link ModelWeights#ofTensor}), with
     * ZeRO 1/2 the gathered host copies. The same collective: every rank of a group calls it; null on ranks other than 0.
     */
    public Map<String, ModelWeights.Entry> gatherTrainableEntries() {
        if (owners == null) return dp == null || dp.rank() == 0 ? trainableEntries() : null;
        Map<String, HostTensor> gathered = gatherTrainables();
        if (gathered == null) return null;
        Map<String, ModelWeights.Entry> out = new LinkedHashMap<>();
        gathered.forEach((k, h) -> out.put(k, new ModelWeights.InMemory(h)));
        return out;
    }

    /** Trainable tensors by key, each read from the backend only while it is written ({@link ModelWeights#ofTensor}). */
    public Map<String, ModelWeights.Entry> trainableEntries() {
        Map<String, ModelWeights.Entry> out = new LinkedHashMap<>();
        for (Trainable t : optimizer.trainables()) out.put(t.key(), ModelWeights.ofTensor(be, t.param()));
        return out;
    }

    /** Trainable tensors by key (host copies), e.g. for saving the result. */
    public Map<String, HostTensor> trainablesToHost() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (Trainable t : optimizer.trainables()) out.put(t.key(), be.download(t.param()));
        return out;
    }

    /** Version of the checkpoint layout: 2 = trainer.json carries the SHA-256 of every file and of itself. */
    static final int CHECKPOINT_FORMAT = 2;
    static final String[] CHECKPOINT_FILES = {"trainable.safetensors", "optimizer.safetensors"};
    /** --carry-state: the state the next step starts from, so that a resumed run continues the same stream of states. */
    static final String CARRY_FILE = "carry.safetensors";

    /**
     * Writes a checkpoint into {@code dir/step-NNNNNNNN} atomically: everything goes into a temporary directory that
     * is renamed when complete, then the {@code latest} pointer is replaced atomically. A kill at any moment leaves the
     * previous checkpoint loadable. trainer.json records the step (also stored in each safetensors file's metadata),
     * the size and SHA-256 of each file, and a SHA-256 of its own other fields; {@link #resume} verifies them all.
     */
    public Path saveCheckpoint(Path dir, String runFingerprint) {
        try {
            boolean primary = dp == null || dp.rank() == 0;
            String name = Checkpoints.dirName(step);
            Path tmp;
            if (dp == null) {
                Files.createDirectories(dir);
                Checkpoints.removeStaleTemporaries(dir);
                tmp = Files.createTempDirectory(dir, Checkpoints.tempPrefix(name));
            } else {
                // one temporary directory for the group, named after rank 0's process (which alone cleans up and renames)
                long pid = (long) dp.comm().allReduceSum(new double[]{primary ? ProcessHandle.current().pid() : 0})[0];
                tmp = dir.resolve(Checkpoints.tempPrefix(name, pid) + "ranks");
                if (primary) {
                    Files.createDirectories(dir);
                    Checkpoints.removeStaleTemporaries(dir);
                    if (Files.exists(tmp)) deleteRecursively(tmp);
                    Files.createDirectories(tmp);
                }
                dp.comm().barrier();
            }
            Map<String, String> stepMeta = Map.of("step", Long.toString(step));
            List<String> written = new ArrayList<>();
            if (owners == null) {   // one device, or ZeRO 0 (every rank holds the same values): one set of files
                if (primary) {
                    // streamed from the backend: a full finetune's weights and moments never sit in the Java heap whole
                    Safetensors.writeEntries(tmp.resolve(CHECKPOINT_FILES[0]), trainableEntries(), stepMeta);
                    Safetensors.writeEntries(tmp.resolve(CHECKPOINT_FILES[1]), optimizer.stateEntries(), stepMeta);
                    written.addAll(List.of(CHECKPOINT_FILES));
                    if (cfg.carriesAcrossSteps() && carried != null) {
                        Safetensors.write(tmp.resolve(CARRY_FILE), carried.toHost(be, "carry."), stepMeta);
                        written.add(CARRY_FILE);
                    }
                }
            } else {   // ZeRO 1: each rank writes the tensors it owns and their moments
                Map<String, ModelWeights.Entry> mine = new LinkedHashMap<>();
                List<Trainable> ts = optimizer.trainables();
                for (int i = 0; i < ts.size(); i++) if (owners[i] == dp.rank()) mine.put(ts.get(i).key(), ModelWeights.ofTensor(be, ts.get(i).param()));
                Safetensors.writeEntries(tmp.resolve(shardFile(CHECKPOINT_FILES[0], dp.rank())), mine, stepMeta);
                Safetensors.writeEntries(tmp.resolve(shardFile(CHECKPOINT_FILES[1], dp.rank())), optimizer.stateEntries(), stepMeta);
                for (int r = 0; r < dp.world(); r++) {
                    written.add(shardFile(CHECKPOINT_FILES[0], r));
                    written.add(shardFile(CHECKPOINT_FILES[1], r));
                }
            }
            if (dp != null) dp.comm().barrier();
            Path finalDir = dir.resolve(name);
            if (primary) {
                JsonObject meta = new JsonObject();
                meta.addProperty("format", CHECKPOINT_FORMAT);
                meta.addProperty("step", step);
                meta.addProperty("tokens", tokensSeen);
                meta.addProperty("non_finite_skipped", nonFiniteSkipped);
                meta.addProperty("total_steps", cfg.steps());
                meta.addProperty("run", runFingerprint);
                meta.addProperty("config", cfg.fingerprint(dp == null ? 1 : dp.world()));
                meta.addProperty("data", data.fingerprint());
                if (owners != null) {
                    meta.addProperty("ranks", dp.world());
                    meta.addProperty("zero", dp.zero());
                }
                JsonObject files = new JsonObject();
                for (String f : written) {
                    JsonObject o = new JsonObject();
                    o.addProperty("bytes", Files.size(tmp.resolve(f)));
                    o.addProperty("sha256", ContentFingerprint.sha256(tmp.resolve(f)));
                    files.add(f, o);
                }
                meta.add("files", files);
                meta.addProperty("sha256", ContentFingerprint.sha256(GSON.toJson(meta)));
                writeAtomically(tmp.resolve("trainer.json"), GSON.toJson(meta));
                if (Files.exists(finalDir)) deleteRecursively(finalDir);
                Files.move(tmp, finalDir, StandardCopyOption.ATOMIC_MOVE);
                writeAtomically(dir.resolve("latest"), name + "\n");
            }
            if (dp != null) dp.comm().barrier();
            return finalDir;
        } catch (IOException e) {
            throw new UncheckedIOException("writing checkpoint in " + dir + ": " + e.getMessage(), e);
        }
    }

    /** The name of rank {@code rank}'s part of a sharded checkpoint file: trainable.rank-1.safetensors. */
    static String shardFile(String file, int rank) {
        return file.replace(".safetensors", ".rank-" + rank + ".safetensors");
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
        compare(diffs, "training config", Checkpoints.string(ck, "config"), cfg.fingerprint(dp == null ? 1 : dp.world()));
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
        // every layout (one device, ZeRO 0, or a ZeRO 1 checkpoint's shards) resumes on any number of ranks and stage:
        // the trainables are the union of the trainable files, the moments the union of the optimizer files
        Map<String, HostTensor> saved = Checkpoints.readAll(ck, CHECKPOINT_FILES[0]);
        for (Trainable t : optimizer.trainables()) {
            HostTensor h = saved.get(t.key());
            if (h == null || h.size() != t.param().size()) throw new IllegalArgumentException("checkpoint " + ck.dir() + " lacks or misshapes '" + t.key() + "'");
        }
        if (saved.size() != optimizer.trainables().size()) {
            throw new IllegalArgumentException("checkpoint " + ck.dir() + " holds " + saved.size() + " trainable tensors, this run trains "
                    + optimizer.trainables().size());
        }
        Map<String, HostTensor> moments = Checkpoints.readAll(ck, CHECKPOINT_FILES[1]);
        long savedTotal = Checkpoints.number(ck, "total_steps");
        if (savedTotal != cfg.steps() && (dp == null || dp.rank() == 0)) {
            System.err.printf("note: the run had %d steps, now %d: the learning-rate schedule is recomputed for %d from step %d on%n",
                    savedTotal, cfg.steps(), cfg.steps(), savedStep);
        }
        RwkvState carriedState = null;
        if (cfg.carriesAcrossSteps() && savedStep > 0) {
            if (!ck.meta().getAsJsonObject("files").has(CARRY_FILE)) {
                throw new IllegalArgumentException("checkpoint " + ck.dir() + " has no " + CARRY_FILE + ": a --carry-state run cannot continue its stream of states without it");
            }
            Map<String, HostTensor> c = Safetensors.readTensors(ck.dir().resolve(CARRY_FILE));
            carriedState = model.newState();
            try {
                Map<String, HostTensor> shapes = carriedState.toHost(be, "carry.");
                for (int l = 0; l < carriedState.attX.length; l++) {
                    Tensor[][] parts = {carriedState.attX, carriedState.ffnX, carriedState.wkv};
                    String[] names = {".att_x", ".ffn_x", ".wkv"};
                    for (int p = 0; p < 3; p++) {
                        String key = "carry." + l + names[p];
                        HostTensor h = c.get(key);
                        if (h == null || h.size() != shapes.get(key).size()) {
                            throw new IllegalArgumentException(ck.dir().resolve(CARRY_FILE) + " lacks or misshapes '" + key + "'");
                        }
                        try (Tensor u = be.upload(h)) {
                            be.copy(u, parts[p][l]);
                        }
                    }
                }
            } catch (RuntimeException e) {
                carriedState.close();
                throw e;
            }
        }
        // everything checked: now change the trainer
        if (carried != null) carried.close();
        carried = carriedState;
        optimizer.loadState(moments, savedStep - skipped);
        for (Trainable t : optimizer.trainables()) {
            try (Tensor u = be.upload(saved.get(t.key()))) {
                // a freed master (another rank's): straight into the bf16 copy, rounded as a refresh would round it
                be.copy(u, releasedMasters.contains(t.key()) ? model.readTensor(t.key()) : t.param());
            }
        }
        // mixed precision: the bf16 matrices the next step reads, from the resumed master
        java.util.Set<String> fromMaster = new java.util.HashSet<>(model.params().keys());
        fromMaster.removeAll(releasedMasters);
        model.refreshWorkingCopy(fromMaster);
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
        for (Tensor t : zero2Owned) t.close();
        for (Tensor t : zero2Scratch) t.close();
        if (carried != null) carried.close();
        optimizer.close();
        grads.close();
        if (timeState != null) {
            for (Tensor t : timeState) t.close();
            for (Tensor t : timeStateGrad) t.close();
        }
    }
}
