package ai.longrwkv.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** `longrwkv data ...`: training data for long-context finetuning (the datasets module). */
@Command(name = "data", mixinStandardHelpOptions = true,
        description = {"Build, pack, generate and inspect training data (binidx + loss mask).",
                "The formats and tasks are described in datasets/README.md."},
        subcommands = {DataBuildCommand.class, DataPackCommand.class, DataSynthCommand.class, DataStatsCommand.class})
public final class DataCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
