package ai.longrwkv.cli;

import ai.longrwkv.datasets.synth.Haystack;
import ai.longrwkv.datasets.synth.SynthTask;
import ai.longrwkv.datasets.synth.SynthTasks;
import ai.longrwkv.eval.Grid;
import ai.longrwkv.eval.RetrievalEval;
import ai.longrwkv.eval.Scoring;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** `eval niah`: RULER-style needles in a haystack over lengths x depths. */
@Command(name = "niah", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Needle in a haystack with RULER's needles over a length x depth grid.",
                "Needles are 'One of the special magic numbers for {key} is: {value}.' (7-digit values), greedy decoding after RULER's answer prefix, scored by containment (the fraction of the",
                "expected values found in the output, ignoring case). Prompts are those of `data synth niah|multikey`.",
                "  single      one needle, asked for",
                "  multikey    --needles needles with different keys (distractors), one asked for",
                "  multivalue, multiquery: RULER's other variants, when the datasets generators provide them",
                "Writes DIR/trials.jsonl, summary.csv, heatmap.png, run.json and prints the table."})
final class EvalNiahCommand implements Callable<Integer> {
    @Mixin EvalModelOptions modelOptions;

    @Option(names = "--mode", defaultValue = "single", description = "single | multikey | multivalue | multiquery (default: ${DEFAULT-VALUE}).")
    String mode;

    @Option(names = "--needles", description = "Needles per prompt for multikey (default: 4, RULER's).")
    Integer needles;

    @Option(names = "--haystack", defaultValue = "synthetic", paramLabel = "FILE|synthetic",
            description = "Haystack text: a UTF-8 file (repeated and cut to length in tokens), or 'synthetic' for the Landmark filler (default: ${DEFAULT-VALUE}).")
    String haystack;

    @Option(names = "--lengths", required = true, paramLabel = "L,...",
            description = "Prompt lengths in tokens: 4k,8k,...,128k (k = 1024; 'a,b,c,...,z' continues the progression).")
    String lengths;

    @Option(names = "--depths", defaultValue = "0,10,...,100", paramLabel = "D,...",
            description = "Depths of the queried needle in percent of the haystack (default: ${DEFAULT-VALUE}).")
    String depths;

    @Option(names = "--trials", defaultValue = "5", description = "Trials per length x depth (default: ${DEFAULT-VALUE}).")
    int trials;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    /** generate's spelling of --max-new-tokens, so that both work here. */
    @Option(names = "--max-tokens", hidden = true, paramLabel = "N", description = "Same as --max-new-tokens.")
    Integer maxTokens;

    @Option(names = "--max-new-tokens", defaultValue = "32", paramLabel = "N", description = "Greedy tokens generated per trial (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory.")
    Path out;

    @Override
    public Integer call() {
        Cli.range("--trials", trials, 1, 1_000_000);
        if (maxTokens != null) maxNewTokens = maxTokens;
        Cli.range(maxTokens != null ? "--max-tokens" : "--max-new-tokens", maxNewTokens, 1, 1_000_000);
        var lengthList = Grid.lengths("--lengths", lengths);
        double[] depthList = Grid.depthsPercent("--depths", depths);
        String m = mode.strip().toLowerCase(Locale.ROOT);
        String taskName = switch (m) {
            case "single" -> "niah";
            case "multikey", "multivalue", "multiquery" -> m;
            default -> throw new IllegalArgumentException("--mode must be single, multikey, multivalue or multiquery, got '" + mode + "'");
        };
        if (m.equals("single") && needles != null && needles != 1) {
            throw new IllegalArgumentException("--mode single has one needle; use --mode multikey for " + needles);
        }
        int needleCount = needles != null ? needles : SynthTasks.DEFAULT_MULTIKEY_NEEDLES;
        try (EvalModelOptions.Loaded loaded = modelOptions.load()) {
            Haystack hay = haystack.equals("synthetic") ? Haystack.synthetic(loaded.tokenizer)
                    : Haystack.fromFile(Path.of(haystack), loaded.tokenizer);
            SynthTask task;
            try {
                task = SynthTasks.create(taskName, loaded.tokenizer, hay, needleCount);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--mode " + m + ": " + e.getMessage());
            }
            RetrievalEval.Config cfg = new RetrievalEval.Config("niah-" + m, task, Scoring.CONTAINMENT, lengthList, depthList, trials, seed,
                    maxNewTokens, modelOptions.chunkLen, out);
            RetrievalEval.run(loaded.model, loaded.initial, loaded.tokenizer, cfg,
                    loaded.label + (haystack.equals("synthetic") ? "" : ", haystack " + Path.of(haystack).getFileName()), System.out);
        }
        return 0;
    }
}
