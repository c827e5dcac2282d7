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
        applyConfigFile(cl, args);
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

    /**
     * {@code --config FILE} (training commands): a properties file whose keys are the long option names without
     * dashes (ctx-len=131072, lr=1e-5); its values become the defaults, so flags on the command line win.
     */
    static void applyConfigFile(CommandLine cl, String[] args) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (!args[i].equals("--config")) continue;
            java.io.File file = new java.io.File(args[i + 1]);
            if (!file.isFile()) return;   // the command itself reports the missing file
            java.util.Properties props = new java.util.Properties();
            try (var in = new java.io.FileInputStream(file)) {
                props.load(in);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            CommandLine.IDefaultValueProvider provider = new CommandLine.PropertiesDefaultProvider(props);
            cl.setDefaultValueProvider(provider);
            for (CommandLine sub : cl.getSubcommands().values()) sub.setDefaultValueProvider(provider);
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = LongRwkv.class.getPackage().getImplementationVersion();
            return new String[]{"longrwkv " + (v == null ? "dev" : v) + " (Java " + System.getProperty("java.version") + ")"};
        }
    }
}
