package ai.longrwkv.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** `longrwkv data ...`: training data for long-context finetuning (the datasets module). */
@Command(name = "data", mixinStandardHelpOptions = true,
        description = {"Build, pack, generate and inspect training data (binidx + loss mask, see datasets/README.md).",
                "  build: jsonl / txt / chat / PIPPA to PREFIX.bin/.idx/.mask",
                "  pack:  documents into long sequences with a length mix",
                "  synth: synthetic passkey / needle-in-a-haystack samples",
                "  stats: counts, length histogram, trained fraction, a decoded sample"},
        subcommands = {DataBuildCommand.class, DataPackCommand.class, DataSynthCommand.class, DataStatsCommand.class})
public final class DataCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
