package ai.longrwkv.cli;

import ai.longrwkv.core.io.ModelFormatException;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/**
 * Runs `longrwkv data ...` in-process. Through LongRwkv.execute when `data` is registered there; otherwise through a
 * CommandLine on DataCommand with the same error handling (one line "error: ...", exit code 2).
 */
final class DataTestSupport {
    private DataTestSupport() { }

    static boolean registeredInLongRwkv() {
        return new CommandLine(new LongRwkv()).getSubcommands().containsKey("data");
    }

    static CliTestSupport.Run data(String... args) {
        if (registeredInLongRwkv()) {
            String[] full = new String[args.length + 1];
            full[0] = "data";
            System.arraycopy(args, 0, full, 1, args.length);
            return CliTestSupport.run(full);
        }
        synchronized (CliTestSupport.class) {
            PrintStream oldOut = System.out, oldErr = System.err;
            ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
            try {
                System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
                System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
                CommandLine cl = new CommandLine(new DataCommand());
                cl.setErr(new PrintWriter(System.err, true));
                cl.setOut(new PrintWriter(System.out, true));
                cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
                    if (ex instanceof ModelFormatException || ex instanceof IllegalArgumentException
                            || ex instanceof IOException || ex instanceof UncheckedIOException) {
                        commandLine.getErr().println("error: " + ex.getMessage());
                        return 2;
                    }
                    throw ex;
                });
                int code = cl.execute(args);
                return new CliTestSupport.Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
            } finally {
                System.setOut(oldOut);
                System.setErr(oldErr);
            }
        }
    }
}
