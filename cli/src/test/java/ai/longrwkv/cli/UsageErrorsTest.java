package ai.longrwkv.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 13, item 1: a usage error from the option parser is one line {@code error: ...} naming the option, the value
 * and what was expected, with a pointer to the command's --help, and exit code 2; not the usage text.
 */
class UsageErrorsTest {

    /** Runs the command, checks the clean-error shape and returns the one line. */
    static String usageError(String... args) {
        CliTestSupport.Run r = CliTestSupport.run(args);
        String cmd = String.join(" ", args);
        assertEquals(2, r.exitCode(), cmd + "\n" + r.out() + r.err());
        assertEquals("", r.out(), cmd + ": nothing on stdout");
        String err = r.err().strip();
        assertEquals(1, err.lines().count(), cmd + ": one line, got\n" + r.err());
        assertTrue(err.startsWith("error: "), err);
        assertFalse(err.matches(".*(java\\.|Exception|picocli|Usage:).*"), cmd + ": no class names or usage: " + err);
        return err;
    }

    @Test
    void aBadNumberNamesTheOptionTheValueAndWhatWasExpected() {
        String e = usageError("finetune", "--steps", "big");
        assertTrue(e.contains("--steps") && e.contains("'big'") && e.contains("expected an integer"), e);
        assertTrue(e.endsWith("(see 'longrwkv finetune --help')"), e);
        e = usageError("eval", "passkey", "--trials", "2.5");
        assertTrue(e.contains("--trials") && e.contains("'2.5'") && e.contains("whole number"), e);
        e = usageError("forward", "--model", "m.pth", "--top", "99999999999");
        assertTrue(e.contains("--top") && e.contains("from -2147483648 to 2147483647"), e);
        e = usageError("finetune", "--lr", "fast");
        assertTrue(e.contains("--lr") && e.contains("'fast'") && e.contains("expected a number"), e);
    }

    @Test
    void notANumberAndInfinityAreRefusedForEveryNumberOption() {
        for (String v : new String[]{"NaN", "nan", "Infinity", "-Infinity", "1e999"}) {
            String e = usageError("finetune", "--lr", v);
            assertTrue(e.contains("--lr") && e.contains(v), e);
        }
        assertTrue(usageError("generate", "--temperature", "NaN").contains("--temperature"));
    }

    @Test
    void anUnknownOptionIsNamedEvenWhenRequiredOptionsAreMissingToo() {
        String e = usageError("finetune", "--bogus");
        assertTrue(e.contains("unknown option '--bogus'") && e.contains("longrwkv finetune"), e);
        e = usageError("finetune", "--step", "5");
        assertTrue(e.contains("'--step'") && e.contains("did you mean") && e.contains("--steps"), e);
        e = usageError("eval", "passkey", "--model", "m.pth", "--lengths", "1k", "--out", "o", "--lenghts=2k");
        assertTrue(e.contains("'--lenghts'") && e.contains("--lengths"), e);
    }

    @Test
    void aMissingValueOrOptionSaysWhich() {
        String e = usageError("eval", "passkey", "--model");
        assertTrue(e.contains("'--model' needs a value"), e);
        e = usageError("eval", "passkey", "--model", "m.pth", "--out", "o");
        assertTrue(e.contains("missing required option") && e.contains("--lengths"), e);
        e = usageError("data", "frob");
        assertTrue(e.contains("unknown command 'frob'") && e.contains("build"), e);
        e = usageError("inspect", "a.pth", "b.pth", "c.pth");
        assertTrue(e.contains("unexpected argument"), e);
    }

    @Test
    void everyCommandAnswersAnUnknownOptionWithOneLinePointingAtItsHelp() {
        List<String> checked = new ArrayList<>();
        for (CommandLine cl : LongRwkv.allCommands(LongRwkv.commandLine())) {
            if (cl.getCommandSpec().parent() == null || cl.getCommandName().equals("help")) continue;
            List<String> path = new ArrayList<>();
            for (var s = cl.getCommandSpec(); s.parent() != null; s = s.parent()) path.add(0, s.name());
            List<String> args = new ArrayList<>(path);
            args.add("--no-such-option=3");
            String e = usageError(args.toArray(new String[0]));
            assertTrue(e.contains("'--no-such-option'"), e);
            assertTrue(e.endsWith("(see '" + cl.getCommandSpec().qualifiedName() + " --help')"), e);
            checked.add(cl.getCommandSpec().qualifiedName());
        }
        assertTrue(checked.size() > 25, "all commands walked: " + checked);
    }

    @Test
    void aConfigFileThatIsMissingOrBadIsAnErrorNotIgnored(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        String e = usageError("finetune", "--config", dir.resolve("nope.properties").toString(), "--steps", "1");
        assertTrue(e.contains("--config") && e.contains("nope.properties") && e.contains("file not found"), e);
        e = usageError("finetune", "--config=" + dir, "--steps", "1");
        assertTrue(e.contains("--config") && e.contains("is a directory, expected a properties file"), e);
        java.nio.file.Path bad = dir.resolve("bad.properties");
        java.nio.file.Files.writeString(bad, "steps=big\n");
        e = usageError("finetune", "--config=" + bad, "--data", "d", "--ctx-len", "8");
        assertTrue(e.contains("bad.properties line 1") && e.contains("steps = 'big'") && e.contains("expected a whole number"), e);
    }

    @Test
    void aBadPathIsAUsageErrorNotAnInternalOne() {
        String e = usageError("inspect", "bad\0name.pth");
        assertTrue(e.contains("not a valid path"), e);
    }

    @Test
    void userErrorsFromCommandsNameTheFileWithoutJavaClassNames() {
        String e = usageError("bench", "tokenizer", "--tokenizer", "world:/no/such/vocab.txt", "--mb", "0.01");
        assertTrue(e.contains("/no/such/vocab.txt"), e);
        assertEquals("", LongRwkv.describe(new java.io.UncheckedIOException(new java.nio.file.NoSuchFileException("/x/y")))
                .replace("/x/y: no such file or directory", ""));
        assertEquals("'big' is not a number", LongRwkv.describe(new NumberFormatException("For input string: \"big\"")));
        assertEquals("x.meta.json: not valid JSON: Expected ':' at line 1 column 7", LongRwkv.describe(new IllegalArgumentException(
                "x.meta.json: not valid JSON: com.google.gson.stream.MalformedJsonException: Expected ':' at line 1 column 7 path $.not; "
                        + "See https://github.com/google/gson/blob/main/Troubleshooting.md#malformed-json")));
        assertEquals("a.jsonl line 2: malformed JSON: End of input at line 1 column 10", LongRwkv.describe(new IllegalArgumentException(
                "a.jsonl line 2: malformed JSON: java.io.EOFException: End of input at line 1 column 10 path $.text")));
        assertEquals("java.nio is fine as a word", LongRwkv.describe(new IllegalArgumentException("java.nio is fine as a word")));
    }

    @Test
    void benchRefusesValuesThatWouldCrashIt() {
        assertTrue(usageError("bench", "matmul", "--reps", "0").contains("--reps"));
        assertTrue(usageError("bench", "wkv", "--head-size", "0").contains("--head-size"));
        assertTrue(usageError("bench", "model", "--embd", "100", "--head-size", "64").contains("multiple"));
        assertTrue(usageError("bench", "train", "--mode", "bogus").contains("--mode"));
        assertTrue(usageError("bench", "memory", "--lengths", "0").contains("--lengths"));
        assertTrue(usageError("bench", "matmul", "--tokens", "100000", "--vocab", "100000").contains("tensor"));
    }
}
