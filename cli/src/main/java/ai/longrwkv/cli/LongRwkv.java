package ai.longrwkv.cli;

import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.finetune.FinetuneCommand;
import ai.longrwkv.finetune.LoraCommand;
import ai.longrwkv.statetuning.StateTuneCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.UncheckedIOException;

/** The {@code longrwkv} command: git-style subcommands, each with --help. */
@Command(name = "longrwkv",
        mixinStandardHelpOptions = true,
        versionProvider = LongRwkv.Version.class,
        description = {"RWKV-5 (x052) toolkit for 128k-token context: exact chunked BPTT, state tuning, long-context eval.",
                "", "Run 'longrwkv COMMAND --help' for the options of a command."},
        subcommands = {ForwardCommand.class, InitCommand.class, InspectCommand.class, ConvertCommand.class, TokenizeCommand.class,
                DataCommand.class, FinetuneCommand.class, LoraCommand.class, StateTuneCommand.class,
                EvalCommand.class, GenerateCommand.class, ChatCommand.class,
                DebugCommand.class, BenchCommand.class,
                CommandLine.HelpCommand.class})
public final class LongRwkv implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** Runs the command line and returns the exit code (tests call this). */
    public static int execute(String... args) {
        CommandLine cl = new CommandLine(new LongRwkv());
        try {
            applyConfigFile(cl, args);
        } catch (IllegalArgumentException e) {   // from the --config file, before any command runs
            cl.getErr().println("error: " + e.getMessage());
            cl.getErr().flush();
            return 2;
        }
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            // Errors the user can fix are printed as one clear line, not as a stack trace from deep inside.
            if (ex instanceof ModelFormatException || ex instanceof IllegalArgumentException
                    || ex instanceof IOException || ex instanceof UncheckedIOException) {
                String msg = ex instanceof UncheckedIOException u && u.getCause() != null ? u.getCause().toString() : ex.getMessage();
                commandLine.getErr().println("error: " + msg);
                return 2;
            }
            throw ex;
        });
        return cl.execute(args);
    }

    /** {@code --config FILE} / {@code --config=FILE} (training commands): see {@link ConfigFile}; problems are IllegalArgumentExceptions. */
    static void applyConfigFile(CommandLine cl, String[] args) {
        ConfigFile.apply(cl, args);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = LongRwkv.class.getPackage().getImplementationVersion();
            return new String[]{"longrwkv " + (v == null ? "dev" : v) + " (Java " + System.getProperty("java.version") + ")"};
        }
    }
}
