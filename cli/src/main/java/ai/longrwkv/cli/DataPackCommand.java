package ai.longrwkv.cli;

import ai.longrwkv.datasets.Lengths;
import ai.longrwkv.datasets.pack.BoundaryMode;
import ai.longrwkv.datasets.pack.LengthMix;
import ai.longrwkv.datasets.pack.Packer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** `data pack`: documents into long training sequences. */
@Command(name = "pack", mixinStandardHelpOptions = true,
        description = {"Pack the documents of a dataset into sequences of exact lengths (binidx + mask + PREFIX2.segments +",
                "PREFIX2.meta.json). Documents up to the longest length stay whole; longer ones are cut into pieces of that",
                "length. Short documents share a sequence (each already ends with token 0); what is left at the end of a",
                "sequence is padding (token 0, not trained). Every input token appears exactly once."})
final class DataPackCommand implements Callable<Integer> {
    @Option(names = "--data", required = true, paramLabel = "PREFIX", description = "Input dataset (from data build or any binidx).")
    Path data;

    @Option(names = "--seq-len", required = true, paramLabel = "N", description = "Longest sequence length in tokens (e.g. 131072 or 128k).")
    String seqLen;

    @Option(names = "--out", required = true, paramLabel = "PREFIX2", description = "Output prefix.")
    Path out;

    @Option(names = "--mix", paramLabel = "L:F,...",
            description = "Token shares per sequence length, e.g. 4096:0.25,16384:0.25,65536:0.5; shares below 1 leave the rest to --seq-len (default: all at --seq-len).")
    String mix;

    @Option(names = "--state-at-doc-boundary", defaultValue = "carry", paramLabel = "MODE",
            description = "carry (default: the state runs on across token 0, as RWKV-LM and infctx train) | reset (the trainer resets the state at each document start; use it for chat and roleplay conversations, which start from the initial state at inference). Stored in the pack; the trainer honours it.")
    String boundary;

    @Option(names = "--seed", defaultValue = "1", description = "Seed for tie order and the sequence order (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--no-shuffle", description = "Keep sequences and documents in packing order instead of a seeded shuffle.")
    boolean noShuffle;

    @Override
    public Integer call() {
        int maxLen = Lengths.parse("--seq-len", seqLen);
        if (maxLen < 2) throw new IllegalArgumentException("--seq-len must be at least 2");
        LengthMix lengthMix = LengthMix.parse(mix, maxLen);
        Packer.Report r = Packer.pack(data, out, new Packer.Options(maxLen, lengthMix, BoundaryMode.parse(boundary), seed, !noShuffle));
        long total = r.inputTokens() + r.paddingTokens();
        System.out.printf(Locale.ROOT, "wrote %s: %,d sequences, %,d tokens (%,d from the input, %,d padding = %.3f%%), %.1f%% trained, in %.1f s%n",
                r.prefix(), r.sequences(), total, r.inputTokens(), r.paddingTokens(), total == 0 ? 0.0 : 100.0 * r.paddingTokens() / total,
                total == 0 ? 0.0 : 100.0 * r.trainedTokens() / total, r.seconds());
        System.out.printf("%10s %10s %16s %10s %10s%n", "length", "sequences", "tokens", "requested", "achieved");
        for (Packer.LengthStats s : r.lengths()) {
            System.out.printf(Locale.ROOT, "%10d %10d %,16d %9.1f%% %9.1f%%%n", s.length(), s.sequences(), s.tokens(),
                    100 * s.requestedShare(), 100 * s.achievedShare());
        }
        return 0;
    }
}
