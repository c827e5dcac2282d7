package ai.longrwkv.cli;

import ai.longrwkv.datasets.synth.Haystack;
import ai.longrwkv.datasets.synth.PasskeyTask;
import ai.longrwkv.eval.Grid;
import ai.longrwkv.eval.RetrievalEval;
import ai.longrwkv.eval.Scoring;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** `eval passkey`: the Landmark-attention pass key test over lengths x depths. */
@Command(name = "passkey", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Passkey retrieval over a length x depth grid (Mohtashami and Jaggi 2023).",
                "The key (1..50000) is hidden at a depth of the filler; the model completes 'What is the pass key? The pass key is' by greedy decoding, correct iff the first",
                "integer it writes equals the key. Prompts are those of `data synth passkey` (lengths and depths in tokens).",
                "Writes DIR/trials.jsonl, summary.csv (length x depth -> accuracy, answer-token loss), heatmap.png, run.json",
                "and prints the table and the prefill throughput."})
final class EvalPasskeyCommand implements Callable<Integer> {
    @Mixin EvalModelOptions modelOptions;

    @Option(names = "--lengths", required = true, paramLabel = "L,...",
            description = "Prompt lengths in tokens: 1k,2k,4k,...,128k (k = 1024; 'a,b,c,...,z' continues the progression).")
    String lengths;

    @Option(names = "--depths", defaultValue = "0,10,...,100", paramLabel = "D,...",
            description = "Depths of the key in percent of the filler (default: ${DEFAULT-VALUE}).")
    String depths;

    @Option(names = "--trials", defaultValue = "5", description = "Trials (different keys and fillers) per length x depth (default: ${DEFAULT-VALUE}).")
    int trials;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed; use another than the training data's (default: ${DEFAULT-VALUE}).")
    long seed;

    /** generate's spelling of --max-new-tokens, so that both work here. */
    @Option(names = "--max-tokens", hidden = true, paramLabel = "N", description = "Same as --max-new-tokens.")
    Integer maxTokens;

    @Option(names = "--max-new-tokens", defaultValue = "10", paramLabel = "N", description = "Greedy tokens generated per trial (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--haystack", paramLabel = "FILE", description = "Filler from this UTF-8 text file instead of the Landmark filler.")
    Path haystack;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory.")
    Path out;

    @Override
    public Integer call() {
        Cli.range("--trials", trials, 1, 1_000_000);
        if (maxTokens != null) maxNewTokens = maxTokens;
        Cli.range(maxTokens != null ? "--max-tokens" : "--max-new-tokens", maxNewTokens, 1, 1_000_000);
        var lengthList = Grid.lengths("--lengths", lengths);
        double[] depthList = Grid.depthsPercent("--depths", depths);
        try (EvalModelOptions.Loaded m = modelOptions.load()) {
            Haystack hay = haystack == null ? Haystack.synthetic(m.tokenizer) : Haystack.fromFile(haystack, m.tokenizer);
            RetrievalEval.Config cfg = new RetrievalEval.Config("passkey", new PasskeyTask(m.tokenizer, hay), Scoring.EXACT_INTEGER,
                    lengthList, depthList, trials, seed, maxNewTokens, modelOptions.chunkLen, out);
            RetrievalEval.run(m.model, m.initial, m.tokenizer, cfg, m.label, System.out);
        }
        return 0;
    }
}
