package ai.longrwkv.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** `longrwkv eval ...`: does a model (with an optional tuned state) use long context? (the eval module) */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = {"Long-context evaluation at any length with constant memory.",
                "Prompts are prefilled in chunks with the state carried, so memory does not grow with the prompt length."},
        subcommands = {EvalPasskeyCommand.class, EvalNiahCommand.class, EvalPositionLossCommand.class, EvalPersonaCommand.class, EvalStateGrowthCommand.class})
public final class EvalCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
