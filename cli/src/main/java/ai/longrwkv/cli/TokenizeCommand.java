package ai.longrwkv.cli;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.Callable;

/** Text to token ids and back, through stdin and stdout. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = {"Read text on stdin and write its token ids on stdout, space-separated on one line.",
                "With --decode, read token ids (separated by spaces, commas or newlines) and write the bytes they stand for."})
final class TokenizeCommand implements Callable<Integer> {
    @Option(names = "--tokenizer", required = true, paramLabel = "SPEC",
            description = "'bytes' (id = byte value) or 'world:PATH' (PATH = rwkv_vocab_v20230424.txt).")
    String tokenizerSpec;

    @Option(names = "--decode", description = "Token ids in, text out.")
    boolean decode;

    /** Null: System.in / System.out, looked up when the command runs (tests swap them). */
    private final InputStream in;
    private final OutputStream out;

    TokenizeCommand() {
        this(null, null);
    }

    TokenizeCommand(InputStream in, OutputStream out) {
        this.in = in;
        this.out = out;
    }

    @Override
    public Integer call() throws IOException {
        Tokenizer tokenizer = Tokenizers.parse(tokenizerSpec);
        byte[] input = readBounded(in != null ? in : System.in, Math.min(Integer.MAX_VALUE - 8L, Runtime.getRuntime().maxMemory() / 8));
        OutputStream sink = new BufferedOutputStream(out != null ? out : System.out, 1 << 16);
        if (decode) {
            // raw bytes: a token list may end in the middle of a UTF-8 character, and that is passed on as is
            int[] ids = parseIds(input);
            byte[] bytes;
            try {
                bytes = tokenizer.decode(ids);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("stdin: " + e.getMessage(), e);
            }
            sink.write(bytes);
        } else {
            int[] ids = tokenizer.encode(input);
            StringBuilder line = new StringBuilder(ids.length * 6 + 1);
            for (int i = 0; i < ids.length; i++) {
                if (i > 0) line.append(' ');
                line.append(ids[i]);
            }
            line.append('\n');
            sink.write(line.toString().getBytes(StandardCharsets.US_ASCII));
        }
        sink.flush();
        return 0;
    }

    /**
     * All of stdin, refusing more than {@code limit} bytes (the input, its ids and the output are all held in memory;
     * an endless stream such as /dev/zero must end in a clear error, not in OutOfMemoryError).
     */
    static byte[] readBounded(InputStream in, long limit) throws IOException {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        byte[] buf = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = in.read(buf)) > 0) {
            total += n;
            if (total > limit) {
                throw new IllegalArgumentException(String.format(java.util.Locale.ROOT, "stdin: more than %,d bytes; tokenize holds its "
                        + "input in memory (raise the heap with LONGRWKV_JAVA_OPTS=-Xmx..., or use 'data build', which streams)", limit));
            }
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }

    /** Ids separated by any mix of spaces, tabs, commas and newlines; an error says which entry and where. */
    static int[] parseIds(byte[] text) {
        int[] ids = new int[16];
        int count = 0;
        int line = 1, column = 1;
        int i = 0;
        while (i < text.length) {
            byte c = text[i];
            if (isSeparator(c)) {
                if (c == '\n') {
                    line++;
                    column = 1;
                } else {
                    column++;
                }
                i++;
                continue;
            }
            int start = i;
            while (i < text.length && !isSeparator(text[i])) i++;
            String entry = new String(text, start, i - start, StandardCharsets.UTF_8);
            int id = parseId(entry);
            if (id < 0) {
                throw new IllegalArgumentException("stdin line " + line + " column " + column + ": '" + entry + "' (position " + count
                        + " in the id list, counting from 0) is not a token id; expected non-negative integers separated by spaces, commas or newlines");
            }
            if (count == ids.length) ids = Arrays.copyOf(ids, count * 2);
            ids[count++] = id;
            column += entry.length();
        }
        return Arrays.copyOf(ids, count);
    }

    private static boolean isSeparator(byte c) {
        return c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t';
    }

    /** Plain decimal digits that fit an int, else -1. */
    private static int parseId(String s) {
        if (s.length() > 10) return -1;
        long value = 0;
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            if (c < '0' || c > '9') return -1;
            value = value * 10 + (c - '0');
        }
        return value > Integer.MAX_VALUE ? -1 : (int) value;
    }
}
