package ai.longrwkv.datasets.build;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.util.Progress;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.binidx.TokenDtype;
import ai.longrwkv.datasets.io.AtomicFileSet;
import ai.longrwkv.datasets.io.ByteList;
import ai.longrwkv.datasets.io.IntList;
import ai.longrwkv.datasets.io.Utf8;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import me.tongfei.progressbar.ProgressBar;

import java.io.BufferedInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.GZIPInputStream;

/**
 * `data build`: input files to a binidx dataset with a loss-mask sidecar (see {@link BinIdxFormat}).
 *
 * <p>Streaming: jsonl files are cut into batches of whole lines (about 1 MB), which worker threads parse, render
 * and tokenize; the calling thread reads the input and writes the results in input order, with at most a few
 * batches per worker in flight, so memory stays constant whatever the input size. A .txt file (format text) is one
 * document: up to 16 MB it is one batch, a larger one is tokenized piece by piece on the calling thread
 * ({@link StreamingTextEncoder}). Files ending in .gz are decompressed on the fly.
 *
 * <p>Output: written under temporary names and renamed when complete, the .idx last ({@link AtomicFileSet}). The
 * bytes depend only on the inputs and options (thread count included: results are written in input order).
 */
public final class DatasetBuilder {
    /** Bytes of jsonl per batch handed to a worker. */
    static final int BATCH_BYTES = 1 << 20;
    /** .txt files up to this size are read whole by a worker; larger ones are streamed. */
    static final long WHOLE_TEXT_FILE_BYTES = 16L << 20;
    /** How many skipped records the report quotes. */
    static final int SKIP_EXAMPLES = 10;

    /**
     * trainAll: train every token (--train-on all) instead of the format's default. skipBad: skip bad records and
     * count them instead of failing. threads: worker threads (at least 1). shuffleSeed: null keeps the input order,
     * else the documents are shuffled with this seed.
     */
    public record Options(InputFormat format, Tokenizer tokenizer, String tokenizerSpec, boolean trainAll, boolean skipBad,
                          int threads, Long shuffleSeed) {
        public Options {
            if (threads < 1) throw new IllegalArgumentException("--threads must be at least 1, got " + threads);
        }
    }

    private final Options options;
    private final TokenDtype dtype;
    private final int[] tokenByteLengths;
    /** Streaming piece size for large .txt files; tests make it small. */
    int textPieceBytes = 4 << 20;
    long wholeTextFileBytes = WHOLE_TEXT_FILE_BYTES;
    /** Default bound on one jsonl line: far above any real record, far below what would exhaust a small heap. */
    public static final long DEFAULT_MAX_LINE_BYTES = 64L << 20;
    private long maxLineBytes = DEFAULT_MAX_LINE_BYTES;

    private ChatTemplate template = ChatTemplate.WORLD;
    private String userName = InputFormat.PIPPA_USER;

    /** The chat template of the chat and pippa formats (default world) and the user's display name (default User). */
    public DatasetBuilder chat(ChatTemplate template, String userName) {
        if (userName.isBlank()) throw new IllegalArgumentException("--user-name must not be empty");
        this.template = template;
        this.userName = ChatTurns.normalizeSpeaker(userName, "--user-name");
        return this;
    }

    /** Lines longer than this many bytes are bad records (stop the build, or are skipped with --skip-bad). */
    public DatasetBuilder maxLineBytes(long bytes) {
        if (bytes < 1) throw new IllegalArgumentException("--max-line-mb must be > 0, got " + bytes + " bytes");
        this.maxLineBytes = bytes;
        return this;
    }

    public DatasetBuilder(Options options) {
        this.options = options;
        this.dtype = TokenDtype.forVocabulary(options.tokenizer().vocabSize());
        this.tokenByteLengths = GreedyTokenizers.tokenByteLengths(options.tokenizer());
    }

    /** Builds PREFIX.bin/.idx/.mask/.meta.json from the inputs. */
    public BuildReport build(List<Path> inputs, Path outPrefix) {
        if (inputs.isEmpty()) throw new IllegalArgumentException("no input files");
        long totalBytes = 0;
        for (Path in : inputs) {
            if (!Files.exists(in)) throw new IllegalArgumentException("input file not found: " + in);
            if (!Files.isRegularFile(in)) throw new IllegalArgumentException("input is not a regular file: " + in);
            try {
                totalBytes += Files.size(in);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + in + ": " + e.getMessage(), e);
            }
        }
        Path prefix = Path.of(BinIdxFormat.stripExtension(outPrefix.toString()));
        long start = System.nanoTime();
        Run run = new Run(totalBytes);
        try (AtomicFileSet files = new AtomicFileSet()) {
            Path idx = BinIdxFormat.idx(prefix);
            if (options.shuffleSeed() == null) {
                try (BinIdxWriter writer = new BinIdxWriter(files.temp(BinIdxFormat.bin(prefix)), files.temp(idx),
                        files.temp(BinIdxFormat.mask(prefix)), dtype)) {
                    run.writeAll(inputs, writer);
                    writer.finish();
                }
            } else {
                writeShuffled(inputs, prefix, files, run);
            }
            if (run.documents == 0) {
                throw new IllegalArgumentException("no documents: " + (inputs.size() == 1 ? inputs.get(0) + " holds" : "the inputs hold") + " no records"
                        + (run.skipped > 0 ? " that could be used (" + run.skipped + " bad records skipped)" : "")
                        + (run.blankLines > 0 ? " (" + run.blankLines + " blank lines)" : "") + "; nothing written");
            }
            DatasetMeta.write(files.temp(BinIdxFormat.meta(prefix)), meta(inputs, run));
            files.commit(idx);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        return new BuildReport(prefix, run.documents, run.tokens, run.trainedTokens, totalBytes, run.skipped,
                List.copyOf(run.skippedExamples), run.blankLines, run.untrainedDocuments, seconds);
    }

    /** Writes an unshuffled dataset beside the output, then copies its documents in shuffled order. */
    private void writeShuffled(List<Path> inputs, Path prefix, AtomicFileSet files, Run run) {
        Path scratch = Path.of(prefix + ".unshuffled.tmp-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        Path[] scratchFiles = {BinIdxFormat.bin(scratch), BinIdxFormat.idx(scratch), BinIdxFormat.mask(scratch)};
        try {
            try (BinIdxWriter writer = new BinIdxWriter(scratchFiles[0], scratchFiles[1], scratchFiles[2], dtype)) {
                run.writeAll(inputs, writer);
                writer.finish();
            }
            try (BinIdxDataset unshuffled = BinIdxDataset.open(scratch);
                 BinIdxWriter writer = new BinIdxWriter(files.temp(BinIdxFormat.bin(prefix)), files.temp(BinIdxFormat.idx(prefix)),
                         files.temp(BinIdxFormat.mask(prefix)), dtype)) {
                int n = unshuffled.documentCount();
                int[] order = shuffledOrder(n, options.shuffleSeed());
                for (int doc : order) writer.add(unshuffled.document(doc), unshuffled.mask(doc));
                writer.finish();
            }
        } finally {
            for (Path p : scratchFiles) {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // leftover scratch files are clutter, not a wrong result
                }
            }
        }
    }

    /** A permutation of 0..n-1 (Fisher-Yates with SplittableRandom: the same on every JVM). */
    public static int[] shuffledOrder(int n, long seed) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        SplittableRandom rng = new SplittableRandom(seed);
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    private JsonObject meta(List<Path> inputs, Run run) {
        JsonObject m = new JsonObject();
        m.addProperty("kind", "documents");
        m.addProperty("format", options.format().cliName);
        m.addProperty("tokenizer", options.tokenizerSpec());
        m.addProperty("train_on", options.trainAll() ? "all" : "assistant");
        if (options.format() == InputFormat.CHAT || options.format() == InputFormat.PIPPA) {
            JsonObject t = new JsonObject();
            template.describe().forEach(t::addProperty);
            m.add("template", t);
            m.addProperty("user_name", userName);
        }
        JsonArray in = new JsonArray();
        for (Path p : inputs) in.add(p.toString());
        m.add("inputs", in);
        if (options.shuffleSeed() != null) m.addProperty("shuffle_seed", options.shuffleSeed());
        m.addProperty("dtype", dtype.numpyName());
        m.addProperty("documents", run.documents);
        m.addProperty("tokens", run.tokens);
        m.addProperty("trained_tokens", run.trainedTokens);
        m.addProperty("skipped_records", run.skipped);
        m.addProperty("mask", "PREFIX.mask: 24-byte header (LRWKVMSK, u64 version 1, u64 tokens), then one byte per token of PREFIX.bin: 1 = predicting this token is trained");
        return m;
    }

    /** State of one build: counters, the worker pool, the progress bar. */
    private final class Run {
        final long totalBytes;
        long documents, tokens, trainedTokens, skipped, blankLines, untrainedDocuments, bytesDone;
        final List<String> skippedExamples = new ArrayList<>();
        long startNanos = System.nanoTime();
        ProgressBar bar;

        Run(long totalBytes) {
            this.totalBytes = totalBytes;
        }

        void writeAll(List<Path> inputs, BinIdxWriter writer) {
            int workers = options.threads();
            ExecutorService pool = Executors.newFixedThreadPool(workers, r -> {
                Thread t = new Thread(r, "data-build-worker");
                t.setDaemon(true);
                return t;
            });
            ArrayDeque<Future<BatchResult>> pending = new ArrayDeque<>();
            int maxPending = 2 * workers + 2;
            try (ProgressBar progress = Progress.bytes("data build", Math.max(1, totalBytes))) {
                bar = progress;
                for (Path file : inputs) {
                    if (options.format() == InputFormat.TEXT && isPlainText(file)) {
                        long size = Files.size(file);
                        if (size <= wholeTextFileBytes || tokenByteLengths == null) {
                            pending.add(pool.submit(() -> processTextFile(file)));
                        } else {
                            while (!pending.isEmpty()) consume(pending.poll(), writer);
                            streamTextFile(file, writer);
                        }
                    } else {
                        try (CountingInputStream raw = new CountingInputStream(Files.newInputStream(file));
                             InputStream in = open(file, raw)) {
                            LineBatcher batcher = new LineBatcher(file, in, BATCH_BYTES, raw::count, maxLineBytes,
                                    line -> badTextFile(new BadRecordException(file, line, "line longer than " + describeBytes(maxLineBytes)
                                            + " (the bound on one record; --max-line-mb raises it)")));
                            for (LineBatcher.Batch batch = batcher.next(); batch != null; batch = batcher.next()) {
                                LineBatcher.Batch b = batch;
                                pending.add(pool.submit(() -> processLines(b)));
                                while (pending.size() >= maxPending) consume(pending.poll(), writer);
                            }
                        } catch (java.util.zip.ZipException | java.io.EOFException e) {
                            // a truncated or not-gzip .gz is a bad input, not an I/O failure
                            throw new IllegalArgumentException(file + ": not a complete gzip file (" + e.getMessage() + ")");
                        } catch (IOException e) {
                            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
                        }
                    }
                    while (pending.size() >= maxPending) consume(pending.poll(), writer);
                }
                while (!pending.isEmpty()) consume(pending.poll(), writer);
                progress.stepTo(progress.getMax());
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read input: " + e.getMessage(), e);
            } finally {
                for (Future<BatchResult> f : pending) f.cancel(true);
                pool.shutdownNow();
            }
        }

        private void consume(Future<BatchResult> future, BinIdxWriter writer) {
            BatchResult r;
            try {
                r = future.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted", e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                if (e.getCause() instanceof Error err) throw err;
                throw new IllegalStateException(e.getCause());
            }
            if (!r.bad.isEmpty() && !options.skipBad()) throw r.bad.get(0);
            for (BadRecordException bad : r.bad) {
                skipped++;
                if (skippedExamples.size() < SKIP_EXAMPLES) skippedExamples.add(bad.getMessage());
            }
            int pos = 0;
            int[] lengths = r.docLengths.array();
            for (int d = 0; d < r.docLengths.size(); d++) {
                writer.add(r.tokens.array(), pos, pos + lengths[d], r.flags.array(), pos);
                pos += lengths[d];
            }
            documents += r.docLengths.size();
            tokens += r.tokens.size();
            trainedTokens += r.trainedTokens;
            blankLines += r.blankLines;
            untrainedDocuments += r.untrainedDocuments;
            advance(r.inputBytes);
        }

        private void advance(long bytes) {
            bytesDone += bytes;
            bar.stepTo(Math.min(bar.getMax(), bytesDone));
            double seconds = Math.max(1e-9, (System.nanoTime() - startNanos) / 1e9);
            bar.setExtraMessage(String.format(Locale.ROOT, " %,d docs %.1fM tok/s", documents, tokens / seconds / 1e6));
        }

        /** A .txt file too big to hold: tokenized in pieces on this thread straight into the writer. */
        private void streamTextFile(Path file, BinIdxWriter writer) throws IOException {
            StreamingTextEncoder encoder = new StreamingTextEncoder(options.tokenizer(), tokenByteLengths, textPieceBytes);
            long[] count = {0};
            try (InputStream in = new BufferedInputStream(Files.newInputStream(file), 1 << 16)) {
                long bytes = encoder.encode(in, id -> {
                    writer.addToken(id, 1);
                    count[0]++;
                }, this::advance);
                if (bytes == 0) {
                    badTextFile(new BadRecordException(file, 1, "empty file"));
                    return;
                }
            } catch (Utf8.InvalidUtf8Exception e) {
                // the tokens so far are in the writer; the whole run fails (skipping needs the document held back)
                throw new BadRecordException(file, e.line(), e.getMessage() + " (a streamed .txt document cannot be skipped with --skip-bad)");
            }
            writer.addToken(Tokenizer.END_OF_TEXT, 1);
            writer.endItem();
            documents++;
            tokens += count[0] + 1;
            trainedTokens += count[0] + 1;
        }

        private void badTextFile(BadRecordException bad) {
            if (!options.skipBad()) throw bad;
            skipped++;
            if (skippedExamples.size() < SKIP_EXAMPLES) skippedExamples.add(bad.getMessage());
        }
    }

    /** The tokens of one batch, in input order, and its bad records. */
    private static final class BatchResult {
        final IntList tokens = new IntList(1 << 16);
        final ByteList flags = new ByteList(1 << 16);
        final IntList docLengths = new IntList(256);
        final List<BadRecordException> bad = new ArrayList<>();
        long trainedTokens, blankLines, untrainedDocuments, inputBytes;

        void addDocument(RenderedDocument doc, Tokenizer tokenizer) {
            int before = tokens.size();
            doc.encode(tokenizer, tokens, flags);
            int n = tokens.size() - before;
            docLengths.add(n);
            long trained = 0;
            byte[] f = flags.array();
            for (int i = before; i < before + n; i++) trained += f[i];
            trainedTokens += trained;
            if (trained == 0) untrainedDocuments++;
        }
    }

    private BatchResult processLines(LineBatcher.Batch batch) {
        BatchResult r = new BatchResult();
        r.inputBytes = batch.inputBytes();
        byte[] data = batch.data();
        for (int i = 0; i < batch.lines(); i++) {
            int from = batch.start(i), to = batch.ends()[i];
            long line = batch.firstLine() + i;
            if (isBlank(data, from, to)) {
                r.blankLines++;
                continue;
            }
            try {
                Utf8.check(data, from, to);
                String json = new String(data, from, to - from, StandardCharsets.UTF_8);
                RenderedDocument doc = options.format().renderLine(json, options.trainAll(), template, userName);
                r.addDocument(doc, options.tokenizer());
            } catch (RecordException | Utf8.InvalidUtf8Exception e) {
                r.bad.add(new BadRecordException(batch.file(), line, e.getMessage()));
            } catch (IllegalArgumentException e) {
                // e.g. a lone surrogate from a "\ud800" escape, found when the text is encoded
                r.bad.add(new BadRecordException(batch.file(), line, e.getMessage()));
            }
        }
        return r;
    }

    private BatchResult processTextFile(Path file) throws IOException {
        BatchResult r = new BatchResult();
        byte[] bytes = Files.readAllBytes(file);
        r.inputBytes = bytes.length;
        try {
            if (bytes.length == 0) throw new RecordException("empty file");
            Utf8.Validator v = new Utf8.Validator();
            try {
                v.feed(bytes, 0, bytes.length);
                v.finish();
            } catch (Utf8.InvalidUtf8Exception e) {
                r.bad.add(new BadRecordException(file, e.line(), e.getMessage()));
                return r;
            }
            // tokenize the bytes as they are (no String round trip: they are valid UTF-8, so it would change nothing)
            int[] ids = options.tokenizer().encode(bytes);
            r.tokens.addAll(ids);
            r.tokens.add(Tokenizer.END_OF_TEXT);
            r.flags.fill((byte) 1, ids.length + 1);
            r.docLengths.add(ids.length + 1);
            r.trainedTokens += ids.length + 1;
        } catch (RecordException e) {
            r.bad.add(new BadRecordException(file, 1, e.getMessage()));
        }
        return r;
    }

    static String describeBytes(long bytes) {
        return bytes % (1 << 20) == 0 ? (bytes >> 20) + " MB" : bytes + " bytes";
    }

    static boolean isPlainText(Path file) {
        return file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".txt");
    }

    private static boolean isBlank(byte[] data, int from, int to) {
        for (int i = from; i < to; i++) {
            byte b = data[i];
            if (b != ' ' && b != '\t' && b != '\r') return false;
        }
        return true;
    }

    private static InputStream open(Path file, InputStream raw) throws IOException {
        InputStream buffered = new BufferedInputStream(raw, 1 << 16);
        if (file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".gz")) {
            return new BufferedInputStream(new GZIPInputStream(buffered, 1 << 16), 1 << 16);
        }
        return buffered;
    }

    /** Counts the bytes read from the file, for progress (compressed bytes for .gz). */
    private static final class CountingInputStream extends FilterInputStream {
        private volatile long count;

        CountingInputStream(InputStream in) {
            super(in);
        }

        long count() {
            return count;
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) count++;
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0) count += n;
            return n;
        }
    }
}
