package ai.longrwkv.cli;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.util.Progress;
import ai.longrwkv.datasets.Lengths;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.eval.PositionLoss;
import ai.longrwkv.eval.Prefill;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** `eval position-loss`: loss by log-spaced token position, one curve per model (and state). */
@Command(name = "position-loss", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Mean next-token loss by token position, one curve per model.",
                "The loss is averaged per log-spaced position bucket over held-out documents of at least --ctx-len + 1",
                "tokens, one curve per --model (each with its own optional --state). A curve that keeps falling with position",
                "means the model uses distant context: the quickest check that a long-context finetune worked.",
                "Writes DIR/position-loss.csv and DIR/position-loss.png (log-x) and prints the table.",
                "Example: --model base.pth --model tuned.pth --model base.pth --state state.pth --data held-out --ctx-len 128k"})
final class EvalPositionLossCommand implements Callable<Integer> {
    /** One curve: a model and the state it starts from. */
    static final class Curve {
        @Option(names = "--model", required = true, description = "Model file (repeat for more curves).") Path model;
        @Option(names = "--state", description = "Tuned state for the --model before it.") Path state;
        @Option(names = "--label", description = "Name of the curve (default: the file names).") String label;
    }

    @ArgGroup(exclusive = false, multiplicity = "1..*")
    List<Curve> curves;

    @Option(names = "--data", required = true, paramLabel = "PREFIX", description = "Held-out dataset (binidx PREFIX.bin/.idx from `data build`).")
    Path data;

    @Option(names = "--ctx-len", required = true, paramLabel = "T", description = "Positions measured, e.g. 131072 or 128k.")
    String ctxLen;

    @Option(names = "--docs", defaultValue = "8", description = "Documents averaged: the first N with at least ctx-len + 1 tokens (default: ${DEFAULT-VALUE}).")
    int docs;

    @Option(names = "--buckets-per-octave", defaultValue = "2", description = "Position buckets per doubling (default: ${DEFAULT-VALUE}).")
    int perOctave;

    @Option(names = "--chunk-len", defaultValue = "" + Prefill.DEFAULT_CHUNK_LEN, description = "Tokens per chunk (default: ${DEFAULT-VALUE}).")
    int chunkLen;

    @Option(names = "--gn-eps", description = "ln_x GroupNorm eps (default: 1e-5 for rwkv.cpp files, else 64e-5).")
    Double gnEps;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu | cuda | auto | emulated (the CUDA kernels run on the CPU, for testing) (default: ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory.")
    Path out;

    @Override
    public Integer call() {
        int t = Lengths.parse("--ctx-len", ctxLen);
        if (docs < 1) throw new IllegalArgumentException("--docs must be >= 1, got " + docs);
        Cli.range("--buckets-per-octave", perOctave, 1, 64);
        if (chunkLen < 1) throw new IllegalArgumentException("--chunk-len must be >= 1, got " + chunkLen);
        int[] edges = PositionLoss.bucketEdges(t, perOctave);
        List<int[]> documents;
        try (BinIdxDataset d = BinIdxDataset.open(data)) {
            documents = PositionLoss.documents(d, t, docs);
        }
        if (documents.size() < docs) {
            System.err.printf("note: %s has only %d document%s of at least %d tokens; averaging over those%n", data, documents.size(),
                    documents.size() == 1 ? "" : "s", t + 1);
        }
        Map<String, double[]> results = new LinkedHashMap<>();
        for (Curve c : curves) {
            String label = c.label != null ? c.label : EvalModelOptions.label(c.model, c.state);
            if (results.containsKey(label)) label = label + " (" + (results.size() + 1) + ")";
            ModelWeights w = Cli.load(c.model);
            long t0 = System.nanoTime();
            double[] perPosition;
            try (Backend be = Backends.create(device); Rwkv5Model m = Rwkv5Model.load(be, w, Cli.groupNormEps(w, gnEps));
                 RwkvState s0 = Cli.initialState(m, w, c.state);
                 ProgressBar bar = Progress.bar("position-loss " + label, (long) t * documents.size(), "tok")) {
                for (int[] doc : documents) {
                    for (int token : doc) {
                        if (token >= m.config().vocabSize()) {
                            throw new IllegalArgumentException(data + ": token " + token + " is outside the vocabulary of " + c.model
                                    + " (" + m.config().vocabSize() + "): the data was tokenized for another model");
                        }
                    }
                }
                perPosition = PositionLoss.perPosition(m, s0, documents, t, chunkLen, bar::stepBy);
            }
            double secs = (System.nanoTime() - t0) / 1e9;
            System.out.printf("%s: %,d tokens in %.1f s, %,.0f tokens/s%n", label, (long) t * documents.size(), secs, t * documents.size() / secs);
            results.put(label, PositionLoss.bucketMeans(perPosition, edges));
        }
        PositionLoss.write(out, edges, results, documents.size(), System.out);
        return 0;
    }
}
