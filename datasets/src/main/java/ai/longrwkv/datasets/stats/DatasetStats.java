package ai.longrwkv.datasets.stats;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Utf8StreamDecoder;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.pack.PackedDataset;
import com.google.gson.JsonObject;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** `data stats`: a readable summary of any binidx dataset (ours or RWKV-LM's), packed ones included. */
public final class DatasetStats {
    private DatasetStats() { }

    /** Marks around trained text in decoded samples. */
    public static final String TRAINED_OPEN = "⟦", TRAINED_CLOSE = "⟧";

    /**
     * The report. tokenizer may be null (no decoded sample then); sampleDoc = which document to decode;
     * sampleTokens = at most this many tokens of it.
     */
    public static String report(Path prefix, Tokenizer tokenizer, int sampleDoc, int sampleTokens) {
        StringBuilder out = new StringBuilder();
        JsonObject meta = DatasetMeta.read(prefix);
        try (BinIdxDataset data = BinIdxDataset.open(prefix)) {
            int docs = data.documentCount();
            long tokens = data.tokenCount();
            long trained = data.trainedTokenCount();
            String kind = DatasetMeta.string(meta, "kind", "binidx (no " + BinIdxFormat.meta(prefix).getFileName() + ")");
            line(out, "dataset:        %s", data.prefix());
            line(out, "kind:           %s", kind);
            if (meta != null) {
                line(out, "tokenizer:      %s", DatasetMeta.string(meta, "tokenizer", "?"));
                if (meta.has("format")) line(out, "input format:   %s", DatasetMeta.string(meta, "format", "?"));
                if (meta.has("task")) line(out, "task:           %s", DatasetMeta.string(meta, "task", "?"));
            }
            line(out, "dtype:          %s", data.dtype().numpyName());
            line(out, "%-15s %,d", "packed".equals(kind) ? "sequences:" : "documents:", docs);
            line(out, "tokens:         %,d", tokens);
            line(out, "trained:        %,d tokens (%.2f%%)%s", trained, tokens == 0 ? 0.0 : 100.0 * trained / tokens,
                    data.hasMask() ? "" : "  [no .mask sidecar: every token counts as trained]");
            // token ids the dataset's own tokenizer cannot have produced: data that every model would fail on
            String tok = meta == null ? "" : DatasetMeta.string(meta, "tokenizer", "");
            int vocab = tok.equals("bytes") ? 256 : tok.startsWith("world") ? 65536 : -1;
            if (vocab > 0) {
                long bad = data.firstTokenOutside(vocab);
                if (bad >= 0) {
                    int[] one = new int[1];
                    data.readTokens(bad, one, 0, 1);
                    int doc = data.documentAt(bad);
                    throw new IllegalArgumentException(BinIdxFormat.bin(prefix) + ": document " + doc + " has token " + one[0] + " at position "
                            + (bad - data.documentStart(doc)) + ", outside the vocabulary of its tokenizer '" + tok + "' (0.." + (vocab - 1) + ")");
                }
                line(out, "token ids:      all within %s's 0..%,d", tok, vocab - 1);
            }
            if (docs > 0) {
                int min = Integer.MAX_VALUE, max = 0;
                for (int i = 0; i < docs; i++) {
                    min = Math.min(min, data.documentLength(i));
                    max = Math.max(max, data.documentLength(i));
                }
                line(out, "length:         min %,d, mean %,.1f, max %,d tokens", min, (double) tokens / docs, max);
                histogram(out, data);
            }
            // a packed dataset is read as one (its .segments must be there and fit); .segments beside another kind is named
            if ("packed".equals(kind)) {
                packed(out, prefix, meta);
            } else if (ai.longrwkv.datasets.io.InputFiles.present(BinIdxFormat.segments(prefix), "segments")) {
                line(out, "note:           %s is there but %s", BinIdxFormat.segments(prefix).getFileName(), meta == null
                        ? BinIdxFormat.meta(prefix).getFileName() + " is missing: a packed dataset without its metadata (training refuses it)"
                        : "the metadata says kind '" + kind + "', not packed");
            }
            if (tokenizer != null && docs > 0) {
                int doc = Math.max(0, Math.min(sampleDoc, docs - 1));
                out.append('\n');
                line(out, "document %d (%,d tokens%s), decoded with %s; trained text in %s...%s:", doc, data.documentLength(doc),
                        data.documentLength(doc) > sampleTokens ? ", first " + sampleTokens + " shown" : "", tokenizer.name(), TRAINED_OPEN, TRAINED_CLOSE);
                out.append(decodeWithMask(data, doc, tokenizer, sampleTokens)).append('\n');
            }
        }
        return out.toString();
    }

    private static void histogram(StringBuilder out, BinIdxDataset data) {
        long[] docsIn = new long[33], tokensIn = new long[33];
        for (int i = 0; i < data.documentCount(); i++) {
            int n = data.documentLength(i);
            int bucket = n == 0 ? 0 : 32 - Integer.numberOfLeadingZeros(n);   // [2^(b-1), 2^b)
            docsIn[bucket]++;
            tokensIn[bucket] += n;
        }
        line(out, "length histogram (tokens per document):");
        line(out, "  %-22s %12s %8s %9s", "length", "documents", "docs %", "tokens %");
        for (int b = 0; b < 33; b++) {
            if (docsIn[b] == 0) continue;
            long lo = b == 0 ? 0 : 1L << (b - 1), hi = b == 0 ? 0 : (1L << b) - 1;
            String range = lo == hi ? Long.toString(lo) : lo + " - " + hi;
            line(out, "  %-22s %,12d %7.2f%% %8.2f%%", range, docsIn[b], 100.0 * docsIn[b] / data.documentCount(),
                    data.tokenCount() == 0 ? 0.0 : 100.0 * tokensIn[b] / data.tokenCount());
        }
    }

    private static void packed(StringBuilder out, Path prefix, JsonObject meta) {
        try (PackedDataset p = PackedDataset.open(prefix)) {
            long segments = 0, padding = 0, continued = 0;
            for (int i = 0; i < p.sequenceCount(); i++) {
                var segs = p.segments(i);
                segments += segs.size();
                int content = segs.isEmpty() ? 0 : segs.get(segs.size() - 1).end();
                padding += p.sequenceLength(i) - content;
                for (var s : segs) if (s.continuesDocument()) continued++;
            }
            line(out, "state at document boundaries: %s", p.boundaryMode().cliName());
            line(out, "mix requested:  %s", DatasetMeta.string(meta, "mix", "?"));
            line(out, "segments:       %,d (%.1f per sequence; %,d continue a document cut at the longest length)",
                    segments, p.sequenceCount() == 0 ? 0.0 : (double) segments / p.sequenceCount(), continued);
            long tokens = p.binIdx().tokenCount();
            line(out, "padding:        %,d tokens (%.3f%%)", padding, tokens == 0 ? 0.0 : 100.0 * padding / tokens);
        }
    }

    /** Decoded text of a document's first maxTokens tokens, trained runs between the marks, token 0 shown as ⟨0⟩. */
    public static String decodeWithMask(BinIdxDataset data, int doc, Tokenizer tokenizer, int maxTokens) {
        int n = Math.min(data.documentLength(doc), maxTokens);
        int[] tokens = new int[n];
        byte[] flags = new byte[n];
        data.read(doc, 0, tokens, 0, n);
        data.readMask(doc, 0, flags, 0, n);
        StringBuilder out = new StringBuilder();
        Utf8StreamDecoder text = new Utf8StreamDecoder();
        boolean inTrained = false;
        for (int i = 0; i < n; i++) {
            boolean trained = flags[i] == 1;
            if (trained != inTrained) {
                out.append(text.finish());
                out.append(trained ? TRAINED_OPEN : TRAINED_CLOSE);
                inTrained = trained;
            }
            if (tokens[i] == Tokenizer.END_OF_TEXT) {
                out.append(text.finish()).append("⟨0⟩");
            } else {
                byte[] bytes;
                try {
                    bytes = tokenizer.decode(new int[]{tokens[i]});
                } catch (IllegalArgumentException e) {
                    out.append(text.finish()).append("⟨?").append(tokens[i]).append('⟩');
                    continue;
                }
                out.append(text.feed(bytes));
            }
        }
        out.append(text.finish());
        if (inTrained) out.append(TRAINED_CLOSE);
        if (n < data.documentLength(doc)) out.append(" ...");
        return out.toString();
    }

    private static void line(StringBuilder out, String format, Object... args) {
        out.append(String.format(Locale.ROOT, format, args)).append('\n');
    }
}
