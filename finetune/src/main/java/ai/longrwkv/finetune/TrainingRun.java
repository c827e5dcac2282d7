package ai.longrwkv.finetune;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelInit;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
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
        String[] p = init.split(",");
        if (p.length < 2 || p.length > 3) throw new IllegalArgumentException("--init must be L,C or L,C,vocab, got '" + init + "'");
        try {
            int layers = Integer.parseInt(p[0].trim()), embd = Integer.parseInt(p[1].trim());
            int vocab = p.length == 3 ? Integer.parseInt(p[2].trim()) : 65536;
            return ModelInit.x052(ModelConfig.forInit(layers, embd, Math.min(64, embd), vocab), seed);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--init must be numbers L,C[,vocab], got '" + init + "'");
        }
    }

    public static double groupNormEps(ModelWeights w, Double user) {
        return user != null ? user : ModelFiles.defaultGroupNormEps(w);
    }

    /** Refuses data whose tokenizer does not fit the model's vocabulary, before any work. */
    public static void checkVocab(DatasetSequences data, ModelConfig cfg, Path prefix) {
        int hint = data.vocabHint();
        if (hint > 0 && hint != cfg.vocabSize()) {
            throw new IllegalArgumentException(prefix + " was tokenized for a vocabulary of " + hint + " but the model has "
                    + cfg.vocabSize() + " (use the model's tokenizer in `data build`)");
        }
    }

    /** A description of what a resume must match: the base model and how it is trained. */
    public static String runFingerprint(String modelSource, ModelConfig cfg, String extra) {
        return modelSource + " " + cfg + " " + extra;
    }

    /** The backend for --device cpu|cuda|auto; says on stderr which one runs and, if the GPU is not used, why. */
    public static Backend backend(String device) {
        Backend be = Backends.create(device);
        System.err.println(Backends.describe(be));
        return be;
    }

    /** Runs to the end (resuming first if asked); prints a one-line summary per 10% and at the end. */
    public static List<Trainer.StepResult> run(Trainer trainer, TrainingOptions o, String runFingerprint) {
        Path dir = o.outDir();
        TrainingJob job = new TrainingJob(trainer, dir, o.saveEvery, runFingerprint);
        if (o.resume != null) {
            trainer.resume(o.resume.resolve("checkpoints"), runFingerprint);
            System.out.printf("resumed %s at step %d%n", o.resume, trainer.step());
        }
        List<Trainer.StepResult> results = job.run(o.totalSteps());
        if (!results.isEmpty()) {
            Trainer.StepResult last = results.get(results.size() - 1);
            double secs = results.stream().mapToDouble(Trainer.StepResult::seconds).sum();
            long toks = results.stream().mapToLong(Trainer.StepResult::tokens).sum();
            System.out.printf("trained %d steps to step %d: last loss %.4f, %.0f tokens/s; logs in %s%n",
                    results.size(), last.step(), last.loss(), toks / Math.max(secs, 1e-9), dir);
        }
        return results;
    }
}
