package ai.longrwkv.datasets.build;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.WorldTokenizer;
import ai.longrwkv.datasets.io.Utf8;

import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.function.IntConsumer;

/**
 * Tokenizes a text stream of any size in pieces, with exactly the tokens that tokenizing it at once would give, in
 * constant memory.
 *
 * <p>Why this is exact: greedy longest match chooses the token at position q by looking at bytes [q, q + M) only,
 * M = the longest token. So when a piece [p, e) is tokenized, every token that starts at q with q + M &lt;= e is the
 * same as in the whole text; the later ones may have been cut short by the end of the piece. We keep the former,
 * and the next piece starts where the last kept token ends.
 */
final class StreamingTextEncoder {
    private final Tokenizer tokenizer;
    private final int[] tokenByteLengths;
    private final int maxTokenBytes;
    private final int pieceBytes;

    StreamingTextEncoder(Tokenizer tokenizer, int[] tokenByteLengths, int pieceBytes) {
        this.tokenizer = tokenizer;
        this.tokenByteLengths = tokenByteLengths;
        this.maxTokenBytes = GreedyTokenizers.maxTokenBytes(tokenByteLengths);
        this.pieceBytes = Math.max(pieceBytes, 4 * maxTokenBytes);
    }

    /**
     * Reads the stream to its end, checks it is UTF-8 (throws {@link Utf8.InvalidUtf8Exception} with the line) and
     * gives every token to `sink` in order. `bytesRead` hears how many bytes were consumed (for progress).
     * Returns the number of bytes of text.
     */
    long encode(InputStream in, IntConsumer sink, java.util.function.LongConsumer bytesRead) throws IOException {
        Utf8.Validator utf8 = new Utf8.Validator();
        byte[] buf = new byte[pieceBytes + maxTokenBytes];
        int held = 0;          // bytes in buf not yet tokenized: [0, held)
        long total = 0;
        boolean eof = false;
        while (!eof || held > 0) {
            while (!eof && held < buf.length) {
                int n = in.read(buf, held, buf.length - held);
                if (n < 0) {
                    eof = true;
                } else {
                    utf8.feed(buf, held, held + n);
                    held += n;
                    total += n;
                    bytesRead.accept(n);
                }
            }
            if (eof) {
                utf8.finish();
                for (int id : encode(buf, 0, held)) sink.accept(id);
                held = 0;
                break;
            }
            int[] ids = encode(buf, 0, held);
            int start = 0;
            int kept = 0;
            for (int id : ids) {
                if (start + maxTokenBytes > held) break;
                sink.accept(id);
                start += tokenByteLengths[id];
                kept++;
            }
            if (kept == 0) throw new IllegalStateException("no progress tokenizing a piece of " + held + " bytes");
            System.arraycopy(buf, start, buf, 0, held - start);
            held -= start;
        }
        return total;
    }

    private int[] encode(byte[] buf, int from, int to) {
        if (tokenizer instanceof WorldTokenizer world) return world.encode(buf, from, to - from);
        return tokenizer.encode(from == 0 && to == buf.length ? buf : Arrays.copyOfRange(buf, from, to));
    }
}
