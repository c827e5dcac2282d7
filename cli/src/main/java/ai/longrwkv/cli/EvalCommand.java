package ai.longrwkv.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** `longrwkv eval ...`: does a model (with an optional tuned state) use long context? (the eval module) */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = {"Long-context evaluation at any length with constant memory (prompts are prefilled in chunks with the",
                "state carried; see ../shared/docs/long-context-eval.md for the tests these follow).",
                "  passkey        the Landmark-attention pass key test over a length x depth grid",
                "  niah           RULER-style needles: single, multikey (and multivalue / multiquery where available)",
                "  position-loss  mean loss by log-spaced token position over held-out long documents"},
        subcommands = {EvalPasskeyCommand.class, EvalNiahCommand.class, EvalPositionLossCommand.class})
public final class EvalCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
