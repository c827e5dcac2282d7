package ai.longrwkv.finetune;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.MemoryPlan;
import ai.longrwkv.core.train.Trainer;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/** {@code longrwkv finetune}: full or LoRA finetuning with chunked BPTT. */
@Command(name = "finetune", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Finetune an x052 model (all weights or LoRA adapters) at any context length.", "",
                "Each sequence is processed in --chunk-len chunks with the state carried and, with --bptt full, the exact "
                + "gradient across chunks. Writes DIR/rwkv-final.pth (or DIR/lora-final.pth), checkpoints, metrics.jsonl, "
                + "train_log.txt and loss.png."})
public final class FinetuneCommand implements Callable<Integer> {
    @Option(names = "--model", description = "Base model: .pth, .safetensors or rwkv.cpp .bin.") Path model;
    @Option(names = "--init", description = "Start from a new model instead: L,C[,vocab] (x052 init, head size 64).") String init;
    @Option(names = "--mode", defaultValue = "full", description = "full | lora (default: ${DEFAULT-VALUE}).") String mode;
    @Option(names = "--lora-r", defaultValue = "16", description = "LoRA rank (default: ${DEFAULT-VALUE}).") int loraR;
    @Option(names = "--lora-alpha", defaultValue = "32", description = "LoRA alpha; scale = alpha / r (default: ${DEFAULT-VALUE}).") double loraAlpha;
    @Option(names = "--lora-targets", defaultValue = "att.receptance,att.key,att.value,att.gate,att.output,ffn.key,ffn.value,ffn.receptance",
            split = ",", description = "Projections to adapt (default: all eight).") List<String> loraTargets;
    @Option(names = "--train-extra", split = ",", description = "With LoRA also train: time (time_* parameters), ln (LayerNorms).") List<String> trainExtra;
    @Option(names = "--lr", defaultValue = "1e-5", description = "Peak learning rate (default: ${DEFAULT-VALUE}, RWKV-LM's advice for finetunes).") double lr;
    @Option(names = "--lr-final", description = "Final learning rate (default: lr / 10).") Double lrFinal;
    @Option(names = "--dtype", defaultValue = "bf16", description = "Output dtype: bf16 | fp16 | fp32 (default: ${DEFAULT-VALUE}).") String dtype;
    @Mixin TrainingOptions train;

    @Override
    public Integer call() {
        train.validate();
        Trainer.Mode m = switch (mode) {
            case "full" -> Trainer.Mode.FULL;
            case "lora" -> Trainer.Mode.LORA;
            default -> throw new IllegalArgumentException("--mode must be full or lora, got '" + mode + "'");
        };
        double finalLr = lrFinal != null ? lrFinal : lr / 10;
        TrainingOptions.learningRates(lr, finalLr);
        if (m == Trainer.Mode.LORA) {
            if (loraR < 1) throw new IllegalArgumentException("--lora-r must be >= 1, got " + loraR);
            TrainingOptions.finiteAbove("--lora-alpha", loraAlpha, 0);
        }
        if (init != null) TrainingRun.initConfig(init);   // refuse a bad --init before anything is loaded
        PthWriter.Dtype outType = PthWriter.Dtype.parse(dtype);
        Set<String> extra = trainExtra == null ? Set.of() : Set.copyOf(trainExtra);
        for (String e : extra) if (!e.equals("time") && !e.equals("ln")) throw new IllegalArgumentException("--train-extra takes time and/or ln, got '" + e + "'");
        ModelWeights weights = TrainingRun.loadOrInit(model, init, train.seed);
        Path dir = train.createOutDir();
        double gnEps = TrainingRun.groupNormEps(weights, train.gnEps);
        ModelConfig cfg = ModelConfig.fromWeights(weights, gnEps);
        if (m == Trainer.Mode.LORA && loraR > cfg.nEmbd()) {
            // the rank of B A ([out, r] x [r, in]) is at most min(out, in): a larger r only costs memory (C for every target here)
            throw new IllegalArgumentException("--lora-r " + loraR + " is above the model's embedding size " + cfg.nEmbd()
                    + ": the adapter's rank cannot exceed min(out, in) = " + cfg.nEmbd() + ", so --lora-r must be 1.." + cfg.nEmbd());
        }
        String what = "finetune --mode " + mode + (m == Trainer.Mode.LORA ? " --lora-r " + loraR : "") + " of " + cfg;
        DataParallelRun.run(train, (be, dp, primary) -> train(be, dp, primary, m, weights, cfg, gnEps, what, extra, finalLr, dir, outType));
        return 0;
    }

    /** One rank's (or the one device's) training: load, check, train, and on rank 0 write the result. */
    private void train(Backend be, ai.longrwkv.core.train.DataParallel dp, boolean primary, Trainer.Mode m, ModelWeights weights,
                       ModelConfig cfg, double gnEps, String what, Set<String> extra, double finalLr, Path dir, PthWriter.Dtype outType) {
        try (DatasetSequences data = train.openData()) {
            TrainingRun.checkVocab(data, cfg, train.data);
            int targets = loraTargets.contains("all") ? 8 : loraTargets.size();
            MemoryPlan plan = TrainingRun.checkPlan(what, train.planSpec(cfg, m, loraR, targets), be, train);
            try (Rwkv5Model rm = Rwkv5Model.load(be, weights, gnEps, train.loadDtype(m))) {
                train.configure(rm, m);
                LoraSet lora = m == Trainer.Mode.LORA ? LoraSet.create(be, cfg, loraTargets, loraR, loraAlpha, train.seed) : null;
                rm.setLora(lora);
                String fingerprint = TrainingRun.runFingerprint(TrainingRun.modelIdentity(model, init, train.seed), cfg, "mode=" + mode
                        + (lora != null ? " r=" + loraR + " alpha=" + loraAlpha + " targets=" + loraTargets + " extra=" + extra : ""));
                if (primary) System.out.printf("finetune (%s) %s: %s, %,d params, %s%s; data %s (%,d tokens, %s); ctx %s, chunk %d, bptt %s%s, %d steps; plan %s per step%n",
                        mode, weights.source(), cfg, cfg.parameterCount(), train.precision().label(), train.gradCp ? ", grad-cp" : "", train.data,
                        data.tokenCount(), data.sampling().name().toLowerCase(), train.schedule(), train.chunkLen, train.bptt, train.prefixGradLabel(), train.totalSteps(),
                        MemoryPlan.human(plan.peakBytes()));
                try (Trainer trainer = new Trainer(rm, train.trainerConfig(m, lr, finalLr, 0), data, lora, extra, dp)) {
                    TrainingRun.run(trainer, train, fingerprint, primary);
                    // every trained tensor as its owner holds it (ZeRO: another rank's fp32 master may exist there only)
                    // (one device: read from the backend a block at a time while written, never the whole model in Java memory)
                    Map<String, ModelWeights.Entry> result = trainer.gatherTrainableEntries();
                    if (!primary) return;
                    if (m == Trainer.Mode.FULL) {
                        Path out = dir.resolve("rwkv-final.pth");
                        PthWriter.write(out, ModelWeights.lazy(result, out.toString(), gnEps), outType, null);
                        System.out.println("wrote " + out + " (" + outType + ")");
                    } else {
                        Path out = dir.resolve("lora-final.pth");
                        Map<String, HostTensor> adapter = new LinkedHashMap<>();
                        result.forEach((k, e) -> adapter.put(k, e.load()));
                        PthWriter.write(out, adapter, outType);
                        writeAdapterInfo(dir.resolve("lora-final.json"), lora, loraTargets, extra);
                        System.out.println("wrote " + out + " (" + adapter.size() + " tensors, " + outType + "); merge with `longrwkv lora merge`");
                    }
                } finally {
                    if (lora != null) lora.close();
                }
            } catch (OutOfMemoryError e) {
                throw TrainingRun.outOfMemory(what, plan, be, train, e);
            }
        }
    }

    static void writeAdapterInfo(Path file, LoraSet lora, List<String> targets, Set<String> extra) {
        JsonObject o = new JsonObject();
        o.addProperty("r", lora.rank());
        o.addProperty("alpha", lora.alpha());
        o.addProperty("targets", String.join(",", targets));
        o.addProperty("extra", String.join(",", extra));
        try {
            Files.writeString(file, new GsonBuilder().setPrettyPrinting().create().toJson(o));
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file + ": " + e.getMessage(), e);
        }
    }
}
