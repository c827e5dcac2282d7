package ai.longrwkv.statetuning;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.DataParallel;
import ai.longrwkv.core.train.MemoryPlan;
import ai.longrwkv.core.train.StateFile;
import ai.longrwkv.core.train.Trainer;
import ai.longrwkv.finetune.DataParallelRun;
import ai.longrwkv.finetune.DatasetSequences;
import ai.longrwkv.finetune.TrainingOptions;
import ai.longrwkv.finetune.TrainingRun;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/** {@code longrwkv state-tune}: train only the per-layer initial WKV state. */
@Command(name = "state-tune", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Train only the initial WKV state of every layer (state tuning); all weights stay frozen.", "",
                "The state (blocks.{i}.att.time_state, [H, N, N], zero init) gets the exact gradient through all chunks. "
                + "Writes DIR/state-final.pth in RWKV-PEFT's layout ([head][value][key], what the rwkv pip package loads), "
                + "plus checkpoints, metrics.jsonl, train_log.txt and loss.png."})
public final class StateTuneCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Base model: .pth, .safetensors or rwkv.cpp .bin.") Path model;
    @Option(names = "--lr", defaultValue = "1", description = "Peak learning rate (default: ${DEFAULT-VALUE}, the published state-tuning value).") double lr;
    @Option(names = "--lr-final", description = "Final learning rate (default: 0.01, or --lr if that is lower).") Double lrFinal;
    @Option(names = "--dtype", defaultValue = "bf16", description = "State file dtype: bf16 | fp16 | fp32 (default: ${DEFAULT-VALUE}).") String dtype;
    @Option(names = "--merge-dtype", defaultValue = "model", description = "dtype of the --merge-into output: model (the dtype "
            + "the model's tensors have; the widest if they differ) | bf16 | fp16 | fp32 (default: ${DEFAULT-VALUE}).") String mergeDtype;
    @Option(names = "--merge-into", description = "Also write DIR/<model name>-with-state.pth: this model plus the time_state keys.") Path mergeInto;
    @Mixin TrainingOptions train;

    @Override
    public Integer call() {
        train.validate();
        double finalLr = lrFinal != null ? lrFinal : Double.isFinite(lr) ? Math.min(0.01, lr) : 0.01;
        TrainingOptions.learningRates(lr, finalLr);
        PthWriter.Dtype outType = PthWriter.Dtype.parse(dtype);
        if (!mergeDtype.equalsIgnoreCase("model")) PthWriter.Dtype.parse(mergeDtype);   // a typo fails before training, not after
        ModelWeights weights = ModelFiles.load(model);
        Path dir = train.createOutDir();
        double gnEps = TrainingRun.groupNormEps(weights, train.gnEps);
        ModelConfig cfg = ModelConfig.fromWeights(weights, gnEps);
        String what = "state-tune of " + cfg;
        DataParallelRun.run(train, (be, dp, primary) -> {
            try (DatasetSequences data = train.openData()) {
                TrainingRun.checkVocab(data, cfg, train.data);
                MemoryPlan plan = TrainingRun.checkPlan(what, train.planSpec(cfg, Trainer.Mode.STATE, 0, 0), be, train);
                try (Rwkv5Model rm = Rwkv5Model.load(be, weights, gnEps, train.loadDtype(Trainer.Mode.STATE))) {
                    train.configure(rm, Trainer.Mode.STATE);
                    run(rm, be, dp, primary, data, cfg, weights, dir, finalLr, outType, plan);
                } catch (OutOfMemoryError e) {
                    throw TrainingRun.outOfMemory(what, plan, be, train, e);
                }
            }
        });
        return 0;
    }

    private void run(Rwkv5Model rm, Backend be, DataParallel dp, boolean primary, DatasetSequences data, ModelConfig cfg, ModelWeights weights,
                     Path dir, double finalLr, PthWriter.Dtype outType, MemoryPlan plan) {
        String fingerprint = TrainingRun.runFingerprint(TrainingRun.modelIdentity(model, null, train.seed), cfg, "mode=state");
        if (primary) System.out.printf("state-tune %s: %s, %s%s; %d trainable values; data %s (%,d tokens); ctx %s, chunk %d, bptt %s, %d steps; plan %s per step%n",
                weights.source(), cfg, train.precision().label(), train.gradCp ? ", grad-cp" : "",
                (long) cfg.nLayer() * cfg.nHead() * cfg.headSize() * cfg.headSize(), train.data,
                data.tokenCount(), train.schedule(), train.chunkLen, train.bptt, train.totalSteps(), MemoryPlan.human(plan.peakBytes()));
        try (Trainer trainer = new Trainer(rm, train.trainerConfig(Trainer.Mode.STATE, lr, finalLr, 10), data, null, Set.of(), dp)) {
            TrainingRun.run(trainer, train, fingerprint, primary);
            Map<String, HostTensor> result = trainer.gatherTrainables();   // ZeRO: each state from its owner
            if (!primary) return;
            HostTensor[] states = new HostTensor[cfg.nLayer()];
            for (int l = 0; l < states.length; l++) states[l] = result.get(Trainer.stateKey(l));
            Path out = dir.resolve("state-final.pth");
            StateFile.save(out, states, outType);
            System.out.println("wrote " + out + " (" + outType + ", layout [head][value][key])");
            if (mergeInto != null) {
                ModelWeights base = ModelFiles.load(mergeInto);
                ModelConfig.fromWeights(base, ModelFiles.defaultGroupNormEps(base));
                Map<String, ModelWeights.Entry> entries = new LinkedHashMap<>(base.entries());
                StateFile.toFileTensors(states).forEach((k, v) -> entries.put(k, new ModelWeights.InMemory(v)));
                String name = mergeInto.getFileName().toString().replaceFirst("\\.[^.]+$", "");
                Path merged = dir.resolve(name + "-with-state.pth");
                PthWriter.Dtype mergedType = mergeDtype.equalsIgnoreCase("model") ? modelDtype(base) : PthWriter.Dtype.parse(mergeDtype);
                PthWriter.write(merged, ModelWeights.lazy(entries, merged.toString(), base.impliedGroupNormEps()), mergedType, null);
                System.out.println("wrote " + merged + " (model + time_state keys, " + mergedType + ")");
            }
        }
    }

    /** The dtype a model's tensors are stored in (the widest when they differ: fp32 over fp16/bf16), so a merge keeps it. */
    static PthWriter.Dtype modelDtype(ModelWeights base) {
        PthWriter.Dtype widest = null;
        for (String k : base.keys()) {
            PthWriter.Dtype d = PthWriter.Dtype.parse(base.entries().get(k).dtype());
            if (widest == null || d.bytes() > widest.bytes()) widest = d;
        }
        return widest == null ? PthWriter.Dtype.FP32 : widest;
    }
}
