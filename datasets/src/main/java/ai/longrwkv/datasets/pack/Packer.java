package ai.longrwkv.datasets.pack;

import ai.longrwkv.core.util.Progress;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.io.AtomicFileSet;
import com.google.gson.JsonObject;
import me.tongfei.progressbar.ProgressBar;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** `data pack`: documents of a binidx dataset into long sequences ({@link PackPlan}), written as a {@link PackedDataset}. */
public final class Packer {
    private Packer() { }

    public record Options(int seqLen, LengthMix mix, BoundaryMode boundaryMode, long seed, boolean shuffle) { }

    /** Per sequence length: how many sequences, their tokens, and how many of those are padding. */
    public record LengthStats(int length, int sequences, long tokens, long paddingTokens, double requestedShare, double achievedShare) { }

    public record Report(Path prefix, int sequences, long inputTokens, long paddingTokens, long trainedTokens,
                         List<LengthStats> lengths, double seconds) { }

    public static Report pack(Path dataPrefix, Path outPrefix, Options options) {
        long startNanos = System.nanoTime();
        Path prefix = Path.of(BinIdxFormat.stripExtension(outPrefix.toString()));
        Path source = Path.of(BinIdxFormat.stripExtension(dataPrefix.toString()));
        if (prefix.toAbsolutePath().equals(source.toAbsolutePath())) {
            throw new IllegalArgumentException("--out " + outPrefix + " would overwrite the input dataset " + dataPrefix);
        }
        try (BinIdxDataset data = BinIdxDataset.open(source); AtomicFileSet files = new AtomicFileSet()) {
            int[] lengths = new int[data.documentCount()];
            for (int d = 0; d < lengths.length; d++) lengths[d] = data.documentLength(d);
            PackPlan plan = PackPlan.plan(lengths, options.mix(), options.seed(), options.shuffle());

            Path idx = BinIdxFormat.idx(prefix);
            long trained;
            try (BinIdxWriter writer = new BinIdxWriter(files.temp(BinIdxFormat.bin(prefix)), files.temp(idx),
                    files.temp(BinIdxFormat.mask(prefix)), data.dtype());
                 ProgressBar bar = Progress.bar("data pack", plan.sequences(), "seq")) {
                for (int i = 0; i < plan.sequences(); i++) {
                    int[] tokens = new int[plan.sequenceLength()[i]];     // zeros: the padding after the content
                    byte[] flags = new byte[tokens.length];
                    int pos = 0;
                    for (int g = plan.firstSegment()[i]; g < plan.firstSegment()[i + 1]; g++) {
                        int doc = plan.segmentDocument()[g], off = plan.segmentOffset()[g], n = plan.segmentLength()[g];
                        data.read(doc, off, tokens, pos, n);
                        data.readMask(doc, off, flags, pos, n);
                        pos += n;
                    }
                    writer.add(tokens, flags);
                    bar.step();
                }
                writer.finish();
                trained = writer.trainedTokens();
            }
            PackedDataset.writeSegments(files.temp(BinIdxFormat.segments(prefix)), plan);
            List<LengthStats> stats = lengthStats(plan, options.mix());
            DatasetMeta.write(files.temp(BinIdxFormat.meta(prefix)), meta(source, data, plan, options, stats, trained));
            files.commit(idx);
            return new Report(prefix, plan.sequences(), plan.inputTokens(), plan.paddingTokens(), trained, stats,
                    (System.nanoTime() - startNanos) / 1e9);
        }
    }

    static List<LengthStats> lengthStats(PackPlan plan, LengthMix mix) {
        Map<Integer, long[]> byLength = new LinkedHashMap<>();   // length -> {sequences, content tokens}
        for (LengthMix.Share s : mix.shares()) byLength.put(s.length(), new long[2]);
        for (int i = 0; i < plan.sequences(); i++) {
            long[] a = byLength.get(plan.sequenceLength()[i]);
            a[0]++;
            for (int g = plan.firstSegment()[i]; g < plan.firstSegment()[i + 1]; g++) a[1] += plan.segmentLength()[g];
        }
        long total = plan.outputTokens();
        return mix.shares().stream().map(s -> {
            long[] a = byLength.get(s.length());
            long tokens = a[0] * s.length();
            return new LengthStats(s.length(), (int) a[0], tokens, tokens - a[1], s.fraction(), total == 0 ? 0 : (double) tokens / total);
        }).toList();
    }

    private static JsonObject meta(Path source, BinIdxDataset data, PackPlan plan, Options options, List<LengthStats> stats, long trained) {
        JsonObject sourceMeta = DatasetMeta.read(source);
        JsonObject m = new JsonObject();
        m.addProperty("kind", "packed");
        m.addProperty("tokenizer", DatasetMeta.string(sourceMeta, "tokenizer", "unknown"));
        m.addProperty("source", source.toString());
        m.addProperty("source_documents", data.documentCount());
        m.addProperty("state_at_document_boundary", options.boundaryMode().cliName());
        m.addProperty("seq_len", options.seqLen());
        m.addProperty("mix", options.mix().toString());
        JsonObject achieved = new JsonObject();
        for (LengthStats s : stats) {
            JsonObject o = new JsonObject();
            o.addProperty("sequences", s.sequences());
            o.addProperty("tokens", s.tokens());
            o.addProperty("padding_tokens", s.paddingTokens());
            o.addProperty("share", Double.parseDouble(String.format(Locale.ROOT, "%.6f", s.achievedShare())));
            achieved.add(Integer.toString(s.length()), o);
        }
        m.add("achieved_mix", achieved);
        m.addProperty("seed", options.seed());
        m.addProperty("shuffled", options.shuffle());
        m.addProperty("dtype", data.dtype().numpyName());
        m.addProperty("documents", plan.sequences());
        m.addProperty("sequences", plan.sequences());
        m.addProperty("segments", plan.segments());
        m.addProperty("tokens", plan.outputTokens());
        m.addProperty("input_tokens", plan.inputTokens());
        m.addProperty("padding_tokens", plan.paddingTokens());
        m.addProperty("trained_tokens", trained);
        return m;
    }
}
