package ai.longrwkv.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `longrwkv tokenize` with its stdin and stdout replaced by byte arrays. */
class TokenizeCommandTest {

    /** What one run gave: exit code, stdout bytes, and the message of a failure (as LongRwkv prints it). */
    record Run(int exitCode, byte[] stdout, String error) {
        String text() {
            return new String(stdout, StandardCharsets.UTF_8);
        }
    }

    private static Run run(byte[] stdin, String... args) {
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        List<String> errors = new ArrayList<>();
        CommandLine cl = new CommandLine(new TokenizeCommand(new ByteArrayInputStream(stdin), stdout));
        cl.setErr(new PrintWriter(new StringWriter()));
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            errors.add(ex.getMessage());
            return 2;
        });
        int code = cl.execute(args);
        return new Run(code, stdout.toByteArray(), errors.isEmpty() ? null : errors.get(0));
    }

    private static Run run(String stdin, String... args) {
        return run(stdin.getBytes(StandardCharsets.UTF_8), args);
    }

    private static Path worldVocab() {
        return ai.longrwkv.core.testing.TestModels.oracle("rwkv_vocab_v20230424.txt");
    }

    @Test
    void worldEncodeAndDecodeRoundTrip() {
        String world = "world:" + worldVocab();
        Run encoded = run("I'll 'd test блабла 以下は、]) -> <|endoftext|><|padding|> int", "--tokenizer", world);
        assertEquals(0, encoded.exitCode(), encoded.error());
        assertEquals("74 5229 274 101 32223 5092 27980 2795 27980 33 10399 10258 10139 10079 1682 3463 295 125 25258 7588 "
                + "2318 125 790 125 49520 125 63 21888\n", encoded.text());

        String text = "Hello world\nПривет, 世界 👋🏽\r\n\ttabs and trailing newline\n";
        Run ids = run(text, "--tokenizer", world);
        assertEquals(0, ids.exitCode(), ids.error());
        assertTrue(ids.text().matches("[0-9]+( [0-9]+)*\n"), ids.text());
        Run decoded = run(ids.stdout(), "--tokenizer", world, "--decode");
        assertEquals(0, decoded.exitCode(), decoded.error());
        assertEquals(text, decoded.text());
    }

    @Test
    void decodeAcceptsCommasNewlinesAndEndOfText() {
        Run r = run("33155, 40213\n0\n11,994 2098\t29435\r\n", "--tokenizer", "world:" + worldVocab(), "--decode");
        assertEquals(0, r.exitCode(), r.error());
        assertEquals("Hello world\nElon Musk", r.text());
    }

    @Test
    void bytesTokenizerRoundTripsAnyBytes() {
        byte[] input = {'"', 'i', 'n', 0, (byte) 0xff, (byte) 0xe4, (byte) 0xb8};
        Run ids = run(input, "--tokenizer", "bytes");
        assertEquals("34 105 110 0 255 228 184\n", ids.text());
        Run back = run(ids.stdout(), "--tokenizer", "bytes", "--decode");
        assertArrayEquals(input, back.stdout());
        assertEquals("\n", run("", "--tokenizer", "bytes").text());
        assertEquals(0, run("", "--tokenizer", "bytes", "--decode").stdout().length);
    }

    @Test
    void clearErrors() {
        Run bad = run("1 2\n3 x4 5", "--tokenizer", "bytes", "--decode");
        assertEquals(2, bad.exitCode());
        assertTrue(bad.error().contains("line 2 column 3") && bad.error().contains("'x4'") && bad.error().contains("position 3"), bad.error());

        Run negative = run("1,-2", "--tokenizer", "bytes", "--decode");
        assertTrue(negative.error().contains("'-2'") && negative.error().contains("column 3"), negative.error());

        Run outOfVocab = run("104 300", "--tokenizer", "bytes", "--decode");
        assertTrue(outOfVocab.error().contains("token id 300 at position 1"), outOfVocab.error());
        assertEquals(0, outOfVocab.stdout().length, "nothing is written before the error");

        Run unknown = run("hi", "--tokenizer", "gpt2");
        assertTrue(unknown.error().contains("unknown tokenizer 'gpt2'"), unknown.error());

        Run missing = run("hi", "--tokenizer", "world:/no/such/vocab.txt");
        assertTrue(missing.error().contains("not found: /no/such/vocab.txt"), missing.error());

        Run noOption = run("hi");
        assertEquals(2, noOption.exitCode());   // picocli: missing required option
    }

    @Test
    void worldUnknownIdIsNamed() {
        Run r = run("33155 65530", "--tokenizer", "world:" + worldVocab(), "--decode");
        assertEquals(2, r.exitCode());
        assertTrue(r.error().startsWith("stdin: token id 65530 at position 1"), r.error());
    }

    @Test
    void benchTextIsDeterministicAndMixed() {
        byte[] a = TokenizerBenchCommand.mixedText(new java.util.Random(TokenizerBenchCommand.SEED), 200_000);
        byte[] b = TokenizerBenchCommand.mixedText(new java.util.Random(TokenizerBenchCommand.SEED), 200_000);
        assertArrayEquals(a, b);
        String s = new String(a, StandardCharsets.UTF_8);
        for (String sample : new String[]{"the", "我们", "です", "и", "for (int i", "🚀"}) assertTrue(s.contains(sample), sample);
    }
}
