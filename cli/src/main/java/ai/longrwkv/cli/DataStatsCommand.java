package ai.longrwkv.cli;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.stats.DatasetStats;
import com.google.gson.JsonObject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** `data stats`: summary of a dataset. */
@Command(name = "stats", mixinStandardHelpOptions = true,
        description = {"Documents, tokens, length histogram, trained fraction (and packing details for packed datasets), and one",
                "document decoded back to text with the trained parts between ⟦ and ⟧."})
final class DataStatsCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "PREFIX", description = "Dataset prefix (PREFIX.idx, PREFIX.bin, ...).")
    Path prefix;

    @Option(names = "--tokenizer", paramLabel = "SPEC", description = "Tokenizer for the decoded sample (default: the one in PREFIX.meta.json; none: no sample).")
    String tokenizerSpec;

    @Option(names = "--sample", defaultValue = "0", paramLabel = "I", description = "Which document to decode (default: ${DEFAULT-VALUE}).")
    int sample;

    @Option(names = "--sample-tokens", defaultValue = "400", paramLabel = "N", description = "Decode at most this many tokens of it (default: ${DEFAULT-VALUE}).")
    int sampleTokens;

    @Override
    public Integer call() {
        if (sample < 0) throw new IllegalArgumentException("--sample must be >= 0 (a document index), got " + sample);
        if (sampleTokens < 1) throw new IllegalArgumentException("--sample-tokens must be >= 1, got " + sampleTokens);
        String spec = tokenizerSpec;
        if (spec == null) {
            JsonObject meta = DatasetMeta.read(prefix);
            spec = DatasetMeta.string(meta, "tokenizer", null);
        }
        Tokenizer tokenizer = null;
        if (spec != null) {
            try {
                tokenizer = Tokenizers.parse(spec);
            } catch (IllegalArgumentException e) {
                if (tokenizerSpec != null) throw e;
                System.out.println("(no decoded sample: the tokenizer recorded in the metadata is not usable here: " + e.getMessage() + ")");
            }
        }
        System.out.print(DatasetStats.report(prefix, tokenizer, sample, Math.max(1, sampleTokens)));
        return 0;
    }
}
