package ai.longrwkv.cli;

import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.finetune.FinetuneCommand;
import ai.longrwkv.finetune.LoraCommand;
import ai.longrwkv.statetuning.StateTuneCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.EOFException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/** The {@code longrwkv} command: git-style subcommands, each with --help. */
@Command(name = "longrwkv",
        mixinStandardHelpOptions = true,
        versionProvider = LongRwkv.Version.class,
        description = {"RWKV-5 (x052) toolkit for 128k-token context: exact chunked BPTT, state tuning, long-context eval.",
                "", "Run 'longrwkv COMMAND --help' for the options of a command."},
        subcommands = {ForwardCommand.class, InitCommand.class, InspectCommand.class, ConvertCommand.class, TokenizeCommand.class,
                DataCommand.class, FinetuneCommand.class, LoraCommand.class, StateTuneCommand.class,
                EvalCommand.class, GenerateCommand.class, ChatCommand.class,
                DebugCommand.class, BenchCommand.class, PlanCommand.class,
                CommandLine.HelpCommand.class})
public final class LongRwkv implements Runnable {

    /** The exit code of every error the user can fix (bad option, bad file): one line {@code error: ...} on stderr. */
    public static final int USAGE_ERROR = 2;

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
        CommandLine cl = commandLine();
        try {
            applyConfigFile(cl, args);
            return cl.execute(args);
        } catch (OutOfMemoryError e) {
            // Usually an option or an input far larger than the heap: say so in one line instead of a stack trace.
            cl.getErr().println("error: out of memory (Java heap of " + Runtime.getRuntime().maxMemory() / (1 << 20)
                    + " MB): the input or the options need more; give more with LONGRWKV_JAVA_OPTS=-Xmx<size>, e.g. -Xmx16g");
            cl.getErr().flush();
            return USAGE_ERROR;
        } catch (UncheckedIOException | IllegalArgumentException e) {   // from the --config file, before any command runs
            cl.getErr().println("error: " + describe(e));
            cl.getErr().flush();
            return USAGE_ERROR;
        }
    }

    /**
     * The whole command tree with the tool's conventions applied once, for every command: clear number and path
     * conversions, one-line usage errors, one-line user errors from the commands, defaults shown in --help, and
     * subcommand listings that show each command's first sentence.
     */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new LongRwkv());
        Converters.register(cl);
        cl.setParameterExceptionHandler(LongRwkv::handleUsageError);
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            // Errors the user can fix are printed as one clear line, not as a stack trace from deep inside.
            if (ex instanceof ModelFormatException || ex instanceof IllegalArgumentException
                    || ex instanceof IOException || ex instanceof UncheckedIOException) {
                commandLine.getErr().println("error: " + describe(ex));
                commandLine.getErr().flush();
                return USAGE_ERROR;
            }
            if (ex instanceof ai.longrwkv.core.dist.CollectiveException) {
                // a rank died, timed out or the nodes disagree: one line naming the rank and what to check, exit 1
                commandLine.getErr().println("error: " + ex.getMessage());
                commandLine.getErr().flush();
                return 1;
            }
            throw ex;
        });
        HelpStyle.apply(cl);
        return cl;
    }

    /** All commands of the tree, the root first (tests walk them). */
    static List<CommandLine> allCommands(CommandLine root) {
        List<CommandLine> out = new ArrayList<>();
        out.add(root);
        for (CommandLine sub : root.getSubcommands().values()) {
            // aliases map to the same CommandLine; list each command once
            if (sub.getCommandSpec().name().equals(sub.getCommandName())) out.addAll(allCommands(sub));
        }
        return out.stream().distinct().collect(Collectors.toList());
    }

    /**
     * A usage error from the option parser: one line {@code error: ...} naming the option, the value and what was
     * expected, then where the options are described; exit code 2.
     */
    static int handleUsageError(CommandLine.ParameterException ex, String[] args) {
        CommandLine cmd = ex.getCommandLine();
        PrintWriter err = cmd.getErr();
        String unknown = ex instanceof CommandLine.MissingParameterException ? firstUnknownOption(cmd, args) : null;
        String message;
        if (unknown != null) {
            // picocli checks required options before unknown ones; a mistyped option is the likelier mistake
            message = unknownOptionMessage(cmd, unknown, List.of());
        } else if (ex instanceof CommandLine.UnmatchedArgumentException u) {
            List<String> unmatched = u.getUnmatched();
            String first = unmatched.isEmpty() ? "?" : unmatched.get(0);
            if (looksLikeOption(first)) {
                message = unknownOptionMessage(cmd, first, u.getSuggestions());
            } else if (!cmd.getSubcommands().isEmpty()) {
                message = "unknown command '" + first + "' for '" + cmd.getCommandSpec().qualifiedName() + "'; commands: "
                        + String.join(", ", visibleSubcommands(cmd));
            } else {
                message = "unexpected argument '" + first + "' (this command takes "
                        + (cmd.getCommandSpec().positionalParameters().isEmpty() ? "no positional arguments"
                        : "at most " + cmd.getCommandSpec().positionalParameters().size() + " positional argument(s)") + ")";
            }
        } else if (ex instanceof CommandLine.MissingParameterException m) {
            message = missingMessage(m);
        } else {
            message = lowerFirst(oneLine(ex.getMessage()));
        }
        if (message.isEmpty() && !cmd.getSubcommands().isEmpty()) {
            message = "give a command: " + String.join(", ", visibleSubcommands(cmd));
        }
        err.println("error: " + message + " (see '" + cmd.getCommandSpec().qualifiedName() + " --help')");
        err.flush();
        return USAGE_ERROR;
    }

    private static List<String> visibleSubcommands(CommandLine cmd) {
        List<String> names = new ArrayList<>();
        cmd.getSubcommands().forEach((name, sub) -> {
            if (!sub.getCommandSpec().usageMessage().hidden() && !names.contains(sub.getCommandName())) names.add(sub.getCommandName());
        });
        return names;
    }

    private static String unknownOptionMessage(CommandLine cmd, String arg, List<String> suggestions) {
        String name = arg.contains("=") ? arg.substring(0, arg.indexOf('=')) : arg;
        String msg = "unknown option '" + name + "' for '" + cmd.getCommandSpec().qualifiedName() + "'";
        List<String> options = suggestions.stream().filter(s -> s.startsWith("-")).limit(3).collect(Collectors.toList());
        if (options.isEmpty()) {
            options = cmd.getCommandSpec().options().stream().filter(o -> !o.hidden())
                    .flatMap(o -> java.util.Arrays.stream(o.names())).filter(n -> n.startsWith("--"))
                    .filter(n -> similar(n, name)).limit(3).collect(Collectors.toList());
        }
        if (!options.isEmpty()) msg += "; did you mean " + String.join(" or ", options) + "?";
        return msg;
    }

    /** Same word after the dashes up to small edits, or one is a prefix of the other. */
    private static boolean similar(String option, String typed) {
        String a = option.replaceFirst("^-+", ""), b = typed.replaceFirst("^-+", "");
        if (b.length() >= 3 && (a.startsWith(b) || b.startsWith(a))) return true;
        return editDistance(a, b) <= Math.max(1, Math.min(a.length(), b.length()) / 4);
    }

    /** Levenshtein distance, for "did you mean" suggestions (options here, --config keys in ConfigFile). */
    static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1], cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
            }
            int[] t = prev; prev = cur; cur = t;
        }
        return prev[b.length()];
    }

    private static boolean looksLikeOption(String arg) {
        return arg.startsWith("-") && arg.length() > 1 && !arg.matches("-[0-9.].*");
    }

    /** The first argument after the command's name that looks like an option but is none of the command's. */
    private static String firstUnknownOption(CommandLine cmd, String[] args) {
        CommandSpec spec = cmd.getCommandSpec();
        // skip the command path: the arguments up to and including this command's name
        int start = 0;
        List<String> path = new ArrayList<>();
        for (CommandSpec s = spec; s != null && s.parent() != null; s = s.parent()) path.add(0, s.name());
        for (String p : path) {
            while (start < args.length && !args[start].equals(p)) start++;
            start++;
        }
        for (int i = Math.min(start, args.length); i < args.length; i++) {
            String a = args[i];
            if (a.equals("--")) return null;
            if (!looksLikeOption(a)) continue;
            String name = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
            OptionSpec o = spec.findOption(name);
            if (o == null) return a;
            if (o.arity().max() > 0 && !a.contains("=")) i++;   // its value, which may itself start with '-'
        }
        return null;
    }

    private static String missingMessage(CommandLine.MissingParameterException m) {
        String raw = oneLine(m.getMessage());
        List<ArgSpec> missing = m.getMissing();
        if (raw.startsWith("Missing required parameter for option") && missing != null && missing.size() == 1
                && missing.get(0) instanceof OptionSpec o) {
            return "option '" + o.longestName() + "' needs a value (" + label(o) + ")";
        }
        if (missing != null && !missing.isEmpty()) {
            List<String> names = new ArrayList<>();
            for (ArgSpec a : missing) {
                names.add(a instanceof OptionSpec o ? o.longestName() + " " + label(o) : label(a));
            }
            return (raw.startsWith("Missing required parameter") && !(missing.get(0) instanceof OptionSpec)
                    ? "missing argument" : "missing required option") + (names.size() > 1 ? "s " : " ") + String.join(", ", names);
        }
        return lowerFirst(raw);
    }

    private static String label(ArgSpec a) {
        String l = a.paramLabel();
        return l == null ? "" : l.replaceAll("^<(.*)>$", "$1").toUpperCase(Locale.ROOT).replaceAll("([a-z])([A-Z])", "$1_$2");
    }

    /**
     * The one-line description of a user error, without Java class names: the message of an IllegalArgumentException
     * or ModelFormatException, or what went wrong with which file for an I/O error.
     */
    static String describe(Throwable ex) {
        Throwable e = ex instanceof UncheckedIOException && ex.getCause() != null ? ex.getCause() : ex;
        String msg;
        if (e instanceof NoSuchFileException f) {
            msg = f.getFile() + ": no such file or directory";
        } else if (e instanceof AccessDeniedException f) {
            msg = f.getFile() + ": permission denied";
        } else if (e instanceof FileAlreadyExistsException f) {
            msg = f.getFile() + ": already exists";
        } else if (e instanceof NotDirectoryException f) {
            msg = f.getFile() + ": not a directory";
        } else if (e instanceof DirectoryNotEmptyException f) {
            msg = f.getFile() + ": directory not empty";
        } else if (e instanceof FileSystemException f) {
            msg = (f.getFile() != null ? f.getFile() + ": " : "") + (f.getReason() != null ? f.getReason() : "file system error")
                    + (f.getOtherFile() != null ? " (" + f.getOtherFile() + ")" : "");
        } else if (e instanceof EOFException) {
            msg = "unexpected end of file" + (e.getMessage() != null ? ": " + e.getMessage() : "");
        } else if (e instanceof InvalidPathException p) {
            msg = "not a valid path '" + p.getInput() + "': " + p.getReason();
        } else if (e instanceof NumberFormatException) {
            String m = e.getMessage() == null ? "" : e.getMessage();
            var matcher = java.util.regex.Pattern.compile("For input string: \"(.*)\"").matcher(m);
            msg = matcher.find() ? "'" + matcher.group(1) + "' is not a number" : "not a number: " + m;
        } else if (e.getMessage() != null && !e.getMessage().isBlank()) {
            msg = e.getMessage();
        } else {
            msg = e instanceof IOException ? "input/output error" : "invalid input";
        }
        return withoutClassNames(oneLine(msg));
    }

    private static final java.util.regex.Pattern CLASS_NAME = java.util.regex.Pattern.compile(
            "\\b(?:[a-z][a-z0-9_]*\\.)+[A-Z][A-Za-z0-9_$]*(?:Exception|Error)\\b:?\\s*");

    /**
     * A message with the Java class names some libraries put in their messages taken out ("not valid JSON:
     * com.google.gson.stream.MalformedJsonException: Expected ':' at line 1 column 7 path $.a; See https://...")
     * becomes "not valid JSON: Expected ':' at line 1 column 7"): a user cannot act on them.
     */
    static String withoutClassNames(String msg) {
        String m = CLASS_NAME.matcher(msg).replaceAll("");
        m = m.replaceAll(";?\\s*See https://github\\.com/google/gson/\\S*", "");
        m = m.replaceAll(" path \\$[^\\s;,)]*", "");
        return m.strip();
    }

    static String oneLine(String s) {
        if (s == null) return "";
        return s.strip().replaceAll("\\s*[\\r\\n]+\\s*", "; ");
    }

    private static String lowerFirst(String s) {
        if (s.isEmpty() || s.length() > 1 && Character.isUpperCase(s.charAt(1))) return s;
        return Character.toLowerCase(s.charAt(0)) + s.substring(1);
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
