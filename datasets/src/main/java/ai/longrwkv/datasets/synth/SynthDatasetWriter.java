package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.util.Progress;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.binidx.TokenDtype;
import ai.longrwkv.datasets.io.AtomicFileSet;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import me.tongfei.progressbar.ProgressBar;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * `data synth`: count samples per length, written as a binidx dataset (each sample followed by token 0, flag 0, or 1
 * with {@code trainEnd}) with its mask, plus PREFIX.samples.jsonl, one line per document in the same order:
 * {"index", "task", "length", "depth", "key", "answer", "answer_start", "answer_tokens", "needles": [{"key",
 * "value", "start", "length", "queried"}]} (positions in tokens of the document).
 */
public final class SynthDatasetWriter {
    private SynthDatasetWriter() { }

    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();

    public static Path samplesFile(Path prefix) {
        return BinIdxFormat.sibling(prefix, ".samples.jsonl");
    }

    public record Report(Path prefix, int samples, long tokens) { }

    /** Bytes per sample in PREFIX.samples.jsonl, about (for the size estimate). */
    private static final long SAMPLE_LINE_BYTES = 400;

    /**
     * Refuses, before anything is written, a dataset that cannot be one: more items than a binidx holds, or more
     * bytes (tokens, flags, sample records) than the output's file system has free.
     */
    static void checkOutputSize(Path prefix, List<Integer> lengths, int count, TokenDtype dtype) {
        long samples = (long) lengths.size() * count;
        if (samples > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("--count " + count + " x " + lengths.size() + " lengths = " + samples + " samples, more than a dataset holds ("
                    + (Integer.MAX_VALUE - 8) + ")");
        }
        long tokens = 0;
        for (int length : lengths) tokens += ((long) length + 1) * count;
        long bytes = tokens * (dtype.bytes + 1) + samples * (SAMPLE_LINE_BYTES + 12);
        Path dir = prefix.toAbsolutePath().getParent();
        while (dir != null && !Files.isDirectory(dir)) dir = dir.getParent();
        if (dir == null) return;
        try {
            long free = Files.getFileStore(dir).getUsableSpace();
            if (bytes > free) {
                throw new IllegalArgumentException(String.format(java.util.Locale.ROOT,
                        "%,d samples of %,d tokens in all need about %.1f GB, but %s has %.1f GB free: lower --count or --lengths",
                        samples, tokens, bytes / 1e9, dir, free / 1e9));
            }
        } catch (java.io.IOException e) {
            // no estimate of the free space: the write reports a full disk itself
        }
    }

    public static Report write(SynthTask task, Tokenizer tokenizer, String tokenizerSpec, String haystackName, List<Integer> lengths,
                               int count, long seed, double[] depths, Path outPrefix) {
        return write(task, tokenizer, tokenizerSpec, haystackName, lengths, count, seed, depths, false, outPrefix);
    }

    /**
     * As above; {@code trainEnd}: the token 0 after each sample is trained too (its flag 1), so that a model trained
     * on the answer alone also learns where the answer ends (a model that never sees that target goes on writing
     * digits after the key, and eval passkey takes the whole number).
     */
    public static Report write(SynthTask task, Tokenizer tokenizer, String tokenizerSpec, String haystackName, List<Integer> lengths,
                               int count, long seed, double[] depths, boolean trainEnd, Path outPrefix) {
        if (count < 1) throw new IllegalArgumentException("--count must be at least 1, got " + count);
        if (lengths.isEmpty()) throw new IllegalArgumentException("--lengths is empty");
        Path prefix = Path.of(BinIdxFormat.stripExtension(outPrefix.toString()));
        TokenDtype dtype = TokenDtype.forVocabulary(tokenizer.vocabSize());
        checkOutputSize(prefix, lengths, count, dtype);
        int written = 0;
        long tokens;
        try (AtomicFileSet files = new AtomicFileSet()) {
            Path idx = BinIdxFormat.idx(prefix);
            try (BinIdxWriter writer = new BinIdxWriter(files.temp(BinIdxFormat.bin(prefix)), files.temp(idx), files.temp(BinIdxFormat.mask(prefix)), dtype);
                 BufferedWriter samples = Files.newBufferedWriter(files.temp(samplesFile(prefix)), StandardCharsets.UTF_8);
                 ProgressBar bar = Progress.bar("data synth", (long) lengths.size() * count, "samples")) {
                for (int length : lengths) {
                    for (int i = 0; i < count; i++) {
                        Sample s = SynthTasks.sample(task, seed, length, i, depths);
                        int[] doc = Arrays.copyOf(s.tokens(), s.length() + 1);    // + token 0, end of document
                        byte[] flags = Arrays.copyOf(s.flags(), s.length() + 1);  // the 0 is not trained, unless trainEnd
                        if (trainEnd) flags[s.length()] = 1;
                        writer.add(doc, flags);
                        samples.write(GSON.toJson(describe(s, written, i)));
                        samples.write('\n');
                        written++;
                        bar.step();
                    }
                }
                writer.finish();
                tokens = writer.tokens();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write " + samplesFile(prefix) + ": " + e.getMessage(), e);
            }
            JsonObject m = new JsonObject();
            m.addProperty("kind", "synthetic");
            m.addProperty("task", task.name());
            if (task instanceof NeedleTask n) m.addProperty("needles", n.needles());
            if (task instanceof PersonaTask p) {
                m.addProperty("template", p.template().name());
                m.addProperty("facts", String.join(",", p.facts()));
            }
            m.addProperty("tokenizer", tokenizerSpec);
            m.addProperty("haystack", haystackName);
            JsonArray ls = new JsonArray();
            for (int l : lengths) ls.add(l);
            m.add("lengths", ls);
            m.addProperty("count_per_length", count);
            m.addProperty("seed", seed);
            if (depths != null && depths.length > 0) {
                JsonArray ds = new JsonArray();
                for (double d : depths) ds.add(d);
                m.add("depths", ds);
            } else {
                m.addProperty("depths", "uniform random");
            }
            m.addProperty("dtype", dtype.numpyName());
            m.addProperty("documents", written);
            m.addProperty("tokens", tokens);
            m.addProperty("end_trained", trainEnd);
            m.addProperty("layout", "each document = one sample of exactly `length` tokens, then token 0; flags 1 on the answer tokens only"
                    + (trainEnd ? " and on the token 0" : "") + "; details per document in PREFIX.samples.jsonl");
            DatasetMeta.write(files.temp(BinIdxFormat.meta(prefix)), m);
            files.commit(idx);
        }
        return new Report(prefix, written, tokens);
    }

    static JsonObject describe(Sample s, int index, int indexInLength) {
        JsonObject o = new JsonObject();
        o.addProperty("index", index);
        o.addProperty("task", s.task());
        o.addProperty("length", s.length());
        o.addProperty("sample", indexInLength);
        o.addProperty("depth", Math.round(s.depth() * 1e6) / 1e6);
        o.addProperty("key", s.key());
        o.addProperty("answer", s.answer());
        o.addProperty("answer_start", s.answerStart());
        JsonArray at = new JsonArray();
        for (int t : s.answerTokens()) at.add(t);
        o.add("answer_tokens", at);
        JsonArray needles = new JsonArray();
        for (Sample.Needle n : s.needles()) {
            JsonObject no = new JsonObject();
            no.addProperty("key", n.key());
            no.addProperty("value", n.value());
            no.addProperty("start", n.start());
            no.addProperty("length", n.length());
            no.addProperty("queried", n.queried());
            needles.add(no);
        }
        o.add("needles", needles);
        return o;
    }
}
