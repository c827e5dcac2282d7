package ai.longrwkv.finetune;

import ai.longrwkv.core.train.ContentFingerprint;
import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.core.train.Trainer;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.io.InputFiles;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.pack.PackedDataset;
import com.google.gson.JsonObject;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Training sequences from a dataset made by {@code longrwkv data build | pack | synth}, deterministic by index:
 * <ul>
 *   <li>{@code windows} (default for {@code data build} output): RWKV-LM's sampling, a random window of ctx-len + 1
 *   tokens of the flat token stream (crossing documents, which are separated by token 0);</li>
 *   <li>{@code documents} (default for {@code data pack} and {@code data synth} output): each document or packed
 *   sequence is one training sequence, in a shuffled order per epoch; packed sequences made with
 *   {@code --state-at-boundary reset} reset the state at each document start.</li>
 *   <li>{@code stream}: consecutive ctx-len slices of the flat token stream, in order (wrapping around at its end):
 *   with {@code --carry-state} each sequence continues the text, and the state, where the one before stopped.</li>
 * </ul>
 * A {@link LengthSchedule} (--ctx-len 512:2000,2048) changes the length by step: windows and stream cut sequences of
 * the phase's length; documents draws only documents that fit the phase's longest length.
 */
public final class DatasetSequences implements Trainer.SequenceSource, AutoCloseable {
    public enum Sampling { WINDOWS, DOCUMENTS, STREAM }

    private final Path prefix;
    private final BinIdxDataset data;
    private final PackedDataset packed;
    private final Sampling sampling;
    private final int ctxLen;
    private final LengthSchedule schedule;
    private final int sequencesPerStep;
    /** Documents longer than ctx-len are trained as consecutive pieces (for --carry-state), not refused. */
    private final boolean pieces;
    private long[] pieceStarts;   // this epoch: index of the first piece of the epoch order's j-th document
    private long pieceEpoch = -1;
    private long piecesPerEpoch;
    private final long seed;
    private final long[] docStarts;
    private final int vocabHint;
    private long cachedEpoch = -1;
    private int[] cachedOrder;

    /** DOCUMENTS sampling: the documents (or packed sequences) that have at least one trained target, in index order. */
    private final int[] eligible;
    private final String fingerprint;
    private int vocab = -1;

    private DatasetSequences(Path prefix, BinIdxDataset data, PackedDataset packed, Sampling sampling, LengthSchedule schedule,
                             int sequencesPerStep, boolean pieces, long seed, int vocabHint, int[] eligible, String fingerprint) {
        this.prefix = prefix;
        this.data = data;
        this.packed = packed;
        this.sampling = sampling;
        this.schedule = schedule;
        this.sequencesPerStep = sequencesPerStep;
        this.pieces = pieces;
        this.ctxLen = schedule.longest();
        this.seed = seed;
        this.vocabHint = vocabHint;
        this.eligible = eligible;
        this.fingerprint = fingerprint;
        this.docStarts = new long[data.documentCount()];
        for (int d = 0; d < docStarts.length; d++) docStarts[d] = data.documentStart(d);
    }

    /** The kinds of PREFIX.meta.json. */
    private static final Set<String> KINDS = Set.of("documents", "packed", "synthetic");

    /**
     * Opens a dataset for training with sequences of at most {@code ctxLen} tokens. {@code sampling} null picks the
     * default for the dataset's kind. Problems (too little data, sequences longer than ctx-len, no trained token,
     * files that are there but unusable, a packed or synthetic dataset without its metadata) are reported now.
     * Documents without a trained target are left out of the epoch order (a note says how many); windows without
     * one are drawn again: nothing is ever trained on the L2Wrap term alone.
     */
    public static DatasetSequences open(Path prefix, int ctxLen, long seed, Sampling sampling) {
        if (ctxLen < 1) throw new IllegalArgumentException("--ctx-len must be >= 1, got " + ctxLen);
        return open(prefix, LengthSchedule.constant(ctxLen), 1, false, seed, sampling);
    }

    /**
     * As above with a length schedule; {@code sequencesPerStep} (micro-batch x grad-accum) maps a sequence index to
     * its step. Every check that concerns the length uses the schedule's longest. {@code pieces} (documents sampling,
     * for --carry-state): a document longer than ctx-len is not refused but trained as consecutive pieces of ctx-len
     * tokens, each piece one sequence that {@link #continuesPrevious continues} the one before (in the longest
     * phase; shorter phases draw whole documents that fit).
     */
    public static DatasetSequences open(Path prefix, LengthSchedule schedule, int sequencesPerStep, boolean pieces, long seed, Sampling sampling) {
        int ctxLen = schedule.longest();
        if (sequencesPerStep < 1) throw new IllegalArgumentException("sequences per step must be >= 1, got " + sequencesPerStep);
        Path metaFile = BinIdxFormat.meta(prefix), segFile = BinIdxFormat.segments(prefix);
        Path samplesFile = BinIdxFormat.sibling(prefix, ".samples.jsonl");
        JsonObject meta = DatasetMeta.read(prefix);   // refuses a metadata file that is there but unusable
        boolean hasSegments = InputFiles.present(segFile, "segments");
        if (meta == null && hasSegments) {
            throw new IllegalArgumentException(segFile + " is there but " + metaFile + " is missing: a packed dataset cannot be trained without"
                    + " its metadata (kind, state_at_document_boundary); restore it or run `data pack` again");
        }
        if (meta == null && sampling == null && InputFiles.present(samplesFile, "synthetic samples")) {
            throw new IllegalArgumentException(samplesFile + " is there (a `data synth` dataset) but " + metaFile + " is missing, so its kind is"
                    + " unknown: restore it, or give --sampling documents (one sample per step) or --sampling windows");
        }
        String kind = meta == null ? "documents" : DatasetMeta.string(meta, "kind", null);
        if (kind == null) throw new IllegalArgumentException(metaFile + ": no \"kind\" (expected documents, packed or synthetic)");
        if (!KINDS.contains(kind)) throw new IllegalArgumentException(metaFile + ": kind '" + kind + "' is not documents, packed or synthetic");
        if (hasSegments && !kind.equals("packed")) {
            throw new IllegalArgumentException(segFile + " is there but " + metaFile + " says kind '" + kind + "', not 'packed': remove the stale file or restore the metadata");
        }
        String tokenizer = meta == null ? "" : DatasetMeta.string(meta, "tokenizer", "");
        int vocabHint = tokenizer.equals("bytes") ? 256 : tokenizer.startsWith("world") ? 65536 : -1;
        PackedDataset packed = kind.equals("packed") ? PackedDataset.open(prefix) : null;
        BinIdxDataset data = packed != null ? packed.binIdx() : BinIdxDataset.open(prefix);
        try {
            Sampling s = sampling != null ? sampling : kind.equals("documents") ? Sampling.WINDOWS : Sampling.DOCUMENTS;
            if (s == Sampling.STREAM) {
                for (LengthSchedule.Phase ph : schedule.phases()) {
                    if (ph.lengths().length > 1) {
                        throw new IllegalArgumentException("--sampling stream cuts consecutive slices of one length per phase: --ctx-len " + schedule
                                + " mixes lengths in a phase (use windows or documents sampling for that)");
                    }
                }
            }
            if (packed != null && s != Sampling.DOCUMENTS) {
                throw new IllegalArgumentException(prefix + " is a packed dataset: train on its sequences (--sampling documents)");
            }
            if (!data.hasMask()) {
                if (packed != null) {
                    throw new IllegalArgumentException(BinIdxFormat.mask(prefix) + " is missing: a packed dataset needs it (its padding is flagged"
                            + " untrained); without it every padding token would be trained. Restore it or run `data pack` again");
                }
                long recorded = meta == null ? -1 : DatasetMeta.number(meta, "trained_tokens", -1);
                if (recorded >= 0 && recorded < data.tokenCount()) {
                    System.err.printf("note: %s is absent, so all %,d tokens are trained (its metadata records %,d trained tokens)%n",
                            BinIdxFormat.mask(prefix), data.tokenCount(), recorded);
                }
            }
            if (data.trainedTokenCount() == 0) {
                throw new IllegalArgumentException(prefix + ": no token is trained (" + BinIdxFormat.mask(prefix).getFileName() + " flags every token 0):"
                        + " nothing to learn. Chat data trains the assistant turns (roles assistant, gpt, model, bot, char);"
                        + " `data build --train-on all` trains every token");
            }
            if (s != Sampling.DOCUMENTS && data.tokenCount() < ctxLen + 1L) {
                throw new IllegalArgumentException(prefix + " has " + data.tokenCount() + " tokens, fewer than --ctx-len + 1 = " + (ctxLen + 1)
                        + ": use a smaller --ctx-len or more data");
            }
            int[] eligible = null;
            if (s == Sampling.DOCUMENTS) {
                if (data.documentCount() == 0) throw new IllegalArgumentException(prefix + " has no documents");
                int longest = 0;
                for (int d = 0; d < data.documentCount(); d++) longest = Math.max(longest, data.documentLength(d));
                // a document of ctx-len + 1 tokens (e.g. ctx-len tokens and the end-of-text 0) gives ctx-len predictions
                if (longest > ctxLen + 1 && !pieces) {
                    throw new IllegalArgumentException(prefix + ": its longest " + (packed != null ? "sequence" : "document") + " has "
                            + longest + " tokens, more than --ctx-len " + ctxLen + " (raise --ctx-len, or use --sampling windows)");
                }
                eligible = withTrainedTargets(data);
                String what = packed != null ? "sequences" : "documents";
                if (eligible.length == 0) {
                    throw new IllegalArgumentException(prefix + ": none of its " + data.documentCount() + " " + what + " has a trained target"
                            + " (a trained token after its first): nothing to learn");
                }
                if (eligible.length < data.documentCount()) {
                    System.err.printf("note: %,d of %,d %s of %s have no trained target and are skipped%n",
                            data.documentCount() - eligible.length, data.documentCount(), what, prefix);
                }
            }
            String fp = contentFingerprint(prefix, data, packed) + " kind=" + kind + " tokens=" + data.tokenCount() + " docs=" + data.documentCount()
                    + " sampling=" + s + " ctx=" + ctxLen + " seed=" + seed
                    + (schedule.varies() ? " schedule=" + schedule + " per_step=" + sequencesPerStep : "")
                    + (pieces && s == Sampling.DOCUMENTS ? " pieces" : "");
            DatasetSequences ds = new DatasetSequences(prefix, data, packed, s, schedule, sequencesPerStep, pieces && s == Sampling.DOCUMENTS,
                    seed, vocabHint, eligible, fp);
            if (s == Sampling.DOCUMENTS) {   // every phase must find documents that fit it: refused now, not at its first step
                for (LengthSchedule.Phase ph : schedule.phases()) if (ph.longest() < ctxLen) ds.fitting(ph.longest());
            }
            return ds;
        } catch (RuntimeException e) {
            if (packed != null) packed.close(); else data.close();
            throw e;
        }
    }

    /** Items with at least one trained target: a flag 1 on a token after the first (position t predicts token t + 1). */
    private static int[] withTrainedTargets(BinIdxDataset data) {
        int n = data.documentCount();
        int[] out = new int[n];
        int k = 0;
        for (int d = 0; d < n; d++) {
            int len = data.documentLength(d);
            boolean any = false;
            if (!data.hasMask()) {
                any = len >= 2;
            } else if (len >= 2) {
                byte[] f = new byte[len - 1];
                data.readMask(d, 1, f, 0, len - 1);
                for (byte b : f) if (b != 0) { any = true; break; }
            }
            if (any) out[k++] = d;
        }
        return Arrays.copyOf(out, k);
    }

    /** The data's content, not its path: size and SHA-256 of the first and last MiB of each file (see ContentFingerprint). */
    private static String contentFingerprint(Path prefix, BinIdxDataset data, PackedDataset packed) {
        StringBuilder b = new StringBuilder("idx ").append(ContentFingerprint.of(BinIdxFormat.idx(prefix)))
                .append(" bin ").append(ContentFingerprint.of(BinIdxFormat.bin(prefix)));
        if (data.hasMask()) b.append(" mask ").append(ContentFingerprint.of(BinIdxFormat.mask(prefix)));
        if (packed != null) {
            b.append(" segments ").append(ContentFingerprint.of(BinIdxFormat.segments(prefix))).append(" boundary=").append(packed.boundaryMode().cliName());
        }
        return b.toString();
    }

    /** Checks every sequence handed out against the model's vocabulary; a bad token is named with its file, document and position. */
    public void requireVocabulary(int vocabSize) {
        this.vocab = vocabSize;
        long bad = data.firstTokenOutside(vocabSize);   // the whole stream, once, before the first step
        if (bad >= 0) {
            int[] one = new int[1];
            data.readTokens(bad, one, 0, 1);
            checkTokens(one, bad, -1);
        }
    }

    public static Sampling parseSampling(String s) {
        if (s == null) return null;
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "windows" -> Sampling.WINDOWS;
            case "documents" -> Sampling.DOCUMENTS;
            case "stream" -> Sampling.STREAM;
            default -> throw new IllegalArgumentException("--sampling must be windows, documents or stream, got '" + s + "'");
        };
    }

    /** The vocabulary size the dataset's tokenizer implies (256 bytes, 65536 World), or -1 if unknown. */
    public int vocabHint() { return vocabHint; }

    public Sampling sampling() { return sampling; }

    public long tokenCount() { return data.tokenCount(); }

    @Override
    public TokenSequence sequence(long index) {
        return switch (sampling) {
            case WINDOWS -> window(index);
            case DOCUMENTS -> document(index);
            case STREAM -> streamSlice(index);
        };
    }

    /** The length schedule (a single length unless --ctx-len gave phases). */
    public LengthSchedule schedule() { return schedule; }

    /**
     * Sequence {@code index} of the stream: the slice that starts where sequence index - 1 ended (the sum of the
     * lengths before it), taken modulo the room for a slice of its length; with its next token as the last target.
     */
    private TokenSequence streamSlice(long index) {
        int len = schedule.lengthOf(index, sequencesPerStep, seed);
        long before = 0;
        long remaining = index;
        for (LengthSchedule.Phase ph : schedule.phases()) {
            long n = ph.steps() == Long.MAX_VALUE ? Long.MAX_VALUE : ph.steps() * sequencesPerStep;
            long here = Math.min(remaining, n);
            before += here * ph.lengths()[0];
            remaining -= here;
            if (remaining == 0) break;
        }
        before += remaining * len;   // past the schedule: its last phase goes on
        long room = data.tokenCount() - len;   // a slice needs len + 1 tokens: inputs and the last target
        long start = Math.floorMod(before, room);
        int[] tokens = new int[len + 1];
        data.readTokens(start, tokens, 0, len + 1);
        checkTokens(tokens, start, index);
        byte[] flags = flatFlags(start, len + 1);
        return BinIdxDataset.toTrainingSequence(Arrays.copyOf(tokens, len), Arrays.copyOf(flags, len)).withLastTarget(tokens[len], flags[len]);
    }

    /** Windows drawn for one index before giving up on finding a trained target in one. */
    static final int WINDOW_TRIES = 1000;

    private TokenSequence window(long index) {
        SplittableRandom rnd = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + index);
        int len = schedule.lengthOf(index, sequencesPerStep, seed);
        for (int attempt = 0; attempt < WINDOW_TRIES; attempt++) {
            long start = rnd.nextLong(data.tokenCount() - len);
            int[] tokens = new int[len + 1];
            data.readTokens(start, tokens, 0, len + 1);
            checkTokens(tokens, start, index);
            byte[] flags = flatFlags(start, len + 1);
            TokenSequence seq = BinIdxDataset.toTrainingSequence(Arrays.copyOf(tokens, len), Arrays.copyOf(flags, len))
                    .withLastTarget(tokens[len], flags[len]);
            if (seq.lossPositions() > 0) return seq;   // else draw again: a window with no target would train on L2Wrap alone
        }
        throw new IllegalArgumentException(prefix + ": " + WINDOW_TRIES + " random windows of " + (len + 1) + " tokens in a row have no trained"
                + " token (training sequence " + index + "): the trained tokens are too sparse for windows; use --sampling documents");
    }

    /** Refuses a token outside the model's vocabulary, naming the file, the document and the position. */
    private void checkTokens(int[] tokens, long streamStart, long index) {
        if (vocab <= 0) return;
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] >= 0 && tokens[i] < vocab) continue;
            long pos = streamStart + i;
            int doc = Arrays.binarySearch(docStarts, pos);
            if (doc < 0) doc = -doc - 2;
            while (doc + 1 < docStarts.length && docStarts[doc + 1] == pos && data.documentLength(doc) == 0) doc++;
            throw new IllegalArgumentException(BinIdxFormat.bin(prefix) + ": " + (packed != null ? "sequence " : "document ") + doc + " has token "
                    + tokens[i] + " at position " + (pos - docStarts[doc]) + ", outside the model's vocabulary 0.." + (vocab - 1)
                    + (index >= 0 ? " (training sequence " + index + "; " : " (found before training; ") + "was the data tokenized for another model?)");
        }
    }

    @Override
    public boolean continuesPrevious(long index) {
        if (index == 0) return false;
        if (sampling == Sampling.STREAM) return true;
        return pieces && schedule.limitOf(index, sequencesPerStep) >= ctxLen && piece(index)[1] > 0;
    }

    /** Pieces of a document of {@code length} tokens: ctx-len predictions each (the last one fewer). */
    private int pieceCount(int length) {
        return length <= ctxLen + 1 ? 1 : (int) ((length - 1 + (long) ctxLen - 1) / ctxLen);
    }

    /** {document, piece} of sequence {@code index} when documents are cut into pieces: the epoch order, piece by piece. */
    private long[] piece(long index) {
        if (piecesPerEpoch == 0) for (int d : eligible) piecesPerEpoch += pieceCount(data.documentLength(d));
        long epoch = index / piecesPerEpoch, pos = index % piecesPerEpoch;
        int[] ord = order(epoch);
        if (pieceEpoch != epoch) {
            pieceStarts = new long[ord.length];
            long sum = 0;
            for (int j = 0; j < ord.length; j++) {
                pieceStarts[j] = sum;
                sum += pieceCount(data.documentLength(eligible[ord[j]]));
            }
            pieceEpoch = epoch;
        }
        int j = Arrays.binarySearch(pieceStarts, pos);
        if (j < 0) j = -j - 2;
        while (j + 1 < pieceStarts.length && pieceStarts[j + 1] == pos) j++;   // (no document has zero pieces; kept for safety)
        return new long[]{eligible[ord[j]], pos - pieceStarts[j]};
    }

    private TokenSequence document(long index) {
        int limit = schedule.limitOf(index, sequencesPerStep);
        int doc;
        if (limit >= ctxLen && pieces && packed == null) {
            long[] dp = piece(index);
            doc = (int) dp[0];
            int[] all = data.document(doc);
            checkTokens(all, docStarts[doc], index);
            byte[] allFlags = data.mask(doc);
            int from = (int) dp[1] * ctxLen, to = Math.min(all.length, from + ctxLen + 1);
            int[] tokens = Arrays.copyOfRange(all, from, to);
            byte[] flags = Arrays.copyOfRange(allFlags, from, to);
            if (tokens.length == ctxLen + 1) {
                return BinIdxDataset.toTrainingSequence(Arrays.copyOf(tokens, ctxLen), Arrays.copyOf(flags, ctxLen))
                        .withLastTarget(tokens[ctxLen], flags[ctxLen]);
            }
            return BinIdxDataset.toTrainingSequence(tokens, flags);
        }
        if (limit >= ctxLen) {
            int n = eligible.length;
            long epoch = index / n;
            doc = eligible[order(epoch)[(int) (index % n)]];
        } else {
            // an earlier, shorter phase: only the documents that fit it, in their own shuffled order per epoch
            int[] fit = fitting(limit);
            int n = fit.length;
            doc = fit[permutation(n, seed * 31 + index / n + 0x51ED27L * limit)[(int) (index % n)]];
        }
        if (packed != null) {
            PackedDataset.Sequence s = packed.sequence(doc);
            checkTokens(s.tokens(), docStarts[doc], index);
            TokenSequence t = s.trainingSequence();
            if (t.length() > ctxLen) {
                throw new IllegalArgumentException(prefix + ": packed sequence " + doc + " has " + t.length() + " tokens, more than --ctx-len " + ctxLen);
            }
            return t;   // with the pack's state resets, if it was made with them
        }
        int[] tokens = data.document(doc);
        checkTokens(tokens, docStarts[doc], index);
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
            cachedOrder = permutation(eligible.length, seed * 31 + epoch);
            cachedEpoch = epoch;
        }
        return cachedOrder;
    }

    private static int[] permutation(int n, long seed) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    private final java.util.Map<Integer, int[]> fittingCache = new java.util.HashMap<>();

    /** The eligible documents of at most limit + 1 tokens (limit predictions); refused if there are none. */
    private int[] fitting(int limit) {
        int[] cached = fittingCache.get(limit);
        if (cached != null) return cached;
        int[] out = Arrays.stream(eligible).filter(d -> data.documentLength(d) <= limit + 1).toArray();
        if (out.length == 0) {
            throw new IllegalArgumentException(prefix + ": no document fits the --ctx-len " + schedule + " phase of length " + limit
                    + " (each document is one training sequence with documents sampling): make shorter ones, e.g. data synth --lengths " + limit);
        }
        fittingCache.put(limit, out);
        return out;
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
        return fingerprint;
    }

    @Override
    public void close() {
        if (packed != null) packed.close(); else data.close();
    }
}
