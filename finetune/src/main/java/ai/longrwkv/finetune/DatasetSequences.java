package ai.longrwkv.finetune;

import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.core.train.Trainer;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.pack.PackedDataset;
import com.google.gson.JsonObject;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Training sequences from a dataset made by {@code longrwkv data build | pack | synth}, deterministic by index:
 * <ul>
 *   <li>{@code windows} (default for {@code data build} output): RWKV-LM's sampling, a random window of ctx-len + 1
 *   tokens of the flat token stream (crossing documents, which are separated by token 0);</li>
 *   <li>{@code documents} (default for {@code data pack} and {@code data synth} output): each document or packed
 *   sequence is one training sequence, in a shuffled order per epoch; packed sequences made with
 *   {@code --state-at-boundary reset} reset the state at each document start.</li>
 * </ul>
 */
public final class DatasetSequences implements Trainer.SequenceSource, AutoCloseable {
    public enum Sampling { WINDOWS, DOCUMENTS }

    private final Path prefix;
    private final BinIdxDataset data;
    private final PackedDataset packed;
    private final Sampling sampling;
    private final int ctxLen;
    private final long seed;
    private final long[] docStarts;
    private final int vocabHint;
    private long cachedEpoch = -1;
    private int[] cachedOrder;

    private DatasetSequences(Path prefix, BinIdxDataset data, PackedDataset packed, Sampling sampling, int ctxLen, long seed, int vocabHint) {
        this.prefix = prefix;
        this.data = data;
        this.packed = packed;
        this.sampling = sampling;
        this.ctxLen = ctxLen;
        this.seed = seed;
        this.vocabHint = vocabHint;
        this.docStarts = new long[data.documentCount()];
        for (int d = 0; d < docStarts.length; d++) docStarts[d] = data.documentStart(d);
    }

    /**
     * Opens a dataset for training with sequences of at most {@code ctxLen} tokens. {@code sampling} null picks the
     * default for the dataset's kind. Problems (too little data, sequences longer than ctx-len) are reported now.
     */
    public static DatasetSequences open(Path prefix, int ctxLen, long seed, Sampling sampling) {
        if (ctxLen < 1) throw new IllegalArgumentException("--ctx-len must be >= 1, got " + ctxLen);
        JsonObject meta = DatasetMeta.read(prefix);
        String kind = meta == null ? "documents" : DatasetMeta.string(meta, "kind", "documents");
        String tokenizer = meta == null ? "" : DatasetMeta.string(meta, "tokenizer", "");
        int vocabHint = tokenizer.equals("bytes") ? 256 : tokenizer.startsWith("world") ? 65536 : -1;
        PackedDataset packed = kind.equals("packed") ? PackedDataset.open(prefix) : null;
        BinIdxDataset data = packed != null ? packed.binIdx() : BinIdxDataset.open(prefix);
        Sampling s = sampling != null ? sampling : kind.equals("documents") ? Sampling.WINDOWS : Sampling.DOCUMENTS;
        if (packed != null && s == Sampling.WINDOWS) {
            throw new IllegalArgumentException(prefix + " is a packed dataset: train on its sequences (--sampling documents)");
        }
        if (s == Sampling.WINDOWS && data.tokenCount() < ctxLen + 1L) {
            throw new IllegalArgumentException(prefix + " has " + data.tokenCount() + " tokens, fewer than --ctx-len + 1 = " + (ctxLen + 1)
                    + ": use a smaller --ctx-len or more data");
        }
        if (s == Sampling.DOCUMENTS) {
            if (data.documentCount() == 0) throw new IllegalArgumentException(prefix + " has no documents");
            int longest = 0;
            for (int d = 0; d < data.documentCount(); d++) longest = Math.max(longest, data.documentLength(d));
            // a document of ctx-len + 1 tokens (e.g. ctx-len tokens and the end-of-text 0) gives ctx-len predictions
            if (longest > ctxLen + 1) {
                throw new IllegalArgumentException(prefix + ": its longest " + (packed != null ? "sequence" : "document") + " has "
                        + longest + " tokens, more than --ctx-len " + ctxLen + " (raise --ctx-len, or use --sampling windows)");
            }
        }
        return new DatasetSequences(prefix, data, packed, s, ctxLen, seed, vocabHint);
    }

    public static Sampling parseSampling(String s) {
        if (s == null) return null;
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "windows" -> Sampling.WINDOWS;
            case "documents" -> Sampling.DOCUMENTS;
            default -> throw new IllegalArgumentException("--sampling must be windows or documents, got '" + s + "'");
        };
    }

    /** The vocabulary size the dataset's tokenizer implies (256 bytes, 65536 World), or -1 if unknown. */
    public int vocabHint() { return vocabHint; }

    public Sampling sampling() { return sampling; }

    public long tokenCount() { return data.tokenCount(); }

    @Override
    public TokenSequence sequence(long index) {
        return sampling == Sampling.WINDOWS ? window(index) : document(index);
    }

    private TokenSequence window(long index) {
        SplittableRandom rnd = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + index);
        long start = rnd.nextLong(data.tokenCount() - ctxLen);
        int[] tokens = new int[ctxLen + 1];
        data.readTokens(start, tokens, 0, ctxLen + 1);
        byte[] flags = flatFlags(start, ctxLen + 1);
        return BinIdxDataset.toTrainingSequence(Arrays.copyOf(tokens, ctxLen), Arrays.copyOf(flags, ctxLen))
                .withLastTarget(tokens[ctxLen], flags[ctxLen]);
    }

    private TokenSequence document(long index) {
        int n = data.documentCount();
        long epoch = index / n;
        int doc = order(epoch)[(int) (index % n)];
        if (packed != null) {
            PackedDataset.Sequence s = packed.sequence(doc);
            TokenSequence t = s.trainingSequence();
            if (t.length() > ctxLen) {
                throw new IllegalArgumentException(prefix + ": packed sequence " + doc + " has " + t.length() + " tokens, more than --ctx-len " + ctxLen);
            }
            return t;   // with the pack's state resets, if it was made with them
        }
        int[] tokens = data.document(doc);
        byte[] flags = data.mask(doc);
        if (tokens.length == ctxLen + 1) {
            return BinIdxDataset.toTrainingSequence(Arrays.copyOf(tokens, ctxLen), Arrays.copyOf(flags, ctxLen))
                    .withLastTarget(tokens[ctxLen], flags[ctxLen]);
        }
        return BinIdxDataset.toTrainingSequence(tokens, flags);
    }

    /** A permutation of the documents for an epoch (Fisher-Yates from a seed per epoch). */
    private int[] order(long epoch) {
        if (epoch != cachedEpoch) {
            int n = data.documentCount();
            int[] p = new int[n];
            for (int i = 0; i < n; i++) p[i] = i;
            SplittableRandom rnd = new SplittableRandom(seed * 31 + epoch);
            for (int i = n - 1; i > 0; i--) {
                int j = rnd.nextInt(i + 1);
                int t = p[i];
                p[i] = p[j];
                p[j] = t;
            }
            cachedOrder = p;
            cachedEpoch = epoch;
        }
        return cachedOrder;
    }

    /** Loss flags of tokens [start, start + length) of the flat stream. */
    private byte[] flatFlags(long start, int length) {
        byte[] out = new byte[length];
        int doc = Arrays.binarySearch(docStarts, start);
        if (doc < 0) doc = -doc - 2;
        int done = 0;
        while (done < length) {
            int offset = (int) (start + done - docStarts[doc]);
            int take = Math.min(length - done, data.documentLength(doc) - offset);
            data.readMask(doc, offset, out, done, take);
            done += take;
            doc++;
        }
        return out;
    }

    @Override
    public String fingerprint() {
        return prefix.toAbsolutePath().normalize() + " tokens=" + data.tokenCount() + " docs=" + data.documentCount()
                + " sampling=" + sampling + " ctx=" + ctxLen + " seed=" + seed;
    }

    @Override
    public void close() {
        if (packed != null) packed.close(); else data.close();
    }
}
